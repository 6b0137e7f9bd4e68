//! The module index of one module directory: aliases, dependencies, builtin modules, read as
//! `docs/kmod-loader.md#reading-the-module-index` describes (binary files looked up in place,
//! text fallbacks for a missing or corrupt one).
//!
//! [`ModuleIndex::open`] keeps four [`LOOKUP_WINDOW`]s per binary alias and dependency file for
//! its lookups ([`BinFile::search_wild`], [`BinFile::search`]); only `modules.builtin.bin`
//! (small) is kept as read.
//!
//! # Text fallbacks
//!
//! A text fallback is held in memory: the alias patterns as written, sorted, each tried at a
//! lookup by libkmod's rule ([`alias_matches`]; a plain scan), with one `u32` per pattern (the index of its
//! (module, priority) pair) and the module names in one string buffer; `modules.dep` as a
//! table of module names (sorted, for binary search) to a path id and a run of dependency path
//! ids, every distinct path stored once; lines that do not parse are kept verbatim and reported
//! when looked up. The fallbacks give the same plans as the binary files
//! (`tests/integration/differential.rs`, `tests/integration/in_place.rs`).
//!
//! libkmod's discovery order, which orders matches of equal priority from different modules,
//! is kept only for the patterns whose priority several modules share (none in
//! `modules.alias`, whose priorities are the modules' order; all in `modules.builtin.modinfo`,
//! which has none), computed from the sorted patterns (`PostOrder`).

use std::collections::HashSet;
use std::hash::Hash;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tracing::{debug, warn};

use crate::binindex::{BinFile, BinIndex, MAX_FILE_LEN, read_limited};
use crate::error::IndexError;
use crate::fasthash::FnvMap;
use crate::fnmatch::{alias_can_match, alias_matches, first_wildcard};
use crate::normalize::{module_name_from_path, normalize_alias};
use crate::strs::{Interner, Strs};

/// Which form of an index was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// libkmod's binary trie (`modules.*.bin`).
    Binary,
    /// The text file (after the binary one was missing or invalid).
    Text,
    /// Neither exists (only allowed for optional indexes).
    Absent,
}

/// The forms each index was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forms {
    /// `modules.alias(.bin)`.
    pub alias: Form,
    /// `modules.dep(.bin)`.
    pub dep: Form,
    /// `modules.builtin(.bin)`.
    pub builtin: Form,
    /// `modules.builtin.alias.bin` / `modules.builtin.modinfo`.
    pub builtin_alias: Form,
}

/// One line of `modules.dep`: the module file and its dependencies, in the order listed (the
/// full transitive closure, as depmod writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    /// Absolute path of the module file (inside the module directory).
    pub path: PathBuf,
    /// Dependencies as (module name, absolute path), in the order of the line.
    pub deps: Vec<(String, PathBuf)>,
}

/// Whether an alias pattern counts in [`ModuleIndex::alias_count`]: it can match something
/// ([`alias_can_match`]).
fn counted(pattern: &[u8]) -> bool {
    alias_can_match(pattern)
}

/// The aliases of a text fallback: the patterns as written, tried one by one with
/// [`alias_matches`] (rare, and looked up a few times per boot), with what orders their matches as libkmod
/// does. An entry is a pattern's number in byte order.
#[derive(Debug, Clone, Default)]
struct AliasSet {
    /// The patterns, in byte order, one after the other.
    patterns: Vec<u8>,
    /// Per entry: the end of its pattern in `patterns` and its (module, priority) in `pairs`.
    entries: Vec<(u32, u32)>,
    /// Distinct (module name id, libkmod priority).
    pairs: Vec<(u32, u32)>,
    /// (entry, position of the first wildcard or `u32::MAX`, post-order number of the
    /// pattern) for the entries whose priority several modules share, sorted by entry: their
    /// order among equal priorities is libkmod's discovery order.
    ranks: Vec<(u32, u32, u32)>,
}

/// Numbers patterns, given in byte order, in post-order of their trie (a pattern after every
/// pattern it is a proper prefix of, others in byte order): with the position of the first
/// wildcard, that is the order in which libkmod's `index_searchwild` discovers them.
#[derive(Default)]
struct PostOrder {
    prev: Vec<u8>,
    /// Patterns that are prefixes of `prev`: (length, first wildcard, entries first..=last).
    open: Vec<(usize, u32, u32, u32)>,
    next: u32,
}

