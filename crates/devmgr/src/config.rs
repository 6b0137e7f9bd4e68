//! `devmgr.toml`: every key optional, defaults work with no file; unknown keys and bad values
//! are errors naming the line. Every key, with its default, its bounds and what it does, is in
//! `devmgr.example.toml` at the repository's root (which a test parses to the defaults).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use supervisor::{PolicySection, SubtreePolicy};
use toml::Spanned;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `[listener]`
    pub listener: ListenerConfig,
    /// `[coldplug]`
    pub coldplug: ColdplugConfig,
    /// `[loader]`
    pub loader: LoaderConfig,
    /// `[control]`
    pub control: ControlConfig,
    /// `[restart]`: restart backoff of devmgr's subtree, with overrides for its nodes named
    /// relative to devmgr's own node (`listener`, `loader`, `coldplug`): a
    /// [`supervisor::SubtreePolicy`], attached where devmgr runs (`devmgr run`: `root.devmgr`;
    /// a node agent: its own node for devmgr, with `RestartPolicy::attach`).
    pub restart: SubtreePolicy,
}

/// `[listener]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Receive buffer in bytes (default 128 MiB), from `listener::MIN_RECEIVE_BUFFER` (which
    /// the kernel doubles to hold coldplug's smallest pacing window) to
    /// `listener::MAX_RECEIVE_BUFFER` (`i32::MAX / 2`, the most the kernel takes).
    pub receive_buffer: usize,
}

/// `[coldplug]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdplugConfig {
    /// The sysfs mount (default `/sys`).
    pub sysfs: PathBuf,
    /// Settle timeout (default 10 s).
    pub settle_timeout: Duration,
    /// Pacing (default auto).
    pub pacing: coldplug::Pacing,
    /// The short window of the settle rule (`crate::observe`): settled no sooner than this
    /// after the loader's last lookup or plan end, a driver bound, or a device that can lead
    /// to more devices was added (default 200 ms).
    pub settle_quiet: Duration,
    /// The enumeration window of the settle rule: settled no sooner than this after a USB hub
    /// or host controller bound or a USB device was added (the hub driver adds the devices on
    /// its ports one after another, each at most about that much later),
    /// nor than usb-storage's `delay_use` plus this after usb-storage bound (default 1 s).
    pub settle_enumeration: Duration,
}

/// `[loader]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderConfig {
    /// The module directory; `None`: `/lib/modules/$(uname -r)`.
    pub module_dir: Option<PathBuf>,
    /// modprobe.d directories; `None`: libkmod's.
    pub modprobe_d: Option<Vec<PathBuf>>,
    /// Kernel command line file (default `/proc/cmdline`); `None` in the file is not possible,
    /// an empty string ignores it.
    pub cmdline: Option<PathBuf>,
    /// Loads at once; 0 = two per CPU plus 16, at most 64 (`default_workers`).
    pub workers: usize,
    /// Run modprobe.d `install` commands as modprobe does (default); `false` refuses them and
    /// leaves such modules unloaded (`install X /bin/true` and `/bin/false` disable `X` either
    /// way). See `kmod_loader::load::InstallPolicy`.
    pub run_install_commands: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            module_dir: None,
            modprobe_d: None,
            cmdline: None,
            workers: 0,
            run_install_commands: true,
        }
    }
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            receive_buffer: listener::DEFAULT_RECEIVE_BUFFER,
        }
    }
}

impl Default for ColdplugConfig {
    fn default() -> Self {
        let defaults = coldplug::ColdplugConfig::default();
        ColdplugConfig {
            sysfs: defaults.sysfs,
            settle_timeout: defaults.settle_timeout,
            pacing: defaults.pacing,
            settle_quiet: DEFAULT_SETTLE_QUIET,
            settle_enumeration: DEFAULT_SETTLE_ENUMERATION,
        }
    }
}

/// Default of `coldplug.settle_quiet`.
pub const DEFAULT_SETTLE_QUIET: Duration = Duration::from_millis(200);

