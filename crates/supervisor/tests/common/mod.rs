//! Helpers shared by the supervisor integration tests (ports of the Go test helpers).
#![allow(dead_code)]

use std::future::Future;
use std::sync::{Arc, Once};
use std::time::Duration;

use supervisor::{
    BoxError, Canceled, Context, LogRecorder, NodeState, Options, RandomSource, RunResult,
    Runnable, SUPERVISOR_DN, Severity, Signal, Supervisor,
};
use tokio::sync::{Mutex, mpsc, oneshot};

/// Panics inside supervised runnables are expected in these tests and are caught by the
/// supervisor. With `RUST_BACKTRACE=1` the default hook symbolises a backtrace for each, which
/// takes hundreds of ms in debug builds; print one line for panics on tokio worker threads (where
/// runnables run) and keep the default hook for everything else (test assertions).
pub fn quiet_runnable_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let worker = std::thread::current().name().is_some_and(|n| {
                n.starts_with("tokio-runtime-worker") || n.starts_with("tokio-rt-worker")
            });
            if worker {
                eprintln!("runnable panicked (caught by the supervisor): {info}");
            } else {
                default(info);
            }
        }));
    });
}

/// A generous bound for waits that should complete quickly.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` every 2 ms until it holds (failing after [`WAIT`]).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
}

/// A receiver shared by every incarnation of a runnable.
pub type SharedRx<T> = Arc<Mutex<mpsc::UnboundedReceiver<T>>>;

pub fn channel<T>() -> (mpsc::UnboundedSender<T>, SharedRx<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Arc::new(Mutex::new(rx)))
}

/// Receives from a shared receiver.
pub async fn recv<T>(rx: &SharedRx<T>) -> T {
    rx.lock().await.recv().await.expect("sender dropped")
}

/// Go's `runnableBecomesHealthy`: signals Healthy, reports on `h`, waits for cancellation,
/// reports on `d`, returns the cancellation error.
pub fn becomes_healthy(h: mpsc::UnboundedSender<()>, d: mpsc::UnboundedSender<()>) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let (h, d) = (h.clone(), d.clone());
        async move {
            ctx.signal(Signal::Healthy)?;
            let _ = h.send(());
            ctx.cancelled().await;
            let _ = d.send(());
            Err(Canceled.into())
        }
    })
}

/// Go's `runnableSpawnsMore`: with `levels > 0` starts group {a, b} of `spawns_more(levels-1)`,
/// then behaves like [`becomes_healthy`].
pub fn spawns_more(
    h: mpsc::UnboundedSender<()>,
    d: mpsc::UnboundedSender<()>,
    levels: usize,
) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let (h, d) = (h.clone(), d.clone());
        async move {
            if levels > 0 {
                let (ch, _) = mpsc::unbounded_channel();
                let (cd, _) = mpsc::unbounded_channel();
                ctx.run_group([
                    ("a", spawns_more(ch.clone(), cd.clone(), levels - 1)),
                    ("b", spawns_more(ch, cd, levels - 1)),
                ])?;
            }
            ctx.signal(Signal::Healthy)?;
            let _ = h.send(());
            ctx.cancelled().await;
            let _ = d.send(());
            Err(Canceled.into())
        }
    })
}

/// Commands of the remote-controlled runnable.
pub enum RcCmd {
    BecomeHealthy,
    BecomeDone,
    Die,
    Panic,
    State(oneshot::Sender<NodeState>),
}

/// Go's `rc`: a runnable driven by commands; its state is kept per incarnation.
#[derive(Clone)]
pub struct Rc {
    tx: mpsc::UnboundedSender<RcCmd>,
    rx: SharedRx<RcCmd>,
}

impl Rc {
    pub fn new() -> Self {
        let (tx, rx) = channel();
        Self { tx, rx }
    }

    pub fn runnable(&self) -> Runnable {
        let rx = self.rx.clone();
        Runnable::new(move |ctx: Context| {
            let rx = rx.clone();
            async move {
                let mut rx = rx.lock().await;
                let mut state = NodeState::New;
                loop {
                    let cmd = tokio::select! {
                        c = rx.recv() => c,
                        _ = ctx.cancelled() => return Err(BoxError::from(Canceled)),
                    };
                    match cmd {
                        None => return Err("rc channel closed".into()),
                        Some(RcCmd::BecomeHealthy) => {
                            ctx.signal(Signal::Healthy)?;
                            state = NodeState::Healthy;
                        }
                        Some(RcCmd::BecomeDone) => {
                            ctx.signal(Signal::Done)?;
                            return Ok(());
                        }
                        Some(RcCmd::Die) => return Err("died on request".into()),
                        Some(RcCmd::Panic) => panic!("at the disco"),
                        Some(RcCmd::State(reply)) => {
                            let _ = reply.send(state);
                        }
                    }
                }
            }
        })
    }

    pub fn send(&self, cmd: RcCmd) {
        self.tx.send(cmd).expect("rc receiver gone");
    }

    /// The state of the incarnation that answers (a restarting node answers once it runs).
    pub async fn state(&self) -> NodeState {
        let (tx, rx) = oneshot::channel();
        self.send(RcCmd::State(tx));
        rx.await.unwrap_or(NodeState::Dead)
    }

