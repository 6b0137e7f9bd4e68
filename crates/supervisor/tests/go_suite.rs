//! Ports of every test in Go's `supervisor_test.go`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use supervisor::{
    Canceled, Context, Error, InMemoryMetrics, LogRecorder, NodeState, Options, RunResult,
    Runnable, SUPERVISOR_DN, Severity, Signal, Supervisor, TestHarness,
};
use tokio::sync::mpsc;

/// Go's `select { case <-ch: default: t.Fatalf(...) }` right after `waitSettle`: the message
/// must already be there, so a settle detector that released too early fails the test.
fn ready(rx: &mut mpsc::UnboundedReceiver<()>, what: &str) {
    assert!(rx.try_recv().is_ok(), "{what}");
}

/// TestSimple: group children start and become Healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_group_children_start_and_signal_healthy() {
    let (h1, mut rh1) = mpsc::unbounded_channel();
    let (d1, _rd1) = mpsc::unbounded_channel();
    let (h2, mut rh2) = mpsc::unbounded_channel();
    let (d2, _rd2) = mpsc::unbounded_channel();
    let h = TestHarness::start(root_running(vec![
        ("one", becomes_healthy(h1, d1)),
        ("two", becomes_healthy(h2, d2)),
    ]))
    .await
    .unwrap();
    // Expect both to start running.
    within("settle", h.supervisor().wait_settled())
        .await
        .unwrap();
    ready(&mut rh1, "runnable 'one' didn't start");
    ready(&mut rh2, "runnable 'two' didn't start");
    assert_eq!(
        h.supervisor().node_state("root.one"),
        Some(NodeState::Healthy)
    );
    assert_eq!(
        h.supervisor().node_state("root.two"),
        Some(NodeState::Healthy)
    );
    h.finish().await;
}

/// TestSimpleFailure: a group member dies; its sibling is cancelled and comes back Healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_failure_cancels_and_restarts_the_group_sibling() {
    let (h1, mut rh1) = mpsc::unbounded_channel();
    let (d1, mut rd1) = mpsc::unbounded_channel();
    let two = Rc::new();
    let h = TestHarness::start(root_running(vec![
        ("one", becomes_healthy(h1, d1)),
        ("two", two.runnable()),
    ]))
    .await
    .unwrap();
    let s = h.supervisor();
    within("settle", s.wait_settled()).await.unwrap();
    two.send(RcCmd::BecomeHealthy);
    within("settle", s.wait_settled()).await.unwrap();
    // Expect one to start running.
    ready(&mut rh1, "runnable 'one' didn't start");
    // Kill off two, one should restart.
    two.send(RcCmd::Die);
    got("one cancelled", &mut rd1).await;
    // And one should start running again (with no delay while two waits out its backoff: a
    // cancelled group member restarts at once).
    within("settle", s.wait_settled()).await.unwrap();
    ready(&mut rh1, "runnable 'one' didn't restart");
    assert_eq!(s.node_state("root.one"), Some(NodeState::Healthy));
    h.finish().await;
}

/// TestDeepFailure: the sibling's 62-node subtree is cancelled and rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_failure_rebuilds_the_sibling_subtree() {
    let (h1, mut rh1) = mpsc::unbounded_channel();
    let (d1, mut rd1) = mpsc::unbounded_channel();
    let two = Rc::new();
    let h = TestHarness::start(root_running(vec![
        ("one", spawns_more(h1, d1, 5)),
        ("two", two.runnable()),
    ]))
    .await
    .unwrap();
    let s = h.supervisor();
    two.send(RcCmd::BecomeHealthy);
    within("settle", s.wait_settled()).await.unwrap();
    // Expect one to start running.
    ready(&mut rh1, "runnable 'one' didn't start");
    assert_eq!(s.live_runnables().len(), 1 + 62 + 1);
    // Kill off two, one should restart.
    two.send(RcCmd::Die);
    got("one cancelled", &mut rd1).await;
    // And one should start running again, once its whole subtree has exited.
    within("settle", s.wait_settled()).await.unwrap();
    ready(&mut rh1, "runnable 'one' didn't restart");
    eventually("subtree rebuilt", || {
        s.live_runnables()
            .iter()
            .filter(|dn| dn.starts_with("root.one."))
            .count()
            == 62
    })
    .await;
    assert!(
        s.live_runnables()
            .contains(&"root.one.a.a.a.a.a".to_string())
    );
    h.finish().await;
}

