//! Fuzzes kmod-loader's reader of libkmod's binary index (`modules.*.bin`) and everything that
//! consumes it: the search in place, `modules.dep` lines, the resolver's lookups and plans.
//!
//! Input: up to five sections separated by [`SEP`] (`"\n--8<--\n"`):
//!
//! ```text
//! modules.alias.bin SEP modules.dep.bin SEP modules.builtin.bin SEP modules.builtin.alias.bin SEP queries
//! ```
//!
//! A missing section means the file is absent; `queries` are newline-separated modaliases or
//! module names to look up (besides names and examples derived from the index itself).
//!
//! Each run:
//! 1. parses every section in memory with `BinIndex::from_bytes`, walks it with `for_each`
//!    and checks that `search` finds every walked key with its first value;
//! 2. writes the sections into a module directory (under /dev/shm when available) and opens
//!    it with `Resolver::open`, the path devmgr uses (`BinFile`'s windowed walks at open, then
//!    `BinFile::search_wild` and `search` on the files at each lookup, libkmod's own search;
//!    `BinIndex::open`, validation, text fallbacks — the text files are present and empty, so
//!    a corrupt `.bin` falls back to an empty index rather than failing the whole open);
//! 3. checks that the file path agrees with the in-memory walk (a `.bin` is used iff it walks
//!    cleanly, and every walked pattern that can match is counted), that no lookup fails, that
//!    `match_aliases` and `match_builtin_aliases` give exactly the modules of a scan of every
//!    walked pattern by libkmod's rule (literal prefix, then `fnmatch`), in libkmod's order
//!    (by priority, then the one discovered last first) — where the two are meant to agree:
//!    queries without wildcard bytes (with them, libkmod's answer depends on where the trie's
//!    edges fall, which a scan does not model) —, that `dep_entry` finds exactly the walked
//!    keys, and that plans list each module once with every path inside the module directory.
//!
//! Nothing may panic, hang or allocate without bound.
#![no_main]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use kmod_loader::binindex::BinIndex;
use kmod_loader::fnmatch::example_for;
use kmod_loader::index::Form;
use kmod_loader::{Resolver, ResolverOptions, Step};
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/kmod-loader/tests/common/reference.rs"]
mod reference;

/// Separates the sections of an input.
const SEP: &[u8] = b"\n--8<--\n";
/// The binary files, in section order.
const FILES: [&str; 4] = [
    "modules.alias.bin",
    "modules.dep.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
];
/// Bounds on the work of one run, so that the checks stay cheap next to the code under test.
const MAX_SEARCH_CHECKS: usize = 256;
const MAX_QUERIES: usize = 48;
const MAX_DIFFERENTIAL_QUERIES: usize = 12;
const MAX_DIFFERENTIAL_PATTERNS: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let sections = split(data);
    let walks: Vec<Option<Walk>> = (0..FILES.len())
        .map(|i| sections.get(i).map(|s| walk_in_memory(s)))
        .collect();
    let queries: Vec<&[u8]> = sections
        .get(4)
        .map(|q| q.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    for (walk, section) in walks.iter().zip(&sections) {
        if let Some(Walk::Ok { .. }) = walk {
            let bin = BinIndex::from_bytes("fuzz.bin".into(), section.to_vec());
            if let Ok(bin) = bin {
                for q in queries.iter().take(MAX_QUERIES) {
                    let _ = bin.search(q);
                }
            }
        }
    }
    load_from_files(&sections, &walks, &queries);
});

