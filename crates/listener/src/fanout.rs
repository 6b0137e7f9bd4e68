//! Subscriptions and the fan-out of accepted events.
//!
//! Events are sent in batches: everything the reader took from the socket in one pass (at most
//! [`MAX_BATCH`] events) goes to a subscriber as one [`Notification::Uevents`], so a burst costs
//! one mailbox message per batch rather than per event, while a lone event goes out at once.
//!
//! Each subscriber has a bounded number of events in flight: every [`Delivery`] holds a permit
//! of its subscriber's semaphore and returns it when dropped. What happens when none is left:
//! `docs/uevents.md#fan-out-to-subscribers`.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use ractor::{ActorRef, Message};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uevent::{Action, Uevent};

/// What a subscriber receives.
#[derive(Debug)]
pub enum Notification {
    /// Accepted events that passed the subscriber's filter, in the order the kernel sent them
    /// (never empty).
    Uevents(Vec<Delivery>),
    /// Events may have been lost (for this subscriber or for everyone): re-synchronise from
    /// sysfs.
    Resync(ResyncReason),
}

/// Why a [`Notification::Resync`] was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The socket's receive buffer overran: the kernel dropped events for everyone.
    Overrun,
    /// This subscriber fell behind by more than its capacity; events were dropped for it.
    SubscriberOverflow,
}

/// One event on its way to one subscriber. Dereferences to the [`Uevent`]; the subscriber's
/// in-flight slot is released when this value is dropped, so hold it only while handling it.
#[derive(Debug)]
pub struct Delivery {
    event: Arc<Uevent>,
    _permit: OwnedSemaphorePermit,
}

impl Delivery {
    /// The shared event (cheap to clone, outlives the delivery's slot).
    pub fn event(&self) -> &Arc<Uevent> {
        &self.event
    }
}

impl Deref for Delivery {
    type Target = Uevent;

    fn deref(&self) -> &Uevent {
        &self.event
    }
}

/// Which events a subscriber wants. Resyncs are always delivered.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these subsystems; `None` for all.
    pub subsystems: Option<Vec<Vec<u8>>>,
    /// Only these actions; `None` for all.
    pub actions: Option<Vec<Action>>,
    /// Only events this says yes to; `None` for all. Applied before an event takes one of the
    /// subscriber's in-flight slots, so what a subscriber would drop at once never counts
    /// against its capacity.
    pub only_if: Option<fn(&Uevent) -> bool>,
}

impl Filter {
    /// Every event.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Only events with one of `actions`.
    pub fn actions(actions: impl IntoIterator<Item = Action>) -> Filter {
        Filter {
            actions: Some(actions.into_iter().collect()),
            ..Filter::default()
        }
    }

    /// This filter, and only events `wanted` says yes to.
    pub fn only_if(self, wanted: fn(&Uevent) -> bool) -> Filter {
        Filter {
            only_if: Some(wanted),
            ..self
        }
    }

    /// Whether `event` passes.
    pub fn matches(&self, event: &Uevent) -> bool {
        let action_ok = self
            .actions
            .as_ref()
            .is_none_or(|actions| actions.contains(&event.action()));
        let subsystem_ok = self.subsystems.as_ref().is_none_or(|subsystems| {
            event
                .subsystem()
                .is_some_and(|s| subsystems.iter().any(|x| x.as_slice() == s))
        });
        action_ok && subsystem_ok && self.only_if.is_none_or(|wanted| wanted(event))
    }
}

type Sink = Box<dyn Fn(Notification) -> bool + Send + Sync>;

/// A request to receive events: where to send them, which ones, and how many may be in flight.
pub struct Subscription {
    sink: Sink,
    filter: Filter,
    capacity: usize,
    name: Option<Arc<str>>,
}

/// The most events in one [`Notification::Uevents`].
pub const MAX_BATCH: usize = 128;

/// The default number of events in flight per subscriber.
pub const DEFAULT_CAPACITY: usize = 4096;

impl Subscription {
    /// Events go to `actor`, whose message type is built from a [`Notification`].
    pub fn to_actor<M>(actor: ActorRef<M>) -> Subscription
    where
        M: Message + From<Notification>,
    {
        Subscription::to_fn(move |n| actor.send_message(M::from(n)).is_ok())
    }