/// TestPanic: a caught panic counts as a death, cancels the sibling, and both restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_caught_and_counts_as_a_death() {
    quiet_runnable_panics();
    let (h1, mut rh1) = mpsc::unbounded_channel();
    let (d1, mut rd1) = mpsc::unbounded_channel();
    let two = Rc::new();
    let s = Supervisor::new(
        root_running(vec![
            ("one", becomes_healthy(h1, d1)),
            ("two", two.runnable()),
        ]),
        Options::new(),
    )
    .await
    .unwrap();
    two.send(RcCmd::BecomeHealthy);
    within("settle", s.wait_settled()).await.unwrap();
    // Expect one to start running.
    ready(&mut rh1, "runnable 'one' didn't start");
    // Kill off two, one should restart.
    two.send(RcCmd::Panic);
    got("one cancelled", &mut rd1).await;
    // And one should start running again.
    within("settle", s.wait_settled()).await.unwrap();
    ready(&mut rh1, "runnable 'one' didn't restart");
    // two restarts after its backoff and answers again.
    two.wait_state(NodeState::New).await;
    shutdown_and_wait(&s).await;
}

/// Like [`spawns_more`], but every level reports on the same `h`/`d` channels (one message per
/// runnable).
fn spawns_more_reporting(
    h: mpsc::UnboundedSender<String>,
    d: mpsc::UnboundedSender<String>,
    levels: usize,
) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let (h, d) = (h.clone(), d.clone());
        async move {
            if levels > 0 {
                ctx.run_group([
                    ("a", spawns_more_reporting(h.clone(), d.clone(), levels - 1)),
                    ("b", spawns_more_reporting(h.clone(), d.clone(), levels - 1)),
                ])?;
            }
            ctx.signal(Signal::Healthy)?;
            let _ = h.send(ctx.dn().to_string());
            ctx.cancelled().await;
            let _ = d.send(ctx.dn().to_string());
            Err(Canceled.into())
        }
    })
}

/// TestMultipleLevelFailure: build two deep trees (62 runnables under the root), shut down;
/// no panic, no error, no hang, and every runnable reports its cancellation and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_level_failure_shuts_down_cleanly() {
    let (h, mut healthy) = mpsc::unbounded_channel();
    let (d, mut cancelled) = mpsc::unbounded_channel();
    let metrics = Arc::new(InMemoryMetrics::new());
    let harness = TestHarness::start_with(
        root_running(vec![
            ("one", spawns_more_reporting(h.clone(), d.clone(), 4)),
            ("two", spawns_more_reporting(h, d, 4)),
        ]),
        Options::new().metrics(metrics.clone()),
    )
    .await
    .unwrap();
    // 2 × (1 + 2 + 4 + 8 + 16) = 62 runnables below the root, all Healthy before the shutdown.
    let mut up = std::collections::BTreeSet::new();
    while up.len() < 62 {
        up.insert(got("a runnable healthy", &mut healthy).await);
    }
    let s = harness.supervisor();
    eventually(
        "the root and the 62 runnables reported Healthy or Done",
        || {
            let dns = metrics.dns();
            dns.len() == 63
                && dns.iter().all(|(dn, st)| {
                    st.state == NodeState::Healthy || (dn == "root" && st.state == NodeState::Done)
                })
        },
    )
    .await;
    assert_eq!(s.live_runnables().len(), 62);
    assert!(s.live_runnables().contains(&"root.two.b.b.b.b".to_string()));
    s.shutdown();
    let mut down = std::collections::BTreeSet::new();
    while down.len() < 62 {
        down.insert(got("a runnable cancelled", &mut cancelled).await);
    }
    assert_eq!(down, up);
    within("all runnables to exit", s.wait_stopped()).await;
    assert!(s.live_runnables().is_empty());
    // No runnable panicked and none returned a real error: finish re-raises either.
    harness.finish().await;
}

