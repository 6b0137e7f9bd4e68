//! The coldplug actor: replays every device once the listener is up, knows when the replay has
//! settled, and replays the devices module loading depends on again whenever events may have
//! been lost.
//!
//! The walk and the writes block, so they run on tokio's blocking threads: the walk is awaited
//! (it only reads directories and links), the writes go out in batches whose outcome comes back
//! as a message, so the actor keeps taking answers, resyncs and requests while a write is slow.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use listener::{Filter, ListenerMsg, Notification, Subscription, SubscriptionId};
use ractor::concurrency::JoinHandle;
use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort, call};
use uevent::Action;

use crate::pass::{BatchOutcome, Pass, PassKind, PassReport, TimeoutAction};
use crate::uuid::UuidSource;
use crate::walk::{self, DeviceMatch, Select};

/// How writes are paced against the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// A window derived from the listener's effective receive buffer: one write in flight per
    /// 4 KiB (about five times what a uevent costs the socket), between 4 and 1024.
    Auto,
    /// At most this many writes unanswered.
    Window(usize),
    /// No pacing: write everything at once (for comparison; can overrun the listener).
    Off,
}

/// Coldplug settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColdplugConfig {
    /// The sysfs mount (default `/sys`); devices are found under `<sysfs>/devices`.
    pub sysfs: PathBuf,
    /// How long without progress (an answer, or a batch of writes returning) before the silent
    /// devices are re-triggered, or given up on if they were re-triggered already (default
    /// 10 s).
    pub settle_timeout: Duration,
    /// Write pacing (default [`Pacing::Auto`]).
    pub pacing: Pacing,
    /// Where the random part of our UUIDs comes from (default
    /// `/proc/sys/kernel/random/uuid`).
    pub random_uuid: PathBuf,
    /// The actor's name in ractor's registry, if it should have one (default none).
    pub actor_name: Option<String>,
    /// More kobjects to replay in every pass, relative to `sysfs` (e.g. `module/parport_pc`,
    /// whose `add` event a driver rule acts on); those that do not exist are skipped.
    pub extra: Vec<PathBuf>,
    /// The devices a resync replays besides those with a `modalias` file: those whose `add`
    /// event rules outside the `MODALIAS` lookup act on (e.g. subsystems `tifm`, `memstick`,
    /// `i2o` and names `mtd*ro` for udev's driver rules). Default: none.
    pub resync_also: DeviceMatch,
}

impl Default for ColdplugConfig {
    fn default() -> Self {
        ColdplugConfig {
            sysfs: "/sys".into(),
            settle_timeout: Duration::from_secs(10),
            pacing: Pacing::Auto,
            random_uuid: "/proc/sys/kernel/random/uuid".into(),
            actor_name: None,
            extra: Vec::new(),
            resync_also: DeviceMatch::default(),
        }
    }
}

/// Called once, when the first (coldplug) pass has settled or given up; e.g. to signal Done to
/// a supervisor.
pub type OnSettled = Box<dyn FnOnce(&PassReport) + Send + Sync>;

/// What the coldplug actor is started with.
pub struct ColdplugArgs {
    /// Settings.
    pub config: ColdplugConfig,
    /// The listener to subscribe to (it must be running: its socket is bound before any
    /// write).
    pub listener: ActorRef<ListenerMsg>,
    /// Called when the coldplug pass ends.
    pub on_settled: Option<OnSettled>,
}

impl std::fmt::Debug for ColdplugArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdplugArgs")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Messages the coldplug actor handles.
#[derive(Debug)]
pub enum ColdplugMsg {
    /// From the listener: events (answers are picked out by `SYNTH_UUID`) and resyncs.
    Listener(Notification),
    /// Replay the devices module loading depends on (with a `modalias`, or matched by
    /// [`ColdplugConfig::resync_also`]), after the current pass if one runs. Any number of
    /// requests made while a pass runs lead to one more pass.
    Resync,
    /// Reply with the coldplug pass's report once it has ended.
    WaitSettled(RpcReplyPort<PassReport>),
    /// Reply with the report of the last pass that ended, if any.
    LastReport(RpcReplyPort<Option<PassReport>>),
    /// Reply whether a pass runs or one is queued (a resync asked for while one ran).
    /// Messages are handled in order: a `Resync` sent before this is counted.
    Busy(RpcReplyPort<bool>),
    /// Timer: check for a settle timeout of pass `.0`.
    Tick(u64),
    /// Sent by the actor to itself: the outcome of a batch of writes of pass `.0`, performed
    /// on a blocking thread (`None` if that task died without one).
    Wrote(u64, Option<BatchOutcome>),
}

