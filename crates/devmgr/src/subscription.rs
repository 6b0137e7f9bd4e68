//! Typed subscriptions to the uevents the subsystem accepted, for the other subsystems of a
//! node agent: [`Observer::subscribe`] returns a [`Subscription`] whose
//! [`recv`](Subscription::recv) yields [`Notification::Uevents`] batches and
//! [`Notification::Resync`] notices, with no registry name or listener message in sight.
//!
//! ```no_run
//! use devmgr::subscription::{Action, Filter, Notification};
//! # async fn demo(observer: devmgr::subsystem::Observer) {
//! let mut uevents = observer.subscribe(Filter::actions([Action::Add]), 256);
//! while let Some(notification) = uevents.recv().await {
//!     match notification {
//!         Notification::Uevents(batch) => {
//!             for event in batch {
//!                 println!("{}", String::from_utf8_lossy(event.devpath()));
//!             } // each event's slot is free again once it is dropped
//!         }
//!         // Events may have been lost: read what you need from /sys again.
//!         Notification::Resync(why) => println!("resync: {why:?}"),
//!     }
//! }
//! # }
//! ```
//!
//! # What a subscription gets
//!
//! - **Every accepted event that passes its filter**, in the kernel's order, from the moment
//!   [`Observer::subscribe`] returned while a listener of the subsystem feeds it.
//! - **A [`Resync`] whenever events may have been lost for it** since then: the socket overran
//!   ([`Resync::Overrun`]), it fell behind by more than its capacity ([`Resync::Overflow`]), or
//!   a new listener started to feed it ([`Resync::NewListener`]): the subsystem started its
//!   first listener after the subscription was made, or replaced it when its group restarted.
//!   The handle follows the new listener by itself, and the `NewListener` notice comes once the
//!   new one feeds it and before that listener's first event, so a re-read of sysfs after
//!   receiving it misses nothing. That listener's group also replays every device (coldplug's
//!   `add` events, which the handle gets too). At most one `Resync` waits in the queue at a
//!   time (a second cause before the first was received adds nothing: a re-read after
//!   receiving it covers both).
//! - **At most `capacity` events in flight**: queued, or received and not dropped yet (each
//!   [`Event`] holds a slot). Past that, events are dropped for this subscription only, and a
//!   `Resync::Overflow` follows what was queued before; the listener, the loader and the other
//!   subscriptions never wait for it.
//!
//! The pattern for a subscriber that keeps a view of some devices: subscribe, read sysfs, then
//! apply events; read sysfs again on each `Resync`.
//!
//! Dropping the [`Subscription`] unsubscribes it. [`Subscription::recv`] returns `None` once
//! the subsystem is gone (every copy of its runnable dropped, e.g. with its supervision tree).
//!
//! # How
//!
//! Each listener incarnation gets one relay subscription (named `subscriptions` in the
//! listener's counters), made by the loader node before coldplug starts, that offers every
//! accepted batch to the handles of the moment. It runs on the listener's reader thread and
//! never blocks: a handle's queue is a channel whose length the handle's slots bound.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

pub use listener::Filter;
pub use uevent::{Action, Uevent};

use crate::subsystem::Observer;

/// [`Subscription::recv`]'s news.
#[derive(Debug)]
pub enum Notification {
    /// Accepted events that passed the subscription's filter, in the order the kernel sent
    /// them (never empty).
    Uevents(Vec<Event>),
    /// Events may have been lost for this subscription: re-read what is needed from sysfs.
    Resync(Resync),
}

/// Why a [`Notification::Resync`] came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resync {
    /// The listener's socket overran: the kernel dropped events for every listener.
    Overrun,
    /// This subscription had `capacity` events in flight; later ones were dropped for it.
    Overflow,
    /// A new listener feeds the subscription: the subsystem started its first one after the
    /// subscription was made, or replaced it when its group restarted. Events sent while no
    /// listener fed it were not received.
    NewListener,
}

