//! `devmgr trigger`: make the kernel send an event for every (matching) device, like
//! `udevadm trigger --type=devices`, and with `--settle` know when it has answered every write.
//!
//! Devices are found by coldplug's walk (`<sysfs>/devices`, parents before children, devices
//! the kernel announces only). Each gets `ACTION UUID` written into its `uevent` file with a
//! fresh UUID, so its event comes back with `SYNTH_UUID=UUID` and is told apart from any other
//! event by that alone (never by devpath). The writes, their pacing against the listener, the
//! settle tracking and the one re-trigger of silent devices are coldplug's [`Pass`], with the
//! action as a parameter.
//!
//! Without `--settle` nothing listens: every device is written at once and the command
//! reports what the writes came to. With it, a [`Listener`] (the daemon's socket and trust
//! checks) is bound before the first write.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use coldplug::walk::{self, Select, Walk, devpath};
use coldplug::{Pass, PassKind, PassReport, TimeoutAction, UuidSource};
use kmod_loader::fnmatch::fnmatch;
use listener::{Filter, Listener, ListenerConfig, ListenerMsg, Notification, Subscription};
use ractor::{Actor, call};

use crate::TriggerArgs;
use crate::monitor::runtime;

/// Where the random part of our UUIDs comes from.
const RANDOM_UUID: &str = "/proc/sys/kernel/random/uuid";

/// Events in flight from the listener before it tells us to resync (as coldplug).
const CAPACITY: usize = 1 << 16;

/// Parses `--timeout`: `10s`, `500ms`, `1m30s`, or a bare number of seconds (as
/// `udevadm settle --timeout`), from a millisecond to an hour.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // A bare number is seconds; `s` makes it a duration with the same bounds.
    let with_unit = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        format!("{text}s")
    } else {
        text.to_owned()
    };
    devmgr::config::bounded_duration(
        &with_unit,
        "--timeout",
        Duration::from_millis(1)..=devmgr::config::MAX_SETTLE_TIMEOUT,
    )
}

