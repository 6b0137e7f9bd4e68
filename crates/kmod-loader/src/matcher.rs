//! The alias matcher: every alias pattern compiled into one trie of pattern tokens, stored as
//! a compact byte string.
//!
//! # Design
//!
//! A pattern is split like libkmod's `index_searchwild` splits it: the bytes up to the first
//! `*`, `?` or `[` are a literal prefix (compared byte for byte); the rest is compiled with
//! [`crate::fnmatch::compile`] into tokens (`*`, `?`, byte classes, literals). All patterns go
//! into a trie whose edges are
//!
//! * **literal runs** (Patricia-compressed: one node per run of literal bytes, children found
//!   by their first byte),
//! * at most one **`*`** child, at most one **`?`** child, and one child per distinct **byte
//!   class** (identical brackets from different patterns share one node).
//!
//! A node entered through `*` or `?` carries the literal run that follows the wildcard as its
//! label (`*sd`, `*bc`, …), and a chain of nodes without branches down to a pattern's end (the
//! `0000100Esv*sd*bc*sc*i*` after a `pci:v00008086d` branch: most of the 20,000 `pci:` and
//! `usb:` patterns end like that) is stored as one **tail** node holding the chain's text.
//!
//! A lookup walks the query through the trie once, following the literal edge that matches,
//! every `?`/class edge that accepts the next byte, and, for a `*` node, every split point of
//! the remaining query (only the split points where the node's label occurs, found with
//! `memchr`). Shared prefixes (`pci:v00008086d*`, `of:N*T*C`) are therefore examined once, not
//! once per pattern, and no pattern text is rebuilt or re-parsed at lookup time (libkmod
//! rebuilds the pattern suffix and calls `fnmatch` at every value-bearing node of every
//! wildcard subtree it enters).
//!
//! Worst case: a `*` node is entered at most once per query position (a per-query memo keeps
//! the lowest start position already explored for each `*` node, and for each `*` inside a
//! tail), so a lookup costs at most O(trie nodes × query length) even for adversarial patterns
//! such as `*a*a*a*a*b`; the recursion depth is bounded by [`MAX_WILDCARDS`] per pattern
//! (literal edges are followed in a loop, only wildcard edges recurse).
//!
//! A pattern equal byte for byte to the query also matches (libkmod finds such a key by its
//! literal trie walk even when `fnmatch` would not, e.g. `[ab]` against the query `[ab]`).
//!
//! # Memory layout
//!
//! The trie is one `Vec<u8>` of variable-length nodes written in post-order (children before
//! their parent, the root last), each node referring to its children by backward distances:
//!
//! ```text
//! header   u8: bits 0-1 width-1 of the child references, then flags LABEL, VALUES,
//!              LITERAL, ANY, STAR, CLASSES (each field below is present if its flag is)
//! label    varint length, bytes       (literal bytes after the entry edge)
//! star     reference
//! any      reference
//! literal  u8 count-1, count sorted first bytes, count references
//! classes  varint count, count × (varint class id, reference)
//! values   varint count, count × varint value
//!
//! tail:    header 0b0000_1111 (no children, so no reference width), varint length, the
//!          chain's text from its entry edge on (`*`/`?` wildcards, other bytes literal),
//!          values as above
//! ```
//!
//! The per-query `*` memo is a small hash table holding only the `*` nodes a query reaches,
//! not an array over all `*` nodes, which would cost every looking-up thread memory in
//! proportion to the whole index (sizes in `BENCH.md`).
//!
//! Building needs no per-node structure either: patterns are inserted in sorted order (the
//! order a binary index yields them; [`AliasMatcherBuilder`] sorts) and a node is written as
//! soon as no later pattern can reach below it, so the builder holds only the path of the
//! current pattern (a chain becomes a tail when its top is written: the node just below is
//! the last one written, so it is replaced in place). Patterns whose token sequence is not simply their text after the first
//! wildcard (backslash escapes, brackets, `**`, only 65 of Debian's) go into a second, small
//! trie built the same way after sorting by tokens; they keep their text for the textual
//! equality rule (a plain pattern always matches its own text by `fnmatch`, so the rule adds
//! nothing for it).

use std::cell::RefCell;

use crate::fasthash::FnvMap;
use crate::fnmatch::{ByteSet, Token, compile, compile_into};

/// Most wildcard tokens (`*`, `?`, brackets) accepted in one pattern. Lookup recursion depth
/// is bounded by this (real aliases have at most about 15); longer patterns are rejected.
pub const MAX_WILDCARDS: usize = 64;

const NONE: usize = usize::MAX;

// Node header bits.
const H_WIDTH: u8 = 0b11;
const H_LABEL: u8 = 1 << 2;
const H_VALUES: u8 = 1 << 3;
const H_LIT: u8 = 1 << 4;
const H_ANY: u8 = 1 << 5;
const H_STAR: u8 = 1 << 6;
const H_CLASS: u8 = 1 << 7;
/// The header of a tail node: a childless node (whose reference width bits are otherwise 0)
/// whose label is the text of a whole chain of nodes, wildcards included.
const TAIL: u8 = H_WIDTH | H_LABEL | H_VALUES;

/// One symbol of a compiled pattern. Ordered so that, for patterns whose symbols are their
/// bytes, symbol order is byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Sym {
    byte: u8,
    kind: u8,
    class: u32,
}

const K_LIT: u8 = 0;
const K_WILD: u8 = 1;
const K_CLASS: u8 = 2;