    /// Events go to `send`, which returns `false` once the receiver is gone (the subscription
    /// is then removed). `send` must not block.
    pub fn to_fn(send: impl Fn(Notification) -> bool + Send + Sync + 'static) -> Subscription {
        Subscription {
            sink: Box::new(send),
            filter: Filter::all(),
            capacity: DEFAULT_CAPACITY,
            name: None,
        }
    }

    /// Names the subscriber in [`SubscriberCounts`] (summaries, logs), e.g. `"loader"`.
    pub fn named(mut self, name: impl Into<Arc<str>>) -> Subscription {
        self.name = Some(name.into());
        self
    }

    /// Only events that pass `filter`.
    pub fn filter(mut self, filter: Filter) -> Subscription {
        self.filter = filter;
        self
    }

    /// At most `capacity` events in flight (at least 1).
    pub fn capacity(mut self, capacity: usize) -> Subscription {
        self.capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        self
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.filter)
            .field("capacity", &self.capacity)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Identifies a subscription, to end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

/// Counters of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberCounts {
    /// The subscription.
    pub id: SubscriptionId,
    /// Its name ([`Subscription::named`]), if it has one.
    pub name: Option<Arc<str>>,
    /// Events delivered.
    pub delivered: u64,
    /// Events dropped because the subscriber was full.
    pub dropped: u64,
    /// Resyncs sent because the subscriber was full.
    pub overflows: u64,
}

struct Subscriber {
    id: SubscriptionId,
    sub: Subscription,
    slots: Arc<Semaphore>,
    /// Full since the last delivery: a resync is on its way; drop until there is room.
    overflowed: AtomicBool,
    /// The receiver is gone; the subscriber is removed at the next change of the list.
    gone: AtomicBool,
    delivered: AtomicU64,
    dropped: AtomicU64,
    overflows: AtomicU64,
}

impl Subscriber {
    /// Sends the events of `events` that pass the filter; `false` once the receiver is gone.
    fn offer(&self, events: &[Arc<Uevent>]) -> bool {
        let mut batch = Vec::new();
        for event in events.iter().filter(|e| self.sub.filter.matches(e)) {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(permit) => {
                    self.overflowed.store(false, Ordering::Relaxed);
                    batch.push(Delivery {
                        event: Arc::clone(event),
                        _permit: permit,
                    });
                }
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    if self.overflowed.swap(true, Ordering::Relaxed) {
                        continue;
                    }
                    self.overflows.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        subscription = self.id.0,
                        "subscriber fell behind; dropping its events and sending it a resync"
                    );
                    // What was accepted before the overflow goes first, then the resync.
                    if !self.send_batch(&mut batch)
                        || !(self.sub.sink)(Notification::Resync(ResyncReason::SubscriberOverflow))
                    {
                        return false;
                    }
                }
            }
        }
        self.send_batch(&mut batch)
    }

    fn send_batch(&self, batch: &mut Vec<Delivery>) -> bool {
        if batch.is_empty() {
            return true;
        }
        self.delivered
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        (self.sub.sink)(Notification::Uevents(std::mem::take(batch)))
    }

    fn resync(&self, reason: ResyncReason) -> bool {
        // A subscriber that overflowed is already owed a resync.
        self.overflowed.load(Ordering::Relaxed) || (self.sub.sink)(Notification::Resync(reason))
    }
}

type List = Arc<Vec<Arc<Subscriber>>>;

/// Every subscriber, and the fan-out to them. The list is copied on change, so fan-out works on
/// a snapshot without holding the lock: subscribing, unsubscribing and reading counters never
/// wait for a delivery, even to a subscriber that misbehaves and blocks.
#[derive(Default)]
pub(crate) struct Subscribers {
    next_id: AtomicU64,
    list: Mutex<List>,
}