impl From<Notification> for ColdplugMsg {
    fn from(n: Notification) -> Self {
        ColdplugMsg::Listener(n)
    }
}

/// The coldplug actor.
#[derive(Debug, Default)]
pub struct Coldplug;

/// Its state.
pub struct ColdplugState {
    config: ColdplugConfig,
    listener: ActorRef<ListenerMsg>,
    subscription: SubscriptionId,
    uuids: UuidSource,
    window: Option<usize>,
    pass: Option<Running>,
    passes: u64,
    resync_pending: bool,
    coldplug_report: Option<PassReport>,
    last_report: Option<PassReport>,
    waiters: Vec<RpcReplyPort<PassReport>>,
    on_settled: Option<OnSettled>,
}

struct Running {
    id: u64,
    pass: Pass,
    last_progress: Instant,
    timer: Option<JoinHandle<Result<(), MessagingErr<ColdplugMsg>>>>,
}

impl std::fmt::Debug for ColdplugState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdplugState")
            .field("config", &self.config)
            .field("window", &self.window)
            .field("passes", &self.passes)
            .finish_non_exhaustive()
    }
}

/// Events the coldplug actor may have in flight from the listener (its own answers are at
/// most a pacing window of 1,024; past this the listener sends a `Resync` and the actor
/// replays, which keeps memory bounded under an event storm).
const SUBSCRIPTION_CAPACITY: usize = 4096;

