//! The supervision tree of devmgr, with the semantics of Monogon's Go supervisor
//! (`shared/spec/supervisor.md`): runnables named by DNs such as `root.devmgr.listener`,
//! Healthy/Done signals, cancellation of a dead node's subtree and group siblings, and restarts
//! with per-node exponential backoff, on top of ractor actors.
//!
//! Status: not implemented yet (issue #3). The crate exports nothing so far.
