//! One replay of a set of devices: paced writes and settle tracking (rules R14, R17, R18).
//!
//! A pass writes `add <uuid>` into each device's `uevent` file, keeping at most `window`
//! written-but-unanswered devices (so the replay cannot overrun the listener's buffer), and is
//! settled when every UUID it wrote has come back as an event's `SYNTH_UUID`. If answers stop
//! coming, [`Pass::on_timeout`] re-triggers the unanswered devices once with fresh UUIDs, and
//! gives up on the second timeout, naming the devices that never answered.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use uevent::Action;

use crate::trigger::{self, Outcome};
use crate::uuid::UuidSource;
use crate::walk::{Walk, devpath};

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// The initial replay of every device.
    Coldplug,
    /// A re-synchronisation after events may have been lost: devices with a `modalias`.
    Resync,
}

/// What a pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// Why it ran.
    pub kind: PassKind,
    /// Devices found by the walk.
    pub devices: usize,
    /// Paths the walk could not read.
    pub walk_errors: usize,
    /// Successful writes (re-triggers included).
    pub written: usize,
    /// Writes whose UUID came back.
    pub answered: usize,
    /// Devices gone (`ENOENT`) or refusing synthetic events (`ENODEV`).
    pub gone: usize,
    /// Devices whose write failed otherwise, by devpath, with the error.
    pub failed: Vec<(PathBuf, Errno)>,
    /// Writing stopped at `EROFS`.
    pub read_only: bool,
    /// Devices re-triggered after the first timeout.
    pub retriggered: Vec<PathBuf>,
    /// Devices that never answered, even after the re-trigger.
    pub unanswered: Vec<PathBuf>,
    /// Every written UUID came back.
    pub settled: bool,
    /// From the start of the pass to its last write.
    pub writing: Duration,
    /// From the start of the pass to its end.
    pub elapsed: Duration,
}

/// What a timeout led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutAction {
    /// The unanswered devices were queued again with fresh UUIDs.
    Retrigger(usize),
    /// Second timeout: the pass ends unsettled.
    GiveUp,
}

/// One replay in progress.
#[derive(Debug)]
pub struct Pass {
    action: Action,
    sysfs: PathBuf,
    devices: Vec<PathBuf>,
    queue: VecDeque<usize>,
    outstanding: HashMap<String, usize>,
    window: Option<usize>,
    retried: bool,
    started: Instant,
    report: PassReport,
}

impl Pass {
    /// A pass over the devices of `walk` (found under `sysfs`), with at most `window` writes
    /// unanswered (`None`: no pacing).
    pub fn new(kind: PassKind, sysfs: &Path, walk: Walk, window: Option<usize>) -> Pass {
        let report = PassReport {
            kind,
            devices: walk.devices.len(),
            walk_errors: walk.errors.len(),
            written: 0,
            answered: 0,
            gone: 0,
            failed: Vec::new(),
            read_only: false,
            retriggered: Vec::new(),
            unanswered: Vec::new(),
            settled: false,
            writing: Duration::ZERO,
            elapsed: Duration::ZERO,
        };
        Pass {
            action: Action::Add,
            sysfs: sysfs.to_path_buf(),
            queue: (0..walk.devices.len()).collect(),
            devices: walk.devices,
            outstanding: HashMap::new(),
            window: window.map(|w| w.max(1)),
            retried: false,
            started: Instant::now(),
            report,
        }
    }

    /// Writes `action` instead of `add` (for `devmgr trigger --action`; a replay is `add`).
    pub fn with_action(mut self, action: Action) -> Pass {
        self.action = action;
        self
    }

    /// Writes queued devices while fewer than `window` are unanswered. Returns how many were
    /// written.
    pub fn pump(&mut self, uuids: &mut UuidSource) -> usize {
        let mut written = 0;
        while self.window.is_none_or(|w| self.outstanding.len() < w) {
            let Some(index) = self.queue.pop_front() else {
                break;
            };
            let Some(dir) = self.devices.get(index) else {
                continue;
            };
            let uuid = uuids.next_uuid();
            match trigger::write(dir, self.action, &uuid) {
                Outcome::Written => {
                    self.outstanding.insert(uuid, index);
                    self.report.written += 1;
                    written += 1;
                }
                Outcome::Gone(_) => self.report.gone += 1,
                Outcome::Failed(errno) => {
                    self.report.failed.push((devpath(&self.sysfs, dir), errno));
                }
                Outcome::ReadOnly => {
                    tracing::error!(path = %dir.display(), "sysfs is read-only: no device can be triggered");
                    self.report.read_only = true;
                    self.queue.clear();
                }
            }
            if self.queue.is_empty() {
                self.report.writing = self.started.elapsed();
            }
        }
        written
    }

