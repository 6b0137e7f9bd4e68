//! The supervision tree: nodes, groups, names, DNs, and the pure parts of the restart pass.
//! Always used under the supervisor's lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use crate::backoff::Backoff;
use crate::error::{Error, SignalMisuse};
use crate::name::{child_dn, is_valid_name};
use crate::runnable::Runnable;
use crate::state::{NodeState, Signal};
use crate::token::CancelToken;

/// Identity of a node object (stable across its restarts, never reused).
pub(crate) type NodeId = u64;

/// One node of the tree (see `docs/supervisor.md#vocabulary`).
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) parent: Option<NodeId>,
    pub(crate) runnable: Runnable,
    pub(crate) children: BTreeMap<String, NodeId>,
    pub(crate) groups: Vec<Vec<String>>,
    pub(crate) reserved: BTreeSet<String>,
    pub(crate) state: NodeState,
    pub(crate) signaled_done: bool,
    /// Whether the runnable of the current incarnation has been started and has not returned
    /// yet (used only when the processor is gone, see `Shared::shut_down_without_processor`).
    pub(crate) running: bool,
    pub(crate) backoff: Backoff,
    pub(crate) token: CancelToken,
    /// Bumped on every reset; contexts and processor messages carry it (so stale contexts are
    /// refused, unlike Go).
    pub(crate) incarnation: u64,
}

/// A node chosen by the restart pass.
#[derive(Debug)]
pub(crate) struct Restart {
    pub(crate) id: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) dn: String,
    pub(crate) delay: Duration,
    pub(crate) token: CancelToken,
}

/// A newly created child, to be scheduled.
#[derive(Debug)]
pub(crate) struct NewChild {
    pub(crate) id: NodeId,
    pub(crate) incarnation: u64,
    pub(crate) dn: String,
}

/// The tree. `make_backoff` builds the backoff of a new node from its DN.
pub(crate) struct Tree {
    nodes: HashMap<NodeId, Node>,
    next_id: NodeId,
    root: NodeId,
    pub(crate) shut_down: bool,
    make_backoff: Box<dyn Fn(&str) -> Backoff + Send + Sync>,
}

impl Tree {
    pub(crate) fn new(
        root: Runnable,
        make_backoff: Box<dyn Fn(&str) -> Backoff + Send + Sync>,
    ) -> Self {
        let mut nodes = HashMap::new();
        let backoff = make_backoff("root");
        nodes.insert(
            0,
            Node {
                name: "root".to_string(),
                parent: None,
                runnable: root,
                children: BTreeMap::new(),
                groups: Vec::new(),
                reserved: BTreeSet::new(),
                state: NodeState::New,
                signaled_done: false,
                running: false,
                backoff,
                // The root's context is not derived from anything.
                token: CancelToken::new(),
                incarnation: 0,
            },
        );
        Self {
            nodes,
            next_id: 1,
            root: 0,
            shut_down: false,
            make_backoff,
        }
    }

    pub(crate) fn root(&self) -> NodeId {
        self.root
    }

