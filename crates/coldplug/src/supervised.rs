//! Coldplug as a node of the supervision tree.

use listener::ListenerMsg;
use ractor::{Actor, ActorRef};
use supervisor::{Canceled, Context, RunResult, Runnable, Signal};

use crate::actor::{Coldplug, ColdplugArgs, ColdplugConfig};
use crate::pass::PassReport;

/// A runnable that replays every device, for a node such as `root.devmgr.coldplug`.
///
/// It needs the listener registered in ractor's registry as `listener_name` (a listener node
/// started with `actor_runnable(Some(name), ..)`); without it, it fails, and the supervisor retries
/// with backoff, so coldplug never writes before a socket listens (see
/// `docs/uevents.md#starting-after-the-listener`). It signals Healthy once the coldplug actor has
/// subscribed, and Done once the replay has settled (or given up); it then stays, replaying the
/// devices module loading depends on (see [`ColdplugConfig::resync_also`]) on every listener
/// `Resync`, until its context is cancelled. If the actor dies, the node dies (and is restarted,
/// which replays everything again).
pub fn runnable(listener_name: impl Into<String>, config: ColdplugConfig) -> Runnable {
    let listener_name = listener_name.into();
    Runnable::new(move |ctx: Context| run(ctx, listener_name.clone(), config.clone(), None))
}

/// The body of [`runnable`], for runnables that do more around it; `reports` (if any) receives
/// the report of the coldplug pass once it ends.
pub async fn run(
    ctx: Context,
    listener_name: String,
    config: ColdplugConfig,
    reports: Option<tokio::sync::watch::Sender<Option<PassReport>>>,
) -> RunResult {
    let listener = ActorRef::<ListenerMsg>::where_is(listener_name.clone())
        .ok_or_else(|| format!("no listener registered as {listener_name:?}"))?;
    run_with_listener(ctx, listener, config, reports).await
}

/// Like [`run`], with the listener to subscribe to given rather than looked up by name: for a
/// caller that has already made sure it is the right one (e.g. the one another subscriber of
/// its group listens to), which a second lookup by name might no longer return.
pub async fn run_with_listener(
    ctx: Context,
    listener: ActorRef<ListenerMsg>,
    config: ColdplugConfig,
    reports: Option<tokio::sync::watch::Sender<Option<PassReport>>>,
) -> RunResult {
    let (settled_tx, settled) = tokio::sync::oneshot::channel::<PassReport>();
    let name = config.actor_name.clone();
    let args = ColdplugArgs {
        config,
        listener,
        on_settled: Some(Box::new(move |report: &PassReport| {
            let _ = settled_tx.send(report.clone());
        })),
    };
    let (actor, mut stopped) = Actor::spawn(name, Coldplug, args)
        .await
        .map_err(|err| format!("coldplug actor did not start: {err}"))?;
    ctx.signal(Signal::Healthy)?;

    tokio::select! {
        report = settled => {
            if let Ok(report) = report {
                if let Some(reports) = &reports {
                    reports.send_replace(Some(report.clone()));
                }
                ctx.logger().info(format!(
                    "coldplug settled={} devices={} written={} answered={} gone={} failed={} unanswered={} elapsed={:?}",
                    report.settled, report.devices, report.written, report.answered,
                    report.gone, report.failed.len(), report.unanswered.len(), report.elapsed,
                ));
            }
            ctx.signal(Signal::Done)?;
        }
        _ = ctx.cancelled() => {
            actor.stop(Some("supervisor context cancelled".into()));
            let _ = stopped.await;
            return Err(Canceled.into());
        }
        _ = &mut stopped => return Err("coldplug actor stopped before settling".into()),
    }

    tokio::select! {
        _ = ctx.cancelled() => {
            actor.stop(Some("supervisor context cancelled".into()));
            let _ = stopped.await;
            Err(Canceled.into())
        }
        _ = &mut stopped => Err("coldplug actor stopped".into()),
    }
}
