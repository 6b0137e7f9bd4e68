//! modprobe.d configuration, `modules.softdep` and the kernel command line, read the way
//! libkmod reads them.
//!
//! * Directories are read in precedence order ([`DEFAULT_CONFIG_DIRS`]); only `*.conf` (and
//!   `*.alias`) files not starting with `.` are used; a file name already seen in an earlier
//!   directory is ignored; all files are then parsed in lexicographic order of their names,
//!   with `modules.softdep` of the module directory sorted in among them. A path that is a
//!   regular file is used as a single configuration file.
//! * Lines: `\` at the end joins the next line; lines starting with `#` are comments;
//!   `alias`, `blacklist`, `options`, `install`, `remove`, `softdep` are understood; module
//!   names get `-` → `_`; other lines are logged and ignored.
//! * The kernel command line adds `modprobe.blacklist=a,b` to the blacklist and
//!   `module.param=value` to the options of `module`, after all files.
//! * `install` and `remove` commands are recorded so that lookups see them (libkmod's lookup
//!   step 4), but this crate never executes them: a plan step that would run one is marked
//!   refused (see [`crate::Step::InstallRefused`]).

use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::fnmatch::fnmatch;
use crate::normalize::underscores;

/// libkmod's configuration directories, highest precedence first.
pub const DEFAULT_CONFIG_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/usr/lib/modprobe.d",
    "/lib/modprobe.d",
];

/// Largest configuration file read.
const MAX_CONFIG_FILE: u64 = 4 << 20;

/// An `alias PATTERN MODULE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigAlias {
    /// The pattern (fnmatch), underscored.
    pub pattern: String,
    /// The module name, underscored.
    pub module: String,
}

/// An `install` or `remove` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Module name (underscored; matched with fnmatch when planning).
    pub module: String,
    /// The shell command (never executed by this crate).
    pub command: String,
}

/// A `softdep MODULE pre: A B post: C` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Softdep {
    /// Module name pattern (fnmatch), underscored.
    pub pattern: String,
    /// Loaded before the module, each name resolved by a full lookup.
    pub pre: Vec<String>,
    /// Loaded after the module.
    pub post: Vec<String>,
}

/// The parsed configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// `alias` lines in parse order.
    pub aliases: Vec<ConfigAlias>,
    /// Blacklisted module names (exact match).
    pub blacklist: Vec<String>,
    /// (module name or alias, options) in parse order, command line last.
    pub options: Vec<(String, String)>,
    /// `install` commands.
    pub install: Vec<Command>,
    /// `remove` commands.
    pub remove: Vec<Command>,
    /// `softdep` lines; the first one whose pattern matches a module wins.
    pub softdeps: Vec<Softdep>,
    /// The files parsed, in order.
    pub files: Vec<PathBuf>,
}

/// Splits off one token delimited by spaces/tabs, like `strtok_r(.., "\t ")`: returns the
/// token and the text after the single delimiter that ended it.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    match s.find([' ', '\t']) {
        Some(end) => Some((&s[..end], &s[end + 1..])),
        None => Some((s, "")),
    }
}

/// The config files of `dirs` (and `modules.softdep`), in the order libkmod parses them.
pub fn config_files(dirs: &[PathBuf], module_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    let mut insert = |name: String, path: PathBuf| {
        if let Err(pos) = files.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
            files.insert(pos, (name, path));
        }
    };
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if meta.is_file() {
            if let Some(name) = dir.file_name().and_then(|n| n.to_str()) {
                insert(name.to_owned(), dir.clone());
            }
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            warn!(dir = %dir.display(), "cannot read configuration directory");
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.')
                || name.len() < 6
                || !(name.ends_with(".conf") || name.ends_with(".alias"))
            {
                continue;
            }
            let path = entry.path();
            if path.is_dir() {
                warn!(path = %path.display(), "directories inside configuration directories are not supported");
                continue;
            }
            insert(name, path);
        }
    }
    if let Some(dir) = module_dir {
        insert("modules.softdep".to_owned(), dir.join("modules.softdep"));
    }
    files.into_iter().map(|(_, p)| p).collect()
}

