//! Typed errors for reading the module index and resolving aliases.

use std::path::PathBuf;

/// A fault in one index file. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The file could not be read (missing, permission, I/O).
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is larger than the reader accepts.
    #[error("{path}: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The binary index does not start with libkmod's magic number.
    #[error("{path}: bad magic {found:#010x} (expected 0xb007f457)")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic found.
        found: u32,
    },
    /// The binary index has an unsupported major version.
    #[error("{path}: unsupported index version {found:#010x} (expected major 2)")]
    BadVersion {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// A structure runs past the end of the file.
    #[error("{path}: truncated: {what} at offset {offset} runs past the end ({len} bytes)")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// What was being read.
        what: &'static str,
        /// Where.
        offset: usize,
        /// The file length.
        len: usize,
    },
    /// A node offset points outside the file or into the header.
    #[error("{path}: dangling node offset {offset:#x} (file is {len} bytes)")]
    DanglingOffset {
        /// The file.
        path: PathBuf,
        /// The offset.
        offset: u32,
        /// The file length.
        len: usize,
    },
    /// A node is reachable twice: the trie has a loop or shared nodes.
    #[error("{path}: node at offset {offset:#x} reached twice (loop or shared node)")]
    Loop {
        /// The file.
        path: PathBuf,
        /// The node offset.
        offset: u32,
    },
    /// A child range is inverted (`first > last`).
    #[error("{path}: node at offset {offset:#x} has an inverted child range {first}..{last}")]
    BadChildRange {
        /// The file.
        path: PathBuf,
        /// The node offset.
        offset: usize,
        /// First child byte.
        first: u8,
        /// Last child byte.
        last: u8,
    },
    /// A key grows longer than any real alias or module name.
    #[error("{path}: key longer than {limit} bytes (corrupt trie)")]
    KeyTooLong {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// The file holds more entries than the reader accepts.
    #[error("{path}: more than {limit} entries (corrupt index)")]
    TooManyEntries {
        /// The file.
        path: PathBuf,
        /// The limit.
        limit: usize,
    },
    /// A key or value is not valid UTF-8.
    #[error("{path}: invalid UTF-8 in {what} at offset {offset}")]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// What.
        what: &'static str,
        /// Where (byte offset or line number).
        offset: usize,
    },
    /// A text index line cannot be parsed.
    #[error("{path}:{line}: malformed line: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why.
        reason: &'static str,
    },
    /// A module path in `modules.dep` escapes the module directory.
    #[error("{path}: module path {module_path:?} escapes the module directory")]
    PathEscape {
        /// The file.
        path: PathBuf,
        /// The offending module path.
        module_path: String,
    },
    /// Neither the binary nor the text form of a required index exists or is usable.
    #[error("no usable {name} in {dir}: {reason}")]
    Missing {
        /// The module directory.
        dir: PathBuf,
        /// The index name, e.g. `modules.dep`.
        name: &'static str,
        /// What went wrong with each form.
        reason: String,
    },
}

/// A query that cannot be looked up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    /// The alias has a `[` without `]` or a `]` without `[` (libkmod returns `EINVAL`).
    #[error("alias {0:?} has an unmatched bracket")]
    UnmatchedBracket(String),
    /// The alias is empty.
    #[error("empty alias")]
    Empty,
    /// The alias is longer than libkmod's `PATH_MAX - 1` bytes.
    #[error("alias of {0} bytes is longer than 4095 bytes")]
    TooLong(usize),
}
