//! The alias matcher: every alias pattern compiled into one trie of pattern tokens.
//!
//! # Design
//!
//! A pattern is split like libkmod's `index_searchwild` splits it: the bytes up to the first
//! `*`, `?` or `[` are a literal prefix (compared byte for byte); the rest is compiled with
//! [`crate::fnmatch::compile`] into tokens (`*`, `?`, byte classes, literals). All patterns go
//! into a single trie whose edges are
//!
//! * **literal runs** (Patricia-compressed: one edge per run of literal bytes, children found
//!   by their first byte with a binary search),
//! * at most one **`*`** child, at most one **`?`** child, and one child per distinct **byte
//!   class** (identical brackets from different patterns share one node).
//!
//! A lookup walks the query through the trie once, following the literal edge that matches,
//! every `?`/class edge that accepts the next byte, and, for a `*` node, every split point of
//! the remaining query. Shared prefixes (`pci:v00008086d*`, `of:N*T*C`) are therefore examined
//! once, not once per pattern, and no pattern text is rebuilt or re-parsed at lookup time
//! (libkmod rebuilds the pattern suffix and calls `fnmatch` at every value-bearing node of
//! every wildcard subtree it enters).
//!
//! Worst case: a `*` node is entered at most once per query position (a per-query memo keeps
//! the lowest start position already explored for each `*` node), so a lookup costs at most
//! O(trie nodes × query length) even for adversarial patterns such as `*a*a*a*a*b`; the
//! recursion depth is bounded by [`MAX_WILDCARDS`] per pattern (real aliases have at most 18).
//!
//! A pattern equal byte for byte to the query also matches (libkmod finds such a key by its
//! literal trie walk even when `fnmatch` would not, e.g. `[ab]` against the query `[ab]`).

use std::cell::RefCell;

use crate::fasthash::FnvMap;
use crate::fnmatch::{ByteSet, Token, compile, compile_into};

const NONE: u32 = u32::MAX;

/// Most wildcard tokens (`*`, `?`, brackets) accepted in one pattern. Lookup recursion depth
/// is bounded by this (real aliases have at most about 15); longer patterns are rejected.
pub const MAX_WILDCARDS: usize = 64;

/// A node of the finished trie; all lists are ranges into shared arrays.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Bytes consumed when entering this node through a literal edge: `labels[start..+len]`.
    label: (u32, u32),
    /// Literal children, sorted by first byte: `edges[start..+len]`.
    lit: (u32, u32),
    star: u32,
    any: u32,
    /// Class children: `class_edges[start..+len]` of (class id, child).
    classes: (u32, u32),
    /// Values: `values[start..+len]`.
    values: (u32, u32),
    /// Memo slot for `*` nodes.
    star_slot: u32,
}

/// A compiled set of alias patterns, each carrying a caller-chosen `u32` value. Built with
/// [`AliasMatcherBuilder`].
#[derive(Debug, Clone)]
pub struct AliasMatcher {
    nodes: Vec<Node>,
    labels: Vec<u8>,
    edges: Vec<(u8, u32)>,
    class_edges: Vec<(u32, u32)>,
    values: Vec<u32>,
    classes: Vec<ByteSet>,
    star_count: u32,
    /// Patterns containing wildcard bytes as (start, len, value) into `wild_bytes`, for the
    /// textual-equality rule (only consulted for queries that contain wildcard bytes).
    wild: Vec<(u32, u32, u32)>,
    wild_bytes: Vec<u8>,
    patterns: usize,
}

/// A node while building: lists are singly linked through arenas so that inserting costs no
/// allocation per node.
#[derive(Debug, Clone, Copy)]
struct BNode {
    label: (u32, u32),
    first_byte: u8,
    first_lit: u32,
    next_sibling: u32,
    star: u32,
    any: u32,
    first_class: u32,
    first_value: u32,
    star_slot: u32,
}

impl BNode {
    fn new(label: (u32, u32), first_byte: u8) -> Self {
        BNode {
            label,
            first_byte,
            first_lit: NONE,
            next_sibling: NONE,
            star: NONE,
            any: NONE,
            first_class: NONE,
            first_value: NONE,
            star_slot: NONE,
        }
    }
}

/// Builds an [`AliasMatcher`].
#[derive(Debug, Clone)]
pub struct AliasMatcherBuilder {
    nodes: Vec<BNode>,
    labels: Vec<u8>,
    /// (class id, child, next)
    class_links: Vec<(u32, u32, u32)>,
    /// (value, next)
    value_links: Vec<(u32, u32)>,
    classes: Vec<ByteSet>,
    class_ids: FnvMap<ByteSet, u32>,
    star_count: u32,
    wild: Vec<(u32, u32, u32)>,
    wild_bytes: Vec<u8>,
    patterns: usize,
    tokens: Vec<Token>,
    run: Vec<u8>,
}

