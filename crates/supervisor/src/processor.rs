//! The processor: a ractor actor that owns the event loop of the tree. It starts runnables,
//! classifies their exits, propagates deaths, runs the restart pass after every event, waits out
//! backoff, releases settle waiters and liquidates the tree after shutdown (see
//! `docs/supervisor.md#the-processor-and-settling`).
//!
//! It runs on a thread of its own, with a current-thread runtime that also runs the backoff
//! timers and the blocked-poll check, so that runnables blocking the worker threads of the
//! application's runtime cannot stop it. Runnables are spawned on the application's runtime.

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::context::Context;
use crate::error::{Canceled, Error, RunResult, is_canceled};
use crate::logging::go_duration;
use crate::runnable::{CatchUnwind, call_catching, panic_message};
use crate::shared::{Shared, StartGuard};
use crate::state::NodeState;
use crate::tree::{NodeId, Restart};
use crate::watch::Watched;

/// How long the tree must be quiet before settle waiters are released (Go: more than 50 ticks of
/// 1 ms).
const SETTLE_QUIET: Duration = Duration::from_millis(51);

/// Stack of the processor's thread.
const PROCESSOR_STACK: usize = 256 * 1024;

/// How often the settle detector looks again while runnables wait for their first poll.
const STARTING_RECHECK: Duration = Duration::from_millis(5);

/// Starts the processor on a thread of its own and returns its reference once it runs. The
/// thread ends when the processor stops; if the processor stops while something is still live
/// (a bug, or a panic that escaped it), the tree is shut down without it.
pub(crate) async fn start(shared: Arc<Shared>) -> Result<ActorRef<ProcessorMsg>, Error> {
    let (tx, rx) = oneshot::channel();
    // Log through the subscriber in effect where the supervisor was created (possibly a scoped
    // one), as a processor running on the caller's runtime would. When there is none, leave the
    // thread to the global default, which may be set later.
    let dispatch = tracing::dispatcher::get_default(Clone::clone);
    let dispatch = (!dispatch.is::<tracing::subscriber::NoSubscriber>()).then_some(dispatch);
    std::thread::Builder::new()
        .name("supervisor-processor".to_string())
        // The processor's work is shallow (tree bookkeeping, no user code): a small stack keeps
        // the thread's share of a small daemon's memory small.
        .stack_size(PROCESSOR_STACK)
        .spawn(move || {
            let _log = dispatch.as_ref().map(tracing::dispatcher::set_default);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(Error::Spawn(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                let (processor, join) = match Actor::spawn(None, Processor, shared.clone()).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(Error::Spawn(e.to_string())));
                        return;
                    }
                };
                let _ = shared.processor.set(processor.clone());
                let _ = tx.send(Ok(processor));
                let _ = join.await;
                if let Some(sentinel) = shared.sentinel.get() {
                    sentinel.abort();
                }
                if shared.lock().any_live() {
                    shared
                        .supervisor_log()
                        .error("supervisor processor stopped unexpectedly; shutting the tree down");
                    shared.shut_down_without_processor();
                }
            });
        })
        .map_err(|e| Error::Spawn(e.to_string()))?;
    rx.await
        .map_err(|_| Error::Spawn("the processor thread exited".to_string()))?
}

/// Lives in a task on the runnables' runtime, and tells the processor when that runtime shuts
/// down (dropping the task): no runnable can run or report its exit after that.
struct RuntimeSentinel(Weak<Shared>);

impl Drop for RuntimeSentinel {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.send(ProcessorMsg::RuntimeGone);
        }
    }
}

/// Spawns the [`RuntimeSentinel`] on the runnables' runtime (aborted when the processor stops).
pub(crate) fn watch_runtime(shared: &Arc<Shared>) {
    let sentinel = RuntimeSentinel(Arc::downgrade(shared));
    let task = shared.runtime.spawn(async move {
        let _sentinel = sentinel;
        std::future::pending::<()>().await
    });
    let _ = shared.sentinel.set(task.abort_handle());
}

/// How a run ended.
pub(crate) enum Outcome {
    /// The runnable returned.
    Returned(RunResult),
    /// The runnable panicked (caught).
    Panicked(String),
    /// The node's context was cancelled while it waited out its backoff.
    BackoffCanceled,
}

/// Requests handled by the processor, one at a time.
pub(crate) enum ProcessorMsg {
    /// Start the runnable of a node.
    Schedule { id: NodeId, incarnation: u64 },
    /// A node's run ended (or its backoff wait was cancelled).
    Died {
        id: NodeId,
        incarnation: u64,
        outcome: Outcome,
    },
    /// Release the sender once the tree has been quiet for [`SETTLE_QUIET`].
    WaitSettled(oneshot::Sender<()>),
    /// Internal timer for the settle detector.
    SettleCheck,
    /// A node signalled Healthy: the restart policy's DNs below it may have become unmatched.
    /// Not activity for the settle detector (nothing was started and nothing exited).
    PolicyCheck,
    /// Shut the tree down.
    Shutdown,
    /// The runtime that runs the runnables has shut down: stop.
    RuntimeGone,
}