impl Sym {
    const STAR: Sym = Sym {
        byte: b'*',
        kind: K_WILD,
        class: 0,
    };
    const ANY: Sym = Sym {
        byte: b'?',
        kind: K_WILD,
        class: 0,
    };

    fn lit(byte: u8) -> Sym {
        Sym {
            byte,
            kind: K_LIT,
            class: 0,
        }
    }

    fn class(id: u32) -> Sym {
        Sym {
            byte: b'[',
            kind: K_CLASS,
            class: id,
        }
    }
}

fn is_wild(b: u8) -> bool {
    matches!(b, b'*' | b'?' | b'[')
}

fn first_wild(pattern: &[u8]) -> usize {
    pattern
        .iter()
        .position(|&b| is_wild(b))
        .unwrap_or(pattern.len())
}

/// For a pattern whose tokens are exactly its bytes (no `[`, `\` or `**` after the first
/// wildcard), the number of wildcards; `None` for other patterns.
fn plain_wildcards(pattern: &[u8]) -> Option<usize> {
    let rest = &pattern[first_wild(pattern)..];
    let mut wild = 0;
    let mut prev = 0u8;
    for &b in rest {
        match b {
            b'[' | b'\\' => return None,
            b'*' if prev == b'*' => return None,
            b'*' | b'?' => wild += 1,
            _ => {}
        }
        prev = b;
    }
    Some(wild)
}

/// Whether the matcher accepts `pattern`: it can match something (it does not end in a lone
/// backslash after its literal prefix) and has at most [`MAX_WILDCARDS`] wildcard tokens.
pub fn accepts(pattern: &[u8]) -> bool {
    if let Some(wild) = plain_wildcards(pattern) {
        return wild <= MAX_WILDCARDS;
    }
    let mut tokens = Vec::new();
    compile_into(&pattern[first_wild(pattern)..], &mut tokens)
        && tokens
            .iter()
            .filter(|t| !matches!(t, Token::Literal(_)))
            .count()
            <= MAX_WILDCARDS
}

