//! The runnable context: a node's DN, its incarnation-bound cancellation token, and access to
//! `run`/`run_group`/`signal`/loggers (sections 3, 4, 6).

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::{Canceled, Error};
use crate::logging::Logger;
use crate::name::child_dn;
use crate::processor::ProcessorMsg;
use crate::runnable::{CatchUnwind, PanicPayload, Runnable, panic_message};
use crate::shared::Shared;
use crate::state::Signal;
use crate::token::CancelToken;
use crate::tree::NodeId;
use crate::watch::{WatchSlot, Watched};

/// Panics of the tasks spawned through one incarnation's context ([`Context::spawn`]), handed to
/// the incarnation's own task so that they count as its panic.
#[derive(Default)]
pub(crate) struct TaskPanics {
    state: Mutex<PanicState>,
    notify: Notify,
}

#[derive(Default)]
enum PanicState {
    /// The runnable runs; the first forwarded panic, if any, waits to be taken.
    #[default]
    Running,
    Panicked(PanicPayload),
    /// The run dies of the panic it took; later ones are dropped.
    Taken,
    /// The runnable's task has finished: nothing takes panics any more.
    Exited,
}

impl TaskPanics {
    fn state(&self) -> std::sync::MutexGuard<'_, PanicState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Hands `payload` to the runnable's task. Gives it back when that task has finished.
    /// Panics after the first one of a run are dropped (the run dies of the first).
    fn forward(&self, payload: PanicPayload) -> Option<PanicPayload> {
        let mut state = self.state();
        match *state {
            PanicState::Running => {
                *state = PanicState::Panicked(payload);
                drop(state);
                self.notify.notify_waiters();
                None
            }
            PanicState::Panicked(_) | PanicState::Taken => None,
            PanicState::Exited => Some(payload),
        }
    }

    /// Completes with the first forwarded panic.
    pub(crate) async fn panicked(&self) -> PanicPayload {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                match std::mem::replace(&mut *state, PanicState::Taken) {
                    PanicState::Panicked(p) => return p,
                    other => *state = other,
                }
            }
            notified.await;
        }
    }

    /// The runnable's task has finished; returns a panic forwarded but not taken yet.
    pub(crate) fn close(&self) -> Option<PanicPayload> {
        match std::mem::replace(&mut *self.state(), PanicState::Exited) {
            PanicState::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

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
    panics: Arc<TaskPanics>,
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
            panics: Arc::default(),
        }
    }

    /// Where the panics of tasks spawned through this incarnation's contexts go.
    pub(crate) fn task_panics(&self) -> Arc<TaskPanics> {
        self.panics.clone()
    }

    /// Whether this incarnation has signalled Done (and is still the current one).
    pub(crate) fn signaled_done(&self) -> bool {
        self.shared
            .lock()
            .current(self.id, self.incarnation)
            .is_some_and(|n| n.signaled_done)
    }

    /// A slot timing the polls of a future working for this node, reported as `<what> <dn>`.
    pub(crate) fn watch_slot(&self, what: &str) -> Option<WatchSlot> {
        self.shared.watch_slot(format!("{what} {}", self.dn))
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

    /// Spawns a helper task for this incarnation on the supervisor's runtime, supervised for
    /// panics: a panic in the task counts as a panic of the runnable itself. While the runnable
    /// runs, its node dies of it (`panic: <message>`, Dead, restart with backoff), or, with
    /// [`Options::propagate_panic`](crate::Options::propagate_panic), the tree is shut down and
    /// the original payload is kept for the owner. A panic after the runnable has returned
    /// cannot kill that run any more: it is logged as an error at the node's DN (and still
    /// propagated when panics are).
    ///
    /// The returned handle reports such a panic as a [`JoinError`](tokio::task::JoinError)
    /// whose payload only says that the panic was forwarded to the supervisor.
    ///
    /// As in Go, the task is not otherwise tied to the run: it is not aborted when the
    /// runnable returns, and its result does not decide the node's state. Make it watch
    /// [`Context::cancelled`] or a [`Context::child_token`] to end with its runnable. Tasks
    /// started with a plain `tokio::spawn` are not supervised at all: their panics only reach
    /// their `JoinHandle`. Like runnables, spawned tasks must not block their thread (see the
    /// crate docs); their polls are timed like a runnable's.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let panics = self.panics.clone();
        let shared = self.shared.clone();
        let dn = self.dn.clone();
        let task = Watched::new(task, self.watch_slot("task spawned through the context of"));
        self.shared.runtime.spawn(async move {
            match CatchUnwind::new(task).await {
                Ok(v) => v,
                Err(payload) => {
                    let msg = panic_message(&payload);
                    if let Some(payload) = panics.forward(payload) {
                        shared.logger(&dn).error(format!(
                            "a task spawned through the context of {dn} panicked after its \
                             runnable returned: {msg}"
                        ));
                        if shared.propagate_panic {
                            shared.propagate(payload);
                        }
                    }
                    std::panic::resume_unwind(Box::new(format!(
                        "panic forwarded to the supervisor: {msg}"
                    )))
                }
            }
        })
    }

    /// Starts one child in its own group (`Run`). See [`Context::run_group`].
    pub fn run(&self, name: impl Into<String>, runnable: impl Into<Runnable>) -> Result<(), Error> {
        self.run_group([(name.into(), runnable.into())])
    }

    /// Starts a group of children (`RunGroup`, see
    /// `docs/supervisor.md#starting-children-and-groups`). All names are checked before anything is
    /// created. Returns once the children exist (state New); they are started asynchronously. Fails
    /// with [`Error::NotNew`] once this node signalled Healthy, and with [`Error::StaleContext`]
    /// once this incarnation has exited.
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
                // After shutdown, children are created but never run; they end up Dead.
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

    /// Reports a lifecycle milestone (see `docs/supervisor.md#signals-healthy-and-done`).
    /// Synchronous: the tree has changed on return.
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
        if signal == Signal::Healthy && !self.shared.policy_entries.is_empty() {
            // The node can start no more children: the policy's DNs below it may be unmatched.
            self.shared.send(ProcessorMsg::PolicyCheck);
        }
        Ok(())
    }

    /// The leveled logger at this node's DN.
    pub fn logger(&self) -> Logger {
        self.shared.logger(&self.dn)
    }

    /// A logger at `<dn>.<name>`, reserving `name` so no child can take it. Asking again
    /// for the same name is fine. Fails with [`Error::StaleContext`] once this incarnation has
    /// exited.
    pub fn sub_logger(&self, name: &str) -> Result<Logger, Error> {
        self.shared
            .lock()
            .reserve_sub_logger(self.id, self.incarnation, &self.dn, name)?;
        Ok(self.shared.logger(&child_dn(&self.dn, name)))
    }
}
