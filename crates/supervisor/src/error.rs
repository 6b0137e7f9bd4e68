//! Error types of the supervisor.

use crate::state::NodeState;

/// The error type runnables return. Any error converts into it with `?` or `.into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of a runnable.
pub type RunResult = Result<(), BoxError>;

/// The error a runnable returns when it stops because its context was cancelled (Go's
/// `ctx.Err()` == `context.Canceled`). A runnable whose context is cancelled and which returns
/// this error, or any error whose [`source`](std::error::Error::source) chain contains it, ends
/// in [`NodeState::Canceled`] (rule S6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("context canceled")]
pub struct Canceled;

/// Whether `err` is, or wraps (through `source()`), a [`Canceled`] error (Go's `errors.Is`).
pub(crate) fn is_canceled(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<Canceled>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Errors returned by the supervisor's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A runnable name failed the name check (T3, plus the `.` deviation).
    #[error("runnable name {0:?} is invalid")]
    InvalidName(String),
    /// The name is already used by a child of this incarnation (T4).
    #[error("runnable {0:?} already exists")]
    AlreadyExists(String),
    /// The name is reserved by a sub-logger (T5).
    #[error("runnable {0:?} would shadow reserved name (eg. sub-logger)")]
    ShadowsReservedName(String),
    /// The same name was given twice in one `run_group` call.
    #[error("duplicate child name {0:?}")]
    DuplicateChildName(String),
    /// `run`/`run_group` was called on a node that already signalled Healthy (R2).
    #[error("cannot run new runnable on non-NEW node")]
    NotNew,
    /// A sub-logger name is used by a child runnable (T7).
    #[error("name {0:?} already in use by child runnable")]
    NameInUseByChild(String),
    /// A sub-logger name failed the name check (T7).
    #[error("sub-logger name {0:?} is invalid")]
    InvalidSubLoggerName(String),
    /// The context belongs to an incarnation that has exited (documented deviation from C5: Go
    /// resolves stale contexts by DN and may act on a later incarnation or deadlock).
    #[error("stale context: {dn} incarnation {incarnation} is no longer running")]
    StaleContext {
        /// DN of the node the context was created for.
        dn: String,
        /// Incarnation number the context was bound to.
        incarnation: u64,
    },
    /// The supervisor has shut down (returned by `wait_settled` after shutdown).
    #[error("supervisor has shut down")]
    ShutDown,
    /// The processor actor could not be started.
    #[error("failed to start the supervisor processor: {0}")]
    Spawn(String),
}

/// Misuse of a signal (G1/G2). The Go supervisor panics on misuse; so does
/// [`Context::signal`](crate::Context::signal), with this error's text as panic message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SignalMisuse {
    #[error("node {dn} ({state}) signaled healthy")]
    Healthy { dn: String, state: NodeState },
    #[error("node {dn} ({state}) signaled done")]
    Done { dn: String, state: NodeState },
    #[error("node {dn} ({state}) signaled done twice")]
    DoneTwice { dn: String, state: NodeState },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped: {0}")]
    struct Wrapper(#[source] Canceled);

    #[test]
    fn canceled_is_found_through_the_source_chain() {
        assert!(is_canceled(&Canceled));
        assert!(is_canceled(&Wrapper(Canceled)));
        let other: BoxError = "boom".into();
        assert!(!is_canceled(other.as_ref()));
    }
}