fn push_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn varint(bytes: &[u8], at: &mut usize) -> u32 {
    let mut v = 0u32;
    let mut shift = 0;
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= u32::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// The position after `n` class edges starting at `at`.
fn skip_classes(b: &[u8], mut at: usize, n: usize, w: usize) -> usize {
    for _ in 0..n {
        varint(b, &mut at);
        at += w;
    }
    at
}

#[inline]
fn read_ref(bytes: &[u8], at: usize, w: usize) -> usize {
    let mut v = 0usize;
    for k in 0..w {
        v |= usize::from(bytes[at + k]) << (8 * k);
    }
    v
}

/// Whether `q` starts with `label`. A byte loop: labels are short, and a `memcmp` call per
/// trie edge costs more than it saves.
#[inline]
fn starts_with(q: &[u8], label: &[u8]) -> bool {
    q.len() >= label.len() && q.iter().zip(label).all(|(a, b)| a == b)
}

/// One serialised trie.
#[derive(Debug, Clone)]
struct Trie {
    bytes: Vec<u8>,
    root: usize,
    nodes: usize,
}

/// A node of a [`Trie`], decoded.
struct View {
    label: (usize, usize),
    w: usize,
    lit_n: usize,
    lit_at: usize,
    any: usize,
    classes_n: usize,
    star: usize,
    values_at: usize,
}

impl Trie {
    #[inline]
    fn view(&self, off: usize) -> View {
        let b = &self.bytes;
        let h = b[off];
        let w = usize::from(h & H_WIDTH) + 1;
        let mut at = off + 1;
        let mut label = (at, 0);
        if h & H_LABEL != 0 {
            let len = varint(b, &mut at) as usize;
            label = (at, len);
            at += len;
        }
        let mut star = NONE;
        if h & H_STAR != 0 {
            star = off - read_ref(b, at, w);
            at += w;
        }
        let mut any = NONE;
        if h & H_ANY != 0 {
            any = off - read_ref(b, at, w);
            at += w;
        }
        let (mut lit_n, lit_at) = (0, at + 1);
        if h & H_LIT != 0 {
            lit_n = usize::from(b[at]) + 1;
            at += 1 + lit_n * (1 + w);
        }
        let mut classes_n = 0;
        if h & H_CLASS != 0 {
            classes_n = varint(b, &mut at) as usize;
            at = skip_classes(b, at, classes_n, w);
        }
        View {
            label,
            w,
            lit_n,
            lit_at,
            any,
            classes_n,
            star,
            values_at: if h & H_VALUES != 0 { at } else { NONE },
        }
    }

    /// The label of node `off` and the position just after it.
    #[inline]
    fn label_and_body(&self, off: usize) -> (&[u8], usize) {
        let b = &self.bytes;
        let mut at = off + 1;
        if b[off] & H_LABEL == 0 {
            return (&[], at);
        }
        let len = varint(b, &mut at) as usize;
        (&b[at..at + len], at + len)
    }

    #[inline]
    fn label(&self, v: &View) -> &[u8] {
        &self.bytes[v.label.0..v.label.0 + v.label.1]
    }

    /// The literal child of node `off` whose first byte is `c`.
    #[inline]
    fn lit_child(&self, off: usize, v: &View, c: u8) -> usize {
        let keys = &self.bytes[v.lit_at..v.lit_at + v.lit_n];
        let k = if keys.len() <= 8 {
            match keys.iter().position(|&k| k == c) {
                Some(k) => k,
                None => return NONE,
            }
        } else {
            match keys.binary_search(&c) {
                Ok(k) => k,
                Err(_) => return NONE,
            }
        };
        off - read_ref(&self.bytes, v.lit_at + v.lit_n + k * v.w, v.w)
    }

    fn values_into(&self, v: &View, out: &mut Vec<u32>) {
        if v.values_at != NONE {
            self.values_at(v.values_at, out);
        }
    }

    /// Appends the values encoded at `at`.
    fn values_at(&self, mut at: usize, out: &mut Vec<u32>) {
        let n = varint(&self.bytes, &mut at);
        for _ in 0..n {
            out.push(varint(&self.bytes, &mut at));
        }
    }
}

/// A node of the path being built: the symbol leading to it, and where its values and
/// finished children start on the shared stacks.
#[derive(Debug, Clone, Copy)]
struct Frame {
    sym: Sym,
    vals: u32,
    kids: u32,
}

/// A finished child: its edge symbol and node offset.
#[derive(Debug, Clone, Copy)]
struct Kid {
    sym: Sym,
    off: u32,
}

/// Builds a [`Trie`] from keys given in non-decreasing symbol order. Holds only the path of
/// the last key: a node is written as soon as a key leaves its subtree.
#[derive(Debug, Clone)]
struct TrieBuilder {
    out: Vec<u8>,
    frames: Vec<Frame>,
    vals: Vec<u32>,
    kids: Vec<Kid>,
    label: Vec<u8>,
    nodes: usize,
    /// Whether chains may become tail nodes (only where every symbol is its byte).
    tails: bool,
    /// The last node written, if it ends a chain (a leaf or a tail): its offset, its text
    /// (entry symbol included) and its encoded values.
    chain: Option<usize>,
    chain_text: Vec<u8>,
    chain_values: Vec<u8>,
}

impl TrieBuilder {
    /// `capacity`: the expected size in bytes (growth beyond it is by 1/8, not doubling, so
    /// that the buffer being written never holds much more than the trie).
    fn new(capacity: usize, tails: bool) -> Self {
        TrieBuilder {
            tails,
            chain: None,
            chain_text: Vec::new(),
            chain_values: Vec::new(),
            out: Vec::with_capacity(capacity),
            frames: vec![Frame {
                sym: Sym::lit(0),
                vals: 0,
                kids: 0,
            }],
            vals: Vec::new(),
            kids: Vec::new(),
            label: Vec::new(),
            nodes: 0,
        }
    }

    /// Adds a key; `false` (and nothing added) if it sorts before the previous key.
    fn push(&mut self, key: &[Sym], value: u32) -> bool {
        let depth = self.frames.len() - 1;
        let lcp = self.frames[1..]
            .iter()
            .zip(key)
            .take_while(|(f, s)| f.sym == **s)
            .count();
        if lcp < depth && (lcp == key.len() || key[lcp] < self.frames[lcp + 1].sym) {
            return false;
        }
        self.close(lcp);
        for &sym in &key[lcp..] {
            self.frames.push(Frame {
                sym,
                vals: self.vals.len() as u32,
                kids: self.kids.len() as u32,
            });
        }
        self.vals.push(value);
        true
    }

    /// A frame that is only a step inside a literal run: one child, reached by a literal,
    /// and no values of its own.
    fn passes_through(&self, f: usize) -> bool {
        let (this, next) = (self.frames[f], self.frames[f + 1]);
        next.kind_is_lit() && this.vals == next.vals && this.kids == next.kids
    }

    /// Writes every frame deeper than `keep`.
    fn close(&mut self, keep: usize) {
        let mut f = self.frames.len() - 1;
        while f > keep {
            let mut top = f;
            while top - 1 > keep && self.passes_through(top - 1) {
                top -= 1;
            }
            self.label.clear();
            self.label
                .extend(self.frames[top + 1..=f].iter().map(|fr| fr.sym.byte));
            let off = self.write(f, Some(self.frames[top].sym));
            let first = self.frames[top];
            self.vals.truncate(first.vals as usize);
            self.kids.truncate(first.kids as usize);
            self.frames.truncate(top);
            self.kids.push(Kid {
                sym: first.sym,
                off: off as u32,
            });
            f = top - 1;
        }
    }

    /// The byte a symbol is written as in a tail, if it has one.
    fn tail_byte(&self, sym: Sym) -> Option<u8> {
        let plain = sym == Sym::STAR
            || sym == Sym::ANY
            || (sym.kind == K_LIT && !matches!(sym.byte, b'*' | b'?'));
        (self.tails && plain).then_some(sym.byte)
    }

    /// Writes frame `f` (all deeper frames written), entered through `entry` (`None` for
    /// the root), with `self.label`; returns its offset.
    fn write(&mut self, f: usize, entry: Option<Sym>) -> usize {
        if self.out.capacity() - self.out.len() < 1024 {
            self.out.reserve_exact((self.out.len() / 8).max(4096));
        }
        let frame = self.frames[f];
        let vals = &self.vals[frame.vals as usize..];
        let kids = &self.kids[frame.kids as usize..];
        let entry_byte = entry.and_then(|e| self.tail_byte(e));
        // A node whose only child is a `*`/`?` edge to the end of a chain (the last node
        // written) joins the chain: both become one tail node in place of the child.
        if let (Some(e), [kid]) = (entry_byte, kids)
            && vals.is_empty()
            && (kid.sym == Sym::STAR || kid.sym == Sym::ANY)
            && self.chain == Some(kid.off as usize)
        {
            let off = kid.off as usize;
            self.out.truncate(off);
            let mut text = Vec::with_capacity(1 + self.label.len() + self.chain_text.len());
            text.push(e);
            text.extend_from_slice(&self.label);
            text.extend_from_slice(&self.chain_text);
            self.out.push(TAIL);
            push_varint(&mut self.out, text.len() as u32);
            self.out.extend_from_slice(&text);
            self.out.extend_from_slice(&self.chain_values);
            self.chain_text = text;
            return off;
        }
        let off = self.out.len();
        let max_ref = kids.iter().map(|k| off - k.off as usize).max().unwrap_or(0);
        let w: usize = match max_ref {
            0..=0xff => 1,
            0x100..=0xffff => 2,
            0x1_0000..=0xff_ffff => 3,
            _ => 4,
        };
        let lits = kids.iter().filter(|k| k.sym.kind == K_LIT).count();
        let any = kids.iter().find(|k| k.sym == Sym::ANY);
        let star = kids.iter().find(|k| k.sym == Sym::STAR);
        let classes = kids.iter().filter(|k| k.sym.kind == K_CLASS).count();
        let mut h = (w - 1) as u8;
        for (cond, bit) in [
            (!self.label.is_empty(), H_LABEL),
            (!vals.is_empty(), H_VALUES),
            (lits > 0, H_LIT),
            (any.is_some(), H_ANY),
            (star.is_some(), H_STAR),
            (classes > 0, H_CLASS),
        ] {
            if cond {
                h |= bit;
            }
        }
        let out = &mut self.out;
        let put_ref = |out: &mut Vec<u8>, child: u32| {
            let r = off - child as usize;
            out.extend_from_slice(&r.to_le_bytes()[..w]);
        };
        out.push(h);
        if !self.label.is_empty() {
            push_varint(out, self.label.len() as u32);
            out.extend_from_slice(&self.label);
        }
        if let Some(k) = star {
            put_ref(out, k.off);
        }
        if let Some(k) = any {
            put_ref(out, k.off);
        }
        if lits > 0 {
            // At most 256 distinct first bytes.
            out.push((lits - 1) as u8);
            out.extend(
                kids.iter()
                    .filter(|k| k.sym.kind == K_LIT)
                    .map(|k| k.sym.byte),
            );
            for k in kids.iter().filter(|k| k.sym.kind == K_LIT) {
                put_ref(out, k.off);
            }
        }
        if classes > 0 {
            push_varint(out, classes as u32);
            for k in kids.iter().filter(|k| k.sym.kind == K_CLASS) {
                push_varint(out, k.sym.class);
                put_ref(out, k.off);
            }
        }
        let values_at = out.len();
        if !vals.is_empty() {
            push_varint(out, vals.len() as u32);
            // Newest first, as patterns inserted later are reported first.
            for &v in vals.iter().rev() {
                push_varint(out, v);
            }
        }
        self.nodes += 1;
        // A leaf can end a chain.
        self.chain = None;
        if let Some(e) = entry_byte
            && kids.is_empty()
            && !vals.is_empty()
        {
            self.chain = Some(off);
            self.chain_text.clear();
            self.chain_text.push(e);
            self.chain_text.extend_from_slice(&self.label);
            self.chain_values.clear();
            self.chain_values.extend_from_slice(&self.out[values_at..]);
        }
        off
    }

    fn finish(mut self) -> Trie {
        self.close(0);
        self.label.clear();
        let root = self.write(0, None);
        self.out.shrink_to_fit();
        Trie {
            bytes: self.out,
            root,
            nodes: self.nodes,
        }
    }
}

impl Frame {
    fn kind_is_lit(&self) -> bool {
        self.sym.kind == K_LIT
    }
}

/// The patterns that are not plain (see the module docs): their own trie, byte classes and
/// texts.
#[derive(Debug, Clone)]
struct Odd {
    trie: Trie,
    classes: Vec<ByteSet>,
    /// Patterns containing wildcard bytes, for the textual-equality rule: (end in `texts`,
    /// value).
    texts: Vec<(u32, u32)>,
    text_bytes: Vec<u8>,
}

/// A compiled set of alias patterns, each carrying a caller-chosen `u32` value. Built with
/// [`AliasMatcherBuilder`].
#[derive(Debug, Clone)]
pub struct AliasMatcher {
    plain: Trie,
    odd: Option<Box<Odd>>,
    patterns: usize,
}

/// Builds an [`AliasMatcher`] from patterns given in sorted order, holding no more than the
/// current path (plus the rare patterns that are not plain). Patterns given out of order are
/// still matched correctly (they join the second trie).
#[derive(Debug, Clone)]
pub(crate) struct SortedBuilder {
    plain: TrieBuilder,
    syms: Vec<Sym>,
    odd_bytes: Vec<u8>,
    /// (end in `odd_bytes`, value)
    odd: Vec<(u32, u32)>,
    patterns: usize,
}

impl SortedBuilder {
    /// A builder expecting a trie of about `capacity` bytes (half the size of a binary index
    /// file is a good guess for one built from it).
    pub(crate) fn new(capacity: usize) -> Self {
        SortedBuilder {
            plain: TrieBuilder::new(capacity, true),
            syms: Vec::new(),
            odd_bytes: Vec::new(),
            odd: Vec::new(),
            patterns: 0,
        }
    }

    /// Adds a pattern (already normalised) with its value; like
    /// [`AliasMatcherBuilder::insert`]. Cheapest when patterns come in byte order.
    pub(crate) fn insert(&mut self, pattern: &[u8], value: u32) -> bool {
        match plain_wildcards(pattern) {
            Some(wild) if wild > MAX_WILDCARDS => return false,
            Some(_) => {
                self.syms.clear();
                self.syms.extend(pattern.iter().map(|&b| match b {
                    b'*' => Sym::STAR,
                    b'?' => Sym::ANY,
                    b => Sym::lit(b),
                }));
                if self.plain.push(&self.syms, value) {
                    self.patterns += 1;
                    return true;
                }
            }
            None if !accepts(pattern) => return false,
            None => {}
        }
        self.odd_bytes.extend_from_slice(pattern);
        self.odd.push((self.odd_bytes.len() as u32, value));
        self.patterns += 1;
        true
    }

    pub(crate) fn finish(self) -> AliasMatcher {
        let plain = self.plain.finish();
        let odd = (!self.odd.is_empty()).then(|| Box::new(build_odd(&self.odd_bytes, &self.odd)));
        AliasMatcher {
            plain,
            odd,
            patterns: self.patterns,
        }
    }
}

fn build_odd(bytes: &[u8], patterns: &[(u32, u32)]) -> Odd {
    let mut classes = Vec::new();
    let mut class_ids: FnvMap<ByteSet, u32> = FnvMap::default();
    let mut keyed: Vec<(Vec<Sym>, u32)> = Vec::with_capacity(patterns.len());
    let mut texts = Vec::new();
    let mut text_bytes = Vec::new();
    let mut tokens = Vec::new();
    let mut start = 0usize;
    for &(end, value) in patterns {
        let pattern = &bytes[start..end as usize];
        start = end as usize;
        let split = first_wild(pattern);
        let mut syms: Vec<Sym> = pattern[..split].iter().map(|&b| Sym::lit(b)).collect();
        // Accepted patterns compile (checked on insertion).
        compile_into(&pattern[split..], &mut tokens);
        syms.extend(tokens.iter().map(|t| match t {
            Token::Literal(b) => Sym::lit(*b),
            Token::Star => Sym::STAR,
            Token::Any => Sym::ANY,
            Token::Class(set) => Sym::class(*class_ids.entry(*set).or_insert_with(|| {
                classes.push(*set);
                (classes.len() - 1) as u32
            })),
        }));
        keyed.push((syms, value));
        if split < pattern.len() {
            text_bytes.extend_from_slice(pattern);
            texts.push((text_bytes.len() as u32, value));
        }
    }
    // Stable: equal keys keep their insertion order.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut trie = TrieBuilder::new(0, false);
    for (syms, value) in &keyed {
        // Sorted, so every key is accepted.
        trie.push(syms, *value);
    }
    Odd {
        trie: trie.finish(),
        classes,
        texts,
        text_bytes,
    }
}

/// Builds an [`AliasMatcher`]. Patterns may be inserted in any order; they are kept as text
/// until [`AliasMatcherBuilder::build`] sorts and compiles them.
#[derive(Debug, Clone, Default)]
pub struct AliasMatcherBuilder {
    bytes: Vec<u8>,
    /// (start in `bytes`, length, value)
    patterns: Vec<(u32, u32, u32)>,
}

thread_local! {
    /// Per-thread lookup memo of the `*` nodes.
    static MEMO: RefCell<Memo> = const { RefCell::new(Memo { generation: 0, live: 0, slots: Vec::new() }) };
}

/// The lowest query position already explored for each `*` node a query reached: an
/// open-addressing table keyed by node offset, emptied per query by a generation count.
#[derive(Debug)]
struct Memo {
    generation: u32,
    live: usize,
    /// (generation, node, lowest start)
    slots: Vec<(u32, u32, u32)>,
}

impl Memo {
    fn begin(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.slots.iter_mut().for_each(|s| s.0 = 0);
            self.generation = 1;
        }
        self.live = 0;
    }

    #[inline]
    fn slot(key: u32, mask: usize) -> usize {
        ((u64::from(key).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize) & mask
    }

    /// Records that `*` node `key` is entered at `i`; returns the lowest position it was
    /// entered at before in this query, if any (and keeps the lower of the two).
    #[inline]
    fn enter(&mut self, key: u32, i: u32) -> Option<u32> {
        if (self.live + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut s = Self::slot(key, mask);
        loop {
            let slot = &mut self.slots[s];
            if slot.0 != self.generation {
                *slot = (self.generation, key, i);
                self.live += 1;
                return None;
            }
            if slot.1 == key {
                let low = slot.2;
                slot.2 = low.min(i);
                return Some(low);
            }
            s = (s + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![(0, 0, 0); cap]);
        let mask = cap - 1;
        for e in old.into_iter().filter(|e| e.0 == self.generation) {
            let mut s = Self::slot(e.1, mask);
            while self.slots[s].0 == self.generation {
                s = (s + 1) & mask;
            }
            self.slots[s] = e;
        }
    }
}

struct Walk<'m, 'q> {
    t: &'m Trie,
    classes: &'m [ByteSet],
    q: &'q [u8],
    memo: &'m mut Memo,
    out: &'m mut Vec<u32>,
}

impl AliasMatcherBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pattern (already normalised) with its value. Returns `false`, and adds nothing,
    /// if the pattern can never match (it ends in a lone backslash after its literal prefix)
    /// or has more than [`MAX_WILDCARDS`] wildcard tokens.
    pub fn insert(&mut self, pattern: &[u8], value: u32) -> bool {
        if !accepts(pattern) {
            return false;
        }
        self.patterns
            .push((self.bytes.len() as u32, pattern.len() as u32, value));
        self.bytes.extend_from_slice(pattern);
        true
    }

    /// Sorts the patterns and compiles them into the lookup layout.
    pub fn build(mut self) -> AliasMatcher {
        let bytes = &self.bytes;
        let text = |&(s, l, _): &(u32, u32, u32)| &bytes[s as usize..(s + l) as usize];
        // Stable: equal patterns keep their insertion order.
        self.patterns.sort_by(|a, b| text(a).cmp(text(b)));
        let mut b = SortedBuilder::new(0);
        for p in &self.patterns {
            b.insert(text(p), p.2);
        }
        b.finish()
    }
}

impl Default for AliasMatcher {
    fn default() -> Self {
        SortedBuilder::new(0).finish()
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
        self.plain.nodes + self.odd.as_ref().map_or(0, |o| o.trie.nodes)
    }

    /// Bytes of heap memory held (for diagnostics).
    pub fn heap_bytes(&self) -> usize {
        self.plain.bytes.capacity()
            + self.odd.as_ref().map_or(0, |o| {
                std::mem::size_of::<Odd>()
                    + o.trie.bytes.capacity()
                    + o.classes.capacity() * std::mem::size_of::<ByteSet>()
                    + o.texts.capacity() * 8
                    + o.text_bytes.capacity()
            })
    }

    /// Appends the values of every pattern matching `query` to `out` (in trie order, possibly
    /// with repeats when several patterns carry the same value or a pattern matches both by
    /// `fnmatch` and textually).
    pub fn find_into(&self, query: &[u8], out: &mut Vec<u32>) {
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            memo.begin();
            Walk {
                t: &self.plain,
                classes: &[],
                q: query,
                memo: &mut memo,
                out,
            }
            .visit(self.plain.root, 0);
            if let Some(odd) = &self.odd {
                memo.begin();
                Walk {
                    t: &odd.trie,
                    classes: &odd.classes,
                    q: query,
                    memo: &mut memo,
                    out,
                }
                .visit(odd.trie.root, 0);
            }
        });
        // A plain pattern always matches its own text by fnmatch (`*` and `?` match
        // themselves), so only the others need the textual-equality rule.
        if query.iter().any(|&b| is_wild(b))
            && let Some(odd) = &self.odd
        {
            let mut start = 0usize;
            for &(end, value) in &odd.texts {
                if odd.text_bytes[start..end as usize] == *query {
                    out.push(value);
                }
                start = end as usize;
            }
        }
    }

    /// The values of every pattern matching `query`.
    pub fn find(&self, query: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        self.find_into(query, &mut out);
        out
    }
}

