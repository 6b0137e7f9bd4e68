//! The module loader's index and resolver: reads a kernel's module index
//! (`modules.alias.bin`, `modules.dep.bin`, builtin lists, `modules.softdep`), modprobe.d and
//! the kernel command line, and resolves a `MODALIAS` to a load plan exactly as libkmod's
//! `kmod_module_new_from_lookup` + `kmod_module_probe_insert_module` (as used by
//! `modprobe`) would — without libkmod and without spawning processes — and loads the plans
//! ([`load`]): `finit_module`/`init_module` behind a trait, compressed modules, one load in
//! flight per module, independent modules in parallel.
//!
//! # Usage
//!
//! ```no_run
//! use kmod_loader::{Resolver, ResolverOptions, Step};
//!
//! // /lib/modules/$(uname -r), libkmod's modprobe.d directories, /proc/cmdline:
//! let resolver = Resolver::load(ResolverOptions::default())?;
//! let plan = resolver.plan("pci:v00008086d00001533sv00008086sd00000000bc02sc00i00")?;
//! for step in &plan.steps {
//!     match step {
//!         Step::Insert { module, path, options } => println!("load {module} from {} {options}", path.display()),
//!         Step::Builtin { module } => println!("{module} is built in"),
//!         Step::Install { module, command, .. } => println!("{module}: run `{command}` instead"),
//!         Step::NotFound { module } => println!("{module}: no such module"),
//!     }
//! }
//! // Or in `modprobe --show-depends` form:
//! println!("{}", plan.show_depends().join("\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Modules
//!
//! * [`binindex`] — libkmod's binary trie format, read as untrusted input (bounds-checked,
//!   loops and dangling offsets detected, sizes bounded), walked whole or searched in place.
//! * [`index`] — the module directory: binary indexes with text fallbacks.
//! * [`fnmatch`] — `fnmatch(3)` with flags 0, byte-wise.
//! * [`matcher`] — all alias patterns compiled into one trie (design below).
//! * [`config`] — modprobe.d, `modules.softdep`, the kernel command line.
//! * [`resolve`] — lookup order and load plans.
//! * [`reload`] — change detection for reloading.
//! * [`load`] — loading plans (issue #7): the syscalls behind [`load::Kernel`] (a recording
//!   [`load::FakeKernel`] for tests and benchmarks), compression by magic with the
//!   `MODULE_INIT_COMPRESSED_FILE` path when `/sys/module/compression` names the format and an
//!   in-process decompressor otherwise, `ENOSYS` fallback to `init_module`, module state from
//!   `/sys/module/<name>/initstate`, errno meanings (R31), the [`load::Loader`] (single flight
//!   per module, bounded worker pool), the per-(module, alias) `ENODEV` memory (R34), and the
//!   [`load::LoaderActor`] that turns `add` events into loads.
//!
//! # Loading (issue #7)
//!
//! ```no_run
//! use std::sync::Arc;
//! use kmod_loader::load::{
//!     Compression, LinuxKernel, Loader, LoaderActor, LoaderArgs, SysModule, default_workers,
//! };
//! use kmod_loader::{Resolver, ResolverOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let loader = Loader::new(Arc::new(LinuxKernel), SysModule::default(), default_workers())
//!     .kernel_decompresses(Compression::supported_by_kernel("/sys/module/compression".as_ref()));
//! let args = LoaderArgs {
//!     resolver: Box::new(Resolver::load(ResolverOptions::default())?),
//!     loader: Arc::new(loader),
//!     dry_run: false,
//! };
//! let (actor, _) = ractor::Actor::spawn(None, LoaderActor, args).await?;
//! // Feed it `LoaderMsg::Events` (from the listener) or `LoaderMsg::Load { .. }`.
//! # let _ = actor; Ok(()) }
//! ```
//!
//! What the loader does for one `MODALIAS` is what udev's `kmod load` does with libkmod:
//!
//! * **Several modules for one alias** (the PIIX IDE function matches `ata_piix` and
//!   `ata_generic`; many USB aliases match several drivers) load one after another, in the
//!   lookup's order (depmod's `modules.order` priority), so the first gets the first chance to
//!   bind the device. Different aliases load in parallel.
//! * **A module is in the kernel only while sysfs says so**: `/sys/module/NAME/initstate` is
//!   read at every request and only `live` counts (and builtins); nothing is remembered, so
//!   after `rmmod` and a replug the module is loaded again. A plan whose module is already
//!   live is left alone entirely, softdeps included.
//! * Plans run step by step (softdep pre, dependencies, the module, softdep post). A module
//!   being loaded for one plan is awaited by every other plan that needs it, never loaded twice
//!   at once. After a required step fails, the rest of that plan is skipped; softdep failures
//!   are ignored. `EEXIST` counts as loaded, `ENODEV` and the kernel's `ENOENT` are logged at
//!   info, a module file missing on disk is a warning, `EPERM` for a module in the kernel's
//!   `module_blacklist=` is reported as such, anything else is an error naming module, path and
//!   errno; a load still running after 30 s is logged and waited for.
//! * **`install` lines** of modprobe.d run instead of the load, as in modprobe; `/bin/true`
//!   and `/bin/false` disable the module without running anything ([`load::install`]).
//! * **Blacklists** apply to every module the lookup finds, named directly too (udev's
//!   `KMOD_PROBE_APPLY_BLACKLIST`; modprobe applies them to aliases only).
//! * `ENODEV` is remembered per (module, alias): coldplug replays of devices with the same
//!   alias do not try again (the 1,536 × `acpi_cpufreq` storm), a device that really appears
//!   does.
//!
//! Benchmark (`cargo bench -p kmod-loader --bench load`, needs `scripts/kernels`): the 71
//! modules systemd-udevd loads in the reference guest, planned by our resolver from Debian's
//! 6.12 index, loaded into a fake kernel that spends 20 ms per load, all plans submitted at
//! once as in a coldplug. On the build machine on 2026-11-27: serial (1 worker) 1.458 s; pool of
//! 2 0.761 s, **1.91×**; pool of 4 0.394 s, 3.70×; pool of 8 0.246 s, 5.92× (shared
//! dependencies bound the gain). The default pool is two per CPU plus 16, as udevd sizes its
//! workers ([`load::default_workers`]): real loads mostly wait.
//!
//! Decompression uses pure-Rust crates (`lzma-rs`, `ruzstd`, `flate2` with miniz_oxide): no C
//! toolchain or system library, output bounded at 256 MiB; on 106 of Debian 6.12's `.ko.xz`
//! modules it is byte-identical to `xz -d` (`tests/real_modules.rs`). Module loading is rare,
//! so their speed (tens of ms for a large module) does not matter.
//!
//! # Semantics (rules R23–R29)
//!
//! * Queries and patterns are normalised: `-` → `_` outside brackets; an unmatched bracket is
//!   an error ([`normalize_alias`]).
//! * Lookup order, first non-empty source wins: modprobe.d `alias` (fnmatch), exact module name
//!   in `modules.dep` (not if the name contains `:`), `install`/`remove` command for exactly
//!   the name, `modules.alias` wildcards (all matches, deduplicated, ordered by depmod's
//!   priority), exact `modules.builtin` name, `modules.builtin.alias.bin` wildcards.
//!   (`symbol:` lookups in `modules.symbols.bin` are not implemented: no modalias needs them.)
//! * Plan per module found: softdep `pre` (first matching `softdep` line, each name resolved
//!   by a full lookup), the dependencies from the `modules.dep` line in reverse order, the
//!   module, softdep `post`. Options: every `options` line for the module name or the alias
//!   it was reached through, plus `module.param=` from the command line, joined by spaces.
//!   Builtin modules are a [`Step::Builtin`]: nothing to load.
//! * Blacklist (`blacklist` lines, `modprobe.blacklist=`): applies only to modules reached
//!   through an alias, never to dependencies or modules named directly.
//! * `install` commands are recognised; a step that runs one is a [`Step::Install`] (the
//!   loader runs it, [`load::install`]). With softdeps, libkmod ignores the module's command.
//!
//! # Matcher design
//!
//! See [`matcher`]: one trie over all patterns whose edges are Patricia-compressed literal
//! runs plus `*`, `?` and byte-class edges; a lookup walks the query once, sharing the work
//! for common prefixes (all `pci:v00008086…` patterns, all 2,000 `of:N*T*C…` patterns), and a
//! per-`*`-node memo bounds the worst case to O(nodes × query length). libkmod, by contrast,
//! explores every wildcard subtree hanging off the query's literal path and calls `fnmatch`
//! on a rebuilt pattern string at each value node.
//!
//! # Memory: two ways to read an index
//!
//! [`Resolver::load`] ([`ModuleIndex::load`]) compiles the index: the matcher is one byte
//! string of variable-length nodes (written in post-order while the sorted patterns stream out
//! of `modules.alias.bin`, chains without branches stored as one tail node), `modules.dep` a
//! table of interned paths, module names in one buffer; the alias and dependency files are
//! walked through small windows ([`binindex::BinFile`]), never held whole. For Debian's 6.12
//! index it peaks at 2.06 MB of heap and keeps 1.19 MB (before: 28.4 MB and 16.3 MB), takes
//! about 20 ms, and a lookup then about a microsecond; lookups allocate no lasting memory (the
//! `*` memo is a small per-thread hash table). `tests/memory.rs` guards both figures with a
//! counting allocator. Details in [`index`] and [`matcher`].
//!
//! [`Resolver::open`] ([`ModuleIndex::open`]) looks the binary files up in place, as libkmod
//! does with its `mmap`s: each file is walked whole once (so that a corrupt one falls back to
//! its text form at open, as with `load`), then each lookup reads the nodes it needs, 4 KiB at
//! a time, with libkmod's own search (`index_searchwild`: [`binindex::BinFile::search_wild`]).
//! It keeps four 4 KiB windows per file (about 45 KB), opens in about 5 ms, and a lookup takes
//! about 50 µs on the build machine, about half libkmod's speed (`tests/in_place.rs` prints
//! both heaps; the benchmark in `BENCH.md`). devmgr's daemon and `devmgr resolve` use it: a boot looks up fewer than a
//! hundred aliases, and in the QEMU guests the compiled index was 1.2 MB of devmgr's resident
//! set and 250–400 ms of its start. Both ways give the same plans as `modprobe` for every
//! alias of Debian 12's kernels (`tests/differential.rs`).
//!
//! # Differences from libkmod, on purpose
//!
//! * A plan lists each module once. `modprobe --show-depends` can print the same line more
//!   than once (the same module matched by several aliases, or a dependency that is also a
//!   softdep); the differential test compares against its output with repeats removed.
//! * Text fallbacks (`modules.alias`, `modules.dep`, `modules.builtin`,
//!   `modules.builtin.modinfo`) are used when a binary index is missing or corrupt; libkmod
//!   reads only the binary files.
//! * `install MODULE /bin/true` and `/bin/false` are not run: the loader treats them as what
//!   they mean, "do not load MODULE" (with `/bin/false` ending the plan, as its exit status
//!   does in modprobe). Other commands run as modprobe runs them unless switched off.
//! * A query that itself holds `*`, `?` or `[` (no kernel modalias does): the compiled index
//!   answers it by `fnmatch` plus an exact match of an equal pattern, while libkmod's answer
//!   depends on whether its trie puts each wildcard on an edge (then walked literally) or
//!   inside a compressed prefix (then matched); lookups in place run libkmod's search and
//!   give its answer (found by the `index_reader` fuzz target).
//! * Limits for untrusted input: index files up to 64 MiB, keys up to 4,096 bytes, at most
//!   2^20 entries, at most 64 wildcards per alias pattern in the compiled index (real ones
//!   have at most 18; lookups in place match any pattern, as libkmod does).
//! * Not implemented: `symbol:` lookups (`modules.symbols.bin`); `modules.weakdep` (not read
//!   by kmod 30 either, and never loaded by userspace).
//!
//! # Reloading (R33)
//!
//! [`Resolver::is_stale`] compares size and mtime of every index file, configuration
//! directory and file with the values seen at load time; [`Resolver::reload_if_changed`]
//! reloads then. The caller decides when to check (for example before each batch of
//! uevents), so no timer or inotify thread is needed.
//!
//! # Command line
//!
//! `devmgr resolve [-d ROOT] [-S VERSION] [--dir MODULE_DIR] [-C CONFIG]… MODALIAS…` prints
//! the plans in `modprobe --show-depends` form.
//!
//! # Correctness against libkmod
//!
//! `tests/differential.rs` compares [`Plan::show_depends`] with `modprobe --show-depends`
//! (Debian 12's kmod 30) for every alias of the Debian 12 kernels fetched by
//! `scripts/kernels` (about 25,000 modaliases per kernel, plus the build machine's own) and
//! for a modprobe.d exercising every directive; `scripts/test` runs it with
//! `DEVMGR_REQUIRE_ALL_TESTS=1`, so it fails rather than skips when the kernels are missing.
//!
#![doc = include_str!("../BENCH.md")]

pub mod binindex;
pub mod config;
pub mod error;
mod fasthash;
pub mod fnmatch;
pub mod index;
pub mod load;
pub mod matcher;
pub mod normalize;
pub mod reload;
pub mod resolve;
mod strs;

pub use config::Config;
pub use error::{AliasError, IndexError};
pub use index::ModuleIndex;
pub use matcher::{AliasMatcher, AliasMatcherBuilder};
pub use normalize::normalize_alias;
pub use resolve::{Lookup, ModuleRef, Plan, ResolveError, Resolver, ResolverOptions, Source, Step};
