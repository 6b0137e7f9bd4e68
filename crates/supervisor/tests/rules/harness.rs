//! The test harness: propagating panics and reporting errors of the tree it runs.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::*;
use supervisor::{
    Canceled, Context, NodeState, RunResult, Runnable, Severity, Signal, TestHarness,
};
use tokio::sync::mpsc;

/// A harness whose only child, `root.bad`, panicked with `message`; returned once that panic
/// (propagated) has shut the tree down.
async fn harness_shut_down_by_a_panic(message: &'static str) -> TestHarness {
    quiet_runnable_panics();
    let h = TestHarness::start(root_running(vec![(
        "bad",
        // The payload stays a `&'static str`, as `panic!("literal")` makes it.
        Runnable::new(move |_ctx: Context| async move { std::panic::panic_any(message) }),
    )]))
    .await
    .expect("harness starts");
    let s = h.supervisor();
    eventually("the panic to shut the tree down", || {
        s.node_state("root.bad") == Some(NodeState::Dead) && s.live_runnables().is_empty()
    })
    .await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_propagates_a_runnable_panic_to_the_test() {
    // The panic shuts the tree down by itself; finish then re-raises it.
    let h = harness_shut_down_by_a_panic("propagated boom").await;
    let err = tokio::spawn(h.finish()).await.unwrap_err();
    assert!(err.is_panic());
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"propagated boom"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_reports_errors_returned_by_its_runnable() {
    let h = TestHarness::start(|ctx: Context| async move {
        ctx.signal(Signal::Healthy)?;
        ctx.signal(Signal::Done)?;
        RunResult::Err("harnessed failure".into())
    })
    .await
    .unwrap();
    within(
        "the root to die",
        h.logs()
            .wait_for(|e| e.dn == "root" && e.severity == Severity::Fatal),
    )
    .await;
    let starting = h.logs().entries_at("root");
    assert!(
        starting[0].message.starts_with("Starting test "),
        "{starting:?}"
    );
    let err = tokio::spawn(h.finish()).await.unwrap_err();
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        msg.contains("Supervised runnable in harness returned error: harnessed failure"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_reraises_a_panic_while_a_runnable_still_ignores_cancellation() {
    quiet_runnable_panics();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stubborn_tx, mut stubborn_running) = mpsc::unbounded_channel::<()>();
    let stubborn = {
        let stop = stop.clone();
        Runnable::new(move |_ctx: Context| {
            let (stop, stubborn_tx) = (stop.clone(), stubborn_tx.clone());
            async move {
                let _ = stubborn_tx.send(());
                // Ignores cancellation until the test lets it go.
                while !stop.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                RunResult::Err(Canceled.into())
            }
        })
    };
    let (go_tx, go) = channel::<()>();
    let bad = Runnable::new(move |_ctx: Context| {
        let go = go.clone();
        async move {
            recv(&go).await;
            panic!("boom beside a stubborn one")
        }
    });
    let h = TestHarness::start(root_running(vec![("stubborn", stubborn), ("bad", bad)]))
        .await
        .unwrap();
    got("stubborn running", &mut stubborn_running).await;
    go_tx.send(()).unwrap();
    // The panic is in before `finish` shuts the tree down (a shutdown first could cancel
    // `bad` before it panics, and then `stubborn` would hold `finish` forever).
    {
        let s = h.supervisor();
        eventually("bad to die of its panic", || {
            s.node_state("root.bad") == Some(NodeState::Dead)
        })
        .await;
    }
    let err = within("finish to re-raise the panic", tokio::spawn(h.finish()))
        .await
        .expect_err("finish must re-raise the panic");
    let payload = err.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"boom beside a stubborn one")
    );
    stop.store(true, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_harness_without_finish_reraises_the_panic() {
    let h = harness_shut_down_by_a_panic("dropped boom").await;
    let err = tokio::spawn(async move { drop(h) })
        .await
        .expect_err("dropping must re-raise the panic");
    assert_eq!(
        err.into_panic().downcast_ref::<&str>(),
        Some(&"dropped boom")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_harness_without_finish_reports_errors() {
    let h =
        TestHarness::start(|_ctx: Context| async move { RunResult::Err("dropped failure".into()) })
            .await
            .unwrap();
    within(
        "the root to die",
        h.logs()
            .wait_for(|e| e.dn == "root" && e.severity == Severity::Fatal),
    )
    .await;
    let err = tokio::spawn(async move { drop(h) })
        .await
        .expect_err("dropping must report the error");
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        msg.contains("TestHarness dropped without finish()")
            && msg.contains("returned error: dropped failure"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_reports_a_canceled_error_returned_while_the_context_is_live() {
    let h = TestHarness::start(|_ctx: Context| async move { RunResult::Err(Canceled.into()) })
        .await
        .unwrap();
    within(
        "the root to die",
        h.logs()
            .wait_for(|e| e.dn == "root" && e.severity == Severity::Fatal),
    )
    .await;
    let err = tokio::spawn(h.finish())
        .await
        .expect_err("finish must report the error");
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        msg.contains("Supervised runnable in harness returned error: context canceled"),
        "{msg}"
    );
}
