//! Memory of the resolver (size assertions, not timing): the heap peak while `Resolver::open`
//! reads Debian's 6.12 module index (fetched by `scripts/kernels`) and the heap it holds after
//! lookups, counted by a global allocator that wraps `System`.
//!
//! Skipped with a printed reason when the kernel is missing, unless
//! `DEVMGR_REQUIRE_ALL_TESTS=1`, in which case it fails instead. This file holds one test
//! only, so that no other test allocates while it counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use kmod_loader::{IndexError, Resolver, ResolverOptions};

/// `Resolver::open` (lookups in place): its peak is the walk's windows and loop check while it
/// checks the files; what it holds after lookups is mostly the lookup windows. Limits with
/// headroom (figures in `BENCH.md`, "Memory"); more would mean a file is held whole.
const OPEN_PEAK_LIMIT: usize = 400_000;
const OPEN_RETAINED_LIMIT: usize = 100_000;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

fn shrank(by: usize) {
    CURRENT.fetch_sub(by, Relaxed);
}

/// Counts the bytes of live allocations (a `realloc` counts as a change of size).
struct Counting;

// SAFETY: every method forwards its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, and returns what `System` returned; the counters only observe
// sizes and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which is `System`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest
        // of `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn debian_6_12() -> Result<PathBuf, String> {
    let dir = test_support::kernel("6.12.")?.module_dir();
    if !dir.join("modules.alias.bin").exists() {
        return Err(format!("{} has no modules.alias.bin", dir.display()));
    }
    Ok(dir)
}

#[test]
fn opening_the_debian_6_12_index_takes_little_heap() {
    let dir = match debian_6_12() {
        Ok(dir) => dir,
        Err(reason) => return test_support::skip_or_fail("memory test", &reason),
    };
    let options = ResolverOptions {
        module_dir: dir,
        config_dirs: Vec::new(),
        cmdline: None,
    };
    // What `open` holds while it checks the files (the walk's windows and loop check) and what
    // stays (the lookup windows, the configuration, the builtin list).
    let open = heap_of(|| Resolver::open(options.clone()));
    let _ = writeln!(std::io::stderr(), "Resolver::open heap: {open}");
    assert!(
        open.peak <= OPEN_PEAK_LIMIT,
        "heap peak while opening {} B > {OPEN_PEAK_LIMIT} B",
        open.peak
    );
    assert!(
        open.after_lookups <= OPEN_RETAINED_LIMIT,
        "heap held after opening and looking up {} B > {OPEN_RETAINED_LIMIT} B",
        open.after_lookups
    );
}

/// Aliases looked up 50 times each after loading.
const ALIASES: [&str; 7] = [
    "pci:v00008086d0000100Esv00000000sd00000000bc02sc00i00",
    "usb:v1D6Bp0002d0612dc09dsc00dp01ic09isc00ip00in00",
    "of:NfooT(null)Cmaxim,max11600",
    "acpi:PNP0A08:PNP0A03:",
    "cpu:type:x86,ven0000fam0006mod00CF:feature:,0000,0001,0002,0003,0004,0005,0006,0007",
    "virtio:d00000001v00001AF4",
    "platform:serial8250",
];

/// Heap of reading the index, in bytes above what was live before it.
struct Heap {
    peak: usize,
    retained: usize,
    after_lookups: usize,
    index_reports: usize,
}

impl std::fmt::Display for Heap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak {} B, retained {} B (index reports {} B), after {} lookups {} B",
            self.peak,
            self.retained,
            self.index_reports,
            50 * ALIASES.len(),
            self.after_lookups
        )
    }
}

/// Reads the index with `read` (once first, to warm up what the first use of `tracing` and
/// `std::fs` allocate once), then again counting, then plans every
/// alias of [`ALIASES`] 50 times; asserts the lookups find modules.
fn heap_of(read: impl Fn() -> Result<Resolver, IndexError>) -> Heap {
    drop(read().expect("read the index"));
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let resolver = read().expect("read the index");
    let peak = PEAK.load(Relaxed) - base;
    let retained = CURRENT.load(Relaxed) - base;
    let mut found = 0;
    for _ in 0..50 {
        for alias in ALIASES {
            let plan = resolver.plan(alias).expect("plan");
            found += usize::from(!plan.steps.is_empty());
        }
    }
    assert!(found >= 50 * 4, "the lookups should find modules ({found})");
    Heap {
        peak,
        retained,
        after_lookups: CURRENT.load(Relaxed) - base,
        index_reports: resolver.index().heap_bytes(),
    }
}
