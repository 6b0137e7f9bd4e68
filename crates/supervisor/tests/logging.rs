//! Logging through `tracing`, with the node's DN as a field.
//!
//! A binary of its own, not a module of `rules/`: beside the rule tests in one process (other
//! supervisors logging on other threads, no subscriber there) its thread-local subscriber
//! missed the runnable's `info` event in about 1 run in 8, while alone it never does.

mod common;

use std::sync::Arc;

use common::*;
use supervisor::{Context, NodeState, RunResult, Runnable, SUPERVISOR_DN};

/// A minimal `tracing` subscriber keeping (dn, message, fatal) of every event.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<(String, String, bool)>>>);

#[derive(Default)]
struct Fields {
    dn: String,
    message: String,
    fatal: bool,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "dn" {
            self.dn = value.to_string();
        }
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        if field.name() == "fatal" {
            self.fatal = value;
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "dn" => self.dn = format!("{value:?}"),
            _ => {}
        }
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        self.0
            .lock()
            .expect("capture lock")
            .push((f.dn, f.message, f.fatal));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

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
    let events = capture.0.lock().unwrap().clone();
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
