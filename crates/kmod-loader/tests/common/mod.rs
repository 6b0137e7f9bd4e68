//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

#[derive(Default)]
struct TrieNode {
    children: BTreeMap<u8, TrieNode>,
    values: Vec<(u32, String)>,
}

/// Encodes (key, priority, value) entries in libkmod's binary index format (prefix-compressed,
/// values sorted by priority), as depmod writes it.
pub fn encode_index(entries: &[(&str, u32, &str)]) -> Vec<u8> {
    let mut root = TrieNode::default();
    for (key, priority, value) in entries {
        let mut n = &mut root;
        for &b in key.as_bytes() {
            n = n.children.entry(b).or_default();
        }
        n.values.push((*priority, (*value).to_owned()));
        n.values.sort();
    }
    let mut buf = vec![0u8; 12];
    let root_word = write_node(&root, &mut buf);
    buf[0..4].copy_from_slice(&0xB007_F457u32.to_be_bytes());
    buf[4..8].copy_from_slice(&0x0002_0001u32.to_be_bytes());
    buf[8..12].copy_from_slice(&root_word.to_be_bytes());
    buf
}

fn write_node(node: &TrieNode, buf: &mut Vec<u8>) -> u32 {
    let mut prefix = Vec::new();
    let mut n = node;
    while n.values.is_empty() && n.children.len() == 1 {
        let (c, child) = n.children.iter().next().expect("one child");
        prefix.push(*c);
        n = child;
    }
    let child_words: Vec<(u8, u32)> = n
        .children
        .iter()
        .map(|(c, child)| (*c, write_node(child, buf)))
        .collect();
    let offset = buf.len() as u32;
    let mut flags = 0u32;
    if !prefix.is_empty() {
        flags |= 0x8000_0000;
        buf.extend_from_slice(&prefix);
        buf.push(0);
    }
    if let (Some(first), Some(last)) = (child_words.first(), child_words.last()) {
        flags |= 0x2000_0000;
        buf.push(first.0);
        buf.push(last.0);
        for c in first.0..=last.0 {
            let word = child_words
                .iter()
                .find(|(b, _)| *b == c)
                .map_or(0, |(_, w)| *w);
            buf.extend_from_slice(&word.to_be_bytes());
        }
    }
    if !n.values.is_empty() {
        flags |= 0x4000_0000;
        buf.extend_from_slice(&(n.values.len() as u32).to_be_bytes());
        for (p, v) in &n.values {
            buf.extend_from_slice(&p.to_be_bytes());
            buf.extend_from_slice(v.as_bytes());
            buf.push(0);
        }
    }
    offset | flags
}

/// A fake module directory with both binary and text indexes.
pub struct Fixture {
    /// Keeps the directory alive.
    pub tmp: tempfile::TempDir,
}

/// One module of a fixture: name, path relative to the module directory, dependency paths.
pub struct FixtureModule<'a> {
    /// Relative path, e.g. `kernel/a/foo-bar.ko.xz`.
    pub path: &'a str,
    /// Dependency paths in modules.dep order.
    pub deps: &'a [&'a str],
}

impl Fixture {
    /// Writes modules.dep(.bin), modules.alias(.bin), modules.builtin(.bin),
    /// modules.builtin.alias.bin and modules.softdep.
    pub fn new(
        modules: &[FixtureModule<'_>],
        aliases: &[(&str, &str)],
        builtin: &[&str],
        builtin_aliases: &[(&str, &str)],
        softdep: &str,
    ) -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let name = |p: &str| kmod_loader::module_name_from_path(p);
        let mut dep_text = String::new();
        let mut dep_entries = Vec::new();
        let lines: Vec<(String, String)> = modules
            .iter()
            .map(|m| (name(m.path), format!("{}: {}", m.path, m.deps.join(" "))))
            .collect();
        for (i, (n, line)) in lines.iter().enumerate() {
            dep_text.push_str(line);
            dep_text.push('\n');
            dep_entries.push((n.as_str(), i as u32, line.as_str()));
        }
        write(dir, "modules.dep", dep_text.as_bytes());
        write(dir, "modules.dep.bin", &encode_index(&dep_entries));
        let order = |m: &str| {
            modules
                .iter()
                .position(|x| name(x.path) == m)
                .map_or(u32::MAX, |p| p as u32)
        };
        let alias_text: String = aliases
            .iter()
            .map(|(p, m)| format!("alias {p} {m}\n"))
            .collect();
        write(dir, "modules.alias", alias_text.as_bytes());
        let alias_entries: Vec<(&str, u32, &str)> =
            aliases.iter().map(|(p, m)| (*p, order(m), *m)).collect();
        write(dir, "modules.alias.bin", &encode_index(&alias_entries));
        let builtin_text: String = builtin.iter().map(|b| format!("kernel/{b}.ko\n")).collect();
        write(dir, "modules.builtin", builtin_text.as_bytes());
        let builtin_entries: Vec<(&str, u32, &str)> = builtin.iter().map(|b| (*b, 0, "")).collect();
        write(dir, "modules.builtin.bin", &encode_index(&builtin_entries));
        let ba: Vec<(&str, u32, &str)> = builtin_aliases.iter().map(|(p, m)| (*p, 0, *m)).collect();
        write(dir, "modules.builtin.alias.bin", &encode_index(&ba));
        let modinfo: Vec<u8> = builtin_aliases
            .iter()
            .flat_map(|(p, m)| format!("{m}.alias={p}\0").into_bytes())
            .collect();
        write(dir, "modules.builtin.modinfo", &modinfo);
        write(dir, "modules.softdep", softdep.as_bytes());
        Fixture { tmp }
    }

    /// The module directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Overwrites one file.
    pub fn write(&self, name: &str, data: &[u8]) {
        write(self.dir(), name, data);
    }

    /// Removes one file.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir().join(name)).expect("remove fixture file");
    }
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    std::fs::write(dir.join(name), data).expect("write fixture file");
}

/// A copy of the module directory `dir` with its indexes in text form only (no `.bin`: what a
/// lookup falls back to when the binary files are missing or corrupt), its module files
/// reached through a symlink.
pub fn text_only(dir: &Path) -> tempfile::TempDir {
    let text = tempfile::tempdir().expect("tempdir");
    for f in [
        "modules.alias",
        "modules.dep",
        "modules.builtin",
        "modules.builtin.modinfo",
        "modules.softdep",
    ] {
        std::fs::copy(dir.join(f), text.path().join(f)).expect("copy text index");
    }
    std::os::unix::fs::symlink(dir.join("kernel"), text.path().join("kernel")).expect("symlink");
    text
}
