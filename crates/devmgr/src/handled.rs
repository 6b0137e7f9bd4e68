//! Whether the uevents the kernel had sent up to a sequence number have been handled: the wait
//! behind `devmgr settle` and [`Observer::settle`].
//!
//! # The rule
//!
//! [`Observer::settle`]`(N, timeout)` (with `N` the kernel's `/sys/kernel/uevent_seqnum` when
//! the caller asked, see [`kernel_seqnum`]) returns `Ok` once all of these held, in this order:
//!
//! 1. **Replay.** The replay of every device that the subsystem makes when it starts (and
//!    again after a restart of its group) has ended (coldplug's pass report is there). If it
//!    had not ended when the wait began, `N` is raised to the highest seqnum the listener has
//!    accepted once it ended, so that the replay's own events are waited for too.
//! 2. **Reached.** Every event up to `N` that the kernel delivered to the listener's socket has
//!    been read from it: either the listener has accepted an event with a seqnum ≥ `N`, or its
//!    socket is *drained*: `/proc/net/netlink` shows no byte queued on it (`Rmem` 0), and
//!    [`DRAIN_QUIET`] later it still shows none and the listener has read no datagram in
//!    between.
//! 3. **Looked up.** Every accepted `add` event with a seqnum ≤ `N` that was handed to the
//!    loader has been looked up: the loader actor handled its batch (resolved each `MODALIAS`
//!    and the driver rules, started the plans), or the batch was dropped (the loader restarted,
//!    or waits for a module index: nothing to do then).
//! 4. **Loaded.** Every load plan the loader actor had started when step 3 held has ended,
//!    modules loaded or failed (a dry run starts none). Plans of a loader actor that was
//!    replaced (a restart) are not waited for.
//!
//! Events the loader looks nothing up for (not `add` events, or without a `MODALIAS` and no
//! driver rule: `kmod_loader::load::looks_up`) are handled once the listener accepted them;
//! they never go to the loader. Events that never reach the listener do not hold the wait: the
//! seqnum counts events of every network namespace (a network device in a container), events
//! the kernel could not deliver (a receive-buffer overrun) and events sent before the listener
//! bound its socket; step 2 does not look for them. Events lost to an overrun, or dropped for
//! a loader that fell behind, are recovered by a replay of the devices (new events with new
//! seqnums), which a later settle waits for only if it had started when that settle was asked.
//!
//! The kernel takes an event's seqnum a moment before it sends it; an event whose seqnum was
//! taken but which had not been sent when `N` was read can be missed (as by udevadm). The
//! drain check relies on the listener's reader thread handing what it read to the subscribers
//! before it reads again: a reader thread that did not run at all for [`DRAIN_QUIET`] right
//! after reading its last datagram could make the check pass early.
//!
//! # Cost
//!
//! Nothing runs while nobody waits: the listener feeds a small ledger (the highest accepted
//! seqnum; per batch handed to the loader, its lowest seqnum until it was looked up), and a
//! wait looks at it when it changes. The drain check reads `/proc/net/netlink` and asks the
//! listener for its counters, only while a wait is in step 2.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use kmod_loader::load::LoaderMsg;
use kmod_loader::load::RunningPlan;
use listener::{Delivery, ListenerMsg};
use ractor::{ActorRef, call, call_t};
use tokio::sync::watch;

use crate::subsystem::Observer;

/// How long the listener's socket must stay empty, with nothing read from it, to count as
/// drained (rule step 2).
pub const DRAIN_QUIET: Duration = Duration::from_millis(20);

/// How long a question to an actor may take.
const ASK_MS: u64 = 2_000;

/// The most running plans a [`Pending`] lists by name.
const LISTED_PLANS: usize = 8;

/// What the listener accepted and what the loader has yet to look up (rule steps 2 and 3).
#[derive(Debug, Default)]
pub struct Ledger {
    /// The highest seqnum the listener accepted.
    seen: u64,
    /// Batches handed to the loader and not looked up yet, by batch id.
    batches: BTreeMap<u64, Batch>,
    /// The id of the next batch.
    next: u64,
    /// Replays asked for by the loader's subscription (it fell behind) and not yet passed on
    /// to coldplug ([`ReplayTicket`]).
    replays: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    /// Its lowest seqnum (0 when none of its events had one: waited for by every settle).
    lowest: u64,
    events: usize,
}

/// Events handed to the loader whose lookups are not done, up to a seqnum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unhandled {
    /// How many.
    pub events: usize,
    /// The lowest seqnum among them.
    pub lowest: Option<u64>,
}