impl Config {
    /// Reads the configuration: the files of `dirs` (see [`DEFAULT_CONFIG_DIRS`]),
    /// `modules.softdep` of `module_dir`, then the kernel command line from `cmdline` (usually
    /// `/proc/cmdline`). Unreadable files are skipped with a log line.
    pub fn load(dirs: &[PathBuf], module_dir: Option<&Path>, cmdline: Option<&Path>) -> Config {
        let mut config = Config::default();
        for file in config_files(dirs, module_dir) {
            let read = std::fs::metadata(&file).and_then(|m| {
                if m.len() > MAX_CONFIG_FILE {
                    Err(std::io::Error::other("file too large"))
                } else {
                    std::fs::read(&file)
                }
            });
            match read {
                Ok(bytes) => {
                    config.parse(
                        &String::from_utf8_lossy(&bytes),
                        &file.display().to_string(),
                    );
                    config.files.push(file);
                }
                Err(e) => debug!(file = %file.display(), error = %e, "configuration file not read"),
            }
        }
        if let Some(path) = cmdline {
            match std::fs::read(path) {
                Ok(bytes) => config.parse_cmdline(&String::from_utf8_lossy(&bytes)),
                Err(e) => {
                    debug!(file = %path.display(), error = %e, "kernel command line not read")
                }
            }
        }
        config
    }