/// Default of `coldplug.settle_enumeration`: the kernel's own delays between a hub's bind and
/// the first device on its ports (power-on-good, the 100 ms debounce, port reset and address
/// recovery) add up to about 0.3 s; twice that leaves room for the descriptors' exchange on a
/// slow or busy machine (the usb-hub scenario of scripts/vm-scenarios checks it under TCG).
pub const DEFAULT_SETTLE_ENUMERATION: Duration = Duration::from_millis(600);

/// The longest `coldplug.settle_quiet` and `coldplug.settle_enumeration`.
pub const MAX_SETTLE_WINDOW: Duration = Duration::from_secs(60);

/// A configuration file that cannot be used: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {message}", path.display(), line.map_or_else(|| "?".to_string(), |l| l.to_string()))]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the fault, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// devmgr's settings as one table of another TOML file, e.g. the `[devmgr]` table of a node
/// agent's file: a field of the agent's own `Deserialize` struct, turned into a [`Config`] by
/// [`Config::from_section`], whose errors name the lines of the agent's file. The keys are
/// those of `devmgr.toml`; a missing table (`#[serde(default)]`) gives the defaults.
///
/// ```
/// use devmgr::config::{Config, Section};
///
/// #[derive(serde::Deserialize)]
/// struct AgentFile {
///     hostname: String,
///     #[serde(default)]
///     devmgr: Section,
/// }
///
/// let text = "hostname = \"n1\"\n[devmgr.coldplug]\nsettle_quiet = \"1s\"\n";
/// let file: AgentFile = toml::from_str(text).unwrap();
/// let config = Config::from_section(text, "agent.toml".as_ref(), "devmgr", file.devmgr).unwrap();
/// assert_eq!(config.coldplug.settle_quiet.as_secs(), 1);
/// # assert_eq!(file.hostname, "n1");
/// ```
#[derive(Deserialize, Default)]
#[serde(transparent)]
pub struct Section(RawConfig);

