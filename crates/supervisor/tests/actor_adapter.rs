//! The ractor actor adapter: spawn on start, Healthy after `pre_start`, death on failure, panic
//! or kill, graceful stop on cancellation.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use supervisor::{
    Context, LogRecorder, NodeState, Options, Severity, Signal, Supervisor, TestHarness,
    actor_runnable, actor_runnable_with_stop_timeout,
};
use tokio::sync::mpsc;

enum Msg {
    Fail,
    Panic,
    /// Reports "hanging", then never returns from the handler.
    Hang,
    /// Reports "blocking", then blocks its thread (not an await point, so even a kill cannot
    /// interrupt it) until the flag is set.
    Block(Arc<AtomicBool>),
    /// Signals Done through the node's context, then stops the actor.
    Finish,
    /// Stops the actor without signalling Done.
    StopSelf,
    Ping(RpcReplyPort<usize>),
}

/// Reports its lifecycle on `events`; `fail_start` makes `pre_start` fail, `panic_start` makes
/// it panic.
struct Probe {
    events: mpsc::UnboundedSender<&'static str>,
    ctx: Option<Context>,
    /// Where `pre_start` sends the actor's own reference, if anywhere.
    refs: Option<mpsc::UnboundedSender<ActorRef<Msg>>>,
}

#[derive(Default)]
struct ProbeArgs {
    incarnation: usize,
    fail_start: bool,
    panic_start: bool,
}

impl Actor for Probe {
    type Msg = Msg;
    type State = usize;
    type Arguments = ProbeArgs;

    async fn pre_start(
        &self,
        me: ActorRef<Msg>,
        args: ProbeArgs,
    ) -> Result<usize, ActorProcessingErr> {
        if args.fail_start {
            return Err("refusing to start".into());
        }
        if args.panic_start {
            panic!("pre_start panicked");
        }
        let _ = self.events.send("pre_start");
        if let Some(refs) = &self.refs {
            let _ = refs.send(me);
        }
        Ok(args.incarnation)
    }

    async fn handle(
        &self,
        me: ActorRef<Msg>,
        msg: Msg,
        st: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Msg::Fail => Err("handler failed".into()),
            Msg::Panic => panic!("handler panicked"),
            Msg::Hang => {
                let _ = self.events.send("hanging");
                std::future::pending::<()>().await;
                Ok(())
            }
            Msg::Block(release) => {
                let _ = self.events.send("blocking");
                while !release.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            }
            Msg::Finish => {
                if let Some(ctx) = &self.ctx {
                    ctx.signal(Signal::Done)?;
                }
                me.stop(Some("finished".to_string()));
                Ok(())
            }
            Msg::StopSelf => {
                me.stop(Some("stopping by itself".to_string()));
                Ok(())
            }
            Msg::Ping(reply) => {
                let _ = reply.send(*st);
                Ok(())
            }
        }
    }

    async fn post_stop(
        &self,
        _me: ActorRef<Msg>,
        _st: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        let _ = self.events.send("post_stop");
        Ok(())
    }
}

struct Fixture {
    s: Supervisor,
    m: Arc<Recording>,
    logs: LogRecorder,
    events: mpsc::UnboundedReceiver<&'static str>,
    killer: Rc,
}

/// Runs a `Probe` named `name` at `root.probe`, in a group with a remote-controlled killer.
/// Incarnations numbered from 0; those listed in `fail_starts` fail in `pre_start`.
async fn start(name: &'static str, fail_starts: &'static [usize]) -> Fixture {
    quiet_runnable_panics();
    let (tx, events) = mpsc::unbounded_channel();
    let count = Arc::new(AtomicUsize::new(0));
    let probe = actor_runnable(Some(name.to_string()), move |ctx: &Context| {
        let incarnation = count.fetch_add(1, Ordering::SeqCst);
        (
            Probe {
                events: tx.clone(),
                ctx: Some(ctx.clone()),
                refs: None,
            },
            ProbeArgs {
                incarnation,
                fail_start: fail_starts.contains(&incarnation),
                ..ProbeArgs::default()
            },
        )
    });
    let killer = Rc::new();
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root_running(vec![("probe", probe), ("killer", killer.runnable())]),
        Options::new()
            .metrics(m.clone())
            .log_recorder(logs.clone())
            .random_source(|| Box::new(Fixed(0.0))),
    )
    .await
    .expect("supervisor starts");
    Fixture {
        s,
        m,
        logs,
        events,
        killer,
    }
}

