//! The supervisor handle and its options (sections 1, 11, 13).

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::oneshot;

use crate::backoff::{Backoff, RandomSource};
use crate::error::Error;
use crate::logging::LogRecorder;
use crate::metrics::Metrics;
use crate::policy::RestartPolicy;
use crate::processor::{Processor, ProcessorMsg};
use crate::runnable::{PanicPayload, Runnable};
use crate::shared::Shared;
use crate::state::NodeState;
use crate::tree::Tree;

type RngFactory = Arc<dyn Fn() -> Box<dyn RandomSource> + Send + Sync>;

/// Options of a supervisor (O1–O3, plus the restart policy, which Go hard-codes).
#[derive(Clone, Default)]
pub struct Options {
    propagate_panic: bool,
    metrics: Vec<Arc<dyn Metrics>>,
    policy: RestartPolicy,
    recorder: Option<LogRecorder>,
    rng: Option<RngFactory>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("propagate_panic", &self.propagate_panic)
            .field("metrics", &self.metrics.len())
            .field("policy", &self.policy)
            .field("recorder", &self.recorder.is_some())
            .finish()
    }
}

impl Options {
    /// Default options: panics are caught, no metrics, Go's backoff parameters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Do not catch runnable panics (PP2): the first panic shuts the whole tree down and is kept
    /// for [`Supervisor::take_propagated_panic`] (the test harness re-raises it).
    pub fn propagate_panic(mut self) -> Self {
        self.propagate_panic = true;
        self
    }

    /// Adds a metrics sink (O3; several sinks all receive every notification, in order).
    pub fn metrics(mut self, sink: Arc<dyn Metrics>) -> Self {
        self.metrics.push(sink);
        self
    }

    /// Sets the restart policy (backoff parameters, per-DN overrides).
    pub fn restart_policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Also records every log line in `recorder` (O2's analog of an existing logtree).
    pub fn log_recorder(mut self, recorder: LogRecorder) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Supplies the random source of each node's backoff (for deterministic tests).
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
    /// Creates the tree, starts the processor actor, and schedules `root` at DN `root` (T1, P2).
    pub async fn new(root: impl Into<Runnable>, options: Options) -> Result<Self, Error> {
        let Options {
            propagate_panic,
            metrics,
            policy,
            recorder,
            rng,
        } = options;
        let make_backoff = Box::new(move |dn: &str| {
            let params = policy.params_for(dn);
            match &rng {
                Some(f) => Backoff::with_rng(params, f()),
                None => Backoff::new(params),
            }
        });
        let tree = Tree::new(root.into(), make_backoff);
        let shared = Arc::new(Shared::new(tree, metrics, recorder, propagate_panic));
        let (processor, _join) = Actor::spawn(None, Processor, shared.clone())
            .await
            .map_err(|e| Error::Spawn(e.to_string()))?;
        let _ = shared.processor.set(processor.clone());
        let root_id = shared.lock().root();
        shared.send(ProcessorMsg::Schedule {
            id: root_id,
            incarnation: 0,
        });
        Ok(Self { shared, processor })
    }

    /// Shuts the tree down (K1–K4): every context is cancelled and nothing is restarted or
    /// started any more. Runnables that are still running keep running until they return.
    pub fn shutdown(&self) {
        let _ = self.processor.send_message(ProcessorMsg::Shutdown);
    }

    /// Sorted DNs of every node in New or Healthy (K5).
    pub fn live_runnables(&self) -> Vec<String> {
        self.shared.lock().live_runnables()
    }

    /// The current state of the node at `dn`, if it exists in the current tree.
    pub fn node_state(&self, dn: &str) -> Option<NodeState> {
        let tree = self.shared.lock();
        tree.find(dn).and_then(|id| tree.node(id)).map(|n| n.state)
    }

    /// Waits until no runnable was started or exited for about 51 ms (P3). Fails with
    /// [`Error::ShutDown`] after shutdown.
    pub async fn wait_settled(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        self.processor
            .send_message(ProcessorMsg::WaitSettled(tx))
            .map_err(|_| Error::ShutDown)?;
        rx.await.map_err(|_| Error::ShutDown)
    }

    /// Waits until no runnable is live, polling every 10 ms (H4). Call after
    /// [`Supervisor::shutdown`]; a runnable that ignores cancellation makes this wait forever.
    pub async fn wait_stopped(&self) {
        while !self.live_runnables().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The payload of the first runnable panic when [`Options::propagate_panic`] is set.
    pub fn take_propagated_panic(&self) -> Option<PanicPayload> {
        match self.shared.propagated.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