impl Subscribers {
    fn lock(&self) -> MutexGuard<'_, List> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> List {
        Arc::clone(&self.lock())
    }

    /// Replaces the list with the subscribers of the current one that `keep` keeps, plus `add`.
    fn update(&self, keep: impl Fn(&Subscriber) -> bool, add: Option<Subscriber>) {
        let mut list = self.lock();
        let mut next: Vec<Arc<Subscriber>> = list
            .iter()
            .filter(|s| !s.gone.load(Ordering::Relaxed) && keep(s))
            .cloned()
            .collect();
        next.extend(add.map(Arc::new));
        *list = Arc::new(next);
    }

    pub(crate) fn add(&self, sub: Subscription) -> SubscriptionId {
        let id = SubscriptionId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let subscriber = Subscriber {
            id,
            slots: Arc::new(Semaphore::new(sub.capacity)),
            sub,
            overflowed: AtomicBool::new(false),
            gone: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
        };
        self.update(|_| true, Some(subscriber));
        id
    }

    pub(crate) fn remove(&self, id: SubscriptionId) -> bool {
        let found = self.snapshot().iter().any(|s| s.id == id);
        self.update(|s| s.id != id, None);
        found
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Calls `send` for every live subscriber of a snapshot; removes those whose receiver is
    /// gone.
    fn each(&self, send: impl Fn(&Subscriber) -> bool) {
        let mut any_gone = false;
        for s in self.snapshot().iter() {
            if !s.gone.load(Ordering::Relaxed) && !send(s) {
                s.gone.store(true, Ordering::Relaxed);
                any_gone = true;
            }
        }
        if any_gone {
            self.update(|_| true, None);
        }
    }

    /// Offers `events` (in order) to every subscriber whose filter they pass, as one batch per
    /// subscriber; removes subscribers whose receiver is gone.
    pub(crate) fn deliver(&self, events: &[Arc<Uevent>]) {
        self.each(|s| s.offer(events));
    }

    /// Sends a resync to every subscriber (except those already owed one).
    pub(crate) fn resync_all(&self, reason: ResyncReason) {
        self.each(|s| s.resync(reason));
    }

    pub(crate) fn counts(&self) -> Vec<SubscriberCounts> {
        self.snapshot()
            .iter()
            .map(|s| SubscriberCounts {
                id: s.id,
                name: s.sub.name.clone(),
                delivered: s.delivered.load(Ordering::Relaxed),
                dropped: s.dropped.load(Ordering::Relaxed),
                overflows: s.overflows.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn event(action: Action, subsystem: &str, seqnum: u64) -> Arc<Uevent> {
        Arc::new(
            Uevent::builder(action, "/devices/x")
                .subsystem(subsystem)
                .seqnum(seqnum)
                .build()
                .unwrap(),
        )
    }

    type Inbox = Arc<Mutex<Vec<Notification>>>;

    fn recording(capacity: usize, filter: Filter) -> (Subscription, Inbox) {
        let inbox: Inbox = Arc::default();
        let sink = Arc::clone(&inbox);
        let sub = Subscription::to_fn(move |n| {
            sink.lock().unwrap().push(n);
            true
        })
        .capacity(capacity)
        .filter(filter);
        (sub, inbox)
    }

    /// What the subscriber got, flattened: `Some(seqnum)` per event, `None` per resync.
    fn seqnums(inbox: &Inbox) -> Vec<Option<u64>> {
        inbox
            .lock()
            .unwrap()
            .iter()
            .flat_map(|n| match n {
                Notification::Uevents(batch) => {
                    batch.iter().map(|d| d.seqnum().map(|s| s.get())).collect()
                }
                Notification::Resync(_) => vec![None],
            })
            .collect()
    }

    /// Delivers each event in a batch of its own.
    fn one_by_one(subs: &Subscribers, events: impl IntoIterator<Item = Arc<Uevent>>) {
        for event in events {
            subs.deliver(&[event]);
        }
    }

    #[test]
    fn filters_select_by_action_and_subsystem() {
        let filter = Filter {
            subsystems: Some(vec![b"usb".to_vec()]),
            actions: Some(vec![Action::Add]),
            ..Filter::default()
        };
        assert!(filter.matches(&event(Action::Add, "usb", 1)));
        assert!(!filter.matches(&event(Action::Remove, "usb", 1)));
        assert!(!filter.matches(&event(Action::Add, "pci", 1)));
        assert!(Filter::all().matches(&event(Action::Remove, "pci", 1)));
    }

    #[test]
    fn events_a_predicate_refuses_take_no_slot_of_the_subscriber() {
        let subs = Subscribers::default();
        let odd = Filter::all().only_if(|e| e.seqnum().is_some_and(|s| s.get() % 2 == 1));
        let (sub, inbox) = recording(2, odd);
        subs.add(sub);
        // Held (nothing drained): 1 and 3 fill both slots, the even ones never ask for one.
        one_by_one(&subs, (1..=4).map(|n| event(Action::Add, "pci", n)));
        assert_eq!(seqnums(&inbox), [Some(1), Some(3)]);
        let counts = subs.counts()[0].clone();
        assert_eq!(
            (counts.delivered, counts.dropped, counts.overflows),
            (2, 0, 0)
        );
    }

    #[test]
    fn a_full_subscriber_gets_one_resync_then_resumes_after_draining() {
        let subs = Subscribers::default();
        let (sub, inbox) = recording(2, Filter::all());
        let id = subs.add(sub.named("loader"));
        one_by_one(&subs, (1..=5).map(|n| event(Action::Add, "pci", n)));
        // Two fit, the third overflows (one resync), the rest are dropped silently.
        assert_eq!(seqnums(&inbox), [Some(1), Some(2), None]);
        let counts = subs.counts()[0].clone();
        assert_eq!(
            counts.name.as_deref(),
            Some("loader"),
            "named in the counts"
        );
        assert_eq!(
            (
                counts.id,
                counts.delivered,
                counts.dropped,
                counts.overflows
            ),
            (id, 2, 3, 1)
        );
        // The subscriber handles (drops) what it got; deliveries resume.
        inbox.lock().unwrap().clear();
        subs.deliver(&[event(Action::Add, "pci", 6)]);
        assert_eq!(seqnums(&inbox), [Some(6)]);
    }

    #[test]
    fn a_slow_subscriber_does_not_hold_back_a_fast_one() {
        let subs = Subscribers::default();
        let (slow, slow_inbox) = recording(1, Filter::all());
        let (fast, fast_inbox) = recording(100, Filter::all());
        subs.add(slow);
        subs.add(fast);
        one_by_one(&subs, (1..=10).map(|n| event(Action::Add, "pci", n)));
        assert_eq!(seqnums(&fast_inbox).len(), 10);
        assert_eq!(seqnums(&slow_inbox), [Some(1), None]);
    }

    #[test]
    fn a_batch_goes_out_as_one_message_and_an_overflow_splits_it_before_the_resync() {
        let subs = Subscribers::default();
        let (sub, inbox) = recording(3, Filter::actions([Action::Add]));
        subs.add(sub);
        let batch: Vec<_> = (1..=6)
            .map(|n| event(if n == 2 { Action::Remove } else { Action::Add }, "pci", n))
            .collect();
        subs.deliver(&batch);
        // Event 2 is filtered out; 1, 3, 4 fit; 5 overflows; 6 is dropped.
        assert_eq!(seqnums(&inbox), [Some(1), Some(3), Some(4), None]);
        let shapes: Vec<usize> = inbox
            .lock()
            .unwrap()
            .iter()
            .map(|n| match n {
                Notification::Uevents(batch) => batch.len(),
                Notification::Resync(_) => 0,
            })
            .collect();
        assert_eq!(shapes, [3, 0], "one batch of three, then the resync");
    }

    #[test]
    fn gone_receivers_are_removed() {
        let subs = Subscribers::default();
        subs.add(Subscription::to_fn(|_| false));
        let (alive, _inbox) = recording(10, Filter::all());
        subs.add(alive);
        subs.deliver(&[event(Action::Add, "pci", 1)]);
        assert_eq!(subs.len(), 1);
        subs.add(Subscription::to_fn(|_| false));
        subs.resync_all(ResyncReason::Overrun);
        assert_eq!(subs.len(), 1);
    }

    #[test]
    fn resync_all_skips_subscribers_already_owed_a_resync() {
        let subs = Subscribers::default();
        let (sub, inbox) = recording(1, Filter::actions([Action::Add]));
        let id = subs.add(sub);
        subs.deliver(&[event(Action::Add, "pci", 1)]);
        subs.deliver(&[event(Action::Add, "pci", 2)]); // overflow: resync sent
        subs.resync_all(ResyncReason::Overrun); // not sent twice
        let reasons: Vec<_> = inbox
            .lock()
            .unwrap()
            .iter()
            .filter_map(|n| match n {
                Notification::Resync(r) => Some(*r),
                Notification::Uevents(_) => None,
            })
            .collect();
        assert_eq!(reasons, [ResyncReason::SubscriberOverflow]);
        assert!(subs.remove(id));
        assert!(!subs.remove(id));
    }
}