impl Default for AliasMatcherBuilder {
    fn default() -> Self {
        Self::new()
    }
}

thread_local! {
    /// Per-thread lookup memo: (generation, lowest start explored) per `*` node.
    static MEMO: RefCell<(u32, Vec<(u32, u32)>)> = const { RefCell::new((0, Vec::new())) };
}

struct Walk<'m, 'q> {
    m: &'m AliasMatcher,
    q: &'q [u8],
    generation: u32,
    memo: &'m mut Vec<(u32, u32)>,
    out: &'m mut Vec<u32>,
}

impl AliasMatcherBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        AliasMatcherBuilder {
            nodes: vec![BNode::new((0, 0), 0)],
            labels: Vec::new(),
            class_links: Vec::new(),
            value_links: Vec::new(),
            classes: Vec::new(),
            class_ids: FnvMap::default(),
            star_count: 0,
            wild: Vec::new(),
            wild_bytes: Vec::new(),
            patterns: 0,
            tokens: Vec::new(),
            run: Vec::new(),
        }
    }

    /// Adds a pattern (already normalised) with its value. Returns `false`, and adds nothing,
    /// if the pattern can never match (it ends in a lone backslash after its literal prefix)
    /// or has more than [`MAX_WILDCARDS`] wildcard tokens.
    pub fn insert(&mut self, pattern: &[u8], value: u32) -> bool {
        let split = pattern
            .iter()
            .position(|b| matches!(b, b'*' | b'?' | b'['))
            .unwrap_or(pattern.len());
        let (prefix, rest) = pattern.split_at(split);
        let mut tokens = std::mem::take(&mut self.tokens);
        if !compile_into(rest, &mut tokens)
            || tokens
                .iter()
                .filter(|t| !matches!(t, Token::Literal(_)))
                .count()
                > MAX_WILDCARDS
        {
            self.tokens = tokens;
            return false;
        }
        self.patterns += 1;
        if !rest.is_empty() {
            let start = self.wild_bytes.len() as u32;
            self.wild_bytes.extend_from_slice(pattern);
            self.wild.push((start, pattern.len() as u32, value));
        }
        let mut run = std::mem::take(&mut self.run);
        run.clear();
        run.extend_from_slice(prefix);
        let mut at = 0u32;
        for tok in &tokens {
            if let Token::Literal(b) = tok {
                run.push(*b);
                continue;
            }
            at = self.insert_literal(at, &run);
            run.clear();
            at = self.insert_token(at, tok);
        }
        at = self.insert_literal(at, &run);
        let link = self.value_links.len() as u32;
        let node = &mut self.nodes[at as usize];
        self.value_links.push((value, node.first_value));
        node.first_value = link;
        self.tokens = tokens;
        self.run = run;
        true
    }

    fn push_node(&mut self, node: BNode) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    fn insert_token(&mut self, at: u32, tok: &Token) -> u32 {
        match tok {
            Token::Star | Token::Any => {
                let star = *tok == Token::Star;
                let n = &self.nodes[at as usize];
                let existing = if star { n.star } else { n.any };
                if existing != NONE {
                    return existing;
                }
                let mut node = BNode::new((0, 0), 0);
                if star {
                    node.star_slot = self.star_count;
                    self.star_count += 1;
                }
                let child = self.push_node(node);
                let n = &mut self.nodes[at as usize];
                if star {
                    n.star = child;
                } else {
                    n.any = child;
                }
                child
            }
            Token::Class(set) => {
                let id = match self.class_ids.get(set) {
                    Some(&id) => id,
                    None => {
                        let id = self.classes.len() as u32;
                        self.classes.push(*set);
                        self.class_ids.insert(*set, id);
                        id
                    }
                };
                let mut link = self.nodes[at as usize].first_class;
                while link != NONE {
                    let (cid, child, next) = self.class_links[link as usize];
                    if cid == id {
                        return child;
                    }
                    link = next;
                }
                let child = self.push_node(BNode::new((0, 0), 0));
                let l = self.class_links.len() as u32;
                let n = &mut self.nodes[at as usize];
                self.class_links.push((id, child, n.first_class));
                n.first_class = l;
                child
            }
            // Literals are grouped into runs by `insert`.
            Token::Literal(b) => self.insert_literal(at, &[*b]),
        }
    }

    fn label(&self, id: u32) -> &[u8] {
        let (s, l) = self.nodes[id as usize].label;
        &self.labels[s as usize..(s + l) as usize]
    }

    fn insert_literal(&mut self, mut at: u32, mut bytes: &[u8]) -> u32 {
        while let Some(&first) = bytes.first() {
            // Find the child with this first byte, or the place to insert it (sorted list).
            let mut prev = NONE;
            let mut cur = self.nodes[at as usize].first_lit;
            while cur != NONE && self.nodes[cur as usize].first_byte < first {
                prev = cur;
                cur = self.nodes[cur as usize].next_sibling;
            }
            if cur == NONE || self.nodes[cur as usize].first_byte != first {
                let start = self.labels.len() as u32;
                self.labels.extend_from_slice(bytes);
                let mut node = BNode::new((start, bytes.len() as u32), first);
                node.next_sibling = cur;
                let child = self.push_node(node);
                if prev == NONE {
                    self.nodes[at as usize].first_lit = child;
                } else {
                    self.nodes[prev as usize].next_sibling = child;
                }
                return child;
            }
            let child = cur;
            let common = self
                .label(child)
                .iter()
                .zip(bytes)
                .take_while(|(a, b)| a == b)
                .count();
            let (start, len) = self.nodes[child as usize].label;
            if (common as u32) < len {
                // Split: `child` keeps the common head; a new node takes the tail and
                // everything that hung below `child`.
                let old = self.nodes[child as usize];
                let tail_start = start + common as u32;
                let mut tail = old;
                tail.label = (tail_start, len - common as u32);
                tail.first_byte = self.labels[tail_start as usize];
                tail.next_sibling = NONE;
                let tail_id = self.push_node(tail);
                let mut head = BNode::new((start, common as u32), old.first_byte);
                head.next_sibling = old.next_sibling;
                head.first_lit = tail_id;
                self.nodes[child as usize] = head;
            }
            bytes = &bytes[common..];
            at = child;
        }
        at
    }

    /// Freezes the trie into its lookup layout.
    pub fn build(self) -> AliasMatcher {
        let mut m = AliasMatcher {
            nodes: Vec::with_capacity(self.nodes.len()),
            labels: self.labels,
            edges: Vec::with_capacity(self.nodes.len()),
            class_edges: Vec::new(),
            values: Vec::with_capacity(self.value_links.len()),
            classes: self.classes,
            star_count: self.star_count,
            wild: self.wild,
            wild_bytes: self.wild_bytes,
            patterns: self.patterns,
        };
        for n in &self.nodes {
            let lit_start = m.edges.len() as u32;
            let mut c = n.first_lit;
            while c != NONE {
                let child = &self.nodes[c as usize];
                m.edges.push((child.first_byte, c));
                c = child.next_sibling;
            }
            let cls_start = m.class_edges.len() as u32;
            let mut l = n.first_class;
            while l != NONE {
                let (id, child, next) = self.class_links[l as usize];
                m.class_edges.push((id, child));
                l = next;
            }
            let val_start = m.values.len() as u32;
            let mut v = n.first_value;
            while v != NONE {
                let (value, next) = self.value_links[v as usize];
                m.values.push(value);
                v = next;
            }
            m.nodes.push(Node {
                label: n.label,
                lit: (lit_start, m.edges.len() as u32 - lit_start),
                star: n.star,
                any: n.any,
                classes: (cls_start, m.class_edges.len() as u32 - cls_start),
                values: (val_start, m.values.len() as u32 - val_start),
                star_slot: n.star_slot,
            });
        }
        m
    }
}