/// The sections of an input (at most five; the rest of the input is the last one).
fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < 4 {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                out.push(&rest[..at]);
                rest = &rest[at + SEP.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// The outcome of walking one section in memory.
enum Walk {
    /// Header or trie invalid.
    Invalid,
    /// Every (key, priority, value), in walk order.
    Ok {
        entries: Vec<(Vec<u8>, u32, Vec<u8>)>,
    },
}

fn walk_in_memory(section: &[u8]) -> Walk {
    let bin = match BinIndex::from_bytes("fuzz.bin".into(), section.to_vec()) {
        Ok(bin) => bin,
        Err(err) => {
            std::hint::black_box(err.to_string());
            return Walk::Invalid;
        }
    };
    let mut entries = Vec::new();
    let walked = bin.for_each(|key, priority, value| {
        entries.push((key.to_vec(), priority, value.to_vec()));
        Ok(())
    });
    if let Err(err) = walked {
        std::hint::black_box(err.to_string());
        return Walk::Invalid;
    }
    // A clean walk means a proper tree: `search` reaches every key and returns its first value.
    let mut first: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
    for (key, _, value) in &entries {
        first.entry(key).or_insert(value);
    }
    for (key, value) in first.iter().take(MAX_SEARCH_CHECKS) {
        match bin.search(key) {
            Ok(found) => assert_eq!(
                found,
                Some(*value),
                "search({:?}) disagrees with the walk",
                String::from_utf8_lossy(key)
            ),
            Err(err) => panic!(
                "search({:?}) fails on an index that walks cleanly: {err}",
                String::from_utf8_lossy(key)
            ),
        }
    }
    Walk::Ok { entries }
}

/// A module directory private to this process, with empty text fallbacks.
fn module_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = match std::env::var_os("DEVMGR_FUZZ_TMP") {
            Some(dir) => PathBuf::from(dir),
            None if Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
            None => std::env::temp_dir(),
        };
        // libFuzzer ends with exit(), so directories of earlier processes are left behind:
        // remove those whose process is gone.
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let pid = name
                    .to_str()
                    .and_then(|n| n.strip_prefix("devmgr-fuzz-index-"));
                if let Some(pid) = pid
                    && pid.bytes().all(|b| b.is_ascii_digit())
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("devmgr-fuzz-index-{}", std::process::id()));
        if let Err(err) = std::fs::create_dir_all(&dir) {
            panic!("cannot create {}: {err}", dir.display());
        }
        for text in ["modules.alias", "modules.dep"] {
            if let Err(err) = std::fs::write(dir.join(text), b"") {
                panic!("cannot write {}: {err}", dir.join(text).display());
            }
        }
        dir
    })
}

