//! Restart policies attached to a subtree: DNs relative to the attach point, precedence against
//! the tree's own absolute overrides, the backoff the nodes of a mounted subtree really get, and
//! the overrides that name no node (`Supervisor::unmatched_overrides`).

mod common;

use std::time::Duration;

use common::*;
use supervisor::{
    BackoffParams, Canceled, Context, InvalidPolicy, LogRecorder, Options, RestartPolicy,
    RunResult, Runnable, SUPERVISOR_DN, Severity, Signal, SubtreePolicy, Supervisor,
    UnmatchedOverride,
};

const DEVMGR: &str = r#"
[defaults]
initial_interval = "200ms"
max_interval = "1m30s"
randomization_factor = 0.0

[overrides.listener]
initial_interval = "100ms"

[overrides.loader]
max_interval = "2h"
"#;

const AGENT: &str = r#"
[defaults]
max_interval = "45s"
randomization_factor = 0.0

[overrides."root.agent"]
initial_interval = "2s"

[overrides."root.agent.devices.loader"]
initial_interval = "300ms"
"#;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn overrides_of_an_attached_policy_are_relative_to_its_attach_point() {
    let devmgr = SubtreePolicy::from_toml_str(DEVMGR).expect("valid subtree policy");
    assert_eq!(devmgr.params_for("listener").initial_interval, ms(100));
    assert_eq!(devmgr.params_for("").initial_interval, ms(200));
    let agent = RestartPolicy::from_toml_str(AGENT).expect("valid policy");
    let p = agent
        .attach("root.agent.devices", devmgr)
        .expect("valid attach point");
    let at = |dn: &str| {
        let b = p.params_for(dn);
        (b.initial_interval, b.max_interval)
    };
    // Outside the subtree: the tree's own policy.
    assert_eq!(at("root"), (ms(500), Duration::from_secs(45)));
    assert_eq!(at("root.agent"), (ms(2000), Duration::from_secs(45)));
    assert_eq!(
        at("root.agent.devicesx"),
        (ms(500), Duration::from_secs(45)),
        "the subtree is matched by whole names, not by string prefix"
    );
    // The attach point and everything below it: the attached policy's defaults...
    assert_eq!(at("root.agent.devices"), (ms(200), Duration::from_secs(90)));
    assert_eq!(
        at("root.agent.devices.coldplug"),
        (ms(200), Duration::from_secs(90))
    );
    // ... and its overrides, relative to the attach point (exact nodes, not their children).
    assert_eq!(
        at("root.agent.devices.listener"),
        (ms(100), Duration::from_secs(90))
    );
    assert_eq!(
        at("root.agent.devices.listener.worker"),
        (ms(200), Duration::from_secs(90))
    );
    // The tree's absolute override wins over the attached policy; its unset fields come from
    // the tree's own defaults, not from the subtree's override (max_interval = "2h").
    assert_eq!(
        at("root.agent.devices.loader"),
        (ms(300), Duration::from_secs(45))
    );
    assert_eq!(p.params_for("root.agent.devices").randomization_factor, 0.0);
}

#[test]
fn nested_attachments_resolve_from_the_outside_in() {
    let d = BackoffParams::default();
    let with = |initial: u64| BackoffParams {
        initial_interval: ms(initial),
        max_interval: Duration::from_secs(60),
        ..d
    };
    let kmod = SubtreePolicy::new(with(10))
        .expect("valid")
        .with_override("worker", with(11))
        .expect("valid");
    let devmgr = SubtreePolicy::new(with(20))
        .expect("valid")
        .with_override("loader.worker", with(21))
        .expect("valid")
        .attach("loader", kmod)
        .expect("valid");
    let agent_direct = SubtreePolicy::new(with(30)).expect("valid");
    let p = RestartPolicy::new(with(40))
        .expect("valid")
        .attach("root.devices", devmgr)
        .expect("valid")
        .attach("root.devices.listener", agent_direct)
        .expect("valid");
    let initial = |dn: &str| p.params_for(dn).initial_interval;
    assert_eq!(initial("root"), ms(40));
    assert_eq!(initial("root.devices"), ms(20));
    // devmgr's own override of `loader.worker` wins over the policy devmgr attached at `loader`.
    assert_eq!(initial("root.devices.loader.worker"), ms(21));
    assert_eq!(initial("root.devices.loader"), ms(10));
    assert_eq!(initial("root.devices.loader.other"), ms(10));
    // The deepest attachment of the outer policy decides before the policy attached above it.
    assert_eq!(initial("root.devices.listener"), ms(30));
}

