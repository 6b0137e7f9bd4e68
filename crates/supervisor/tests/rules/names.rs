//! Names: valid, unique, not reserved (`docs/supervisor.md#names-and-dns`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::*;
use supervisor::{Canceled, Context, Error, NodeState, RunResult, Runnable, Signal};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_check_rejects_empty_uppercase_and_dotted_names_and_accepts_one_sibling() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let f = start(Runnable::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            for name in ["", "ABC", "a.b", "oneSibling"] {
                let _ = tx.send((name, ctx.run(name, waits_for_cancel())));
            }
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    }))
    .await;
    let mut results = Vec::new();
    for _ in 0..4 {
        results.push(got("result", &mut rx).await);
    }
    assert_eq!(
        results,
        [
            ("", Err(Error::InvalidName(String::new()))),
            ("ABC", Err(Error::InvalidName("ABC".into()))),
            ("a.b", Err(Error::InvalidName("a.b".into()))),
            ("oneSibling", Ok(())),
        ]
    );
    eventually("only oneSibling live", || {
        f.s.live_runnables() == ["root.oneSibling"]
    })
    .await;
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_child_name_fails_and_creates_no_other_group_member() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let f = start(Runnable::new(move |ctx: Context| {
        let tx = tx.clone();
        async move {
            ctx.run("x", waits_for_cancel())?;
            let _ = tx.send(ctx.run_group([("y", waits_for_cancel()), ("x", waits_for_cancel())]));
            let _ = tx.send(ctx.run_group([("z", waits_for_cancel()), ("z", waits_for_cancel())]));
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    }))
    .await;
    assert_eq!(
        got("r1", &mut rx).await,
        Err(Error::AlreadyExists("x".into()))
    );
    assert_eq!(
        got("r2", &mut rx).await,
        Err(Error::DuplicateChildName("z".into()))
    );
    within("settle", f.s.wait_settled()).await.unwrap();
    assert_eq!(f.s.node_state("root.y"), None);
    assert_eq!(f.s.node_state("root.z"), None);
    assert_eq!(f.s.live_runnables(), ["root.x"]);
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_childs_name_cannot_be_reused_until_the_parent_restarts() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (release_tx, release) = channel::<()>();
    let attempt = Arc::new(AtomicUsize::new(0));
    let done_child = Runnable::new(|ctx: Context| async move {
        ctx.signal(Signal::Healthy)?;
        ctx.signal(Signal::Done)?;
        RunResult::Ok(())
    });
    let parent = Runnable::new(move |ctx: Context| {
        let (tx, release, done_child) = (tx.clone(), release.clone(), done_child.clone());
        let n = attempt.fetch_add(1, Ordering::SeqCst);
        async move {
            let first = ctx.run("x", done_child.clone());
            let _ = tx.send((n, first));
            if n > 0 {
                ctx.cancelled().await;
                return RunResult::Err(Canceled.into());
            }
            step(&ctx, &release).await?;
            let _ = tx.send((n, ctx.run("x", done_child)));
            RunResult::Err("parent fails to get restarted".into())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    assert_eq!(got("first run", &mut rx).await, (0, Ok(())));
    f.m.wait_count("root.parent.x", NodeState::Done, 1).await;
    release_tx.send(()).unwrap();
    assert_eq!(
        got("re-use in same incarnation", &mut rx).await,
        (0, Err(Error::AlreadyExists("x".into())))
    );
    assert_eq!(got("after restart", &mut rx).await, (1, Ok(())));
    shutdown_and_wait(&f.s).await;
}
