//! libkmod's wildcard lookup, written out plainly as the reference the property tests and the
//! `index_reader` fuzz target check the index against (independent of the crate's own search:
//! only `fnmatch` is shared). Included by path from both.

use std::cmp::Ordering;

use kmod_loader::fnmatch::{compile, fnmatch};

/// Where the first wildcard byte (`*`, `?`, `[`) of a pattern is.
pub fn first_wild(pattern: &[u8]) -> Option<usize> {
    pattern.iter().position(|b| matches!(b, b'*' | b'?' | b'['))
}

/// libkmod's rule (`index_searchwild`): the bytes before the first wildcard are compared
/// literally, the rest with fnmatch; a pattern without wildcards is an exact key.
pub fn matches(pattern: &[u8], query: &[u8]) -> bool {
    match first_wild(pattern) {
        None => pattern == query,
        Some(w) => {
            query.len() >= w && pattern[..w] == query[..w] && fnmatch(&pattern[w..], &query[w..])
        }
    }
}

/// Whether some query [`matches`] the pattern: a key without wildcards always (itself), one
/// with wildcards unless the part from its first wildcard on ends in a lone backslash.
pub fn can_match(pattern: &[u8]) -> bool {
    first_wild(pattern).is_none_or(|w| compile(&pattern[w..]).is_some())
}

/// The order in which libkmod's search discovers two matching patterns: by the position of the
/// first wildcard (it enters the `*`, `?` and `[` children of each node along the query), then
/// in post-order over the trie (a key after the keys it is a proper prefix of, others in byte
/// order); exact keys last.
pub fn discovery_order(a: &[u8], b: &[u8]) -> Ordering {
    match (first_wild(a), first_wild(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        _ if a.len() != b.len() && b.starts_with(a) => Ordering::Greater,
        _ if a.len() != b.len() && a.starts_with(b) => Ordering::Less,
        _ => a.cmp(b),
    }
}
