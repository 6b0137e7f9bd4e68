//! The runnable context: a node's DN, its incarnation-bound cancellation token, and access to
//! `run`/`run_group`/`signal`/loggers (sections 3, 4, 6).

use std::fmt;
use std::sync::Arc;

use crate::error::{Canceled, Error};
use crate::logging::Logger;
use crate::name::child_dn;
use crate::processor::ProcessorMsg;
use crate::runnable::Runnable;
use crate::shared::Shared;
use crate::state::Signal;
use crate::token::CancelToken;
use crate::tree::NodeId;

/// What a runnable receives. Cheap to clone; clones refer to the same incarnation. A context
/// kept past the end of its incarnation (once its run's exit was handled, whether or not the node
/// was restarted or thrown away since) is *stale*: `run`, `run_group`, `signal` and `sub_logger`
/// return [`Error::StaleContext`] (deviation from Go, which resolves by DN).
#[derive(Clone)]
pub struct Context {
    shared: Arc<Shared>,
    id: NodeId,
    incarnation: u64,
    dn: Arc<str>,
    token: CancelToken,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("dn", &self.dn)
            .field("incarnation", &self.incarnation)
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

impl Context {
    pub(crate) fn new(
        shared: Arc<Shared>,
        id: NodeId,
        incarnation: u64,
        dn: &str,
        token: CancelToken,
    ) -> Self {
        Self {
            shared,
            id,
            incarnation,
            dn: dn.into(),
            token,
        }
    }

    /// The node's DN, e.g. `root.devmgr.listener`.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// Whether this incarnation's context is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes when this incarnation's context is cancelled.
    pub async fn cancelled(&self) {
        self.token.cancelled().await
    }

    /// Go's `ctx.Err()`: `Some(Canceled)` once the context is cancelled.
    pub fn err(&self) -> Option<Canceled> {
        self.is_cancelled().then_some(Canceled)
    }

    /// A token cancelled together with this context (Go's derived contexts), for the runnable's
    /// own tasks. Cancelling it does not cancel the node's context: only the supervisor does that.
    pub fn child_token(&self) -> CancelToken {
        self.token.child_token()
    }

    /// Starts one child in its own group (`Run`). See [`Context::run_group`].
    pub fn run(&self, name: impl Into<String>, runnable: impl Into<Runnable>) -> Result<(), Error> {
        self.run_group([(name.into(), runnable.into())])
    }

    /// Starts a group of children (`RunGroup`, T4–T6, R1–R3). All names are checked before
    /// anything is created. Returns once the children exist (state New); they are started
    /// asynchronously. Fails with [`Error::NotNew`] once this node signalled Healthy, and with
    /// [`Error::StaleContext`] once this incarnation has exited.
    ///
    /// The items are `(name, runnable)` pairs; the runnable may be a [`Runnable`] or anything
    /// that converts into one, such as an async closure (all items of one call share one type).
    pub fn run_group<N, R, I>(&self, group: I) -> Result<(), Error>
    where
        N: Into<String>,
        R: Into<Runnable>,
        I: IntoIterator<Item = (N, R)>,
    {
        let group: Vec<(String, Runnable)> = group
            .into_iter()
            .map(|(n, r)| (n.into(), r.into()))
            .collect();
        let created = {
            let mut tree = self.shared.lock();
            let created = tree.run_group(self.id, self.incarnation, &self.dn, group)?;
            if tree.shut_down {
                // K4/K6: after shutdown, children are created but never run; they end up Dead.
                let log = self.shared.supervisor_log();
                for c in &created {
                    if let Some(n) = tree.node_mut(c.id) {
                        n.state = crate::state::NodeState::Dead;
                    }
                    log.info(format!("liquidator: refusing to schedule {}", c.dn));
                }
                return Ok(());
            }
            created
        };
        for c in created {
            let sent = self.shared.send(ProcessorMsg::Schedule {
                id: c.id,
                incarnation: c.incarnation,
            });
            if !sent {
                // The processor is gone: nothing will ever start the child.
                self.shared.exited_without_processor(c.id, c.incarnation);
            }
        }
        Ok(())
    }

    /// Reports a lifecycle milestone (G1–G5). Synchronous: the tree has changed on return.
    ///
    /// Returns [`Error::StaleContext`] once this incarnation has exited (whether or not the node
    /// was restarted since). A helper task that keeps a clone of the context and outlives the
    /// runnable gets this error as soon as the supervisor has handled the runnable's return;
    /// between the return and its handling, calls still act on the incarnation, as in Go.
    ///
    /// # Panics
    ///
    /// Like Go, on misuse: Healthy when not New, Done when not Healthy, or Done twice. Inside the
    /// runnable's own task the panic is caught and the node becomes Dead (unless panics are
    /// propagated). The tree is never left locked or half-changed.
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        let misuse = {
            let mut tree = self.shared.lock();
            let res = tree.signal(self.id, self.incarnation, &self.dn, signal)?;
            if res.is_ok() && signal == Signal::Healthy {
                self.shared
                    .notify(&self.dn, crate::state::NodeState::Healthy);
            }
            res
        };
        if let Err(m) = misuse {
            panic!("{m}");
        }
        Ok(())
    }

    /// The leveled logger at this node's DN (L2).
    pub fn logger(&self) -> Logger {
        self.shared.logger(&self.dn)
    }

    /// A logger at `<dn>.<name>`, reserving `name` so no child can take it (T7). Asking again
    /// for the same name is fine. Fails with [`Error::StaleContext`] once this incarnation has
    /// exited.
    pub fn sub_logger(&self, name: &str) -> Result<Logger, Error> {
        self.shared
            .lock()
            .reserve_sub_logger(self.id, self.incarnation, &self.dn, name)?;
        Ok(self.shared.logger(&child_dn(&self.dn, name)))
    }
}