pub(crate) struct Processor;

pub(crate) struct ProcessorState {
    shared: Arc<Shared>,
    last_activity: Instant,
    waiters: Vec<oneshot::Sender<()>>,
    settle_check_pending: bool,
    liquidating: bool,
    /// The blocked-poll check (see `crate::watch`).
    poll_check: Option<JoinHandle<()>>,
    /// The tree changed since the restart policy's DNs were last checked against it.
    policy_check_due: bool,
    /// The indices (in `Shared::policy_entries`) of the DNs already warned about.
    warned: BTreeSet<usize>,
}

impl Actor for Processor {
    type Msg = ProcessorMsg;
    type State = ProcessorState;
    type Arguments = Arc<Shared>;

    async fn pre_start(
        &self,
        _me: ActorRef<Self::Msg>,
        shared: Arc<Shared>,
    ) -> Result<Self::State, ActorProcessingErr> {
        shared.supervisor_log().info("supervisor processor started");
        let poll_check = shared.polls.period().map(|period| {
            let polls = shared.polls.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    polls.check();
                }
            })
        });
        Ok(ProcessorState {
            shared,
            last_activity: Instant::now(),
            waiters: Vec::new(),
            settle_check_pending: false,
            liquidating: false,
            poll_check,
            policy_check_due: false,
            warned: BTreeSet::new(),
        })
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(check) = st.poll_check.take() {
            check.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProcessorMsg::Schedule { id, incarnation } => {
                if st.liquidating {
                    st.liquidate(&me, id, incarnation, false);
                } else {
                    st.last_activity = Instant::now();
                    // Starting a runnable changes no state the restart pass looks at, so the pass
                    // only runs after exits (the results are the same as Go's pass on every tick).
                    st.schedule(&me, id, incarnation);
                    st.tree_changed(&me);
                }
            }
            ProcessorMsg::Died {
                id,
                incarnation,
                outcome,
            } => {
                if st.liquidating {
                    st.liquidate(&me, id, incarnation, true);
                } else {
                    st.last_activity = Instant::now();
                    st.died(id, incarnation, outcome);
                    st.restart_pass(&me);
                    st.tree_changed(&me);
                }
            }
            ProcessorMsg::WaitSettled(tx) => {
                if !st.liquidating {
                    st.waiters.push(tx);
                    st.check_settled(&me);
                }
            }
            ProcessorMsg::PolicyCheck => {
                if !st.liquidating {
                    st.tree_changed(&me);
                }
            }
            ProcessorMsg::SettleCheck => {
                st.settle_check_pending = false;
                if !st.liquidating {
                    st.check_settled(&me);
                }
            }
            ProcessorMsg::Shutdown => {
                if !st.liquidating {
                    st.shutdown(&me);
                }
            }
            ProcessorMsg::RuntimeGone => st.runtime_gone(&me),
        }
        Ok(())
    }
}

impl ProcessorState {
    /// Starts the runnable of a New node with its current context (even if cancelled).
    fn schedule(&mut self, me: &ActorRef<ProcessorMsg>, id: NodeId, incarnation: u64) {
        let mut tree = self.shared.lock();
        let dn = tree.dn(id);
        let Some(node) = tree.node_mut(id).filter(|n| n.incarnation == incarnation) else {
            return;
        };
        if node.state != NodeState::New {
            self.shared
                .supervisor_log()
                .error(format!("programming error: scheduled node {dn} not new"));
            return;
        }
        node.running = true;
        let node = &*node;
        self.shared.notify(&dn, NodeState::New);
        let ctx = Context::new(
            self.shared.clone(),
            id,
            incarnation,
            &dn,
            node.token.clone(),
        );
        let runnable = node.runnable.clone();
        drop(tree);
        let shared = self.shared.clone();
        let processor = me.clone();
        let span = tracing::info_span!("runnable", dn = %dn);
        let panics = ctx.task_panics();
        let mut start = StartGuard::new(&self.shared);
        let task = async move {
            start.started();
            let run = async {
                match call_catching(&runnable, ctx) {
                    Ok(fut) => CatchUnwind::new(fut).await,
                    Err(payload) => Err(payload),
                }
            };
            // A panic forwarded from a task spawned through the context ends the run like a
            // panic of the runnable (the runnable's future is dropped).
            let result = tokio::select! {
                biased;
                payload = panics.panicked() => Err(payload),
                result = run => result,
            };
            let result = match (panics.close(), result) {
                (Some(payload), Ok(_)) => Err(payload),
                (_, result) => result,
            };
            let outcome = match result {
                Ok(r) => Outcome::Returned(r),
                Err(payload) => {
                    let msg = panic_message(&payload);
                    if shared.propagate_panic {
                        // Propagated panic: the Go process would crash. Keep the payload for the
                        // owner to re-raise, and take the whole tree down.
                        shared.store_panic(payload);
                        let _ = processor.send_message(ProcessorMsg::Shutdown);
                    }
                    Outcome::Panicked(msg)
                }
            };
            // Recorded before telling the processor, so that if the processor is gone by the
            // time the message would be handled, `shut_down_without_processor` sees it.
            if let Some(n) = shared
                .lock()
                .node_mut(id)
                .filter(|n| n.incarnation == incarnation)
            {
                n.running = false;
            }
            let sent = processor.send_message(ProcessorMsg::Died {
                id,
                incarnation,
                outcome,
            });
            if sent.is_err() {
                shared.exited_without_processor(id, incarnation);
            }
        };
        let slot = self.shared.watch_slot(format!("runnable {dn}"));
        self.shared
            .runtime
            .spawn(Watched::new(task, slot).instrument(span));
    }