#[test]
fn attach_points_and_relative_dns_are_checked() {
    let d = BackoffParams::default();
    let sub = SubtreePolicy::default();
    for bad in ["agent.devices", "root..x", "", "root.A.B"] {
        assert_eq!(
            RestartPolicy::default().attach(bad, sub.clone()),
            Err(InvalidPolicy::Dn(bad.to_string())),
            "{bad:?}"
        );
    }
    for bad in ["", ".listener", "listener.", "a..b", "-"] {
        assert_eq!(
            SubtreePolicy::default().with_override(bad, d),
            Err(InvalidPolicy::RelativeDn(bad.to_string())),
            "{bad:?}"
        );
        assert_eq!(
            SubtreePolicy::default().attach(bad, sub.clone()),
            Err(InvalidPolicy::RelativeDn(bad.to_string())),
            "{bad:?}"
        );
    }
    let e = SubtreePolicy::from_toml_str("[overrides.\"\"]\nmultiplier = 2.0\n").unwrap_err();
    assert_eq!(e.line, 1, "{e}");
    assert_eq!(e.field.as_deref(), Some("overrides.\"\""));
    assert!(e.message.contains("not a valid relative DN"), "{e}");
    // A policy read as a table of a larger document names the document's lines and the table.
    #[derive(serde::Deserialize)]
    struct App {
        restart: supervisor::PolicySection,
    }
    let text = "[restart.overrides.listener]\n\ninitial_interval = \"1m30s\"\nmultiplier = 0.5\n";
    let app: App = toml::from_str(text).expect("valid TOML");
    let e = SubtreePolicy::from_section(text, "restart", app.restart).unwrap_err();
    assert_eq!(
        (e.line, e.field.as_deref()),
        (4, Some("restart.overrides.\"listener\".multiplier"))
    );
}

#[test]
fn compound_durations_are_accepted_in_subtree_policies() {
    let p = SubtreePolicy::from_toml_str(
        "[defaults]\ninitial_interval = \"1m30s\"\nmax_interval = \"2h45m30.5s\"\n\
         [overrides.\"a.b\"]\ninitial_interval = \"1h1m1s\"\n",
    )
    .expect("valid");
    assert_eq!(p.defaults().initial_interval, Duration::from_secs(90));
    assert_eq!(
        p.defaults().max_interval,
        Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500)
    );
    assert_eq!(
        p.params_for("a.b").initial_interval,
        Duration::from_secs(3661)
    );
}

/// Fails on its first run, then runs healthy until cancelled.
fn fails_once() -> Runnable {
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Runnable::new(move |ctx: Context| {
        let runs = runs.clone();
        async move {
            if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                return Err("first run fails".into());
            }
            ctx.signal(Signal::Healthy)?;
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    })
}

fn leaf() -> Runnable {
    Runnable::new(|ctx: Context| async move {
        ctx.signal(Signal::Healthy)?;
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    })
}

/// A node that starts each of `children` in a group of its own, signals Healthy and Done.
fn parent(children: Vec<(&'static str, Runnable)>) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let children = children.clone();
        async move {
            for (name, r) in children {
                ctx.run(name, r)?;
            }
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    })
}

/// devmgr mounted at `root.agent.devices` gets its own policy, written relative to its node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_of_a_mounted_subtree_restart_with_the_attached_policy() {
    let devmgr = SubtreePolicy::from_toml_str(DEVMGR).expect("valid subtree policy");
    let policy = RestartPolicy::from_toml_str(
        "[defaults]\ninitial_interval = \"400ms\"\nrandomization_factor = 0.0\n\
         [overrides.\"root.agent.devices.loader\"]\ninitial_interval = \"300ms\"\n",
    )
    .expect("valid policy")
    .attach("root.agent.devices", devmgr)
    .expect("valid attach point");
    let logs = LogRecorder::new();
    let devices = parent(vec![
        ("listener", fails_once()),
        ("loader", fails_once()),
        ("coldplug", fails_once()),
    ]);
    let agent = parent(vec![("devices", devices), ("other", fails_once())]);
    let s = Supervisor::new(
        root_running(vec![("agent", agent)]),
        Options::new()
            .restart_policy(policy)
            .log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor starts");
    eventually("every node restarted once", || {
        [
            "root.agent.devices.listener",
            "root.agent.devices.loader",
            "root.agent.devices.coldplug",
            "root.agent.other",
        ]
        .iter()
        .all(|dn| !rescheduled(&logs, dn).is_empty())
    })
    .await;
    assert_eq!(
        rescheduled(&logs, "root.agent.devices.listener"),
        ["100ms"],
        "the attached override, relative"
    );
    assert_eq!(
        rescheduled(&logs, "root.agent.devices.loader"),
        ["300ms"],
        "the tree's absolute override wins"
    );
    assert_eq!(
        rescheduled(&logs, "root.agent.devices.coldplug"),
        ["200ms"],
        "the attached policy's defaults"
    );
    assert_eq!(
        rescheduled(&logs, "root.agent.other"),
        ["400ms"],
        "outside the subtree: the tree's defaults"
    );
    within("settle", s.wait_settled()).await.expect("settles");
    assert_eq!(s.unmatched_overrides(), Vec::<UnmatchedOverride>::new());
    shutdown_and_wait(&s).await;
}