    /// Parses the text of one configuration file; `file` names it in log lines.
    pub fn parse(&mut self, text: &str, file: &str) {
        let mut logical = String::new();
        let mut lineno = 0;
        for raw in text.split('\n') {
            lineno += 1;
            if let Some(joined) = raw.strip_suffix('\\') {
                logical.push_str(joined);
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            self.parse_line(&line, file, lineno);
        }
        if !logical.is_empty() {
            self.parse_line(&logical, file, lineno);
        }
    }

    fn parse_line(&mut self, line: &str, file: &str, lineno: usize) {
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        let Some((cmd, rest)) = token(line) else {
            return;
        };
        let ok = match cmd {
            "alias" => match token(rest).and_then(|(a, r)| Some((a, token(r)?.0))) {
                Some((pattern, module)) => {
                    self.aliases.push(ConfigAlias {
                        pattern: underscores(pattern),
                        module: underscores(module),
                    });
                    true
                }
                None => false,
            },
            "blacklist" => match token(rest) {
                Some((module, _)) => {
                    self.blacklist.push(underscores(module));
                    true
                }
                None => false,
            },
            "options" | "install" | "remove" | "softdep" => match token(rest) {
                Some((module, tail)) if !tail.is_empty() => {
                    let module = underscores(module);
                    match cmd {
                        "options" => self.options.push((module, tail.replace('\t', " "))),
                        "install" => {
                            debug!(module = %module, command = tail, "install command recorded (never executed)");
                            self.install.push(Command {
                                module,
                                command: tail.to_owned(),
                            });
                        }
                        "remove" => self.remove.push(Command {
                            module,
                            command: tail.to_owned(),
                        }),
                        _ => self.softdeps.push(parse_softdep(module, tail)),
                    }
                    true
                }
                _ => false,
            },
            "include" | "config" => {
                warn!(file, command = cmd, "deprecated command ignored");
                true
            }
            _ => false,
        };
        if !ok {
            warn!(
                file,
                line = lineno,
                command = cmd,
                "ignoring bad configuration line"
            );
        }
    }

    /// Parses a kernel command line: `modprobe.blacklist=a,b` and `module.param=value` words
    /// (double quotes group words and are kept in the value).
    pub fn parse_cmdline(&mut self, line: &str) {
        let line = line.split('\n').next().unwrap_or("");
        let mut words = Vec::new();
        let (mut start, mut quoted) = (0, false);
        for (i, c) in line.char_indices() {
            match c {
                '"' => quoted = !quoted,
                ' ' if !quoted => {
                    words.push(&line[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        words.push(&line[start..]);
        for word in words {
            // grub writes `"mod.param=a b"`: drop quotes around the whole word.
            let word = word
                .strip_prefix('"')
                .and_then(|w| w.strip_suffix('"'))
                .unwrap_or(word);
            let (Some(dot), Some(eq)) = (word.find('.'), word.find('=')) else {
                continue;
            };
            if dot > eq {
                continue;
            }
            let (module, param) = (&word[..dot], &word[dot + 1..]);
            if module.is_empty() || module.contains('"') {
                continue;
            }
            if let Some(list) = param
                .strip_prefix("blacklist=")
                .filter(|_| module == "modprobe")
            {
                // libkmod adds these names as they are (no `-` → `_`).
                self.blacklist.extend(list.split(',').map(str::to_owned));
                continue;
            }
            self.options.push((underscores(module), param.to_owned()));
        }
    }

    /// All `options` for a module reached as `name` (and, if through an alias, `alias`),
    /// joined by single spaces as libkmod joins them.
    pub fn options_for(&self, name: &str, alias: Option<&str>) -> String {
        let mut out = String::new();
        for (module, opts) in &self.options {
            if (module == name || alias == Some(module.as_str())) && !opts.is_empty() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(opts);
            }
        }
        out
    }

    /// Whether `name` is blacklisted (exact name).
    pub fn is_blacklisted(&self, name: &str) -> bool {
        self.blacklist.iter().any(|b| b == name)
    }

    /// The first softdep line whose pattern matches the module name.
    pub fn softdep_for(&self, name: &str) -> Option<&Softdep> {
        self.softdeps
            .iter()
            .find(|s| fnmatch(s.pattern.as_bytes(), name.as_bytes()))
    }

    /// The first `install` command whose module pattern matches the module name.
    pub fn install_command_for(&self, name: &str) -> Option<&str> {
        self.install
            .iter()
            .find(|c| fnmatch(c.module.as_bytes(), name.as_bytes()))
            .map(|c| c.command.as_str())
    }
}

fn parse_softdep(pattern: String, tail: &str) -> Softdep {
    let mut dep = Softdep {
        pattern,
        pre: Vec::new(),
        post: Vec::new(),
    };
    let mut mode = 0;
    for word in tail.split_whitespace() {
        match word {
            "pre:" => mode = 1,
            "post:" => mode = 2,
            w if mode == 1 => dep.pre.push(w.to_owned()),
            w if mode == 2 => dep.post.push(w.to_owned()),
            _ => {}
        }
    }
    dep
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_continuations_and_underscores() {
        let mut c = Config::default();
        c.parse(
            "# comment\nalias my-alias snd-foo\nblacklist pcspkr\noptions snd-foo a=1 \\\n b=2\n\
             softdep uhci-hcd pre: ehci-hcd xhci post: x\ninstall foo /bin/true\nremove foo /bin/false\nbogus line\n",
            "t.conf",
        );
        assert_eq!(
            c.aliases,
            vec![ConfigAlias {
                pattern: "my_alias".into(),
                module: "snd_foo".into()
            }]
        );
        assert_eq!(c.blacklist, vec!["pcspkr".to_string()]);
        assert_eq!(c.options, vec![("snd_foo".into(), "a=1  b=2".into())]);
        assert_eq!(c.softdeps[0].pattern, "uhci_hcd");
        assert_eq!(
            c.softdeps[0].pre,
            vec!["ehci-hcd".to_string(), "xhci".into()]
        );
        assert_eq!(c.softdeps[0].post, vec!["x".to_string()]);
        assert_eq!(c.install_command_for("foo"), Some("/bin/true"));
        assert_eq!(c.remove.len(), 1);
    }

    #[test]
    fn cmdline_adds_blacklist_and_options_after_files() {
        let mut c = Config::default();
        c.parse("options e1000e x=1\n", "a.conf");
        c.parse_cmdline(
            "root=/dev/sda modprobe.blacklist=a-b,c e1000e.InterruptThrottleRate=3 0.0.0.0:2024 \"snd-x.p=a b\" -- x\n",
        );
        assert_eq!(c.blacklist, vec!["a-b".to_string(), "c".into()]);
        assert_eq!(c.options_for("e1000e", None), "x=1 InterruptThrottleRate=3");
        assert_eq!(c.options_for("snd_x", None), "p=a b");
    }

    #[test]
    fn options_match_the_module_name_or_the_alias_used() {
        let mut c = Config::default();
        c.parse(
            "options foo a=1\noptions pci:v1 b=2\noptions bar c=3\n",
            "a.conf",
        );
        assert_eq!(c.options_for("foo", Some("pci:v1")), "a=1 b=2");
        assert_eq!(c.options_for("foo", None), "a=1");
    }

    #[test]
    fn first_matching_softdep_wins() {
        let mut c = Config::default();
        c.parse("softdep snd* pre: a\nsoftdep snd_x pre: b\n", "a.conf");
        assert_eq!(
            c.softdep_for("snd_x").map(|s| s.pre.clone()),
            Some(vec!["a".to_string()])
        );
        assert!(c.softdep_for("e1000e").is_none());
    }

    #[test]
    fn config_files_follow_directory_precedence_and_name_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let m = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("z.conf"), "blacklist za\n").unwrap();
        std::fs::write(a.path().join("same.conf"), "blacklist from_a\n").unwrap();
        std::fs::write(b.path().join("same.conf"), "blacklist from_b\n").unwrap();
        std::fs::write(b.path().join("a.conf"), "blacklist ab\n").unwrap();
        std::fs::write(b.path().join("ignored.txt"), "blacklist no\n").unwrap();
        std::fs::write(b.path().join(".hidden.conf"), "blacklist no\n").unwrap();
        std::fs::write(m.path().join("modules.softdep"), "softdep x pre: y\n").unwrap();
        let c = Config::load(
            &[a.path().to_owned(), b.path().to_owned()],
            Some(m.path()),
            None,
        );
        assert_eq!(c.blacklist, vec!["ab", "from_a", "za"]);
        assert_eq!(c.softdeps.len(), 1);
        assert_eq!(c.files.len(), 4);
    }
}