fn find(name: &str) -> ActorRef<Msg> {
    ActorRef::<Msg>::where_is(name).expect("actor registered")
}

async fn ping(name: &str) -> usize {
    ractor::call!(find(name), Msg::Ping).expect("ping")
}

fn fatal(logs: &LogRecorder) -> Vec<String> {
    logs.entries_at("root.probe")
        .into_iter()
        .filter(|e| e.severity == Severity::Fatal)
        .map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_node_signals_healthy_once_pre_start_succeeded() {
    let mut f = start("adapter-healthy", &[]).await;
    assert_eq!(got("pre_start", &mut f.events).await, "pre_start");
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    assert_eq!(ping("adapter-healthy").await, 0);
    shutdown_and_wait(&f.s).await;
    // Shutdown cancels the node, which stops the actor gracefully.
    assert_eq!(got("post_stop", &mut f.events).await, "post_stop");
    assert_eq!(f.m.states("root.probe").last(), Some(&NodeState::Healthy));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_failure_kills_the_node_and_the_actor_is_respawned() {
    let mut f = start("adapter-fail", &[]).await;
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    find("adapter-fail").send_message(Msg::Fail).unwrap();
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Dead);
    f.m.wait_count("root.probe", NodeState::Healthy, 2).await;
    // Found again under the same name, now the second incarnation.
    assert_eq!(ping("adapter-fail").await, 1);
    assert_eq!(
        fatal(&f.logs),
        ["runnable returned error: actor failed: handler failed"]
    );
    let _ = f.events.try_recv();
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_panic_kills_the_node() {
    let f = start("adapter-panic", &[]).await;
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    find("adapter-panic").send_message(Msg::Panic).unwrap();
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Dead);
    let line = &fatal(&f.logs)[0];
    assert!(line.contains("handler panicked"), "{line}");
    f.m.wait_count("root.probe", NodeState::Healthy, 2).await;
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_actor_kills_the_node() {
    let f = start("adapter-kill", &[]).await;
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    find("adapter-kill").kill();
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Dead);
    assert_eq!(
        fatal(&f.logs),
        ["runnable returned error: actor terminated: killed"]
    );
    f.m.wait_count("root.probe", NodeState::Healthy, 2).await;
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_node_stops_the_actor_gracefully() {
    let mut f = start("adapter-cancel", &[]).await;
    assert_eq!(got("pre_start", &mut f.events).await, "pre_start");
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    f.killer.send(RcCmd::Die);
    assert_eq!(got("post_stop", &mut f.events).await, "post_stop");
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Canceled);
    // Restarted with no delay (Canceled), under the same registered name.
    assert_eq!(got("pre_start again", &mut f.events).await, "pre_start");
    f.m.wait_count("root.probe", NodeState::Healthy, 2).await;
    assert_eq!(ping("adapter-cancel").await, 1);
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_start_kills_the_node_and_is_retried_with_backoff() {
    let mut f = start("adapter-prestart", &[0]).await;
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Dead);
    assert_eq!(f.m.states("root.probe"), [NodeState::New, NodeState::Dead]);
    let line = &fatal(&f.logs)[0];
    assert!(
        line.starts_with("runnable returned error: actor failed to start:")
            && line.contains("refusing to start"),
        "{line}"
    );
    // The second incarnation starts after the first backoff and becomes Healthy.
    assert_eq!(got("pre_start", &mut f.events).await, "pre_start");
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_stuck_in_a_handler_is_killed_after_the_stop_timeout() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let probe = actor_runnable_with_stop_timeout(
        Some("adapter-stuck".to_string()),
        Duration::from_millis(200),
        move |_ctx: &Context| {
            (
                Probe {
                    events: tx.clone(),
                    ctx: None,
                    refs: None,
                },
                ProbeArgs::default(),
            )
        },
    );
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root_running(vec![("probe", probe)]),
        Options::new().metrics(m.clone()).log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor starts");
    assert_eq!(got("pre_start", &mut events).await, "pre_start");
    m.wait_count("root.probe", NodeState::Healthy, 1).await;
    find("adapter-stuck").send_message(Msg::Hang).unwrap();
    assert_eq!(got("hanging", &mut events).await, "hanging");
    // The graceful stop cannot get through the stuck handler; the kill does, so the node exits.
    shutdown_and_wait(&s).await;
    assert!(
        logs.entries_at("root.probe")
            .iter()
            .any(|e| e.message.starts_with("actor did not stop within 200ms")),
        "{:?}",
        logs.entries_at("root.probe")
    );
    // Killed, not stopped: post_stop never ran.
    assert!(events.try_recv().is_err());
}

// ---- Panics in actors propagate like a runnable's own panic ----------------------------------

/// A probe runnable named `name`; `args` makes each incarnation's arguments.
fn probe(
    name: &'static str,
    events: mpsc::UnboundedSender<&'static str>,
    args: impl Fn() -> ProbeArgs + Send + Sync + 'static,
) -> supervisor::Runnable {
    actor_runnable(Some(name.to_string()), move |ctx: &Context| {
        (
            Probe {
                events: events.clone(),
                ctx: Some(ctx.clone()),
                refs: None,
            },
            args(),
        )
    })
}

/// Under the test harness (propagate-panic), a panic in an actor's handler is re-raised by
/// `finish` with its original payload, instead of restarting the actor forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_panic_propagates_under_the_harness() {
    quiet_runnable_panics();
    let (tx, mut events) = mpsc::unbounded_channel();
    let h = TestHarness::start(root_running(vec![(
        "probe",
        probe("adapter-harness-panic", tx, ProbeArgs::default),
    )]))
    .await
    .unwrap();
    assert_eq!(got("pre_start", &mut events).await, "pre_start");
    let s = h.supervisor();
    eventually("probe healthy", || {
        s.node_state("root.probe") == Some(NodeState::Healthy)
    })
    .await;
    find("adapter-harness-panic")
        .send_message(Msg::Panic)
        .unwrap();
    // Handled either as a death (FATAL, then a restart) or as a propagated panic (the tree
    // shuts down).
    eventually("the panic to be handled", || {
        !fatal(h.logs()).is_empty() || s.live_runnables().is_empty()
    })
    .await;
    let err = within("finish", tokio::spawn(h.finish()))
        .await
        .expect_err("finish re-raises the actor's panic");
    let payload = err.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"handler panicked"));
}

