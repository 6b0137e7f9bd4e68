//! Counters of what the listener received, accepted and dropped, readable at any time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use uevent::RejectReason;

/// Why a datagram was dropped before reaching any subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Larger than the receive buffer (`MSG_TRUNC`).
    Truncated,
    /// No source address.
    NoAddress,
    /// Sent to our port directly, not multicast (`nl_groups == 0`).
    Unicast,
    /// Multicast to a group other than 1.
    WrongGroup,
    /// Sent from a non-zero port: a userspace sender, not the kernel.
    NotKernelPort,
    /// No `SCM_CREDENTIALS`.
    NoCredentials,
    /// From port 0 on group 1, but with a sender's pid in `SCM_CREDENTIALS`: a uevent a process
    /// injected through the kernel (a netlink message to port 0), not one the kernel generated.
    Injected,
    /// Credentials of a uid that is neither 0 nor unmapped in our user namespace.
    ForeignUid,
    /// From the kernel, but refused by the parser.
    Malformed(RejectReason),
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DropReason::Truncated => f.write_str("truncated"),
            DropReason::NoAddress => f.write_str("no_address"),
            DropReason::Unicast => f.write_str("unicast"),
            DropReason::WrongGroup => f.write_str("wrong_group"),
            DropReason::NotKernelPort => f.write_str("not_kernel_port"),
            DropReason::NoCredentials => f.write_str("no_credentials"),
            DropReason::Injected => f.write_str("injected"),
            DropReason::ForeignUid => f.write_str("foreign_uid"),
            DropReason::Malformed(reason) => write!(f, "malformed:{reason}"),
        }
    }
}

const ENVELOPE_REASONS: [DropReason; 8] = [
    DropReason::Truncated,
    DropReason::NoAddress,
    DropReason::Unicast,
    DropReason::WrongGroup,
    DropReason::NotKernelPort,
    DropReason::NoCredentials,
    DropReason::Injected,
    DropReason::ForeignUid,
];

fn slot(reason: DropReason) -> usize {
    match reason {
        DropReason::Malformed(r) => {
            ENVELOPE_REASONS.len() + RejectReason::ALL.iter().position(|x| *x == r).unwrap_or(0)
        }
        other => ENVELOPE_REASONS
            .iter()
            .position(|x| *x == other)
            .unwrap_or(0),
    }
}

const SLOTS: usize = ENVELOPE_REASONS.len() + RejectReason::ALL.len();

/// Live counters, shared between the reader thread and the actor.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    received: AtomicU64,
    accepted: AtomicU64,
    dropped: [AtomicU64; SLOTS],
    overruns: AtomicU64,
    resyncs: AtomicU64,
}

impl Counters {
    pub(crate) fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one drop; returns the count before it.
    pub(crate) fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped
            .get(slot(reason))
            .map_or(0, |counter| counter.fetch_add(1, Ordering::Relaxed))
    }

    pub(crate) fn overrun(&self) {
        self.overruns.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn resync(&self) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Counts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let reasons = ENVELOPE_REASONS
            .into_iter()
            .chain(RejectReason::ALL.into_iter().map(DropReason::Malformed));
        Counts {
            received: load(&self.received),
            accepted: load(&self.accepted),
            dropped: reasons
                .map(|reason| (reason, self.dropped.get(slot(reason)).map_or(0, load)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            overruns: load(&self.overruns),
            resyncs: load(&self.resyncs),
        }
    }
}

/// A snapshot of the listener's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Datagrams read from the socket.
    pub received: u64,
    /// Datagrams that passed every check and were offered to subscribers.
    pub accepted: u64,
    /// Datagrams dropped, by reason (reasons with a zero count are left out).
    pub dropped: Vec<(DropReason, u64)>,
    /// Receive-buffer overruns (`ENOBUFS`): each means the kernel dropped events.
    pub overruns: u64,
    /// `Resync` notifications published to all subscribers after an overrun.
    pub resyncs: u64,
}

impl Counts {
    /// How many datagrams were dropped for `reason`.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter() {
        let counters = Counters::default();
        let all: Vec<DropReason> = ENVELOPE_REASONS
            .into_iter()
            .chain(RejectReason::ALL.into_iter().map(DropReason::Malformed))
            .collect();
        for (i, reason) in all.iter().enumerate() {
            for _ in 0..=i {
                counters.dropped(*reason);
            }
        }
        let counts = counters.snapshot();
        for (i, reason) in all.iter().enumerate() {
            assert_eq!(counts.dropped_for(*reason), i as u64 + 1, "{reason}");
        }
    }
}