impl Default for AliasMatcher {
    fn default() -> Self {
        AliasMatcherBuilder::new().build()
    }
}

impl AliasMatcher {
    /// Number of patterns inserted.
    pub fn len(&self) -> usize {
        self.patterns
    }

    /// Whether no pattern was inserted.
    pub fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// Number of trie nodes (for diagnostics and benchmarks).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Appends the values of every pattern matching `query` to `out` (in trie order, possibly
    /// with repeats when several patterns carry the same value).
    pub fn find_into(&self, query: &[u8], out: &mut Vec<u32>) {
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            let (generation, slots) = &mut *memo;
            *generation = generation.wrapping_add(1);
            if *generation == 0 {
                slots.iter_mut().for_each(|s| *s = (0, 0));
                *generation = 1;
            }
            if slots.len() < self.star_count as usize {
                slots.resize(self.star_count as usize, (0, 0));
            }
            let mut walk = Walk {
                m: self,
                q: query,
                generation: *generation,
                memo: slots,
                out,
            };
            walk.node(0, 0);
        });
        if query.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            out.extend(
                self.wild
                    .iter()
                    .filter(|&&(s, l, _)| self.wild_bytes[s as usize..(s + l) as usize] == *query)
                    .map(|&(_, _, v)| v),
            );
        }
    }

    /// The values of every pattern matching `query`.
    pub fn find(&self, query: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        self.find_into(query, &mut out);
        out
    }

    #[inline]
    fn label(&self, n: &Node) -> &[u8] {
        &self.labels[n.label.0 as usize..(n.label.0 + n.label.1) as usize]
    }

    #[inline]
    fn lit_child(&self, n: &Node, b: u8) -> Option<u32> {
        let edges = &self.edges[n.lit.0 as usize..(n.lit.0 + n.lit.1) as usize];
        if edges.len() <= 8 {
            edges.iter().find(|e| e.0 == b).map(|e| e.1)
        } else {
            edges
                .binary_search_by_key(&b, |e| e.0)
                .ok()
                .map(|i| edges[i].1)
        }
    }
}

