//! State shared by the processor, the contexts and the supervisor handle.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use ractor::ActorRef;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::logging::{LogRecorder, Logger, SUPERVISOR_DN};
use crate::metrics::Metrics;
use crate::policy::Entry;
use crate::processor::ProcessorMsg;
use crate::runnable::{PanicPayload, panic_message};
use crate::state::NodeState;
use crate::tree::{NodeId, Tree};
use crate::watch::{PollWatch, WatchSlot};

pub(crate) struct Shared {
    tree: Mutex<Tree>,
    pub(crate) processor: OnceLock<ActorRef<ProcessorMsg>>,
    pub(crate) metrics: Vec<Arc<dyn Metrics>>,
    pub(crate) recorder: Option<LogRecorder>,
    pub(crate) propagate_panic: bool,
    pub(crate) propagated: Mutex<Option<PanicPayload>>,
    /// Woken when a panic is stored in `propagated`.
    pub(crate) propagated_notify: Notify,
    /// The runtime that runs the runnables (the one `Supervisor::new` was called on); the
    /// processor runs on a thread of its own.
    pub(crate) runtime: Handle,
    /// Times the polls of runnables, to report those that block a worker thread.
    pub(crate) polls: Arc<PollWatch>,
    /// Runnables handed to the runtime whose first poll has not started yet: the tree is not
    /// settled while there are any.
    starting: AtomicUsize,
    /// When the last first poll started, in nanoseconds since `base` (settle activity).
    last_start: AtomicU64,
    base: Instant,
    /// The task that tells the processor when the runnables' runtime shuts down.
    pub(crate) sentinel: OnceLock<AbortHandle>,
    /// Every DN the restart policy names, checked against the tree when it has settled.
    pub(crate) policy_entries: Vec<Entry>,
}

impl Shared {
    pub(crate) fn new(
        tree: Tree,
        metrics: Vec<Arc<dyn Metrics>>,
        recorder: Option<LogRecorder>,
        propagate_panic: bool,
        runtime: Handle,
        blocked_poll_warning: Option<Duration>,
        policy_entries: Vec<Entry>,
    ) -> Self {
        let polls = Arc::new(PollWatch::new(
            blocked_poll_warning,
            Logger::new(SUPERVISOR_DN, recorder.clone()),
        ));
        Self {
            tree: Mutex::new(tree),
            processor: OnceLock::new(),
            metrics,
            recorder,
            propagate_panic,
            propagated: Mutex::new(None),
            propagated_notify: Notify::new(),
            runtime,
            polls,
            starting: AtomicUsize::new(0),
            last_start: AtomicU64::new(0),
            base: Instant::now(),
            sentinel: OnceLock::new(),
            policy_entries,
        }
    }

    /// A slot timing the polls of the future labelled `label` (see [`crate::watch`]).
    pub(crate) fn watch_slot(&self, label: String) -> Option<WatchSlot> {
        self.polls.slot(label)
    }

    /// Whether runnables were handed to the runtime but not polled yet, and when the last first
    /// poll started.
    pub(crate) fn start_activity(&self) -> (bool, Option<Instant>) {
        let starting = self.starting.load(Ordering::SeqCst) > 0;
        let last = self.last_start.load(Ordering::SeqCst);
        let last = (last > 0).then(|| self.base + Duration::from_nanos(last));
        (starting, last)
    }

    /// Locks the tree. Nothing panics while holding it, but recover from poisoning anyway.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tree> {
        match self.tree.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sends to every metrics sink. Called with the tree lock held. A panicking sink is
    /// caught and logged: it must not take the processor (or a runnable's `signal`) down with it.
    pub(crate) fn notify(&self, dn: &str, state: NodeState) {
        for m in &self.metrics {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| m.notify_node_state(dn, state)))
            {
                self.supervisor_log().error(format!(
                    "metrics sink panicked on {dn} = {state}: {}",
                    panic_message(&payload)
                ));
            }
        }
    }

    pub(crate) fn logger(&self, dn: &str) -> Logger {
        Logger::new(dn, self.recorder.clone())
    }

    pub(crate) fn supervisor_log(&self) -> Logger {
        self.logger(SUPERVISOR_DN)
    }

    /// Sends to the processor; false when it is gone (stopped after liquidation, or stopped
    /// unexpectedly).
    pub(crate) fn send(&self, msg: ProcessorMsg) -> bool {
        self.processor
            .get()
            .is_some_and(|p| p.send_message(msg).is_ok())
    }

    /// Propagated panic: keeps the payload for the owner and shuts the tree down.
    pub(crate) fn propagate(&self, payload: PanicPayload) {
        self.store_panic(payload);
        self.send(ProcessorMsg::Shutdown);
    }

    pub(crate) fn store_panic(&self, payload: PanicPayload) {
        let mut slot = match self.propagated.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if slot.is_none() {
            *slot = Some(payload);
        }
        drop(slot);
        self.propagated_notify.notify_waiters();
    }

    pub(crate) fn take_panic(&self) -> Option<PanicPayload> {
        match self.propagated.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }

    /// Called when a runnable's task ended but the processor could not be told (it is gone):
    /// marks the incarnation Dead so that nothing waits for it forever.
    pub(crate) fn exited_without_processor(&self, id: NodeId, incarnation: u64) {
        let mut tree = self.lock();
        if let Some(n) = tree.node_mut(id).filter(|n| n.incarnation == incarnation)
            && n.state.is_live()
        {
            n.state = NodeState::Dead;
        }
    }

    /// Shuts the tree down without the processor (it stopped unexpectedly, or is stopping):
    /// cancels every reachable context, refuses new children, and marks Dead every live node
    /// whose runnable is not running (scheduled, or waiting out backoff), since no processor will
    /// ever start it. Running runnables mark their node Dead when they return.
    pub(crate) fn shut_down_without_processor(&self) {
        let mut tree = self.lock();
        tree.shut_down = true;
        for id in tree.reachable() {
            if let Some(n) = tree.node_mut(id) {
                n.token.cancel();
                if n.state.is_live() && !n.running {
                    n.state = NodeState::Dead;
                }
            }
        }
    }
}

/// Counts a runnable from the moment it is handed to the runtime until its first poll starts
/// (or it is dropped unpolled), for the settle detector.
pub(crate) struct StartGuard(Option<Arc<Shared>>);

impl StartGuard {
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.starting.fetch_add(1, Ordering::SeqCst);
        Self(Some(shared.clone()))
    }

    /// The first poll has started: record the activity, then stop counting.
    pub(crate) fn started(&mut self) {
        if let Some(shared) = self.0.take() {
            let now = u64::try_from(shared.base.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .max(1);
            shared.last_start.fetch_max(now, Ordering::SeqCst);
            shared.starting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.starting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
