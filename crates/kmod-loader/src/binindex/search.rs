//! Lookups straight from an index file, through the windows of a [`BinFile`]: libkmod's
//! `index_search` (one exact key) and `index_searchwild` (every pattern matching a string, in
//! libkmod's order). Nothing of the file is kept but the windows.
//!
//! A wildcard search walks the trie along the string's literal bytes; at each node on the way
//! it enters the children `*`, `?` and `[` (in that order) and every node below them, and
//! matches the pattern from the wildcard on (built from the nodes' prefixes and edges) against
//! the rest of the string with [`fnmatch`](crate::fnmatch); a prefix holding a wildcard is
//! entered the same way. Below a wildcard, children come in byte order and a node's own
//! values after its children's. The untrusted file cannot make it loop: the walk along the key
//! consumes a key byte per step, a node reached twice below one wildcard is an
//! [`IndexError::Loop`], a pattern longer than [`MAX_KEY_LEN`] an [`IndexError::KeyTooLong`];
//! the walk keeps its own stack, so depth costs no thread stack. ([`crate::index`] walks a
//! file whole when it opens it, which refuses shared nodes too, so the subtrees below
//! different wildcards are disjoint unless the file changes in place later.)

use std::cmp::Reverse;

use super::{BinFile, MAX_ENTRIES, MAX_KEY_LEN, Nodes, OFFSET_MASK};
use crate::error::IndexError;
use crate::fasthash::FnvMap;
use crate::fnmatch::{Token, compile_into, match_tokens};

/// What a search needs of a node: its prefix, its non-null children, whether it has values.
/// Filled again for each node (the buffers are reused).
#[derive(Default)]
struct Step {
    prefix: Vec<u8>,
    /// (edge byte, child offset word), in byte order.
    children: Vec<(u8, u32)>,
    has_values: bool,
}

impl Step {
    fn child(&self, c: u8) -> Option<u32> {
        self.children
            .binary_search_by_key(&c, |&(b, _)| b)
            .ok()
            .map(|i| self.children[i].1)
    }
}

fn is_wild(c: u8) -> bool {
    matches!(c, b'*' | b'?' | b'[')
}

/// A wildcard search's state: nodes reached below the current wildcard (loop guard), the node
/// being entered and the walk's stack, values found in discovery order, the pattern being
/// built and scratch for its compiled form.
struct Wild<'k> {
    seen: FnvMap<u32, ()>,
    step: Step,
    stack: Vec<Frame>,
    found: Vec<(u32, Vec<u8>)>,
    pattern: Vec<u8>,
    tokens: Vec<Token>,
    key: &'k [u8],
}

enum Frame {
    /// Enter a node: skip the first `skip` bytes of its prefix, after pushing `edge`.
    Enter {
        word: u32,
        skip: usize,
        edge: Option<u8>,
    },
    /// Leave a node: match its values, then cut the pattern back to `len`.
    Leave { word: u32, len: usize, values: bool },
}

impl BinFile {
    /// Parses the node of `word` into `out`; `false` for the null offset.
    fn step(&mut self, word: u32, out: &mut Step) -> Result<bool, IndexError> {
        self.visit(word, &mut |_, node| {
            out.prefix.clear();
            out.prefix.extend_from_slice(node.prefix);
            out.children.clear();
            out.children.extend(
                node.children
                    .chunks_exact(4)
                    .enumerate()
                    .filter_map(|(k, b)| {
                        let child = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                        // At most 256 children, so `k` fits a byte past `first`.
                        (child & OFFSET_MASK != 0)
                            .then(|| (node.first.wrapping_add(k as u8), child))
                    }),
            );
            out.has_values = node.value_count > 0;
            Ok(())
        })
    }

    /// Appends the (priority, value) pairs of the node of `word`, in file order.
    fn values_into(&mut self, word: u32, out: &mut Vec<(u32, Vec<u8>)>) -> Result<(), IndexError> {
        self.visit(word, &mut |view, node| {
            view.for_values(node, |priority, value| {
                out.push((priority, value.to_vec()));
                Ok(())
            })
        })?;
        // A node's count is bounded by the file's size; the sum over a search by this.
        if out.len() > MAX_ENTRIES {
            return Err(IndexError::TooManyEntries {
                path: self.path.clone(),
                limit: MAX_ENTRIES,
            });
        }
        Ok(())
    }