    /// Records that the event tagged `uuid` arrived; `true` if it was one of ours.
    pub fn answer(&mut self, uuid: &[u8]) -> bool {
        let found = std::str::from_utf8(uuid)
            .ok()
            .and_then(|u| self.outstanding.remove(u))
            .is_some();
        if found {
            self.report.answered += 1;
        }
        found
    }

    /// Devices found by the walk.
    pub fn devices(&self) -> usize {
        self.report.devices
    }

    /// Written UUIDs that have not come back yet.
    pub fn unanswered(&self) -> usize {
        self.outstanding.len()
    }

    /// Nothing left to write and every written UUID came back (or was given up on).
    pub fn is_done(&self) -> bool {
        self.queue.is_empty() && self.outstanding.is_empty()
    }

    /// Answers stopped coming: the first time, queue the unanswered devices again (they get
    /// fresh UUIDs when written); the second time, give up on them.
    pub fn on_timeout(&mut self) -> TimeoutAction {
        if self.retried {
            let mut missing: Vec<usize> = self.outstanding.drain().map(|(_, i)| i).collect();
            missing.sort_unstable();
            let paths = self.devpaths(&missing);
            tracing::warn!(devices = ?paths, "devices never answered the coldplug trigger");
            self.report.unanswered.extend(paths);
            self.queue.clear();
            TimeoutAction::GiveUp
        } else {
            self.retried = true;
            TimeoutAction::Retrigger(
                self.requeue_outstanding(
                    "devices did not answer in time; triggering them once more",
                ),
            )
        }
    }

    /// Events were lost (the listener's `Resync`): the devices still unanswered may never be
    /// answered, so queue them again now (fresh UUIDs) instead of waiting for the settle
    /// timeout. This does not use up the pass's one re-trigger after a timeout. An answer to the
    /// old write that still arrives is ignored; the device is then triggered twice, which is
    /// harmless. Returns how many were queued.
    pub fn retrigger_outstanding(&mut self) -> usize {
        self.requeue_outstanding(
            "events may have been lost; triggering the unanswered devices again",
        )
    }

    /// Queues the unanswered devices again, first in line and in walk order, and records them
    /// as re-triggered. Returns how many.
    fn requeue_outstanding(&mut self, why: &str) -> usize {
        let mut missing: Vec<usize> = self.outstanding.drain().map(|(_, i)| i).collect();
        missing.sort_unstable();
        let paths = self.devpaths(&missing);
        if !paths.is_empty() {
            tracing::warn!(devices = ?paths, "{why}");
        }
        self.report.retriggered.extend(paths);
        let n = missing.len();
        for index in missing.into_iter().rev() {
            self.queue.push_front(index);
        }
        n
    }

    /// The devpaths of the devices at `indices`.
    fn devpaths(&self, indices: &[usize]) -> Vec<PathBuf> {
        indices
            .iter()
            .filter_map(|&i| self.devices.get(i))
            .map(|dir| devpath(&self.sysfs, dir))
            .collect()
    }