/// `q` starts with `label` whose first byte is already known to match (it is the edge key).
/// A byte loop: labels are short, and a `memcmp` call per trie edge costs more than it saves.
#[inline]
fn rest_matches(q: &[u8], label: &[u8]) -> bool {
    q.len() >= label.len()
        && q[1..label.len()]
            .iter()
            .zip(&label[1..])
            .all(|(a, b)| a == b)
}

impl Walk<'_, '_> {
    /// Explores the non-`*` edges of node `id` at query position `i` (and its values at the
    /// end of the query).
    fn edges(&mut self, id: u32, i: usize) {
        let m = self.m;
        let n = &m.nodes[id as usize];
        let q = self.q;
        if i == q.len() {
            let (s, l) = n.values;
            self.out
                .extend_from_slice(&m.values[s as usize..(s + l) as usize]);
            return;
        }
        let b = q[i];
        if let Some(child) = m.lit_child(n, b) {
            let label = m.label(&m.nodes[child as usize]);
            if rest_matches(&q[i..], label) {
                self.node(child, i + label.len());
            }
        }
        if n.any != NONE {
            self.node(n.any, i + 1);
        }
        let (s, l) = n.classes;
        for &(class, child) in &m.class_edges[s as usize..(s + l) as usize] {
            if m.classes[class as usize].contains(b) {
                self.node(child, i + 1);
            }
        }
    }

    fn node(&mut self, id: u32, i: usize) {
        self.edges(id, i);
        let star = self.m.nodes[id as usize].star;
        if star == NONE {
            return;
        }
        let slot = self.m.nodes[star as usize].star_slot as usize;
        let (g, low) = self.memo[slot];
        let end = if g == self.generation {
            low as usize
        } else {
            self.q.len() + 1
        };
        if i >= end {
            return;
        }
        self.memo[slot] = (self.generation, i as u32);
        let m = self.m;
        let q = self.q;
        let sn = &m.nodes[star as usize];
        if sn.any != NONE || sn.classes.1 != 0 {
            // A `*` node has no `*` child (stars are collapsed), so only its other edges are
            // explored at each split point.
            for j in i..end {
                self.edges(star, j);
            }
            return;
        }
        // Fast path: only literal children. The end of the query is a split point only on
        // the first visit (`end == len + 1`); literal children only where their first byte
        // occurs.
        if end > q.len() {
            let (s, l) = sn.values;
            self.out
                .extend_from_slice(&m.values[s as usize..(s + l) as usize]);
        }
        let stop = end.min(q.len());
        let edges = &m.edges[sn.lit.0 as usize..(sn.lit.0 + sn.lit.1) as usize];
        if let [(c, child)] = edges {
            let label = m.label(&m.nodes[*child as usize]);
            for p in memchr::memchr_iter(*c, &q[i..stop]) {
                let j = i + p;
                if rest_matches(&q[j..], label) {
                    self.node(*child, j + label.len());
                }
            }
        } else if !edges.is_empty() {
            for j in i..stop {
                if let Some(child) = m.lit_child(sn, q[j]) {
                    let label = m.label(&m.nodes[child as usize]);
                    if rest_matches(&q[j..], label) {
                        self.node(child, j + label.len());
                    }
                }
            }
        }
    }
}

