//! Logging through `tracing`, with the node's DN as a field.
//!
//! A binary of its own, not a module of `rules/`: beside the rule tests in one process (other
//! supervisors logging on other threads, no subscriber there) its thread-local subscriber
//! missed the runnable's `info` event in about 1 run in 8, while alone it never does.

mod common;

use common::*;
use supervisor::{Context, NodeState, RunResult, Runnable, SUPERVISOR_DN};
use test_support::Capture;

/// Current-thread runtime: the thread-local subscriber sees every task.
#[tokio::test]
async fn a_death_is_logged_through_tracing_with_the_node_dn_as_a_field() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let f = start(root_running(vec![(
        "worker",
        Runnable::new(|ctx: Context| async move {
            ctx.logger().info("starting work");
            RunResult::Err("disk on fire".into())
        }),
    )]))
    .await;
    f.m.wait_count("root.worker", NodeState::Dead, 1).await;
    let events: Vec<(String, String, bool)> = capture
        .events()
        .iter()
        .map(|e| {
            let (dn, message) = (e.field("dn").to_owned(), e.field("message").to_owned());
            (dn, message, e.field("fatal") == "true")
        })
        .collect();
    assert!(events.contains(&(
        "root.worker".to_string(),
        "runnable returned error: disk on fire".to_string(),
        true
    )));
    assert!(events.contains(&("root.worker".into(), "starting work".into(), false)));
    assert!(events.iter().any(|(dn, msg, _)| dn == SUPERVISOR_DN
        && msg.starts_with("rescheduling supervised node root.worker with backoff")));
    shutdown_and_wait(&f.s).await;
}