    /// Ends the pass and returns its report.
    pub fn finish(mut self) -> PassReport {
        self.report.settled = self.outstanding.is_empty() && self.report.unanswered.is_empty();
        self.report.elapsed = self.started.elapsed();
        if self.report.writing.is_zero() {
            self.report.writing = self.report.elapsed;
        }
        self.report
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::walk::{Select, devices};

    fn tree(n: usize) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..n {
            let dir = tmp.path().join(format!("devices/dev{i:02}"));
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("uevent"), "").unwrap();
            std::os::unix::fs::symlink("../../bus/x", dir.join("subsystem")).unwrap();
        }
        tmp
    }

    fn written_uuid(tmp: &Path, i: usize) -> String {
        let content = fs::read_to_string(tmp.join(format!("devices/dev{i:02}/uevent"))).unwrap();
        content.strip_prefix("add ").unwrap().to_owned()
    }

    /// A coldplug pass over every device of the tree at `root`.
    fn pass_over(root: &Path, window: Option<usize>) -> Pass {
        Pass::new(PassKind::Coldplug, root, devices(root, Select::All), window)
    }

    fn uuids() -> UuidSource {
        UuidSource::new(Path::new("/nonexistent"))
    }

    #[test]
    fn the_window_bounds_unanswered_writes_and_answers_let_more_through() {
        let tmp = tree(5);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), Some(2));
        assert_eq!(pass.pump(&mut uuids), 2);
        assert_eq!(pass.pump(&mut uuids), 0, "window full");
        assert!(pass.answer(written_uuid(tmp.path(), 0).as_bytes()));
        assert!(!pass.answer(b"not-ours"));
        assert_eq!(pass.pump(&mut uuids), 1);
        for i in 1..=2 {
            assert!(pass.answer(written_uuid(tmp.path(), i).as_bytes()));
        }
        assert_eq!(pass.pump(&mut uuids), 2);
        for i in 3..=4 {
            assert!(pass.answer(written_uuid(tmp.path(), i).as_bytes()));
        }
        assert!(pass.is_done());
        let report = pass.finish();
        assert!(report.settled);
        assert_eq!((report.devices, report.written, report.answered), (5, 5, 5));
    }

    #[test]
    fn after_lost_events_the_unanswered_are_written_again_at_once_and_keep_their_retry() {
        let tmp = tree(3);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), None);
        assert_eq!(pass.pump(&mut uuids), 3);
        let first = written_uuid(tmp.path(), 1);
        assert!(pass.answer(written_uuid(tmp.path(), 0).as_bytes()));
        assert_eq!(pass.retrigger_outstanding(), 2);
        assert_eq!(pass.pump(&mut uuids), 2, "written again");
        assert_ne!(written_uuid(tmp.path(), 1), first, "with a fresh UUID");
        assert!(
            !pass.answer(first.as_bytes()),
            "the old write's answer is ignored"
        );
        // The one re-trigger after a timeout is still there.
        assert_eq!(pass.on_timeout(), TimeoutAction::Retrigger(2));
        assert_eq!(pass.pump(&mut uuids), 2);
        for i in 1..=2 {
            assert!(pass.answer(written_uuid(tmp.path(), i).as_bytes()));
        }
        let report = pass.finish();
        assert!(report.settled);
        assert_eq!(report.retriggered.len(), 4);
    }

    #[test]
    fn an_answer_is_matched_by_uuid_never_by_a_repeated_one() {
        let tmp = tree(1);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), None);
        pass.pump(&mut uuids);
        let uuid = written_uuid(tmp.path(), 0);
        assert!(pass.answer(uuid.as_bytes()));
        assert!(!pass.answer(uuid.as_bytes()), "a UUID counts once");
        assert_eq!(pass.finish().answered, 1);
    }

    #[test]
    fn without_pacing_everything_is_written_at_once() {
        let tmp = tree(30);
        let mut pass = pass_over(tmp.path(), None);
        assert_eq!(pass.pump(&mut uuids()), 30);
        assert_eq!(pass.unanswered(), 30);
    }

    #[test]
    fn vanished_and_unwritable_devices_are_counted_and_the_walk_goes_on() {
        let tmp = tree(4);
        let walk = devices(tmp.path(), Select::All);
        // After the walk: dev01 vanishes, dev02's uevent cannot be written.
        fs::remove_dir_all(tmp.path().join("devices/dev01")).unwrap();
        let dev02 = tmp.path().join("devices/dev02");
        fs::remove_file(dev02.join("uevent")).unwrap();
        fs::create_dir(dev02.join("uevent")).unwrap();

        let mut pass = Pass::new(PassKind::Coldplug, tmp.path(), walk, None);
        assert_eq!(pass.pump(&mut uuids()), 2);
        for i in [0, 3] {
            assert!(pass.answer(written_uuid(tmp.path(), i).as_bytes()));
        }
        let report = pass.finish();
        assert!(report.settled);
        assert_eq!((report.written, report.gone), (2, 1));
        assert_eq!(
            report.failed,
            [(PathBuf::from("/devices/dev02"), Errno::EISDIR)]
        );
    }

    #[test]
    fn a_timeout_retriggers_the_silent_once_then_gives_up_naming_them() {
        let tmp = tree(3);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), None);
        pass.pump(&mut uuids);
        let first = written_uuid(tmp.path(), 1);
        assert!(pass.answer(written_uuid(tmp.path(), 0).as_bytes()));
        assert_eq!(pass.on_timeout(), TimeoutAction::Retrigger(2));
        assert!(
            !pass.answer(first.as_bytes()),
            "old UUIDs are forgotten after a re-trigger"
        );
        assert_eq!(pass.pump(&mut uuids), 2);
        let second = written_uuid(tmp.path(), 1);
        assert_ne!(first, second, "a re-trigger uses a fresh UUID");
        assert!(pass.answer(second.as_bytes()));
        assert_eq!(pass.on_timeout(), TimeoutAction::GiveUp);
        assert!(pass.is_done());
        let report = pass.finish();
        assert!(!report.settled);
        assert_eq!(
            report.retriggered,
            [
                PathBuf::from("/devices/dev01"),
                PathBuf::from("/devices/dev02")
            ]
        );
        assert_eq!(report.unanswered, [PathBuf::from("/devices/dev02")]);
        assert_eq!(report.written, 5);
    }
}
