//! modprobe.d configuration, `modules.softdep` and the kernel command line, read the way
//! libkmod reads them.
//!
//! * Directories are read in precedence order ([`DEFAULT_CONFIG_DIRS`]). In each, only files
//!   named `*.conf` and not starting with `.` are used (kmod 33 and later; older versions also
//!   read `*.alias` files); subdirectories and entries that cannot be stat'ed (a dangling
//!   symlink) are skipped. A file name already seen is ignored, so a file hides the file of the
//!   same name in a lower-precedence directory. A path that is a regular file is used as a
//!   single configuration file under its base name.
//! * All files are then parsed in byte order of their names, whatever their directory.
//!   `modules.softdep` and `modules.weakdep` of the module directory are sorted in among them
//!   by those names; libkmod registers them first, so a configuration path that is a file of
//!   the same name is the duplicate, and ignored.
//! * Lines are read as libkmod reads them: `\` followed by a newline joins the next line
//!   (nothing is inserted), `\` followed by any other character stands for that character
//!   (`\\` is one backslash; `\ ` is a space, which still separates words), and a `\` at the
//!   very end of the file is dropped. A NUL byte ends the line.
//! * After that, empty lines and lines starting with `#` are comments (an escaped `\#` too:
//!   the escape is gone by then). `alias`, `blacklist`, `options`, `install`, `remove`,
//!   `softdep` and `weakdep` are understood; module names get `-` → `_`; other lines are
//!   logged and ignored. Words are separated by spaces and tabs; the text of `options`,
//!   `install`, `remove`, `softdep` and `weakdep` is everything after the single space or tab
//!   that ends the module name, and tabs in `options` text become spaces.
//! * `softdep` and `weakdep` word lists are split at white space the way libkmod splits them,
//!   quirk included: exactly one extra white-space character after the module name stays at
//!   the front of the first word, so `softdep a  pre: b` (two spaces) has the word ` pre:`,
//!   which is not the keyword, and `b` is in neither list.
//! * `weakdep` lines (kmod 33 and later syntax), from modprobe.d and from `modules.weakdep`,
//!   are kept in [`Config::weakdeps`] and never loaded, as in modprobe (which only lists them
//!   with `-c`): a weak dependency is a module the kernel may request itself while the module
//!   probes, so it only needs to be present (initramfs tools use the list).
//! * The kernel command line is read after all files (see [`Config::parse_cmdline`]): words
//!   `module.param` and `module.param=value` add options, `modprobe.blacklist=a,b` adds names
//!   to the blacklist.
//! * `install` and `remove` commands are recorded so that lookups see them (libkmod's lookup
//!   step 4); a plan step that runs an `install` command is a [`crate::Step::Install`], and
//!   the loader decides what to do with it ([`crate::load::install`]). `remove` commands are
//!   never used: nothing is unloaded.

use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::fnmatch::fnmatch;
use crate::normalize::underscores;

mod cmdline;

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

/// A `weakdep MODULE DEP...` line: modules the kernel may request while `MODULE` probes.
/// Recorded, never loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakdep {
    /// Module name pattern (fnmatch), underscored.
    pub pattern: String,
    /// The weak dependencies, as written.
    pub deps: Vec<String>,
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
    /// `weakdep` lines, from modprobe.d and `modules.weakdep`; never loaded.
    pub weakdeps: Vec<Weakdep>,
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

/// The configuration files of `dirs`, with `modules.softdep` and `modules.weakdep` of
/// `module_dir`, in the order libkmod parses them (see the [module documentation](self)).
pub fn config_files(dirs: &[PathBuf], module_dir: Option<&Path>) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // Sorted by name (bytes, as strcmp); the first file of a name wins.
    let mut files: Vec<(Vec<u8>, PathBuf)> = Vec::new();
    let mut insert = |name: &[u8], path: PathBuf| {
        if let Err(pos) = files.binary_search_by(|(n, _)| n.as_slice().cmp(name)) {
            files.insert(pos, (name.to_vec(), path));
        }
    };
    if let Some(dir) = module_dir {
        for name in ["modules.softdep", "modules.weakdep"] {
            insert(name.as_bytes(), dir.join(name));
        }
    }
    for dir in dirs {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if !meta.is_dir() {
            if let Some(name) = dir.file_name() {
                insert(name.as_bytes(), dir.clone());
            }
            continue;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            warn!(dir = %dir.display(), "cannot read configuration directory");
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.as_bytes();
            if name.starts_with(b".") || name.len() < 6 || !name.ends_with(b".conf") {
                continue;
            }
            let path = entry.path();
            match std::fs::metadata(&path) {
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "cannot stat configuration file")
                }
                Ok(m) if m.is_dir() => {
                    warn!(path = %path.display(), "directories inside configuration directories are not supported")
                }
                Ok(_) => insert(name, path),
            }
        }
    }
    files.into_iter().map(|(_, p)| p).collect()
}

