//! `devmgr.toml`: every key optional, defaults work with no file; unknown keys and bad values
//! are errors naming the line.
//!
//! ```toml
//! [listener]
//! receive_buffer = 134217728   # bytes asked for with SO_RCVBUFFORCE (default 128 MiB)
//!
//! [coldplug]
//! sysfs = "/sys"               # sysfs mount (default /sys)
//! settle_timeout = "10s"       # no answer for this long: re-trigger once, then give up
//! pacing = "auto"              # "auto" (from the receive buffer), "off", or a window size
//! settle_quiet = "500ms"       # settled: replay answered, loads done, no new device this long
//!
//! [loader]
//! module_dir = "/lib/modules/6.12.117+deb12-amd64"   # default /lib/modules/$(uname -r)
//! modprobe_d = ["/etc/modprobe.d"]                     # default: libkmod's directories
//! cmdline = "/proc/cmdline"    # kernel command line for modprobe.blacklist= and mod.param=
//! workers = 0                  # loads at once; 0 = 2 per CPU + 16 (at most 64)
//!
//! [restart.defaults]           # restart backoff of the supervision tree (Go's defaults)
//! initial_interval = "500ms"
//! [restart.overrides."root.devmgr.listener"]
//! max_interval = "5s"
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use supervisor::{PolicySection, RestartPolicy};
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
    /// `[restart]`: backoff parameters of the supervision tree, with per-DN overrides (the
    /// format of [`supervisor::RestartPolicy`], under `restart.`).
    pub restart: RestartPolicy,
}

/// `[listener]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Receive buffer in bytes (default 128 MiB).
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
    /// Settled means: the replay was answered, no load is running, and no device with a
    /// modalias was added for this long (default 500 ms; devices behind a bus that was just
    /// driven, e.g. USB behind a new host controller, show up a moment later).
    pub settle_quiet: Duration,
}

/// `[loader]`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
        }
    }
}

/// Default of `coldplug.settle_quiet`.
pub const DEFAULT_SETTLE_QUIET: Duration = Duration::from_millis(500);

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    listener: RawListener,
    #[serde(default)]
    coldplug: RawColdplug,
    #[serde(default)]
    loader: RawLoader,
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
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLoader {
    module_dir: Option<PathBuf>,
    modprobe_d: Option<Vec<PathBuf>>,
    cmdline: Option<PathBuf>,
    workers: Option<Spanned<i64>>,
}

impl Config {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read: {err}"),
        })?;
        Config::parse(&text, path)
    }

    /// Parses the text of a configuration file (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let error = |span: Option<Range<usize>>, message: String| ConfigError {
            path: path.to_path_buf(),
            line: span.map(|s| line_of(text, s.start)),
            message,
        };
        let raw: RawConfig =
            toml::from_str(text).map_err(|err| error(err.span(), err.message().to_owned()))?;
        let mut config = Config::default();
        if let Some(bytes) = raw.listener.receive_buffer {
            let value = usize::try_from(*bytes.get_ref())
                .ok()
                .filter(|b| (4096..=1 << 32).contains(b))
                .ok_or_else(|| {
                    error(
                        Some(bytes.span()),
                        "listener.receive_buffer must be between 4096 and 4294967296 bytes".into(),
                    )
                })?;
            config.listener.receive_buffer = value;
        }
        if let Some(sysfs) = raw.coldplug.sysfs {
            config.coldplug.sysfs = sysfs;
        }
        if let Some(timeout) = raw.coldplug.settle_timeout {
            config.coldplug.settle_timeout = parse_duration(timeout.get_ref())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    error(
                        Some(timeout.span()),
                        format!(
                            "coldplug.settle_timeout: {:?} is not a positive duration like \"10s\" or \"500ms\"",
                            timeout.get_ref()
                        ),
                    )
                })?;
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
            config.coldplug.settle_quiet = parse_duration(quiet.get_ref())
                .filter(|d| *d <= Duration::from_secs(60))
                .ok_or_else(|| {
                    error(
                        Some(quiet.span()),
                        format!(
                            "coldplug.settle_quiet: {:?} is not a duration from \"0ms\" to \"60s\"",
                            quiet.get_ref()
                        ),
                    )
                })?;
        }
        if let Some(section) = raw.restart {
            config.restart =
                RestartPolicy::from_section(text, "restart", section).map_err(|err| {
                    ConfigError {
                        path: path.to_path_buf(),
                        line: Some(err.line),
                        message: match &err.field {
                            Some(field) => format!("{field}: {}", err.message),
                            None => err.message.clone(),
                        },
                    }
                })?;
        }
        config.loader.module_dir = raw.loader.module_dir;
        config.loader.modprobe_d = raw.loader.modprobe_d;
        config.loader.cmdline = raw.loader.cmdline;
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
        Ok(config)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |before| before.matches('\n').count() + 1)
}

/// `"10s"`, `"500ms"`, `"2m"`, `"1.5s"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("devmgr.toml"))
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.listener.receive_buffer, 128 << 20);
        assert_eq!(config.coldplug.settle_timeout, Duration::from_secs(10));
        assert_eq!(config.coldplug.pacing, coldplug::Pacing::Auto);
    }

    #[test]
    fn every_key_is_read() {
        let config = parse(
            "[listener]\nreceive_buffer = 1048576\n\
             [coldplug]\nsysfs = \"/tmp/sys\"\nsettle_timeout = \"500ms\"\npacing = 32\n\
             [loader]\nmodule_dir = \"/m\"\nmodprobe_d = [\"/a\", \"/b\"]\ncmdline = \"/c\"\nworkers = 3\n",
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
        let config = parse(
            "[coldplug]\nsettle_quiet = \"0ms\"\n\
             [restart.defaults]\ninitial_interval = \"100ms\"\n\
             [restart.overrides.\"root.devmgr.loader\"]\nmax_interval = \"2s\"\n",
        )
        .unwrap();
        assert_eq!(config.coldplug.settle_quiet, Duration::ZERO);
        assert_eq!(
            config.restart.defaults().initial_interval,
            Duration::from_millis(100)
        );
        assert_eq!(
            config.restart.params_for("root.devmgr.loader").max_interval,
            Duration::from_secs(2)
        );
        assert_eq!(
            config
                .restart
                .params_for("root.devmgr.loader")
                .initial_interval,
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
                "[restart.defaults]\n\ninitial_interval = \"1us\"\n",
                3,
                "restart.defaults.initial_interval",
            ),
            (
                "[restart.overrides.\"root.devmgr.listener\"]\nmultiplier = 0.5\n",
                2,
                "multiplier",
            ),
            (
                "[restart.overrides.\"devmgr\"]\nmultiplier = 2.0\n",
                1,
                "not a valid DN",
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
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        for bad in ["10", "s", "-1s", "1 fortnight", ""] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
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