impl Walk<'_, '_> {
    /// Explores node `off` (its label already consumed) at query position `i`.
    fn visit(&mut self, off: usize, i: usize) {
        let at = self.t.label_and_body(off).1;
        self.visit_at(off, at, i);
    }

    /// Like [`Self::visit`], with `at` the position after the label of node `off`. Literal
    /// edges are followed in the loop; only wildcard edges recurse.
    fn visit_at(&mut self, mut off: usize, mut at: usize, mut i: usize) {
        let t = self.t;
        let b = &t.bytes[..];
        let q = self.q;
        loop {
            let h = b[off];
            let w = usize::from(h & H_WIDTH) + 1;
            if h & H_STAR != 0 {
                let star = off - read_ref(b, at, w);
                at += w;
                self.star(star, i);
            }
            let mut any = NONE;
            if h & H_ANY != 0 {
                any = off - read_ref(b, at, w);
                at += w;
            }
            if i == q.len() {
                if h & H_VALUES != 0 {
                    if h & H_LIT != 0 {
                        at += 1 + (usize::from(b[at]) + 1) * (1 + w);
                    }
                    if h & H_CLASS != 0 {
                        let n = varint(b, &mut at) as usize;
                        at = skip_classes(b, at, n, w);
                    }
                    t.values_at(at, self.out);
                }
                return;
            }
            let c = q[i];
            if any != NONE {
                self.enter(any, i + 1);
            }
            let mut child = NONE;
            if h & H_LIT != 0 {
                let n = usize::from(b[at]) + 1;
                let keys = &b[at + 1..at + 1 + n];
                let k = if n <= 8 {
                    keys.iter().position(|&k| k == c)
                } else {
                    keys.binary_search(&c).ok()
                };
                if let Some(k) = k {
                    child = off - read_ref(b, at + 1 + n + k * w, w);
                }
                at += 1 + n * (1 + w);
            }
            if h & H_CLASS != 0 {
                let n = varint(b, &mut at) as usize;
                for _ in 0..n {
                    let class = varint(b, &mut at) as usize;
                    let next = off - read_ref(b, at, w);
                    at += w;
                    if self.classes.get(class).is_some_and(|set| set.contains(c)) {
                        self.enter(next, i + 1);
                    }
                }
            }
            if child == NONE {
                return;
            }
            if b[child] == TAIL {
                self.tail(child, 1, i + 1);
                return;
            }
            let (label, body) = t.label_and_body(child);
            if !starts_with(&q[i + 1..], label) {
                return;
            }
            off = child;
            at = body;
            i += 1 + label.len();
        }
    }

