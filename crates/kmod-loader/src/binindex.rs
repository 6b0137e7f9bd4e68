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
//!
//! Two readers share the node parser and the walk: [`BinIndex`] holds a whole file (for
//! lookups in small files), [`BinFile`] walks a file through a few windows of it (to check it
//! without holding the whole alias file, which would be the peak of devmgr's resident set),
//! and searches it in place, as libkmod does (`search`: [`BinFile::search`],
//! [`BinFile::search_wild`]).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::IndexError;

mod search;

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

/// One parsed node, borrowing from the bytes it was read from. Offsets are file offsets.
struct Node<'a> {
    prefix: &'a [u8],
    first: u8,
    children: &'a [u8],
    values_at: usize,
    value_count: u32,
}

/// Bytes `base..base + data.len()` of an index file of `len` bytes. A read past `data` is a
/// [`IndexError::Truncated`] naming the file offset (for a window short of the file's end,
/// [`BinFile`] reads a larger window and parses again).
#[derive(Clone, Copy)]
struct View<'a> {
    path: &'a Path,
    data: &'a [u8],
    base: usize,
    len: usize,
}

/// Reads a whole file with a size limit.
pub(crate) fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, IndexError> {
    let size = std::fs::metadata(path)
        .map_err(|e| io_error(path, e))?
        .len();
    within_limit(path, size, limit)?;
    std::fs::read(path).map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, source: std::io::Error) -> IndexError {
    IndexError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A file of `size` bytes is refused past `limit`.
fn within_limit(path: &Path, size: u64, limit: u64) -> Result<(), IndexError> {
    if size > limit {
        return Err(IndexError::TooLarge {
            path: path.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

impl<'a> View<'a> {
    fn truncated(&self, what: &'static str, offset: usize) -> IndexError {
        IndexError::Truncated {
            path: self.path.to_owned(),
            what,
            offset,
            len: self.len,
        }
    }

    /// The bytes from file offset `at` to the end of the view.
    fn from(&self, at: usize, what: &'static str) -> Result<&'a [u8], IndexError> {
        at.checked_sub(self.base)
            .and_then(|rel| self.data.get(rel..))
            .ok_or_else(|| self.truncated(what, at))
    }

    fn bytes(&self, at: usize, n: usize, what: &'static str) -> Result<&'a [u8], IndexError> {
        self.from(at, what)?
            .get(..n)
            .ok_or_else(|| self.truncated(what, at))
    }

    fn u32_at(&self, at: usize, what: &'static str) -> Result<u32, IndexError> {
        let b = self.bytes(at, 4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn cstr_at(&self, at: usize, what: &'static str) -> Result<&'a [u8], IndexError> {
        let rest = self.from(at, what)?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.truncated(what, at))?;
        Ok(&rest[..end])
    }

    /// Checks the header; returns the root node's offset word.
    fn header(&self) -> Result<u32, IndexError> {
        let magic = self.u32_at(0, "header magic")?;
        if magic != MAGIC {
            return Err(IndexError::BadMagic {
                path: self.path.to_owned(),
                found: magic,
            });
        }
        let version = self.u32_at(4, "header version")?;
        if version >> 16 != VERSION_MAJOR {
            return Err(IndexError::BadVersion {
                path: self.path.to_owned(),
                found: version,
            });
        }
        self.u32_at(8, "root offset")
    }

    /// Parses the node an offset word points at; `Ok(None)` for the null offset.
    fn node(&self, word: u32) -> Result<Option<Node<'a>>, IndexError> {
        let off = word & OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        let mut at = off as usize;
        if at < HEADER_LEN || at >= self.len {
            return Err(IndexError::DanglingOffset {
                path: self.path.to_owned(),
                offset: off,
                len: self.len,
            });
        }
        let mut prefix: &[u8] = &[];
        if word & FLAG_PREFIX != 0 {
            prefix = self.cstr_at(at, "node prefix")?;
            at += prefix.len() + 1;
        }
        let (mut first, mut children): (u8, &[u8]) = (0, &[]);
        if word & FLAG_CHILDREN != 0 {
            let range = self.bytes(at, 2, "child range")?;
            let (f, l) = (range[0], range[1]);
            if f > l {
                return Err(IndexError::BadChildRange {
                    path: self.path.to_owned(),
                    offset: at,
                    first: f,
                    last: l,
                });
            }
            at += 2;
            let n = (usize::from(l - f) + 1) * 4;
            children = self.bytes(at, n, "child offsets")?;
            first = f;
            at += n;
        }
        let mut value_count = 0;
        if word & FLAG_VALUES != 0 {
            value_count = self.u32_at(at, "value count")?;
            at += 4;
            // Each value needs at least 5 bytes (priority + NUL): reject absurd counts early.
            if (value_count as usize).saturating_mul(5) > self.len - at.min(self.len) {
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

    /// Calls `f(priority, value)` for each value of a node, in file order.
    fn for_values(
        &self,
        node: &Node<'_>,
        mut f: impl FnMut(u32, &'a [u8]) -> Result<(), IndexError>,
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
}

/// What a walk calls for each (key, priority, value).
type EntryFn<'f> = dyn FnMut(&[u8], u32, &[u8]) -> Result<(), IndexError> + 'f;

/// Where the walk gets its nodes from.
trait Nodes {
    /// Parses the node of `word` (with all its values readable) and hands it to `f`; `false`
    /// for the null offset.
    fn visit(
        &mut self,
        word: u32,
        f: &mut dyn FnMut(&View<'_>, &Node<'_>) -> Result<(), IndexError>,
    ) -> Result<bool, IndexError>;
}

impl Nodes for View<'_> {
    fn visit(
        &mut self,
        word: u32,
        f: &mut dyn FnMut(&View<'_>, &Node<'_>) -> Result<(), IndexError>,
    ) -> Result<bool, IndexError> {
        match self.node(word)? {
            Some(node) => f(self, &node).map(|()| true),
            None => Ok(false),
        }
    }
}

/// Visits every (key, priority, value) depth first, children in byte order (so keys come in
/// strictly increasing byte order, whatever the file holds; the values of one key in file
/// order). Detects loops and shared nodes, and bounds key length and entry count.
fn walk(
    nodes: &mut dyn Nodes,
    path: &Path,
    len: usize,
    root: u32,
    f: &mut EntryFn<'_>,
) -> Result<(), IndexError> {
    let mut seen = vec![0u64; len / 64 + 1];
    let mut key: Vec<u8> = Vec::with_capacity(256);
    // (node offset word, key length before the edge byte, edge byte or None for the root)
    let mut stack: Vec<(u32, usize, Option<u8>)> = vec![(root, 0, None)];
    let mut entries = 0usize;
    while let Some((word, keylen, edge)) = stack.pop() {
        let off = word & OFFSET_MASK;
        nodes.visit(word, &mut |view, node| {
            let (w, bit) = ((off / 64) as usize, 1u64 << (off % 64));
            if seen[w] & bit != 0 {
                return Err(IndexError::Loop {
                    path: path.to_owned(),
                    offset: off,
                });
            }
            seen[w] |= bit;
            key.truncate(keylen);
            key.extend(edge);
            key.extend_from_slice(node.prefix);
            if key.len() > MAX_KEY_LEN {
                return Err(IndexError::KeyTooLong {
                    path: path.to_owned(),
                    limit: MAX_KEY_LEN,
                });
            }
            entries += node.value_count as usize;
            if entries > MAX_ENTRIES {
                return Err(IndexError::TooManyEntries {
                    path: path.to_owned(),
                    limit: MAX_ENTRIES,
                });
            }
            view.for_values(node, |p, v| f(&key, p, v))?;
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
            Ok(())
        })?;
    }
    Ok(())
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
        idx.root = idx.view().header()?;
        // Parse the root now so that a dangling root is reported at open time.
        idx.view().node(idx.root)?;
        Ok(idx)
    }

    fn view(&self) -> View<'_> {
        View {
            path: &self.path,
            data: &self.data,
            base: 0,
            len: self.data.len(),
        }
    }

    /// The file this index was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of heap memory held (the file contents).
    pub fn heap_bytes(&self) -> usize {
        self.data.capacity() + self.path.as_os_str().len()
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

    /// The first value stored under exactly `key` (libkmod's `index_search`).
    pub fn search(&self, key: &[u8]) -> Result<Option<&[u8]>, IndexError> {
        let view = self.view();
        let mut word = self.root;
        let mut i = 0;
        // Each step consumes at least one key byte, so this terminates.
        while let Some(node) = view.node(word)? {
            if !key[i.min(key.len())..].starts_with(node.prefix) {
                return Ok(None);
            }
            i += node.prefix.len();
            if i == key.len() {
                if node.value_count == 0 {
                    return Ok(None);
                }
                let priority_at = node.values_at;
                let value = view.cstr_at(priority_at + 4, "value")?;
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
    /// count.
    pub fn for_each(
        &self,
        mut f: impl FnMut(&[u8], u32, &[u8]) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let mut view = self.view();
        walk(&mut view, &self.path, self.data.len(), self.root, &mut f)
    }
}

/// Bytes read at a time by [`BinFile`]; a node that does not fit is read again in a window
/// twice as large.
pub const WINDOW: usize = 64 << 10;
/// Windows [`BinFile`] keeps.
const WINDOWS: usize = 4;

/// An index file walked without holding it: [`BinFile::for_each`] gives what
/// [`BinIndex::for_each`] gives, reading the nodes through at most four windows of the file
/// (depmod writes a subtree's nodes next to each other, so a depth-first walk mostly stays in
/// them, and a whole walk reads the file about twice — `tests/integration/windowed_walk.rs`
/// bounds it).
pub struct BinFile {
    path: PathBuf,
    file: File,
    len: usize,
    root: u32,
    window: usize,
    /// (file offset, bytes) of each window; replaced round-robin.
    windows: Vec<(usize, Vec<u8>)>,
    next: usize,
    read: u64,
}

impl std::fmt::Debug for BinFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinFile")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("window", &self.window)
            .field("bytes_read", &self.read)
            .finish_non_exhaustive()
    }
}

impl BinFile {
    /// Opens an index file and checks its header and root node.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let file = File::open(path).map_err(|e| io_error(path, e))?;
        let size = file.metadata().map_err(|e| io_error(path, e))?.len();
        within_limit(path, size, MAX_FILE_LEN)?;
        let mut bin = BinFile {
            path: path.to_owned(),
            file,
            // At most MAX_FILE_LEN (64 MiB): fits.
            len: usize::try_from(size).unwrap_or(usize::MAX),
            root: 0,
            window: WINDOW,
            windows: Vec::with_capacity(WINDOWS),
            next: 0,
            read: 0,
        };
        let at = bin.load(0, HEADER_LEN)?;
        bin.root = bin.view(at).header()?;
        let root = bin.root;
        bin.visit(root, &mut |_, _| Ok(()))?;
        Ok(bin)
    }

    /// Reads windows of `bytes` instead of [`WINDOW`] (tests use small ones to cross window
    /// edges often).
    pub fn with_window(mut self, bytes: usize) -> Self {
        self.window = bytes.max(16);
        self
    }

    /// The file's size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the file is empty (it never is once opened: the header is checked).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes read from the file so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of heap memory held (the windows).
    pub fn heap_bytes(&self) -> usize {
        self.windows
            .iter()
            .map(|(_, w)| w.capacity())
            .sum::<usize>()
            + self.windows.capacity() * std::mem::size_of::<(usize, Vec<u8>)>()
    }

    /// Drops the windows read so far and reads `bytes` at a time from now on.
    pub fn reset_windows(&mut self, bytes: usize) {
        self.windows = Vec::with_capacity(WINDOWS);
        self.next = 0;
        self.window = bytes.max(16);
    }

    fn view(&self, i: usize) -> View<'_> {
        let (base, data) = &self.windows[i];
        View {
            path: &self.path,
            data,
            base: *base,
            len: self.len,
        }
    }

    /// Reads `size` bytes (fewer at the end of the file) at `at` into a window; returns it.
    fn load(&mut self, at: usize, size: usize) -> Result<usize, IndexError> {
        let size = size.min(self.len.saturating_sub(at));
        let mut data = vec![0u8; size];
        self.file
            .read_exact_at(&mut data, at as u64)
            .map_err(|e| io_error(&self.path, e))?;
        self.read += size as u64;
        if self.windows.len() < WINDOWS {
            self.windows.push((at, data));
            return Ok(self.windows.len() - 1);
        }
        let i = self.next;
        self.next = (self.next + 1) % WINDOWS;
        self.windows[i] = (at, data);
        Ok(i)
    }

    /// Visits every (key, priority, value) as [`BinIndex::for_each`] does.
    pub fn for_each(
        &mut self,
        mut f: impl FnMut(&[u8], u32, &[u8]) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let path = self.path.clone();
        let (len, root) = (self.len, self.root);
        walk(self, &path, len, root, &mut f)
    }
}

impl Nodes for BinFile {
    fn visit(
        &mut self,
        word: u32,
        f: &mut dyn FnMut(&View<'_>, &Node<'_>) -> Result<(), IndexError>,
    ) -> Result<bool, IndexError> {
        let at = (word & OFFSET_MASK) as usize;
        if at == 0 {
            return Ok(false);
        }
        // A window holding the node's start, else a new one there. (An offset outside the
        // file gets a window too, possibly empty: the parser reports it as dangling.)
        let found = self
            .windows
            .iter()
            .position(|(base, data)| *base <= at && at < base + data.len());
        let mut i = match found {
            Some(i) => i,
            None => {
                // depmod writes a node after its children (a subtree ends with its root), so a
                // depth-first walk goes on mostly below the node: most of the window goes there.
                let start = at.saturating_sub(self.window / 4 * 3).max(HEADER_LEN);
                self.load(start, self.window)?
            }
        };
        let mut size = self.window;
        loop {
            let view = self.view(i);
            // The node and all its values must lie inside the window before `f` sees any of
            // them: a retry in a larger window must not repeat a value.
            let parsed = view.node(word).and_then(|node| match node {
                Some(node) => view.for_values(&node, |_, _| Ok(())).map(|()| Some(node)),
                None => Ok(None),
            });
            let window_end = view.base + view.data.len();
            match parsed {
                Ok(Some(node)) => return f(&view, &node).map(|()| true),
                Ok(None) => return Ok(false),
                Err(IndexError::Truncated { .. }) if window_end < self.len => {
                    size = size.saturating_mul(2);
                    i = self.load(at, size)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