impl Ledger {
    /// The listener accepted events up to `highest`; whether that raised the highest seen.
    pub fn accepted(&mut self, highest: u64) -> bool {
        let raised = highest > self.seen;
        self.seen = self.seen.max(highest);
        raised
    }

    /// The highest seqnum the listener accepted (0: none yet).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// A batch of `events` events, the lowest seqnum `lowest`, was handed to the loader;
    /// returns its id for [`Ledger::looked_up`].
    pub fn queued(&mut self, lowest: u64, events: usize) -> u64 {
        let id = self.next;
        self.next += 1;
        self.batches.insert(id, Batch { lowest, events });
        id
    }

    /// The loader is done with batch `id` (or dropped it); whether it was pending.
    pub fn looked_up(&mut self, id: u64) -> bool {
        self.batches.remove(&id).is_some()
    }

    /// Nothing handed to the loader waits for its lookups, and no replay it asked for waits
    /// to be passed on to coldplug.
    pub fn idle(&self) -> bool {
        self.batches.is_empty() && self.replays == 0
    }

    /// The events of batches with a seqnum ≤ `seqnum` that the loader has not looked up. A
    /// batch that straddles `seqnum` counts whole.
    pub fn unhandled_upto(&self, seqnum: u64) -> Unhandled {
        self.batches
            .values()
            .filter(|b| b.lowest <= seqnum)
            .fold(Unhandled::default(), |acc, b| Unhandled {
                events: acc.events + b.events,
                lowest: Some(acc.lowest.map_or(b.lowest, |l| l.min(b.lowest))),
            })
    }
}

/// The lowest seqnum of a batch of deliveries (0 when none has one).
fn lowest_seqnum(batch: &[Delivery]) -> u64 {
    batch
        .iter()
        .filter_map(|d| d.seqnum())
        .map(|s| s.get())
        .min()
        .unwrap_or(0)
}

/// A batch handed to the loader: counted in the ledger until this is dropped, i.e. once the
/// loader actor has handled the message it rides in, or the message was dropped unhandled.
pub(crate) struct LookupTicket {
    ledger: watch::Sender<Ledger>,
    id: u64,
}

impl LookupTicket {
    /// Enters `batch` in the ledger.
    pub(crate) fn new(ledger: &watch::Sender<Ledger>, batch: &[Delivery]) -> LookupTicket {
        let lowest = lowest_seqnum(batch);
        let mut id = 0;
        ledger.send_modify(|l| id = l.queued(lowest, batch.len()));
        LookupTicket {
            ledger: ledger.clone(),
            id,
        }
    }
}

impl Drop for LookupTicket {
    fn drop(&mut self) {
        let id = self.id;
        self.ledger.send_if_modified(|l| l.looked_up(id));
    }
}

/// A replay the loader's subscription asked for (the loader fell behind and its events were
/// dropped): counted in the ledger until this is dropped, i.e. once the request was passed on
/// to coldplug, or dropped with the loader's queue (its next incarnation replays anyway).
pub(crate) struct ReplayTicket {
    ledger: watch::Sender<Ledger>,
}

impl ReplayTicket {
    /// Enters the request in the ledger.
    pub(crate) fn new(ledger: &watch::Sender<Ledger>) -> ReplayTicket {
        ledger.send_modify(|l| l.replays += 1);
        ReplayTicket {
            ledger: ledger.clone(),
        }
    }
}

impl Drop for ReplayTicket {
    fn drop(&mut self) {
        self.ledger
            .send_modify(|l| l.replays = l.replays.saturating_sub(1));
    }
}

/// Notes the highest seqnum of an accepted batch (the listener's `settle` subscription, which
/// comes after the loader's: when it sees an event, the loader's ticket for it is in the
/// ledger already).
pub(crate) fn note_accepted(ledger: &watch::Sender<Ledger>, batch: &[Delivery]) {
    let highest = batch
        .iter()
        .filter_map(|d| d.seqnum())
        .map(|s| s.get())
        .max()
        .unwrap_or(0);
    ledger.send_if_modified(|l| l.accepted(highest));
}

/// Reads the kernel's uevent seqnum (`SYSFS/kernel/uevent_seqnum`): the seqnum of the last
/// event the kernel sent (or is about to send).
pub fn kernel_seqnum(sysfs: &Path) -> std::io::Result<u64> {
    let path = sysfs.join("kernel/uevent_seqnum");
    let text = std::fs::read_to_string(&path)?;
    text.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {:?} is not a number", path.display(), text.trim()),
        )
    })
}