/// TestBackoff: the delay grows over consecutive deaths and resets after Healthy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_grows_with_consecutive_deaths_and_resets_on_healthy() {
    let one = Rc::new();
    let h = TestHarness::start_with(
        root_running(vec![("one", one.runnable())]),
        // r = 0: every delay is the low end of its range.
        Options::new().random_source(|| Box::new(Fixed(0.0))),
    )
    .await
    .unwrap();
    one.send(RcCmd::BecomeHealthy);
    one.wait_state(NodeState::Healthy).await;
    for _ in 0..4 {
        one.send(RcCmd::Die);
        one.wait_state(NodeState::New).await;
    }
    let start = Instant::now();
    one.send(RcCmd::Die);
    one.wait_state(NodeState::New).await;
    one.send(RcCmd::BecomeHealthy);
    one.wait_state(NodeState::Healthy).await;
    let took = start.elapsed();
    // Fifth consecutive delay: 0.5 * 2.53125 s.
    assert!(
        took >= Duration::from_millis(1265),
        "5th restart took {took:?}"
    );
    assert!(took < Duration::from_secs(4), "5th restart took {took:?}");
    within("settle", h.supervisor().wait_settled())
        .await
        .unwrap();
    let start = Instant::now();
    one.send(RcCmd::Die);
    one.wait_state(NodeState::New).await;
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(1),
        "restart after reset took {took:?}"
    );
    h.finish().await;
}

/// TestCancelRestart: a dying parent cancels its child's backoff wait, so the parent restarts
/// after only its own first backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_restart_cancels_the_child_backoff_wait() {
    let (release_tx, release) = channel::<()>();
    let (running_tx, mut running) = mpsc::unbounded_channel::<()>();
    let (inner_release_tx, inner_release) = channel::<()>();
    let inner_runs = Arc::new(AtomicUsize::new(0));
    let root = {
        let release = release.clone();
        let inner_release = inner_release.clone();
        let inner_runs = inner_runs.clone();
        Runnable::new(move |ctx: Context| {
            let (release, inner_release) = (release.clone(), inner_release.clone());
            let running_tx = running_tx.clone();
            let inner_runs = inner_runs.clone();
            async move {
                let _ = running_tx.send(());
                step(&ctx, &release).await?;
                ctx.run("inner", move |ctx: Context| {
                    let inner_release = inner_release.clone();
                    inner_runs.fetch_add(1, Ordering::SeqCst);
                    async move {
                        step(&ctx, &inner_release).await?;
                        RunResult::Err("inner fails".into())
                    }
                })?;
                step(&ctx, &release).await?;
                RunResult::Err("root fails".into())
            }
        })
    };
    // r = 0: the root's own first backoff is 250 ms, well inside the 1 s bound, while inner's is
    // 5 s (10 s · 0.5): without the cancellable backoff wait the root could only restart
    // after inner's wait ended, and inner would run a second time.
    let policy = supervisor::RestartPolicy::from_toml_str(
        "[overrides.\"root.inner\"]\ninitial_interval = \"10s\"\nmax_interval = \"60s\"\n",
    )
    .unwrap();
    let metrics = Arc::new(Recording::default());
    let h = TestHarness::start_with(
        root,
        Options::new()
            .random_source(|| Box::new(Fixed(0.0)))
            .restart_policy(policy)
            .metrics(metrics.clone()),
    )
    .await
    .unwrap();
    got("root running", &mut running).await;
    release_tx.send(()).unwrap();
    inner_release_tx.send(()).unwrap();
    let s = h.supervisor();
    // inner is now dead and waiting out its backoff (5 s).
    eventually("inner in backoff", || {
        s.node_state("root.inner") == Some(NodeState::New)
            && h.logs()
                .entries()
                .iter()
                .any(|e| e.message == "rescheduling supervised node root.inner with backoff 5s")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let start = Instant::now();
    release_tx.send(()).unwrap();
    got("root running again", &mut running).await;
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    // inner's backoff wait was cancelled: it ran once, and ended Canceled without a new start.
    assert_eq!(inner_runs.load(Ordering::SeqCst), 1);
    assert_eq!(
        metrics.states("root.inner"),
        [NodeState::New, NodeState::Dead, NodeState::Canceled]
    );
    // The harness recorded the root's and inner's errors, as expected here: finish reports them.
    let err = within("finish", tokio::spawn(h.finish()))
        .await
        .expect_err("finish reports the recorded errors");
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("returned error: root fails"), "{msg}");
}

