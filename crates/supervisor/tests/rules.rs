//! The supervisor's rules (`docs/supervisor.md`) checked one by one where Go's own test suite
//! does not, plus the differences from Go
//! (`docs/supervisor.md#differences-from-the-go-supervisor`): stale contexts, propagated
//! panics, names with dots.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use supervisor::{
    BoxError, Canceled, Context, Error, LogRecorder, NodeState, Options, RunResult, Runnable,
    SUPERVISOR_DN, Severity, Signal, Supervisor, TestHarness, TransitionMetrics,
};
use tokio::sync::mpsc;

struct Fixture {
    s: Supervisor,
    m: Arc<Recording>,
    logs: LogRecorder,
}

/// A supervisor with a recording metrics sink, a log recorder and backoff jitter fixed at r=0
/// (delays at the low end of their ranges, `docs/supervisor.md#restart-backoff`: 250 ms,
/// 375 ms, ...).
async fn start(root: Runnable) -> Fixture {
    quiet_runnable_panics();
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root,
        Options::new()
            .metrics(m.clone())
            .log_recorder(logs.clone())
            .random_source(|| Box::new(Fixed(0.0))),
    )
    .await
    .expect("supervisor starts");
    Fixture { s, m, logs }
}

fn rescheduled(logs: &LogRecorder, dn: &str) -> Vec<String> {
    let prefix = format!("rescheduling supervised node {dn} with backoff ");
    logs.entries_at(SUPERVISOR_DN)
        .into_iter()
        .filter_map(|e| e.message.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

async fn wait_rescheduled(logs: &LogRecorder, dn: &str, n: usize) -> Vec<String> {
    eventually(&format!("{dn} rescheduled {n} times"), || {
        rescheduled(logs, dn).len() >= n
    })
    .await;
    rescheduled(logs, dn)
}

/// A runnable that waits for its context to be cancelled and returns the cancellation error.
fn waits_for_cancel() -> Runnable {
    Runnable::new(|ctx: Context| async move {
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    })
}

// ---- Starting children only while New (docs/supervisor.md#starting-children-and-groups) ---------

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

// ---- Names: valid, unique, not reserved (docs/supervisor.md#names-and-dns) ----------------------

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

// ---- Success without Done is Dead (docs/supervisor.md#how-an-exit-is-classified) ----------------

fn fatal_at(logs: &LogRecorder, dn: &str) -> Vec<String> {
    logs.entries_at(dn)
        .into_iter()
        .filter(|e| e.severity == Severity::Fatal)
        .map(|e| e.message)
        .collect()
}

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

// ---- Order of exit classification (docs/supervisor.md#how-an-exit-is-classified) ----------------

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

// ---- Signal misuse (docs/supervisor.md#signals-healthy-and-done) --------------------------------

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

// ---- What a death affects (docs/supervisor.md#what-a-death-affects) -----------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_death_leaves_the_parent_and_other_groups_untouched() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Context>();
    let dier = Rc::new();
    let (oh, mut other_healthy) = mpsc::unbounded_channel();
    let (od, mut other_cancelled) = mpsc::unbounded_channel();
    let dier_r = dier.runnable();
    let parent = Runnable::new(move |ctx: Context| {
        let (tx, dier_r, oh, od) = (tx.clone(), dier_r.clone(), oh.clone(), od.clone());
        async move {
            ctx.run("dier", dier_r)?;
            ctx.run("other", becomes_healthy(oh, od))?;
            ctx.signal(Signal::Healthy)?;
            let _ = tx.send(ctx.clone());
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    let parent_ctx = got("parent context", &mut rx).await;
    got("other healthy", &mut other_healthy).await;
    dier.send(RcCmd::Die);
    assert_eq!(f.m.first_exit("root.parent.dier").await, NodeState::Dead);
    // dier restarts after its backoff; meanwhile nothing else moved.
    dier.wait_state(NodeState::New).await;
    assert!(!parent_ctx.is_cancelled());
    assert_eq!(f.s.node_state("root.parent"), Some(NodeState::Healthy));
    assert_eq!(
        f.s.node_state("root.parent.other"),
        Some(NodeState::Healthy)
    );
    assert!(other_cancelled.try_recv().is_err());
    assert_eq!(
        f.m.states("root.parent"),
        [NodeState::New, NodeState::Healthy]
    );
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_nodes_child_dies_and_only_the_child_restarts() {
    let child = Rc::new();
    let child_r = child.runnable();
    let parent = Runnable::new(move |ctx: Context| {
        let child_r = child_r.clone();
        async move {
            ctx.run("child", child_r)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    f.m.wait_count("root.parent", NodeState::Done, 1).await;
    child.send(RcCmd::Die);
    f.m.wait_count("root.parent.child", NodeState::New, 2).await;
    assert_eq!(f.s.node_state("root.parent"), Some(NodeState::Done));
    assert_eq!(
        f.m.states("root.parent"),
        [NodeState::New, NodeState::Healthy, NodeState::Done]
    );
    shutdown_and_wait(&f.s).await;
}

// ---- Restart at the highest ready node (docs/supervisor.md#the-restart-pass) --------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_descendant_blocks_the_dead_ancestors_restart_until_it_exits() {
    let (release_tx, release) = channel::<()>();
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let killer = Rc::new();
    let stuck = Runnable::new(move |_ctx: Context| {
        let release = release.clone();
        async move {
            // Ignores cancellation until released.
            recv(&release).await;
            RunResult::Err(Canceled.into())
        }
    });
    let parent = Runnable::new(move |ctx: Context| {
        let (stuck, started_tx) = (stuck.clone(), started_tx.clone());
        async move {
            let _ = started_tx.send(());
            ctx.run("stuck", stuck)?;
            ctx.cancelled().await;
            RunResult::Err("parent dies on cancel".into())
        }
    });
    let f = start(root_running(vec![
        ("parent", parent),
        ("killer", killer.runnable()),
    ]))
    .await;
    got("parent started", &mut started).await;
    killer.send(RcCmd::Die);
    assert_eq!(f.m.first_exit("root.parent").await, NodeState::Dead);
    let warning = within(
        "not-restarting warning",
        f.logs.wait_for(|e| {
            e.severity == Severity::Warning
                && e.message
                    == "Not restarting root.parent: children not ready to be restarted: [root.parent.stuck]"
        }),
    )
    .await;
    assert_eq!(warning.dn, SUPERVISOR_DN);
    // Give the processor every chance to (wrongly) restart the parent.
    within("settle", f.s.wait_settled()).await.unwrap();
    assert_eq!(f.s.node_state("root.parent"), Some(NodeState::Dead));
    assert!(started.try_recv().is_err());
    release_tx.send(()).unwrap();
    got("parent restarted", &mut started).await;
    release_tx.send(()).unwrap(); // lets the new `stuck` exit at shutdown
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_child_of_a_dead_parent_is_never_restarted_on_its_own() {
    let (release_tx, release) = channel::<()>();
    let killer = Rc::new();
    let child = Runnable::new(move |_ctx: Context| {
        let release = release.clone();
        async move {
            recv(&release).await;
            RunResult::Err("child dies".into())
        }
    });
    let parent = Runnable::new(move |ctx: Context| {
        let child = child.clone();
        async move {
            ctx.run("child", child)?;
            ctx.cancelled().await;
            RunResult::Err("parent dies".into())
        }
    });
    let f = start(root_running(vec![
        ("parent", parent),
        ("killer", killer.runnable()),
    ]))
    .await;
    f.m.wait_count("root.parent.child", NodeState::New, 1).await;
    killer.send(RcCmd::Die);
    f.m.wait_count("root.parent", NodeState::Dead, 1).await;
    release_tx.send(()).unwrap();
    f.m.wait_count("root.parent.child", NodeState::New, 2).await;
    let ev = f.m.events();
    let pos = |dn: &str, st: NodeState, nth: usize| {
        ev.iter()
            .enumerate()
            .filter(|(_, (d, s))| d == dn && *s == st)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap()
    };
    // The child's second start comes only after the parent's restart (its second New).
    assert!(pos("root.parent.child", NodeState::Dead, 0) < pos("root.parent", NodeState::New, 1));
    assert!(pos("root.parent", NodeState::New, 1) < pos("root.parent.child", NodeState::New, 1));
    // The child was never rescheduled by itself: only the parent (and the killer) were.
    assert!(rescheduled(&f.logs, "root.parent.child").is_empty());
    release_tx.send(()).unwrap();
    shutdown_and_wait(&f.s).await;
}

// ---- Backoff per node, Dead restarts only (docs/supervisor.md#restart-backoff) ------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_child_starts_again_from_the_first_backoff_range() {
    let child = Rc::new();
    let (die_tx, die) = channel::<()>();
    let child_r = child.runnable();
    let parent = Runnable::new(move |ctx: Context| {
        let (child_r, die) = (child_r.clone(), die.clone());
        async move {
            ctx.run("child", child_r)?;
            step(&ctx, &die).await?;
            RunResult::Err("parent dies".into())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    child.wait_state(NodeState::New).await;
    for _ in 0..2 {
        child.send(RcCmd::Die);
        f.m.wait_count("root.parent.child", NodeState::Dead, 1)
            .await;
        child.wait_state(NodeState::New).await;
    }
    assert_eq!(
        wait_rescheduled(&f.logs, "root.parent.child", 2).await,
        ["250ms", "375ms"]
    );
    die_tx.send(()).unwrap();
    f.m.wait_count("root.parent", NodeState::New, 2).await;
    child.wait_state(NodeState::New).await;
    child.send(RcCmd::Die);
    assert_eq!(
        wait_rescheduled(&f.logs, "root.parent.child", 3).await,
        ["250ms", "375ms", "250ms"]
    );
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_sibling_restarts_without_delay_and_its_backoff_does_not_advance() {
    let a = Rc::new();
    let b = Rc::new();
    let f = start(root_running(vec![("a", a.runnable()), ("b", b.runnable())])).await;
    a.wait_state(NodeState::New).await;
    b.send(RcCmd::Die);
    f.m.wait_count("root.a", NodeState::Canceled, 1).await;
    assert_eq!(wait_rescheduled(&f.logs, "root.a", 1).await, ["0s"]);
    a.wait_state(NodeState::New).await;
    // a's own first death uses the first range: the Canceled restart did not consume backoff.
    a.send(RcCmd::Die);
    assert_eq!(
        wait_rescheduled(&f.logs, "root.a", 2).await,
        ["0s", "250ms"]
    );
    shutdown_and_wait(&f.s).await;
}

// ---- Shutdown (docs/supervisor.md#shutdown-and-the-liquidator) ----------------------------------

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
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
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
        Options::new()
            .metrics(m.clone())
            .log_recorder(logs.clone())
            .restart_policy(
                supervisor::RestartPolicy::new(supervisor::BackoffParams {
                    initial_interval: Duration::from_secs(30),
                    max_interval: Duration::from_secs(60),
                    randomization_factor: 0.0,
                    multiplier: 1.5,
                })
                .expect("valid parameters"),
            ),
    )
    .await
    .unwrap();
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

// ---- Metrics (docs/supervisor.md#metrics) -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_first_edge_is_from_dead_and_done_and_reset_report_nothing() {
    let t = Arc::new(TransitionMetrics::new());
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let (die_tx, die) = channel::<()>();
    let worker = Runnable::new(move |ctx: Context| {
        let die = die.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            step(&ctx, &die).await?;
            RunResult::Err("dies on request".into())
        }
    });
    let s = Supervisor::new(
        root_running(vec![("worker", worker)]),
        Options::new()
            .metrics(t.clone())
            .metrics(m.clone())
            .log_recorder(logs.clone())
            .random_source(|| Box::new(Fixed(0.0))),
    )
    .await
    .unwrap();
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

// ---- Differences from Go: stale contexts, propagated panics -------------------------------------

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

// ---- Logging, harness and policy wiring ------------------------------------------------------

/// A minimal `tracing` subscriber keeping (dn, message, fatal) of every event.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<(String, String, bool)>>>);

#[derive(Default)]
struct Fields {
    dn: String,
    message: String,
    fatal: bool,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "dn" {
            self.dn = value.to_string();
        }
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "fatal" {
            self.fatal = value;
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "dn" => self.dn = format!("{value:?}"),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        self.0
            .lock()
            .expect("capture lock")
            .push((f.dn, f.message, f.fatal));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Current-thread runtime: the thread-local subscriber sees every task.
#[tokio::test]
async fn a_death_is_logged_through_tracing_with_the_node_dn_as_a_field() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let f = start(root_running(vec![(
        "worker",
        Runnable::new(|ctx: Context| async move {
            ctx.logger().info("starting work");
            RunResult::Err("disk on fire".into())
        }),
    )]))
    .await;
    f.m.wait_count("root.worker", NodeState::Dead, 1).await;
    let events = capture.0.lock().unwrap().clone();
    assert!(events.contains(&(
        "root.worker".to_string(),
        "runnable returned error: disk on fire".to_string(),
        true
    )));
    assert!(events.contains(&("root.worker".into(), "starting work".into(), false)));
    assert!(events.iter().any(|(dn, msg, _)| dn == SUPERVISOR_DN
        && msg.starts_with("rescheduling supervised node root.worker with backoff")));
    shutdown_and_wait(&f.s).await;
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
async fn a_per_dn_policy_override_sets_that_nodes_backoff() {
    let policy = supervisor::RestartPolicy::from_toml_str(
        r#"
[defaults]
randomization_factor = 0.0
[overrides."root.fast"]
initial_interval = "20ms"
"#,
    )
    .unwrap();
    let dies = || Runnable::new(|_ctx: Context| async { RunResult::Err("dies".into()) });
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        Runnable::new(move |ctx: Context| {
            let dies = dies();
            async move {
                ctx.run("fast", dies.clone())?;
                ctx.run("slow", dies)?;
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                RunResult::Ok(())
            }
        }),
        Options::new()
            .restart_policy(policy)
            .log_recorder(logs.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        &wait_rescheduled(&logs, "root.fast", 3).await[..3],
        ["20ms", "30ms", "45ms"]
    );
    assert_eq!(wait_rescheduled(&logs, "root.slow", 1).await[0], "500ms");
    shutdown_and_wait(&s).await;
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

// ---- Review fixes: metrics sink panics, harness reporting, stale contexts ---------------------

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
    let rec = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root,
        Options::new()
            .metrics(Arc::new(PanicsOnDead(rec.clone())))
            .log_recorder(logs.clone())
            .random_source(|| Box::new(Fixed(0.0))),
    )
    .await
    .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_propagated_panic_can_be_awaited() {
    quiet_runnable_panics();
    let s = Supervisor::new(
        root_running(vec![(
            "bad",
            Runnable::new(|_ctx: Context| async move { panic!("awaited boom") }),
        )]),
        Options::new().propagate_panic(),
    )
    .await
    .unwrap();
    let payload = within("the panic", s.propagated_panic()).await;
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"awaited boom"));
    assert!(s.take_propagated_panic().is_none(), "taken once");
    within("all runnables to exit", s.wait_stopped()).await;
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

// ---- Panics in tasks spawned through the context ----------------------------------------------

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
        quiet_runnable_panics();
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
        let logs = LogRecorder::new();
        let m = Arc::new(Recording::default());
        let options = Options::new().log_recorder(logs.clone()).metrics(m.clone());
        let s = Supervisor::new(
            root,
            if propagate {
                options.propagate_panic()
            } else {
                options
            },
        )
        .await
        .unwrap();
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
