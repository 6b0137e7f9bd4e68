//! The ractor actor adapter: spawn on start, Healthy after `pre_start`, death on failure, panic
//! or kill, graceful stop on cancellation.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use supervisor::{
    Context, LogRecorder, NodeState, Options, Severity, Supervisor, actor_runnable,
    actor_runnable_with_stop_timeout,
};
use tokio::sync::mpsc;

enum Msg {
    Fail,
    Panic,
    /// Reports "hanging", then never returns from the handler.
    Hang,
    Ping(RpcReplyPort<usize>),
}

/// Reports its lifecycle on `events`; `fail_start` makes `pre_start` fail.
struct Probe {
    events: mpsc::UnboundedSender<&'static str>,
}

struct ProbeArgs {
    incarnation: usize,
    fail_start: bool,
}

impl Actor for Probe {
    type Msg = Msg;
    type State = usize;
    type Arguments = ProbeArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<Msg>,
        args: ProbeArgs,
    ) -> Result<usize, ActorProcessingErr> {
        if args.fail_start {
            return Err("refusing to start".into());
        }
        let _ = self.events.send("pre_start");
        Ok(args.incarnation)
    }

    async fn handle(
        &self,
        _me: ActorRef<Msg>,
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
    let probe = actor_runnable(Some(name.to_string()), move |_ctx: &Context| {
        let incarnation = count.fetch_add(1, Ordering::SeqCst);
        (
            Probe { events: tx.clone() },
            ProbeArgs {
                incarnation,
                fail_start: fail_starts.contains(&incarnation),
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
                Probe { events: tx.clone() },
                ProbeArgs {
                    incarnation: 0,
                    fail_start: false,
                },
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