/// A concrete string that `pattern` matches, for building test and benchmark corpora (the
/// method of the reference measurements): `*` and `?` become `0`, a bracket becomes its
/// smallest printable member. `None` if no printable string matches.
pub fn example_for(pattern: &[u8]) -> Option<Vec<u8>> {
    let split = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'['))
        .unwrap_or(pattern.len());
    let mut out = pattern[..split].to_vec();
    for tok in compile(&pattern[split..])? {
        match tok {
            Token::Literal(b) => out.push(b),
            Token::Star | Token::Any => out.push(b'0'),
            Token::Class(set) => out.push((0x21u8..0x7f).find(|&b| set.contains(b))?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(patterns: &[&str]) -> AliasMatcher {
        let mut m = AliasMatcherBuilder::new();
        for (i, p) in patterns.iter().enumerate() {
            m.insert(p.as_bytes(), i as u32);
        }
        m.build()
    }

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn literal_patterns_match_exactly_after_prefix_splits() {
        let m = matcher(&["abc", "abd", "ab", "abcdef"]);
        assert_eq!(m.find(b"abc"), vec![0]);
        assert_eq!(m.find(b"abd"), vec![1]);
        assert_eq!(m.find(b"ab"), vec![2]);
        assert_eq!(m.find(b"abcdef"), vec![3]);
        assert!(m.find(b"a").is_empty());
        assert!(m.find(b"abcd").is_empty());
    }

    #[test]
    fn wildcards_classes_and_stars_combine() {
        let m = matcher(&[
            "pci:v00008086d*sv*sd*bc*sc*i*",
            "pci:v*d*sv*sd*bc0Csc03i30*",
            "usb:v1D6Bp0002d0[1-9A]*",
            "of:N*T*Cfoo,bar",
            "of:N*T*Cfoo,barC*",
            "a?c",
            "*",
        ]);
        assert_eq!(
            sorted(m.find(b"pci:v00008086d00001234sv0sd0bc0Csc03i30")),
            vec![0, 1, 6]
        );
        assert_eq!(sorted(m.find(b"usb:v1D6Bp0002d0A00")), vec![2, 6]);
        assert_eq!(sorted(m.find(b"usb:v1D6Bp0002d0B00")), vec![6]);
        assert_eq!(sorted(m.find(b"of:NxTyCfoo,bar")), vec![3, 6]);
        assert_eq!(sorted(m.find(b"of:NxTyCfoo,barCbaz")), vec![4, 6]);
        assert_eq!(sorted(m.find(b"abc")), vec![5, 6]);
        assert_eq!(sorted(m.find(b"")), vec![6]);
    }

    #[test]
    fn adversarial_stars_stay_polynomial() {
        let m = matcher(&["*a*a*a*a*a*a*a*a*a*a*b"]);
        let q = vec![b'a'; 3000];
        let t = std::time::Instant::now();
        assert!(m.find(&q).is_empty());
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn patterns_with_too_many_wildcards_are_rejected() {
        let mut b = AliasMatcherBuilder::new();
        assert!(!b.insert("?".repeat(MAX_WILDCARDS + 1).as_bytes(), 0));
        assert!(b.insert("?".repeat(MAX_WILDCARDS).as_bytes(), 1));
        let m = b.build();
        assert_eq!(m.len(), 1);
        assert_eq!(m.find("x".repeat(MAX_WILDCARDS).as_bytes()), vec![1]);
    }

    #[test]
    fn the_deepest_accepted_pattern_runs_on_a_small_stack() {
        // 256 wildcards alternating with literals: the deepest trie path an index may hold.
        let pattern: String = "*a?".repeat(MAX_WILDCARDS / 2);
        let handle = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || {
                let mut b = AliasMatcherBuilder::new();
                assert!(b.insert(pattern.as_bytes(), 7));
                let m = b.build();
                let hit = "xab".repeat(MAX_WILDCARDS / 2);
                let miss = format!("{}x", "xa".repeat(MAX_WILDCARDS / 2 - 1));
                (m.find(hit.as_bytes()), m.find(miss.as_bytes()))
            })
            .unwrap();
        let (hit, miss) = handle.join().unwrap();
        assert_eq!(hit, vec![7]);
        assert!(miss.is_empty());
    }

    #[test]
    fn a_pattern_equal_to_the_query_matches_even_if_fnmatch_would_not() {
        let m = matcher(&["x[ab]"]);
        assert_eq!(m.find(b"x[ab]"), vec![0]);
        assert_eq!(m.find(b"xa"), vec![0]);
    }

    #[test]
    fn examples_match_their_patterns() {
        for p in ["pci:v*d0000[0-9A]*sv*", "acpi*:PNP0A08:*", "x[!a-z]?"] {
            let e = example_for(p.as_bytes()).unwrap();
            assert!(crate::fnmatch::fnmatch(p.as_bytes(), &e), "{p}");
        }
    }
}
