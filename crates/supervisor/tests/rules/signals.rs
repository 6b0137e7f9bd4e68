//! Signal misuse (`docs/supervisor.md#signals-healthy-and-done`).

use crate::common::*;
use supervisor::{Canceled, Context, NodeState, RunResult, Runnable, Signal};
use tokio::sync::mpsc;

async fn misuse(signals: &'static [Signal]) -> Vec<String> {
    let target = Runnable::new(move |ctx: Context| async move {
        for s in signals {
            ctx.signal(*s)?;
        }
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    });
    let f = start(root_running(vec![("target", target)])).await;
    assert_eq!(f.m.first_exit("root.target").await, NodeState::Dead);
    let fatal = fatal_at(&f.logs, "root.target");
    shutdown_and_wait(&f.s).await;
    fatal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_healthy_twice_panics_and_the_node_dies() {
    assert_eq!(
        misuse(&[Signal::Healthy, Signal::Healthy]).await[0],
        "runnable returned error: panic: node root.target (NODE_STATE_HEALTHY) signaled healthy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_done_before_healthy_panics_and_the_node_dies() {
    assert_eq!(
        misuse(&[Signal::Done]).await[0],
        "runnable returned error: panic: node root.target (NODE_STATE_NEW) signaled done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_done_twice_panics_and_the_node_dies() {
    assert_eq!(
        misuse(&[Signal::Healthy, Signal::Done, Signal::Done]).await[0],
        "runnable returned error: panic: node root.target (NODE_STATE_HEALTHY) signaled done twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signalling_healthy_on_a_cancelled_context_succeeds() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let killer = Rc::new();
    let target = Runnable::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            ctx.cancelled().await;
            let _ = tx.send(ctx.signal(Signal::Healthy));
            RunResult::Err(Canceled.into())
        }
    });
    let f = start(root_running(vec![
        ("target", target),
        ("killer", killer.runnable()),
    ]))
    .await;
    f.m.wait_count("root.target", NodeState::New, 1).await;
    killer.send(RcCmd::Die);
    assert_eq!(got("signal result", &mut rx).await, Ok(()));
    assert_eq!(f.m.first_exit("root.target").await, NodeState::Canceled);
    assert_eq!(
        &f.m.states("root.target")[..3],
        [NodeState::New, NodeState::Healthy, NodeState::Canceled]
    );
    shutdown_and_wait(&f.s).await;
}
