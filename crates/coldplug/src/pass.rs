//! One replay of a set of devices: paced writes and settle tracking, by the rules of
//! `docs/uevents.md#pacing` and `docs/uevents.md#settling-and-the-settle-timeout` (the timeout
//! is [`Pass::on_timeout`]).
//!
//! Writes block (a driver's uevent callback runs inside them, and some are slow), so a pass
//! hands them out in batches ([`Pass::next_batch`]) for the caller to perform where blocking is
//! harmless ([`Batch::perform`], e.g. in `tokio::task::spawn_blocking`) and give back
//! ([`Pass::record`]); answers may arrive meanwhile. [`Pass::pump`] does all three in place,
//! for synchronous callers.
//!
//! What a pass holds per device is kept small, for a `/sys` of 100,000 devices: the walk's
//! paths in a compact [`DeviceList`] (shared with the batches, which decode the paths they
//! write), a cursor for the devices not written yet, and nothing else for a device that
//! answers; per UUID waited for, a 128-bit tag and an index (at most the window, or every
//! device when unpaced); a batch is at most [`MAX_BATCH`] writes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use uevent::Action;

use crate::trigger::{self, Outcome};
use crate::uuid::{Tag, UuidSource};
use crate::walk::{DeviceList, Listing, devpath};

/// Why a pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// The initial replay of every device.
    Coldplug,
    /// A re-synchronisation after events may have been lost: the devices module loading
    /// depends on (with a `modalias`, or matched by `ColdplugConfig::resync_also`).
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
    /// Devices re-triggered (after a timeout, or because events were lost), in that order.
    pub retriggered: Vec<PathBuf>,
    /// Devices that were written but never answered, even after their re-trigger.
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
    /// The pass goes on: this many silent devices were queued again with fresh UUIDs (none
    /// when the timeout only gave up on devices already re-triggered, or only found writes
    /// still blocking); devices not written yet are still to be written. Pump again.
    Retrigger(usize),
    /// Nothing is left to write or wait for: the pass ends unsettled.
    GiveUp,
}

/// A write that takes at least this long is logged: the driver's uevent callback is slow, and
/// a pass cannot end while one of its writes has not returned.
const SLOW_WRITE: Duration = Duration::from_secs(1);

/// The most writes a batch holds, paced or not: unpaced, a pass writes every device in
/// batches of this size, one after the other, rather than in one batch as large as the walk.
const MAX_BATCH: usize = 1024;

/// Writes handed out by [`Pass::next_batch`]: perform them where blocking is harmless
/// ([`Batch::perform`]) and give the outcome back to [`Pass::record`].
#[derive(Debug)]
pub struct Batch {
    action: Action,
    sysfs: PathBuf,
    devices: Arc<DeviceList>,
    writes: Vec<Write>,
}

/// One write of a batch: the device, by index into the pass's list, and its UUID.
#[derive(Debug)]
struct Write {
    index: usize,
    uuid: Tag,
}

/// What came of a [`Batch`]'s writes, for [`Pass::record`].
#[derive(Debug)]
pub struct BatchOutcome {
    /// Each write with its outcome; `None` if it was not attempted (after `EROFS`, or when
    /// told to stop).
    writes: Vec<(Write, Option<Outcome>)>,
}

impl Batch {
    /// How many writes.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// No writes (never the case for a batch from [`Pass::next_batch`]).
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Performs the writes in order, stopping at `EROFS`. Blocks: every write runs the
    /// driver's uevent callback.
    pub fn perform(self) -> BatchOutcome {
        self.perform_until(|| false)
    }

    /// Like [`Batch::perform`], but asks `stop` before each write and attempts none once it
    /// says `true` (e.g. the caller is shutting down); [`Pass::record`] queues those again.
    pub fn perform_until(self, stop: impl Fn() -> bool) -> BatchOutcome {
        let Batch {
            action,
            sysfs,
            devices,
            writes,
        } = self;
        let mut stopped = false;
        let writes = writes
            .into_iter()
            .map(|write| {
                stopped = stopped || stop();
                if stopped {
                    return (write, None);
                }
                let Some(dir) = devices.get(write.index) else {
                    // Not a device of the list (never the case): as one that is gone.
                    return (write, Some(Outcome::Gone(Errno::ENOENT)));
                };
                let started = Instant::now();
                let outcome = trigger::write(&dir, action, &write.uuid.to_string());
                let took = started.elapsed();
                if took >= SLOW_WRITE {
                    tracing::warn!(
                        devpath = %devpath(&sysfs, &dir).display(),
                        took_ms = took.as_millis() as u64,
                        "writing into uevent was slow (the driver's uevent callback)"
                    );
                }
                stopped = outcome == Outcome::ReadOnly;
                (write, Some(outcome))
            })
            .collect();
        BatchOutcome { writes }
    }
}

