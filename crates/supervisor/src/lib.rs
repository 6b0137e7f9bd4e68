//! The supervision tree of devmgr, with the semantics of Monogon's Go supervisor: runnables
//! named by DNs such as `root.devmgr.listener`, Healthy/Done signals, cancellation of a dead
//! node's subtree and group siblings, and restarts with per-node exponential backoff, on top of
//! a ractor processor actor. The rules, and every difference from the Go supervisor, are in
//! `docs/supervisor.md` in the repository.
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
//! Actors join the tree through [`actor_runnable`] (stopped, and killed after
//! [`DEFAULT_ACTOR_STOP_TIMEOUT`], when their node is cancelled; see
//! [`actor_runnable_with_stop_timeout`] and `docs/supervisor.md#actors-under-supervision`).
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
//! A DN of the policy that names no node is warned about and listed by
//! [`Supervisor::unmatched_overrides`]; a bad file is rejected with a [`PolicyError`] naming the
//! line and field, and parameters that would restart in a tight loop by
//! [`BackoffParams::validate`] (`docs/supervisor.md#restart-policy-and-subtree-policies`).
//!
//! # Runtime, and rules for runnable authors
//!
//! Runnables, the tasks they spawn through [`Context::spawn`], and the actors of
//! [`actor_runnable`] are tokio tasks on the runtime [`Supervisor::new`] was called on; the
//! processor runs on a thread of its own. Tokio cannot preempt a task, so **a runnable must
//! never block its thread**, and a poll that has not returned after
//! [`Options::blocked_poll_warning`] is reported (`docs/supervisor.md#runnables-and-contexts`).
//!
//! # Panics
//!
//! A panic of a runnable, of a task from [`Context::spawn`] or of an actor callback kills its
//! node; with [`Options::propagate_panic`] (always set by [`TestHarness`]) the first panic shuts
//! the tree down and is kept for the owner (`docs/supervisor.md#panics`).
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
//! Listed in `docs/supervisor.md#differences-from-the-go-supervisor`.

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
