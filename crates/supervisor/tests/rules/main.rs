//! The supervisor's rules (`docs/supervisor.md`) checked one by one where Go's own test suite
//! (`go_suite.rs`) does not, plus the differences from Go
//! (`docs/supervisor.md#differences-from-the-go-supervisor`): stale contexts, propagated
//! panics, names with dots. One binary, a module per concern; most tests start their tree
//! with the one fixture, `common::start` (or `start_with` for more options).

#[path = "../common/mod.rs"]
mod common;

mod contexts;
mod exit_classification;
mod harness;
mod metrics;
mod names;
mod panics;
mod restarts;
mod shutdown;
mod signals;
mod starting;
