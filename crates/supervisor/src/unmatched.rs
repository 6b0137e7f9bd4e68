//! Restart-policy DNs that name no node of the running tree (the rule is documented on
//! [`RestartPolicy`](crate::RestartPolicy)).

use std::fmt;

use crate::policy::Entry;
use crate::state::NodeState;
use crate::tree::Tree;

/// An override or attach point of the restart policy that names no node: no node has the DN,
/// and the nearest existing node above it has signalled Healthy, so it cannot start the
/// missing node before it restarts (see [`RestartPolicy`](crate::RestartPolicy)). Returned by
/// [`Supervisor::unmatched_overrides`](crate::Supervisor::unmatched_overrides); its `Display`
/// is the warning the supervisor logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnmatchedOverride {
    /// The DN named, absolute (for a subtree policy: the attach point joined with the key).
    pub dn: String,
    /// The key as written in its policy: an absolute DN in the tree's policy, a relative one in
    /// a subtree policy.
    pub key: String,
    /// The absolute DN the policy holding the key is attached at; `None` for the tree's own
    /// policy.
    pub attached_at: Option<String>,
    /// Whether the key is an attach point (of a subtree policy) rather than an override.
    pub attachment: bool,
    /// The existing DN closest to `dn` (or to `key`, for a key of a subtree policy), when one
    /// is close enough to be a likely intended node.
    pub closest: Option<String>,
}

impl fmt::Display for UnmatchedOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            dn,
            key,
            attached_at,
            attachment,
            closest,
        } = self;
        match (attachment, attached_at) {
            (false, None) => write!(f, "restart policy override {key:?} names no node")?,
            (false, Some(at)) => write!(
                f,
                "restart policy override {key:?} (attached at {at}) names no node ({dn})"
            )?,
            (true, None) => write!(f, "restart policy attached at {dn} names no node")?,
            (true, Some(at)) => write!(
                f,
                "restart policy attached at {key:?} (in the policy attached at {at}) names no \
                 node ({dn})"
            )?,
        }
        if let Some(c) = closest {
            write!(f, "; closest existing DN: {c}")?;
        }
        Ok(())
    }
}

/// The unmatched entries of `entries` in the current tree, with their index in `entries`,
/// sorted by DN. Entries inside an attached policy whose attach point is not a node are left
/// out (the attach point is reported instead, when it is unmatched).
pub(crate) fn find(entries: &[Entry], tree: &Tree) -> Vec<(usize, UnmatchedOverride)> {
    let mut dns: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if tree.find(&e.dn).is_some() {
            continue;
        }
        if let Some(at) = &e.attached_at
            && tree.find(at).is_none()
        {
            continue;
        }
        let Some(parent) = nearest_existing_ancestor(tree, &e.dn) else {
            continue;
        };
        let parent_settled = tree
            .find(parent)
            .and_then(|id| tree.node(id))
            .is_some_and(|n| matches!(n.state, NodeState::Healthy | NodeState::Done));
        if !parent_settled {
            continue;
        }
        let dns = dns.get_or_insert_with(|| {
            let mut v: Vec<String> = tree.reachable().into_iter().map(|id| tree.dn(id)).collect();
            v.sort();
            v
        });
        // The part of the DN below its nearest existing node: what may be mistyped.
        let missing = &e.dn[parent.len() + 1..];
        let key = e.attached_at.is_some().then_some(e.key.as_str());
        out.push((
            i,
            UnmatchedOverride {
                dn: e.dn.clone(),
                key: e.key.clone(),
                attached_at: e.attached_at.clone(),
                attachment: e.attachment,
                closest: closest(&e.dn, missing, key, dns),
            },
        ));
    }
    out.sort_by(|a, b| a.1.dn.cmp(&b.1.dn).then(a.0.cmp(&b.0)));
    out
}

/// The longest proper prefix of `dn` (by whole names) that names a node.
fn nearest_existing_ancestor<'a>(tree: &Tree, dn: &'a str) -> Option<&'a str> {
    let mut prefix = dn;
    while let Some(i) = prefix.rfind('.') {
        prefix = &prefix[..i];
        if tree.find(prefix).is_some() {
            return Some(prefix);
        }
    }
    None
}

/// The existing DN closest to `dn` by edit distance, within a third of the length of the part
/// that is `missing` (at least 2 edits); for a key of a subtree policy also the DN closest to
/// the key itself (an absolute DN written in a relative table). Ancestors of `dn` are not
/// candidates. Ties go to the smaller DN.
fn closest(dn: &str, missing: &str, key: Option<&str>, dns: &[String]) -> Option<String> {
    let budget = |s: &str| (s.chars().count() / 3).max(2);
    let is_ancestor =
        |c: &str| dn.len() > c.len() && dn.starts_with(c) && dn[c.len()..].starts_with('.');
    let mut best: Option<(usize, &String)> = None;
    for c in dns.iter().filter(|c| !is_ancestor(c)) {
        let mut d = within(dn, c, budget(missing));
        if let Some(k) = key {
            d = match (d, within(k, c, budget(k))) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        if let Some(d) = d
            && best.is_none_or(|(bd, _)| d < bd)
        {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.clone())
}

/// The edit distance between `a` and `b` if it is at most `max`.
fn within(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= max).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_is_bounded() {
        assert_eq!(within("listner", "listener", 2), Some(1));
        assert_eq!(within("kitten", "sitting", 3), Some(3));
        assert_eq!(within("kitten", "sitting", 2), None);
        assert_eq!(within("", "abc", 3), Some(3));
        assert_eq!(within("same", "same", 0), Some(0));
    }

    #[test]
    fn the_closest_dn_skips_ancestors_and_far_names() {
        let dns: Vec<String> = ["root", "root.a", "root.a.listener", "root.a.loader"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            closest("root.a.listner", "listner", None, &dns).as_deref(),
            Some("root.a.listener")
        );
        assert_eq!(closest("root.a.x", "x", None, &dns), None, "not root.a");
        assert_eq!(closest("root.a.zzz", "zzz", None, &dns), None);
        assert_eq!(
            closest(
                "root.a.root.a.loader",
                "root.a.loader",
                Some("root.a.loader"),
                &dns
            )
            .as_deref(),
            Some("root.a.loader")
        );
    }
}
