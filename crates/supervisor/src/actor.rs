//! Adapter for runnables that are ractor actors: each incarnation spawns a small watchdog
//! actor, which spawns the real actor linked to itself and forwards its supervision events.
//! The rules (Healthy, Done, death, stop and kill, panics) are in
//! `docs/supervisor.md#actors-under-supervision`.

use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot};

use crate::context::Context;
use crate::error::{BoxError, Canceled};
use crate::runnable::{CatchUnwind, PanicPayload, Runnable, panic_message};
use crate::state::Signal;
use crate::watch::{WatchSlot, Watched};

/// Why an actor-backed node exited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorExit {
    /// `pre_start` failed.
    #[error("actor failed to start: {0}")]
    Startup(String),
    /// The actor returned an error while running.
    #[error("actor failed: {0}")]
    Failed(String),
    /// The actor was killed, or stopped without its node being cancelled and without having
    /// signalled Done.
    #[error("actor terminated: {0}")]
    Terminated(String),
}

/// How long [`actor_runnable`] waits for a graceful stop after its node's context was cancelled
/// before it kills the actor.
pub const DEFAULT_ACTOR_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A runnable that runs an actor. `factory` builds the actor and its arguments for each
/// incarnation; `name` (if any) is registered in ractor's registry, so a restarted actor is found
/// again under the same name. On cancellation the actor is stopped gracefully and killed if it
/// has not stopped after [`DEFAULT_ACTOR_STOP_TIMEOUT`].
///
/// The factory receives the node's context. An actor that keeps a clone of it can signal
/// [`Signal::Done`] (after `pre_start`, since the node is Healthy only then) and stop itself:
/// its node then ends Done instead of Dead.
pub fn actor_runnable<A, F>(name: Option<String>, factory: F) -> Runnable
where
    A: Actor,
    F: Fn(&Context) -> (A, A::Arguments) + Send + Sync + 'static,
{
    actor_runnable_with_stop_timeout(name, DEFAULT_ACTOR_STOP_TIMEOUT, factory)
}

/// Like [`actor_runnable`], with the time allowed for a graceful stop before the actor is
/// killed (and between warnings while a killed actor has not stopped yet).
pub fn actor_runnable_with_stop_timeout<A, F>(
    name: Option<String>,
    stop_timeout: Duration,
    factory: F,
) -> Runnable
where
    A: Actor,
    F: Fn(&Context) -> (A, A::Arguments) + Send + Sync + 'static,
{
    let factory = std::sync::Arc::new(factory);
    Runnable::new(move |ctx: Context| {
        let factory = factory.clone();
        let name = name.clone();
        async move { run_actor(ctx, name, stop_timeout, factory.as_ref(), |_| {}).await }
    })
}

/// The first panic caught in an actor's callbacks.
type PanicCell = Arc<Mutex<Option<PanicPayload>>>;

/// Raises the actor's panic, if it had one, in the calling runnable.
fn raise_panic(panic: &PanicCell) {
    let payload = match panic.lock() {
        Ok(mut g) => g.take(),
        Err(p) => p.into_inner().take(),
    };
    if let Some(payload) = payload {
        std::panic::resume_unwind(payload);
    }
}

async fn run_actor<A, F>(
    ctx: Context,
    name: Option<String>,
    stop_timeout: Duration,
    factory: &F,
    on_watchdog: impl FnOnce(&ActorRef<()>),
) -> Result<(), BoxError>
where
    A: Actor,
    F: Fn(&Context) -> (A, A::Arguments),
{
    let (actor, args) = factory(&ctx);
    let panic = PanicCell::default();
    let actor = Guarded {
        inner: actor,
        panic: panic.clone(),
        slot: ctx.watch_slot("actor of"),
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (cell_tx, cell_rx) = oneshot::channel();
    let spawned = Actor::spawn(
        None,
        Watchdog::<Guarded<A>>(PhantomData),
        WatchdogArgs {
            name,
            actor,
            args,
            events: events_tx,
            cell: cell_tx,
        },
    )
    .await;
    let (watchdog, watchdog_join) = match spawned {
        Ok(w) => w,
        Err(e) => {
            raise_panic(&panic);
            return Err(ActorExit::Startup(e.to_string()).into());
        }
    };
    // Should this future be dropped or unwind before the actor is gone (the run was aborted),
    // kill the watchdog, which kills the actor (best effort: nothing can wait here).
    let mut kill_on_drop = KillOnDrop(Some(watchdog.get_cell()));
    on_watchdog(&watchdog);
    let Ok(child) = cell_rx.await else {
        watchdog.stop(None);
        let _ = watchdog_join.await;
        raise_panic(&panic);
        return Err(ActorExit::Startup("watchdog lost the actor".to_string()).into());
    };
    let result: Result<(), BoxError> = match ctx.signal(Signal::Healthy) {
        Err(e) => {
            // Stale context: the run is over already; do not leave the actor behind.
            child.stop(None);
            Err(e.into())
        }
        Ok(()) => tokio::select! {
            _ = ctx.cancelled() => {
                let reason = Some("supervisor context cancelled".to_string());
                if child.stop_and_wait(reason, Some(stop_timeout)).await.is_err() {
                    ctx.logger().warning(format!(
                        "actor did not stop within {stop_timeout:?}, killing it"
                    ));
                    // A kill interrupts a handler at its next await point.
                    child.kill();
                }
                Err(Canceled.into())
            }
            ev = events.recv() => match ev {
                // Signalled Done, then stopped (not failed): like a runnable returning Ok.
                Some(ActorExit::Terminated(_)) if ctx.signaled_done() => Ok(()),
                Some(exit) => Err(exit.into()),
                None => {
                    // The watchdog stopped (it kills its child as it goes).
                    child.kill();
                    Err(ActorExit::Terminated("watchdog stopped".to_string()).into())
                }
            },
        },
    };
    // Never let the node exit (and a new incarnation start) while the actor runs.
    while child.wait(Some(stop_timeout)).await.is_err() {
        child.kill();
        ctx.logger().warning(format!(
            "actor still running {stop_timeout:?} after it was told to stop (a handler that \
             blocks its thread cannot be interrupted); the node exits once the actor has stopped"
        ));
    }
    watchdog.stop(None);
    let _ = watchdog_join.await;
    kill_on_drop.0 = None;
    raise_panic(&panic);
    result
}

struct KillOnDrop(Option<ActorCell>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(cell) = self.0.take() {
            cell.kill();
        }
    }
}