/// Bytes queued on the netlink socket of `port` (`NETLINK_KOBJECT_UEVENT`), from the text of
/// `/proc/net/netlink`; `None` when no such socket is listed.
pub fn queued_bytes(proc_net_netlink: &str, port: u32) -> Option<u64> {
    proc_net_netlink.lines().skip(1).find_map(|line| {
        // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        let mut fields = line.split_whitespace().skip(1);
        let (eth, pid, _groups, rmem) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        (eth == "15" && pid.parse::<u32>().ok()? == port)
            .then(|| rmem.parse().ok())
            .flatten()
    })
}

/// What kept a settle from ending in time (`devmgr settle` prints it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// The seqnum waited for: the events up to it.
    pub seqnum: u64,
    /// The replay of the devices (at start, or after a restart) had not ended.
    pub replay_running: bool,
    /// Not yet known that the listener read every event up to `seqnum` (rule step 2): the
    /// highest seqnum it accepted, and why its socket did not count as drained.
    pub not_reached: Option<(u64, String)>,
    /// Events up to `seqnum` handed to the loader and not looked up yet.
    pub unhandled: Unhandled,
    /// The load plans running when the wait ended (those the wait was for started before
    /// step 3 held; later ones may be among them).
    pub plans: Vec<RunningPlan>,
    /// Step 4 was under way (waiting for the plans).
    pub waiting_for_plans: bool,
}

impl fmt::Display for Pending {
    /// One line; values that come from devices are escaped (`\xNN`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.replay_running {
            parts.push("the replay of the devices has not ended".to_owned());
        }
        if let Some((seen, why)) = &self.not_reached {
            parts.push(format!(
                "the listener has accepted events up to seqnum {seen} and {why}"
            ));
        }
        if let Some(lowest) = self.unhandled.lowest {
            parts.push(format!(
                "{} events wait for the loader's lookups, the lowest unhandled seqnum {lowest}",
                self.unhandled.events
            ));
        }
        if !self.plans.is_empty() {
            let listed: Vec<String> = self
                .plans
                .iter()
                .take(LISTED_PLANS)
                .map(|p| {
                    format!(
                        "{} loading {} for {:.1}s",
                        escape(&p.modalias),
                        escape(&p.modules.join(", ")),
                        p.running_for.as_secs_f64()
                    )
                })
                .collect();
            let more = self.plans.len().saturating_sub(LISTED_PLANS);
            parts.push(format!(
                "{} running: {}{}",
                match self.plans.len() {
                    1 => "1 load plan".to_owned(),
                    n => format!("{n} load plans"),
                },
                listed.join("; "),
                if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                }
            ));
        } else if self.waiting_for_plans {
            parts.push("the loader has not confirmed that its plans ended".to_owned());
        }
        if parts.is_empty() {
            parts.push("nothing left (it ended as the time ran out)".to_owned());
        }
        write!(
            f,
            "events up to seqnum {} not handled yet: {}",
            self.seqnum,
            parts.join("; ")
        )
    }
}

/// `text` with control characters, non-ASCII characters and the backslash written as
/// `\xNN` (bytes of their UTF-8 encoding): safe on one line and on a terminal.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_graphic() || c == ' ' {
            if c == '\\' {
                out.push_str("\\x5c");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out
}

/// Where a wait is (kept outside its future, so a timeout can say).
#[derive(Debug, Default)]
struct Progress {
    seqnum: u64,
    step: Step,
    not_drained: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Step {
    #[default]
    Replay,
    Reached,
    LookedUp,
    Loaded,
}

/// The subsystem is gone (its state's senders dropped): nothing will ever be handled; the
/// caller's timeout ends the wait.
async fn gone() {
    std::future::pending::<()>().await
}

/// Whether the listener's socket is drained (rule step 2), or why not.
enum Drain {
    Drained,
    Busy(String),
}

impl Observer {
    /// Waits until every uevent up to `seqnum` that reached the listener has been handled (the
    /// rule is in the [module docs](crate::handled)), at most `timeout`; `seqnum` is usually
    /// [`kernel_seqnum`] read when the caller was asked to settle. On timeout, says what is
    /// pending. Costs nothing while nobody waits.
    pub async fn settle(&self, seqnum: u64, timeout: Duration) -> Result<(), Pending> {
        let mut progress = Progress {
            seqnum,
            ..Progress::default()
        };
        if tokio::time::timeout(timeout, self.wait_handled(&mut progress))
            .await
            .is_ok()
        {
            return Ok(());
        }
        Err(self.pending(&progress).await)
    }