/// One replay in progress.
#[derive(Debug)]
pub struct Pass {
    action: Action,
    sysfs: PathBuf,
    /// The devices, shared with the batches out.
    devices: Arc<DeviceList>,
    /// Devices to be written before those from `next` on (re-triggered, or not attempted), by
    /// index into `devices`.
    requeued: VecDeque<usize>,
    /// The first device never handed out: those from it on are still to be written.
    next: usize,
    /// Written and unanswered: UUID → device.
    outstanding: HashMap<Tag, usize>,
    /// Handed out in the batch being written and not answered yet: UUID → device.
    in_flight: HashMap<Tag, usize>,
    /// A batch is out (between `next_batch` and `record`).
    writing: bool,
    /// Devices already re-triggered after a timeout (their one retry is used up).
    retried: HashSet<usize>,
    window: Option<usize>,
    started: Instant,
    report: PassReport,
}

impl Pass {
    /// A pass over the devices of `walk` (found under `sysfs`; a [`Listing`], or a
    /// [`Walk`](crate::walk::Walk), whose paths are then stored compactly), with at most
    /// `window` writes unanswered (`None`: no pacing).
    pub fn new(
        kind: PassKind,
        sysfs: &Path,
        walk: impl Into<Listing>,
        window: Option<usize>,
    ) -> Pass {
        let Listing { devices, errors } = walk.into();
        let report = PassReport {
            kind,
            devices: devices.len(),
            walk_errors: errors.len(),
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
            devices: Arc::new(devices),
            requeued: VecDeque::new(),
            next: 0,
            retried: HashSet::new(),
            outstanding: HashMap::new(),
            in_flight: HashMap::new(),
            writing: false,
            window: window.map(|w| w.max(1)),
            started: Instant::now(),
            report,
        }
    }

    /// Writes `action` instead of `add` (for `devmgr trigger --action`; a replay is `add`).
    pub fn with_action(mut self, action: Action) -> Pass {
        self.action = action;
        self
    }

    /// Writes queued devices while fewer than `window` are unanswered, in place (blocking).
    /// Returns how many were written. Does nothing while a batch from [`Pass::next_batch`] is
    /// out.
    pub fn pump(&mut self, uuids: &mut UuidSource) -> usize {
        let mut written = 0;
        while let Some(batch) = self.next_batch(uuids) {
            written += self.record(batch.perform());
        }
        written
    }

    /// The next writes, as many as the window has room for, each with a fresh UUID; `None` if
    /// there is nothing to write now or a batch is already out. Answers to them count from
    /// now on, even before [`Pass::record`] (the kernel sends the event during the write).
    pub fn next_batch(&mut self, uuids: &mut UuidSource) -> Option<Batch> {
        if self.writing {
            return None;
        }
        let room = self
            .window
            .map_or(usize::MAX, |w| {
                w.saturating_sub(self.outstanding.len() + self.in_flight.len())
            })
            .min(MAX_BATCH);
        let mut writes = Vec::with_capacity(room.min(self.queued()));
        while writes.len() < room {
            let Some(index) = self.requeued.pop_front().or_else(|| {
                (self.next < self.devices.len()).then(|| {
                    self.next += 1;
                    self.next - 1
                })
            }) else {
                break;
            };
            let uuid = uuids.next_tag();
            self.in_flight.insert(uuid, index);
            writes.push(Write { index, uuid });
        }
        if writes.is_empty() {
            return None;
        }
        self.writing = true;
        Some(Batch {
            action: self.action,
            sysfs: self.sysfs.clone(),
            devices: Arc::clone(&self.devices),
            writes,
        })
    }