/// TestDoneDelay: a Done-signalled child is not exited until it returns; its success after
/// cancellation counts as Done, and only then does the parent restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_delay_keeps_the_node_live_until_it_returns() {
    let (go_tx, go) = channel::<()>();
    let (inner_go_tx, inner_go) = channel::<()>();
    let (inner_done_tx, mut inner_done) = mpsc::unbounded_channel::<()>();
    let (started_tx, mut started) = mpsc::unbounded_channel::<usize>();
    let incarnations = Arc::new(AtomicUsize::new(0));
    let metrics = Arc::new(InMemoryMetrics::new());
    let root = {
        let incarnations = incarnations.clone();
        Runnable::new(move |ctx: Context| {
            let go = go.clone();
            let inner_go = inner_go.clone();
            let inner_done_tx = inner_done_tx.clone();
            let n = incarnations.fetch_add(1, Ordering::SeqCst);
            let _ = started_tx.send(n);
            async move {
                if n > 0 {
                    ctx.signal(Signal::Healthy)?;
                    ctx.cancelled().await;
                    return Err(Canceled.into());
                }
                ctx.run("inner", move |ctx: Context| {
                    let go = inner_go.clone();
                    let inner_done_tx = inner_done_tx.clone();
                    async move {
                        ctx.signal(Signal::Healthy)?;
                        ctx.signal(Signal::Done)?;
                        // Ignores the cancellation: returns only on the test's go-ahead.
                        recv(&go).await;
                        let _ = inner_done_tx.send(());
                        RunResult::Ok(())
                    }
                })?;
                recv(&go).await;
                RunResult::Err("root fails".into())
            }
        })
    };
    let s = Supervisor::new(root, Options::new().metrics(metrics.clone()))
        .await
        .unwrap();
    assert_eq!(got("first root", &mut started).await, 0);
    eventually("inner healthy", || {
        metrics.state("root.inner") == Some(NodeState::Healthy)
    })
    .await;
    // The root fails; inner keeps running until its own go-ahead.
    go_tx.send(()).unwrap();
    eventually("root dead", || {
        metrics.state("root") == Some(NodeState::Dead)
    })
    .await;
    // While inner still runs (it signalled Done), it is live, and the root cannot restart.
    assert_eq!(s.node_state("root.inner"), Some(NodeState::Healthy));
    assert_eq!(metrics.state("root.inner"), Some(NodeState::Healthy));
    assert_eq!(s.live_runnables(), ["root.inner"]);
    assert!(started.try_recv().is_err(), "the root restarted early");
    inner_go_tx.send(()).unwrap();
    got("inner returned", &mut inner_done).await;
    eventually("inner done", || {
        metrics.state("root.inner") == Some(NodeState::Done)
    })
    .await;
    assert_eq!(got("second root", &mut started).await, 1);
    shutdown_and_wait(&s).await;
}

