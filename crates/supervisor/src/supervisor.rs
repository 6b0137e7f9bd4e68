//! The supervisor handle and its options (sections 1, 11, 13).

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::oneshot;

use crate::backoff::{Backoff, RandomSource, XorShift};
use crate::error::Error;
use crate::logging::LogRecorder;
use crate::metrics::Metrics;
use crate::policy::RestartPolicy;
use crate::processor::ProcessorMsg;
use crate::runnable::{PanicPayload, Runnable};
use crate::shared::Shared;
use crate::state::NodeState;
use crate::tree::Tree;
use crate::unmatched::UnmatchedOverride;
use crate::watch::DEFAULT_BLOCKED_POLL_WARNING;

type RngFactory = Arc<dyn Fn() -> Box<dyn RandomSource> + Send + Sync>;

/// Options of a supervisor (Go's three options, plus the restart policy, which Go hard-codes).
#[derive(Clone)]
pub struct Options {
    propagate_panic: bool,
    metrics: Vec<Arc<dyn Metrics>>,
    policy: RestartPolicy,
    recorder: Option<LogRecorder>,
    rng: Option<RngFactory>,
    blocked_poll_warning: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            propagate_panic: false,
            metrics: Vec::new(),
            policy: RestartPolicy::default(),
            recorder: None,
            rng: None,
            blocked_poll_warning: Some(DEFAULT_BLOCKED_POLL_WARNING),
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("propagate_panic", &self.propagate_panic)
            .field("metrics", &self.metrics.len())
            .field("policy", &self.policy)
            .field("recorder", &self.recorder.is_some())
            .field("blocked_poll_warning", &self.blocked_poll_warning)
            .finish()
    }
}

impl Options {
    /// Default options: panics are caught, no metrics, Go's backoff parameters, and a warning
    /// for polls that block a worker thread for 1 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// Warn (at the supervisor's DN, naming the DN) about a runnable, a task spawned through a
    /// context or an actor callback whose poll has not returned after `after`: it blocks a
    /// worker thread of the runtime (a busy loop, or a blocking call in async code). A zero
    /// duration turns the check off. The default is 1 s.
    ///
    /// Each poll is timed with two clock reads; the check runs on the processor's thread every
    /// quarter of `after` (between 10 ms and 500 ms).
    pub fn blocked_poll_warning(mut self, after: Duration) -> Self {
        self.blocked_poll_warning = (!after.is_zero()).then_some(after);
        self
    }

    /// Do not swallow runnable panics (see `docs/supervisor.md#panics`): the first panic shuts the
    /// whole tree down and is kept for the owner (Go crashes the process instead).
    ///
    /// Nothing re-raises it by itself: the owner must collect it with
    /// [`Supervisor::take_propagated_panic`] (polling) or await
    /// [`Supervisor::propagated_panic`], and re-raise it (`std::panic::resume_unwind`). Without
    /// that, a propagated panic only shows as a shut-down tree. [`TestHarness`] does this for
    /// tests.
    ///
    /// [`TestHarness`]: crate::TestHarness
    pub fn propagate_panic(mut self) -> Self {
        self.propagate_panic = true;
        self
    }

    /// Adds a metrics sink (several sinks all receive every notification, in order).
    pub fn metrics(mut self, sink: Arc<dyn Metrics>) -> Self {
        self.metrics.push(sink);
        self
    }

    /// Sets the restart policy (backoff parameters, per-DN overrides, policies attached to
    /// subtrees with [`RestartPolicy::attach`]).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Also records every log line in `recorder` (the analog of Go's existing-logtree option).
    pub fn log_recorder(mut self, recorder: LogRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Supplies the random source of each node's backoff (for deterministic tests).
    ///
    /// The factory is called once per node when the node is created, while the supervisor's
    /// tree lock is held: it must not block and must not call back into the supervisor (any
    /// [`Supervisor`] or [`Context`](crate::Context) method), or it deadlocks.
    pub fn random_source(
        mut self,
        factory: impl Fn() -> Box<dyn RandomSource> + Send + Sync + 'static,
    ) -> Self {
        self.rng = Some(Arc::new(factory));
        self
    }
}

/// A running supervision tree. Dropping the handle shuts the tree down (like cancelling the
/// context given to Go's `New`).
#[must_use = "dropping the Supervisor shuts the tree down at once"]
pub struct Supervisor {
    shared: Arc<Shared>,
    processor: ActorRef<ProcessorMsg>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("live_runnables", &self.live_runnables())
            .finish()
    }
}