    /// Takes back the outcome of the batch that is out. Returns how many writes succeeded.
    pub fn record(&mut self, outcome: BatchOutcome) -> usize {
        self.writing = false;
        let mut written = 0;
        let mut not_attempted = Vec::new();
        for (write, outcome) in outcome.writes {
            let unanswered = self.in_flight.remove(&write.uuid).is_some();
            match outcome {
                Some(Outcome::Written) => {
                    self.report.written += 1;
                    written += 1;
                    if unanswered {
                        self.outstanding.insert(write.uuid, write.index);
                    }
                }
                Some(Outcome::Gone(_)) => self.report.gone += 1,
                Some(Outcome::Failed(errno)) => {
                    let dir = self.devices.get(write.index).unwrap_or_default();
                    self.report.failed.push((devpath(&self.sysfs, &dir), errno));
                }
                Some(Outcome::ReadOnly) => {
                    let dir = self.devices.get(write.index).unwrap_or_default();
                    tracing::error!(
                        devpath = %devpath(&self.sysfs, &dir).display(),
                        "sysfs is read-only: no device can be triggered"
                    );
                    self.report.read_only = true;
                    self.requeued.clear();
                    self.next = self.devices.len();
                }
                None if !self.report.read_only => not_attempted.push(write.index),
                None => {}
            }
        }
        for index in not_attempted.into_iter().rev() {
            self.requeued.push_front(index);
        }
        if self.queued() == 0 {
            self.report.writing = self.started.elapsed();
        }
        written
    }

    /// Devices still to be written.
    fn queued(&self) -> usize {
        self.requeued.len() + self.devices.len().saturating_sub(self.next)
    }

    /// The batch that is out will never be given back (the task performing it died): its
    /// unanswered writes are taken as written, so that a timeout re-triggers them.
    pub fn batch_lost(&mut self) {
        self.writing = false;
        self.outstanding.extend(self.in_flight.drain());
    }

