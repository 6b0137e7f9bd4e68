//! Detection of runnables that block a runtime worker thread.
//!
//! Go preempts goroutines, so a busy loop in one runnable cannot stall the others. A tokio task
//! runs until it returns from `poll`: a runnable that busy-loops or makes a blocking call holds a
//! worker thread for as long as it does. Every poll of a runnable, of a task spawned through a
//! context, and of an actor callback run by the actor adapter is timed; a check on the
//! processor's thread (which such a poll cannot block) warns, at the supervisor's DN, about any
//! poll that has not returned after the configured threshold, naming the DN.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use crate::logging::{Logger, go_duration};

/// How long a poll may run before it is reported, unless the options say otherwise.
pub(crate) const DEFAULT_BLOCKED_POLL_WARNING: Duration = Duration::from_secs(1);

/// The registry of timed polls.
pub(crate) struct PollWatch {
    base: Instant,
    /// `None`: the check is off and nothing is timed.
    threshold: Option<Duration>,
    slots: Mutex<Vec<Weak<PollSlot>>>,
    log: Logger,
}

/// One timed future (a runnable's task, a spawned task, or an actor's callbacks).
pub(crate) struct PollSlot {
    /// What is reported, e.g. `runnable root.four`.
    label: String,
    /// Start of the poll in progress in nanoseconds since `base`, plus one; 0 when not polled.
    since: AtomicU64,
    /// The `since` value of the poll already reported.
    warned: AtomicU64,
}

/// A slot together with its registry, as handed to [`Watched`].
#[derive(Clone)]
pub(crate) struct WatchSlot {
    watch: Arc<PollWatch>,
    slot: Arc<PollSlot>,
}

impl PollWatch {
    pub(crate) fn new(threshold: Option<Duration>, log: Logger) -> Self {
        Self {
            base: Instant::now(),
            threshold,
            slots: Mutex::new(Vec::new()),
            log,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1)
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Weak<PollSlot>>> {
        match self.slots.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A slot for a future labelled `label`, or `None` when the check is off.
    pub(crate) fn slot(self: &Arc<Self>, label: String) -> Option<WatchSlot> {
        self.threshold?;
        let slot = Arc::new(PollSlot {
            label,
            since: AtomicU64::new(0),
            warned: AtomicU64::new(0),
        });
        self.slots().push(Arc::downgrade(&slot));
        Some(WatchSlot {
            watch: self.clone(),
            slot,
        })
    }

    /// How often [`PollWatch::check`] should run, or `None` when the check is off: once per
    /// threshold, so a poll is reported between one and two thresholds after it began, and an
    /// idle daemon wakes up only that often for it.
    pub(crate) fn period(&self) -> Option<Duration> {
        self.threshold.map(|t| t.max(Duration::from_millis(10)))
    }

    /// Warns once about every poll that has run for longer than the threshold, and forgets the
    /// slots of futures that are gone.
    pub(crate) fn check(&self) {
        let Some(threshold) = self.threshold else {
            return;
        };
        let now = self.now();
        let mut blocked = Vec::new();
        {
            let mut slots = self.slots();
            slots.retain(|w| w.strong_count() > 0);
            for slot in slots.iter().filter_map(Weak::upgrade) {
                let since = slot.since.load(Ordering::SeqCst);
                if since == 0 {
                    continue;
                }
                let elapsed = Duration::from_nanos(now.saturating_sub(since));
                if elapsed >= threshold && slot.warned.swap(since, Ordering::SeqCst) != since {
                    blocked.push((slot.label.clone(), elapsed));
                }
            }
        }
        for (label, elapsed) in blocked {
            self.log.warning(format!(
                "{label} has not yielded for {}: it blocks a runtime worker thread (a busy loop \
                 or a blocking call in async code), which can starve other runnables",
                go_duration(round_ms(elapsed))
            ));
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A future whose polls are timed in a [`PollSlot`] (or just the future, when the check is off).
pub(crate) struct Watched<F> {
    fut: Pin<Box<F>>,
    slot: Option<WatchSlot>,
}

impl<F: Future> Watched<F> {
    pub(crate) fn new(fut: F, slot: Option<WatchSlot>) -> Self {
        Self {
            fut: Box::pin(fut),
            slot,
        }
    }
}

/// Marks the end of a poll, also when it unwinds.
struct PollEnd<'a> {
    slot: &'a WatchSlot,
    since: u64,
}

impl Drop for PollEnd<'_> {
    fn drop(&mut self) {
        let WatchSlot { watch, slot } = self.slot;
        slot.since.store(0, Ordering::SeqCst);
        if slot.warned.load(Ordering::SeqCst) == self.since {
            let took = Duration::from_nanos(watch.now().saturating_sub(self.since));
            watch.log.info(format!(
                "{} yielded after {}",
                slot.label,
                go_duration(round_ms(took))
            ));
        }
    }
}

impl<F: Future> Future for Watched<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let Some(slot) = &this.slot else {
            return this.fut.as_mut().poll(cx);
        };
        let since = slot.watch.now();
        slot.slot.since.store(since, Ordering::SeqCst);
        let _end = PollEnd { slot, since };
        this.fut.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::{LogRecorder, Severity};

    /// A poll that outlasts the threshold is reported once, with its label, and its end is
    /// logged; a quick poll is never reported.
    #[test]
    fn a_long_poll_is_reported_once() {
        let rec = LogRecorder::new();
        let watch = Arc::new(PollWatch::new(
            Some(Duration::from_millis(20)),
            Logger::new("supervisor", Some(rec.clone())),
        ));
        let slow = watch.slot("runnable root.slow".to_string());
        let quick = watch.slot("runnable root.quick".to_string());
        let mut fut = Watched::new(
            {
                let watch = watch.clone();
                async move {
                    std::thread::sleep(Duration::from_millis(60));
                    watch.check();
                    watch.check();
                }
            },
            slow,
        );
        let mut quick_fut = Watched::new(async {}, quick);
        let waker = std::task::Waker::noop();
        let mut cx = TaskContext::from_waker(waker);
        assert!(Pin::new(&mut quick_fut).poll(&mut cx).is_ready());
        assert!(Pin::new(&mut fut).poll(&mut cx).is_ready());
        watch.check();
        let lines: Vec<_> = rec
            .entries()
            .into_iter()
            .map(|e| (e.severity, e.message))
            .collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].0, Severity::Warning);
        assert!(
            lines[0]
                .1
                .starts_with("runnable root.slow has not yielded for "),
            "{lines:?}"
        );
        assert!(
            lines[1].1.starts_with("runnable root.slow yielded after "),
            "{lines:?}"
        );
    }

    #[test]
    fn nothing_is_timed_when_the_check_is_off() {
        let watch = Arc::new(PollWatch::new(None, Logger::new("supervisor", None)));
        assert!(watch.slot("runnable root".to_string()).is_none());
        assert!(watch.period().is_none());
    }
}
