//! Reader for libkmod's binary index format (`modules.*.bin`), treating the file as untrusted.
//!
//! Layout (all integers big-endian u32): magic `0xB007F457`, version (major 2), root node
//! offset. A node offset word carries flags in its high nibble (`0x80` prefix present, `0x40`
//! values present, `0x20` children present) and the file offset in its low 28 bits; offset 0
//! means "no node". A node is `[prefix NUL] [first u8, last u8, (last-first+1) × u32 child]
//! [u32 count, count × (u32 priority, value NUL)]`.
//!
//! Every read is bounds-checked; traversal visits each node at most once (a repeated node is
//! reported as a loop); keys are capped at [`MAX_KEY_LEN`] and entries at [`MAX_ENTRIES`].

use std::path::{Path, PathBuf};

use crate::error::IndexError;

const MAGIC: u32 = 0xB007_F457;
const VERSION_MAJOR: u32 = 2;
const FLAG_PREFIX: u32 = 0x8000_0000;
const FLAG_VALUES: u32 = 0x4000_0000;
const FLAG_CHILDREN: u32 = 0x2000_0000;
const OFFSET_MASK: u32 = 0x0FFF_FFFF;
const HEADER_LEN: usize = 12;

/// Largest index file accepted (the real ones are about 1 MiB).
pub const MAX_FILE_LEN: u64 = 64 << 20;
/// Longest key accepted while walking a trie.
pub const MAX_KEY_LEN: usize = 4096;
/// Most entries accepted from one index.
pub const MAX_ENTRIES: usize = 1 << 20;

/// A binary index file held in memory.
#[derive(Debug, Clone)]
pub struct BinIndex {
    path: PathBuf,
    data: Vec<u8>,
    root: u32,
}

/// One parsed node, borrowing from the file.
struct Node<'a> {
    prefix: &'a [u8],
    first: u8,
    children: &'a [u8],
    values_at: usize,
    value_count: u32,
}