impl Config {
    /// Reads the configuration: the files of `dirs` (see [`DEFAULT_CONFIG_DIRS`]),
    /// `modules.softdep` and `modules.weakdep` of `module_dir`, then the kernel command line
    /// from `cmdline` (usually `/proc/cmdline`; at most its first 4095 bytes are read, as
    /// libkmod reads them). Unreadable files are skipped with a log line.
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
                // Gone since the directory was listed, or a module directory without
                // modules.softdep / modules.weakdep: nothing was configured there.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    debug!(file = %file.display(), error = %e, "configuration file not read")
                }
                // Configured but not read: its blacklists and options do not apply.
                Err(e) => {
                    warn!(file = %file.display(), error = %e, "configuration file not read; its settings do not apply")
                }
            }
        }
        if let Some(path) = cmdline {
            match read_cmdline(path) {
                Ok(bytes) => config.add_cmdline(&bytes),
                Err(e) => {
                    debug!(file = %path.display(), error = %e, "kernel command line not read")
                }
            }
        }
        config
    }

    /// Parses the text of one configuration file; `file` names it in log lines.
    ///
    /// Lines are read as libkmod's `freadline_wrapped` reads them: `\` and a newline join two
    /// lines, `\` and any other character is that character, a `\` ending the text is dropped.
    pub fn parse(&mut self, text: &str, file: &str) {
        let mut line = String::new();
        // Physical lines read so far: log lines name the last line of a joined line.
        let mut lineno = 0;
        let mut chars = text.chars();
        loop {
            match chars.next() {
                None => {
                    if !line.is_empty() {
                        self.parse_line(&line, file, lineno + 1);
                    }
                    return;
                }
                Some('\n') => {
                    lineno += 1;
                    self.parse_line(&line, file, lineno);
                    line.clear();
                }
                Some('\\') => match chars.next() {
                    Some('\n') => lineno += 1,
                    Some(c) => line.push(c),
                    None => {}
                },
                Some(c) => line.push(c),
            }
        }
    }

    fn parse_line(&mut self, line: &str, file: &str, lineno: usize) {
        // libkmod's lines are C strings: a NUL byte ends them.
        let line = line.split('\0').next().unwrap_or_default();
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
            "weakdep" => match token(rest) {
                Some((module, tail)) if !tail.is_empty() => {
                    self.weakdeps.push(Weakdep {
                        pattern: underscores(module),
                        deps: dep_words(tail).into_iter().map(str::to_owned).collect(),
                    });
                    true
                }
                _ => false,
            },
            "options" | "install" | "remove" | "softdep" => match token(rest) {
                Some((module, tail)) if !tail.is_empty() => {
                    let module = underscores(module);
                    match cmd {
                        "options" => self.options.push((module, tail.replace('\t', " "))),
                        "install" => {
                            debug!(module = %module, command = tail, "install command recorded");
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

    /// Parses a kernel command line as libkmod parses `/proc/cmdline`
    /// (`kmod_config_parse_kcmdline`), adding to the options and the blacklist after what is
    /// already there:
    ///
    /// * Only the first 4095 bytes count (libkmod's buffer), up to a NUL byte if any.
    /// * Words are separated by ASCII white space (space, tab, newline, `\v`, `\f`, `\r`)
    ///   outside double quotes; every line of a multi-line text is parsed.
    /// * `module.param` and `module.param=value` add the option `param` or `param=value` to
    ///   `module` (underscored). Ignored: words with `=` before the first `.`, a second `.` in
    ///   the parameter name, a `"` other than at the start of the word or inside the value
    ///   (which also opens a quoted stretch ignored up to its closing `"`), a value still
    ///   quoted at the end, a module name with unbalanced brackets.
    /// * A word quoted whole, `"module.param=a b"` (as grub writes values with spaces), is
    ///   taken as `module.param="a b"`: the option keeps the quotes, around the value. Tabs in
    ///   an option become spaces.
    /// * `modprobe.blacklist=a,b` blacklists each comma-separated name exactly as written:
    ///   not underscored (`snd-hda-intel` there matches no module, module names having `_`),
    ///   empty names included.
    pub fn parse_cmdline(&mut self, line: &str) {
        self.add_cmdline(line.as_bytes());
    }

    /// [`Self::parse_cmdline`] on bytes, which need not be UTF-8.
    fn add_cmdline(&mut self, bytes: &[u8]) {
        for entry in cmdline::parse(bytes) {
            match entry {
                cmdline::Entry::Blacklist(name) => self.blacklist.push(name),
                cmdline::Entry::Options { module, options } => self.options.push((module, options)),
            }
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

/// The kernel command line file's first [`cmdline::MAX_LEN`] bytes: as much as libkmod reads.
fn read_cmdline(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(cmdline::MAX_LEN as u64)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Splits the word list of a `softdep` or `weakdep` line as libkmod does: at runs of ASCII
/// white space, except that one white-space character at the very start (the second
/// delimiter after the module name) stays in the first word.
fn dep_words(list: &str) -> Vec<&str> {
    let bytes = list.as_bytes();
    let mut words = Vec::new();
    let mut start = 0;
    let mut was_space = false;
    for (i, &b) in bytes.iter().enumerate() {
        if !b.is_ascii_whitespace() && b != 0x0b {
            was_space = false;
        } else if was_space {
            start = i + 1;
        } else {
            was_space = true;
            // libkmod does not move the word start past white space at the very start.
            if start < i {
                words.push(&list[start..i]);
                start = i + 1;
            }
        }
    }
    if !was_space && start < bytes.len() {
        words.push(&list[start..]);
    }
    words
}

fn parse_softdep(pattern: String, tail: &str) -> Softdep {
    let mut dep = Softdep {
        pattern,
        pre: Vec::new(),
        post: Vec::new(),
    };
    let mut mode = 0;
    for word in dep_words(tail) {
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
    use test_support::Capture;
    use tracing::Level;

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
        assert_eq!(c.options_for("snd_x", None), "p=\"a b\"");
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

    #[test]
    fn a_configuration_file_that_cannot_be_read_is_a_warning() {
        let conf = tempfile::tempdir().unwrap();
        let big = std::fs::File::create(conf.path().join("huge.conf")).unwrap();
        big.set_len(MAX_CONFIG_FILE + 1).unwrap();
        let log = Capture::default();
        let c = tracing::subscriber::with_default(log.clone(), || {
            Config::load(&[conf.path().to_owned()], None, None)
        });
        assert!(c.files.is_empty());
        assert_eq!(log.at_least(Level::WARN).len(), 1, "one warning");
    }

    #[test]
    fn weakdep_lines_are_stored_silently_with_modules_weakdep_sorted_in() {
        let conf = tempfile::tempdir().unwrap();
        let m = tempfile::tempdir().unwrap();
        std::fs::write(m.path().join("modules.weakdep"), "weakdep snd-x snd-y\n").unwrap();
        std::fs::write(conf.path().join("a.conf"), "weakdep a-b c-d e\n").unwrap();
        std::fs::write(conf.path().join("z.conf"), "weakdep z* y\n").unwrap();
        let log = Capture::default();
        let c = tracing::subscriber::with_default(log.clone(), || {
            Config::load(&[conf.path().to_owned()], Some(m.path()), None)
        });
        assert_eq!(log.at_least(Level::WARN).len(), 0, "weakdep lines warned");
        let got: Vec<(&str, Vec<&str>)> = c
            .weakdeps
            .iter()
            .map(|w| {
                (
                    w.pattern.as_str(),
                    w.deps.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a_b", vec!["c-d", "e"]),
                ("snd_x", vec!["snd-y"]),
                ("z*", vec!["y"]),
            ]
        );
        // Nothing else came of them.
        assert!(c.softdeps.is_empty() && c.options.is_empty() && c.aliases.is_empty());
        // libkmod's word splitting: one leading white-space character stays in the first word.
        let mut c = Config::default();
        c.parse("weakdep m  a b\nweakdep n\nweakdep o \n", "t.conf");
        assert_eq!(c.weakdeps.len(), 1);
        assert_eq!(c.weakdeps[0].deps, vec![" a", "b"]);
    }
}

#[cfg(test)]
mod libkmod_tests {
    //! Tables whose expected values are what Debian's modprobe (kmod 30) prints with
    //! `modprobe -c` for the same input (blacklist lines, then options lines).
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(m, o)| ((*m).to_owned(), (*o).to_owned()))
            .collect()
    }

    /// (input, options in order, blacklist in order)
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );

    /// Feeds each input to a fresh [`Config`] and compares; reports every differing case.
    fn check(table: &[Case], feed: impl Fn(&mut Config, &str)) {
        let mut failures = Vec::new();
        for (input, options, blacklist) in table {
            let mut c = Config::default();
            feed(&mut c, input);
            let want_blacklist: Vec<String> = blacklist.iter().map(|s| (*s).to_owned()).collect();
            if c.options != owned(options) || c.blacklist != want_blacklist {
                failures.push(format!(
                    "{input:?}\n  want options {:?} blacklist {want_blacklist:?}\n  got  options {:?} blacklist {:?}",
                    owned(options),
                    c.options,
                    c.blacklist
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn cmdline_words_parse_like_libkmod() {
        let table: &[Case] = &[
            (r#""snd-x.p=a b""#, &[("snd_x", r#"p="a b""#)], &[]),
            (r#"snd-x.p="a b""#, &[("snd_x", r#"p="a b""#)], &[]),
            ("mod.flag", &[("mod", "flag")], &[]),
            ("mod.a.b=1 m2.c=1", &[("m2", "c=1")], &[]),
            ("modprobe.blacklist=a-b,,c,", &[], &["a-b", "", "c", ""]),
            ("modprobe.blacklist", &[("modprobe", "blacklist")], &[]),
            ("a=b.c d.e=f", &[("d", "e=f")], &[]),
            (r#"x"y.z=1 w.v=1"#, &[], &[]),
            (
                "a.b=1\tc.d=2\x0bx.y=3\x0cz.z=4\rr.r=5",
                &[
                    ("a", "b=1"),
                    ("c", "d=2"),
                    ("x", "y=3"),
                    ("z", "z=4"),
                    ("r", "r=5"),
                ],
                &[],
            ),
            ("a.b=1\nc.d=2\n", &[("a", "b=1"), ("c", "d=2")], &[]),
            (".x=1", &[("", "x=1")], &[]),
            ("a].x=1 a[-].x=1 a[x.y=1", &[("a[-]", "x=1")], &[]),
            ("\"a.b=x\ty\"", &[("a", "b=\"x y\"")], &[]),
            (r#""modprobe.blacklist=a,b""#, &[], &[r#""a"#, r#"b""#]),
            (
                "e1000.A=1 e1000.A=2",
                &[("e1000", "A=1"), ("e1000", "A=2")],
                &[],
            ),
            (
                "mod.p= mod.=1 mod..x=1",
                &[("mod", "p="), ("mod", "=1")],
                &[],
            ),
            (r#"a.b="c d"#, &[], &[]),
            (
                r#"a.b="c d" e.f=1"#,
                &[("a", r#"b="c d""#), ("e", "f=1")],
                &[],
            ),
            (r#""a.b=1" "c.d" "e.f"#, &[("a", r#"b="1""#)], &[]),
            (r#"a.b=1" c.d=2"#, &[], &[]),
            (r#""y.z=1"#, &[], &[]),
            (r#"""a.b=1 c"d.e=1" f.g=1"#, &[("f", "g=1")], &[]),
            ("a.b=1\0c.d=2", &[("a", "b=1")], &[]),
            (
                " \t mod-a-b.x-y=1-2   \"q.r=s\"t u\"  v.w",
                &[("mod_a_b", "x-y=1-2"), ("q", r#"r="s"t"#)],
                &[],
            ),
            (r#""modprobe".blacklist=x"#, &[], &[]),
            (
                "modprobe.blacklist=x y.z=1 modprobe.blacklist=w",
                &[("y", "z=1")],
                &["x", "w"],
            ),
        ];
        check(table, Config::parse_cmdline);
    }

    #[test]
    fn cmdline_is_read_up_to_4095_bytes_like_libkmod() {
        // libkmod reads /proc/cmdline into a 4096-byte buffer: a word cut at byte 4095 is
        // parsed as cut, and nothing after it is seen.
        let mut line = "x".repeat(4086);
        line.push_str(" a.b=123456 c.d=1");
        let mut c = Config::default();
        c.parse_cmdline(&line);
        assert_eq!(c.options, owned(&[("a", "b=1234")]));
    }

    #[test]
    fn cmdline_file_is_read_only_as_far_as_libkmod_reads_it() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("cmdline");
        let mut text = "x".repeat(4086);
        text.push_str(" a.b=123456 c.d=1 ");
        text.push_str(&"e.f=1 ".repeat(200_000));
        std::fs::write(&file, text).unwrap();
        let c = Config::load(&[], None, Some(&file));
        assert_eq!(c.options, owned(&[("a", "b=1234")]));
        // An endless file is read no further either.
        let c = Config::load(&[], None, Some(Path::new("/dev/zero")));
        assert!(c.options.is_empty() && c.blacklist.is_empty());
    }

    #[test]
    fn config_lines_unescape_backslashes_like_libkmod() {
        let table: &[Case] = &[
            (
                "options x a\\ b\\\\c \\\n d\\\"e\n",
                &[("x", "a b\\c  d\"e")],
                &[],
            ),
            ("blacklist q\\-r\n", &[], &["q_r"]),
            ("options x a\\", &[("x", "a")], &[]),
            ("options x a\\\n", &[("x", "a")], &[]),
            ("\\\n", &[], &[]),
            ("options x a\0b\nblacklist z\n", &[("x", "a")], &["z"]),
            ("options x \\#y\n", &[("x", "#y")], &[]),
            ("#comment \\\n options x y\nblacklist c\n", &[], &["c"]),
            ("\\#options x y\n", &[], &[]),
            ("options\\ x y\n", &[("x", "y")], &[]),
            ("options x a\\\\\nblacklist b\n", &[("x", "a\\")], &["b"]),
            ("options x a \\\r\n", &[("x", "a \r")], &[]),
            ("blacklist\\\n\\\nfoo\n", &[], &[]),
            ("options x a\\\n\\\n", &[("x", "a")], &[]),
        ];
        check(table, |c, text| c.parse(text, "t.conf"));
    }

    #[test]
    fn softdep_words_split_like_libkmod() {
        // libkmod keeps one whitespace character before the first word (the one after the
        // module name's delimiter) in that word: `softdep foo  pre: a` has the word " pre:",
        // which is not a keyword, so `a` is in no list.
        let mut c = Config::default();
        c.parse(
            "softdep foo  pre: a post: b\nsoftdep bar \tpre: c\nsoftdep baz pre:\t d  e\t\n\
             softdep q\tx pre: y\nsoftdep w   pre: v\n",
            "t.conf",
        );
        let got: Vec<(&str, Vec<String>, Vec<String>)> = c
            .softdeps
            .iter()
            .map(|s| (s.pattern.as_str(), s.pre.clone(), s.post.clone()))
            .collect();
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                ("foo", v(&[]), v(&["b"])),
                ("bar", v(&[]), v(&[])),
                ("baz", v(&["d", "e"]), v(&[])),
                ("q", v(&["y"]), v(&[])),
                ("w", v(&["v"]), v(&[])),
            ]
        );
    }

    #[test]
    fn config_files_skip_alias_files_and_sort_in_modules_weakdep() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let m = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("modules.alias"), "alias x y\n").unwrap();
        std::fs::write(a.path().join("old.alias"), "alias x y\n").unwrap();
        std::fs::write(a.path().join("n.conf"), "blacklist n\n").unwrap();
        std::fs::write(a.path().join("z.conf"), "blacklist z\n").unwrap();
        // A dangling symlink is not a configuration file, so it does not hide b/same.conf.
        std::os::unix::fs::symlink(a.path().join("missing"), a.path().join("same.conf")).unwrap();
        std::fs::write(b.path().join("same.conf"), "blacklist same\n").unwrap();
        std::fs::write(m.path().join("modules.softdep"), "").unwrap();
        std::fs::write(m.path().join("modules.weakdep"), "").unwrap();
        let names: Vec<String> =
            config_files(&[a.path().to_owned(), b.path().to_owned()], Some(m.path()))
                .iter()
                .map(|p| {
                    p.strip_prefix(p.parent().unwrap().parent().unwrap())
                        .unwrap()
                        .display()
                        .to_string()
                })
                .map(|p| p.split_once('/').map_or(p.clone(), |(_, f)| f.to_owned()))
                .collect();
        assert_eq!(
            names,
            vec![
                "modules.softdep",
                "modules.weakdep",
                "n.conf",
                "same.conf",
                "z.conf"
            ]
        );
        let c = Config::load(
            &[a.path().to_owned(), b.path().to_owned()],
            Some(m.path()),
            None,
        );
        assert_eq!(c.blacklist, vec!["n", "same", "z"]);
        assert!(c.aliases.is_empty());
    }

    #[test]
    fn config_file_of_a_config_path_does_not_replace_modules_softdep() {
        // libkmod sorts modules.softdep and modules.weakdep in first: a configuration path
        // that is a file of the same name is a duplicate and is ignored.
        let m = tempfile::tempdir().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(m.path().join("modules.softdep"), "softdep a pre: b\n").unwrap();
        let single = d.path().join("modules.softdep");
        std::fs::write(&single, "softdep c pre: d\n").unwrap();
        let c = Config::load(&[single], Some(m.path()), None);
        assert_eq!(c.softdeps.len(), 1);
        assert_eq!(c.softdeps[0].pattern, "a");
    }
}