impl PostOrder {
    fn push(&mut self, key: &[u8], entry: u32, closed: &mut impl FnMut(u32, u32, u32, u32)) {
        let lcp = self
            .prev
            .iter()
            .zip(key)
            .take_while(|(a, b)| a == b)
            .count();
        if lcp == key.len()
            && lcp == self.prev.len()
            && let Some(top) = self.open.last_mut()
        {
            top.3 = entry;
            return;
        }
        while self.open.last().is_some_and(|o| o.0 > lcp) {
            self.pop(closed);
        }
        let wild = first_wildcard(key).map_or(u32::MAX, |p| p as u32);
        self.open.push((key.len(), wild, entry, entry));
        self.prev.clear();
        self.prev.extend_from_slice(key);
    }

    fn pop(&mut self, closed: &mut impl FnMut(u32, u32, u32, u32)) {
        if let Some((_, wild, first, last)) = self.open.pop() {
            // Patterns without wildcards are all equal in discovery order.
            let post = if wild == u32::MAX { 0 } else { self.next };
            closed(first, last, wild, post);
            self.next += 1;
        }
    }

    fn finish(&mut self, closed: &mut impl FnMut(u32, u32, u32, u32)) {
        while !self.open.is_empty() {
            self.pop(closed);
        }
    }
}

impl AliasSet {
    /// The set of (pattern, module, priority) rows, given in file order; a pattern that can
    /// match nothing is skipped with a warning.
    fn build(mut rows: Vec<(String, String, u32)>, names: &mut Interner) -> AliasSet {
        rows.retain(|(pattern, _, _)| {
            let keep = counted(pattern.as_bytes());
            if !keep {
                warn!(%pattern, "alias pattern skipped: it can never match");
            }
            keep
        });
        // Stable: rows of one pattern keep file order.
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let mut set = AliasSet::default();
        let mut pair_ids: FnvMap<(u32, u32), u32> = FnvMap::default();
        for (pattern, module, priority) in &rows {
            set.patterns.extend_from_slice(pattern.as_bytes());
            let module = names.intern(module);
            let pair = *pair_ids.entry((module, *priority)).or_insert_with(|| {
                set.pairs.push((module, *priority));
                (set.pairs.len() - 1) as u32
            });
            set.entries.push((set.patterns.len() as u32, pair));
        }
        // Priorities shared by several modules (every pair is distinct).
        let mut by_priority: Vec<u32> = set.pairs.iter().map(|p| p.1).collect();
        by_priority.sort_unstable();
        let mut shared: Vec<u32> = by_priority
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        shared.dedup();
        if !shared.is_empty() {
            let tracked = |e: u32| shared.binary_search(&set.pair(e).1).is_ok();
            let mut ranks = Vec::new();
            let mut closed = |first: u32, last: u32, wild: u32, post: u32| {
                ranks.extend(
                    (first..=last)
                        .filter(|&e| tracked(e))
                        .map(|e| (e, wild, post)),
                );
            };
            let mut order = PostOrder::default();
            for (entry, (pattern, _, _)) in rows.iter().enumerate() {
                order.push(pattern.as_bytes(), entry as u32, &mut closed);
            }
            order.finish(&mut closed);
            ranks.sort_unstable();
            set.ranks = ranks;
        }
        set.patterns.shrink_to_fit();
        set.entries.shrink_to_fit();
        set.pairs.shrink_to_fit();
        set.ranks.shrink_to_fit();
        set
    }

    /// The entries whose pattern matches `query`, by libkmod's rule ([`alias_matches`]: what
    /// the binary file would answer).
    fn find(&self, query: &[u8]) -> Vec<u32> {
        let mut start = 0;
        let mut hits = Vec::new();
        for (entry, &(end, _)) in self.entries.iter().enumerate() {
            if alias_matches(&self.patterns[start..end as usize], query) {
                hits.push(entry as u32);
            }
            start = end as usize;
        }
        hits
    }

    fn pair(&self, entry: u32) -> (u32, u32) {
        self.pairs[self.entries[entry as usize].1 as usize]
    }

