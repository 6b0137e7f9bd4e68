//! Property tests of the index lookups: the byte-wise fnmatch against `glob::Pattern` (the
//! reference implementation of fnmatch semantics with flags 0), and lookups in a binary index
//! (in place: `BinFile::search_wild`, `ModuleIndex::match_aliases`) and in the text fallback
//! (`modules.builtin.modinfo`) against a scan of every pattern by libkmod's rule, ordered as
//! libkmod orders them. `scripts/test` runs this file alone in release with many more cases
//! (`KMOD_PROPTEST_CASES`).

#[path = "common/mod.rs"]
mod common;
#[path = "common/reference.rs"]
mod reference;

use std::cmp::Reverse;

use kmod_loader::binindex::BinFile;
use kmod_loader::fnmatch::fnmatch;
use kmod_loader::index::Form;
use kmod_loader::{ModuleIndex, normalize_alias};
use proptest::prelude::*;

/// Pattern pieces over a small alphabet so that matches are frequent. No backslashes (glob
/// has no escapes) and no `[:class:]` (glob does not know classes).
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[abc:,_]{1,3}",
        2 => Just("*".to_string()),
        2 => Just("?".to_string()),
        1 => "[abc]{1,2}".prop_map(|s| format!("[{s}]")),
        1 => "[abc]{1,2}".prop_map(|s| format!("[!{s}]")),
        1 => Just("[a-b]".to_string()),
        1 => Just("[^a]".to_string()),
        1 => Just("[b-c,]".to_string()),
    ]
}

fn pattern() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..7).prop_map(|v| v.concat())
}

/// Alias patterns: [`piece`]s and backslashes (escaping a byte, or left alone at the end, where
/// after a wildcard they make the pattern match nothing).
fn alias_pattern() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        8 => piece(),
        1 => Just("\\".to_string()),
        1 => "[ab*?\\[]".prop_map(|c| format!("\\{c}")),
    ];
    prop::collection::vec(piece, 0..7).prop_map(|v| v.concat())
}

fn text() -> impl Strategy<Value = String> {
    "[abc:,_/.]{0,12}"
}

/// Queries: no wildcard bytes (with them, libkmod's answer depends on where the trie's edges
/// fall), but backslashes, which a pattern's literal prefix may hold.
fn query() -> impl Strategy<Value = String> {
    "[abc:,_/.\\\\]{0,12}"
}

/// Module names of the generated aliases.
const MODULES: [&str; 5] = ["m0", "m1", "m2", "m3", "m4"];

fn glob_matches(pattern: &str, text: &str) -> bool {
    // glob spells negation `[!..]` only (`[^..]` is the same set for fnmatch), and gives
    // `**` a meaning of its own (for fnmatch it is the same as `*`).
    let mut p = pattern.replace("[^", "[!");
    while p.contains("**") {
        p = p.replace("**", "*");
    }
    let p = glob::Pattern::new(&p).expect("valid glob pattern");
    p.matches_with(
        text,
        glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: false,
            require_literal_leading_dot: false,
        },
    )
}

/// The (priority, module) of every entry whose pattern matches `query`, in libkmod's order:
/// by priority, and among equal priorities the one discovered last first. `entries` are in the
/// order an index file holds them (by key, the values of one key in file order).
fn libkmod_order(entries: &[(String, u32, &str)], query: &str) -> Vec<(u32, Vec<u8>)> {
    let mut found: Vec<&(String, u32, &str)> = entries
        .iter()
        .filter(|(p, _, _)| reference::matches(p.as_bytes(), query.as_bytes()))
        .collect();
    found.sort_by(|a, b| reference::discovery_order(a.0.as_bytes(), b.0.as_bytes()));
    let mut found: Vec<(usize, (u32, Vec<u8>))> = found
        .into_iter()
        .map(|(_, priority, module)| (*priority, module.as_bytes().to_vec()))
        .enumerate()
        .collect();
    found.sort_by_key(|(n, (priority, _))| (*priority, Reverse(*n)));
    found.into_iter().map(|(_, v)| v).collect()
}

