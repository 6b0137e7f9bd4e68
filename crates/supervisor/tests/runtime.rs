//! How the supervisor lives with its runtime. A runnable that blocks its worker thread (Go
//! preempts goroutines; tokio cannot preempt a task) must not stop the supervisor: the processor
//! runs on a thread of its own and keeps handling events, and the blocking runnable is named in a
//! warning. The settle detector waits for started runnables to be polled, and the supervisor
//! stops when the runtime of its runnables shuts down.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use supervisor::{
    Canceled, Context, Error, LogRecorder, Options, RunResult, Runnable, SUPERVISOR_DN, Severity,
    Supervisor,
};

/// Like [`within`], but timed by a plain thread: while the only worker thread is blocked, the
/// runtime's timers do not fire.
async fn within_std<T>(what: &str, fut: impl Future<Output = T>) -> T {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(WAIT);
        let _ = tx.send(());
    });
    tokio::select! {
        v = fut => v,
        _ = rx => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` from the test's own thread (not a worker), failing after [`WAIT`].
fn eventually_std(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sets the flag when dropped, so that a failing test does not leave the worker spinning (the
/// runtime could not shut down).
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Go's TestResilience `four`: a busy loop that never yields and ignores cancellation, until the
/// test sets `stop`.
fn busy(stop: Arc<AtomicBool>) -> Runnable {
    Runnable::new(move |_ctx: Context| {
        let stop = stop.clone();
        async move {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::ZERO);
            }
            RunResult::Err(Canceled.into())
        }
    })
}

fn warned_about(logs: &LogRecorder, dn: &str) -> bool {
    let prefix = format!("runnable {dn} has not yielded for");
    logs.entries_at(SUPERVISOR_DN)
        .iter()
        .any(|e| e.severity == Severity::Warning && e.message.starts_with(&prefix))
}

/// One worker thread, taken by a busy loop: the processor still settles, warns about the DN that
/// blocks, and shuts the tree down. (The test body runs on the runtime's `block_on` thread, not
/// on the worker.)
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_runnable_blocking_the_only_worker_does_not_stop_the_processor() {
    let stop = Arc::new(AtomicBool::new(false));
    let _release = SetOnDrop(stop.clone());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root_running(vec![("four", busy(stop.clone()))]),
        Options::new().log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor starts");
    within_std("settle", s.wait_settled())
        .await
        .expect("settles");
    eventually_std("the blocking warning", || warned_about(&logs, "root.four"));
    s.shutdown();
    eventually_std("the processor to shut down", || {
        logs.entries_at(SUPERVISOR_DN).iter().any(|e| {
            e.message == "supervisor exited, starting liquidator to clean up remaining runnables..."
        })
    });
    assert_eq!(s.live_runnables(), ["root.four"]);
    stop.store(true, Ordering::SeqCst);
    within("four to exit", s.wait_stopped()).await;
    eventually("the end of the blocking poll to be logged", || {
        logs.entries_at(SUPERVISOR_DN)
            .iter()
            .any(|e| e.message.starts_with("runnable root.four yielded after"))
    })
    .await;
}

/// The settle detector does not release while a started runnable still waits for a worker thread
/// to poll it (Go's goroutines start at once, a tokio task may wait): here the only worker is
/// blocked for 300 ms right after `late` was started.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn settle_waits_until_started_runnables_are_polled() {
    let polled = Arc::new(AtomicBool::new(false));
    let late = {
        let polled = polled.clone();
        Runnable::new(move |ctx: Context| {
            let polled = polled.clone();
            async move {
                polled.store(true, Ordering::SeqCst);
                ctx.cancelled().await;
                RunResult::Err(Canceled.into())
            }
        })
    };
    let s = Supervisor::new(
        Runnable::new(move |ctx: Context| {
            let late = late.clone();
            async move {
                ctx.run("late", late)?;
                // Holds the only worker thread, so `late` cannot be polled yet.
                std::thread::sleep(Duration::from_millis(300));
                ctx.signal(supervisor::Signal::Healthy)?;
                ctx.signal(supervisor::Signal::Done)?;
                RunResult::Ok(())
            }
        }),
        Options::new(),
    )
    .await
    .expect("supervisor starts");
    within_std("settle", s.wait_settled())
        .await
        .expect("settles");
    assert!(
        polled.load(Ordering::SeqCst),
        "settled before `late` was polled"
    );
    shutdown_and_wait(&s).await;
}

/// When the runtime that runs the runnables shuts down (its tasks are dropped), no runnable can
/// run or report its exit any more: the supervisor marks what was live Dead and its processor
/// (on its own thread) stops, instead of waiting forever.
#[test]
fn the_supervisor_stops_when_the_runtime_of_its_runnables_shuts_down() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let logs = LogRecorder::new();
    // Ignores cancellation: only the runtime's shutdown ends it.
    let stubborn = Runnable::new(|ctx: Context| async move {
        ctx.signal(supervisor::Signal::Healthy)?;
        loop {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let s = runtime.block_on(async {
        let s = Supervisor::new(
            root_running(vec![("stubborn", stubborn)]),
            Options::new().log_recorder(logs.clone()),
        )
        .await
        .expect("supervisor starts");
        eventually("stubborn healthy", || {
            s.node_state("root.stubborn") == Some(supervisor::NodeState::Healthy)
        })
        .await;
        s
    });
    drop(runtime);
    eventually_std("the processor to stop", || {
        logs.entries_at(SUPERVISOR_DN)
            .iter()
            .any(|e| e.message == "liquidator: complete, all runnables dead or done")
    });
    assert!(
        logs.entries_at(SUPERVISOR_DN)
            .iter()
            .any(|e| e.message == "the runtime running the runnables has shut down")
    );
    assert!(s.live_runnables().is_empty());
    assert_eq!(
        s.node_state("root.stubborn"),
        Some(supervisor::NodeState::Dead)
    );
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    assert_eq!(other.block_on(s.wait_settled()), Err(Error::ShutDown));
}
