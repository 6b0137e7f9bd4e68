//! Starting children only while New, and what `run_group` accepts
//! (`docs/supervisor.md#starting-children-and-groups`).

use std::future::Future;

use crate::common::*;
use supervisor::{Canceled, Context, Error, NodeState, RunResult, Runnable, Signal};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_group_after_signal_healthy_fails_with_not_new_and_creates_nothing() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let f = start(Runnable::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            let _ = tx.send(ctx.run_group([("x", waits_for_cancel()), ("y", waits_for_cancel())]));
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    }))
    .await;
    assert_eq!(got("run_group result", &mut rx).await, Err(Error::NotNew));
    assert_eq!(f.s.node_state("root.x"), None);
    assert_eq!(f.s.node_state("root.y"), None);
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_group_on_a_cancelled_new_node_still_starts_children_with_cancelled_contexts() {
    let (tx, mut rx) = mpsc::unbounded_channel::<bool>();
    let killer = Rc::new();
    let parent = Runnable::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            ctx.cancelled().await; // still New: never signalled
            ctx.run("child", move |cctx: Context| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(cctx.is_cancelled());
                    RunResult::Err(Canceled.into())
                }
            })?;
            RunResult::Err(Canceled.into())
        }
    });
    let f = start(root_running(vec![
        ("parent", parent),
        ("killer", killer.runnable()),
    ]))
    .await;
    killer.send(RcCmd::Die);
    assert!(
        got("child ran", &mut rx).await,
        "child context must start cancelled"
    );
    assert_eq!(
        f.m.first_exit("root.parent.child").await,
        NodeState::Canceled
    );
    shutdown_and_wait(&f.s).await;
}

/// A plain closure (not a `Runnable`) that reports `msg` and is Done.
fn reporter(
    tx: mpsc::UnboundedSender<&'static str>,
    msg: &'static str,
) -> impl Fn(Context) -> std::pin::Pin<Box<dyn Future<Output = RunResult> + Send>> + Send + Sync + 'static
{
    move |ctx: Context| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(msg);
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_group_accepts_closures_directly() {
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    let f = start(Runnable::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            ctx.run_group([("a", reporter(tx.clone(), "a")), ("b", reporter(tx, "b"))])?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    }))
    .await;
    let mut seen = vec![got("a", &mut rx).await, got("b", &mut rx).await];
    seen.sort();
    assert_eq!(seen, ["a", "b"]);
    f.m.wait_count("root.b", NodeState::Done, 1).await;
    f.m.wait_count("root.a", NodeState::Done, 1).await;
    shutdown_and_wait(&f.s).await;
}
