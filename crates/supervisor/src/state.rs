//! Node states and signals (see `docs/supervisor.md#node-states` and
//! `docs/supervisor.md#signals-healthy-and-done`).

use std::fmt;

/// The state of a supervision tree node. Numeric values and string forms match Go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeState {
    /// Created, scheduled or running without having signalled Healthy (also: waiting out backoff).
    New = 0,
    /// Signalled Healthy and still running (also after signalling Done, until it returns).
    Healthy = 1,
    /// Exited abnormally: its subtree and group siblings were cancelled; it restarts with backoff.
    Dead = 2,
    /// Signalled Done and returned `Ok(())`.
    Done = 3,
    /// Returned the [`Canceled`](crate::Canceled) error after its context was cancelled.
    Canceled = 4,
}

impl NodeState {
    /// All states, in Go's `NodeStates` order.
    pub const ALL: [NodeState; 5] = [
        NodeState::New,
        NodeState::Healthy,
        NodeState::Dead,
        NodeState::Done,
        NodeState::Canceled,
    ];

    /// Go's string form, e.g. `NODE_STATE_HEALTHY`.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::New => "NODE_STATE_NEW",
            NodeState::Healthy => "NODE_STATE_HEALTHY",
            NodeState::Dead => "NODE_STATE_DEAD",
            NodeState::Done => "NODE_STATE_DONE",
            NodeState::Canceled => "NODE_STATE_CANCELED",
        }
    }

    /// Whether the state is an exited one (Done, Dead, Canceled).
    pub fn is_exited(self) -> bool {
        matches!(
            self,
            NodeState::Done | NodeState::Dead | NodeState::Canceled
        )
    }

    /// Whether the state is a live one (New, Healthy).
    pub fn is_live(self) -> bool {
        !self.is_exited()
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle milestone reported by a runnable through [`Context::signal`](crate::Context::signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// Setup is finished, children are started, the runnable is now serving. Allowed only in
    /// New.
    Healthy = 0,
    /// The runnable will return `Ok(())` and needs no long-running loop. Allowed only in Healthy,
    /// once.
    Done = 1,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_print_like_go() {
        let printed: Vec<_> = NodeState::ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            printed,
            [
                "NODE_STATE_NEW",
                "NODE_STATE_HEALTHY",
                "NODE_STATE_DEAD",
                "NODE_STATE_DONE",
                "NODE_STATE_CANCELED"
            ]
        );
        assert_eq!(NodeState::Dead as u8, 2);
        assert_eq!(Signal::Done as u8, 1);
    }

    #[test]
    fn exited_and_live_states_partition_the_states() {
        let exited: Vec<_> = NodeState::ALL
            .into_iter()
            .filter(|s| s.is_exited())
            .collect();
        assert_eq!(
            exited,
            [NodeState::Dead, NodeState::Done, NodeState::Canceled]
        );
        assert!(NodeState::New.is_live() && NodeState::Healthy.is_live());
    }
}
