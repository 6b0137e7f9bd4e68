//! How an exit is classified, and in which order; success without Done is Dead
//! (`docs/supervisor.md#how-an-exit-is-classified`).

use crate::common::*;
use supervisor::{BoxError, Canceled, Context, NodeState, RunResult, Runnable, Signal};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_without_done_on_a_live_context_is_dead_and_cancels_the_sibling() {
    let (d_tx, mut d_rx) = mpsc::unbounded_channel();
    let (h_tx, _h_rx) = mpsc::unbounded_channel();
    let (release_tx, release) = channel::<()>();
    let quitter = Runnable::new(move |ctx: Context| {
        let release = release.clone();
        async move {
            step(&ctx, &release).await?;
            RunResult::Ok(())
        }
    });
    let f = start(root_running(vec![
        ("quitter", quitter),
        ("sibling", becomes_healthy(h_tx, d_tx)),
    ]))
    .await;
    release_tx.send(()).unwrap();
    assert_eq!(f.m.first_exit("root.quitter").await, NodeState::Dead);
    got("sibling cancelled", &mut d_rx).await;
    assert_eq!(
        fatal_at(&f.logs, "root.quitter"),
        ["runnable returned error: returned nil when NODE_STATE_NEW"]
    );
    assert_eq!(
        wait_rescheduled(&f.logs, "root.quitter", 1).await,
        ["250ms"]
    );
    assert_eq!(wait_rescheduled(&f.logs, "root.sibling", 1).await, ["0s"]);
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_without_done_after_cancellation_is_dead_not_canceled() {
    let killer = Rc::new();
    let quitter = Runnable::new(|ctx: Context| async move {
        ctx.signal(Signal::Healthy)?;
        ctx.cancelled().await;
        RunResult::Ok(())
    });
    let f = start(root_running(vec![
        ("quitter", quitter),
        ("killer", killer.runnable()),
    ]))
    .await;
    f.m.wait_count("root.quitter", NodeState::Healthy, 1).await;
    killer.send(RcCmd::Die);
    assert_eq!(f.m.first_exit("root.quitter").await, NodeState::Dead);
    assert_eq!(
        fatal_at(&f.logs, "root.quitter"),
        ["runnable returned error: returned nil when NODE_STATE_HEALTHY"]
    );
    assert_eq!(
        wait_rescheduled(&f.logs, "root.quitter", 1).await,
        ["250ms"]
    );
    shutdown_and_wait(&f.s).await;
}

/// How the target ends after signalling.
#[derive(Clone, Copy)]
enum Ending {
    DoneThenError,
    DoneThenPanic,
    DoneThenCanceledAfterCancel,
    WrappedCanceledAfterCancel,
    IoWrappedCanceledAfterCancel,
    ForeignCanceledWhileLive,
}

#[derive(Debug, thiserror::Error)]
#[error("shutting down: {0}")]
struct Wrapped(#[source] Canceled);

/// Runs `target` (ending as told) in a group with a killer, and returns its first exit state.
async fn first_exit_of(ending: Ending) -> NodeState {
    let killer = Rc::new();
    let target = Runnable::new(move |ctx: Context| async move {
        match ending {
            Ending::DoneThenError => {
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                Err("error after done".into())
            }
            Ending::DoneThenPanic => {
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                panic!("panic after done")
            }
            Ending::DoneThenCanceledAfterCancel => {
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                ctx.cancelled().await;
                Err(Canceled.into())
            }
            Ending::WrappedCanceledAfterCancel => {
                ctx.cancelled().await;
                Err(Wrapped(Canceled).into())
            }
            Ending::IoWrappedCanceledAfterCancel => {
                ctx.cancelled().await;
                Err(std::io::Error::other(Canceled).into())
            }
            Ending::ForeignCanceledWhileLive => {
                // A cancellation error from some other token, while the node's own is live.
                let other = supervisor::CancelToken::new();
                other.cancel();
                other.cancelled().await;
                Err(BoxError::from(Canceled))
            }
        }
    });
    let f = start(root_running(vec![
        ("target", target),
        ("killer", killer.runnable()),
    ]))
    .await;
    if matches!(
        ending,
        Ending::DoneThenCanceledAfterCancel
            | Ending::WrappedCanceledAfterCancel
            | Ending::IoWrappedCanceledAfterCancel
    ) {
        f.m.wait_count("root.target", NodeState::New, 1).await;
        killer.send(RcCmd::Die);
    }
    let exit = f.m.first_exit("root.target").await;
    shutdown_and_wait(&f.s).await;
    exit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_then_error_is_dead() {
    assert_eq!(first_exit_of(Ending::DoneThenError).await, NodeState::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_then_panic_is_dead() {
    assert_eq!(first_exit_of(Ending::DoneThenPanic).await, NodeState::Dead);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_then_context_error_after_cancellation_is_canceled() {
    assert_eq!(
        first_exit_of(Ending::DoneThenCanceledAfterCancel).await,
        NodeState::Canceled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_wrapping_the_context_error_is_canceled() {
    assert_eq!(
        first_exit_of(Ending::WrappedCanceledAfterCancel).await,
        NodeState::Canceled
    );
}

/// `io::Error::other(Canceled)` hides its inner error from `source()`; it is still recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_wrapping_the_context_error_is_canceled() {
    assert_eq!(
        first_exit_of(Ending::IoWrappedCanceledAfterCancel).await,
        NodeState::Canceled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_canceled_error_while_the_context_is_live_is_dead() {
    assert_eq!(
        first_exit_of(Ending::ForeignCanceledWhileLive).await,
        NodeState::Dead
    );
}
