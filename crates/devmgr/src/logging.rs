//! The command's log: to stderr, filtered by `RUST_LOG` in the `target=level,…` form of
//! `tracing_subscriber::filter::Targets` (e.g. `info`, `warn,kmod_loader=debug`). Not the full
//! `EnvFilter` syntax: its regex engine would add about 1 MB of code to a binary whose
//! resident size is measured against udevd's.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Logs to stderr at the levels of `RUST_LOG`, or else `default` (e.g. `"info"`).
pub(crate) fn init(default: &str) {
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(spec) => match Targets::from_str(&spec) {
            Ok(filter) => (filter, None),
            Err(err) => (default_filter(default), Some(format!("{spec:?}: {err}"))),
        },
        Err(_) => (default_filter(default), None),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(layer)
        .with(filter)
        .init();
    if let Some(bad) = bad {
        tracing::warn!("RUST_LOG ignored: {bad}");
    }
}

fn default_filter(default: &str) -> Targets {
    Targets::from_str(default).unwrap_or_default()
}
