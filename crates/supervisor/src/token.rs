//! A small hierarchical cancellation token (the port's equivalent of Go's cancellable
//! `context.Context`): cancelling a token cancels every token derived from it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
    children: Mutex<Vec<Weak<Inner>>>,
}

impl Inner {
    fn cancel(&self) {
        if self.cancelled.swap(true, Ordering::SeqCst) {
            return;
        }
        self.notify.notify_waiters();
        let children = match self.children.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for child in children.iter().filter_map(Weak::upgrade) {
            child.cancel();
        }
    }
}

/// A cancellation token. Clones share the same state; [`CancelToken::child_token`] derives a
/// token that is cancelled together with its parent (and can also be cancelled on its own).
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

impl CancelToken {
    /// A new, live token with no parent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Derives a token that is cancelled when `self` is cancelled. If `self` is already
    /// cancelled, the new token starts cancelled.
    pub fn child_token(&self) -> CancelToken {
        let child = CancelToken::new();
        {
            let mut children = match self.inner.children.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            // Register under the lock so that a concurrent `cancel` either sees the child or
            // has already set the flag (checked below).
            children.retain(|w| w.strong_count() > 0);
            children.push(Arc::downgrade(&child.inner));
        }
        if self.is_cancelled() {
            child.cancel();
        }
        child
    }

    /// Cancels this token and every token derived from it. Idempotent.
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether the token has been cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled (immediately if it already is).
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn cancelling_a_parent_cancels_derived_tokens() {
        let root = CancelToken::new();
        let child = root.child_token();
        let grandchild = child.child_token();
        let waiter = tokio::spawn({
            let g = grandchild.clone();
            async move { g.cancelled().await }
        });
        root.cancel();
        waiter.await.unwrap();
        assert!(child.is_cancelled() && grandchild.is_cancelled());
    }

    #[test]
    fn cancelling_a_child_leaves_the_parent_live() {
        let root = CancelToken::new();
        let child = root.child_token();
        child.cancel();
        assert!(!root.is_cancelled());
        assert!(!root.child_token().child_token().is_cancelled());
    }

    #[test]
    fn a_token_derived_from_a_cancelled_token_starts_cancelled() {
        let root = CancelToken::new();
        root.cancel();
        assert!(root.child_token().is_cancelled());
    }
}
