//! The module index of one module directory: aliases, dependencies, builtin modules.
//!
//! Each index is read from libkmod's binary form when it is present and valid; a missing,
//! truncated or corrupt `.bin` falls back to the text file depmod writes beside it, with a
//! warning. `modules.dep` and `modules.alias` are required (in one form or the other);
//! `modules.builtin`, `modules.builtin.alias.bin` (text fallback: `modules.builtin.modinfo`)
//! are optional.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use tracing::{debug, warn};

use crate::binindex::{BinIndex, MAX_FILE_LEN, read_limited};
use crate::error::IndexError;
use crate::fasthash::FnvMap;
use crate::matcher::{AliasMatcher, AliasMatcherBuilder};
use crate::normalize::{module_name_from_path, normalize_alias};

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

/// One matched alias: the module and its libkmod priority (depmod's module order).
#[derive(Debug, Clone, Copy)]
struct AliasEntry {
    module: u32,
    priority: u32,
    pattern: (u32, u32),
}

/// Compiled aliases of one alias index.
#[derive(Debug, Clone, Default)]
struct AliasSet {
    matcher: AliasMatcher,
    entries: Vec<AliasEntry>,
    patterns: Vec<u8>,
}

/// An alias index being read.
#[derive(Default)]
struct AliasSetBuilder {
    matcher: AliasMatcherBuilder,
    entries: Vec<AliasEntry>,
    patterns: Vec<u8>,
}

impl AliasSetBuilder {
    fn add(&mut self, pattern: &[u8], module: u32, priority: u32) {
        let entry = self.entries.len() as u32;
        let start = self.patterns.len() as u32;
        if self.matcher.insert(pattern, entry) {
            self.patterns.extend_from_slice(pattern);
            self.entries.push(AliasEntry {
                module,
                priority,
                pattern: (start, pattern.len() as u32),
            });
        } else {
            warn!(
                pattern = %String::from_utf8_lossy(pattern),
                "alias pattern skipped: it can never match or has too many wildcards"
            );
        }
    }

    fn build(self) -> AliasSet {
        AliasSet {
            matcher: self.matcher.build(),
            entries: self.entries,
            patterns: self.patterns,
        }
    }
}

#[derive(Debug, Clone)]
enum DepSource {
    Bin(BinIndex),
    Text(HashMap<String, String>),
}

#[derive(Debug, Clone)]
enum BuiltinSource {
    Bin(BinIndex),
    Text(HashSet<String>),
    Absent,
}

/// The loaded index of a module directory.
#[derive(Debug, Clone)]
pub struct ModuleIndex {
    dir: PathBuf,
    names: Vec<String>,
    name_ids: FnvMap<String, u32>,
    aliases: AliasSet,
    builtin_aliases: AliasSet,
    deps: DepSource,
    builtin: BuiltinSource,
    forms: Forms,
}

/// Orders two alias patterns by the order in which libkmod's `index_searchwild` discovers
/// them: by the position of the first wildcard byte, then post-order over the trie (a key
/// comes after the keys it is a proper prefix of, siblings in byte order); patterns without
/// wildcards (exact key matches) come last.
fn discovery_order(a: &[u8], b: &[u8]) -> Ordering {
    let wild = |p: &[u8]| p.iter().position(|c| matches!(c, b'*' | b'?' | b'['));
    let (wa, wb) = (wild(a), wild(b));
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

/// Resolves a module path from `modules.dep` against the module directory, refusing absolute
/// paths and `..` components.
fn module_path(dir: &Path, index: &Path, rel: &str) -> Result<PathBuf, IndexError> {
    let p = Path::new(rel);
    let escapes = rel.is_empty()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(IndexError::PathEscape {
            path: index.to_owned(),
            module_path: rel.to_owned(),
        });
    }
    Ok(dir.join(p))
}

/// Walks the whole trie once so that corruption is found at load time, not at lookup time.
fn validated(bin: BinIndex) -> Result<BinIndex, IndexError> {
    bin.for_each(|_, _, _| Ok(()))?;
    Ok(bin)
}