    /// Records that the event tagged `uuid` arrived; `true` if it was one of ours.
    pub fn answer(&mut self, uuid: &[u8]) -> bool {
        let Some(uuid) = Tag::parse(uuid) else {
            return false;
        };
        let found = self
            .outstanding
            .remove(&uuid)
            .or_else(|| self.in_flight.remove(&uuid))
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

    /// UUIDs handed out (written, or being written) that have not come back yet.
    pub fn unanswered(&self) -> usize {
        self.outstanding.len() + self.in_flight.len()
    }

    /// A batch from [`Pass::next_batch`] is out.
    pub fn is_writing(&self) -> bool {
        self.writing
    }

    /// Nothing left to write, no write under way, and every written UUID came back (or was
    /// given up on).
    pub fn is_done(&self) -> bool {
        self.queued() == 0
            && self.outstanding.is_empty()
            && self.in_flight.is_empty()
            && !self.writing
    }

    /// Answers stopped coming: the written devices still silent are queued again (fresh UUIDs
    /// when written) if this is their first timeout, and given up on (named in
    /// [`PassReport::unanswered`]) if they were re-triggered already. Devices not written yet,
    /// and writes still under way, are left alone: the pass goes on with them.
    pub fn on_timeout(&mut self) -> TimeoutAction {
        let mut silent: Vec<usize> = self.outstanding.drain().map(|(_, i)| i).collect();
        silent.sort_unstable();
        let (give_up, retry): (Vec<usize>, Vec<usize>) =
            silent.into_iter().partition(|i| self.retried.contains(i));
        if !give_up.is_empty() {
            let devpaths = self.devpaths(&give_up);
            tracing::warn!(
                devices = devpaths.len(),
                ?devpaths,
                "devices never answered, even when triggered once more; giving up on them"
            );
            self.report.unanswered.extend(devpaths);
        }
        self.retried.extend(retry.iter().copied());
        let requeued = self.queue_first(
            retry,
            "devices did not answer in time; triggering them once more",
        );
        if self.is_done() {
            TimeoutAction::GiveUp
        } else {
            TimeoutAction::Retrigger(requeued)
        }
    }

    /// Events were lost (the listener's `Resync`): the devices still unanswered may never be
    /// answered, so queue them again now (fresh UUIDs) instead of waiting for the settle
    /// timeout. This does not use up their one re-trigger after a timeout. An answer to the
    /// old write that still arrives is ignored; the device is then triggered twice, which is
    /// harmless. Writes still under way are left alone (a lost answer of theirs is caught by
    /// the timeout). Returns how many were queued.
    pub fn retrigger_outstanding(&mut self) -> usize {
        let mut missing: Vec<usize> = self.outstanding.drain().map(|(_, i)| i).collect();
        missing.sort_unstable();
        self.queue_first(
            missing,
            "events may have been lost; triggering the unanswered devices again",
        )
    }

    /// Queues the devices `indices` (sorted) first in line, in that order, and records them as
    /// re-triggered. Returns how many.
    fn queue_first(&mut self, indices: Vec<usize>, why: &str) -> usize {
        let devpaths = self.devpaths(&indices);
        if !devpaths.is_empty() {
            tracing::warn!(devices = devpaths.len(), ?devpaths, "{why}");
        }
        self.report.retriggered.extend(devpaths);
        let n = indices.len();
        for index in indices.into_iter().rev() {
            self.requeued.push_front(index);
        }
        n
    }

    /// The devpaths of the devices at `indices`.
    fn devpaths(&self, indices: &[usize]) -> Vec<PathBuf> {
        indices
            .iter()
            .filter_map(|&i| self.devices.get(i))
            .map(|dir| devpath(&self.sysfs, &dir))
            .collect()
    }

    /// Ends the pass and returns its report.
    pub fn finish(mut self) -> PassReport {
        self.report.settled = self.outstanding.is_empty()
            && self.in_flight.is_empty()
            && self.report.unanswered.is_empty();
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

    fn written_uuid_or_none(tmp: &Path, i: usize) -> Option<String> {
        let content = fs::read_to_string(tmp.join(format!("devices/dev{i:02}/uevent"))).ok()?;
        content.strip_prefix("add ").map(str::to_owned)
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
    fn a_batch_is_written_apart_from_the_pass_and_answers_count_before_it_is_given_back() {
        let tmp = tree(3);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), Some(2));
        let batch = pass.next_batch(&mut uuids).expect("a batch");
        assert_eq!(batch.len(), 2);
        assert!(pass.next_batch(&mut uuids).is_none(), "one batch at a time");
        assert_eq!(pass.pump(&mut uuids), 0, "nor a pump while a batch is out");
        let outcome = batch.perform();
        // The kernel answers during the write: before the outcome is given back.
        assert!(pass.answer(written_uuid(tmp.path(), 0).as_bytes()));
        assert!(!pass.is_done());
        assert_eq!(pass.record(outcome), 2);
        assert_eq!(pass.unanswered(), 1);
        assert!(pass.answer(written_uuid(tmp.path(), 1).as_bytes()));
        assert_eq!(pass.pump(&mut uuids), 1);
        assert!(pass.answer(written_uuid(tmp.path(), 2).as_bytes()));
        assert!(pass.is_done());
        let report = pass.finish();
        assert!(report.settled);
        assert_eq!((report.written, report.answered), (3, 3));
    }

    #[test]
    fn writes_not_made_are_queued_again_and_a_lost_batch_is_left_to_the_timeout() {
        let tmp = tree(3);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), None);
        let batch = pass.next_batch(&mut uuids).expect("a batch");
        let asked = std::cell::Cell::new(0);
        // Stop after the first write.
        let outcome = batch.perform_until(|| {
            asked.set(asked.get() + 1);
            asked.get() > 1
        });
        assert_eq!(pass.record(outcome), 1);
        assert!(written_uuid_or_none(tmp.path(), 1).is_none(), "not written");
        assert_eq!(pass.unanswered(), 1);

        let batch = pass.next_batch(&mut uuids).expect("the rest");
        assert_eq!(batch.len(), 2);
        drop(batch);
        pass.batch_lost();
        assert_eq!(pass.unanswered(), 3);
        assert_eq!(pass.on_timeout(), TimeoutAction::Retrigger(3));
        assert_eq!(pass.pump(&mut uuids), 3);
        for i in 0..3 {
            assert!(pass.answer(written_uuid(tmp.path(), i).as_bytes()));
        }
        assert!(pass.is_done());
        assert!(pass.finish().settled);
    }

    #[test]
    fn a_write_still_under_way_is_neither_retriggered_nor_given_up_on() {
        let tmp = tree(2);
        let mut uuids = uuids();
        let mut pass = pass_over(tmp.path(), Some(1));
        assert_eq!(pass.pump(&mut uuids), 1);
        assert!(pass.answer(written_uuid(tmp.path(), 0).as_bytes()));
        let batch = pass.next_batch(&mut uuids).expect("dev01");
        for _ in 0..3 {
            assert_eq!(pass.on_timeout(), TimeoutAction::Retrigger(0));
        }
        assert!(!pass.is_done(), "the pass waits for the write");
        pass.record(batch.perform());
        assert!(pass.answer(written_uuid(tmp.path(), 1).as_bytes()));
        let report = pass.finish();
        assert!(report.settled, "{report:?}");
        assert!(report.retriggered.is_empty());
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