/// The user's actor, with every callback guarded against panics (kept in `panic` and turned
/// into an error, so that ractor stops the actor) and timed for the blocked-poll check.
struct Guarded<A> {
    inner: A,
    panic: PanicCell,
    slot: Option<WatchSlot>,
}

impl<A: Actor> Guarded<A> {
    async fn guard<T, Fut>(&self, call: impl FnOnce() -> Fut) -> Result<T, ActorProcessingErr>
    where
        Fut: Future<Output = Result<T, ActorProcessingErr>>,
    {
        let fut = match catch_unwind(AssertUnwindSafe(call)) {
            Ok(fut) => fut,
            Err(payload) => return Err(self.caught(payload)),
        };
        match CatchUnwind::new(Watched::new(fut, self.slot.clone())).await {
            Ok(result) => result,
            Err(payload) => Err(self.caught(payload)),
        }
    }

    fn caught(&self, payload: PanicPayload) -> ActorProcessingErr {
        let msg = format!("panic: {}", panic_message(&payload));
        let mut slot = match self.panic.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if slot.is_none() {
            *slot = Some(payload);
        }
        msg.into()
    }
}

impl<A: Actor> Actor for Guarded<A> {
    type Msg = A::Msg;
    type State = A::State;
    type Arguments = A::Arguments;

    async fn pre_start(
        &self,
        me: ActorRef<A::Msg>,
        args: A::Arguments,
    ) -> Result<A::State, ActorProcessingErr> {
        self.guard(|| self.inner.pre_start(me, args)).await
    }

    async fn post_start(
        &self,
        me: ActorRef<A::Msg>,
        st: &mut A::State,
    ) -> Result<(), ActorProcessingErr> {
        self.guard(|| self.inner.post_start(me, st)).await
    }

    async fn handle(
        &self,
        me: ActorRef<A::Msg>,
        msg: A::Msg,
        st: &mut A::State,
    ) -> Result<(), ActorProcessingErr> {
        self.guard(|| self.inner.handle(me, msg, st)).await
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<A::Msg>,
        event: SupervisionEvent,
        st: &mut A::State,
    ) -> Result<(), ActorProcessingErr> {
        self.guard(|| self.inner.handle_supervisor_evt(me, event, st))
            .await
    }

    async fn post_stop(
        &self,
        me: ActorRef<A::Msg>,
        st: &mut A::State,
    ) -> Result<(), ActorProcessingErr> {
        self.guard(|| self.inner.post_stop(me, st)).await
    }
}

struct Watchdog<A>(PhantomData<fn() -> A>);

struct WatchdogArgs<A: Actor> {
    name: Option<String>,
    actor: A,
    args: A::Arguments,
    events: mpsc::UnboundedSender<ActorExit>,
    cell: oneshot::Sender<ActorCell>,
}

struct WatchdogState {
    events: mpsc::UnboundedSender<ActorExit>,
}

impl<A: Actor> Actor for Watchdog<A> {
    type Msg = ();
    type State = WatchdogState;
    type Arguments = WatchdogArgs<A>;