    /// Classifies an exit and propagates a death (see
    /// `docs/supervisor.md#how-an-exit-is-classified`, `docs/supervisor.md#what-a-death-affects`).
    fn died(&mut self, id: NodeId, incarnation: u64, outcome: Outcome) {
        let mut tree = self.shared.lock();
        let dn = tree.dn(id);
        let Some(node) = tree.node_mut(id).filter(|n| n.incarnation == incarnation) else {
            return;
        };
        if node.state.is_exited() {
            return;
        }
        let cancelled = node.token.is_cancelled();
        let failure = match &outcome {
            Outcome::Returned(Ok(())) if node.signaled_done => None,
            Outcome::Returned(Err(e)) if cancelled && is_canceled(e.as_ref()) => Some(None),
            Outcome::BackoffCanceled if cancelled => Some(None),
            Outcome::Returned(Ok(())) => Some(Some(format!("returned nil when {}", node.state))),
            Outcome::Returned(Err(e)) => Some(Some(e.to_string())),
            Outcome::Panicked(msg) => Some(Some(format!("panic: {msg}"))),
            Outcome::BackoffCanceled => Some(Some(Canceled.to_string())),
        };
        match failure {
            None => {
                node.state = NodeState::Done;
                self.shared.notify(&dn, NodeState::Done);
            }
            Some(None) => {
                node.state = NodeState::Canceled;
                self.shared.notify(&dn, NodeState::Canceled);
            }
            Some(Some(err)) => {
                node.state = NodeState::Dead;
                node.token.cancel();
                self.shared
                    .logger(&dn)
                    .fatal(format!("runnable returned error: {err}"));
                self.shared.notify(&dn, NodeState::Dead);
                for sibling in tree.group_siblings(id) {
                    if let Some(s) = tree.node(sibling) {
                        s.token.cancel();
                    }
                }
            }
        }
    }

    /// The restart pass: restart what can be restarted and start the cancellable backoff waits.
    fn restart_pass(&mut self, me: &ActorRef<ProcessorMsg>) {
        let (restarts, warnings) = self.shared.lock().restart_pass();
        let log = self.shared.supervisor_log();
        for w in warnings {
            log.warning(w);
        }
        for Restart {
            id,
            incarnation,
            dn,
            delay,
            token,
        } in restarts
        {
            log.info(format!(
                "rescheduling supervised node {dn} with backoff {}",
                go_duration(delay)
            ));
            let processor = me.clone();
            let shared = self.shared.clone();
            if delay.is_zero() {
                // Resolve the race between delay and cancellation right away instead of waiting for
                // a timer tick.
                let msg = if token.is_cancelled() {
                    ProcessorMsg::Died {
                        id,
                        incarnation,
                        outcome: Outcome::BackoffCanceled,
                    }
                } else {
                    ProcessorMsg::Schedule { id, incarnation }
                };
                if processor.send_message(msg).is_err() {
                    shared.exited_without_processor(id, incarnation);
                }
                continue;
            }
            tokio::spawn(async move {
                let msg = tokio::select! {
                    _ = tokio::time::sleep(delay) => ProcessorMsg::Schedule { id, incarnation },
                    _ = token.cancelled() => ProcessorMsg::Died {
                        id,
                        incarnation,
                        outcome: Outcome::BackoffCanceled,
                    },
                };
                if processor.send_message(msg).is_err() {
                    shared.exited_without_processor(id, incarnation);
                }
            });
        }
    }

