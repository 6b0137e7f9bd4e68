//! Metrics (`docs/supervisor.md#metrics`), and a metrics sink that panics.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use supervisor::{
    Canceled, Context, NodeState, RunResult, Runnable, SUPERVISOR_DN, Severity, Signal,
    TransitionMetrics,
};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_first_edge_is_from_dead_and_done_and_reset_report_nothing() {
    let t = Arc::new(TransitionMetrics::new());
    let (die_tx, die) = channel::<()>();
    let worker = Runnable::new(move |ctx: Context| {
        let die = die.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            step(&ctx, &die).await?;
            RunResult::Err("dies on request".into())
        }
    });
    let Fixture { s, m, logs } = start_with(root_running(vec![("worker", worker)]), |options| {
        options.metrics(t.clone())
    })
    .await;
    m.wait_count("root", NodeState::Done, 1).await;
    m.wait_count("root.worker", NodeState::Healthy, 1).await;
    assert_eq!(
        t.transition_count("root", NodeState::Dead, NodeState::New),
        1
    );
    assert_eq!(
        t.transition_count("root.worker", NodeState::Dead, NodeState::New),
        1
    );
    // SignalDone produced nothing: New, Healthy, Done.
    assert_eq!(
        m.states("root"),
        [NodeState::New, NodeState::Healthy, NodeState::Done]
    );
    assert_eq!(t.notifications("root"), 3);
    die_tx.send(()).unwrap();
    // The reset happens right after the death; New is reported only when the runnable starts,
    // after the 250 ms backoff.
    assert_eq!(wait_rescheduled(&logs, "root.worker", 1).await, ["250ms"]);
    assert_eq!(m.states("root.worker").last(), Some(&NodeState::Dead));
    m.wait_count("root.worker", NodeState::Healthy, 2).await;
    assert_eq!(
        m.states("root.worker"),
        [
            NodeState::New,
            NodeState::Healthy,
            NodeState::Dead,
            NodeState::New,
            NodeState::Healthy
        ]
    );
    assert_eq!(
        t.transition_count("root.worker", NodeState::Dead, NodeState::New),
        2
    );
    assert_eq!(t.gauge("root.worker", NodeState::Healthy), 1);
    shutdown_and_wait(&s).await;
}

/// A recording sink that panics when `root.x` is reported Dead.
struct PanicsOnDead(Arc<Recording>);

impl supervisor::Metrics for PanicsOnDead {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        supervisor::Metrics::notify_node_state(self.0.as_ref(), dn, state);
        if dn == "root.x" && state == NodeState::Dead {
            panic!("metrics sink exploded");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_metrics_sink_neither_stops_restarts_nor_shutdown() {
    quiet_runnable_panics();
    let (cancelled_tx, mut cancelled) = mpsc::unbounded_channel::<&'static str>();
    let attempts = Arc::new(AtomicUsize::new(0));
    let x = Runnable::new(move |ctx: Context| {
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            if attempt == 0 {
                return RunResult::Err("x fails once".into());
            }
            ctx.signal(Signal::Healthy)?;
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let y = Runnable::new(move |ctx: Context| {
        let cancelled_tx = cancelled_tx.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            ctx.cancelled().await;
            let _ = cancelled_tx.send("y cancelled");
            RunResult::Err(Canceled.into())
        }
    });
    let root = Runnable::new(move |ctx: Context| {
        let (x, y) = (x.clone(), y.clone());
        async move {
            ctx.run("x", x)?;
            ctx.run("y", y)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    // A sink of its own (the fixture's records every state, and does not panic).
    let rec = Arc::new(Recording::default());
    let Fixture { s, logs, .. } = start_with(root, |options| {
        options.metrics(Arc::new(PanicsOnDead(rec.clone())))
    })
    .await;
    // x died (the sink panicked on it) and was still restarted.
    rec.wait_count("root.x", NodeState::Healthy, 1).await;
    assert_eq!(
        rec.states("root.x"),
        [
            NodeState::New,
            NodeState::Dead,
            NodeState::New,
            NodeState::Healthy
        ]
    );
    assert!(
        logs.entries_at(SUPERVISOR_DN).iter().any(|e| e.message
            == "metrics sink panicked on root.x = NODE_STATE_DEAD: metrics sink exploded"
            && e.severity == Severity::Error),
        "{:?}",
        logs.entries_at(SUPERVISOR_DN)
    );
    within("settle", s.wait_settled()).await.unwrap();
    s.shutdown();
    assert_eq!(got("y cancelled", &mut cancelled).await, "y cancelled");
    within("all runnables to exit", s.wait_stopped()).await;
}