/// With `Options::propagate_panic`, a panic in `pre_start` is propagated to the owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_pre_start_panic_is_propagated() {
    quiet_runnable_panics();
    let (tx, _events) = mpsc::unbounded_channel();
    let s = Supervisor::new(
        root_running(vec![(
            "probe",
            probe("adapter-prestart-panic", tx, || ProbeArgs {
                panic_start: true,
                ..ProbeArgs::default()
            }),
        )]),
        Options::new().propagate_panic(),
    )
    .await
    .unwrap();
    let payload = within("the panic", s.propagated_panic()).await;
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"pre_start panicked"));
    within("all runnables to exit", s.wait_stopped()).await;
}

// ---- An actor that stops on its own ---------------------------------------------------------

/// An actor that signals Done through its node's context and then stops ends Done, and is
/// not restarted (a Done node with a live context stays Done).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_that_signals_done_and_stops_ends_done() {
    let mut f = start("adapter-finish", &[]).await;
    assert_eq!(got("pre_start", &mut f.events).await, "pre_start");
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    find("adapter-finish").send_message(Msg::Finish).unwrap();
    assert_eq!(got("post_stop", &mut f.events).await, "post_stop");
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Done);
    within("settle", f.s.wait_settled()).await.unwrap();
    assert_eq!(
        f.m.states("root.probe"),
        [NodeState::New, NodeState::Healthy, NodeState::Done]
    );
    assert!(fatal(&f.logs).is_empty(), "{:?}", fatal(&f.logs));
    shutdown_and_wait(&f.s).await;
}