impl std::fmt::Debug for Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section").finish_non_exhaustive()
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listener: RawListener,
    #[serde(default)]
    coldplug: RawColdplug,
    #[serde(default)]
    loader: RawLoader,
    #[serde(default)]
    control: RawControl,
    restart: Option<PolicySection>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListener {
    receive_buffer: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawColdplug {
    sysfs: Option<PathBuf>,
    settle_timeout: Option<Spanned<String>>,
    pacing: Option<Spanned<toml::Value>>,
    settle_quiet: Option<Spanned<String>>,
    settle_enumeration: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLoader {
    module_dir: Option<PathBuf>,
    modprobe_d: Option<Vec<PathBuf>>,
    cmdline: Option<PathBuf>,
    workers: Option<Spanned<i64>>,
    run_install_commands: Option<bool>,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {err}"),
        })?;
        let config = Config::parse(&text, path)?;
        config.check_paths(&text, path)?;
        Ok(config)
    }

    /// Checks the paths the file names, so that a typo cannot quietly turn a feature off:
    ///
    /// * `coldplug.sysfs` must hold a `devices` directory (else the replay would find no device
    ///   and report "settled");
    /// * every `loader.modprobe_d` entry must exist and be readable (else its blacklists and
    ///   options would be skipped);
    /// * `loader.cmdline`, unless empty, must be a readable file (else `modprobe.blacklist=` and
    ///   module parameters would be skipped).
    ///
    /// `loader.module_dir` is not checked: the modules may be on a file system mounted later;
    /// devmgr waits for the index, says so at start and in its summary. The error names the
    /// line of the key.
    pub fn check_paths(&self, text: &str, path: &Path) -> Result<(), ConfigError> {
        self.check_paths_in(text, path, "")
    }

    /// [`Config::check_paths`] with `prefix` before the keys named in errors (`devmgr.`).
    fn check_paths_in(&self, text: &str, path: &Path, prefix: &str) -> Result<(), ConfigError> {
        let error = |key: &str, message: String| ConfigError {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            message: format!("{prefix}{message}"),
        };
        if line_of_key(text, "sysfs").is_some() && !self.coldplug.sysfs.join("devices").is_dir() {
            return Err(error(
                "sysfs",
                format!(
                    "coldplug.sysfs: {} has no devices/ directory (not a sysfs mount)",
                    self.coldplug.sysfs.display()
                ),
            ));
        }
        for dir in self.loader.modprobe_d.iter().flatten() {
            let readable = if dir.is_dir() {
                std::fs::read_dir(dir).map(drop)
            } else {
                std::fs::File::open(dir).map(drop)
            };
            if let Err(err) = readable {
                return Err(error(
                    "modprobe_d",
                    format!("loader.modprobe_d: {}: {err}", dir.display()),
                ));
            }
        }
        if let Some(cmdline) = self
            .loader
            .cmdline
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
            && let Err(err) = std::fs::File::open(cmdline)
        {
            return Err(error(
                "cmdline",
                format!(
                    "loader.cmdline: {}: {err} (an empty string ignores the command line)",
                    cmdline.display()
                ),
            ));
        }
        Ok(())
    }

    /// Parses the text of a configuration file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError {
            path: path.to_path_buf(),
            line: err.span().map(|s| line_of(text, s.start)),
            message: err.message().to_owned(),
        })?;
        Config::from_raw(text, path, "", raw)
    }

    /// devmgr's settings from the table `table` (e.g. `"devmgr"`) of another file, whose whole
    /// text is `text` (read from `path`): checked as [`Config::load`] checks `devmgr.toml`,
    /// values and paths, errors naming the line of `text` and the key under `table`
    /// (`agent.toml:12: devmgr.coldplug.settle_quiet: …`). Unknown keys are refused when the
    /// file is deserialized (see [`Section`]).
    pub fn from_section(
        text: &str,
        path: &Path,
        table: &str,
        section: Section,
    ) -> Result<Config, ConfigError> {
        let prefix = format!("{table}.");
        let config = Config::from_raw(text, path, &prefix, section.0)?;
        config.check_paths_in(text, path, &prefix)?;
        Ok(config)
    }

    /// Checks the values of `raw`, deserialized from `text`; `prefix` goes before the keys
    /// named in errors (every message below starts with its key).
    fn from_raw(
        text: &str,
        path: &Path,
        prefix: &str,
        raw: RawConfig,
    ) -> Result<Config, ConfigError> {
        let error = |span: Option<Range<usize>>, message: String| ConfigError {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message: format!("{prefix}{message}"),
        };
        let mut config = Config::default();
        if let Some(bytes) = raw.listener.receive_buffer {
            let value = usize::try_from(*bytes.get_ref())
                .ok()
                .filter(|b| {
                    (listener::MIN_RECEIVE_BUFFER..=listener::MAX_RECEIVE_BUFFER).contains(b)
                })
                .ok_or_else(|| {
                    error(
                        Some(bytes.span()),
                        format!(
                            "listener.receive_buffer must be between {} and {} bytes: the kernel \
                             takes at most i32::MAX / 2, and doubles it",
                            listener::MIN_RECEIVE_BUFFER,
                            listener::MAX_RECEIVE_BUFFER
                        ),
                    )
                })?;
            config.listener.receive_buffer = value;
        }
        if let Some(sysfs) = raw.coldplug.sysfs {
            config.coldplug.sysfs = sysfs;
        }
        if let Some(timeout) = raw.coldplug.settle_timeout {
            config.coldplug.settle_timeout = bounded_duration(
                timeout.get_ref(),
                "coldplug.settle_timeout",
                Duration::from_millis(1)..=MAX_SETTLE_TIMEOUT,
            )
            .map_err(|message| error(Some(timeout.span()), message))?;
        }
        if let Some(pacing) = raw.coldplug.pacing {
            config.coldplug.pacing = match pacing.get_ref() {
                toml::Value::String(s) if s == "auto" => coldplug::Pacing::Auto,
                toml::Value::String(s) if s == "off" => coldplug::Pacing::Off,
                toml::Value::Integer(n) if (1..=65536).contains(n) => {
                    coldplug::Pacing::Window(usize::try_from(*n).unwrap_or(1))
                }
                other => {
                    return Err(error(
                        Some(pacing.span()),
                        format!(
                            "coldplug.pacing: {other} is not \"auto\", \"off\" or a window from 1 to 65536"
                        ),
                    ));
                }
            };
        }
        if let Some(quiet) = raw.coldplug.settle_quiet {
            config.coldplug.settle_quiet = bounded_duration(
                quiet.get_ref(),
                "coldplug.settle_quiet",
                Duration::ZERO..=MAX_SETTLE_WINDOW,
            )
            .map_err(|message| error(Some(quiet.span()), message))?;
        }
        if let Some(window) = raw.coldplug.settle_enumeration {
            config.coldplug.settle_enumeration = bounded_duration(
                window.get_ref(),
                "coldplug.settle_enumeration",
                Duration::ZERO..=MAX_SETTLE_WINDOW,
            )
            .map_err(|message| error(Some(window.span()), message))?;
        }
        if let Some(section) = raw.restart {
            config.restart =
                SubtreePolicy::from_section(text, &format!("{prefix}restart"), section).map_err(
                    |err| ConfigError {
                        path: path.to_path_buf(),
                        line: Some(err.line),
                        message: match &err.field {
                            Some(field) => format!("{field}: {}", err.message),
                            None => err.message.clone(),
                        },
                    },
                )?;
        }
        config.loader.module_dir = raw.loader.module_dir;
        config.loader.modprobe_d = raw.loader.modprobe_d;
        config.loader.cmdline = raw.loader.cmdline;
        if let Some(run) = raw.loader.run_install_commands {
            config.loader.run_install_commands = run;
        }
        if let Some(workers) = raw.loader.workers {
            config.loader.workers = usize::try_from(*workers.get_ref())
                .ok()
                .filter(|w| *w <= 1024)
                .ok_or_else(|| {
                    error(
                        Some(workers.span()),
                        "loader.workers must be between 0 and 1024".into(),
                    )
                })?;
        }
        if let Some(socket) = raw.control.socket {
            config.control = ControlConfig::parse(socket.get_ref())
                .map_err(|message| error(Some(socket.span()), message))?;
        }
        Ok(config)
    }
}