/// Reads a whole file with a size limit.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, IndexError> {
    let io = |source| IndexError::Io {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > limit {
        return Err(IndexError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    std::fs::read(path).map_err(io)
}

impl BinIndex {
    /// Reads and validates the header of an index file.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let data = read_limited(path, MAX_FILE_LEN)?;
        Self::from_bytes(path.to_owned(), data)
    }

    /// Validates the header of an index held in memory; `path` is used in errors.
    pub fn from_bytes(path: PathBuf, data: Vec<u8>) -> Result<Self, IndexError> {
        let mut idx = BinIndex {
            path,
            data,
            root: 0,
        };
        let magic = idx.u32_at(0, "header magic")?;
        if magic != MAGIC {
            return Err(IndexError::BadMagic {
                path: idx.path,
                found: magic,
            });
        }
        let version = idx.u32_at(4, "header version")?;
        if version >> 16 != VERSION_MAJOR {
            return Err(IndexError::BadVersion {
                path: idx.path,
                found: version,
            });
        }
        idx.root = idx.u32_at(8, "root offset")?;
        // Parse the root now so that a dangling root is reported at open time.
        idx.node(idx.root)?;
        Ok(idx)
    }

    /// The file this index was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of heap memory held (the file contents).
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() + self.path.as_os_str().len()
    }

    fn truncated(&self, what: &'static str, offset: usize) -> IndexError {
        IndexError::Truncated {
            path: self.path.clone(),
            what,
            offset,
            len: self.data.len(),
        }
    }

    fn u32_at(&self, at: usize, what: &'static str) -> Result<u32, IndexError> {
        let bytes = self
            .data
            .get(at..at.saturating_add(4))
            .ok_or_else(|| self.truncated(what, at))?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn cstr_at(&self, at: usize, what: &'static str) -> Result<&[u8], IndexError> {
        let rest = self
            .data
            .get(at..)
            .ok_or_else(|| self.truncated(what, at))?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.truncated(what, at))?;
        Ok(&rest[..end])
    }

    /// Parses the node an offset word points at; `Ok(None)` for the null offset.
    fn node(&self, word: u32) -> Result<Option<Node<'_>>, IndexError> {
        let off = word & OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        let mut at = off as usize;
        if at < HEADER_LEN || at >= self.data.len() {
            return Err(IndexError::DanglingOffset {
                path: self.path.clone(),
                offset: off,
                len: self.data.len(),
            });
        }
        let mut prefix: &[u8] = &[];
        if word & FLAG_PREFIX != 0 {
            prefix = self.cstr_at(at, "node prefix")?;
            at += prefix.len() + 1;
        }
        let (mut first, mut children): (u8, &[u8]) = (0, &[]);
        if word & FLAG_CHILDREN != 0 {
            let range = self
                .data
                .get(at..at + 2)
                .ok_or_else(|| self.truncated("child range", at))?;
            let (f, l) = (range[0], range[1]);
            if f > l {
                return Err(IndexError::BadChildRange {
                    path: self.path.clone(),
                    offset: at,
                    first: f,
                    last: l,
                });
            }
            at += 2;
            let n = (usize::from(l - f) + 1) * 4;
            children = self
                .data
                .get(at..at + n)
                .ok_or_else(|| self.truncated("child offsets", at))?;
            first = f;
            at += n;
        }
        let mut value_count = 0;
        if word & FLAG_VALUES != 0 {
            value_count = self.u32_at(at, "value count")?;
            at += 4;
            // Each value needs at least 5 bytes (priority + NUL): reject absurd counts early.
            if (value_count as usize).saturating_mul(5) > self.data.len() - at.min(self.data.len())
            {
                return Err(self.truncated("values", at));
            }
        }
        Ok(Some(Node {
            prefix,
            first,
            children,
            values_at: at,
            value_count,
        }))
    }

    fn child(node: &Node<'_>, c: u8) -> u32 {
        if c < node.first {
            return 0;
        }
        let i = usize::from(c - node.first) * 4;
        match node.children.get(i..i + 4) {
            Some(b) => u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            None => 0,
        }
    }

    /// Calls `f(priority, value)` for each value of a node, in file order.
    fn for_values<'s>(
        &'s self,
        node: &Node<'_>,
        mut f: impl FnMut(u32, &'s [u8]) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let mut at = node.values_at;
        for _ in 0..node.value_count {
            let priority = self.u32_at(at, "value priority")?;
            let value = self.cstr_at(at + 4, "value")?;
            at += 4 + value.len() + 1;
            f(priority, value)?;
        }
        Ok(())
    }

    /// The first value stored under exactly `key` (libkmod's `index_search`).
    pub fn search(&self, key: &[u8]) -> Result<Option<&[u8]>, IndexError> {
        let mut word = self.root;
        let mut i = 0;
        // Each step consumes at least one key byte, so this terminates.
        while let Some(node) = self.node(word)? {
            if !key[i.min(key.len())..].starts_with(node.prefix) {
                return Ok(None);
            }
            i += node.prefix.len();
            if i == key.len() {
                if node.value_count == 0 {
                    return Ok(None);
                }
                let priority_at = node.values_at;
                let value = self.cstr_at(priority_at + 4, "value")?;
                return Ok(Some(value));
            }
            word = Self::child(&node, key[i]);
            i += 1;
        }
        Ok(None)
    }

    /// Visits every (key, priority, value) in the index, depth first, children in byte order
    /// (so keys come in strictly increasing byte order, whatever the file holds; the values of
    /// one key in file order). Detects loops and shared nodes, and bounds key length and entry
    /// count. Values borrow from the index.
    pub fn for_each<'s>(
        &'s self,
        mut f: impl FnMut(&[u8], u32, &'s [u8]) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let mut seen = vec![0u64; self.data.len() / 64 + 1];
        let mut key: Vec<u8> = Vec::with_capacity(256);
        // (node offset word, key length before the edge byte, edge byte or None for the root)
        let mut stack: Vec<(u32, usize, Option<u8>)> = vec![(self.root, 0, None)];
        let mut entries = 0usize;
        while let Some((word, keylen, edge)) = stack.pop() {
            let off = word & OFFSET_MASK;
            let Some(node) = self.node(word)? else {
                continue;
            };
            let (w, bit) = ((off / 64) as usize, 1u64 << (off % 64));
            if seen[w] & bit != 0 {
                return Err(IndexError::Loop {
                    path: self.path.clone(),
                    offset: off,
                });
            }
            seen[w] |= bit;
            key.truncate(keylen);
            key.extend(edge);
            key.extend_from_slice(node.prefix);
            if key.len() > MAX_KEY_LEN {
                return Err(IndexError::KeyTooLong {
                    path: self.path.clone(),
                    limit: MAX_KEY_LEN,
                });
            }
            entries += node.value_count as usize;
            if entries > MAX_ENTRIES {
                return Err(IndexError::TooManyEntries {
                    path: self.path.clone(),
                    limit: MAX_ENTRIES,
                });
            }
            self.for_values(&node, |p, v| f(&key, p, v))?;
            // Push children in reverse so that they pop in ascending byte order.
            let count = node.children.len() / 4;
            for k in (0..count).rev() {
                let b = &node.children[k * 4..k * 4 + 4];
                let child = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                if child & OFFSET_MASK != 0 {
                    // `count` is at most 256 and `first + k` fits because `last` is a u8.
                    let c = node.first.wrapping_add(k as u8);
                    stack.push((child, key.len(), Some(c)));
                }
            }
        }
        Ok(())
    }
}