    pub(crate) fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    pub(crate) fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(&id)
    }

    /// The node for `(id, incarnation)`, if that incarnation is still the current one.
    pub(crate) fn current(&self, id: NodeId, incarnation: u64) -> Option<&Node> {
        self.nodes.get(&id).filter(|n| n.incarnation == incarnation)
    }

    /// The node for `(id, incarnation)` if that incarnation is current and has not exited: the
    /// view of a context's API calls (unlike Go). Once the exit of a run was handled, its
    /// context is stale even before the node is reset, so misuse from a leftover helper task
    /// gets the same answer whatever the timing.
    fn running_incarnation(&self, id: NodeId, incarnation: u64) -> Option<&Node> {
        self.current(id, incarnation)
            .filter(|n| !n.state.is_exited())
    }

    fn running_incarnation_mut(&mut self, id: NodeId, incarnation: u64) -> Option<&mut Node> {
        self.nodes
            .get_mut(&id)
            .filter(|n| n.incarnation == incarnation && !n.state.is_exited())
    }

    /// The DN of a node, computed from the parent chain.
    pub(crate) fn dn(&self, id: NodeId) -> String {
        let mut parts = Vec::new();
        let mut cur = self.nodes.get(&id);
        while let Some(n) = cur {
            parts.push(n.name.as_str());
            cur = n.parent.and_then(|p| self.nodes.get(&p));
        }
        parts.reverse();
        parts.join(".")
    }

    /// Resolves a DN to a node, walking from the root.
    pub(crate) fn find(&self, dn: &str) -> Option<NodeId> {
        let mut parts = dn.split('.');
        if parts.next() != Some("root") {
            return None;
        }
        let mut id = self.root;
        for part in parts {
            id = *self.nodes.get(&id)?.children.get(part)?;
        }
        Some(id)
    }

    fn stale(incarnation: u64, dn: &str) -> Error {
        Error::StaleContext {
            dn: dn.to_string(),
            incarnation,
        }
    }

    /// `RunGroup` (see `docs/supervisor.md#starting-children-and-groups`): checks everything first,
    /// then creates all children in New.
    pub(crate) fn run_group(
        &mut self,
        id: NodeId,
        incarnation: u64,
        dn: &str,
        group: Vec<(String, Runnable)>,
    ) -> Result<Vec<NewChild>, Error> {
        let parent = self
            .running_incarnation(id, incarnation)
            .ok_or_else(|| Self::stale(incarnation, dn))?;
        if parent.state != NodeState::New {
            return Err(Error::NotNew);
        }
        let mut seen = BTreeSet::new();
        for (name, _) in &group {
            if !is_valid_name(name) {
                return Err(Error::InvalidName(name.clone()));
            }
            if parent.children.contains_key(name) {
                return Err(Error::AlreadyExists(name.clone()));
            }
            if parent.reserved.contains(name) {
                return Err(Error::ShadowsReservedName(name.clone()));
            }
            if !seen.insert(name.clone()) {
                return Err(Error::DuplicateChildName(name.clone()));
            }
        }
        let parent_token = parent.token.clone();
        let mut created = Vec::with_capacity(group.len());
        let mut names = Vec::with_capacity(group.len());
        for (name, runnable) in group {
            let child_id = self.next_id;
            self.next_id += 1;
            let cdn = child_dn(dn, &name);
            let node = Node {
                name: name.clone(),
                parent: Some(id),
                runnable,
                children: BTreeMap::new(),
                groups: Vec::new(),
                reserved: BTreeSet::new(),
                state: NodeState::New,
                signaled_done: false,
                running: false,
                backoff: (self.make_backoff)(&cdn),
                token: parent_token.child_token(),
                incarnation: 0,
            };
            self.nodes.insert(child_id, node);
            names.push(name.clone());
            created.push(NewChild {
                id: child_id,
                incarnation: 0,
                dn: cdn,
            });
            if let Some(p) = self.nodes.get_mut(&id) {
                p.children.insert(name, child_id);
            }
        }
        if let Some(p) = self.nodes.get_mut(&id) {
            p.groups.push(names);
        }
        Ok(created)
    }

    /// `Signal` (see `docs/supervisor.md#signals-healthy-and-done`). The outer error is a stale
    /// context; the inner one a misuse that the caller turns into a panic after releasing the lock.
    pub(crate) fn signal(
        &mut self,
        id: NodeId,
        incarnation: u64,
        dn: &str,
        signal: Signal,
    ) -> Result<Result<(), SignalMisuse>, Error> {
        let stale = Self::stale(incarnation, dn);
        let node = self.running_incarnation_mut(id, incarnation).ok_or(stale)?;
        let dn = dn.to_string();
        Ok(match signal {
            Signal::Healthy if node.state != NodeState::New => Err(SignalMisuse::Healthy {
                dn,
                state: node.state,
            }),
            Signal::Healthy => {
                node.state = NodeState::Healthy;
                node.backoff.reset();
                Ok(())
            }
            Signal::Done if node.state != NodeState::Healthy => Err(SignalMisuse::Done {
                dn,
                state: node.state,
            }),
            Signal::Done if node.signaled_done => Err(SignalMisuse::DoneTwice {
                dn,
                state: node.state,
            }),
            Signal::Done => {
                node.signaled_done = true;
                node.backoff.reset();
                Ok(())
            }
        })
    }

    /// Reserves a sub-logger name.
    pub(crate) fn reserve_sub_logger(
        &mut self,
        id: NodeId,
        incarnation: u64,
        dn: &str,
        name: &str,
    ) -> Result<(), Error> {
        let stale = Self::stale(incarnation, dn);
        let node = self.running_incarnation_mut(id, incarnation).ok_or(stale)?;
        if node.children.contains_key(name) {
            return Err(Error::NameInUseByChild(name.to_string()));
        }
        if !is_valid_name(name) {
            return Err(Error::InvalidSubLoggerName(name.to_string()));
        }
        node.reserved.insert(name.to_string());
        Ok(())
    }

    /// The group siblings of a node, excluding the node itself.
    pub(crate) fn group_siblings(&self, id: NodeId) -> Vec<NodeId> {
        let Some(node) = self.nodes.get(&id) else {
            return Vec::new();
        };
        let Some(parent) = node.parent.and_then(|p| self.nodes.get(&p)) else {
            return Vec::new();
        };
        parent
            .groups
            .iter()
            .find(|g| g.contains(&node.name))
            .map(|g| {
                g.iter()
                    .filter(|n| **n != node.name)
                    .filter_map(|n| parent.children.get(n).copied())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every node reachable from the root, breadth-first.
    pub(crate) fn reachable(&self) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut queue = VecDeque::from([self.root]);
        while let Some(id) = queue.pop_front() {
            if let Some(n) = self.nodes.get(&id) {
                out.push(id);
                queue.extend(n.children.values().copied());
            }
        }
        out
    }

    /// Sorted DNs of every reachable node in New or Healthy.
    pub(crate) fn live_runnables(&self) -> Vec<String> {
        let mut dns: Vec<String> = self
            .reachable()
            .into_iter()
            .filter(|id| self.nodes.get(id).is_some_and(|n| n.state.is_live()))
            .map(|id| self.dn(id))
            .collect();
        dns.sort();
        dns
    }

    /// Whether any reachable node is in New or Healthy.
    pub(crate) fn any_live(&self) -> bool {
        self.reachable()
            .into_iter()
            .any(|id| self.nodes.get(&id).is_some_and(|n| n.state.is_live()))
    }

    /// Whether each node's whole subtree has exited. Also returns the warnings for Dead
    /// nodes that have a non-ready child (first non-ready child only).
    fn readiness(&self) -> (HashMap<NodeId, bool>, Vec<String>) {
        let mut ready = HashMap::new();
        let mut warnings = Vec::new();
        // Reverse BFS order visits children before parents.
        for id in self.reachable().into_iter().rev() {
            let Some(n) = self.nodes.get(&id) else {
                continue;
            };
            let first_unready = n
                .children
                .values()
                .find(|c| !ready.get(*c).copied().unwrap_or(false));
            if let (NodeState::Dead, Some(c)) = (n.state, first_unready) {
                warnings.push(format!(
                    "Not restarting {}: children not ready to be restarted: [{}]",
                    self.dn(id),
                    self.dn(*c)
                ));
            }
            ready.insert(id, n.state.is_exited() && first_unready.is_none());
        }
        (ready, warnings)
    }

    /// The restart pass (see `docs/supervisor.md#the-restart-pass`): picks the highest restartable
    /// node of each branch, resets it and returns what to schedule, plus the "not restarting"
    /// warnings.
    pub(crate) fn restart_pass(&mut self) -> (Vec<Restart>, Vec<String>) {
        let (ready, warnings) = self.readiness();
        let mut picked = Vec::new();
        let mut queue = VecDeque::from([self.root]);
        while let Some(id) = queue.pop_front() {
            let Some(n) = self.nodes.get(&id) else {
                continue;
            };
            let wants = n.token.is_cancelled() && n.state.is_exited();
            let parent_live = n
                .parent
                .and_then(|p| self.nodes.get(&p))
                .is_none_or(|p| !p.token.is_cancelled());
            if wants && ready.get(&id).copied().unwrap_or(false) && parent_live {
                picked.push(id);
            } else {
                queue.extend(n.children.values().copied());
            }
        }
        let mut restarts = Vec::with_capacity(picked.len());
        for id in picked {
            let delay = match self.nodes.get_mut(&id) {
                Some(n) if n.state == NodeState::Dead => n.backoff.next_backoff(),
                Some(_) => Duration::ZERO,
                None => continue,
            };
            self.reset(id);
            if let Some(n) = self.nodes.get(&id) {
                restarts.push(Restart {
                    id,
                    incarnation: n.incarnation,
                    dn: self.dn(id),
                    delay,
                    token: n.token.clone(),
                });
            }
        }
        (restarts, warnings)
    }

    /// Resets a node in place (same object and backoff), dropping its descendants.
    fn reset(&mut self, id: NodeId) {
        let parent_token = self
            .nodes
            .get(&id)
            .and_then(|n| n.parent)
            .and_then(|p| self.nodes.get(&p))
            .map(|p| p.token.clone());
        let children: Vec<NodeId> = self
            .nodes
            .get(&id)
            .map(|n| n.children.values().copied().collect())
            .unwrap_or_default();
        for c in children {
            self.remove_subtree(c);
        }
        if let Some(n) = self.nodes.get_mut(&id) {
            n.token = match parent_token {
                Some(t) => t.child_token(),
                None => CancelToken::new(),
            };
            n.state = NodeState::New;
            n.signaled_done = false;
            n.running = false;
            n.children.clear();
            n.groups.clear();
            n.reserved.clear();
            n.incarnation += 1;
        }
    }

    fn remove_subtree(&mut self, id: NodeId) {
        if let Some(n) = self.nodes.remove(&id) {
            n.token.cancel();
            for c in n.children.into_values() {
                self.remove_subtree(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::{BackoffParams, RandomSource};

    #[derive(Debug)]
    struct Zero;
    impl RandomSource for Zero {
        fn next_f64(&mut self) -> f64 {
            0.0
        }
    }

    fn noop() -> Runnable {
        Runnable::new(|_ctx| async { Ok(()) })
    }

    /// root with group {a, b}; a has group {c}.
    fn tree() -> (Tree, NodeId, NodeId, NodeId) {
        let mut t = Tree::new(
            noop(),
            Box::new(|_dn| Backoff::from_valid(BackoffParams::default(), Box::new(Zero))),
        );
        let ab = t
            .run_group(
                0,
                0,
                "root",
                vec![("a".into(), noop()), ("b".into(), noop())],
            )
            .unwrap();
        let (a, b) = (ab[0].id, ab[1].id);
        let c = t
            .run_group(a, 0, "root.a", vec![("c".into(), noop())])
            .unwrap()[0]
            .id;
        (t, a, b, c)
    }

    fn set(t: &mut Tree, id: NodeId, state: NodeState, cancel: bool) {
        let n = t.node_mut(id).unwrap();
        n.state = state;
        if cancel {
            n.token.cancel();
        }
    }

    #[test]
    fn dns_come_from_the_parent_chain_and_resolve_back() {
        let (t, a, _, c) = tree();
        assert_eq!(t.dn(c), "root.a.c");
        assert_eq!(t.find("root.a.c"), Some(c));
        assert_eq!(t.find("root.a"), Some(a));
        assert_eq!(t.find("root.x"), None);
        assert_eq!(t.group_siblings(a).len(), 1);
        assert!(t.group_siblings(c).is_empty());
    }

    #[test]
    fn the_highest_restartable_node_is_picked_and_its_subtree_dropped() {
        let (mut t, a, _, c) = tree();
        set(&mut t, a, NodeState::Dead, true); // cancels c too (derived token)
        assert!(t.node(c).unwrap().token.is_cancelled());
        set(&mut t, c, NodeState::Canceled, false);
        let (restarts, warnings) = t.restart_pass();
        assert!(warnings.is_empty());
        assert_eq!(restarts.len(), 1);
        assert_eq!((restarts[0].id, restarts[0].incarnation), (a, 1));
        assert_eq!(restarts[0].delay, Duration::from_millis(250));
        assert!(t.node(c).is_none(), "the child object is thrown away");
        let node_a = t.node(a).unwrap();
        assert_eq!(node_a.state, NodeState::New);
        assert!(node_a.children.is_empty() && node_a.groups.is_empty());
        assert!(!node_a.token.is_cancelled());
    }

    #[test]
    fn a_dead_node_with_a_live_child_waits_and_warns() {
        let (mut t, a, _, _) = tree();
        set(&mut t, a, NodeState::Dead, true);
        let (restarts, warnings) = t.restart_pass();
        assert!(restarts.is_empty());
        assert_eq!(
            warnings,
            ["Not restarting root.a: children not ready to be restarted: [root.a.c]"]
        );
    }

    #[test]
    fn nothing_restarts_under_a_cancelled_parent() {
        let (mut t, a, _, c) = tree();
        // root is still running but its context was cancelled (e.g. shutting down).
        t.node(0).unwrap().token.cancel();
        set(&mut t, a, NodeState::Canceled, false);
        set(&mut t, c, NodeState::Canceled, false);
        let (restarts, _) = t.restart_pass();
        assert!(restarts.is_empty());
    }

    #[test]
    fn done_nodes_restart_only_when_cancelled_and_without_delay() {
        let (mut t, a, b, c) = tree();
        set(&mut t, c, NodeState::Done, false);
        set(&mut t, b, NodeState::Done, false);
        assert!(
            t.restart_pass().0.is_empty(),
            "Done with a live context stays Done"
        );
        t.node(b).unwrap().token.cancel();
        let (restarts, _) = t.restart_pass();
        assert_eq!(restarts.len(), 1);
        assert_eq!((restarts[0].id, restarts[0].delay), (b, Duration::ZERO));
        // The Done restart did not advance b's backoff.
        set(&mut t, b, NodeState::Dead, true);
        assert_eq!(t.restart_pass().0[0].delay, Duration::from_millis(250));
        let _ = (a, c);
    }

    #[test]
    fn signals_follow_g1_g2_and_reset_the_backoff() {
        let (mut t, a, _, _) = tree();
        t.node_mut(a).unwrap().backoff.next_backoff();
        assert!(matches!(
            t.signal(a, 0, "root.a", Signal::Done),
            Ok(Err(SignalMisuse::Done { .. }))
        ));
        assert_eq!(t.signal(a, 0, "root.a", Signal::Healthy), Ok(Ok(())));
        assert_eq!(
            t.node(a).unwrap().backoff.current_interval(),
            Duration::from_millis(500)
        );
        assert!(matches!(
            t.signal(a, 0, "root.a", Signal::Healthy),
            Ok(Err(SignalMisuse::Healthy { .. }))
        ));
        assert_eq!(t.signal(a, 0, "root.a", Signal::Done), Ok(Ok(())));
        assert!(matches!(
            t.signal(a, 0, "root.a", Signal::Done),
            Ok(Err(SignalMisuse::DoneTwice { .. }))
        ));
        assert_eq!(t.node(a).unwrap().state, NodeState::Healthy);
        assert!(matches!(
            t.signal(a, 7, "root.a", Signal::Healthy),
            Err(Error::StaleContext { incarnation: 7, .. })
        ));
    }

    #[test]
    fn live_runnables_lists_new_and_healthy_nodes_sorted() {
        let (mut t, a, b, c) = tree();
        set(&mut t, a, NodeState::Done, false);
        set(&mut t, b, NodeState::Canceled, false);
        assert_eq!(t.live_runnables(), ["root", "root.a.c"]);
        set(&mut t, 0, NodeState::Dead, false);
        set(&mut t, c, NodeState::Healthy, false);
        assert_eq!(t.live_runnables(), ["root.a.c"]);
        assert!(t.any_live());
    }
}