    /// Enters `child` at `i` through a one-byte wildcard edge: its label must follow.
    fn enter(&mut self, child: usize, i: usize) {
        if self.t.bytes[child] == TAIL {
            self.tail(child, 1, i);
            return;
        }
        let (label, body) = self.t.label_and_body(child);
        if starts_with(&self.q[i..], label) {
            self.visit_at(child, body, i + label.len());
        }
    }

    /// Explores the `*` node `s` entered at `i`: every split point not explored before.
    fn star(&mut self, s: usize, i: usize) {
        if self.t.bytes[s] == TAIL {
            // Its text starts with this `*`.
            self.tail(s, 0, i);
            return;
        }
        let q = self.q;
        let end = match self.memo.enter(s as u32, i as u32) {
            Some(low) if i >= low as usize => return,
            Some(low) => low as usize,
            None => q.len() + 1,
        };
        let t = self.t;
        let v = t.view(s);
        let label = t.label(&v);
        if let Some((&first, rest)) = label.split_first() {
            // `*` then a literal run: only where the run occurs.
            let body = v.label.0 + v.label.1;
            let stop = end.min(q.len());
            for p in memchr::memchr_iter(first, &q[i..stop]) {
                let j = i + p + 1;
                if starts_with(&q[j..], rest) {
                    self.visit_at(s, body, j + rest.len());
                }
            }
            return;
        }
        if v.any != NONE || v.classes_n != 0 || v.star != NONE {
            for j in i..end {
                self.visit(s, j);
            }
            return;
        }
        // Only literal children and values. The end of the query is a split point only on
        // the first visit (`end == len + 1`); literal children only where their first byte
        // occurs.
        if end > q.len() {
            t.values_into(&v, self.out);
        }
        let stop = end.min(q.len());
        if v.lit_n == 1 {
            let first = t.bytes[v.lit_at];
            let child = s - read_ref(&t.bytes, v.lit_at + 1, v.w);
            if t.bytes[child] == TAIL {
                for p in memchr::memchr_iter(first, &q[i..stop]) {
                    self.tail(child, 1, i + p + 1);
                }
                return;
            }
            let (label, body) = t.label_and_body(child);
            for p in memchr::memchr_iter(first, &q[i..stop]) {
                let j = i + p + 1;
                if starts_with(&q[j..], label) {
                    self.visit_at(child, body, j + label.len());
                }
            }
        } else if v.lit_n > 1 {
            for j in i..stop {
                let child = t.lit_child(s, &v, q[j]);
                if child != NONE && t.bytes[child] == TAIL {
                    self.tail(child, 1, j + 1);
                } else if child != NONE {
                    let (label, body) = t.label_and_body(child);
                    if starts_with(&q[j + 1..], label) {
                        self.visit_at(child, body, j + 1 + label.len());
                    }
                }
            }
        }
    }
}