/// TestCancelDoneSibling: a Done node whose context is cancelled by a dying sibling is
/// restarted once its child exits, and starts a new child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_done_sibling_restarts_the_done_node() {
    let (running_tx, mut running) = mpsc::unbounded_channel::<()>();
    let (cancelled_tx, mut cancelled) = mpsc::unbounded_channel::<()>();
    let (exit_tx, exit) = channel::<()>();
    let (sibling_tx, sibling_rx) = channel::<()>();
    let done = Runnable::new(move |ctx: Context| {
        let (running_tx, cancelled_tx, exit) =
            (running_tx.clone(), cancelled_tx.clone(), exit.clone());
        async move {
            ctx.run("inner", move |ctx: Context| {
                let (running_tx, cancelled_tx, exit) =
                    (running_tx.clone(), cancelled_tx.clone(), exit.clone());
                async move {
                    let _ = running_tx.send(());
                    ctx.cancelled().await;
                    let _ = cancelled_tx.send(());
                    recv(&exit).await;
                    RunResult::Err(Canceled.into())
                }
            })?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let sibling = Runnable::new(move |ctx: Context| {
        let rx = sibling_rx.clone();
        async move {
            tokio::select! {
                _ = recv(&rx) => RunResult::Err("sibling fails".into()),
                _ = ctx.cancelled() => RunResult::Err(Canceled.into()),
            }
        }
    });
    let h = TestHarness::start(root_running(vec![("done", done), ("sibling", sibling)]))
        .await
        .unwrap();
    got("inner running", &mut running).await;
    let s = h.supervisor();
    eventually("done is Done", || {
        s.node_state("root.done") == Some(NodeState::Done)
    })
    .await;
    sibling_tx.send(()).unwrap();
    got("inner cancelled", &mut cancelled).await;
    exit_tx.send(()).unwrap();
    got("inner running again", &mut running).await;
    exit_tx.send(()).unwrap();
    h.finish().await;
}

/// TestResilience: misbehaving runnables in other groups do not stop `one` from answering pings
/// or from being restarted after each panic of its group sibling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resilience_misbehaving_runnables_do_not_affect_an_unrelated_group() {
    quiet_runnable_panics();
    let (ping_tx, ping_rx) = channel::<tokio::sync::oneshot::Sender<()>>();
    let one = Runnable::new(move |ctx: Context| {
        let ping_rx = ping_rx.clone();
        async move {
            ctx.signal(Signal::Healthy)?;
            let mut rx = ping_rx.lock().await;
            loop {
                tokio::select! {
                    p = rx.recv() => { if let Some(p) = p { let _ = p.send(()); } }
                    _ = ctx.cancelled() => return RunResult::Err(Canceled.into()),
                }
            }
        }
    });
    let one_sibling = Rc::new();
    // two: Go signals with a non-runnable context and panics. Rust contexts cannot be forged, so
    // the port panics the same way directly (see the crate docs).
    let two = Runnable::new(|_ctx: Context| async move {
        panic!("supervisor function called from non-runnable context")
    });
    // three: SignalDone while New panics.
    let three = Runnable::new(|ctx: Context| async move {
        ctx.signal(Signal::Done)?;
        RunResult::Ok(())
    });
    // four: Go's `for { time.Sleep(0) }`, a busy loop that never yields to the runtime, never
    // returns and ignores cancellation. It pins one worker thread of the test runtime. The flag
    // only exists so that the test can end: a tokio runtime cannot shut down while one of its
    // workers is stuck in a poll (Go simply exits the process).
    let stop_four = Arc::new(AtomicBool::new(false));
    let _release_four = SetOnDrop(stop_four.clone());
    let four = {
        let stop_four = stop_four.clone();
        Runnable::new(move |_ctx: Context| {
            let stop_four = stop_four.clone();
            async move {
                while !stop_four.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::ZERO);
                }
                RunResult::Err(Canceled.into())
            }
        })
    };
    // five: starts r1, r2, ... every 100 ms forever and never signals.
    let five = Runnable::new(|ctx: Context| async move {
        for i in 1.. {
            let (h, _) = mpsc::unbounded_channel();
            let (d, _) = mpsc::unbounded_channel();
            ctx.run(format!("r{i}"), spawns_more(h, d, 2))?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = ctx.cancelled() => return RunResult::Err(Canceled.into()),
            }
        }
        RunResult::Ok(())
    });
    let sibling_runnable = one_sibling.runnable();
    let root = Runnable::new(move |ctx: Context| {
        let (one, sibling) = (one.clone(), sibling_runnable.clone());
        let (two, three, four, five) = (two.clone(), three.clone(), four.clone(), five.clone());
        async move {
            ctx.run_group([("one", one), ("oneSibling", sibling)])?;
            ctx.run("two", two)?;
            ctx.run("three", three)?;
            ctx.run("four", four)?;
            ctx.run("five", five)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root,
        Options::new().metrics(m.clone()).log_recorder(logs.clone()),
    )
    .await
    .unwrap();
    let ping = || async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        ping_tx.send(tx).unwrap();
        tokio::time::timeout(Duration::from_secs(1), rx)
            .await
            .expect("ping timed out")
            .expect("ping dropped");
    };
    for _round in 0..5 {
        one_sibling.send(RcCmd::BecomeHealthy);
        one_sibling.wait_state(NodeState::Healthy).await;
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            ping().await;
        }
        one_sibling.send(RcCmd::Panic);
    }
    ping().await;
    // The misbehaving runnables kept misbehaving (and being restarted) in their own groups.
    m.wait_count("root.two", NodeState::Dead, 2).await;
    m.wait_count("root.three", NodeState::Dead, 2).await;
    assert!(s.node_state("root.five.r1").is_some());
    assert!(s.node_state("root.five.r2").is_some());
    assert_eq!(m.first_exit("root.two").await, NodeState::Dead);
    // The supervisor named the runnable that blocks a worker thread.
    assert!(
        logs.entries_at(SUPERVISOR_DN)
            .iter()
            .any(|e| e.severity == Severity::Warning
                && e.message
                    .starts_with("runnable root.four has not yielded for")),
        "{:?}",
        logs.entries_at(SUPERVISOR_DN)
    );
    // After shutdown everything exits except `four`, which ignores cancellation.
    s.shutdown();
    eventually("only four left", || s.live_runnables() == ["root.four"]).await;
    stop_four.store(true, Ordering::SeqCst);
    within("four to exit", s.wait_stopped()).await;
}

