//! Shutdown (`docs/supervisor.md#shutdown-and-the-liquidator`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::*;
use supervisor::{Canceled, Context, Error, NodeState, RunResult, Runnable, Signal};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_everything_and_restarts_nothing() {
    let (ctx_tx, mut ctxs) = mpsc::unbounded_channel::<Context>();
    let runs = Arc::new(AtomicUsize::new(0));
    let (late_tx, mut late) = mpsc::unbounded_channel::<Result<(), Error>>();
    let (late_ran_tx, mut late_ran) = mpsc::unbounded_channel::<()>();
    let backoff_runs = runs.clone();
    // Dies at once, then waits out a 30 s backoff when the tree shuts down.
    let in_backoff = Runnable::new(move |_ctx: Context| {
        backoff_runs.fetch_add(1, Ordering::SeqCst);
        async move { RunResult::Err("dies at once".into()) }
    });
    let lingerer = Runnable::new(move |ctx: Context| {
        let (late_tx, late_ran_tx) = (late_tx.clone(), late_ran_tx.clone());
        async move {
            ctx.cancelled().await;
            // Adding children after shutdown succeeds, but they never run and end Dead.
            let _ = late_tx.send(ctx.run("late", move |_ctx: Context| {
                let late_ran_tx = late_ran_tx.clone();
                async move {
                    let _ = late_ran_tx.send(());
                    RunResult::Ok(())
                }
            }));
            RunResult::Err(Canceled.into())
        }
    });
    let reporter = Runnable::new(move |ctx: Context| {
        let ctx_tx = ctx_tx.clone();
        async move {
            let _ = ctx_tx.send(ctx.clone());
            ctx.signal(Signal::Healthy)?;
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let Fixture { s, m, logs } = start_with(
        // Three separate groups: in_backoff's death cancels nobody else.
        Runnable::new(move |ctx: Context| {
            let (reporter, in_backoff, lingerer) =
                (reporter.clone(), in_backoff.clone(), lingerer.clone());
            async move {
                ctx.run("reporter", reporter)?;
                ctx.run("in_backoff", in_backoff)?;
                ctx.run("lingerer", lingerer)?;
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                RunResult::Ok(())
            }
        }),
        |options| {
            options.restart_policy(
                supervisor::RestartPolicy::new(supervisor::BackoffParams {
                    initial_interval: Duration::from_secs(30),
                    max_interval: Duration::from_secs(60),
                    randomization_factor: 0.0,
                    multiplier: 1.5,
                })
                .expect("valid parameters"),
            )
        },
    )
    .await;
    let reporter_ctx = got("reporter context", &mut ctxs).await;
    // in_backoff now waits out its 30 s backoff.
    assert_eq!(wait_rescheduled(&logs, "root.in_backoff", 1).await, ["30s"]);
    m.wait_count("root.lingerer", NodeState::New, 1).await;
    // The reporter sends its context before it signals Healthy: wait for that metric too, or
    // it could land after the snapshot below.
    m.wait_count("root.reporter", NodeState::Healthy, 1).await;
    let events_before = m.events().len();
    let reschedules_before = logs
        .entries()
        .iter()
        .filter(|e| e.message.starts_with("rescheduling"))
        .count();

    s.shutdown();
    within("reporter cancelled", reporter_ctx.cancelled()).await;
    assert_eq!(got("late run result", &mut late).await, Ok(()));
    within("all runnables to exit", s.wait_stopped()).await;
    assert!(s.live_runnables().is_empty());
    assert_eq!(s.node_state("root.lingerer.late"), Some(NodeState::Dead));
    assert!(
        late_ran.try_recv().is_err(),
        "a child added after shutdown ran"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the node in backoff ran again"
    );
    assert_eq!(s.node_state("root.in_backoff"), Some(NodeState::Dead));
    assert_eq!(
        m.events().len(),
        events_before,
        "the liquidator reports no metrics"
    );
    let reschedules_after = logs
        .entries()
        .iter()
        .filter(|e| e.message.starts_with("rescheduling"))
        .count();
    assert_eq!(
        reschedules_after, reschedules_before,
        "something was restarted"
    );
    within(
        "liquidator completion",
        logs.wait_for(|e| e.message == "liquidator: complete, all runnables dead or done"),
    )
    .await;
    assert_eq!(s.wait_settled().await, Err(Error::ShutDown));
}