impl Walk<'_, '_> {
    /// Matches the tail node `off` from byte `k` of its text at query position `i`: the
    /// nodes of a chain, interpreted from their text. Each `*` of the text is memoised like a
    /// `*` node, keyed by its own position in the trie bytes.
    fn tail(&mut self, off: usize, mut k: usize, mut i: usize) {
        let t = self.t;
        let q = self.q;
        let mut at = off + 1;
        let len = varint(&t.bytes, &mut at) as usize;
        let text = &t.bytes[at..at + len];
        loop {
            while let Some(&c) = text.get(k).filter(|&&c| c != b'*' && c != b'?') {
                if q.get(i) != Some(&c) {
                    return;
                }
                i += 1;
                k += 1;
            }
            match text.get(k) {
                None => {
                    if i == q.len() {
                        t.values_at(at + len, self.out);
                    }
                    return;
                }
                Some(b'?') => {
                    if i == q.len() {
                        return;
                    }
                    i += 1;
                    k += 1;
                }
                Some(_) => break,
            }
        }
        // A `*` at `k`.
        let end = match self.memo.enter((at + k) as u32, i as u32) {
            Some(low) if i >= low as usize => return,
            Some(low) => low as usize,
            None => q.len() + 1,
        };
        k += 1;
        let run_end = text[k..]
            .iter()
            .position(|&c| c == b'*' || c == b'?')
            .map_or(len, |p| k + p);
        if let Some((&first, rest)) = text[k..run_end].split_first() {
            let stop = end.min(q.len());
            for p in memchr::memchr_iter(first, &q[i..stop]) {
                let j = i + p + 1;
                if starts_with(&q[j..], rest) {
                    self.tail(off, run_end, j + rest.len());
                }
            }
        } else if k == len {
            // A final `*`: the end of the query is a split point only on the first visit.
            if end > q.len() {
                t.values_at(at + len, self.out);
            }
        } else {
            // `*?`: every split point.
            for j in i..end {
                self.tail(off, k, j);
            }
        }
    }
}