impl Actor for Coldplug {
    type Msg = ColdplugMsg;
    type State = ColdplugState;
    type Arguments = ColdplugArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ColdplugMsg>,
        args: ColdplugArgs,
    ) -> Result<ColdplugState, ActorProcessingErr> {
        let ColdplugArgs {
            config,
            listener,
            on_settled,
        } = args;
        let subscription = Subscription::to_actor(myself)
            .filter(Filter::actions([Action::Add]))
            .capacity(SUBSCRIPTION_CAPACITY)
            .named("coldplug");
        let subscription = call!(listener, ListenerMsg::Subscribe, subscription)?;
        // Reading the UUID file is blocking I/O too (brief, but its path is configurable).
        let random_uuid = config.random_uuid.clone();
        let uuids = tokio::task::spawn_blocking(move || UuidSource::new(&random_uuid)).await?;
        let window = match config.pacing {
            Pacing::Off => None,
            Pacing::Window(n) => Some(n.max(1)),
            Pacing::Auto => {
                let stats = call!(listener, ListenerMsg::Stats)?;
                Some((stats.receive_buffer / 4096).clamp(4, 1024))
            }
        };
        Ok(ColdplugState {
            uuids,
            config,
            listener,
            subscription,
            window,
            pass: None,
            passes: 0,
            resync_pending: false,
            coldplug_report: None,
            last_report: None,
            waiters: Vec::new(),
            on_settled,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<ColdplugMsg>,
        state: &mut ColdplugState,
    ) -> Result<(), ActorProcessingErr> {
        start_pass(&myself, state, PassKind::Coldplug).await?;
        end_passes_that_are_done(&myself, state).await
    }

    async fn handle(
        &self,
        myself: ActorRef<ColdplugMsg>,
        msg: ColdplugMsg,
        state: &mut ColdplugState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ColdplugMsg::Listener(Notification::Uevents(batch)) => {
                let Some(running) = state.pass.as_mut() else {
                    return Ok(());
                };
                let mut progress = false;
                for event in &batch {
                    if let Some(uuid) = event.synth_uuid() {
                        progress |= running.pass.answer(uuid);
                    }
                }
                drop(batch);
                if progress {
                    running.last_progress = Instant::now();
                    write_next_batch(&myself, state);
                    end_passes_that_are_done(&myself, state).await?;
                }
            }
            ColdplugMsg::Listener(Notification::Resync(reason)) => {
                tracing::info!(
                    ?reason,
                    "events may have been lost; replaying the devices module loading depends on"
                );
                // Answers of the running pass may be among the lost: write those devices again
                // now rather than after the settle timeout.
                if let Some(running) = state.pass.as_mut()
                    && running.pass.retrigger_outstanding() > 0
                {
                    running.last_progress = Instant::now();
                    write_next_batch(&myself, state);
                }
                request_resync(&myself, state).await?;
            }
            ColdplugMsg::Resync => request_resync(&myself, state).await?,
            ColdplugMsg::Tick(id) => {
                on_tick(&myself, state, id);
                end_passes_that_are_done(&myself, state).await?;
            }
            ColdplugMsg::Wrote(id, outcome) => {
                let Some(running) = state.pass.as_mut().filter(|r| r.id == id) else {
                    return Ok(());
                };
                match outcome {
                    Some(outcome) => {
                        running.pass.record(outcome);
                    }
                    None => running.pass.batch_lost(),
                }
                // A write that returned is progress: the devices it wrote get the whole settle
                // timeout to answer.
                running.last_progress = Instant::now();
                write_next_batch(&myself, state);
                end_passes_that_are_done(&myself, state).await?;
            }
            ColdplugMsg::WaitSettled(reply) => match &state.coldplug_report {
                Some(report) => {
                    let _ = reply.send(report.clone());
                }
                None => state.waiters.push(reply),
            },
            ColdplugMsg::LastReport(reply) => {
                let _ = reply.send(state.last_report.clone());
            }
            ColdplugMsg::Busy(reply) => {
                let _ = reply.send(state.pass.is_some() || state.resync_pending);
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ColdplugMsg>,
        state: &mut ColdplugState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state
            .listener
            .send_message(ListenerMsg::Unsubscribe(state.subscription));
        Ok(())
    }
}

/// Starts a resync pass now if none runs, or after the running one (once, however often it
/// is asked for meanwhile).
async fn request_resync(
    myself: &ActorRef<ColdplugMsg>,
    state: &mut ColdplugState,
) -> Result<(), ActorProcessingErr> {
    if state.pass.is_some() {
        if !state.resync_pending {
            tracing::debug!("a resync is queued after the running pass");
        }
        state.resync_pending = true;
        Ok(())
    } else {
        start_pass(myself, state, PassKind::Resync).await?;
        end_passes_that_are_done(myself, state).await
    }
}

/// Walks sysfs (on a blocking thread) and starts a pass over what it found. Messages wait in
/// the mailbox meanwhile, so no other pass can start.
async fn start_pass(
    myself: &ActorRef<ColdplugMsg>,
    state: &mut ColdplugState,
    kind: PassKind,
) -> Result<(), ActorProcessingErr> {
    let sysfs = state.config.sysfs.clone();
    let extra = state.config.extra.clone();
    let also = state.config.resync_also.clone();
    let walk = tokio::task::spawn_blocking(move || {
        let mut walk = match kind {
            PassKind::Coldplug => walk::list(&sysfs, Select::All),
            PassKind::Resync => walk::resync_list(&sysfs, &also),
        };
        walk.add_extra(&sysfs, &extra);
        walk
    })
    .await?;
    for (path, err) in &walk.errors {
        tracing::warn!(path = %path.display(), error = %err, "part of sysfs could not be walked");
    }
    state.passes += 1;
    let pass = Pass::new(kind, &state.config.sysfs, walk, state.window);
    tracing::info!(?kind, devices = pass.devices(), window = ?state.window, "replaying devices");
    state.pass = Some(Running {
        id: state.passes,
        pass,
        last_progress: Instant::now(),
        timer: None,
    });
    write_next_batch(myself, state);
    schedule_tick(myself, state, state.config.settle_timeout);
    Ok(())
}

/// Hands the running pass's next batch of writes, if any, to a blocking thread; its outcome
/// comes back as [`ColdplugMsg::Wrote`]. One batch at a time: a pass cannot end while one of
/// its writes has not returned.
fn write_next_batch(myself: &ActorRef<ColdplugMsg>, state: &mut ColdplugState) {
    let Some(running) = state.pass.as_mut() else {
        return;
    };
    let Some(batch) = running.pass.next_batch(&mut state.uuids) else {
        return;
    };
    let id = running.id;
    let actor = myself.clone();
    // Once the actor stops, the writes not yet made are not made.
    let writer = tokio::task::spawn_blocking(move || {
        batch.perform_until(|| !ractor::ACTIVE_STATES.contains(&actor.get_status()))
    });
    let actor = myself.clone();
    tokio::spawn(async move {
        let outcome = writer
            .await
            .inspect_err(|err| tracing::error!(error = %err, "a batch of uevent writes failed"))
            .ok();
        // The actor may be gone: nothing to tell then.
        let _ = actor.send_message(ColdplugMsg::Wrote(id, outcome));
    });
}

fn schedule_tick(myself: &ActorRef<ColdplugMsg>, state: &mut ColdplugState, after: Duration) {
    if let Some(running) = state.pass.as_mut() {
        let id = running.id;
        if let Some(old) = running.timer.take() {
            old.abort();
        }
        running.timer = Some(myself.send_after(after, move || ColdplugMsg::Tick(id)));
    }
}

fn on_tick(myself: &ActorRef<ColdplugMsg>, state: &mut ColdplugState, id: u64) {
    let timeout = state.config.settle_timeout;
    let Some(running) = state.pass.as_mut().filter(|r| r.id == id) else {
        return;
    };
    let idle = running.last_progress.elapsed();
    if idle < timeout {
        schedule_tick(myself, state, timeout - idle);
        return;
    }
    let timeout_ms = timeout.as_millis() as u64;
    match running.pass.on_timeout() {
        TimeoutAction::Retrigger(devices) => {
            if devices > 0 {
                tracing::warn!(devices, timeout_ms, "no answer in time; re-triggering");
            }
            if running.pass.is_writing() {
                tracing::warn!(
                    timeout_ms,
                    "a write into a uevent file has not returned in time (a driver's uevent \
                     callback is slow or stuck); the pass waits for it"
                );
            }
            running.last_progress = Instant::now();
            write_next_batch(myself, state);
            schedule_tick(myself, state, timeout);
        }
        TimeoutAction::GiveUp => {}
    }
}

/// Ends the running pass if it is done, then starts the resync asked for meanwhile, if any;
/// again while passes end at once (one over no devices does).
async fn end_passes_that_are_done(
    myself: &ActorRef<ColdplugMsg>,
    state: &mut ColdplugState,
) -> Result<(), ActorProcessingErr> {
    while end_pass_if_done(state) && std::mem::take(&mut state.resync_pending) {
        start_pass(myself, state, PassKind::Resync).await?;
    }
    Ok(())
}

/// Ends the running pass if it is done; `true` if it did.
fn end_pass_if_done(state: &mut ColdplugState) -> bool {
    if !state.pass.as_ref().is_some_and(|r| r.pass.is_done()) {
        return false;
    }
    let Some(mut running) = state.pass.take() else {
        return false;
    };
    if let Some(timer) = running.timer.take() {
        timer.abort();
    }
    let report = running.pass.finish();
    tracing::info!(
        kind = ?report.kind,
        devices = report.devices,
        written = report.written,
        answered = report.answered,
        gone = report.gone,
        failed = report.failed.len(),
        unanswered = report.unanswered.len(),
        settled = report.settled,
        elapsed_ms = report.elapsed.as_millis() as u64,
        "replay ended"
    );
    if report.kind == PassKind::Coldplug && state.coldplug_report.is_none() {
        for waiter in state.waiters.drain(..) {
            let _ = waiter.send(report.clone());
        }
        if let Some(on_settled) = state.on_settled.take() {
            on_settled(&report);
        }
        state.coldplug_report = Some(report.clone());
    }
    state.last_report = Some(report);
    true
}
