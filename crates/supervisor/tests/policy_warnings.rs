//! Restart-policy overrides that name no node are reported in the supervisor's log, naming the
//! closest existing DN, once the node that would have to start them can no longer do so. Only
//! the tree-wide policy is used here (absolute DNs); `policy_subtree.rs` covers attached
//! subtree policies and the query API.

mod common;

use common::*;
use supervisor::{
    Canceled, Context, LogRecorder, Options, RestartPolicy, RunResult, Runnable, SUPERVISOR_DN,
    Severity, Signal, Supervisor,
};
use tokio::sync::mpsc;

/// Signals Healthy and runs until cancelled.
fn leaf() -> Runnable {
    Runnable::new(|ctx: Context| async move {
        ctx.signal(Signal::Healthy)?;
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    })
}

/// A devmgr-like node: starts `listener`, `loader` and `coldplug` as one group, signals Healthy
/// and Done.
fn devmgr() -> Runnable {
    Runnable::new(|ctx: Context| async move {
        ctx.run_group([
            ("listener", leaf()),
            ("loader", leaf()),
            ("coldplug", leaf()),
        ])?;
        ctx.signal(Signal::Healthy)?;
        ctx.signal(Signal::Done)?;
        RunResult::Ok(())
    })
}

fn warnings(logs: &LogRecorder) -> Vec<String> {
    logs.entries_at(SUPERVISOR_DN)
        .into_iter()
        .filter(|e| e.severity == Severity::Warning)
        .map(|e| e.message)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_override_is_warned_about_with_the_closest_dn() {
    // Compound Go durations are accepted in the overrides.
    let policy = RestartPolicy::from_toml_str(
        r#"
[overrides."root.devmgr.listner"]
initial_interval = "1m30s"
max_interval = "2m"
[overrides."root.devmgr.loader"]
max_interval = "1h2m3.5s"
[overrides."root.devmgr.zzz"]
max_interval = "2m"
"#,
    )
    .expect("valid policy");
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root_running(vec![("devmgr", devmgr())]),
        Options::new()
            .restart_policy(policy)
            .log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor starts");
    within("settle", s.wait_settled()).await.expect("settles");
    assert_eq!(
        warnings(&logs),
        [
            "restart policy override \"root.devmgr.listner\" names no node; closest existing \
             DN: root.devmgr.listener",
            "restart policy override \"root.devmgr.zzz\" names no node",
        ]
    );
    // Reported once, not at every settle.
    within("settle again", s.wait_settled())
        .await
        .expect("settles");
    assert_eq!(warnings(&logs).len(), 2);
    shutdown_and_wait(&s).await;
}

/// An override counts as unmatched only once the nearest existing node above its DN has
/// signalled Healthy (from then on it cannot start children until it restarts); a node that is
/// still New may yet start the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_below_a_node_that_may_still_start_it_is_not_warned_about() {
    let (go_tx, go_rx) = channel::<()>();
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let slow = Runnable::new(move |ctx: Context| {
        let (go_rx, started_tx) = (go_rx.clone(), started_tx.clone());
        async move {
            let _ = started_tx.send(());
            // Settles while New: it may still start children.
            step(&ctx, &go_rx).await?;
            ctx.run("late", leaf())?;
            ctx.signal(Signal::Healthy)?;
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let policy = RestartPolicy::from_toml_str(
        "[overrides.\"root.slow.late\"]\nmax_interval = \"1m30s\"\n\
         [overrides.\"root.slow.never\"]\nmax_interval = \"1m30s\"\n\
         [overrides.\"root.slow.late.deeper\"]\nmax_interval = \"1m30s\"\n",
    )
    .expect("valid policy");
    let logs = LogRecorder::new();
    let s = Supervisor::new(
        root_running(vec![("slow", slow)]),
        Options::new()
            .restart_policy(policy)
            .log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor starts");
    got("slow started", &mut started).await;
    within("settle", s.wait_settled()).await.expect("settles");
    assert_eq!(warnings(&logs), Vec::<String>::new(), "root.slow is New");
    go_tx.send(()).expect("slow waits");
    within("late started", async {
        while s.node_state("root.slow.late") != Some(supervisor::NodeState::Healthy) {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    })
    .await;
    within("settle", s.wait_settled()).await.expect("settles");
    assert_eq!(
        warnings(&logs),
        [
            "restart policy override \"root.slow.late.deeper\" names no node",
            "restart policy override \"root.slow.never\" names no node",
        ]
    );
    shutdown_and_wait(&s).await;
}