    /// Sort key of an entry in discovery order (only meaningful for tracked entries).
    fn rank(&self, entry: u32) -> (u32, u32) {
        match self.ranks.binary_search_by_key(&entry, |r| r.0) {
            Ok(i) => (self.ranks[i].1, self.ranks[i].2),
            Err(_) => (u32::MAX, 0),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.patterns.capacity()
            + self.entries.capacity() * 8
            + self.pairs.capacity() * 8
            + self.ranks.capacity() * 12
    }
}

/// An entry of the dependency table whose line did not parse (kept verbatim in `raw`).
const RAW: u32 = u32::MAX;

/// `modules.dep` read from its text form.
#[derive(Debug, Clone, Default)]
struct DepTable {
    /// The file read (named in errors found at lookup).
    file: PathBuf,
    /// Module names, sorted.
    names: Strs,
    /// Per module: (path id or [`RAW`], end of its dependencies in `deps`).
    recs: Vec<(u32, u32)>,
    /// Dependency path ids.
    deps: Vec<u32>,
    /// Every distinct module path (relative to the module directory).
    paths: Strs,
    /// (record, line) of lines that did not parse; the lookup reports why.
    raw: Vec<(u32, Box<[u8]>)>,
}

/// Builds a [`DepTable`] from (name, line) in increasing name order.
struct DepTableBuilder {
    table: DepTable,
    paths: Interner,
}

impl DepTableBuilder {
    fn new(file: PathBuf) -> Self {
        DepTableBuilder {
            table: DepTable {
                file,
                ..DepTable::default()
            },
            paths: Interner::default(),
        }
    }

    /// Adds the line of a module; a name not after the previous one is ignored (the first
    /// line of a name wins).
    fn add(&mut self, name: &str, line: &[u8]) {
        let t = &mut self.table;
        if let Some(last) = t.names.len().checked_sub(1)
            && t.names.get(last as u32).as_bytes() >= name.as_bytes()
        {
            return;
        }
        let rec = t.names.push(name);
        let parsed = std::str::from_utf8(line).ok().and_then(|line| {
            let (path, deps) = line.split_once(':').unwrap_or((line, ""));
            let path = path.trim();
            (!escapes(path) && !deps.split_whitespace().any(escapes)).then_some((path, deps))
        });
        let Some((path, deps)) = parsed else {
            t.raw.push((rec, line.into()));
            t.recs.push((RAW, t.deps.len() as u32));
            return;
        };
        let path = self.paths.intern(path);
        t.deps
            .extend(deps.split_whitespace().map(|d| self.paths.intern(d)));
        t.recs.push((path, t.deps.len() as u32));
    }

    fn finish(self) -> DepTable {
        let mut t = self.table;
        t.paths = self.paths.into_strs();
        t.names.shrink_to_fit();
        t.recs.shrink_to_fit();
        t.deps.shrink_to_fit();
        t.raw.shrink_to_fit();
        t
    }
}

impl DepTable {
    fn get(&self, dir: &Path, name: &str) -> Result<Option<DepEntry>, IndexError> {
        let Some(id) = self.names.find_sorted(name) else {
            return Ok(None);
        };
        let (path, end) = self.recs[id as usize];
        if path == RAW {
            let line = match self.raw.binary_search_by_key(&id, |r| r.0) {
                Ok(i) => &*self.raw[i].1,
                Err(_) => &[],
            };
            return parse_dep_line(dir, &self.file, line).map(Some);
        }
        let start = match id.checked_sub(1) {
            Some(prev) => self.recs[prev as usize].1,
            None => 0,
        };
        let deps = self.deps[start as usize..end as usize]
            .iter()
            .map(|&p| {
                let p = self.paths.get(p);
                (module_name_from_path(p), dir.join(p))
            })
            .collect();
        Ok(Some(DepEntry {
            path: dir.join(self.paths.get(path)),
            deps,
        }))
    }