/// Sets the flag when dropped, so that a failing test does not leave a worker thread spinning.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// TestSubLoggers: sub-logger names are reserved against children and vice versa, and a
/// sub-logger writes at `<dn>.<name>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_loggers_reserve_names_and_log_at_the_sub_dn() {
    let (res_tx, mut res) = mpsc::unbounded_channel::<(&'static str, Result<(), Error>)>();
    let root = Runnable::new(move |ctx: Context| {
        let res_tx = res_tx.clone();
        async move {
            let foo_tx = res_tx.clone();
            ctx.run("foo", move |ctx: Context| {
                let res_tx = foo_tx.clone();
                async move {
                    let dut = ctx.sub_logger("dut")?;
                    dut.info("hello from foo.dut");
                    let run = ctx.run("dut", |_ctx: Context| async { RunResult::Ok(()) });
                    let _ = res_tx.send(("run dut", run));
                    ctx.signal(Signal::Healthy)?;
                    ctx.signal(Signal::Done)?;
                    RunResult::Ok(())
                }
            })?;
            let _ = res_tx.send(("sub_logger foo", ctx.sub_logger("foo").map(|_| ())));
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let h = TestHarness::start(root).await.unwrap();
    let mut results = vec![got("result", &mut res).await, got("result", &mut res).await];
    results.sort_by_key(|(k, _)| *k);
    assert_eq!(
        results,
        [
            (
                "run dut",
                Err(Error::ShadowsReservedName("dut".to_string()))
            ),
            (
                "sub_logger foo",
                Err(Error::NameInUseByChild("foo".to_string()))
            ),
        ]
    );
    let line = within(
        "sub-logger line",
        h.logs().wait_for(|e| e.message == "hello from foo.dut"),
    )
    .await;
    assert_eq!(line.dn, "root.foo.dut");
    h.finish().await;
}

/// TestMetrics: the metrics sink sees New/Healthy/Dead/Canceled/Done at the right moments, and
/// the runnable closure is reused across restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_states_across_restarts() {
    let (step_root_tx, step_root) = channel::<()>();
    let (step_one_tx, step_one) = channel::<()>();
    let (step_two_tx, step_two) = channel::<()>();
    let attempts = Arc::new(AtomicUsize::new(0));
    let two = Runnable::new(move |ctx: Context| {
        let step_two = step_two.clone();
        async move {
            // Like Go, the first wait ignores cancellation: `two` consumes its step even when `one`
            // already died, then signals Healthy on a cancelled context (allowed).
            recv(&step_two).await;
            ctx.signal(Signal::Healthy)?;
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let one = Runnable::new(move |ctx: Context| {
        let (step_one, two) = (step_one.clone(), two.clone());
        let attempt = attempts.fetch_add(1, Ordering::SeqCst);
        async move {
            step(&ctx, &step_one).await?;
            ctx.run("two", two)?;
            if attempt == 0 {
                return RunResult::Err("first attempt fails".into());
            }
            ctx.signal(Signal::Healthy)?;
            step(&ctx, &step_one).await?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let root = Runnable::new(move |ctx: Context| {
        let (step_root, one) = (step_root.clone(), one.clone());
        async move {
            step(&ctx, &step_root).await?;
            ctx.run("one", one)?;
            step(&ctx, &step_root).await?;
            RunResult::Ok(())
        }
    });
    let m = Arc::new(InMemoryMetrics::new());
    let s = Supervisor::new(
        root,
        Options::new()
            .metrics(m.clone())
            .random_source(|| Box::new(Fixed(0.5))),
    )
    .await
    .unwrap();
    let expect = |want: &'static [(&'static str, NodeState)]| {
        let m = m.clone();
        async move {
            eventually(&format!("metrics {want:?}"), || {
                want.iter().all(|(dn, st)| m.state(dn) == Some(*st))
            })
            .await
        }
    };
    use NodeState::{Dead, Done, Healthy, New};
    expect(&[("root", New)]).await;
    step_root_tx.send(()).unwrap();
    expect(&[("root", New), ("root.one", New)]).await;
    step_one_tx.send(()).unwrap();
    step_two_tx.send(()).unwrap();
    expect(&[
        ("root", New),
        ("root.one", Dead),
        ("root.one.two", NodeState::Canceled),
    ])
    .await;
    step_one_tx.send(()).unwrap();
    expect(&[("root", New), ("root.one", Healthy), ("root.one.two", New)]).await;
    step_one_tx.send(()).unwrap();
    expect(&[("root", New), ("root.one", Done), ("root.one.two", New)]).await;
    step_two_tx.send(()).unwrap();
    expect(&[("root", New), ("root.one", Done), ("root.one.two", Healthy)]).await;
    assert_eq!(m.dns().len(), 3);
    shutdown_and_wait(&s).await;
}