/// The line of the first `key = …` in `text` (the checked keys are unique to their section).
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// The longest `coldplug.settle_timeout` (and `devmgr trigger --timeout`): no device takes an
/// hour to answer a synthetic event, and a bound keeps deadlines far from overflow.
pub const MAX_SETTLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// A duration from the configuration or the command line (Go's syntax:
/// [`supervisor::parse_duration`]), within `range`; the error names the key and the range.
pub fn bounded_duration(
    text: &str,
    key: &str,
    range: std::ops::RangeInclusive<Duration>,
) -> Result<Duration, String> {
    let duration = supervisor::parse_duration(text).map_err(|err| format!("{key}: {err}"))?;
    if range.contains(&duration) {
        Ok(duration)
    } else {
        Err(format!(
            "{key}: {text:?} is not between {:?} and {:?}",
            range.start(),
            range.end()
        ))
    }
}

/// `[control]`: the control socket of `devmgr run`, which `devmgr settle` asks (see
/// [`crate::control`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// The socket's path (default [`crate::control::DEFAULT_SOCKET`]); `None` (`socket = ""`
    /// in the file): no control socket, `devmgr settle` cannot ask this daemon.
    pub socket: Option<PathBuf>,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: Some(crate::control::DEFAULT_SOCKET.into()),
        }
    }
}

/// The longest path of a Unix socket (`sun_path` holds 108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