/// Stopping without having signalled Done is still a death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_that_stops_without_signalling_done_dies() {
    let f = start("adapter-stopself", &[]).await;
    f.m.wait_count("root.probe", NodeState::Healthy, 1).await;
    find("adapter-stopself")
        .send_message(Msg::StopSelf)
        .unwrap();
    assert_eq!(f.m.first_exit("root.probe").await, NodeState::Dead);
    assert_eq!(
        fatal(&f.logs),
        ["runnable returned error: actor terminated: stopping by itself"]
    );
    shutdown_and_wait(&f.s).await;
}

// ---- Never two incarnations of one actor at once --------------------------------------------

/// Sets the flag when dropped, so that a failing test does not leave a thread blocked.
struct ReleaseOnDrop(Arc<AtomicBool>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// An actor blocked in a handler survives both the graceful stop and the kill: its node does not
/// exit (so no second incarnation starts) until the actor is really gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_that_times_out_keeps_the_node_until_the_actor_is_gone() {
    let (tx, mut events) = mpsc::unbounded_channel();
    let (refs_tx, mut refs) = mpsc::unbounded_channel();
    // Unnamed, so that nothing but this adapter stops a second incarnation from starting next to
    // the first.
    let probe = actor_runnable_with_stop_timeout(None, Duration::from_millis(100), {
        move |ctx: &Context| {
            (
                Probe {
                    events: tx.clone(),
                    ctx: Some(ctx.clone()),
                    refs: Some(refs_tx.clone()),
                },
                ProbeArgs::default(),
            )
        }
    });
    let killer = Rc::new();
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root_running(vec![("probe", probe), ("killer", killer.runnable())]),
        Options::new()
            .metrics(m.clone())
            .log_recorder(logs.clone())
            .random_source(|| Box::new(Fixed(0.0))),
    )
    .await
    .expect("supervisor starts");
    assert_eq!(got("pre_start", &mut events).await, "pre_start");
    let first: ActorRef<Msg> = got("the probe", &mut refs).await;
    m.wait_count("root.probe", NodeState::Healthy, 1).await;
    let release = ReleaseOnDrop(Arc::new(AtomicBool::new(false)));
    first.send_message(Msg::Block(release.0.clone())).unwrap();
    assert_eq!(got("blocking", &mut events).await, "blocking");
    killer.send(RcCmd::Die);
    within(
        "the kill warning",
        logs.wait_for(|e| {
            e.dn == "root.probe" && e.message.starts_with("actor did not stop within 100ms")
        }),
    )
    .await;
    // Well past the kill timeout: the first actor still blocks, so no second one may start.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        events.try_recv().is_err(),
        "a second incarnation started while the first actor still runs"
    );
    assert_eq!(s.node_state("root.probe"), Some(NodeState::Healthy));
    assert_eq!(first.get_status(), ractor::ActorStatus::Running);
    drop(release);
    // Now the first actor exits (killed: no post_stop) and the node restarts.
    assert_eq!(got("pre_start again", &mut events).await, "pre_start");
    assert_eq!(first.get_status(), ractor::ActorStatus::Stopped);
    assert_eq!(
        m.states("root.probe")
            .into_iter()
            .filter(|s| s.is_exited())
            .collect::<Vec<_>>(),
        [NodeState::Canceled]
    );
    shutdown_and_wait(&s).await;
}
