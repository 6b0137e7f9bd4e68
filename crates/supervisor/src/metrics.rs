//! Metrics hook (see `docs/supervisor.md#metrics`): a callback per state change, plus two
//! ready-made sinks.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::state::NodeState;

/// Receives node state changes: New when a runnable is started, Healthy on SignalHealthy,
/// and Done/Canceled/Dead when an exit is handled. Never for SignalDone, reset, or transitions
/// made after shutdown. Called while the tree lock is held: it must not block and must not call
/// back into the supervisor.
pub trait Metrics: Send + Sync {
    /// Called on every reported state change of the node at `dn`.
    fn notify_node_state(&self, dn: &str, state: NodeState);
}

/// The last reported state of a DN, and when it was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnState {
    /// Last reported state.
    pub state: NodeState,
    /// When it was reported.
    pub transition: Instant,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Keeps the last state of every DN in memory (Go's `InMemoryMetrics`). Entries are never
/// removed.
#[derive(Debug, Default)]
pub struct InMemoryMetrics {
    dns: Mutex<HashMap<String, DnState>>,
}

impl InMemoryMetrics {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the per-DN states.
    pub fn dns(&self) -> HashMap<String, DnState> {
        lock(&self.dns).clone()
    }

    /// The last reported state of `dn`.
    pub fn state(&self, dn: &str) -> Option<NodeState> {
        lock(&self.dns).get(dn).map(|s| s.state)
    }
}

impl Metrics for InMemoryMetrics {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        lock(&self.dns).insert(
            dn.to_string(),
            DnState {
                state,
                transition: Instant::now(),
            },
        );
    }
}

/// Counts transitions and keeps a per-DN, per-state gauge, with the semantics of Go's
/// Prometheus sink but without a Prometheus dependency: the gauge of the current state is
/// 1 and the four others 0; the previous state of a DN seen for the first time is `Dead`.
#[derive(Debug, Default)]
pub struct TransitionMetrics {
    inner: Mutex<TransitionInner>,
}

#[derive(Debug, Default)]
struct TransitionInner {
    last: HashMap<String, NodeState>,
    counts: HashMap<(String, NodeState, NodeState), u64>,
}

impl TransitionMetrics {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many `old → new` transitions were reported for `dn`.
    pub fn transition_count(&self, dn: &str, old: NodeState, new: NodeState) -> u64 {
        lock(&self.inner)
            .counts
            .get(&(dn.to_string(), old, new))
            .copied()
            .unwrap_or(0)
    }

    /// The gauge of `state` for `dn`: 1 if it is the last reported state, else 0 (0 for
    /// unknown DNs).
    pub fn gauge(&self, dn: &str, state: NodeState) -> u8 {
        u8::from(lock(&self.inner).last.get(dn) == Some(&state))
    }

    /// Total number of notifications for `dn`.
    pub fn notifications(&self, dn: &str) -> u64 {
        lock(&self.inner)
            .counts
            .iter()
            .filter(|((d, _, _), _)| d == dn)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Metrics for TransitionMetrics {
    fn notify_node_state(&self, dn: &str, state: NodeState) {
        let mut inner = lock(&self.inner);
        let old = inner
            .last
            .insert(dn.to_string(), state)
            .unwrap_or(NodeState::Dead);
        *inner
            .counts
            .entry((dn.to_string(), old, state))
            .or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_metrics_keep_the_last_state() {
        let m = InMemoryMetrics::new();
        m.notify_node_state("root", NodeState::New);
        m.notify_node_state("root", NodeState::Healthy);
        assert_eq!(m.state("root"), Some(NodeState::Healthy));
        assert_eq!(m.dns().len(), 1);
    }

    #[test]
    fn the_first_transition_of_a_dn_is_from_dead() {
        let m = TransitionMetrics::new();
        m.notify_node_state("root.a", NodeState::New);
        m.notify_node_state("root.a", NodeState::Healthy);
        assert_eq!(
            m.transition_count("root.a", NodeState::Dead, NodeState::New),
            1
        );
        assert_eq!(
            m.transition_count("root.a", NodeState::New, NodeState::Healthy),
            1
        );
        assert_eq!(m.gauge("root.a", NodeState::Healthy), 1);
        assert_eq!(m.gauge("root.a", NodeState::New), 0);
    }
}
