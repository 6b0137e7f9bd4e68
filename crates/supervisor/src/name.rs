//! Runnable names and distinguished names (DNs); see `docs/supervisor.md#names-and-dns`.

/// Checks a runnable (or sub-logger) name.
///
/// Go accepts a name when the *unanchored* regex `[a-z90-9_]{1,64}` finds a match in it, i.e.
/// when the name contains at least one character of `[a-z0-9_]` (so `oneSibling`, `Foo`, `a-b`
/// and names longer than 64 characters are accepted). Deviation: a name containing `.` is
/// rejected, because `.` separates DN components and Go mis-resolves such nodes.
pub fn is_valid_name(name: &str) -> bool {
    !name.contains('.')
        && name
            .chars()
            .any(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The DN of a child: the parent's DN, `.`, the child's name.
pub(crate) fn child_dn(parent: &str, name: &str) -> String {
    format!("{parent}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_uppercase_and_punctuation_only_names_are_rejected() {
        for bad in ["", "ABC", "-", "..", "A-B"] {
            assert!(!is_valid_name(bad), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn unanchored_go_names_are_accepted() {
        let long = "x".repeat(100);
        for good in ["oneSibling", "Foo", "a-b", "a", "_", "9", long.as_str()] {
            assert!(is_valid_name(good), "{good:?} should be accepted");
        }
    }

    #[test]
    fn names_containing_a_dot_are_rejected_as_a_deviation() {
        assert!(!is_valid_name("a.b"));
        assert!(!is_valid_name("foo."));
    }

    #[test]
    fn child_dn_joins_with_a_dot() {
        assert_eq!(child_dn("root.a", "b"), "root.a.b");
    }
}