/// The module names of a lookup's values, each at its first occurrence.
fn modules(values: &[(u32, Vec<u8>)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, v) in values {
        let name = String::from_utf8(v.clone()).expect("module name");
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// `(pattern, priority, module)` as [`common::encode_index`] takes them.
fn encoded(entries: &[(String, u32, &str)]) -> Vec<u8> {
    let borrowed: Vec<(&str, u32, &str)> = entries
        .iter()
        .map(|(p, priority, m)| (p.as_str(), *priority, *m))
        .collect();
    common::encode_index(&borrowed)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("KMOD_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(2048),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fnmatch_agrees_with_glob(p in pattern(), t in text()) {
        prop_assert_eq!(fnmatch(p.as_bytes(), t.as_bytes()), glob_matches(&p, &t), "pattern {:?} text {:?}", p, t);
    }

    #[test]
    fn lookups_equal_a_scan_of_every_pattern_in_libkmods_order(
        aliases in prop::collection::vec((alias_pattern(), 0u32..3, 0..MODULES.len()), 1..40),
        queries in prop::collection::vec(query(), 1..20),
    ) {
        // In index file order: by key, the values of one key by (priority, value), as
        // `encode_index` writes them.
        let mut aliases: Vec<(String, u32, &str)> =
            aliases.into_iter().map(|(p, priority, m)| (p, priority, MODULES[m])).collect();
        aliases.sort();
        // Builtin aliases: priority 0, so that libkmod's discovery order decides; one module
        // per pattern, and only patterns that `modules.builtin.modinfo` keeps as written.
        let mut builtin: Vec<(String, u32, &str)> = Vec::new();
        for (p, _, m) in &aliases {
            if normalize_alias(p).is_ok_and(|n| n == *p)
                && builtin.last().is_none_or(|b| b.0 != *p)
            {
                builtin.push((p.clone(), 0, m));
            }
        }
        // One directory for every case (cases run one after the other), files rewritten; in
        // memory when /dev/shm is there (a case writes and reads a few small files).
        static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
        let dir = DIR.get_or_init(|| {
            let shm = std::path::Path::new("/dev/shm");
            if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }.expect("tempdir")
        });
        let write = |name: &str, data: &[u8]| std::fs::write(dir.path().join(name), data).expect("write");
        write("modules.dep", b"");
        write("modules.alias.bin", &encoded(&aliases));
        let _ = std::fs::remove_file(dir.path().join("modules.builtin.alias.bin"));
        if !builtin.is_empty() {
            write("modules.builtin.alias.bin", &encoded(&builtin));
        }
        let modinfo: String = builtin.iter().map(|(p, _, m)| format!("{m}.alias={p}\0")).collect();
        write("modules.builtin.modinfo", modinfo.as_bytes());

        let index = ModuleIndex::open(dir.path()).expect("open");
        prop_assert_eq!(index.forms().alias, Form::Binary);
        // (An index without entries is not a valid file as `encode_index` writes it: none.)
        let binary = if builtin.is_empty() { Form::Text } else { Form::Binary };
        prop_assert_eq!(index.forms().builtin_alias, binary);
        // libkmod's rule: a pattern without wildcards is an exact key, whatever it holds.
        let countable = aliases.iter().filter(|(p, _, _)| reference::can_match(p.as_bytes())).count();
        prop_assert_eq!(index.alias_count(), countable);
        let mut file = BinFile::open(&dir.path().join("modules.alias.bin")).expect("open file");
        let builtin_wanted: Vec<Vec<String>> =
            queries.iter().map(|q| modules(&libkmod_order(&builtin, q))).collect();
        for (q, builtin_want) in queries.iter().zip(&builtin_wanted) {
            let want = libkmod_order(&aliases, q);
            let got = file.search_wild(q.as_bytes()).expect("search");
            prop_assert_eq!(&got, &want, "query {:?} aliases {:?}", q, aliases);
            prop_assert_eq!(index.match_aliases(q).expect("lookup"), modules(&want), "query {:?}", q);
            let got = index.match_builtin_aliases(q).expect("lookup");
            prop_assert_eq!(&got, builtin_want, "builtin query {:?} aliases {:?}", q, builtin);
        }

        // The text fallback of the builtin aliases: scanned with fnmatch, ordered the same.
        let _ = std::fs::remove_file(dir.path().join("modules.builtin.alias.bin"));
        let text = ModuleIndex::open(dir.path()).expect("open");
        prop_assert_eq!(text.forms().builtin_alias, Form::Text);
        for (q, want) in queries.iter().zip(&builtin_wanted) {
            let got = text.match_builtin_aliases(q).expect("lookup");
            prop_assert_eq!(&got, want, "text builtin query {:?} aliases {:?}", q, builtin);
        }
    }
}

#[test]
fn a_double_star_is_one_star() {
    // Once found by `fnmatch_agrees_with_glob` (glob reads `**` differently).
    assert!(!fnmatch(b"**_", b""));
    assert!(fnmatch(b"**_", b"_"));
    assert!(fnmatch(b"a**", b"a"));
}