    fn heap_bytes(&self) -> usize {
        self.names.heap_bytes()
            + self.recs.capacity() * 8
            + self.deps.capacity() * 4
            + self.paths.heap_bytes()
            + self.raw.iter().map(|r| 24 + r.1.len()).sum::<usize>()
    }
}

#[derive(Debug, Clone)]
enum BuiltinSource {
    Bin(BinIndex),
    Text(HashSet<String>),
    Absent,
}

/// An index file looked up in place ([`ModuleIndex::open`]), shared by clones of the index.
type InPlace = Arc<Mutex<BinFile>>;

/// Bytes [`ModuleIndex::open`] reads at a time from a file it looks up in place (four such
/// windows stay with each file; a lookup reads only the windows of the nodes it passes).
pub const LOOKUP_WINDOW: usize = 4 << 10;

/// The index files that are looked up in place; `None` for a text fallback (held in memory) or
/// an absent file.
#[derive(Debug, Clone, Default)]
struct InPlaceFiles {
    aliases: Option<InPlace>,
    builtin_aliases: Option<InPlace>,
    deps: Option<InPlace>,
}

/// The loaded index of a module directory.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    dir: PathBuf,
    /// Files looked up in place.
    files: InPlaceFiles,
    /// Patterns of the alias file looked up in place (what [`ModuleIndex::alias_count`] says).
    in_place_aliases: usize,
    /// Module names of both text fallback alias sets.
    names: Strs,
    aliases: AliasSet,
    builtin_aliases: AliasSet,
    deps: DepTable,
    builtin: BuiltinSource,
    forms: Forms,
}

/// Orders two alias patterns by the order in which libkmod's `index_searchwild` discovers
/// them: by the position of the first wildcard byte, then post-order over the trie (a key
/// comes after the keys it is a proper prefix of, siblings in byte order); patterns without
/// wildcards (exact key matches) come last. (The reference for [`PostOrder`].)
#[cfg(test)]
fn discovery_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (wa, wb) = (first_wildcard(a), first_wildcard(b));
    match (wa, wb) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Greater,
        (Some(_), None) => return Ordering::Less,
        (Some(x), Some(y)) if x != y => return x.cmp(&y),
        _ => {}
    }
    if a.len() != b.len() {
        if b.starts_with(a) {
            return Ordering::Greater;
        }
        if a.starts_with(b) {
            return Ordering::Less;
        }
    }
    a.cmp(b)
}

fn utf8<'a>(
    path: &Path,
    what: &'static str,
    bytes: &'a [u8],
    at: usize,
) -> Result<&'a str, IndexError> {
    std::str::from_utf8(bytes).map_err(|_| IndexError::NotUtf8 {
        path: path.to_owned(),
        what,
        offset: at,
    })
}