    /// Go's `waitState`: asks until the runnable reports `want`.
    pub async fn wait_state(&self, want: NodeState) {
        within(&format!("rc state {want}"), async {
            loop {
                if self.state().await == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
    }
}

/// A random source that always returns the same value (controls backoff jitter).
#[derive(Debug, Clone, Copy)]
pub struct Fixed(pub f64);

impl RandomSource for Fixed {
    fn next_f64(&mut self) -> f64 {
        self.0
    }
}

/// The usual root: runs the given group, signals Healthy and Done, returns success.
pub fn root_running(group: Vec<(&'static str, Runnable)>) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let group = group.clone();
        async move {
            ctx.run_group(group)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    })
}

/// Shuts down and waits (bounded) until nothing is live.
pub async fn shutdown_and_wait(s: &Supervisor) {
    s.shutdown();
    within("all runnables to exit", s.wait_stopped()).await;
    assert!(s.live_runnables().is_empty());
}

/// Receives one message (bounded).
pub async fn got<T>(what: &str, rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    within(what, rx.recv()).await.expect("channel closed")
}

/// Receives from a shared receiver, or returns the cancellation error once `ctx` is cancelled.
pub async fn step<T>(ctx: &Context, rx: &SharedRx<T>) -> Result<T, BoxError> {
    tokio::select! {
        v = recv(rx) => Ok(v),
        _ = ctx.cancelled() => Err(Canceled.into()),
    }
}

/// A metrics sink that keeps every notification, in order.
#[derive(Debug, Default)]
pub struct Recording {
    events: std::sync::Mutex<Vec<(String, NodeState)>>,
}

impl supervisor::Metrics for Recording {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        self.events
            .lock()
            .expect("metrics lock")
            .push((dn.to_string(), state));
    }
}

impl Recording {
    pub fn events(&self) -> Vec<(String, NodeState)> {
        self.events.lock().expect("metrics lock").clone()
    }

    /// The states reported for `dn`, in order.
    pub fn states(&self, dn: &str) -> Vec<NodeState> {
        self.events()
            .into_iter()
            .filter(|(d, _)| d == dn)
            .map(|(_, s)| s)
            .collect()
    }

    /// Waits until `dn` has been reported in `state` at least `n` times.
    pub async fn wait_count(&self, dn: &str, state: NodeState, n: usize) {
        eventually(&format!("{dn} reported {state} {n} times"), || {
            self.states(dn).iter().filter(|s| **s == state).count() >= n
        })
        .await
    }

    /// The first exit state (Done/Dead/Canceled) reported for `dn`.
    pub async fn first_exit(&self, dn: &str) -> NodeState {
        eventually(&format!("{dn} to exit"), || {
            self.states(dn).iter().any(|s| s.is_exited())
        })
        .await;
        self.states(dn)
            .into_iter()
            .find(|s| s.is_exited())
            .expect("an exit state")
    }
}

/// A running supervisor with what the tests observe it through.
pub struct Fixture {
    /// The supervisor.
    pub s: Supervisor,
    /// Every state each node went through.
    pub m: Arc<Recording>,
    /// Every log line.
    pub logs: LogRecorder,
}

/// A supervisor of `root` with a recording metrics sink, a log recorder and backoff jitter
/// fixed at r=0 (delays at the low end of their ranges, `docs/supervisor.md#restart-backoff`:
/// 250 ms, 375 ms, ...).
pub async fn start(root: Runnable) -> Fixture {
    start_with(root, |options| options).await
}

/// [`start`] with more options: `more` adds to the fixture's (another metrics sink, a restart
/// policy, `propagate_panic`, ...).
pub async fn start_with(root: Runnable, more: impl FnOnce(Options) -> Options) -> Fixture {
    quiet_runnable_panics();
    let m = Arc::new(Recording::default());
    let logs = LogRecorder::new();
    let options = Options::new()
        .metrics(m.clone())
        .log_recorder(logs.clone())
        .random_source(|| Box::new(Fixed(0.0)));
    let s = Supervisor::new(root, more(options))
        .await
        .expect("supervisor starts");
    Fixture { s, m, logs }
}

/// The backoffs the supervisor logged for `dn`'s restarts so far (`"250ms"`, ...).
pub fn rescheduled(logs: &LogRecorder, dn: &str) -> Vec<String> {
    let prefix = format!("rescheduling supervised node {dn} with backoff ");
    logs.entries_at(SUPERVISOR_DN)
        .into_iter()
        .filter_map(|e| e.message.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// [`rescheduled`], once `dn` has been rescheduled at least `n` times.
pub async fn wait_rescheduled(logs: &LogRecorder, dn: &str, n: usize) -> Vec<String> {
    eventually(&format!("{dn} rescheduled {n} times"), || {
        rescheduled(logs, dn).len() >= n
    })
    .await;
    rescheduled(logs, dn)
}

/// The fatal log lines of `dn` (why it died).
pub fn fatal_at(logs: &LogRecorder, dn: &str) -> Vec<String> {
    logs.entries_at(dn)
        .into_iter()
        .filter(|e| e.severity == Severity::Fatal)
        .map(|e| e.message)
        .collect()
}

/// A runnable that waits for its context to be cancelled and returns the cancellation error.
pub fn waits_for_cancel() -> Runnable {
    Runnable::new(|ctx: Context| async move {
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    })
}