/// Runs `devmgr trigger`.
pub(crate) fn trigger(args: TriggerArgs) -> ExitCode {
    crate::logging::init("warn");
    let root = args.sysfs.join("devices");
    if !root.is_dir() {
        eprintln!("devmgr: {} is not a directory", root.display());
        return ExitCode::FAILURE;
    }
    let walk = select(
        walk::devices(&args.sysfs, Select::All),
        &args.sysfs,
        &args.subsystems,
    );
    for (path, err) in &walk.errors {
        tracing::warn!(path = %path.display(), error = %err, "part of sysfs could not be walked");
    }
    if args.verbose || args.dry_run {
        let mut out = std::io::stdout().lock();
        for dir in &walk.devices {
            let _ = writeln!(out, "{}", dir.display());
        }
        if args.dry_run {
            let _ = writeln!(
                out,
                "would trigger {} devices (dry run: nothing written)",
                walk.devices.len()
            );
            return ExitCode::SUCCESS;
        }
    }
    let report = if args.settle {
        let Some(runtime) = runtime() else {
            return ExitCode::FAILURE;
        };
        match runtime.block_on(settle(&args, walk)) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("devmgr: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut uuids = UuidSource::new(Path::new(RANDOM_UUID));
        let mut pass =
            Pass::new(PassKind::Coldplug, &args.sysfs, walk, None).with_action(args.action);
        pass.pump(&mut uuids);
        pass.finish().into()
    };
    let _ = writeln!(std::io::stdout(), "{}", report.summary(args.settle));
    for (devpath, error) in &report.failed {
        eprintln!("devmgr: cannot trigger {}: {error}", devpath.display());
    }
    if report.read_only {
        eprintln!("devmgr: sysfs is read-only: triggering stopped");
    }
    for devpath in &report.unanswered {
        eprintln!("devmgr: {} never answered", devpath.display());
    }
    if report.failed(args.settle) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// What a trigger came to: coldplug's [`PassReport`] in the terms of this command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Report {
    /// Devices written at least once.
    triggered: usize,
    /// Writes whose event came back.
    answered: usize,
    /// Devices gone (`ENOENT`) or refusing synthetic events (`ENODEV`).
    gone: usize,
    /// Devices whose write failed otherwise, by devpath, with the error.
    failed: Vec<(PathBuf, String)>,
    /// Writing stopped at `EROFS`.
    read_only: bool,
    /// Devices that never answered, even after being triggered once more.
    unanswered: Vec<PathBuf>,
    /// Every write was answered.
    settled: bool,
}

impl From<PassReport> for Report {
    fn from(r: PassReport) -> Report {
        Report {
            triggered: r.written.saturating_sub(r.retriggered.len()),
            answered: r.answered,
            gone: r.gone,
            failed: r
                .failed
                .into_iter()
                .map(|(path, errno)| {
                    (
                        path,
                        std::io::Error::from_raw_os_error(errno as i32).to_string(),
                    )
                })
                .collect(),
            read_only: r.read_only,
            unanswered: r.unanswered,
            settled: r.settled,
        }
    }
}

impl Report {
    /// `triggered N devices, [M answered, ]K gone, F failed`.
    fn summary(&self, settle: bool) -> String {
        let answered = if settle {
            format!("{} answered, ", self.answered)
        } else {
            String::new()
        };
        format!(
            "triggered {} devices, {answered}{} gone, {} failed",
            self.triggered,
            self.gone,
            self.failed.len()
        )
    }

    /// A write failed, sysfs was read-only, or (settling) a device never answered.
    fn failed(&self, settle: bool) -> bool {
        !self.failed.is_empty() || self.read_only || (settle && !self.settled)
    }
}

/// Keeps the devices whose subsystem (the name of their `subsystem` link) matches one of the
/// globs; all of them without any.
fn select(walk: Walk, sysfs: &Path, patterns: &[String]) -> Walk {
    if patterns.is_empty() {
        return walk;
    }
    let Walk { devices, errors } = walk;
    let devices = devices
        .into_iter()
        .filter(|dir| match subsystem(dir) {
            Some(name) => patterns
                .iter()
                .any(|p| fnmatch(p.as_bytes(), name.as_bytes())),
            None => {
                tracing::debug!(devpath = %devpath(sysfs, dir).display(), "no subsystem link; skipped");
                false
            }
        })
        .collect();
    Walk { devices, errors }
}

/// The subsystem of the device at `dir`: the last component of its `subsystem` link.
fn subsystem(dir: &Path) -> Option<String> {
    let target = std::fs::read_link(dir.join("subsystem")).ok()?;
    Some(target.file_name()?.to_string_lossy().into_owned())
}

/// Listens, writes and waits for every answer; coldplug's actor loop without the actor.
async fn settle(args: &TriggerArgs, walk: Walk) -> Result<Report, String> {
    let (listener, _) = Actor::spawn(None, Listener, ListenerConfig::default())
        .await
        .map_err(|e| format!("cannot listen for uevents: {e}"))?;
    let result = settle_with(&listener, args, walk).await;
    listener.stop(None);
    result
}

async fn settle_with(
    listener: &ractor::ActorRef<ListenerMsg>,
    args: &TriggerArgs,
    walk: Walk,
) -> Result<Report, String> {
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let subscription = Subscription::to_fn(move |n| tx.send(n).is_ok())
        .filter(Filter::actions([args.action]))
        .capacity(CAPACITY);
    call!(listener, ListenerMsg::Subscribe, subscription)
        .map_err(|e| format!("cannot subscribe to the listener: {e}"))?;
    // Pacing as coldplug's `auto`: one write in flight per 4 KiB of receive buffer.
    let stats =
        call!(listener, ListenerMsg::Stats).map_err(|e| format!("cannot ask the listener: {e}"))?;
    let window = (stats.receive_buffer / 4096).clamp(4, 1024);
    let mut uuids = UuidSource::new(Path::new(RANDOM_UUID));
    let mut pass =
        Pass::new(PassKind::Coldplug, &args.sysfs, walk, Some(window)).with_action(args.action);
    tracing::debug!(devices = pass.devices(), window, action = %args.action, "triggering");
    pass.pump(&mut uuids);
    let mut last_progress = tokio::time::Instant::now();
    while !pass.is_done() {
        tokio::select! {
            notification = events.recv() => match notification {
                Some(Notification::Uevents(batch)) => {
                    let mut progress = false;
                    for event in &batch {
                        if let Some(uuid) = event.synth_uuid() {
                            progress |= pass.answer(uuid);
                        }
                    }
                    drop(batch);
                    if progress {
                        last_progress = tokio::time::Instant::now();
                        pass.pump(&mut uuids);
                    }
                }
                Some(Notification::Resync(reason)) => {
                    // Answers may be lost: the silent devices are re-triggered on timeout.
                    tracing::warn!(?reason, unanswered = pass.unanswered(), "events may have been lost");
                }
                None => return Err("the uevent listener stopped".to_owned()),
            },
            () = tokio::time::sleep_until(last_progress + args.timeout) => {
                match pass.on_timeout() {
                    TimeoutAction::Retrigger(devices) => {
                        tracing::warn!(devices, timeout = ?args.timeout, "no answer in time; triggering the silent devices once more");
                        last_progress = tokio::time::Instant::now();
                        pass.pump(&mut uuids);
                    }
                    TimeoutAction::GiveUp => {}
                }
            }
        }
    }
    Ok(pass.finish().into())
}