fn warnings(logs: &LogRecorder) -> Vec<String> {
    logs.entries_at(SUPERVISOR_DN)
        .into_iter()
        .filter(|e| e.severity == Severity::Warning)
        .map(|e| e.message)
        .collect()
}

async fn start_agent(policy: RestartPolicy, logs: &LogRecorder) -> Supervisor {
    let devices = Runnable::new(|ctx: Context| async move {
        ctx.run_group([("listener", leaf()), ("loader", leaf())])?;
        ctx.signal(Signal::Healthy)?;
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    });
    // `pending` stays New: it may still start `child`.
    let pending = Runnable::new(|ctx: Context| async move {
        ctx.cancelled().await;
        RunResult::Err(Canceled.into())
    });
    let agent = parent(vec![("devices", devices), ("pending", pending)]);
    Supervisor::new(
        root_running(vec![("agent", agent)]),
        Options::new()
            .restart_policy(policy)
            .log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_of_an_attached_policy_that_name_no_node_are_reported() {
    let devmgr = SubtreePolicy::from_toml_str(
        "[overrides.listner]\nmax_interval = \"1m30s\"\n\
         [overrides.loader]\nmax_interval = \"1m30s\"\n\
         [overrides.\"root.agent.devices.listener\"]\nmax_interval = \"1m30s\"\n",
    )
    .expect("valid subtree policy");
    let pending = SubtreePolicy::from_toml_str("[overrides.child]\nmax_interval = \"5s\"\n")
        .expect("valid subtree policy");
    let policy = RestartPolicy::from_toml_str(
        "[overrides.\"root.agent.devices.loadr\"]\nmax_interval = \"5s\"\n",
    )
    .expect("valid policy")
    .attach("root.agent.devices", devmgr)
    .expect("valid")
    .attach("root.agent.pending", pending)
    .expect("valid");
    let logs = LogRecorder::new();
    let s = start_agent(policy, &logs).await;
    within("settle", s.wait_settled()).await.expect("settles");
    let unmatched = s.unmatched_overrides();
    assert_eq!(
        unmatched,
        [
            UnmatchedOverride {
                dn: "root.agent.devices.listner".to_string(),
                key: "listner".to_string(),
                attached_at: Some("root.agent.devices".to_string()),
                attachment: false,
                closest: Some("root.agent.devices.listener".to_string()),
            },
            UnmatchedOverride {
                dn: "root.agent.devices.loadr".to_string(),
                key: "root.agent.devices.loadr".to_string(),
                attached_at: None,
                attachment: false,
                closest: Some("root.agent.devices.loader".to_string()),
            },
            // An absolute DN written in a relative table: the closest DN shows the mistake.
            UnmatchedOverride {
                dn: "root.agent.devices.root.agent.devices.listener".to_string(),
                key: "root.agent.devices.listener".to_string(),
                attached_at: Some("root.agent.devices".to_string()),
                attachment: false,
                closest: Some("root.agent.devices.listener".to_string()),
            },
        ]
    );
    assert_eq!(
        warnings(&logs),
        unmatched.iter().map(|u| u.to_string()).collect::<Vec<_>>(),
        "each one is warned about in the supervisor's log"
    );
    assert_eq!(
        unmatched[0].to_string(),
        "restart policy override \"listner\" (attached at root.agent.devices) names no node \
         (root.agent.devices.listner); closest existing DN: root.agent.devices.listener"
    );
    shutdown_and_wait(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attach_point_that_names_no_node_is_reported_once_for_its_whole_policy() {
    let devmgr = SubtreePolicy::from_toml_str(
        "[overrides.listener]\nmax_interval = \"1m30s\"\n\
         [overrides.listner]\nmax_interval = \"1m30s\"\n",
    )
    .expect("valid subtree policy");
    let policy = RestartPolicy::default()
        .attach("root.agent.devics", devmgr)
        .expect("valid");
    let logs = LogRecorder::new();
    let s = start_agent(policy, &logs).await;
    within("settle", s.wait_settled()).await.expect("settles");
    let unmatched = s.unmatched_overrides();
    assert_eq!(
        unmatched,
        [UnmatchedOverride {
            dn: "root.agent.devics".to_string(),
            key: "root.agent.devics".to_string(),
            attached_at: None,
            attachment: true,
            closest: Some("root.agent.devices".to_string()),
        }]
    );
    assert_eq!(
        warnings(&logs),
        [
            "restart policy attached at root.agent.devics names no node; closest existing DN: \
          root.agent.devices"
        ]
    );
    shutdown_and_wait(&s).await;
}
