//! Lookups in place (`ModuleIndex::open`, the binary index files read at each lookup) against
//! the text fallbacks of the same index (the `.bin` files left out: `modules.alias` and
//! `modules.builtin.modinfo` scanned with `fnmatch`, `modules.dep` read into a table): the
//! same modules in the same order for aliases of Debian's indexes, libkmod's order among
//! equal priorities, corruption found at open, and nothing kept of the files but the windows.
//!
//! The Debian test is skipped with a printed reason when the kernels are missing, unless
//! `DEVMGR_REQUIRE_ALL_TESTS=1`, in which case it fails instead.

use crate::common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::{Fixture, FixtureModule, encode_index};
use kmod_loader::index::{DepEntry, Form, LOOKUP_WINDOW};
use kmod_loader::{IndexError, ModuleIndex};

/// Patterns of the index taken for the corpus: every `STRIDE`th (the text fallback is scanned
/// pattern by pattern, slow in a debug build; `differential.rs` checks every pattern in place
/// against `modprobe`).
const STRIDE: usize = 100;

/// Aliases a lookup could meet: one concrete string for every [`STRIDE`]th pattern, the same
/// with its last byte changed (mostly a miss, sometimes another pattern's hit), the reference
/// guest's modaliases, and some that match nothing or hold wildcards themselves.
fn corpus(index: &ModuleIndex) -> Vec<String> {
    let mut out: BTreeSet<String> = BTreeSet::new();
    let patterns = index.alias_patterns().expect("alias patterns");
    for (pattern, _) in patterns.into_iter().step_by(STRIDE) {
        let Some(example) = kmod_loader::fnmatch::example_for(&pattern) else {
            continue;
        };
        let Ok(example) = String::from_utf8(example) else {
            continue;
        };
        let mut changed = example.clone();
        if let Some(last) = changed.pop() {
            changed.push(if last == 'Z' { 'Y' } else { 'Z' });
        }
        out.insert(example);
        out.insert(changed);
    }
    out.extend(
        include_str!("../fixtures/guest-6.12-modaliases.txt")
            .lines()
            .map(str::to_owned),
    );
    out.extend(["", "pci:", "nothing:at:all", "*", "acpi*:PNP0A08:*"].map(str::to_owned));
    out.into_iter().collect()
}

/// One module, `foo`, with one alias, in binary and text form.
fn foo_fixture() -> Fixture {
    Fixture::new(
        &[FixtureModule {
            path: "kernel/foo.ko",
            deps: &[],
        }],
        &[("pci:v00001234d*", "foo")],
        &[],
        &[],
        "",
    )
}

/// `bin` (an encoded index whose root has children and no prefix) with the root's first child
/// word, right after its child range, naming the root itself: a loop.
fn first_child_is_the_root(mut bin: Vec<u8>) -> Vec<u8> {
    let root = u32::from_be_bytes([bin[8], bin[9], bin[10], bin[11]]);
    let at = (root & 0x0FFF_FFFF) as usize + 2;
    bin[at..at + 4].copy_from_slice(&root.to_be_bytes());
    bin
}

#[test]
fn lookups_in_place_equal_the_text_fallbacks_on_debian_kernels() {
    let kernels = match test_support::kernels() {
        Ok(k) => k,
        Err(reason) => {
            test_support::skip_or_fail("lookups in place on Debian's indexes", &reason);
            return;
        }
    };
    for test_support::Kernel { version, root } in kernels {
        let dir = root.join("lib/modules").join(&version);
        let in_place = ModuleIndex::open(&dir).expect("open");
        let text_dir = common::text_only(&dir);
        let text = ModuleIndex::open(text_dir.path()).expect("open text");
        let forms = |idx: &ModuleIndex| {
            let f = idx.forms();
            [f.alias, f.dep, f.builtin, f.builtin_alias]
        };
        assert_eq!(forms(&in_place), [Form::Binary; 4]);
        assert_eq!(forms(&text), [Form::Text; 4]);
        assert_eq!(in_place.alias_count(), text.alias_count());
        let corpus = corpus(&in_place);
        let (mut hits, mut modules) = (0usize, BTreeSet::new());
        for alias in &corpus {
            let want = text.match_aliases(alias).expect("text lookup");
            let got = in_place.match_aliases(alias).expect("lookup in place");
            assert_eq!(got, want, "{version}: modules.alias lookup of {alias:?}");
            hits += usize::from(!got.is_empty());
            modules.extend(got);
            let want = text.match_builtin_aliases(alias).expect("text");
            let got = in_place.match_builtin_aliases(alias).expect("in place");
            assert_eq!(got, want, "{version}: builtin alias lookup of {alias:?}");
        }
        // The text table's paths are under the copy: compared relative to each directory.
        let relative = |entry: DepEntry, dir: &Path| {
            let rel = |p: &Path| p.strip_prefix(dir).expect("inside").to_owned();
            let deps: Vec<(String, PathBuf)> = entry
                .deps
                .iter()
                .map(|(n, p)| (n.clone(), rel(p)))
                .collect();
            (rel(&entry.path), deps)
        };
        for name in modules
            .iter()
            .map(String::as_str)
            .chain(["nope", "", "snd"])
        {
            let want = text.dep_entry(name).expect("text dep");
            let got = in_place.dep_entry(name).expect("dep in place");
            assert_eq!(
                got.map(|e| relative(e, &dir)),
                want.map(|e| relative(e, text_dir.path())),
                "{version}: modules.dep entry of {name}"
            );
        }
        // The windows, nothing else: four per file (alias, builtin alias, dep).
        assert!(
            in_place.heap_bytes() <= 3 * 4 * LOOKUP_WINDOW + 4096,
            "{version}: {} bytes kept",
            in_place.heap_bytes()
        );
        println!(
            "{version}: {} aliases looked up ({hits} with modules), {} modules' dependencies; \
             in place {} bytes of heap, text fallbacks {}",
            corpus.len(),
            modules.len(),
            in_place.heap_bytes(),
            text.heap_bytes()
        );
        assert!(
            hits > 400 && modules.len() > 150,
            "{version}: corpus too small"
        );
    }
}

