//! A test harness like Go's `TestHarness` (see `docs/supervisor.md#test-harness`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::context::Context;
use crate::error::{Error, RunResult, is_canceled};
use crate::logging::{LogRecorder, SUPERVISOR_DN, Severity};
use crate::runnable::Runnable;
use crate::supervisor::{Options, Supervisor};

/// Runs a runnable as the root of a fresh supervisor with panic propagation and a log recorder
/// that echoes every line to the (captured) test output. Finish it with
/// [`TestHarness::finish`], which shuts the tree down, waits until no runnable is live, and
/// re-raises a propagated panic or reports errors returned by the runnable.
///
/// A harness dropped without `finish` (a forgotten call, or an early return) still reports: its
/// `Drop` shuts the tree down and re-raises a panic already propagated, or panics with the errors
/// recorded so far (unless the thread is already panicking). It cannot wait for runnables to
/// exit, so call `finish` to see everything.
#[derive(Debug)]
#[must_use = "call `finish().await`, which reports runnable panics and errors"]
pub struct TestHarness {
    supervisor: Supervisor,
    logs: LogRecorder,
    errors: Arc<Mutex<Vec<String>>>,
    finished: bool,
}

impl TestHarness {
    /// Starts `r` as the root. The test name logged is the current thread's name (the test's
    /// name under `cargo test` with a current-thread runtime).
    pub async fn start(r: impl Into<Runnable>) -> Result<Self, Error> {
        Self::start_with(r, Options::new()).await
    }

    /// Like [`TestHarness::start`] with extra options (panic propagation and the recorder are
    /// always set).
    pub async fn start_with(r: impl Into<Runnable>, options: Options) -> Result<Self, Error> {
        let r: Runnable = r.into();
        let logs = LogRecorder::echoing();
        let errors = Arc::new(Mutex::new(Vec::new()));
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let wrapper = {
            let errors = errors.clone();
            move |ctx: Context| {
                let r = r.clone();
                let errors = errors.clone();
                let name = name.clone();
                async move {
                    ctx.logger().info(format!("Starting test {name}..."));
                    let own = ctx.clone();
                    let res: RunResult = r.call(ctx).await;
                    match res {
                        // Go: `errors.Is(err, ctx.Err())`, which only holds once the context is
                        // cancelled.
                        Err(e) if !(own.is_cancelled() && is_canceled(e.as_ref())) => {
                            let text =
                                format!("Supervised runnable in harness returned error: {e}");
                            match errors.lock() {
                                Ok(mut g) => g.push(text),
                                Err(p) => p.into_inner().push(text),
                            }
                            Err(e)
                        }
                        _ => Ok(()),
                    }
                }
            }
        };
        let options = options.propagate_panic().log_recorder(logs.clone());
        let supervisor = Supervisor::new(wrapper, options).await?;
        Ok(Self {
            supervisor,
            logs,
            errors,
            finished: false,
        })
    }

    /// The supervisor.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The recorded log lines.
    pub fn logs(&self) -> &LogRecorder {
        &self.logs
    }

    /// Shuts the tree down early (the `cancel` Go's harness returns).
    pub fn cancel(&self) {
        self.supervisor.shutdown();
    }

    /// Shuts down, waits until no runnable is live (logging the live DNs every 5 s), then
    /// re-raises a propagated panic, or panics if the runnable returned errors. A propagated
    /// panic is re-raised as soon as it is seen, even while runnables that ignore cancellation
    /// are still live.
    ///
    /// # Panics
    ///
    /// When a runnable panicked, or the harnessed runnable returned a non-cancellation error.
    pub async fn finish(mut self) {
        self.finished = true;
        self.supervisor.shutdown();
        let mut last_report = Instant::now();
        loop {
            if let Some(payload) = self.supervisor.take_propagated_panic() {
                std::panic::resume_unwind(payload);
            }
            let live = self.supervisor.live_runnables();
            if live.is_empty() {
                break;
            }
            if last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                crate::logging::Logger::new(SUPERVISOR_DN, Some(self.logs.clone())).log(
                    Severity::Warning,
                    format!("still live: {}", live.join(", ")),
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if let Some(payload) = self.supervisor.take_propagated_panic() {
            std::panic::resume_unwind(payload);
        }
        let errors = self.errors();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    fn errors(&self) -> Vec<String> {
        match self.errors.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl Drop for TestHarness {
    fn drop(&mut self) {
        if self.finished || std::thread::panicking() {
            return;
        }
        self.supervisor.shutdown();
        if let Some(payload) = self.supervisor.take_propagated_panic() {
            std::panic::resume_unwind(payload);
        }
        let errors = self.errors();
        assert!(
            errors.is_empty(),
            "TestHarness dropped without finish(): {}",
            errors.join("\n")
        );
    }
}