    /// Releases waiters once nothing happened for [`SETTLE_QUIET`]. Besides Go's events
    /// (starts and exits handled here), the first poll of a started runnable counts as activity,
    /// and the tree is not settled while a started runnable waits for its first poll (Go's
    /// goroutines start at once; a tokio task may wait for a busy worker thread).
    ///
    /// When the restart policy names DNs and the tree changed since they were last checked, the
    /// detector also runs without waiters, and checks them (before releasing the waiters, so
    /// that the warnings are logged when `wait_settled` returns).
    fn check_settled(&mut self, me: &ActorRef<ProcessorMsg>) {
        if self.waiters.is_empty() && !self.policy_check_due {
            return;
        }
        let (starting, last_start) = self.shared.start_activity();
        let last = last_start.map_or(self.last_activity, |s| s.max(self.last_activity));
        let quiet = last.elapsed();
        if !starting && quiet >= SETTLE_QUIET {
            if std::mem::take(&mut self.policy_check_due) {
                self.warn_unmatched();
            }
            for w in self.waiters.drain(..) {
                let _ = w.send(());
            }
        } else if !self.settle_check_pending {
            self.settle_check_pending = true;
            let wait = if starting {
                STARTING_RECHECK
            } else {
                SETTLE_QUIET - quiet
            };
            me.send_after(wait, || ProcessorMsg::SettleCheck);
        }
    }

    /// The tree changed (a start, an exit, a Healthy signal): check the restart policy's DNs
    /// once it has settled again.
    fn tree_changed(&mut self, me: &ActorRef<ProcessorMsg>) {
        if !self.shared.policy_entries.is_empty() {
            self.policy_check_due = true;
            self.check_settled(me);
        }
    }

    /// Logs a warning for each DN of the restart policy that has become unmatched, once.
    fn warn_unmatched(&mut self) {
        let found = {
            let tree = self.shared.lock();
            crate::unmatched::find(&self.shared.policy_entries, &tree)
        };
        let log = self.shared.supervisor_log();
        for (i, unmatched) in found {
            if self.warned.insert(i) {
                log.warning(unmatched.to_string());
            }
        }
    }

    /// The runnables' runtime has shut down: its tasks were dropped, so no runnable will run or
    /// report an exit again. Shut down, mark what is still live Dead, and stop.
    fn runtime_gone(&mut self, me: &ActorRef<ProcessorMsg>) {
        self.shared
            .supervisor_log()
            .info("the runtime running the runnables has shut down");
        if !self.liquidating {
            self.shutdown(me);
        }
        {
            let mut tree = self.shared.lock();
            for id in tree.reachable() {
                if let Some(n) = tree.node_mut(id)
                    && n.state.is_live()
                {
                    n.state = NodeState::Dead;
                }
            }
        }
        self.check_liquidated(me);
    }

    /// Cancels every reachable node, then liquidates (see
    /// `docs/supervisor.md#shutdown-and-the-liquidator`).
    fn shutdown(&mut self, me: &ActorRef<ProcessorMsg>) {
        let log = self.shared.supervisor_log();
        log.info("supervisor processor exiting: shutdown requested");
        self.liquidating = true;
        // Waiters are never released after shutdown; dropping them reports ShutDown.
        self.waiters.clear();
        {
            let mut tree = self.shared.lock();
            tree.shut_down = true;
            let tokens: Vec<_> = tree
                .reachable()
                .into_iter()
                .filter_map(|id| tree.node(id).map(|n| n.token.clone()))
                .collect();
            for t in tokens {
                t.cancel();
            }
        }
        log.info("supervisor exited, starting liquidator to clean up remaining runnables...");
        self.check_liquidated(me);
    }

    /// Marks the node Dead (no metrics, no FATAL, no propagation).
    fn liquidate(
        &mut self,
        me: &ActorRef<ProcessorMsg>,
        id: NodeId,
        incarnation: u64,
        exited: bool,
    ) {
        {
            let mut tree = self.shared.lock();
            let dn = tree.dn(id);
            if let Some(n) = tree.node_mut(id).filter(|n| n.incarnation == incarnation) {
                n.state = NodeState::Dead;
                let line = if exited {
                    format!("liquidator: {dn} exited")
                } else {
                    format!("liquidator: refusing to schedule {dn}")
                };
                self.shared.supervisor_log().info(line);
            }
        }
        self.check_liquidated(me);
    }

    fn check_liquidated(&mut self, me: &ActorRef<ProcessorMsg>) {
        if !self.shared.lock().any_live() {
            self.shared
                .supervisor_log()
                .info("liquidator: complete, all runnables dead or done");
            me.stop(None);
        }
    }
}
