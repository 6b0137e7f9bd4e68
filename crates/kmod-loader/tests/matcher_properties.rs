//! Property tests of the matcher: the byte-wise fnmatch against `glob::Pattern` (the
//! reference implementation of fnmatch semantics with flags 0), and the alias trie against
//! the plain fnmatch applied to every pattern.

use kmod_loader::AliasMatcherBuilder;
use kmod_loader::fnmatch::fnmatch;
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

fn text() -> impl Strategy<Value = String> {
    "[abc:,_/.]{0,12}"
}

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
    fn the_trie_finds_exactly_the_patterns_fnmatch_accepts(
        patterns in prop::collection::vec(pattern(), 1..40),
        texts in prop::collection::vec(text(), 1..20),
    ) {
        let mut b = AliasMatcherBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            b.insert(p.as_bytes(), i as u32);
        }
        let m = b.build();
        for t in &texts {
            let mut got = m.find(t.as_bytes());
            got.sort_unstable();
            got.dedup();
            let want: Vec<u32> = patterns
                .iter()
                .enumerate()
                .filter(|(_, p)| fnmatch(p.as_bytes(), t.as_bytes()) || p.as_bytes() == t.as_bytes())
                .map(|(i, _)| i as u32)
                .collect();
            prop_assert_eq!(got, want, "text {:?} patterns {:?}", t, patterns);
        }
    }
}
