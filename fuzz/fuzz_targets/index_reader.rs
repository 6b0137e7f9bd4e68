//! Fuzzes kmod-loader's reader of libkmod's binary index (`modules.*.bin`) and everything that
//! consumes it: the alias matcher, `modules.dep` lines, the resolver's lookups and plans.
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
//! 2. writes the sections into a module directory (under /dev/shm when available) and loads
//!    it with `Resolver::load`, the path devmgr uses (`BinFile`'s windowed walks,
//!    `BinIndex::open`, validation, text fallbacks — the text files are present and empty, so
//!    a corrupt `.bin` falls back to an empty index rather than failing the whole load);
//! 3. checks that the file path agrees with the in-memory walk (a `.bin` is used iff it walks
//!    cleanly, and every pattern the matcher accepts is counted), that `match_aliases` finds
//!    exactly the modules whose walked patterns a plain fnmatch accepts, and that plans list
//!    each module once with every path inside the module directory;
//! 4. opens the same directory with `Resolver::open` (lookups in place, what the daemon uses:
//!    `BinFile::search_wild` and `search` on the files, libkmod's own search) and checks that
//!    it chose the same forms, that no lookup fails, and that it answers every lookup,
//!    dependency entry and plan exactly as the compiled index does — where the two are meant
//!    to agree: queries without wildcard bytes (with them, libkmod's answer depends on where
//!    the trie's edges fall, which the compiled matcher does not model) and alias files
//!    whose every pattern the matcher accepts (in place has no pattern limits).
//!
//! Nothing may panic, hang or allocate without bound.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use kmod_loader::AliasMatcherBuilder;
use kmod_loader::binindex::BinIndex;
use kmod_loader::fnmatch::fnmatch;
use kmod_loader::index::Form;
use kmod_loader::matcher::example_for;
use kmod_loader::{Resolver, ResolverOptions, Step};
use libfuzzer_sys::fuzz_target;

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
    let resolver = match Resolver::load(options.clone()) {
        Ok(r) => r,
        Err(err) => panic!("loading cannot fail with empty text fallbacks present: {err}"),
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

    // The patterns the index compiled: the walked entries of a binary alias index that the
    // matcher accepts (taken from the walk, so that the check does not trust the index).
    let patterns: Vec<(&[u8], &str)> = match &walks[0] {
        Some(Walk::Ok { entries }) if binary(forms.alias) => entries
            .iter()
            .filter(|(k, _, _)| AliasMatcherBuilder::new().insert(k, 0))
            .filter_map(|(k, _, v)| Some((k.as_slice(), std::str::from_utf8(v).ok()?)))
            .collect(),
        _ => Vec::new(),
    };
    assert_eq!(index.alias_count(), patterns.len(), "alias count");

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
    for (p, m) in patterns.iter().take(16) {
        if let Some(example) = example_for(p) {
            push(&example);
        }
        push(m.as_bytes());
    }
    if let Some(Walk::Ok { entries }) = &walks[1] {
        entries.iter().take(8).for_each(|(k, _, _)| push(k));
    }

    // The same directory looked up in place.
    let in_place = match Resolver::open(options) {
        Ok(r) => r,
        Err(err) => panic!("opening cannot fail with empty text fallbacks present: {err}"),
    };
    assert_eq!(in_place.index().forms(), forms, "forms in place");
    // Both alias files hold only patterns the compiled matcher accepts.
    let accepted = |w: &Option<Walk>| match w {
        Some(Walk::Ok { entries }) => entries
            .iter()
            .all(|(k, _, _)| AliasMatcherBuilder::new().insert(k, 0)),
        _ => true,
    };
    let comparable = accepted(&walks[0]) && accepted(&walks[3]);
    assert_eq!(
        in_place.index().alias_count(),
        patterns.len(),
        "alias count in place"
    );

    for (n, q) in all.iter().enumerate() {
        let found = match index.match_aliases(q) {
            Ok(found) => found,
            Err(err) => panic!("a compiled lookup cannot fail: {err}"),
        };
        // Checked whole when opened, so a lookup in place cannot fail either.
        let there = match in_place.index().match_aliases(q) {
            Ok(there) => there,
            Err(err) => panic!("match_aliases({q:?}) in place failed on a checked file: {err}"),
        };
        let builtin = (
            index.match_builtin_aliases(q),
            in_place.index().match_builtin_aliases(q),
        );
        let (Ok(builtin), Ok(builtin_there)) = builtin else {
            panic!("match_builtin_aliases({q:?}) failed: {builtin:?}");
        };
        assert_eq!(
            format!("{:?}", index.dep_entry(q)),
            format!("{:?}", in_place.index().dep_entry(q)),
            "dep_entry({q:?}) in place"
        );
        if comparable && !q.bytes().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            assert_eq!(there, found, "match_aliases({q:?}) in place");
            assert_eq!(
                builtin_there, builtin,
                "match_builtin_aliases({q:?}) in place"
            );
            assert_eq!(
                format!("{:?}", resolver.plan(q).map(|p| p.show_depends())),
                format!("{:?}", in_place.plan(q).map(|p| p.show_depends())),
                "plan({q:?}) in place"
            );
        }
        let unique: BTreeSet<&str> = found.iter().map(String::as_str).collect();
        assert_eq!(
            unique.len(),
            found.len(),
            "match_aliases({q:?}) repeats a module"
        );
        if n < MAX_DIFFERENTIAL_QUERIES && patterns.len() <= MAX_DIFFERENTIAL_PATTERNS {
            let want: BTreeSet<&str> = patterns
                .iter()
                .filter(|(p, _)| reference_match(p, q.as_bytes()))
                .map(|(_, m)| *m)
                .collect();
            assert_eq!(unique, want, "match_aliases({q:?}) differs from fnmatch");
        }
        if let Ok(Some(entry)) = index.dep_entry(q) {
            assert_inside(dir, &entry.path);
            entry.deps.iter().for_each(|(_, p)| assert_inside(dir, p));
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

/// libkmod's rule: the bytes before the first wildcard are a literal prefix, the rest is
/// matched with fnmatch; a pattern equal to the query also matches.
fn reference_match(pattern: &[u8], query: &[u8]) -> bool {
    if pattern == query {
        return true;
    }
    let split = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'['))
        .unwrap_or(pattern.len());
    query.len() >= split
        && query[..split] == pattern[..split]
        && fnmatch(&pattern[split..], &query[split..])
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