impl ControlConfig {
    /// `control.socket`: `""`, or an absolute path of at most 107 bytes.
    fn parse(socket: &str) -> Result<ControlConfig, String> {
        if socket.is_empty() {
            return Ok(ControlConfig { socket: None });
        }
        if !socket.starts_with('/') || socket.ends_with('/') || socket.contains('\0') {
            return Err(format!(
                "control.socket: {socket:?} is not an absolute path of a file (\"\" for no socket)"
            ));
        }
        if socket.len() > MAX_SOCKET_PATH {
            return Err(format!(
                "control.socket: {} bytes, a Unix socket's path holds at most {MAX_SOCKET_PATH}",
                socket.len()
            ));
        }
        Ok(ControlConfig {
            socket: Some(socket.into()),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<Spanned<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("devmgr.toml"))
    }

    #[test]
    fn the_control_socket_is_an_absolute_path_or_nothing() {
        let config = parse("").unwrap();
        assert_eq!(
            config.control.socket.as_deref(),
            Some(Path::new("/run/devmgr/control"))
        );
        let config = parse("[control]\nsocket = \"/tmp/d/c\"\n").unwrap();
        assert_eq!(
            config.control.socket.as_deref(),
            Some(Path::new("/tmp/d/c"))
        );
        assert_eq!(
            parse("[control]\nsocket = \"\"\n").unwrap().control.socket,
            None
        );
        let long = format!("/{}", "x".repeat(107));
        for bad in ["relative/c", "/run/devmgr/", "/a\\u0000b", long.as_str()] {
            let err = parse(&format!("\n[control]\nsocket = \"{bad}\"\n")).unwrap_err();
            assert_eq!(err.line, Some(3), "{bad:?}: {err}");
            assert!(err.message.contains("control.socket"), "{err}");
        }
        assert!(
            parse("[control]\nsockets = \"/x\"\n").is_err(),
            "unknown key"
        );
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listener.receive_buffer, 128 << 20);
        assert_eq!(config.coldplug.settle_timeout, Duration::from_secs(10));
        assert_eq!(config.coldplug.pacing, coldplug::Pacing::Auto);
    }