    async fn wait_handled(&self, progress: &mut Progress) {
        // 1. The replay.
        let mut settled = self.settled.clone();
        if settled.borrow_and_update().is_none() {
            if settled.wait_for(Option::is_some).await.is_err() {
                return gone().await;
            }
            progress.seqnum = progress.seqnum.max(self.ledger.borrow().seen());
        }
        // 2. Reached.
        progress.step = Step::Reached;
        let seqnum = progress.seqnum;
        let mut ledger = self.ledger.clone();
        loop {
            if ledger.borrow_and_update().seen() >= seqnum {
                break;
            }
            let check = self.drain_check();
            tokio::pin!(check);
            let reached = async { ledger.wait_for(|l| l.seen() >= seqnum).await.is_ok() };
            tokio::pin!(reached);
            tokio::select! {
                reached = &mut reached => match reached {
                    true => break,
                    false => return gone().await,
                },
                drain = &mut check => match drain {
                    Drain::Drained => break,
                    Drain::Busy(why) => progress.not_drained = Some(why),
                },
            }
        }
        progress.not_drained = None;
        // 3. Looked up.
        progress.step = Step::LookedUp;
        if ledger
            .wait_for(|l| l.unhandled_upto(seqnum).events == 0)
            .await
            .is_err()
        {
            return gone().await;
        }
        // 4. Loaded: the plans started so far (those of the events above among them).
        progress.step = Step::Loaded;
        if let Some(loader) = ActorRef::<LoaderMsg>::where_is(self.loader.clone()) {
            // An error means the actor stopped: its plans are no one's to wait for.
            let _ = call!(loader, LoaderMsg::WaitStarted);
        }
    }

    /// Rule step 2's drain check: takes [`DRAIN_QUIET`] (or fails sooner when the socket is
    /// busy).
    async fn drain_check(&self) -> Drain {
        let Some(listener) = ActorRef::<ListenerMsg>::where_is(self.listener.clone()) else {
            tokio::time::sleep(DRAIN_QUIET).await;
            return Drain::Busy("the listener is not running".into());
        };
        let ask = || async {
            let stats = call_t!(listener, ListenerMsg::Stats, ASK_MS)
                .map_err(|err| format!("the listener did not answer: {err}"))?;
            let table = std::fs::read_to_string("/proc/net/netlink")
                .map_err(|err| format!("/proc/net/netlink cannot be read: {err}"))?;
            let queued = queued_bytes(&table, stats.port).ok_or_else(|| {
                format!(
                    "its socket (port {}) is not in /proc/net/netlink",
                    stats.port
                )
            })?;
            Ok::<_, String>((stats.port, stats.counts.received, queued))
        };
        let first = ask().await;
        if let Ok((_, _, queued)) = &first
            && *queued > 0
        {
            // Busy: the next check comes soon anyway.
            tokio::time::sleep(DRAIN_QUIET).await;
            return Drain::Busy(format!("its socket has {queued} bytes queued"));
        }
        tokio::time::sleep(DRAIN_QUIET).await;
        let (port, received, _) = match first {
            Ok(first) => first,
            Err(why) => return Drain::Busy(why),
        };
        match ask().await {
            Ok((p, r, 0)) if p == port && r == received => Drain::Drained,
            Ok((p, _, _)) if p != port => Drain::Busy("the listener was restarted".into()),
            Ok((_, _, 0)) => Drain::Busy("its socket is being read".into()),
            Ok((_, _, queued)) => Drain::Busy(format!("its socket has {queued} bytes queued")),
            Err(why) => Drain::Busy(why),
        }
    }

    /// What is pending for a wait that got as far as `progress`.
    async fn pending(&self, progress: &Progress) -> Pending {
        let seqnum = progress.seqnum;
        let (seen, unhandled) = {
            let ledger = self.ledger.borrow();
            (ledger.seen(), ledger.unhandled_upto(seqnum))
        };
        let plans = match ActorRef::<LoaderMsg>::where_is(self.loader.clone()) {
            Some(loader) => call_t!(loader, LoaderMsg::RunningPlans, ASK_MS).unwrap_or_default(),
            None => Vec::new(),
        };
        Pending {
            seqnum,
            replay_running: progress.step == Step::Replay,
            not_reached: (progress.step == Step::Reached).then(|| {
                (
                    seen,
                    progress
                        .not_drained
                        .clone()
                        .unwrap_or_else(|| "its socket was not checked yet".into()),
                )
            }),
            unhandled,
            plans,
            waiting_for_plans: progress.step == Step::Loaded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ledger_keeps_the_highest_accepted_seqnum() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.seen(), 0);
        assert!(ledger.accepted(7));
        assert!(!ledger.accepted(5), "an older event does not lower it");
        assert!(!ledger.accepted(7));
        assert_eq!(ledger.seen(), 7);
    }

