//! Runnables: async closures that receive a [`Context`] and return a [`RunResult`]. The same
//! runnable is called again on every restart of its node, so closure state survives restarts.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use crate::context::Context;
use crate::error::RunResult;

/// The boxed future a runnable returns.
pub type RunFuture = Pin<Box<dyn Future<Output = RunResult> + Send + 'static>>;

type RunFn = dyn Fn(Context) -> RunFuture + Send + Sync + 'static;

/// A supervised function. Build one from a closure with [`Runnable::new`] or `.into()`.
#[derive(Clone)]
pub struct Runnable(Arc<RunFn>);

impl Runnable {
    /// Wraps an async closure.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RunResult> + Send + 'static,
    {
        Runnable(Arc::new(move |ctx| Box::pin(f(ctx))))
    }

    /// Calls the runnable.
    pub(crate) fn call(&self, ctx: Context) -> RunFuture {
        (self.0)(ctx)
    }
}

impl<F, Fut> From<F> for Runnable
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = RunResult> + Send + 'static,
{
    fn from(f: F) -> Self {
        Runnable::new(f)
    }
}

impl fmt::Debug for Runnable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Runnable")
    }
}

/// The payload of a caught panic.
pub type PanicPayload = Box<dyn Any + Send + 'static>;

/// Polls a future, turning a panic into `Err(payload)`. Used for runnables, tasks spawned
/// through a context, and actor callbacks.
pub(crate) struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> CatchUnwind<F> {
    pub(crate) fn new(fut: F) -> Self {
        Self(Box::pin(fut))
    }
}

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, PanicPayload>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let fut = &mut self.get_mut().0;
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Calls `runnable` (catching a panic in the synchronous part of the call too).
pub(crate) fn call_catching(runnable: &Runnable, ctx: Context) -> Result<RunFuture, PanicPayload> {
    catch_unwind(AssertUnwindSafe(|| runnable.call(ctx)))
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &PanicPayload) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "Box<dyn Any>".to_string()
    }
}