    async fn pre_start(
        &self,
        me: ActorRef<()>,
        a: WatchdogArgs<A>,
    ) -> Result<WatchdogState, ActorProcessingErr> {
        let (child, _join) = Actor::spawn_linked(a.name, a.actor, a.args, me.get_cell()).await?;
        let _ = a.cell.send(child.get_cell());
        Ok(WatchdogState { events: a.events })
    }

    async fn handle_supervisor_evt(
        &self,
        _me: ActorRef<()>,
        event: SupervisionEvent,
        st: &mut WatchdogState,
    ) -> Result<(), ActorProcessingErr> {
        let exit = match event {
            SupervisionEvent::ActorFailed(_, err) => ActorExit::Failed(err.to_string()),
            SupervisionEvent::ActorTerminated(_, _, reason) => {
                ActorExit::Terminated(reason.unwrap_or_else(|| "stopped".to_string()))
            }
            _ => return Ok(()),
        };
        let _ = st.events.send(exit);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::error::RunResult;
    use crate::logging::{LogRecorder, Severity};
    use crate::metrics::InMemoryMetrics;
    use crate::state::NodeState;
    use crate::supervisor::{Options, Supervisor};

    const WAIT: Duration = Duration::from_secs(10);

    /// Reports its reference from `pre_start`; a message blocks its thread until the flag is
    /// set (no await point, so a kill cannot interrupt it).
    struct Blocker {
        started: mpsc::UnboundedSender<ActorRef<Arc<AtomicBool>>>,
        blocking: mpsc::UnboundedSender<()>,
    }

    impl Actor for Blocker {
        type Msg = Arc<AtomicBool>;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            me: ActorRef<Self::Msg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            let _ = self.started.send(me);
            Ok(())
        }

        async fn handle(
            &self,
            _me: ActorRef<Self::Msg>,
            release: Arc<AtomicBool>,
            _st: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            let _ = self.blocking.send(());
            while !release.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(())
        }
    }

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
        let wait = async {
            while !cond() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        if tokio::time::timeout(WAIT, wait).await.is_err() {
            panic!("timed out waiting for {what}");
        }
    }

    async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(v)) => v,
            _ => panic!("nothing received"),
        }
    }

    /// When the watchdog stops (its event channel closes), the node ends Dead, but only once
    /// the actor it watched is gone: here the actor is blocked in a handler, so the node waits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_watchdog_ends_the_node_only_once_the_actor_is_gone() {
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let (blocking_tx, mut blocking) = mpsc::unbounded_channel();
        let (watchdog_tx, mut watchdogs) = mpsc::unbounded_channel();
        let probe = Runnable::new(move |ctx: Context| {
            let (started, blocking) = (started_tx.clone(), blocking_tx.clone());
            let watchdog_tx = watchdog_tx.clone();
            async move {
                let factory = move |_ctx: &Context| {
                    (
                        Blocker {
                            started: started.clone(),
                            blocking: blocking.clone(),
                        },
                        (),
                    )
                };
                run_actor(ctx, None, Duration::from_millis(100), &factory, |w| {
                    let _ = watchdog_tx.send(w.clone());
                })
                .await
            }
        });
        let metrics = Arc::new(InMemoryMetrics::new());
        let logs = LogRecorder::new();
        let s = Supervisor::new(
            move |ctx: Context| {
                let probe = probe.clone();
                async move {
                    ctx.run("probe", probe)?;
                    ctx.signal(Signal::Healthy)?;
                    ctx.signal(Signal::Done)?;
                    RunResult::Ok(())
                }
            },
            Options::new()
                .metrics(metrics.clone())
                .log_recorder(logs.clone()),
        )
        .await
        .expect("supervisor starts");
        let actor = next(&mut started).await;
        let watchdog = next(&mut watchdogs).await;
        eventually("probe healthy", || {
            metrics.state("root.probe") == Some(NodeState::Healthy)
        })
        .await;
        let release = SetOnDrop(Arc::new(AtomicBool::new(false)));
        actor
            .send_message(release.0.clone())
            .expect("actor takes the message");
        next(&mut blocking).await;
        watchdog.kill();
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            metrics.state("root.probe"),
            Some(NodeState::Healthy),
            "the node exited while its actor still runs"
        );
        assert_eq!(actor.get_status(), ractor::ActorStatus::Running);
        drop(release);
        eventually("probe dead", || {
            metrics.state("root.probe") == Some(NodeState::Dead)
        })
        .await;
        assert_eq!(actor.get_status(), ractor::ActorStatus::Stopped);
        let fatal: Vec<_> = logs
            .entries_at("root.probe")
            .into_iter()
            .filter(|e| e.severity == Severity::Fatal)
            .map(|e| e.message)
            .collect();
        assert_eq!(
            fatal,
            ["runnable returned error: actor terminated: watchdog stopped"]
        );
        s.shutdown();
        tokio::time::timeout(WAIT, s.wait_stopped())
            .await
            .expect("stops");
    }
}