/// A concrete string that `pattern` matches, for building test and benchmark corpora (the
/// method of the reference measurements): `*` and `?` become `0`, a bracket becomes its
/// smallest printable member. `None` if no printable string matches.
pub fn example_for(pattern: &[u8]) -> Option<Vec<u8>> {
    let split = first_wild(pattern);
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
        assert!(!b.insert(format!("[a]{}", "?".repeat(MAX_WILDCARDS)).as_bytes(), 2));
        assert!(!b.insert(b"a*\\", 3));
        let m = b.build();
        assert_eq!(m.len(), 1);
        assert_eq!(m.find("x".repeat(MAX_WILDCARDS).as_bytes()), vec![1]);
    }

    #[test]
    fn the_deepest_accepted_pattern_runs_on_a_small_stack() {
        // 64 wildcards alternating with literals: the deepest trie path an index may hold.
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
    fn long_literal_paths_do_not_recurse() {
        // Every prefix of a 4,000-byte key is a pattern: 4,000 nested literal nodes.
        let key = "k".repeat(4000);
        let handle = std::thread::Builder::new()
            .stack_size(64 << 10)
            .spawn(move || {
                let mut b = AliasMatcherBuilder::new();
                for n in 1..=key.len() {
                    b.insert(&key.as_bytes()[..n], n as u32);
                }
                b.build().find(key.as_bytes())
            })
            .unwrap();
        assert_eq!(handle.join().unwrap(), vec![4000]);
    }

    #[test]
    fn a_pattern_equal_to_the_query_matches_even_if_fnmatch_would_not() {
        let m = matcher(&["x[ab]", "y*", "y\\*", "z**"]);
        assert_eq!(m.find(b"x[ab]"), vec![0]);
        assert_eq!(m.find(b"xa"), vec![0]);
        // A backslash before the first wildcard is a literal byte, as in libkmod's walk.
        assert_eq!(sorted(m.find(b"y*")), vec![1]);
        assert_eq!(sorted(m.find(b"y\\*")), vec![1, 2]);
        assert_eq!(sorted(m.find(b"z**")), vec![3]);
    }

    #[test]
    fn values_of_one_pattern_come_newest_first_and_textual_matches_in_insertion_order() {
        let m = matcher(&["a[b]", "a*", "a*", "a[b]"]);
        assert_eq!(m.find(b"ab"), vec![2, 1, 3, 0]);
        let found = m.find(b"a[b]");
        // fnmatch: `a*` (newest first); textually: both `a[b]` in insertion order.
        assert_eq!(found, vec![2, 1, 0, 3]);
    }

    #[test]
    fn patterns_out_of_order_are_still_found() {
        let mut b = SortedBuilder::new(0);
        for (i, p) in ["b*", "c?", "a*", "b*x", "b*"].iter().enumerate() {
            assert!(b.insert(p.as_bytes(), i as u32));
        }
        let m = b.finish();
        assert_eq!(m.len(), 5);
        assert_eq!(sorted(m.find(b"bzx")), vec![0, 3, 4]);
        assert_eq!(sorted(m.find(b"a")), vec![2]);
        assert_eq!(sorted(m.find(b"b*")), vec![0, 4]);
    }

    #[test]
    fn examples_match_their_patterns() {
        for p in ["pci:v*d0000[0-9A]*sv*", "acpi*:PNP0A08:*", "x[!a-z]?"] {
            let e = example_for(p.as_bytes()).unwrap();
            assert!(crate::fnmatch::fnmatch(p.as_bytes(), &e), "{p}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Pieces that make every kind of pattern: plain, with brackets, escapes (also before
        /// the first wildcard, where a backslash is a literal byte) and `**`.
        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                4 => "[ab:]{1,3}",
                2 => Just("*".to_string()),
                2 => Just("?".to_string()),
                1 => Just("**".to_string()),
                1 => "[ab]{1,2}".prop_map(|s| format!("[{s}]")),
                1 => "[ab]{1,2}".prop_map(|s| format!("[!{s}]")),
                1 => "[ab*?]".prop_map(|s| format!("\\{s}")),
            ]
        }

        fn pattern() -> impl Strategy<Value = String> {
            prop::collection::vec(piece(), 0..6).prop_map(|v| v.concat())
        }

        /// libkmod's rule: the literal prefix byte for byte, `fnmatch` on the rest, or equal.
        fn matches(p: &[u8], t: &[u8]) -> bool {
            let split = first_wild(p);
            p == t
                || (t.starts_with(&p[..split]) && crate::fnmatch::fnmatch(&p[split..], &t[split..]))
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: std::env::var("KMOD_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1024),
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            #[test]
            fn patterns_in_any_order_find_exactly_what_libkmod_would(
                patterns in prop::collection::vec(pattern(), 1..30),
                texts in prop::collection::vec("[ab:*?\\\\\\[\\]!]{0,8}", 1..12),
                sort in any::<bool>(),
            ) {
                let mut patterns = patterns;
                if sort {
                    patterns.sort();
                }
                let mut b = SortedBuilder::new(0);
                let accepted: Vec<bool> =
                    patterns.iter().enumerate().map(|(i, p)| b.insert(p.as_bytes(), i as u32)).collect();
                let m = b.finish();
                prop_assert_eq!(m.len(), accepted.iter().filter(|&&a| a).count());
                // Every pattern of a text is also tried as a query.
                for t in texts.iter().chain(&patterns) {
                    let mut got = m.find(t.as_bytes());
                    got.sort_unstable();
                    got.dedup();
                    let want: Vec<u32> = patterns
                        .iter()
                        .enumerate()
                        .filter(|&(i, p)| accepted[i] && matches(p.as_bytes(), t.as_bytes()))
                        .map(|(i, _)| i as u32)
                        .collect();
                    prop_assert_eq!(got, want, "text {:?} patterns {:?}", t, patterns);
                }
            }
        }
    }
}
