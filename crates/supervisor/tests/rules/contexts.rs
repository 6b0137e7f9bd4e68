//! Contexts: stale contexts of exited runs and earlier incarnations (a difference from Go,
//! `docs/supervisor.md#differences-from-the-go-supervisor`), derived tokens.

use crate::common::*;
use supervisor::{Canceled, Context, Error, NodeState, RunResult, Runnable, Signal};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_context_from_an_earlier_incarnation_gets_an_error() {
    let (ctx_tx, mut ctxs) = mpsc::unbounded_channel::<Context>();
    let killer = Rc::new();
    let target = Runnable::new(move |ctx: Context| {
        let ctx_tx = ctx_tx.clone();
        async move {
            let _ = ctx_tx.send(ctx.clone());
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let f = start(root_running(vec![
        ("target", target),
        ("killer", killer.runnable()),
    ]))
    .await;
    let first = got("first context", &mut ctxs).await;
    killer.send(RcCmd::Die);
    let second = got("second context", &mut ctxs).await;
    let stale = Error::StaleContext {
        dn: "root.target".into(),
        incarnation: 0,
    };
    assert_eq!(first.signal(Signal::Healthy), Err(stale.clone()));
    assert_eq!(first.run("x", waits_for_cancel()), Err(stale.clone()));
    assert_eq!(first.sub_logger("log").map(|_| ()), Err(stale));
    // The new incarnation was not affected.
    assert_eq!(f.s.node_state("root.target"), Some(NodeState::New));
    assert_eq!(f.s.node_state("root.target.x"), None);
    second.signal(Signal::Healthy).unwrap();
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_token_follows_the_context_but_cannot_cancel_it() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let f = start(root_running(vec![(
        "worker",
        Runnable::new(move |ctx: Context| {
            let tx = tx.clone();
            async move {
                let own = ctx.child_token();
                own.cancel();
                let derived = ctx.child_token();
                let _ = tx.send((ctx.is_cancelled(), derived.is_cancelled()));
                ctx.signal(Signal::Healthy)?;
                derived.cancelled().await; // released by the node's cancellation
                let _ = tx.send((ctx.is_cancelled(), derived.is_cancelled()));
                RunResult::Err(Canceled.into())
            }
        }),
    )]))
    .await;
    assert_eq!(got("before", &mut rx).await, (false, false));
    f.s.shutdown();
    assert_eq!(got("after shutdown", &mut rx).await, (true, true));
    within("stop", f.s.wait_stopped()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_whose_run_has_exited_is_stale_even_before_a_restart() {
    let (ctx_tx, mut ctxs) = mpsc::unbounded_channel::<Context>();
    let target = Runnable::new(move |ctx: Context| {
        let ctx_tx = ctx_tx.clone();
        async move {
            // A "helper" keeps a clone past the end of the run.
            let _ = ctx_tx.send(ctx.clone());
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let f = start(root_running(vec![("target", target)])).await;
    let kept = got("the context", &mut ctxs).await;
    // Done: exited, and never restarted (nothing cancels it).
    f.m.wait_count("root.target", NodeState::Done, 1).await;
    let stale = Error::StaleContext {
        dn: "root.target".into(),
        incarnation: 0,
    };
    assert_eq!(kept.signal(Signal::Healthy), Err(stale.clone()));
    assert_eq!(kept.signal(Signal::Done), Err(stale.clone()));
    assert_eq!(kept.run("x", waits_for_cancel()), Err(stale.clone()));
    assert_eq!(kept.sub_logger("log").map(|_| ()), Err(stale));
    assert_eq!(f.s.node_state("root.target"), Some(NodeState::Done));
    assert_eq!(f.s.node_state("root.target.x"), None);
    shutdown_and_wait(&f.s).await;
}