/// Whether a module path from `modules.dep` is empty, absolute or has `..` components.
fn escapes(rel: &str) -> bool {
    rel.is_empty()
        || Path::new(rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
}

/// Resolves a module path from `modules.dep` against the module directory, refusing absolute
/// paths and `..` components.
fn module_path(dir: &Path, index: &Path, rel: &str) -> Result<PathBuf, IndexError> {
    if escapes(rel) {
        return Err(IndexError::PathEscape {
            path: index.to_owned(),
            module_path: rel.to_owned(),
        });
    }
    Ok(dir.join(rel))
}

/// Parses one `modules.dep` line (`PATH: DEPS`), reporting faults.
fn parse_dep_line(dir: &Path, index: &Path, line: &[u8]) -> Result<DepEntry, IndexError> {
    let line = utf8(index, "dependency line", line, 0)?;
    let (path, deps) = line.split_once(':').unwrap_or((line, ""));
    let path = module_path(dir, index, path.trim())?;
    let deps = deps
        .split_whitespace()
        .map(|d| Ok((module_name_from_path(d), module_path(dir, index, d)?)))
        .collect::<Result<Vec<_>, IndexError>>()?;
    Ok(DepEntry { path, deps })
}

/// Walks the whole trie once so that corruption is found at load time, not at lookup time.
fn validated(bin: BinIndex) -> Result<BinIndex, IndexError> {
    bin.for_each(|_, _, _| Ok(()))?;
    Ok(bin)
}

/// The errors of an index's binary form and of its text form (boxed: two errors are large).
type BothFailed = Box<(IndexError, IndexError)>;

/// One index read in its binary form or else its text form: `binary` is the outcome of reading
/// the binary file (the caller keeps what it read); when that failed, `text` reads the text
/// file at `text_path`, with a warning if the binary file exists but is invalid (a missing one
/// is normal for some indexes). Gives the form read and, for the text form, what `text`
/// returned; when both fail, both errors.
fn binary_or_text<T>(
    binary: Result<(), IndexError>,
    text_path: &Path,
    what: &str,
    text: impl FnOnce(&Path) -> Result<T, IndexError>,
) -> Result<(Form, Option<T>), BothFailed> {
    let Err(bin_err) = binary else {
        return Ok((Form::Binary, None));
    };
    match text(text_path) {
        Ok(value) => {
            if !not_found(&bin_err) {
                warn!(error = %bin_err, fallback = %text_path.display(), "invalid binary {what}, using the text file");
            }
            Ok((Form::Text, Some(value)))
        }
        Err(text_err) => Err(Box::new((bin_err, text_err))),
    }
}

fn not_found(e: &IndexError) -> bool {
    matches!(e, IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// (normalised pattern, module name with `_`) of every line of a `modules.alias` text file.
fn read_alias_text(path: &Path) -> Result<Vec<(String, String)>, IndexError> {
    let data = read_limited(path, MAX_FILE_LEN)?;
    let text = utf8(path, "file", &data, 0)?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split_whitespace();
        let (Some("alias"), Some(pattern), Some(module)) = (it.next(), it.next(), it.next()) else {
            return Err(IndexError::BadLine {
                path: path.to_owned(),
                line: n + 1,
                reason: "expected `alias PATTERN MODULE`",
            });
        };
        match normalize_alias(pattern) {
            Ok(p) => rows.push((p, module.replace('-', "_"))),
            Err(e) => warn!(file = %path.display(), line = n + 1, error = %e, "skipping alias"),
        }
    }
    Ok(rows)
}

/// The items in order, each at its first occurrence. Few items: a linear scan; many (a
/// hostile index): a set, to stay linear.
fn first_occurrences<T: Eq + Hash + Clone>(items: impl ExactSizeIterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    let mut seen = (items.len() > 32).then(HashSet::new);
    for item in items {
        let new = match &mut seen {
            Some(seen) => seen.insert(item.clone()),
            None => !out.contains(&item),
        };
        if new {
            out.push(item);
        }
    }
    out
}

/// Opens a binary index for lookups in place: walks it whole once (so that corruption is found
/// now, not at a lookup), checking that values are UTF-8 for an alias index; returns the file,
/// reset to [`LOOKUP_WINDOW`]s, and the number of patterns that can match ([`counted`]).
fn checked_in_place(path: &Path, aliases: bool) -> Result<(InPlace, usize), IndexError> {
    let mut bin = BinFile::open(path)?.with_window(LOOKUP_WINDOW);
    let mut count = 0usize;
    let mut off = 0usize;
    bin.for_each(|key, _, value| {
        off += 1;
        if aliases {
            utf8(path, "module name", value, off)?;
            count += usize::from(counted(key));
        }
        Ok(())
    })?;
    bin.reset_windows(LOOKUP_WINDOW);
    Ok((Arc::new(Mutex::new(bin)), count))
}

/// A wildcard lookup in an alias file looked up in place: module names, first occurrence kept.
fn match_in_place(file: &InPlace, alias: &str) -> Result<Vec<String>, IndexError> {
    let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
    let found = file.search_wild(alias.as_bytes())?;
    let names = found
        .into_iter()
        .enumerate()
        .map(|(n, (_, value))| utf8(file.path(), "module name", &value, n).map(str::to_owned))
        .collect::<Result<Vec<String>, IndexError>>()?;
    Ok(first_occurrences(names.into_iter()))
}

impl ModuleIndex {
    /// Opens the index of `dir` (e.g. `/lib/modules/6.12.100+deb12-amd64`) for lookups in
    /// place, as libkmod does: the binary alias and dependency files are checked whole (a walk
    /// of every node, so that a corrupt file falls back to its text form now, not at a lookup)
    /// and then read again at each lookup, a few [`LOOKUP_WINDOW`]s at a time; nothing of them
    /// is kept but four windows per file. Text fallbacks are kept as written and scanned at each
    /// lookup.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        let mut idx = ModuleIndex {
            dir: dir.to_owned(),
            files: InPlaceFiles::default(),
            in_place_aliases: 0,
            names: Strs::default(),
            aliases: AliasSet::default(),
            builtin_aliases: AliasSet::default(),
            deps: DepTable::default(),
            builtin: BuiltinSource::Absent,
            forms: Forms {
                alias: Form::Absent,
                dep: Form::Absent,
                builtin: Form::Absent,
                builtin_alias: Form::Absent,
            },
        };
        let mut names = Interner::default();
        // Dependencies first: a missing `modules.dep` is the first error, and a text one, read
        // whole, comes in a buffer above malloc's mmap threshold, handed back to the kernel when
        // freed. Read after the larger alias file it came from the heap instead (freeing a
        // mapped buffer raises the threshold to that buffer's size) and stayed resident.
        idx.load_deps()?;
        idx.load_aliases(&mut names)?;
        idx.load_builtin();
        idx.load_builtin_aliases(&mut names);
        idx.names = names.into_strs();
        debug!(
            dir = %dir.display(),
            aliases = idx.alias_count(),
            heap_bytes = idx.heap_bytes(),
            forms = ?idx.forms,
            "module index loaded"
        );
        Ok(idx)
    }

    /// The module directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Which form each index was read from.
    pub fn forms(&self) -> Forms {
        self.forms
    }

    /// Number of alias patterns (from `modules.alias`).
    pub fn alias_count(&self) -> usize {
        match self.files.aliases {
            Some(_) => self.in_place_aliases,
            None => self.aliases.entries.len(),
        }
    }

    /// Bytes of heap memory the index holds (approximate: allocator overhead not counted).
    pub fn heap_bytes(&self) -> usize {
        let builtin = match &self.builtin {
            BuiltinSource::Bin(b) => b.heap_bytes(),
            BuiltinSource::Text(set) => set.iter().map(|s| 32 + s.capacity()).sum(),
            BuiltinSource::Absent => 0,
        };
        let windows: usize = [
            &self.files.aliases,
            &self.files.builtin_aliases,
            &self.files.deps,
        ]
        .into_iter()
        .flatten()
        .map(|f| {
            f.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .heap_bytes()
        })
        .sum();
        windows
            + self.names.heap_bytes()
            + self.aliases.heap_bytes()
            + self.builtin_aliases.heap_bytes()
            + self.deps.heap_bytes()
            + builtin
    }

    /// Every (pattern, module) entry of `modules.alias` that can match (as many as
    /// [`Self::alias_count`]), in file order. This reads the file again, in the form it was
    /// loaded from (for tests and corpora).
    pub fn alias_patterns(&self) -> Result<Vec<(Vec<u8>, String)>, IndexError> {
        match self.forms.alias {
            Form::Binary => {
                let path = self.dir.join("modules.alias.bin");
                let bin = BinIndex::open(&path)?;
                let mut out = Vec::new();
                let mut off = 0usize;
                bin.for_each(|key, _, value| {
                    off += 1;
                    let module = utf8(&path, "module name", value, off)?;
                    if counted(key) {
                        out.push((key.to_vec(), module.to_owned()));
                    }
                    Ok(())
                })?;
                Ok(out)
            }
            Form::Text => Ok(read_alias_text(&self.dir.join("modules.alias"))?
                .into_iter()
                .filter(|(p, _)| counted(p.as_bytes()))
                .map(|(p, m)| (p.into_bytes(), m))
                .collect()),
            Form::Absent => Ok(Vec::new()),
        }
    }

    fn load_aliases(&mut self, names: &mut Interner) -> Result<(), IndexError> {
        let bin = self.dir.join("modules.alias.bin");
        let from_bin = checked_in_place(&bin, true).map(|(file, count)| {
            self.files.aliases = Some(file);
            self.in_place_aliases = count;
        });
        let text = self.dir.join("modules.alias");
        match binary_or_text(from_bin, &text, "alias index", |text| {
            Self::alias_set_from_text(text, names)
        }) {
            Ok((form, set)) => {
                self.forms.alias = form;
                if let Some(set) = set {
                    self.aliases = set;
                }
                Ok(())
            }
            Err(errors) => Err(self.missing("modules.alias", *errors)),
        }
    }

    fn alias_set_from_text(path: &Path, names: &mut Interner) -> Result<AliasSet, IndexError> {
        // depmod writes modules.alias in module order: a module's first line is its priority.
        let mut first_seen: FnvMap<String, u32> = FnvMap::default();
        let rows = read_alias_text(path)?
            .into_iter()
            .map(|(pattern, module)| {
                let next = first_seen.len() as u32;
                let priority = *first_seen.entry(module.clone()).or_insert(next);
                (pattern, module, priority)
            })
            .collect();
        Ok(AliasSet::build(rows, names))
    }

    fn load_deps(&mut self) -> Result<(), IndexError> {
        let bin = self.dir.join("modules.dep.bin");
        let from_bin = checked_in_place(&bin, false).map(|(file, _)| self.files.deps = Some(file));
        let text = self.dir.join("modules.dep");
        match binary_or_text(from_bin, &text, "dependency index", Self::deps_from_text) {
            Ok((form, table)) => {
                self.forms.dep = form;
                if let Some(table) = table {
                    self.deps = table;
                }
                Ok(())
            }
            Err(errors) => Err(self.missing("modules.dep", *errors)),
        }
    }

    /// The text form of `modules.dep`.
    fn deps_from_text(text: &Path) -> Result<DepTable, IndexError> {
        let data = read_limited(text, MAX_FILE_LEN)?;
        let s = utf8(text, "file", &data, 0)?;
        let mut lines = Vec::new();
        for (n, line) in s.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((path, _)) = line.split_once(':') else {
                return Err(IndexError::BadLine {
                    path: text.to_owned(),
                    line: n + 1,
                    reason: "expected `PATH: DEPS`",
                });
            };
            lines.push((module_name_from_path(path), line));
        }
        // Stable: the first line of a name comes first and wins.
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        let mut t = DepTableBuilder::new(text.to_owned());
        for (name, line) in &lines {
            t.add(name, line.as_bytes());
        }
        Ok(t.finish())
    }

    /// A required index missing in both forms.
    fn missing(&self, name: &'static str, (bin, text): (IndexError, IndexError)) -> IndexError {
        IndexError::Missing {
            dir: self.dir.clone(),
            name,
            reason: format!("{bin}; {text}"),
        }
    }

    fn load_builtin(&mut self) {
        let bin_path = self.dir.join("modules.builtin.bin");
        let from_bin = BinIndex::open(&bin_path)
            .and_then(validated)
            .map(|bin| self.builtin = BuiltinSource::Bin(bin));
        let text = self.dir.join("modules.builtin");
        let parse = |text: &Path| -> Result<HashSet<String>, IndexError> {
            let data = read_limited(text, MAX_FILE_LEN)?;
            let s = utf8(text, "file", &data, 0)?;
            Ok(s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(module_name_from_path)
                .collect())
        };
        match binary_or_text(from_bin, &text, "builtin index", parse) {
            Ok((form, set)) => {
                self.forms.builtin = form;
                if let Some(set) = set {
                    self.builtin = BuiltinSource::Text(set);
                }
            }
            Err(errors) => {
                let (bin, text) = *errors;
                warn!(%bin, %text, "no builtin module index; assuming no builtin modules");
            }
        }
    }

    fn load_builtin_aliases(&mut self, names: &mut Interner) {
        let bin = self.dir.join("modules.builtin.alias.bin");
        let from_bin =
            checked_in_place(&bin, true).map(|(file, _)| self.files.builtin_aliases = Some(file));
        let modinfo = self.dir.join("modules.builtin.modinfo");
        match binary_or_text(from_bin, &modinfo, "builtin alias index", |modinfo| {
            Self::builtin_aliases_from_modinfo(modinfo, names)
        }) {
            Ok((form, set)) => {
                self.forms.builtin_alias = form;
                if let Some(set) = set {
                    self.builtin_aliases = set;
                }
            }
            Err(errors) => {
                let (bin, text) = *errors;
                debug!(%bin, %text, "no builtin alias index");
            }
        }
    }

    /// `modules.builtin.modinfo` is a list of NUL-terminated `module.key=value` strings.
    fn builtin_aliases_from_modinfo(
        path: &Path,
        names: &mut Interner,
    ) -> Result<AliasSet, IndexError> {
        let data = read_limited(path, MAX_FILE_LEN)?;
        let mut rows = Vec::new();
        for (n, rec) in data.split(|&b| b == 0).enumerate() {
            let Ok(rec) = std::str::from_utf8(rec) else {
                continue;
            };
            let Some((module, rest)) = rec.split_once('.') else {
                continue;
            };
            let Some(pattern) = rest.strip_prefix("alias=") else {
                continue;
            };
            match normalize_alias(pattern) {
                Ok(p) => rows.push((p, module.replace('-', "_"), 0)),
                Err(e) => debug!(file = %path.display(), record = n, error = %e, "skipping alias"),
            }
        }
        Ok(AliasSet::build(rows, names))
    }

    fn match_set(&self, set: &AliasSet, alias: &str) -> Vec<String> {
        let mut hits = set.find(alias.as_bytes());
        // libkmod keeps values sorted by priority; among equal priorities the value found
        // last comes first. Runs of one priority and one module (every modules.alias run:
        // depmod gives each module its own priority) need no discovery-order sort.
        hits.sort_by_key(|&h| set.pair(h).1);
        let mut start = 0;
        while start < hits.len() {
            let first = set.pair(hits[start]);
            let len = hits[start..]
                .iter()
                .take_while(|&&h| set.pair(h).1 == first.1)
                .count();
            let run = &mut hits[start..start + len];
            if run.iter().any(|&h| set.pair(h).0 != first.0) {
                run.sort_by_key(|&h| std::cmp::Reverse(set.rank(h)));
            }
            start += len;
        }
        first_occurrences(hits.into_iter().map(|h| set.pair(h).0))
            .into_iter()
            .map(|m| self.names.get(m).to_owned())
            .collect()
    }

    /// Modules whose `modules.alias` patterns match the (normalised) alias, deduplicated, in
    /// libkmod's priority order. Fails only for an index looked up in place whose file
    /// turns out unreadable or corrupt where this lookup went.
    pub fn match_aliases(&self, alias: &str) -> Result<Vec<String>, IndexError> {
        match &self.files.aliases {
            Some(file) => match_in_place(file, alias),
            None => Ok(self.match_set(&self.aliases, alias)),
        }
    }

    /// Builtin modules whose `modules.builtin.alias.bin` patterns match the alias.
    pub fn match_builtin_aliases(&self, alias: &str) -> Result<Vec<String>, IndexError> {
        match &self.files.builtin_aliases {
            Some(file) => match_in_place(file, alias),
            None => Ok(self.match_set(&self.builtin_aliases, alias)),
        }
    }

    /// The `modules.dep` entry of a module name, if the module exists as a file.
    pub fn dep_entry(&self, name: &str) -> Result<Option<DepEntry>, IndexError> {
        let Some(file) = &self.files.deps else {
            return self.deps.get(&self.dir, name);
        };
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        match file.search(name.as_bytes())? {
            Some(line) => parse_dep_line(&self.dir, file.path(), &line).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the module name is in `modules.builtin`.
    pub fn is_builtin(&self, name: &str) -> Result<bool, IndexError> {
        match &self.builtin {
            BuiltinSource::Bin(bin) => Ok(bin.search(name.as_bytes())?.is_some()),
            BuiltinSource::Text(set) => Ok(set.contains(name)),
            BuiltinSource::Absent => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn discovery_order_puts_extensions_before_prefixes_and_literals_last() {
        assert_eq!(discovery_order(b"a*b", b"a*"), Ordering::Less);
        assert_eq!(discovery_order(b"a*", b"a?"), Ordering::Less);
        assert_eq!(discovery_order(b"a*", b"ab*"), Ordering::Less);
        assert_eq!(discovery_order(b"abc", b"a*"), Ordering::Greater);
    }

    #[test]
    fn post_order_ranks_agree_with_discovery_order() {
        let mut keys: Vec<&[u8]> = vec![
            b"a", b"a*", b"a*", b"a*b", b"a*bc", b"a*c", b"a?", b"a[b]", b"ab", b"ab*", b"ab*c",
            b"abc", b"b*", b"b*a*", b"b*a", b"*", b"**", b"?x", b"x", b"x*y",
        ];
        keys.sort();
        let mut rank = vec![(0u32, 0u32); keys.len()];
        let mut closed = |first: u32, last: u32, wild: u32, post: u32| {
            for e in first..=last {
                rank[e as usize] = (wild, post);
            }
        };
        let mut order = PostOrder::default();
        for (e, k) in keys.iter().enumerate() {
            order.push(k, e as u32, &mut closed);
        }
        order.finish(&mut closed);
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate() {
                assert_eq!(
                    rank[i].cmp(&rank[j]),
                    discovery_order(a, b),
                    "{} vs {}",
                    String::from_utf8_lossy(a),
                    String::from_utf8_lossy(b)
                );
            }
        }
    }
}
