//! Per-DN logging (see `docs/supervisor.md#logging`). Every line goes to `tracing` with the DN
//! as the `dn` field; a [`LogRecorder`] (the analog of Go's logtree, used by the test harness)
//! can also keep them.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// The DN of the supervisor's own messages, a top-level stream next to `root`.
pub const SUPERVISOR_DN: &str = "supervisor";

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Informational.
    Info,
    /// Something unexpected, not fatal.
    Warning,
    /// An error.
    Error,
    /// A runnable death. Only recorded; it does not exit the process.
    Fatal,
}

/// One recorded log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// DN the line was logged at.
    pub dn: String,
    /// Severity.
    pub severity: Severity,
    /// Text.
    pub message: String,
}

#[derive(Debug, Default)]
struct RecorderInner {
    entries: Mutex<Vec<LogEntry>>,
    changed: Notify,
    echo: bool,
}

/// An in-memory record of log lines, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct LogRecorder {
    inner: Arc<RecorderInner>,
}

impl LogRecorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty recorder that also prints every line to stdout (captured by the Rust test
    /// runner and shown for failing tests, like Go's `t.Logf`).
    pub fn echoing() -> Self {
        Self {
            inner: Arc::new(RecorderInner {
                echo: true,
                ..RecorderInner::default()
            }),
        }
    }

    fn push(&self, entry: LogEntry) {
        if self.inner.echo {
            println!("{:?} {}: {}", entry.severity, entry.dn, entry.message);
        }
        match self.inner.entries.lock() {
            Ok(mut g) => g.push(entry),
            Err(p) => p.into_inner().push(entry),
        }
        self.inner.changed.notify_waiters();
    }

    /// A copy of every recorded line, oldest first.
    pub fn entries(&self) -> Vec<LogEntry> {
        match self.inner.entries.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The recorded lines logged at exactly `dn`.
    pub fn entries_at(&self, dn: &str) -> Vec<LogEntry> {
        self.entries().into_iter().filter(|e| e.dn == dn).collect()
    }

    /// Waits until some recorded line satisfies `pred`, and returns it.
    pub async fn wait_for(&self, pred: impl Fn(&LogEntry) -> bool) -> LogEntry {
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(e) = self.entries().into_iter().find(|e| pred(e)) {
                return e;
            }
            notified.await;
        }
    }
}

/// A leveled logger at one DN. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Logger {
    dn: Arc<str>,
    recorder: Option<LogRecorder>,
}

impl Logger {
    pub(crate) fn new(dn: impl Into<Arc<str>>, recorder: Option<LogRecorder>) -> Self {
        Self {
            dn: dn.into(),
            recorder,
        }
    }

    /// The DN this logger writes at.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// Logs at `severity`.
    pub fn log(&self, severity: Severity, message: impl fmt::Display) {
        let dn: &str = &self.dn;
        match severity {
            Severity::Info => tracing::info!(dn, "{message}"),
            Severity::Warning => tracing::warn!(dn, "{message}"),
            Severity::Error => tracing::error!(dn, "{message}"),
            Severity::Fatal => tracing::error!(dn, fatal = true, "{message}"),
        }
        if let Some(r) = &self.recorder {
            r.push(LogEntry {
                dn: dn.to_string(),
                severity,
                message: message.to_string(),
            });
        }
    }

    /// Logs at Info.
    pub fn info(&self, message: impl fmt::Display) {
        self.log(Severity::Info, message);
    }

    /// Logs at Warning.
    pub fn warning(&self, message: impl fmt::Display) {
        self.log(Severity::Warning, message);
    }

    /// Logs at Error.
    pub fn error(&self, message: impl fmt::Display) {
        self.log(Severity::Error, message);
    }

    /// Logs at Fatal (recorded only; the process keeps running, as in Go's logtree).
    pub fn fatal(&self, message: impl fmt::Display) {
        self.log(Severity::Fatal, message);
    }
}

/// Formats a duration like Go's `time.Duration.String`: `0s`, `1.5µs`, `250ms`, `2.53125s`,
/// `1m30s`, `1h0m0s`.
pub(crate) fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    // Below one second: a single unit with a fraction.
    let small = [
        (1_000u128, 1u128, "ns"),
        (1_000_000, 1_000, "µs"),
        (1_000_000_000, 1_000_000, "ms"),
    ];
    for (limit, unit, name) in small {
        if nanos < limit {
            return format!("{}{name}", with_fraction(nanos, unit));
        }
    }
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let mut out = String::new();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if secs >= 60 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&with_fraction(s * 1_000_000_000 + frac, 1_000_000_000));
    out.push('s');
    out
}

/// `value / unit` in decimal, without trailing zeros in the fraction (nor a lone `.`).
fn with_fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = unit.ilog10() as usize;
    let frac = format!("{rest:0digits$}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(1), "1ns"),
            (Duration::from_nanos(1500), "1.5µs"),
            (Duration::from_micros(250), "250µs"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_micros(562_500), "562.5ms"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_nanos(2_531_250_000), "2.53125s"),
            (Duration::from_nanos(43_248_779_296), "43.248779296s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_millis(90_500), "1m30.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(3723), "1h2m3s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
    }

    use super::*;

    #[tokio::test]
    async fn recorded_lines_keep_their_dn_and_severity() {
        let rec = LogRecorder::new();
        let log = Logger::new("root.a", Some(rec.clone()));
        log.info("hello");
        log.fatal("bye");
        assert_eq!(rec.entries_at("root.a").len(), 2);
        let e = rec.wait_for(|e| e.severity == Severity::Fatal).await;
        assert_eq!((e.dn.as_str(), e.message.as_str()), ("root.a", "bye"));
    }
}
