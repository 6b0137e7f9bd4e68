//! State shared by the processor, the contexts and the supervisor handle.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ractor::ActorRef;

use crate::logging::{LogRecorder, Logger, SUPERVISOR_DN};
use crate::metrics::Metrics;
use crate::processor::ProcessorMsg;
use crate::runnable::PanicPayload;
use crate::state::NodeState;
use crate::tree::Tree;

pub(crate) struct Shared {
    tree: Mutex<Tree>,
    pub(crate) processor: OnceLock<ActorRef<ProcessorMsg>>,
    pub(crate) metrics: Vec<Arc<dyn Metrics>>,
    pub(crate) recorder: Option<LogRecorder>,
    pub(crate) propagate_panic: bool,
    pub(crate) propagated: Mutex<Option<PanicPayload>>,
}

impl Shared {
    pub(crate) fn new(
        tree: Tree,
        metrics: Vec<Arc<dyn Metrics>>,
        recorder: Option<LogRecorder>,
        propagate_panic: bool,
    ) -> Self {
        Self {
            tree: Mutex::new(tree),
            processor: OnceLock::new(),
            metrics,
            recorder,
            propagate_panic,
            propagated: Mutex::new(None),
        }
    }

    /// Locks the tree. Nothing panics while holding it, but recover from poisoning anyway.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Tree> {
        match self.tree.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Sends to every metrics sink (M1–M2). Called with the tree lock held.
    pub(crate) fn notify(&self, dn: &str, state: NodeState) {
        for m in &self.metrics {
            m.notify_node_state(dn, state);
        }
    }

    pub(crate) fn logger(&self, dn: &str) -> Logger {
        Logger::new(dn, self.recorder.clone())
    }

    pub(crate) fn supervisor_log(&self) -> Logger {
        self.logger(SUPERVISOR_DN)
    }

    pub(crate) fn send(&self, msg: ProcessorMsg) {
        if let Some(p) = self.processor.get() {
            // The processor only stops once nothing is live; a failed send means the message is
            // no longer needed.
            let _ = p.send_message(msg);
        }
    }

    pub(crate) fn store_panic(&self, payload: PanicPayload) {
        let mut slot = match self.propagated.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if slot.is_none() {
            *slot = Some(payload);
        }
    }
}
