//! The supervision tree of devmgr, with the semantics of Monogon's Go supervisor (described in
//! `docs/supervisor.md` in the repository): runnables named by DNs such as `root.devmgr.listener`,
//! Healthy/Done signals, cancellation of a dead node's subtree and group siblings, and restarts
//! with per-node exponential backoff, on top of a ractor processor actor.
//!
//! # Usage
//!
//! ```
//! use supervisor::{Canceled, Context, Options, Signal, Supervisor};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sup = Supervisor::new(
//!     |ctx: Context| async move {
//!         // Start a child at DN `root.worker`; it is restarted with backoff when it fails.
//!         ctx.run("worker", |ctx: Context| async move {
//!             ctx.signal(Signal::Healthy)?;
//!             ctx.logger().info("serving");
//!             ctx.cancelled().await;
//!             Err(Canceled.into()) // returning the cancellation error ends in Canceled
//!         })?;
//!         ctx.signal(Signal::Healthy)?;
//!         ctx.signal(Signal::Done)?; // nothing left to do here; children keep running
//!         Ok(())
//!     },
//!     Options::new(),
//! )
//! .await?;
//! sup.wait_settled().await?;
//! assert_eq!(sup.live_runnables(), ["root.worker"]);
//! sup.shutdown();
//! sup.wait_stopped().await;
//! # Ok(())
//! # }
//! ```
//!
//! Actors join the tree through [`actor_runnable`]: the actor is spawned when its node starts,
//! the node signals Healthy once `pre_start` succeeded, dies when the actor fails, is killed, or
//! stops on its own without having signalled Done, and the actor is stopped when the node's
//! context is cancelled (and killed if it has not stopped after [`DEFAULT_ACTOR_STOP_TIMEOUT`],
//! see [`actor_runnable_with_stop_timeout`]). An actor that signals [`Signal::Done`] through the
//! context its factory received, and then stops, ends its node Done. A panic in any of the
//! actor's callbacks is a panic of its node's runnable (see below), and the node never exits
//! while its actor still runs, so two incarnations of an actor never run at once.
//!
//! Restart backoff follows Go's parameters (500 ms, ×1.5, ±50 %, capped at 60 s) unless a
//! [`RestartPolicy`] says otherwise, e.g. from TOML:
//!
//! ```
//! let policy = supervisor::RestartPolicy::from_toml_str(r#"
//!     [defaults]
//!     max_interval = "30s"
//!     [overrides."root.devmgr.listener"]
//!     initial_interval = "100ms"
//! "#)?;
//! let options = supervisor::Options::new().restart_policy(policy);
//! # let _ = options;
//! # Ok::<(), supervisor::PolicyError>(())
//! ```
//!
//! A subsystem that may be mounted anywhere in a tree keeps its own policy as a
//! [`SubtreePolicy`], whose overrides name nodes relative to the node it is attached at; the
//! application attaches it where it runs the subsystem, and its own absolute overrides keep
//! precedence (the rules, with an example, are on [`RestartPolicy`]):
//!
//! ```
//! # use supervisor::{RestartPolicy, SubtreePolicy};
//! // The subsystem's section, relative: `listener` is the child `listener` of its node.
//! let devmgr = SubtreePolicy::from_toml_str(r#"
//!     [overrides.listener]
//!     initial_interval = "100ms"
//! "#)?;
//! // The application runs the subsystem as `root.agent.devices`.
//! let policy = RestartPolicy::default().attach("root.agent.devices", devmgr)?;
//! assert_eq!(policy.params_for("root.agent.devices.listener").initial_interval.as_millis(), 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A DN of the policy that names no node once the node above it can no longer start it (a
//! typo such as `root.devmgr.listner`) is logged as a warning at the supervisor's DN, naming
//! the closest existing DN, and listed by [`Supervisor::unmatched_overrides`].
//!
//! A bad file is rejected with a [`PolicyError`] naming the line and field at fault. Parameters
//! that would restart a failing runnable in a tight loop are rejected, from TOML and from
//! [`RestartPolicy::new`]/[`RestartPolicy::with_override`]/[`Backoff::new`] alike
//! ([`BackoffParams::validate`]): an initial interval below [`MIN_INITIAL_INTERVAL`] (1 ms), a
//! multiplier that is not a finite number ≥ 1, a randomization factor outside `[0, 1]`, or a
//! max interval below the initial interval.
//!
//! # Runtime, and rules for runnable authors
//!
//! Runnables, the tasks they spawn through [`Context::spawn`], and the actors of
//! [`actor_runnable`] are tokio tasks on the runtime [`Supervisor::new`] was called on. The
//! processor (the event loop that starts runnables, handles their exits, restarts them, settles
//! and shuts down) runs on a thread of its own with its own small runtime, together with the
//! backoff timers; when the runnables' runtime shuts down, the supervisor stops too.
//!
//! Go preempts goroutines; tokio cannot preempt a task. A task runs until its `poll` returns,
//! so:
//!
//! * **A runnable must never block its thread**: no busy loops, no `std::thread::sleep`, no
//!   blocking file, socket or process calls, no long computations, no lock held across a long
//!   wait. Use async I/O and timers, `tokio::task::spawn_blocking`, or a thread of its own.
//!   Cancellation is only seen at an await point, so a loop must await (or check
//!   [`Context::is_cancelled`]) to stop in time.
//! * A blocking runnable takes a worker thread for as long as it blocks. The supervisor itself
//!   keeps running (restarts, shutdown, settling, logs and metrics), but the other runnables,
//!   tasks and actors sharing those worker threads are slowed down or stopped: with every worker
//!   blocked, nothing else runs.
//! * Every poll of a runnable, of a task spawned through a context and of an actor callback is
//!   timed. One that has not returned after [`Options::blocked_poll_warning`] (1 s by default)
//!   is reported at the supervisor's DN: `runnable <dn> has not yielded for <d>: ...` (or
//!   `task spawned through the context of <dn>`, `actor of <dn>`), and again when it returns.
//! * Metrics sinks run on the processor's thread with the tree locked; they must not block (a
//!   blocked sink stops the processor).
//!
//! # Panics
//!
//! By default a panic kills its node (Dead, `panic: <message>`, restart with backoff). With
//! [`Options::propagate_panic`] (always set by [`TestHarness`]) the first panic shuts the tree
//! down and its payload is kept for the owner. Counted as a panic of a node's runnable, in both
//! modes: a panic of the runnable's own future; of a task spawned through its context with
//! [`Context::spawn`] (the run is ended as if the runnable had panicked; after the runnable has
//! returned, the panic is logged at the node's DN, and propagated when panics are); and of the
//! callbacks of an actor run by [`actor_runnable`] (raised again in the runnable, with the
//! original payload, once the actor is gone). A task started with a plain `tokio::spawn` is not
//! supervised: its panic only reaches its `JoinHandle`.
//!
//! # Performance
//!
//! `cargo bench -p supervisor --bench tree` measures the time to start a tree of 1,000
//! runnables until all signalled Healthy, the same until the settle detector releases (which
//! includes its 51 ms quiet period), and the restart latency from a failure to the next
//! incarnation running, backoff excluded. Each supervisor uses one thread for its processor;
//! each poll of a runnable is timed with two clock reads unless
//! [`Options::blocked_poll_warning`] is set to zero.
//!
//! # Deviations from the Go supervisor
//!
//! In full here; `docs/supervisor.md#differences-from-the-go-supervisor` has a summary.
//!
//! Semantics:
//!
//! * Names containing `.` are rejected (Go accepts them and then mis-resolves DNs).
//! * Contexts are bound to an incarnation: using one (`run`, `run_group`, `signal`,
//!   `sub_logger`) once its run's exit was handled returns [`Error::StaleContext`], whether or
//!   not the node was restarted since, instead of acting on the new incarnation, panicking on a
//!   "misused" signal or deadlocking. A helper task that outlives its runnable gets this error
//!   as soon as the runnable's return was handled.
//! * Runnable contexts cannot be forged, so Go's "non-runnable context" panic cannot happen.
//! * A caught panic becomes `panic: <message>`; the stack trace is left to the panic hook.
//! * With [`Options::propagate_panic`] the first panic shuts the tree down and is kept for
//!   [`Supervisor::take_propagated_panic`] / [`Supervisor::propagated_panic`] instead of
//!   killing the process; the owner must collect and re-raise it. [`TestHarness::finish`]
//!   re-raises it as soon as it is seen (even while runnables that ignore cancellation are still
//!   live), and so does dropping a [`TestHarness`] without `finish`.
//! * Panics in tasks spawned through [`Context::spawn`] and in actor callbacks count as panics
//!   of the runnable (see Panics). In Go only the runnable's own goroutine is covered, and a
//!   panic in any other goroutine crashes the process whatever the options; here a task from a
//!   plain `tokio::spawn` is not supervised at all.
//! * The test harness reports a [`Canceled`] error returned while the context is still live as
//!   an error (as Go's `errors.Is(err, ctx.Err())` does).
//! * Cancellation is recognised through `source()` chains and inside [`std::io::Error`]s (Go's
//!   `errors.Is` through `%w`); wrappers that hide the wrapped error from `source()` (thiserror's
//!   `#[error(transparent)]`, an `anyhow::Error` turned into a boxed error) are not seen through
//!   (see [`Canceled`]).
//! * A panicking metrics sink is caught and logged at the supervisor's DN; the transition still
//!   happens. Should the processor actor stop unexpectedly anyway, the tree is shut down without
//!   it (every context cancelled, nodes marked Dead as their runnables return), so
//!   `wait_stopped` does not hang; `wait_settled` then returns [`Error::ShutDown`].
//! * Supervisor log lines print durations like Go (`0s`, `250ms`, `1m30s`).
//! * The restart pass runs right after every exit event instead of on a 1 ms tick (with the
//!   same results), and a zero backoff schedules at once instead of through a timer; the
//!   settle detector releases waiters after 51 ms without events, as Go's does after 50 quiet
//!   ticks.
//! * The settle detector also counts the first poll of a started runnable as activity, and does
//!   not release while a started runnable waits for its first poll (a goroutine starts at once;
//!   a tokio task waits for a free worker thread).
//! * Backoff parameters are configurable through a [`RestartPolicy`], with [`SubtreePolicy`]s
//!   attached to subtrees, and DNs of the policy that name no node are reported (Go hard-codes
//!   the parameters).
//! * Children added after shutdown are marked Dead at once instead of by the liquidator.
//! * Duplicate names within one `run_group` call are rejected (Go's map keys cannot repeat).
//! * `wait_settled` after shutdown returns [`Error::ShutDown`] instead of blocking forever, and
//!   the liquidator stops as soon as nothing is live (also when nothing was live at shutdown).
//! * A `schedule` for a node that is not New (impossible by construction) is logged as an error
//!   instead of panicking the processor.
//! * Runnables start in the order of the `run_group` call (Go: random map order).
//! * Actors are supervised through [`actor_runnable`] (no Go counterpart).
//!
//! Runtime:
//!
//! * Runnables are tokio tasks, which are not preempted: a runnable that busy-loops or blocks
//!   holds a worker thread, where a Go goroutine would be preempted. The processor runs on its
//!   own thread so that it cannot be starved, and blocked polls are reported (see Runtime). Go
//!   has neither (it needs neither).
//! * The supervisor stops when the runtime of its runnables shuts down (their tasks are gone):
//!   what was live is marked Dead and the processor's thread ends.
//! * Go's processor and liquidator are goroutines; here the processor is a ractor actor on its
//!   own thread, and the liquidator is a mode of it.
//!
//! Not ported:
//!
//! * `RawLogger` (a raw line writer per DN) and `LogTree` (reading the log tree): Go's logtree is
//!   not ported. Log lines go to `tracing` with the DN as the `dn` field, and to a
//!   [`LogRecorder`] when one is set (what tests read instead of the logtree); a raw byte stream
//!   (a child process's output) is written by the runnable to wherever it wants.
//! * Verbosity levels (`V(n)`): [`Logger`] has Info, Warning, Error and Fatal; finer detail goes
//!   through `tracing`'s `debug!`/`trace!` and its filters.
//! * `MustSubLogger`: [`Context::sub_logger`] returns a `Result` (`.expect` it if wanted).
//! * The support runnables `RunCommand` (with `ParseKLog`, `SignalChan`) and `GRPCServer`:
//!   devmgr has no runnable that is a child process (the loader's short modprobe.d `install`
//!   commands run on a blocking thread) and serves no gRPC; they are thin wrappers (signal
//!   Healthy, run, return the result) that a runnable writes in a few lines with
//!   `tokio::process` or its server's API. Go's `RunCommand` quirk (a killed process ends Dead,
//!   not Canceled) has no counterpart.
//! * `MetricsPrometheus`: [`TransitionMetrics`] keeps the same gauge and counter semantics
//!   without a Prometheus dependency.

