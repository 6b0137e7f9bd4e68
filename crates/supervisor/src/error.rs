//! Error types of the supervisor.

use crate::state::NodeState;

/// The error type runnables return. Any error converts into it with `?` or `.into()`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of a runnable.
pub type RunResult = Result<(), BoxError>;

/// The error a runnable returns when it stops because its context was cancelled (Go's
/// `ctx.Err()` == `context.Canceled`). A runnable whose context is cancelled and which returns
/// this error, or an error that wraps it, ends in [`NodeState::Canceled`] (see
/// `docs/supervisor.md#how-an-exit-is-classified`).
///
/// Wrapping is followed like Go's `errors.Is` through `%w`: along the
/// [`source`](std::error::Error::source) chain (thiserror's `#[source]`/`#[from]`, anyhow's
/// `context`), and into [`std::io::Error`]s made with `io::Error::other`/`io::Error::new`
/// (whose `source()` skips the wrapped error, so it is reached through `get_ref`). A wrapper that
/// hides the wrapped error itself from `source()` cannot be seen through: `#[error(transparent)]`
/// of thiserror, or an `anyhow::Error` turned into a boxed error with `into()` (wrap the
/// cancellation with `.context(..)` instead, or return it unwrapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("context canceled")]
pub struct Canceled;

/// Whether `err` is, or wraps, a [`Canceled`] error (Go's `errors.Is`): through `source()`, and
/// into the error an [`std::io::Error`] carries.
pub(crate) fn is_canceled(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<Canceled>() {
            return true;
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            // `io::Error::source()` returns the wrapped error's source, skipping the wrapped
            // error itself.
            Some(inner) => Some(inner),
            None => e.source(),
        };
    }
    false
}

/// Errors returned by the supervisor's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A runnable name failed the name check (see `docs/supervisor.md#names-and-dns`).
    #[error("runnable name {0:?} is invalid")]
    InvalidName(String),
    /// The name is already used by a child of this incarnation, whatever that child's state.
    #[error("runnable {0:?} already exists")]
    AlreadyExists(String),
    /// The name is reserved by a sub-logger.
    #[error("runnable {0:?} would shadow reserved name (eg. sub-logger)")]
    ShadowsReservedName(String),
    /// The same name was given twice in one `run_group` call.
    #[error("duplicate child name {0:?}")]
    DuplicateChildName(String),
    /// `run`/`run_group` was called on a node that already signalled Healthy (see
    /// `docs/supervisor.md#starting-children-and-groups`).
    #[error("cannot run new runnable on non-NEW node")]
    NotNew,
    /// A sub-logger name is used by a child runnable.
    #[error("name {0:?} already in use by child runnable")]
    NameInUseByChild(String),
    /// A sub-logger name failed the name check.
    #[error("sub-logger name {0:?} is invalid")]
    InvalidSubLoggerName(String),
    /// The context belongs to an incarnation that has exited (unlike Go, which resolves stale
    /// contexts by DN and may act on a later incarnation or deadlock).
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

/// Misuse of a signal (see `docs/supervisor.md#signals-healthy-and-done`). The Go supervisor
/// panics on misuse; so does
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

    #[derive(Debug, thiserror::Error)]
    #[error("i/o failed: {0}")]
    struct IoWrapper(#[source] std::io::Error);

    /// `io::Error::source()` skips the error it wraps (it returns that error's own source), so
    /// `io::Error::other(Canceled)` is only seen through `get_ref` (Go: `errors.Is` through
    /// `%w`).
    #[test]
    fn canceled_is_found_inside_io_errors() {
        use std::io;
        assert!(is_canceled(&io::Error::other(Canceled)));
        assert!(is_canceled(&io::Error::new(
            io::ErrorKind::Interrupted,
            Wrapper(Canceled)
        )));
        assert!(is_canceled(&IoWrapper(io::Error::other(Canceled))));
        assert!(is_canceled(&io::Error::other(BoxError::from(Canceled))));
        assert!(is_canceled(&io::Error::other(io::Error::other(Canceled))));
        let boxed: BoxError = io::Error::other(Canceled).into();
        assert!(is_canceled(boxed.as_ref()));
        assert!(!is_canceled(&io::Error::other("boom")));
        assert!(!is_canceled(&io::Error::from(io::ErrorKind::Interrupted)));
        assert!(!is_canceled(&IoWrapper(io::Error::other("boom"))));
    }
}
