//! Propagated panics (a difference from Go), and panics in tasks spawned through the context.

use std::future::Future;
use std::sync::Arc;

use crate::common::*;
use supervisor::{
    Canceled, Context, NodeState, Options, RunResult, Runnable, Severity, Signal, TestHarness,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_propagated_panic_can_be_awaited() {
    let Fixture { s, .. } = start_with(
        root_running(vec![(
            "bad",
            Runnable::new(|_ctx: Context| async move { panic!("awaited boom") }),
        )]),
        Options::propagate_panic,
    )
    .await;
    let payload = within("the panic", s.propagated_panic()).await;
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"awaited boom"));
    assert!(s.take_propagated_panic().is_none(), "taken once");
    within("all runnables to exit", s.wait_stopped()).await;
}

/// A runnable at `root.worker` that signals Healthy, spawns `helper` through its context and
/// waits for cancellation.
fn spawns_helper<F, Fut>(helper: F) -> Runnable
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let helper = Arc::new(helper);
    Runnable::new(move |ctx: Context| {
        let helper = helper.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            drop(ctx.spawn(helper()));
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    })
}

/// Under the harness (propagate-panic) a helper task's panic is re-raised by `finish`, with its
/// payload, like a panic of the runnable itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_task_spawned_through_the_context_propagates_under_the_harness() {
    quiet_runnable_panics();
    let h = TestHarness::start(root_running(vec![(
        "worker",
        spawns_helper(|| async { panic!("helper panicked") }),
    )]))
    .await
    .unwrap();
    // Handled either as a death (FATAL) or as a propagated panic (the tree shuts down).
    let s = h.supervisor();
    eventually("the panic to be handled", || {
        !fatal_at(h.logs(), "root.worker").is_empty() || s.live_runnables().is_empty()
    })
    .await;
    let err = within("finish", tokio::spawn(h.finish()))
        .await
        .expect_err("finish re-raises the helper's panic");
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"helper panicked"));
}

/// Without propagation, a helper task's panic kills its runnable's node (Dead, FATAL, restart
/// with backoff), like a panic of the runnable itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_task_spawned_through_the_context_kills_the_node() {
    let f = start(root_running(vec![(
        "worker",
        spawns_helper(|| async { panic!("helper panicked") }),
    )]))
    .await;
    assert_eq!(f.m.first_exit("root.worker").await, NodeState::Dead);
    assert_eq!(
        fatal_at(&f.logs, "root.worker")[0],
        "runnable returned error: panic: helper panicked"
    );
    f.m.wait_count("root.worker", NodeState::New, 2).await;
    shutdown_and_wait(&f.s).await;
}

/// A helper that panics after its runnable returned cannot kill that incarnation any more; the
/// panic is logged at the node's DN (and, with propagate-panic, shuts the tree down).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_helper_outliving_its_runnable_is_logged_or_propagated() {
    for propagate in [false, true] {
        let (release_tx, release) = channel::<()>();
        let root = Runnable::new(move |ctx: Context| {
            let release = release.clone();
            async move {
                drop(ctx.spawn(async move {
                    recv(&release).await;
                    panic!("late helper panic");
                }));
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                RunResult::Ok(())
            }
        });
        let Fixture { s, m, logs } = start_with(root, |options| {
            if propagate {
                options.propagate_panic()
            } else {
                options
            }
        })
        .await;
        assert_eq!(m.first_exit("root").await, NodeState::Done);
        release_tx.send(()).unwrap();
        let line = within(
            "the late panic to be logged",
            logs.wait_for(|e| e.dn == "root" && e.severity == Severity::Error),
        )
        .await;
        assert_eq!(
            line.message,
            "a task spawned through the context of root panicked after its runnable returned: \
             late helper panic"
        );
        if propagate {
            let payload = within("the panic", s.propagated_panic()).await;
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"late helper panic"));
        } else {
            assert!(s.take_propagated_panic().is_none());
        }
        shutdown_and_wait(&s).await;
    }
}
