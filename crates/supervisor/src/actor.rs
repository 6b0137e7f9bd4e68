//! Adapter for runnables that are ractor actors.
//!
//! Each incarnation spawns a small watchdog actor, which spawns the real actor linked to itself
//! and forwards its supervision events. The node signals Healthy once the actor's `pre_start`
//! succeeded; the node dies (returns an error) when the actor fails, panics, is killed or stops
//! on its own; when the node's context is cancelled the actor is stopped gracefully and the node
//! ends Canceled. An actor that does not stop within the stop timeout (stuck in a handler) is
//! killed, so its node still exits.

use std::marker::PhantomData;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::sync::{mpsc, oneshot};

use crate::context::Context;
use crate::error::{BoxError, Canceled};
use crate::runnable::Runnable;
use crate::state::Signal;

/// Why an actor-backed node exited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActorExit {
    /// `pre_start` failed or panicked.
    #[error("actor failed to start: {0}")]
    Startup(String),
    /// The actor returned an error or panicked while running.
    #[error("actor failed: {0}")]
    Failed(String),
    /// The actor was killed or stopped without its node being cancelled.
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
pub fn actor_runnable<A, F>(name: Option<String>, factory: F) -> Runnable
where
    A: Actor,
    F: Fn(&Context) -> (A, A::Arguments) + Send + Sync + 'static,
{
    actor_runnable_with_stop_timeout(name, DEFAULT_ACTOR_STOP_TIMEOUT, factory)
}

/// Like [`actor_runnable`], with the time allowed for a graceful stop before the actor is
/// killed.
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
        async move { run_actor(ctx, name, stop_timeout, factory.as_ref()).await }
    })
}

async fn run_actor<A, F>(
    ctx: Context,
    name: Option<String>,
    stop_timeout: Duration,
    factory: &F,
) -> Result<(), BoxError>
where
    A: Actor,
    F: Fn(&Context) -> (A, A::Arguments),
{
    let (actor, args) = factory(&ctx);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (cell_tx, cell_rx) = oneshot::channel();
    let (watchdog, watchdog_join) = Actor::spawn(
        None,
        Watchdog::<A>(PhantomData),
        WatchdogArgs {
            name,
            actor,
            args,
            events: events_tx,
            cell: cell_tx,
        },
    )
    .await
    .map_err(|e| ActorExit::Startup(e.to_string()))?;
    let child = cell_rx
        .await
        .map_err(|_| ActorExit::Startup("watchdog lost the actor".to_string()))?;
    ctx.signal(Signal::Healthy)?;
    let result: Result<(), BoxError> = tokio::select! {
        _ = ctx.cancelled() => {
            let reason = Some("supervisor context cancelled".to_string());
            if child.stop_and_wait(reason, Some(stop_timeout)).await.is_err() {
                ctx.logger().warning(format!(
                    "actor did not stop within {stop_timeout:?}, killing it"
                ));
                // A kill interrupts even a handler that never returns.
                let _ = child.kill_and_wait(Some(stop_timeout)).await;
            }
            Err(Canceled.into())
        }
        ev = events.recv() => Err(match ev {
            Some(exit) => exit,
            None => ActorExit::Terminated("watchdog stopped".to_string()),
        }.into()),
    };
    watchdog.stop(None);
    let _ = watchdog_join.await;
    result
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