    /// The first value stored under exactly `key` (libkmod's `index_search`), read from the
    /// file.
    pub fn search(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, IndexError> {
        let mut word = self.root;
        let mut i = 0;
        let mut step = Step::default();
        // Each step consumes at least one key byte (the edge), so this ends.
        while self.step(word, &mut step)? {
            if !key
                .get(i..)
                .is_some_and(|rest| rest.starts_with(&step.prefix))
            {
                return Ok(None);
            }
            i += step.prefix.len();
            if i == key.len() {
                if !step.has_values {
                    return Ok(None);
                }
                let mut values = Vec::new();
                self.values_into(word, &mut values)?;
                return Ok(values.into_iter().next().map(|(_, v)| v));
            }
            let Some(child) = step.child(key[i]) else {
                return Ok(None);
            };
            word = child;
            i += 1;
        }
        Ok(None)
    }

    /// Every (priority, value) whose key, a wildcard pattern, matches all of `key`
    /// (libkmod's `index_searchwild`), read from the file, in libkmod's order: by priority,
    /// and among equal priorities the value found last first.
    pub fn search_wild(&mut self, key: &[u8]) -> Result<Vec<(u32, Vec<u8>)>, IndexError> {
        let mut w = Wild {
            seen: FnvMap::default(),
            step: Step::default(),
            stack: Vec::new(),
            found: Vec::new(),
            pattern: Vec::new(),
            tokens: Vec::new(),
            key,
        };
        let mut word = self.root;
        let mut i = 0;
        let mut step = Step::default();
        // Along the path each step consumes a key byte, so it ends without a guard.
        'path: while self.step(word, &mut step)? {
            for (j, &c) in step.prefix.iter().enumerate() {
                if is_wild(c) {
                    self.wild_below(&mut w, word, j, None, i + j)?;
                    break 'path;
                }
                if key.get(i + j) != Some(&c) {
                    break 'path;
                }
            }
            i += step.prefix.len();
            for c in [b'*', b'?', b'['] {
                if let Some(child) = step.child(c) {
                    self.wild_below(&mut w, child, 0, Some(c), i)?;
                }
            }
            if i == key.len() {
                if step.has_values {
                    self.values_into(word, &mut w.found)?;
                }
                break;
            }
            match step.child(key[i]) {
                Some(child) => word = child,
                None => break,
            }
            i += 1;
        }
        // libkmod inserts each value before the first of a priority not below its own.
        let mut found: Vec<(usize, (u32, Vec<u8>))> = w.found.into_iter().enumerate().collect();
        found.sort_by_key(|(n, (priority, _))| (*priority, Reverse(*n)));
        Ok(found.into_iter().map(|(_, v)| v).collect())
    }

    /// Marks a node as reached below the current wildcard; a second time is a loop (or a
    /// shared node, which depmod never writes). (A node may be reached again below another
    /// wildcard of the same search, when the key itself holds `*`, `?` or `[`.)
    fn reach(&self, w: &mut Wild<'_>, word: u32) -> Result<(), IndexError> {
        let off = word & OFFSET_MASK;
        if off != 0 && w.seen.insert(off, ()).is_some() {
            return Err(IndexError::Loop {
                path: self.path.clone(),
                offset: off,
            });
        }
        Ok(())
    }

    /// Matches every pattern below (and at) the node of `word` whose wildcard part starts at
    /// byte `skip` of its prefix (or at `edge`) against `key[subkey..]`.
    fn wild_below(
        &mut self,
        w: &mut Wild<'_>,
        word: u32,
        skip: usize,
        edge: Option<u8>,
        subkey: usize,
    ) -> Result<(), IndexError> {
        w.pattern.clear();
        w.seen.clear();
        self.reach(w, word)?;
        w.stack.clear();
        w.stack.push(Frame::Enter { word, skip, edge });
        while let Some(frame) = w.stack.pop() {
            match frame {
                Frame::Enter { word, skip, edge } => {
                    if !self.step(word, &mut w.step)? {
                        continue;
                    }
                    let len = w.pattern.len();
                    w.pattern.extend(edge);
                    w.pattern
                        .extend_from_slice(w.step.prefix.get(skip..).unwrap_or_default());
                    if w.pattern.len() > MAX_KEY_LEN {
                        return Err(IndexError::KeyTooLong {
                            path: self.path.clone(),
                            limit: MAX_KEY_LEN,
                        });
                    }
                    w.stack.push(Frame::Leave {
                        word,
                        len,
                        values: w.step.has_values,
                    });
                    for k in (0..w.step.children.len()).rev() {
                        let (c, child) = w.step.children[k];
                        self.reach(w, child)?;
                        w.stack.push(Frame::Enter {
                            word: child,
                            skip: 0,
                            edge: Some(c),
                        });
                    }
                }
                Frame::Leave { word, len, values } => {
                    let rest = w.key.get(subkey..).unwrap_or_default();
                    if values
                        && compile_into(&w.pattern, &mut w.tokens)
                        && match_tokens(&w.tokens, rest)
                    {
                        self.values_into(word, &mut w.found)?;
                    }
                    w.pattern.truncate(len);
                }
            }
        }
        Ok(())
    }
}