/// One accepted event. Dereferences to the [`Uevent`]; its subscription's slot is free again
/// when it is dropped, so keep the [`Arc`] of [`Event::event`] to hold on to an event longer.
#[derive(Debug)]
pub struct Event {
    event: Arc<Uevent>,
    _slot: OwnedSemaphorePermit,
}

impl Event {
    /// The shared event (cheap to clone, holds no slot).
    pub fn event(&self) -> &Arc<Uevent> {
        &self.event
    }
}

impl Deref for Event {
    type Target = Uevent;

    fn deref(&self) -> &Uevent {
        &self.event
    }
}

/// A subscription to the accepted uevents of a subsystem ([`Observer::subscribe`]); see the
/// [module docs](self). Dropping it unsubscribes.
pub struct Subscription {
    handle: Arc<Handle>,
    queue: mpsc::UnboundedReceiver<Notification>,
    hub: Arc<Hub>,
    alive: watch::Receiver<()>,
}

impl Subscription {
    /// The next batch of events or resync notice, waiting for it; `None` once the subsystem is
    /// gone and everything queued was received. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Notification> {
        let received = loop {
            tokio::select! {
                biased;
                received = self.queue.recv() => break received,
                // Never sent: it resolves with an error once the subsystem dropped its sender.
                alive = self.alive.changed() => if alive.is_err() {
                    break self.queue.try_recv().ok();
                },
            }
        };
        if let Some(Notification::Resync(_)) = &received {
            // From now on a new cause queues a new notice.
            self.handle.owed.store(false, Ordering::Relaxed);
        }
        received
    }

    /// Events dropped for this subscription because it was full.
    pub fn dropped(&self) -> u64 {
        self.handle.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.remove(self.handle.id);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("filter", &self.handle.filter)
            .field("capacity", &self.handle.capacity)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Observer {
    /// Subscribes to the events the subsystem's listener accepts that pass `filter`, with at
    /// most `capacity` (at least 1) in flight; the handle follows the listener through the
    /// restarts of the subsystem's group. Fed by the running listener as soon as this returns;
    /// made before the subsystem started its listener, it gets a [`Resync::NewListener`] once
    /// that one feeds it (see the [module docs](crate::subscription)).
    pub fn subscribe(&self, filter: Filter, capacity: usize) -> Subscription {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, queue) = mpsc::unbounded_channel();
        let handle = self.hub.register(Handle {
            id: 0,
            filter,
            capacity,
            slots: Arc::new(Semaphore::new(capacity)),
            queue: tx,
            overflowed: AtomicBool::new(false),
            owed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        Subscription {
            handle,
            queue,
            hub: Arc::clone(&self.hub),
            alive: self.alive.clone(),
        }
    }

    /// How many [`Subscription`]s are live.
    pub fn subscriptions(&self) -> usize {
        self.hub.snapshot().handles.len()
    }
}

/// One subscription, as the relay sees it.
struct Handle {
    id: u64,
    filter: Filter,
    capacity: usize,
    slots: Arc<Semaphore>,
    queue: mpsc::UnboundedSender<Notification>,
    /// Full since its last event: a notice is queued; drop until there is room.
    overflowed: AtomicBool,
    /// A notice is queued and not received yet: no second one is queued.
    owed: AtomicBool,
    dropped: AtomicU64,
}

impl Handle {
    /// Queues the events of `events` that pass the filter, as one batch, while there are slots.
    fn offer(&self, events: &[Arc<Uevent>]) {
        let mut batch = Vec::new();
        for event in events.iter().filter(|e| self.filter.matches(e)) {
            match Arc::clone(&self.slots).try_acquire_owned() {
                Ok(slot) => {
                    self.overflowed.store(false, Ordering::Relaxed);
                    batch.push(Event {
                        event: Arc::clone(event),
                        _slot: slot,
                    });
                }
                Err(_) => {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    if !self.overflowed.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            subscription = self.id,
                            capacity = self.capacity,
                            "a subscription fell behind; dropping its events and sending it a resync"
                        );
                        // What fitted goes first, then the notice.
                        self.send_batch(std::mem::take(&mut batch));
                        self.resync(Resync::Overflow);
                    }
                }
            }
        }
        self.send_batch(batch);
    }

    fn send_batch(&self, batch: Vec<Event>) {
        if !batch.is_empty() {
            // The receiver is gone only while its handle is being removed.
            let _ = self.queue.send(Notification::Uevents(batch));
        }
    }

    /// Queues a notice, unless one is queued already.
    fn resync(&self, why: Resync) {
        if !self.owed.swap(true, Ordering::Relaxed) {
            let _ = self.queue.send(Notification::Resync(why));
        }
    }
}