fn load_from_files(sections: &[&[u8]], walks: &[Option<Walk>], queries: &[&[u8]]) {
    let dir = module_dir();
    for (i, name) in FILES.iter().enumerate() {
        let path = dir.join(name);
        let written = match sections.get(i) {
            Some(bytes) => std::fs::write(&path, bytes),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(err) = written {
            panic!("cannot prepare {}: {err}", path.display());
        }
    }
    let options = ResolverOptions {
        module_dir: dir.to_owned(),
        config_dirs: Vec::new(),
        cmdline: None,
    };
    let resolver = match Resolver::open(options) {
        Ok(r) => r,
        Err(err) => panic!("opening cannot fail with empty text fallbacks present: {err}"),
    };
    let index = resolver.index();
    let forms = index.forms();

    // The file path agrees with the in-memory walk.
    let utf8_values = |w: &Option<Walk>| match w {
        Some(Walk::Ok { entries }) => entries
            .iter()
            .all(|(_, _, v)| std::str::from_utf8(v).is_ok()),
        _ => false,
    };
    let clean = |w: &Option<Walk>| matches!(w, Some(Walk::Ok { .. }));
    let binary = |f: Form| f == Form::Binary;
    assert_eq!(
        binary(forms.alias),
        utf8_values(&walks[0]),
        "alias form {forms:?}"
    );
    assert_eq!(binary(forms.dep), clean(&walks[1]), "dep form {forms:?}");
    assert_eq!(
        binary(forms.builtin),
        clean(&walks[2]),
        "builtin form {forms:?}"
    );
    assert_eq!(
        binary(forms.builtin_alias),
        utf8_values(&walks[3]),
        "builtin alias form {forms:?}"
    );

    // The entries of the alias indexes the lookups read (taken from the walk, so that the
    // checks do not trust the index); none for a text fallback, which is empty.
    let patterns = alias_entries(&walks[0], binary(forms.alias));
    let builtin_patterns = alias_entries(&walks[3], binary(forms.builtin_alias));
    // libkmod's rule: a key without wildcards is an exact key; one with wildcards counts if
    // the part from its first wildcard on can match something.
    let countable = patterns.iter().filter(|(k, _, _)| reference::can_match(k));
    assert_eq!(index.alias_count(), countable.count(), "alias count");

    // Queries: given ones, examples of the patterns, module names, dependency keys.
    let mut all: Vec<String> = Vec::new();
    let mut push = |q: &[u8]| {
        if all.len() < MAX_QUERIES
            && let Ok(s) = std::str::from_utf8(q)
            && !all.iter().any(|a| a == s)
        {
            all.push(s.to_owned());
        }
    };
    queries.iter().for_each(|q| push(q));
    for (p, _, m) in patterns.iter().take(16) {
        if let Some(example) = example_for(p) {
            push(&example);
        }
        push(m.as_bytes());
    }
    if let Some(Walk::Ok { entries }) = &walks[1] {
        entries.iter().take(8).for_each(|(k, _, _)| push(k));
    }
    // The first value of each key of a binary `modules.dep`.
    let mut dep_lines: BTreeMap<&[u8], &[u8]> = BTreeMap::new();
    if let Some(Walk::Ok { entries }) = &walks[1]
        && binary(forms.dep)
    {
        for (key, _, value) in entries {
            dep_lines.entry(key).or_insert(value);
        }
    }

    for (n, q) in all.iter().enumerate() {
        // Checked whole when opened, so a lookup in place cannot fail.
        let found = match index.match_aliases(q) {
            Ok(found) => found,
            Err(err) => panic!("match_aliases({q:?}) failed on a checked file: {err}"),
        };
        let builtin = match index.match_builtin_aliases(q) {
            Ok(found) => found,
            Err(err) => panic!("match_builtin_aliases({q:?}) failed on a checked file: {err}"),
        };
        let unique: BTreeSet<&str> = found.iter().map(String::as_str).collect();
        assert_eq!(
            unique.len(),
            found.len(),
            "match_aliases({q:?}) repeats a module"
        );
        if n < MAX_DIFFERENTIAL_QUERIES
            && patterns.len() + builtin_patterns.len() <= MAX_DIFFERENTIAL_PATTERNS
            && !q.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
        {
            assert_eq!(
                found,
                scan(&patterns, q.as_bytes()),
                "match_aliases({q:?}) differs from a scan"
            );
            assert_eq!(
                builtin,
                scan(&builtin_patterns, q.as_bytes()),
                "match_builtin_aliases({q:?}) differs from a scan"
            );
        }
        // A dependency entry for exactly the walked keys (a line may still be refused).
        match index.dep_entry(q) {
            Ok(Some(entry)) => {
                assert!(
                    dep_lines.contains_key(q.as_bytes()),
                    "dep_entry({q:?}) found"
                );
                assert_inside(dir, &entry.path);
                entry.deps.iter().for_each(|(_, p)| assert_inside(dir, p));
            }
            Ok(None) => assert!(
                !dep_lines.contains_key(q.as_bytes()),
                "dep_entry({q:?}) not found"
            ),
            Err(err) => {
                assert!(
                    dep_lines.contains_key(q.as_bytes()),
                    "dep_entry({q:?}): {err}"
                );
            }
        }
        let _ = index.is_builtin(q);
        let _ = resolver.lookup(q);
        match resolver.plan(q) {
            Ok(plan) => {
                let mut seen = HashSet::new();
                for step in &plan.steps {
                    assert!(seen.insert(step.module().to_owned()), "{q:?}: module twice");
                    if let Step::Insert { path, .. } = step {
                        assert_inside(dir, path);
                    }
                }
                std::hint::black_box(plan.show_depends());
            }
            Err(err) => {
                std::hint::black_box(err.to_string());
            }
        }
    }
}

/// The (pattern, priority, module) entries of a walked alias index read in its binary form.
fn alias_entries(walk: &Option<Walk>, binary: bool) -> Vec<(&[u8], u32, &str)> {
    match walk {
        Some(Walk::Ok { entries }) if binary => entries
            .iter()
            .filter_map(|(k, p, v)| Some((k.as_slice(), *p, std::str::from_utf8(v).ok()?)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The modules of the walked entries (in walk order: keys in byte order, the values of one
/// key in file order) whose pattern matches `query` by libkmod's rule, in libkmod's order: by
/// priority, and among equal priorities the one its search discovers last first; each module
/// once.
fn scan(entries: &[(&[u8], u32, &str)], query: &[u8]) -> Vec<String> {
    let mut found: Vec<&(&[u8], u32, &str)> = entries
        .iter()
        .filter(|(p, _, _)| reference::matches(p, query))
        .collect();
    found.sort_by(|a, b| reference::discovery_order(a.0, b.0));
    let mut found: Vec<(usize, &(&[u8], u32, &str))> = found.into_iter().enumerate().collect();
    found.sort_by_key(|(n, (_, priority, _))| (*priority, Reverse(*n)));
    let mut out: Vec<String> = Vec::new();
    for (_, (_, _, module)) in found {
        if !out.iter().any(|m| m == module) {
            out.push((*module).to_owned());
        }
    }
    out
}

/// A module path from the index stays inside the module directory.
fn assert_inside(dir: &Path, path: &Path) {
    let rel = match path.strip_prefix(dir) {
        Ok(rel) => rel,
        Err(_) => panic!("{} is outside {}", path.display(), dir.display()),
    };
    assert!(
        rel.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)),
        "{} escapes {}",
        path.display(),
        dir.display()
    );
}