    /// `SO_RCVBUFFORCE` takes a C int, which the kernel caps at `i32::MAX / 2` before doubling
    /// it: larger sizes would wrap or be cut, so they are refused with their line.
    #[test]
    fn listener_receive_buffer_is_bounded_to_what_the_kernel_takes() {
        let read = |bytes: i64| {
            parse(&format!("[listener]\n\nreceive_buffer = {bytes}\n"))
                .map(|config| config.listener.receive_buffer)
        };
        assert_eq!(read(8192), Ok(8192));
        assert_eq!(read(1_073_741_823), Ok(1_073_741_823));
        for bytes in [
            2_147_483_648,
            3_221_225_472,
            4_294_967_296,
            1_073_741_824,
            8191,
            4096,
            0,
            -1,
        ] {
            let err = read(bytes).unwrap_err();
            assert_eq!(err.line, Some(3), "{bytes}: {err}");
            assert!(
                err.message
                    .contains("listener.receive_buffer must be between 8192 and 1073741823"),
                "{bytes}: {err}"
            );
        }
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            "[listener]\nreceive_buffer = 1048576\n\
             [coldplug]\nsysfs = \"/tmp/sys\"\nsettle_timeout = \"500ms\"\npacing = 32\n\
             [loader]\nmodule_dir = \"/m\"\nmodprobe_d = [\"/a\", \"/b\"]\ncmdline = \"/c\"\nworkers = 3\nrun_install_commands = false\n",
        )
        .unwrap();
        assert_eq!(config.listener.receive_buffer, 1 << 20);
        assert_eq!(config.coldplug.sysfs, PathBuf::from("/tmp/sys"));
        assert_eq!(config.coldplug.settle_timeout, Duration::from_millis(500));
        assert_eq!(config.coldplug.pacing, coldplug::Pacing::Window(32));
        assert_eq!(config.loader.module_dir, Some(PathBuf::from("/m")));
        assert_eq!(
            config.loader.modprobe_d,
            Some(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(config.loader.cmdline, Some(PathBuf::from("/c")));
        assert_eq!(config.loader.workers, 3);
        assert!(!config.loader.run_install_commands);
        let config = parse(
            "[coldplug]\nsettle_quiet = \"0ms\"\nsettle_enumeration = \"1.5s\"\n\
             [restart.defaults]\ninitial_interval = \"100ms\"\n\
             [restart.overrides.loader]\nmax_interval = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(config.coldplug.settle_quiet, Duration::ZERO);
        assert_eq!(
            config.coldplug.settle_enumeration,
            Duration::from_millis(1500)
        );
        assert_eq!(
            config.restart.defaults().initial_interval,
            Duration::from_millis(100)
        );
        assert_eq!(
            config.restart.params_for("loader").max_interval,
            Duration::from_secs(2)
        );
        assert_eq!(
            config.restart.params_for("loader").initial_interval,
            Duration::from_millis(100)
        );
        assert_eq!(
            parse("[coldplug]\npacing = \"off\"\n")
                .unwrap()
                .coldplug
                .pacing,
            coldplug::Pacing::Off
        );
    }

    #[test]
    fn faults_name_their_line() {
        for (text, line, needle) in [
            ("[listener]\nreceive_bufer = 5\n", 2, "unknown field"),
            ("\n\n[colplug]\n", 3, "unknown field"),
            (
                "[coldplug]\n\nsettle_timeout = \"soon\"\n",
                3,
                "settle_timeout",
            ),
            ("[coldplug]\npacing = \"fast\"\n", 2, "pacing"),
            ("[coldplug]\npacing = 0\n", 2, "pacing"),
            ("[listener]\nreceive_buffer = -1\n", 2, "receive_buffer"),
            ("[loader]\nworkers = 100000\n", 2, "workers"),
            ("[loader\n", 1, ""),
            ("[coldplug]\nsettle_quiet = \"2h\"\n", 2, "settle_quiet"),
            (
                "[coldplug]\n\nsettle_enumeration = \"61s\"\n",
                3,
                "coldplug.settle_enumeration",
            ),
            (
                "[coldplug]\nsettle_enumeration = \"soon\"\n",
                2,
                "settle_enumeration",
            ),
            (
                "[restart.defaults]\n\ninitial_interval = \"1us\"\n",
                3,
                "restart.defaults.initial_interval",
            ),
            (
                "[restart.overrides.listener]\nmultiplier = 0.5\n",
                2,
                "multiplier",
            ),
            (
                "[restart.overrides.\"a..b\"]\nmultiplier = 2.0\n",
                1,
                "not a valid relative DN",
            ),
            ("[restart]\nbackoff = 1\n", 2, "unknown field"),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.line, Some(line), "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
            assert!(
                err.to_string()
                    .starts_with(&format!("devmgr.toml:{line}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn durations_take_a_unit_and_stay_within_their_bounds() {
        let range = Duration::from_millis(1)..=MAX_SETTLE_TIMEOUT;
        let parse = |text: &str| bounded_duration(text, "k", range.clone());
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["10", "s", "-1s", "1 fortnight", "", "0s", "2h", "1e19s"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.starts_with("k: "), "{bad:?}: {err}");
        }
    }
}

#[cfg(test)]
mod paths {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("devmgr.toml");
        std::fs::write(&path, text).expect("write");
        Config::load(&path)
    }

    #[test]
    fn a_path_that_would_quietly_disable_a_feature_exits_naming_its_line() {
        let good = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(good.path().join("devices")).expect("mkdir");
        let cmdline = good.path().join("cmdline");
        std::fs::write(&cmdline, "quiet\n").expect("write");
        let ok = format!(
            "[coldplug]\nsysfs = {:?}\n[loader]\nmodprobe_d = [{:?}]\ncmdline = {:?}\nmodule_dir = \"/not/yet/mounted\"\n",
            good.path(),
            good.path(),
            cmdline
        );
        load(&ok).expect("existing paths, and a module_dir that may appear later");
        load("[loader]\ncmdline = \"\"\n").expect("an empty cmdline ignores it");
        for (text, line, needle) in [
            ("[coldplug]\n\nsysfs = \"/sys/typo\"\n", 3, "coldplug.sysfs"),
            (
                "[loader]\nmodprobe_d = [\"/etc/modprobe.d\", \"/etc/modprobe.dd\"]\n",
                2,
                "/etc/modprobe.dd",
            ),
            (
                "[loader]\ncmdline = \"/proc/cmdlin\"\n",
                2,
                "loader.cmdline",
            ),
        ] {
            let err = load(text).expect_err(text);
            assert_eq!(err.line, Some(line), "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    #[test]
    fn the_example_file_in_the_repository_parses_to_the_defaults() {
        let text = include_str!("../../../devmgr.example.toml");
        let config = Config::parse(text, Path::new("devmgr.example.toml")).unwrap();
        let mut expected = Config::default();
        expected.loader.cmdline = Some("/proc/cmdline".into());
        assert_eq!(config, expected);
    }
}

#[cfg(test)]
mod section {
    use super::*;

    /// A node agent's file: its own table, and devmgr's settings under `[devmgr]`.
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AgentFile {
        #[allow(dead_code, reason = "only the devmgr table is read here")]
        agent: toml::Table,
        #[serde(default)]
        devmgr: Section,
    }

    fn read(text: &str) -> Result<Config, ConfigError> {
        let file: AgentFile = toml::from_str(text).expect("the agent's file parses");
        Config::from_section(text, Path::new("agent.toml"), "devmgr", file.devmgr)
    }

    #[test]
    fn a_devmgr_table_of_another_file_is_read_as_devmgr_toml_is() {
        let config = read(
            "[agent]\nname = \"n1\"\n\n[devmgr.coldplug]\nsettle_quiet = \"100ms\"\n\
             [devmgr.loader]\ncmdline = \"\"\nworkers = 3\n\
             [devmgr.restart.defaults]\nmax_interval = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(config.coldplug.settle_quiet, Duration::from_millis(100));
        assert_eq!(config.loader.workers, 3);
        assert_eq!(config.loader.cmdline, Some(PathBuf::new()));
        assert_eq!(
            config.restart.defaults().max_interval,
            Duration::from_secs(5)
        );
        assert_eq!(
            read("[agent]\n").unwrap(),
            Config::default(),
            "no [devmgr] table: the defaults"
        );
    }

    #[test]
    fn faults_name_the_line_of_the_other_file_and_the_key_under_the_table() {
        for (text, line, needle) in [
            (
                "[agent]\n\n[devmgr.coldplug]\nsettle_quiet = \"2h\"\n",
                4,
                "devmgr.coldplug.settle_quiet",
            ),
            ("[agent]\n[devmgr.loader]\nworkerz = 1\n", 3, "workerz"),
            (
                "[agent]\n[devmgr.listener]\nreceive_buffer = 1\n",
                3,
                "devmgr.listener.receive_buffer",
            ),
            (
                "[agent]\n[devmgr.restart.defaults]\n\nmultiplier = 0.5\n",
                4,
                "devmgr.restart.defaults.multiplier",
            ),
            (
                "[agent]\n[devmgr.loader]\ncmdline = \"/proc/cmdlin\"\n",
                3,
                "devmgr.loader.cmdline",
            ),
        ] {
            let err = match toml::from_str::<AgentFile>(text) {
                Ok(file) => {
                    Config::from_section(text, Path::new("agent.toml"), "devmgr", file.devmgr)
                        .unwrap_err()
                }
                // Unknown keys are refused while the agent's file is deserialized.
                Err(err) => ConfigError {
                    path: "agent.toml".into(),
                    line: err.span().map(|s| line_of(text, s.start)),
                    message: err.message().to_owned(),
                },
            };
            assert_eq!(err.line, Some(line), "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
            assert!(
                err.to_string().starts_with(&format!("agent.toml:{line}: ")),
                "{err}"
            );
        }
    }
}