#[test]
fn equal_priorities_come_last_found_first_as_in_libkmod() {
    // One priority for every pattern (builtin aliases have priority 0): libkmod puts each new
    // value before the others of its priority, and finds `*` children, then `?`, then `[`,
    // then the exact key, each subtree children first, in byte order, then the node.
    let x_ko = [FixtureModule {
        path: "kernel/x.ko",
        deps: &[],
    }];
    let f = Fixture::new(&x_ko, &[], &[], &[], "");
    let entries = [
        ("ab", 0, "exact"),
        ("a*", 0, "star"),
        ("a*b", 0, "star_b"),
        ("a?", 0, "any"),
        ("a[b]", 0, "class"),
        ("*", 0, "all"),
        ("ab*", 0, "ab_star"),
        ("a*", 1, "star_low"),
    ];
    f.write("modules.alias.bin", &encode_index(&entries));
    let in_place = ModuleIndex::open(f.dir()).expect("open");
    let got = in_place.match_aliases("ab").expect("lookup");
    // Discovery: `*` (root), then below `a`: `*b` (child of `*`) before `*`, `?`, `[b]`, then
    // below `ab`: `*`, then `ab` itself. Reversed within priority 0; priority 1 last.
    assert_eq!(
        got,
        vec![
            "exact", "ab_star", "class", "any", "star", "star_b", "all", "star_low"
        ]
    );
    // The text fallback orders them the same way: as builtin aliases (priority 0 in both
    // forms), in place and from `modules.builtin.modinfo`.
    let builtin: Vec<(&str, &str)> = entries
        .iter()
        .filter(|e| e.1 == 0)
        .map(|(p, _, m)| (*p, *m))
        .collect();
    let f = Fixture::new(&x_ko, &[], &[], &builtin, "");
    let in_place = ModuleIndex::open(f.dir()).expect("open");
    assert_eq!(in_place.forms().builtin_alias, Form::Binary);
    let want = &got[..got.len() - 1];
    assert_eq!(in_place.match_builtin_aliases("ab").expect("lookup"), want);
    f.remove("modules.builtin.alias.bin");
    let text = ModuleIndex::open(f.dir()).expect("open");
    assert_eq!(text.forms().builtin_alias, Form::Text);
    assert_eq!(text.match_builtin_aliases("ab").expect("lookup"), want);
}

#[test]
fn a_corrupt_binary_index_falls_back_to_text_when_opened() {
    let f = foo_fixture();
    let mut bin = std::fs::read(f.dir().join("modules.alias.bin")).expect("read");
    // The root's offset word points into the header: found by the check at open.
    bin[8..12].copy_from_slice(&0x2000_0004u32.to_be_bytes());
    f.write("modules.alias.bin", &bin);
    let idx = ModuleIndex::open(f.dir()).expect("text fallback");
    assert_eq!(idx.forms().alias, Form::Text);
    assert_eq!(
        idx.match_aliases("pci:v00001234d0001").expect("lookup"),
        vec!["foo"]
    );
    // A node that points back at the root: a loop, refused at open, not at a lookup.
    let looped = first_child_is_the_root(encode_index(&[("a", 0, "x"), ("b", 0, "y")]));
    f.write("modules.alias.bin", &looped);
    let idx = ModuleIndex::open(f.dir()).expect("text fallback");
    assert_eq!(idx.forms().alias, Form::Text);
}

#[test]
fn a_file_changed_under_an_open_index_gives_an_error_not_a_panic() {
    let f = foo_fixture();
    let idx = ModuleIndex::open(f.dir()).expect("open");
    // Truncated in place (not replaced, as depmod does): the open file shrinks.
    std::fs::OpenOptions::new()
        .write(true)
        .open(f.dir().join("modules.alias.bin"))
        .expect("open for write")
        .set_len(14)
        .expect("truncate");
    match idx.match_aliases("pci:v00001234d0001") {
        Err(
            IndexError::Io { .. }
            | IndexError::Truncated { .. }
            | IndexError::DanglingOffset { .. },
        ) => {}
        other => panic!("expected an index error, got {other:?}"),
    }
}

#[test]
fn a_search_that_meets_a_loop_fails_instead_of_running_forever() {
    // Opened without the check `ModuleIndex::open` makes: the search's own guard must hold.
    // The root's children run from `*` to `b`; the first (`*`) now names the root.
    let bin = first_child_is_the_root(encode_index(&[("*x", 0, "star"), ("b", 0, "bee")]));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("modules.alias.bin");
    std::fs::write(&path, &bin).expect("write");
    let mut file = kmod_loader::binindex::BinFile::open(&path).expect("header and root are fine");
    match file.search_wild(b"bx") {
        Err(IndexError::Loop { .. }) => {}
        other => panic!("expected a loop error, got {other:?}"),
    }
    // An exact search follows the key only: it ends whatever the file holds.
    assert_eq!(file.search(b"b").expect("exact"), Some(b"bee".to_vec()));
}