    #[test]
    fn the_ledger_is_idle_only_without_batches_and_replays_to_pass_on() {
        let (ledger, watched) = watch::channel(Ledger::default());
        assert!(watched.borrow().idle());
        let replay = ReplayTicket::new(&ledger);
        let second = ReplayTicket::new(&ledger);
        assert!(!watched.borrow().idle(), "a replay waits to be asked for");
        drop(replay);
        assert!(!watched.borrow().idle(), "one more still waits");
        drop(second);
        assert!(watched.borrow().idle());
        let mut id = 0;
        ledger.send_modify(|l| id = l.queued(5, 1));
        assert!(!watched.borrow().idle(), "a batch waits for its lookups");
        ledger.send_modify(|l| {
            l.looked_up(id);
        });
        assert!(watched.borrow().idle());
    }

    #[test]
    fn batches_are_pending_until_looked_up_and_only_up_to_the_seqnum_asked() {
        let mut ledger = Ledger::default();
        let a = ledger.queued(10, 3); // 10..=12
        let b = ledger.queued(13, 2); // 13, 14
        let c = ledger.queued(20, 1);
        assert_eq!(
            ledger.unhandled_upto(9),
            Unhandled::default(),
            "nothing before 10"
        );
        assert_eq!(
            ledger.unhandled_upto(11),
            Unhandled {
                events: 3,
                lowest: Some(10)
            },
            "a batch that straddles the seqnum counts whole"
        );
        assert_eq!(
            ledger.unhandled_upto(u64::MAX),
            Unhandled {
                events: 6,
                lowest: Some(10)
            }
        );
        // Looked up out of order (a dropped message drops its ticket whenever).
        assert!(ledger.looked_up(b));
        assert!(!ledger.looked_up(b), "only once");
        assert_eq!(ledger.unhandled_upto(14).events, 3);
        assert!(ledger.looked_up(a));
        assert_eq!(ledger.unhandled_upto(19), Unhandled::default());
        assert_eq!(ledger.unhandled_upto(20).lowest, Some(20));
        assert!(ledger.looked_up(c));
        assert_eq!(ledger.unhandled_upto(u64::MAX), Unhandled::default());
    }

    #[test]
    fn a_batch_without_seqnums_is_waited_for_by_every_settle() {
        let mut ledger = Ledger::default();
        let id = ledger.queued(0, 1);
        assert_eq!(ledger.unhandled_upto(0).events, 1);
        assert!(ledger.looked_up(id));
    }

    /// The deliveries a subscriber gets for events with `seqnums` (through a listener pipeline
    /// in memory, as the reader thread drives it).
    fn deliveries(seqnums: &[u64]) -> Vec<Delivery> {
        use listener::trust::{Envelope, UidPolicy};
        use std::sync::{Arc, Mutex};
        let pipeline = listener::Pipeline::new(UidPolicy::ROOT_ONLY);
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let sink = Arc::clone(&got);
        pipeline.subscribe(listener::Subscription::to_fn(move |n| {
            if let listener::Notification::Uevents(batch) = n {
                sink.lock().unwrap().extend(batch);
            }
            true
        }));
        let events: Vec<_> = seqnums
            .iter()
            .filter_map(|n| {
                let event = uevent::Uevent::builder(uevent::Action::Add, "/devices/x")
                    .subsystem("platform")
                    .seqnum(*n)
                    .build()
                    .unwrap();
                pipeline.accept(&event.encode().unwrap(), &Envelope::KERNEL)
            })
            .collect();
        assert_eq!(events.len(), seqnums.len());
        pipeline.deliver(&events);
        std::mem::take(&mut *got.lock().unwrap())
    }