impl Supervisor {
    /// Creates the tree, starts the processor actor, and schedules `root` at DN `root`.
    ///
    /// Runnables run on the tokio runtime this is called on (which must be running when the
    /// supervisor is created; an error otherwise). The processor runs on a thread of its own, so
    /// runnables that block worker threads cannot stop it; when that runtime shuts down, the
    /// supervisor stops.
    pub async fn new(root: impl Into<Runnable>, options: Options) -> Result<Self, Error> {
        let Options {
            propagate_panic,
            metrics,
            policy,
            recorder,
            rng,
            blocked_poll_warning,
        } = options;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|e| Error::Spawn(e.to_string()))?;
        let policy_entries = policy.entries();
        let make_backoff = Box::new(move |dn: &str| {
            let params = policy.params_for(dn);
            // The policy validated its parameters when it was built.
            let rng = match &rng {
                Some(f) => f(),
                None => Box::new(XorShift::from_time()),
            };
            Backoff::from_valid(params, rng)
        });
        let tree = Tree::new(root.into(), make_backoff);
        let shared = Arc::new(Shared::new(
            tree,
            metrics,
            recorder,
            propagate_panic,
            runtime,
            blocked_poll_warning,
            policy_entries,
        ));
        let processor = crate::processor::start(shared.clone()).await?;
        crate::processor::watch_runtime(&shared);
        let root_id = shared.lock().root();
        shared.send(ProcessorMsg::Schedule {
            id: root_id,
            incarnation: 0,
        });
        Ok(Self { shared, processor })
    }

    /// Shuts the tree down (see `docs/supervisor.md#shutdown-and-the-liquidator`): every context is
    /// cancelled and nothing is restarted or started any more. Runnables that are still running
    /// keep running until they return.
    pub fn shutdown(&self) {
        if self.processor.send_message(ProcessorMsg::Shutdown).is_err() {
            // The processor is gone (normally only after a complete shutdown): cancel whatever
            // is still reachable directly.
            self.shared.shut_down_without_processor();
        }
    }

    /// Sorted DNs of every node in New or Healthy.
    pub fn live_runnables(&self) -> Vec<String> {
        self.shared.lock().live_runnables()
    }

    /// The current state of the node at `dn` in the tree, if it exists in the current tree.
    ///
    /// This is the tree's state, not the last state reported to the metrics sinks: a node is
    /// reset to New as soon as it is picked for a restart, so a Dead node that waits out its
    /// backoff reads New here (metrics still read Dead until it starts again). After shutdown,
    /// nodes end Dead here without a metrics report.
    pub fn node_state(&self, dn: &str) -> Option<NodeState> {
        let tree = self.shared.lock();
        tree.find(dn).and_then(|id| tree.node(id)).map(|n| n.state)
    }

    /// The DNs of the restart policy (overrides and attach points) that name no node of the
    /// current tree: no node has the DN, and the nearest existing node above it has signalled
    /// Healthy, so the DN cannot appear before that node restarts. Sorted by DN. The rule is
    /// applied to the tree as it is now; once the tree has settled ([`Supervisor::wait_settled`])
    /// it covers everything started so far. The supervisor also logs each one, once, as a
    /// warning at [`SUPERVISOR_DN`](crate::SUPERVISOR_DN) when the tree has settled. See
    /// [`RestartPolicy`] for the details.
    ///
    /// ```
    /// use supervisor::{Context, Options, RestartPolicy, Signal, Supervisor};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let policy = RestartPolicy::from_toml_str(
    ///     "[overrides.\"root.listner\"]\nmax_interval = \"1m30s\"\n",
    /// )?;
    /// let sup = Supervisor::new(
    ///     |ctx: Context| async move {
    ///         ctx.run("listener", |ctx: Context| async move {
    ///             ctx.signal(Signal::Healthy)?;
    ///             ctx.signal(Signal::Done)?;
    ///             Ok(())
    ///         })?;
    ///         ctx.signal(Signal::Healthy)?;
    ///         ctx.signal(Signal::Done)?;
    ///         Ok(())
    ///     },
    ///     Options::new().restart_policy(policy),
    /// )
    /// .await?;
    /// sup.wait_settled().await?;
    /// let unmatched = sup.unmatched_overrides();
    /// assert_eq!(unmatched.len(), 1);
    /// assert_eq!(unmatched[0].dn, "root.listner");
    /// assert_eq!(unmatched[0].closest.as_deref(), Some("root.listener"));
    /// assert_eq!(
    ///     unmatched[0].to_string(),
    ///     "restart policy override \"root.listner\" names no node; closest existing DN: \
    ///      root.listener"
    /// );
    /// # Ok(())
    /// # }
    /// ```
    pub fn unmatched_overrides(&self) -> Vec<UnmatchedOverride> {
        if self.shared.policy_entries.is_empty() {
            return Vec::new();
        }
        let tree = self.shared.lock();
        crate::unmatched::find(&self.shared.policy_entries, &tree)
            .into_iter()
            .map(|(_, u)| u)
            .collect()
    }

    /// Waits until no runnable was started or exited for about 51 ms (see
    /// `docs/supervisor.md#the-processor-and-settling`). Fails with [`Error::ShutDown`] after
    /// shutdown.
    pub async fn wait_settled(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.processor
            .send_message(ProcessorMsg::WaitSettled(tx))
            .map_err(|_| Error::ShutDown)?;
        rx.await.map_err(|_| Error::ShutDown)
    }

    /// Waits until no runnable is live, polling every 10 ms. Call after
    /// [`Supervisor::shutdown`]; a runnable that ignores cancellation makes this wait forever.
    pub async fn wait_stopped(&self) {
        while !self.live_runnables().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The payload of the first runnable panic when [`Options::propagate_panic`] is set, if one
    /// happened and was not taken yet.
    pub fn take_propagated_panic(&self) -> Option<PanicPayload> {
        self.shared.take_panic()
    }

    /// Waits for the first runnable panic when [`Options::propagate_panic`] is set, and takes
    /// it (pending forever when panics are not propagated or none happens). Typical use: race
    /// it against the program's main work and `std::panic::resume_unwind` the payload.
    pub async fn propagated_panic(&self) -> PanicPayload {
        loop {
            let notified = self.shared.propagated_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(p) = self.shared.take_panic() {
                return p;
            }
            notified.await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Context;
    use crate::error::{Canceled, RunResult};
    use crate::state::Signal;
    use tokio::sync::mpsc;
    use tokio::time::timeout;

    const WAIT: Duration = Duration::from_secs(10);

    /// Should the processor actor die (here: killed), the tree is shut down without it instead of
    /// leaving runnables uncancelled and `wait_stopped` hanging.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_processor_that_stops_unexpectedly_shuts_the_tree_down() {
        let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
        let s = Supervisor::new(
            move |ctx: Context| {
                let tx = tx.clone();
                async move {
                    ctx.run("y", move |ctx: Context| {
                        let tx = tx.clone();
                        async move {
                            ctx.signal(Signal::Healthy)?;
                            let _ = tx.send("healthy");
                            ctx.cancelled().await;
                            let _ = tx.send("cancelled");
                            RunResult::Err(Canceled.into())
                        }
                    })?;
                    ctx.signal(Signal::Healthy)?;
                    ctx.signal(Signal::Done)?;
                    RunResult::Ok(())
                }
            },
            Options::new(),
        )
        .await
        .unwrap();
        assert_eq!(timeout(WAIT, rx.recv()).await.unwrap(), Some("healthy"));
        s.processor.kill();
        assert_eq!(timeout(WAIT, rx.recv()).await.unwrap(), Some("cancelled"));
        timeout(WAIT, s.wait_stopped()).await.unwrap();
        assert_eq!(s.node_state("root.y"), Some(NodeState::Dead));
        assert_eq!(s.wait_settled().await, Err(Error::ShutDown));
        s.shutdown();
        assert!(s.live_runnables().is_empty());
    }

    /// `shutdown` cancels directly when the processor is gone (without relying on the watcher).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_without_a_processor_cancels_every_context() {
        let (tx, mut rx) = mpsc::unbounded_channel::<Context>();
        let s = Supervisor::new(
            move |ctx: Context| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(ctx.clone());
                    ctx.cancelled().await;
                    RunResult::Err(Canceled.into())
                }
            },
            Options::new(),
        )
        .await
        .unwrap();
        let root = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        // Simulate a dead processor for the handle only: a fresh, stopped actor.
        let (dead, join) =
            ractor::Actor::spawn(None, crate::processor::Processor, s.shared.clone())
                .await
                .unwrap();
        dead.stop(None);
        join.await.unwrap();
        let sup = Supervisor {
            shared: s.shared.clone(),
            processor: dead,
        };
        sup.shutdown();
        assert!(root.is_cancelled());
        drop(sup);
        s.shutdown();
        timeout(WAIT, s.wait_stopped()).await.unwrap();
    }
}