/// The live handles, copied on change so the relay reads them without holding the lock.
#[derive(Default)]
struct Snapshot {
    /// The generation of the relay that feeds the handles (the loader node's latest).
    active: Option<u64>,
    handles: Vec<Arc<Handle>>,
}

/// Every [`Subscription`] of one subsystem, and the relay that feeds them.
#[derive(Default)]
pub(crate) struct Hub {
    next_id: AtomicU64,
    /// The generation of the last relay made.
    generations: AtomicU64,
    state: Mutex<Arc<Snapshot>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("Hub")
            .field("active", &snapshot.active)
            .field("subscriptions", &snapshot.handles.len())
            .finish()
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Arc<Snapshot>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.lock())
    }

    /// Adds a handle (its id assigned here), fed by the active relay if there is one.
    fn register(&self, mut handle: Handle) -> Arc<Handle> {
        handle.id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(handle);
        let mut state = self.lock();
        let mut handles = state.handles.clone();
        handles.push(Arc::clone(&handle));
        *state = Arc::new(Snapshot {
            active: state.active,
            handles,
        });
        handle
    }

    fn remove(&self, id: u64) {
        let mut state = self.lock();
        let handles = state
            .handles
            .iter()
            .filter(|h| h.id != id)
            .cloned()
            .collect();
        *state = Arc::new(Snapshot {
            active: state.active,
            handles,
        });
    }

    /// A relay, to subscribe to a new listener, and its generation, for [`Hub::activate`]
    /// once it is subscribed. Until then it drops what it gets (the `NewListener` notice of
    /// the activation covers that); once a later relay was activated it ends itself, and so it
    /// does once the hub is gone. It holds no slot of the listener's: an event's listener slot
    /// is released as soon as the event was offered to the handles, whose own slots bound what
    /// they hold.
    pub(crate) fn relay(self: &Arc<Self>) -> (listener::Subscription, u64) {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let hub: Weak<Hub> = Arc::downgrade(self);
        let relay = listener::Subscription::to_fn(move |notification| {
            let Some(hub) = hub.upgrade() else {
                return false;
            };
            let snapshot = hub.snapshot();
            match snapshot.active {
                Some(active) if active == generation => {}
                Some(active) if active > generation => return false,
                _ => return true, // not active yet
            }
            if snapshot.handles.is_empty() {
                return true; // `devmgr run`: nobody subscribed, nothing to copy
            }
            match notification {
                listener::Notification::Uevents(batch) => {
                    let events: Vec<Arc<Uevent>> =
                        batch.iter().map(|d| Arc::clone(d.event())).collect();
                    drop(batch);
                    for handle in &snapshot.handles {
                        handle.offer(&events);
                    }
                }
                listener::Notification::Resync(reason) => {
                    let why = match reason {
                        listener::ResyncReason::Overrun => Resync::Overrun,
                        // The relay drops its deliveries at once: it never falls behind.
                        listener::ResyncReason::SubscriberOverflow => Resync::Overflow,
                    };
                    for handle in &snapshot.handles {
                        // One that overflowed is owed a notice already.
                        if !handle.overflowed.load(Ordering::Relaxed) {
                            handle.resync(why);
                        }
                    }
                }
            }
            true
        })
        .named("subscriptions");
        (relay, generation)
    }

    /// The relay of `generation`, subscribed to its listener, feeds the handles from now on;
    /// each handle gets a `NewListener` notice first (queued now, before that listener's first
    /// event), for whatever it missed before. A generation older than the active one changes
    /// nothing.
    pub(crate) fn activate(&self, generation: u64) {
        let mut state = self.lock();
        if state.active.is_some_and(|active| active >= generation) {
            return;
        }
        for handle in &state.handles {
            handle.resync(Resync::NewListener);
        }
        *state = Arc::new(Snapshot {
            active: Some(generation),
            handles: state.handles.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use listener::trust::{Envelope, UidPolicy};
    use listener::{Pipeline, ResyncReason};

    use super::*;

    /// A hub, the observer side of it, and the sender that keeps the subsystem "alive".
    fn hub() -> (Arc<Hub>, watch::Sender<()>, Observer) {
        let (devmgr, observer) =
            crate::subsystem::runnable(crate::config::Config::default(), Default::default());
        drop(devmgr);
        let hub = Arc::clone(&observer.hub);
        // The runnable is dropped: stand in for it.
        let (alive, receiver) = watch::channel(());
        let observer = Observer {
            alive: receiver,
            ..observer
        };
        (hub, alive, observer)
    }

    /// A listener's pipeline in memory, with a relay of the hub subscribed and activated.
    fn listener(hub: &Arc<Hub>) -> Pipeline {
        let pipeline = Pipeline::new(UidPolicy::ROOT_ONLY);
        let (relay, generation) = hub.relay();
        pipeline.subscribe(relay);
        hub.activate(generation);
        pipeline
    }

    /// The kernel sends `add` events for `/devices/x<n>` of `subsystem`, one batch.
    fn send(pipeline: &Pipeline, subsystem: &str, seqnums: impl IntoIterator<Item = u64>) {
        let events: Vec<_> = seqnums
            .into_iter()
            .filter_map(|n| {
                let event = Uevent::builder(Action::Add, format!("/devices/x{n}"))
                    .subsystem(subsystem)
                    .seqnum(n)
                    .build()
                    .unwrap();
                pipeline.accept(&event.encode().unwrap(), &Envelope::KERNEL)
            })
            .collect();
        pipeline.deliver(&events);
    }

    /// What is queued, flattened: `Ok(seqnum)` per event, `Err(why)` per notice.
    async fn queued(sub: &mut Subscription) -> Vec<Result<u64, Resync>> {
        let mut out = Vec::new();
        while let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(20), sub.recv()).await {
            match n {
                Notification::Uevents(batch) => {
                    out.extend(batch.iter().map(|e| Ok(e.seqnum().unwrap().get())))
                }
                Notification::Resync(why) => out.push(Err(why)),
            }
        }
        out
    }

    #[tokio::test]
    async fn a_handle_follows_each_new_listener_after_one_notice() {
        let (hub, _alive, observer) = hub();
        let mut sub = observer.subscribe(Filter::all(), 16);
        // Subscribed before any listener: the first one owes it a notice too (what happened
        // before it started was heard by nobody).
        let first = listener(&hub);
        send(&first, "net", [1, 2]);
        assert_eq!(
            queued(&mut sub).await,
            [Err(Resync::NewListener), Ok(1), Ok(2)]
        );
        // The group restarts: a new listener, and the old one's relay goes quiet.
        let second = listener(&hub);
        send(&first, "net", [3]);
        send(&second, "net", [4]);
        assert_eq!(queued(&mut sub).await, [Err(Resync::NewListener), Ok(4)]);
        assert_eq!(
            first.subscriber_counts().len(),
            0,
            "the old relay removed itself"
        );
        // A handle made while the second listener runs is fed at once, and owed a notice by
        // the third.
        let mut late = observer.subscribe(Filter::all(), 16);
        send(&second, "net", [5]);
        let third = listener(&hub);
        send(&third, "net", [6]);
        for sub in [&mut late, &mut sub] {
            assert_eq!(queued(sub).await, [Ok(5), Err(Resync::NewListener), Ok(6)]);
        }
        // An older generation changes nothing.
        hub.activate(1);
        assert_eq!(queued(&mut sub).await, []);
    }

    #[tokio::test]
    async fn a_relay_drops_what_comes_before_its_activation_and_the_notice_covers_it() {
        let (hub, _alive, observer) = hub();
        let old = listener(&hub);
        let mut sub = observer.subscribe(Filter::all(), 16);
        let new = Pipeline::new(UidPolicy::ROOT_ONLY);
        let (relay, generation) = hub.relay();
        new.subscribe(relay);
        send(&new, "net", [1]); // subscribed, not active: dropped
        send(&old, "net", [2]); // the old one still feeds the handles
        hub.activate(generation);
        send(&new, "net", [3]);
        assert_eq!(
            queued(&mut sub).await,
            [Ok(2), Err(Resync::NewListener), Ok(3)]
        );
        assert_eq!(
            new.subscriber_counts().len(),
            1,
            "the inactive relay stayed"
        );
    }

    #[tokio::test]
    async fn filters_apply_and_the_listeners_overrun_is_passed_on() {
        let (hub, _alive, observer) = hub();
        let pipeline = listener(&hub);
        let mut block = observer.subscribe(
            Filter {
                subsystems: Some(vec![b"block".to_vec()]),
                actions: Some(vec![Action::Add]),
                ..Filter::default()
            },
            16,
        );
        let mut all = observer.subscribe(Filter::all(), 16);
        send(&pipeline, "net", [1]);
        send(&pipeline, "block", [2]);
        pipeline.resync(ResyncReason::Overrun);
        assert_eq!(queued(&mut block).await, [Ok(2), Err(Resync::Overrun)]);
        assert_eq!(queued(&mut all).await, [Ok(1), Ok(2), Err(Resync::Overrun)]);
    }

    #[tokio::test]
    async fn a_full_handle_gets_one_overflow_notice_and_resumes_once_it_dropped_its_events() {
        let (hub, _alive, observer) = hub();
        let pipeline = listener(&hub);
        let mut slow = observer.subscribe(Filter::all(), 2);
        let mut fast = observer.subscribe(Filter::all(), 100);
        send(&pipeline, "net", 1..=5);
        send(&pipeline, "net", [6]);
        // Two fit, the third overflows: one notice, the rest dropped.
        let Some(Notification::Uevents(held)) = slow.recv().await else {
            panic!("the first batch")
        };
        assert_eq!(held.len(), 2);
        assert!(matches!(
            slow.recv().await,
            Some(Notification::Resync(Resync::Overflow))
        ));
        assert_eq!(slow.dropped(), 4);
        // Another overrun while it is owed a notice adds none.
        pipeline.resync(ResyncReason::Overrun);
        assert_eq!(queued(&mut slow).await, []);
        assert_eq!(
            queued(&mut fast).await.len(),
            7,
            "the other one lost nothing"
        );
        drop(held);
        send(&pipeline, "net", [7]);
        assert_eq!(queued(&mut slow).await, [Ok(7)]);
        assert_eq!(
            pipeline.subscriber_counts()[0].dropped,
            0,
            "the listener never saw the relay fall behind"
        );
    }

    #[tokio::test]
    async fn dropping_a_handle_unsubscribes_it_and_recv_ends_with_the_subsystem() {
        let (hub, alive, observer) = hub();
        let pipeline = listener(&hub);
        let sub = observer.subscribe(Filter::all(), 4);
        let mut other = observer.subscribe(Filter::all(), 4);
        assert_eq!(observer.subscriptions(), 2);
        drop(sub);
        assert_eq!(observer.subscriptions(), 1);
        send(&pipeline, "net", [1]);
        drop(alive);
        // What was queued still comes, then the end.
        assert!(matches!(other.recv().await, Some(Notification::Uevents(_))));
        assert!(other.recv().await.is_none());
        // And a real subsystem: once its runnable is dropped, recv ends.
        let (devmgr, observer) =
            crate::subsystem::runnable(crate::config::Config::default(), Default::default());
        let mut sub = observer.subscribe(Filter::all(), 4);
        drop(devmgr);
        assert!(
            tokio::time::timeout(Duration::from_secs(5), sub.recv())
                .await
                .expect("recv ends")
                .is_none()
        );
    }
}