mod actor;
mod backoff;
mod context;
mod duration;
mod error;
mod harness;
mod logging;
mod metrics;
mod name;
mod policy;
mod processor;
mod runnable;
mod shared;
mod state;
mod supervisor;
mod token;
mod tree;
mod unmatched;
mod watch;

pub use actor::{
    ActorExit, DEFAULT_ACTOR_STOP_TIMEOUT, actor_runnable, actor_runnable_with_stop_timeout,
};
pub use backoff::{
    Backoff, BackoffParams, InvalidPolicy, MIN_INITIAL_INTERVAL, RandomSource, XorShift,
};
pub use context::Context;
pub use duration::{MAX_DURATION, parse_duration};
pub use error::{BoxError, Canceled, Error, RunResult};
pub use harness::TestHarness;
pub use logging::{LogEntry, LogRecorder, Logger, SUPERVISOR_DN, Severity};
pub use metrics::{DnState, InMemoryMetrics, Metrics, TransitionMetrics};
pub use name::is_valid_name;
pub use policy::{PolicyError, PolicySection, RestartPolicy, SubtreePolicy};
pub use runnable::{PanicPayload, RunFuture, Runnable};
pub use state::{NodeState, Signal};
pub use supervisor::{Options, Supervisor};
pub use token::CancelToken;
pub use unmatched::UnmatchedOverride;