    #[test]
    fn a_delivered_batch_enters_the_ledger_by_its_lowest_and_highest_seqnums() {
        let (ledger, watching) = watch::channel(Ledger::default());
        let batch = deliveries(&[41, 40, 43]);
        let ticket = LookupTicket::new(&ledger, &batch);
        assert_eq!(
            watching.borrow().unhandled_upto(40),
            Unhandled {
                events: 3,
                lowest: Some(40)
            }
        );
        assert_eq!(
            watching.borrow().seen(),
            0,
            "seen only through note_accepted"
        );
        note_accepted(&ledger, &batch);
        assert_eq!(watching.borrow().seen(), 43);
        drop(ticket);
        assert_eq!(watching.borrow().unhandled_upto(u64::MAX).events, 0);
        assert_eq!(lowest_seqnum(&[]), 0);
    }

    #[test]
    fn tickets_enter_a_batch_and_dropping_them_marks_it_looked_up() {
        let (ledger, mut watching) = watch::channel(Ledger::default());
        let ticket = |lowest: u64, events: usize| {
            let mut id = 0;
            ledger.send_modify(|l| id = l.queued(lowest, events));
            LookupTicket {
                ledger: ledger.clone(),
                id,
            }
        };
        let first = ticket(5, 2);
        let second = ticket(7, 1);
        watching.mark_unchanged();
        assert_eq!(watching.borrow().unhandled_upto(7).events, 3);
        drop(first);
        assert!(watching.has_changed().unwrap(), "a waiter is woken");
        assert_eq!(
            watching.borrow_and_update().unhandled_upto(7).lowest,
            Some(7)
        );
        drop(second);
        assert_eq!(watching.borrow().unhandled_upto(u64::MAX).events, 0);
    }

    #[test]
    fn the_kernel_seqnum_is_read_from_sysfs() {
        let sysfs = tempfile::tempdir().unwrap();
        std::fs::create_dir(sysfs.path().join("kernel")).unwrap();
        std::fs::write(sysfs.path().join("kernel/uevent_seqnum"), "288447\n").unwrap();
        assert_eq!(kernel_seqnum(sysfs.path()).unwrap(), 288447);
        std::fs::write(sysfs.path().join("kernel/uevent_seqnum"), "x\n").unwrap();
        assert!(kernel_seqnum(sysfs.path()).is_err());
        assert!(kernel_seqnum(Path::new("/nonexistent")).is_err());
    }

    #[test]
    fn the_queue_of_a_uevent_socket_is_read_from_proc_net_netlink() {
        let table = "\
sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
0000000000000000 0   4129       00000550 0        0        0     2        0        20771
0000000000000000 15  4129       00000001 4352     0        0     2        0        31337
0000000000000000 15  -4129      00000001 0        0        0     2        0        31338
0000000000000000 15  0          00000000 0        0        0     2        0        11
";
        assert_eq!(
            queued_bytes(table, 4129),
            Some(4352),
            "the uevent socket, not the route socket"
        );
        assert_eq!(queued_bytes(table, 0), Some(0));
        assert_eq!(queued_bytes(table, 77), None);
        assert_eq!(queued_bytes("", 4129), None);
        assert_eq!(
            queued_bytes("header\n0 15 4129\n", 4129),
            None,
            "short line"
        );
    }

    #[test]
    fn pending_says_what_is_left_on_one_escaped_line() {
        let pending = Pending {
            seqnum: 1240,
            replay_running: false,
            not_reached: None,
            unhandled: Unhandled {
                events: 2,
                lowest: Some(1234),
            },
            plans: vec![RunningPlan {
                modalias: "platform:evil\n\x1b[2J".into(),
                modules: vec!["a".into(), "b".into()],
                running_for: Duration::from_millis(1500),
            }],
            waiting_for_plans: false,
        };
        let line = pending.to_string();
        assert_eq!(
            line,
            "events up to seqnum 1240 not handled yet: 2 events wait for the loader's lookups, \
             the lowest unhandled seqnum 1234; 1 load plan running: \
             platform:evil\\x0a\\x1b[2J loading a, b for 1.5s"
        );
        let waiting = Pending {
            seqnum: 9,
            replay_running: true,
            not_reached: Some((3, "its socket has 40 bytes queued".into())),
            ..Pending::default()
        };
        assert_eq!(
            waiting.to_string(),
            "events up to seqnum 9 not handled yet: the replay of the devices has not ended; \
             the listener has accepted events up to seqnum 3 and its socket has 40 bytes queued"
        );
        let many = Pending {
            seqnum: 1,
            plans: vec![
                RunningPlan {
                    modalias: "x".into(),
                    modules: vec!["m".into()],
                    running_for: Duration::ZERO,
                };
                10
            ],
            ..Pending::default()
        };
        assert!(many.to_string().ends_with("; and 2 more"), "{many}");
        assert!(!Pending::default().to_string().contains('\n'));
    }
}