impl ModuleIndex {
    /// Loads the index of `dir` (e.g. `/lib/modules/6.12.100+deb12-amd64`).
    pub fn load(dir: &Path) -> Result<Self, IndexError> {
        let mut idx = ModuleIndex {
            dir: dir.to_owned(),
            names: Vec::new(),
            name_ids: FnvMap::default(),
            aliases: AliasSet::default(),
            builtin_aliases: AliasSet::default(),
            deps: DepSource::Text(HashMap::new()),
            builtin: BuiltinSource::Absent,
            forms: Forms {
                alias: Form::Absent,
                dep: Form::Absent,
                builtin: Form::Absent,
                builtin_alias: Form::Absent,
            },
        };
        idx.load_deps()?;
        idx.load_aliases()?;
        idx.load_builtin();
        idx.load_builtin_aliases();
        debug!(
            dir = %dir.display(),
            aliases = idx.aliases.entries.len(),
            alias_nodes = idx.aliases.matcher.node_count(),
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
        self.aliases.entries.len()
    }

    /// Iterates over (pattern, module) of every `modules.alias` entry.
    pub fn alias_patterns(&self) -> impl Iterator<Item = (&[u8], &str)> + '_ {
        self.aliases.entries.iter().map(|e| {
            let (s, l) = e.pattern;
            (
                &self.aliases.patterns[s as usize..(s + l) as usize],
                self.names[e.module as usize].as_str(),
            )
        })
    }

    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.name_ids.insert(name.to_owned(), id);
        id
    }

    fn alias_set_from_bin(&mut self, path: &Path) -> Result<AliasSet, IndexError> {
        let bin = BinIndex::open(path)?;
        let mut set = AliasSetBuilder::default();
        let mut off = 0usize;
        bin.for_each(|key, priority, value| {
            off += 1;
            let module = utf8(path, "module name", value, off)?;
            let id = self.intern(module);
            set.add(key, id, priority);
            Ok(())
        })?;
        Ok(set.build())
    }

    fn load_aliases(&mut self) -> Result<(), IndexError> {
        let bin = self.dir.join("modules.alias.bin");
        let bin_err = match self.alias_set_from_bin(&bin) {
            Ok(set) => {
                self.aliases = set;
                self.forms.alias = Form::Binary;
                return Ok(());
            }
            Err(e) => e,
        };
        let text = self.dir.join("modules.alias");
        if !matches!(&bin_err, IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        {
            warn!(error = %bin_err, fallback = %text.display(), "invalid binary alias index, using the text file");
        }
        match self.alias_set_from_text(&text) {
            Ok(set) => {
                self.aliases = set;
                self.forms.alias = Form::Text;
                Ok(())
            }
            Err(text_err) => Err(IndexError::Missing {
                dir: self.dir.clone(),
                name: "modules.alias",
                reason: format!("{bin_err}; {text_err}"),
            }),
        }
    }

    fn alias_set_from_text(&mut self, path: &Path) -> Result<AliasSet, IndexError> {
        let data = read_limited(path, MAX_FILE_LEN)?;
        let text = utf8(path, "file", &data, 0)?;
        let mut set = AliasSetBuilder::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut it = line.split_whitespace();
            let (Some("alias"), Some(pattern), Some(module)) = (it.next(), it.next(), it.next())
            else {
                return Err(IndexError::BadLine {
                    path: path.to_owned(),
                    line: n + 1,
                    reason: "expected `alias PATTERN MODULE`",
                });
            };
            let pattern = match normalize_alias(pattern) {
                Ok(p) => p,
                Err(e) => {
                    warn!(file = %path.display(), line = n + 1, error = %e, "skipping alias");
                    continue;
                }
            };
            let module = module.replace('-', "_");
            let id = self.intern(&module);
            // depmod writes modules.alias in module order: first appearance is the priority.
            set.add(pattern.as_bytes(), id, id);
        }
        Ok(set.build())
    }

    fn load_deps(&mut self) -> Result<(), IndexError> {
        let bin_path = self.dir.join("modules.dep.bin");
        let bin_err = match BinIndex::open(&bin_path).and_then(validated) {
            Ok(bin) => {
                self.deps = DepSource::Bin(bin);
                self.forms.dep = Form::Binary;
                return Ok(());
            }
            Err(e) => e,
        };
        let text = self.dir.join("modules.dep");
        if !matches!(&bin_err, IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
        {
            warn!(error = %bin_err, fallback = %text.display(), "invalid binary dependency index, using the text file");
        }
        let parse = || -> Result<HashMap<String, String>, IndexError> {
            let data = read_limited(&text, MAX_FILE_LEN)?;
            let s = utf8(&text, "file", &data, 0)?;
            let mut map = HashMap::new();
            for (n, line) in s.lines().enumerate() {
                if line.trim().is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((path, _)) = line.split_once(':') else {
                    return Err(IndexError::BadLine {
                        path: text.clone(),
                        line: n + 1,
                        reason: "expected `PATH: DEPS`",
                    });
                };
                map.entry(module_name_from_path(path))
                    .or_insert_with(|| line.to_owned());
            }
            Ok(map)
        };
        match parse() {
            Ok(map) => {
                self.deps = DepSource::Text(map);
                self.forms.dep = Form::Text;
                Ok(())
            }
            Err(text_err) => Err(IndexError::Missing {
                dir: self.dir.clone(),
                name: "modules.dep",
                reason: format!("{bin_err}; {text_err}"),
            }),
        }
    }

    fn load_builtin(&mut self) {
        let bin_path = self.dir.join("modules.builtin.bin");
        let bin_err = match BinIndex::open(&bin_path).and_then(validated) {
            Ok(bin) => {
                self.builtin = BuiltinSource::Bin(bin);
                self.forms.builtin = Form::Binary;
                return;
            }
            Err(e) => e,
        };
        let text = self.dir.join("modules.builtin");
        let parse = || -> Result<HashSet<String>, IndexError> {
            let data = read_limited(&text, MAX_FILE_LEN)?;
            let s = utf8(&text, "file", &data, 0)?;
            Ok(s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(module_name_from_path)
                .collect())
        };
        match parse() {
            Ok(set) => {
                if !matches!(&bin_err, IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
                {
                    warn!(error = %bin_err, fallback = %text.display(), "invalid binary builtin index, using the text file");
                }
                self.builtin = BuiltinSource::Text(set);
                self.forms.builtin = Form::Text;
            }
            Err(text_err) => {
                warn!(bin = %bin_err, text = %text_err, "no builtin module index; assuming no builtin modules");
            }
        }
    }

    fn load_builtin_aliases(&mut self) {
        let bin = self.dir.join("modules.builtin.alias.bin");
        let bin_err = match self.alias_set_from_bin(&bin) {
            Ok(set) => {
                self.builtin_aliases = set;
                self.forms.builtin_alias = Form::Binary;
                return;
            }
            Err(e) => e,
        };
        let modinfo = self.dir.join("modules.builtin.modinfo");
        match self.builtin_aliases_from_modinfo(&modinfo) {
            Ok(set) => {
                if !matches!(&bin_err, IndexError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
                {
                    warn!(error = %bin_err, fallback = %modinfo.display(), "invalid builtin alias index, using modules.builtin.modinfo");
                }
                self.builtin_aliases = set;
                self.forms.builtin_alias = Form::Text;
            }
            Err(text_err) => {
                debug!(bin = %bin_err, text = %text_err, "no builtin alias index");
            }
        }
    }

    /// `modules.builtin.modinfo` is a list of NUL-terminated `module.key=value` strings.
    fn builtin_aliases_from_modinfo(&mut self, path: &Path) -> Result<AliasSet, IndexError> {
        let data = read_limited(path, MAX_FILE_LEN)?;
        let mut set = AliasSetBuilder::default();
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
                Ok(p) => {
                    let id = self.intern(&module.replace('-', "_"));
                    set.add(p.as_bytes(), id, 0);
                }
                Err(e) => debug!(file = %path.display(), record = n, error = %e, "skipping alias"),
            }
        }
        Ok(set.build())
    }

    fn match_set(&self, set: &AliasSet, alias: &str) -> Vec<&str> {
        let mut hits = set.matcher.find(alias.as_bytes());
        let pat = |e: &AliasEntry| {
            let (s, l) = e.pattern;
            &set.patterns[s as usize..(s + l) as usize]
        };
        // libkmod keeps values sorted by priority; among equal priorities the value found
        // last comes first. Runs of one priority and one module (every modules.alias run:
        // depmod gives each module its own priority) need no discovery-order sort.
        hits.sort_by_key(|&h| set.entries[h as usize].priority);
        let mut start = 0;
        while start < hits.len() {
            let first = set.entries[hits[start] as usize];
            let len = hits[start..]
                .iter()
                .take_while(|&&h| set.entries[h as usize].priority == first.priority)
                .count();
            let run = &mut hits[start..start + len];
            if run
                .iter()
                .any(|&h| set.entries[h as usize].module != first.module)
            {
                run.sort_by(|&a, &b| {
                    discovery_order(pat(&set.entries[b as usize]), pat(&set.entries[a as usize]))
                });
            }
            start += len;
        }
        let mut modules: Vec<u32> = Vec::with_capacity(hits.len());
        // Few hits: a linear scan; many (hostile index): a set, to stay linear.
        let mut seen = (hits.len() > 32).then(HashSet::new);
        for h in hits {
            let m = set.entries[h as usize].module;
            let new = match &mut seen {
                Some(seen) => seen.insert(m),
                None => !modules.contains(&m),
            };
            if new {
                modules.push(m);
            }
        }
        modules
            .into_iter()
            .map(|m| self.names[m as usize].as_str())
            .collect()
    }

    /// Modules whose `modules.alias` patterns match the (normalised) alias, deduplicated, in
    /// libkmod's priority order.
    pub fn match_aliases(&self, alias: &str) -> Vec<&str> {
        self.match_set(&self.aliases, alias)
    }

    /// Builtin modules whose `modules.builtin.alias.bin` patterns match the alias.
    pub fn match_builtin_aliases(&self, alias: &str) -> Vec<&str> {
        self.match_set(&self.builtin_aliases, alias)
    }

    /// The `modules.dep` entry of a module name, if the module exists as a file.
    pub fn dep_entry(&self, name: &str) -> Result<Option<DepEntry>, IndexError> {
        let (line, index_path) = match &self.deps {
            DepSource::Bin(bin) => match bin.search(name.as_bytes())? {
                Some(v) => (
                    utf8(bin.path(), "dependency line", v, 0)?,
                    bin.path().to_owned(),
                ),
                None => return Ok(None),
            },
            DepSource::Text(map) => match map.get(name) {
                Some(v) => (v.as_str(), self.dir.join("modules.dep")),
                None => return Ok(None),
            },
        };
        let (path, deps) = line.split_once(':').unwrap_or((line, ""));
        let path = module_path(&self.dir, &index_path, path.trim())?;
        let deps = deps
            .split_whitespace()
            .map(|d| {
                Ok((
                    module_name_from_path(d),
                    module_path(&self.dir, &index_path, d)?,
                ))
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        Ok(Some(DepEntry { path, deps }))
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

    #[test]
    fn discovery_order_puts_extensions_before_prefixes_and_literals_last() {
        assert_eq!(discovery_order(b"a*b", b"a*"), Ordering::Less);
        assert_eq!(discovery_order(b"a*", b"a?"), Ordering::Less);
        assert_eq!(discovery_order(b"a*", b"ab*"), Ordering::Less);
        assert_eq!(discovery_order(b"abc", b"a*"), Ordering::Greater);
    }

    #[test]
    fn module_paths_that_escape_are_refused() {
        let dir = Path::new("/m");
        let idx = Path::new("/m/modules.dep");
        assert!(module_path(dir, idx, "kernel/a.ko").is_ok());
        assert!(matches!(
            module_path(dir, idx, "../../etc/x.ko"),
            Err(IndexError::PathEscape { .. })
        ));
        assert!(matches!(
            module_path(dir, idx, "/tmp/x.ko"),
            Err(IndexError::PathEscape { .. })
        ));
    }
}
