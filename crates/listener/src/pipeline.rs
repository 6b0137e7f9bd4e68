//! The core of the listener, independent of the socket: check → parse → count → fan out.

use std::sync::Arc;

use uevent::Uevent;

use crate::fanout::{ResyncReason, SubscriberCounts, Subscribers, Subscription, SubscriptionId};
use crate::stats::{Counters, Counts, DropReason};
use crate::trust::{self, Envelope, UidPolicy};

/// Takes datagrams with their envelopes, accepts only the kernel's well-formed uevents, and
/// offers each to every subscriber. The socket reader drives it; benchmarks and tests can drive
/// it from memory.
pub struct Pipeline {
    uids: UidPolicy,
    counters: Counters,
    subscribers: Subscribers,
}

impl Pipeline {
    /// A pipeline that accepts the uids `uids` accepts, with no subscriber.
    pub fn new(uids: UidPolicy) -> Pipeline {
        Pipeline {
            uids,
            counters: Counters::default(),
            subscribers: Subscribers::default(),
        }
    }

    /// Adds a subscriber.
    pub fn subscribe(&self, subscription: Subscription) -> SubscriptionId {
        self.subscribers.add(subscription)
    }

    /// Removes a subscriber; `false` if it was not there.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.subscribers.remove(id)
    }

    /// Checks and parses one datagram: `None` (counted by reason) unless the envelope is the
    /// kernel's and the bytes parse. Accepted events go to subscribers through
    /// [`Pipeline::deliver`].
    pub fn accept(&self, datagram: &[u8], envelope: &Envelope) -> Option<Arc<Uevent>> {
        self.counters.received();
        if let Err(reason) = trust::check(envelope, &self.uids) {
            self.drop_datagram(reason, envelope);
            return None;
        }
        match Uevent::parse_kernel(datagram) {
            Ok(event) => {
                self.counters.accepted();
                Some(Arc::new(event))
            }
            Err(err) => {
                self.drop_datagram(DropReason::Malformed(err.reason()), envelope);
                tracing::debug!(error = %err, len = datagram.len(), "malformed uevent dropped");
                None
            }
        }
    }

    /// Offers accepted events, in order, to every subscriber (one message per subscriber).
    pub fn deliver(&self, events: &[Arc<Uevent>]) {
        if !events.is_empty() {
            self.subscribers.deliver(events);
        }
    }

    /// [`Pipeline::accept`] then [`Pipeline::deliver`] for one datagram.
    pub fn ingest(&self, datagram: &[u8], envelope: &Envelope) {
        if let Some(event) = self.accept(datagram, envelope) {
            self.deliver(&[event]);
        }
    }

    fn drop_datagram(&self, reason: DropReason, envelope: &Envelope) {
        let first = self.counters.dropped(reason) == 0;
        let sender = envelope.sender.map(|s| (s.port, s.groups));
        let pid = envelope.credentials.map(|c| c.pid);
        let uid = envelope.credentials.map(|c| c.uid);
        if first {
            tracing::warn!(%reason, ?sender, ?pid, ?uid, "datagram dropped (first of this kind; later ones are counted)");
        } else {
            tracing::debug!(%reason, ?sender, ?pid, ?uid, "datagram dropped");
        }
    }

    /// Records a receive-buffer overrun (the kernel dropped events).
    pub fn overrun(&self) {
        self.counters.overrun();
    }

    /// Tells every subscriber to re-synchronise.
    pub fn resync(&self, reason: ResyncReason) {
        self.counters.resync();
        tracing::warn!(?reason, "publishing a resync to every subscriber");
        self.subscribers.resync_all(reason);
    }

    /// The counters so far.
    pub fn counts(&self) -> Counts {
        self.counters.snapshot()
    }

    /// Each subscriber's counters.
    pub fn subscriber_counts(&self) -> Vec<SubscriberCounts> {
        self.subscribers.counts()
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("uids", &self.uids)
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

/// Shared between the actor and its reader thread.
pub(crate) type SharedPipeline = Arc<Pipeline>;
