//! What a death affects (`docs/supervisor.md#what-a-death-affects`), the restart at the highest
//! ready node (`docs/supervisor.md#the-restart-pass`), backoff per node with Dead restarts only
//! (`docs/supervisor.md#restart-backoff`), and a per-DN policy override.

use crate::common::*;
use supervisor::{
    Canceled, Context, NodeState, RunResult, Runnable, SUPERVISOR_DN, Severity, Signal,
};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_death_leaves_the_parent_and_other_groups_untouched() {
    let (tx, mut rx) = mpsc::unbounded_channel::<Context>();
    let dier = Rc::new();
    let (oh, mut other_healthy) = mpsc::unbounded_channel();
    let (od, mut other_cancelled) = mpsc::unbounded_channel();
    let dier_r = dier.runnable();
    let parent = Runnable::new(move |ctx: Context| {
        let (tx, dier_r, oh, od) = (tx.clone(), dier_r.clone(), oh.clone(), od.clone());
        async move {
            ctx.run("dier", dier_r)?;
            ctx.run("other", becomes_healthy(oh, od))?;
            ctx.signal(Signal::Healthy)?;
            let _ = tx.send(ctx.clone());
            ctx.cancelled().await;
            RunResult::Err(Canceled.into())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    let parent_ctx = got("parent context", &mut rx).await;
    got("other healthy", &mut other_healthy).await;
    dier.send(RcCmd::Die);
    assert_eq!(f.m.first_exit("root.parent.dier").await, NodeState::Dead);
    // dier restarts after its backoff; meanwhile nothing else moved.
    dier.wait_state(NodeState::New).await;
    assert!(!parent_ctx.is_cancelled());
    assert_eq!(f.s.node_state("root.parent"), Some(NodeState::Healthy));
    assert_eq!(
        f.s.node_state("root.parent.other"),
        Some(NodeState::Healthy)
    );
    assert!(other_cancelled.try_recv().is_err());
    assert_eq!(
        f.m.states("root.parent"),
        [NodeState::New, NodeState::Healthy]
    );
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_nodes_child_dies_and_only_the_child_restarts() {
    let child = Rc::new();
    let child_r = child.runnable();
    let parent = Runnable::new(move |ctx: Context| {
        let child_r = child_r.clone();
        async move {
            ctx.run("child", child_r)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            RunResult::Ok(())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    f.m.wait_count("root.parent", NodeState::Done, 1).await;
    child.send(RcCmd::Die);
    f.m.wait_count("root.parent.child", NodeState::New, 2).await;
    assert_eq!(f.s.node_state("root.parent"), Some(NodeState::Done));
    assert_eq!(
        f.m.states("root.parent"),
        [NodeState::New, NodeState::Healthy, NodeState::Done]
    );
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_descendant_blocks_the_dead_ancestors_restart_until_it_exits() {
    let (release_tx, release) = channel::<()>();
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let killer = Rc::new();
    let stuck = Runnable::new(move |_ctx: Context| {
        let release = release.clone();
        async move {
            // Ignores cancellation until released.
            recv(&release).await;
            RunResult::Err(Canceled.into())
        }
    });
    let parent = Runnable::new(move |ctx: Context| {
        let (stuck, started_tx) = (stuck.clone(), started_tx.clone());
        async move {
            let _ = started_tx.send(());
            ctx.run("stuck", stuck)?;
            ctx.cancelled().await;
            RunResult::Err("parent dies on cancel".into())
        }
    });
    let f = start(root_running(vec![
        ("parent", parent),
        ("killer", killer.runnable()),
    ]))
    .await;
    got("parent started", &mut started).await;
    killer.send(RcCmd::Die);
    assert_eq!(f.m.first_exit("root.parent").await, NodeState::Dead);
    let warning = within(
        "not-restarting warning",
        f.logs.wait_for(|e| {
            e.severity == Severity::Warning
                && e.message
                    == "Not restarting root.parent: children not ready to be restarted: [root.parent.stuck]"
        }),
    )
    .await;
    assert_eq!(warning.dn, SUPERVISOR_DN);
    // Give the processor every chance to (wrongly) restart the parent.
    within("settle", f.s.wait_settled()).await.unwrap();
    assert_eq!(f.s.node_state("root.parent"), Some(NodeState::Dead));
    assert!(started.try_recv().is_err());
    release_tx.send(()).unwrap();
    got("parent restarted", &mut started).await;
    release_tx.send(()).unwrap(); // lets the new `stuck` exit at shutdown
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_child_of_a_dead_parent_is_never_restarted_on_its_own() {
    let (release_tx, release) = channel::<()>();
    let killer = Rc::new();
    let child = Runnable::new(move |_ctx: Context| {
        let release = release.clone();
        async move {
            recv(&release).await;
            RunResult::Err("child dies".into())
        }
    });
    let parent = Runnable::new(move |ctx: Context| {
        let child = child.clone();
        async move {
            ctx.run("child", child)?;
            ctx.cancelled().await;
            RunResult::Err("parent dies".into())
        }
    });
    let f = start(root_running(vec![
        ("parent", parent),
        ("killer", killer.runnable()),
    ]))
    .await;
    f.m.wait_count("root.parent.child", NodeState::New, 1).await;
    killer.send(RcCmd::Die);
    f.m.wait_count("root.parent", NodeState::Dead, 1).await;
    release_tx.send(()).unwrap();
    f.m.wait_count("root.parent.child", NodeState::New, 2).await;
    let ev = f.m.events();
    let pos = |dn: &str, st: NodeState, nth: usize| {
        ev.iter()
            .enumerate()
            .filter(|(_, (d, s))| d == dn && *s == st)
            .nth(nth)
            .map(|(i, _)| i)
            .unwrap()
    };
    // The child's second start comes only after the parent's restart (its second New).
    assert!(pos("root.parent.child", NodeState::Dead, 0) < pos("root.parent", NodeState::New, 1));
    assert!(pos("root.parent", NodeState::New, 1) < pos("root.parent.child", NodeState::New, 1));
    // The child was never rescheduled by itself: only the parent (and the killer) were.
    assert!(rescheduled(&f.logs, "root.parent.child").is_empty());
    release_tx.send(()).unwrap();
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_child_starts_again_from_the_first_backoff_range() {
    let child = Rc::new();
    let (die_tx, die) = channel::<()>();
    let child_r = child.runnable();
    let parent = Runnable::new(move |ctx: Context| {
        let (child_r, die) = (child_r.clone(), die.clone());
        async move {
            ctx.run("child", child_r)?;
            step(&ctx, &die).await?;
            RunResult::Err("parent dies".into())
        }
    });
    let f = start(root_running(vec![("parent", parent)])).await;
    child.wait_state(NodeState::New).await;
    for _ in 0..2 {
        child.send(RcCmd::Die);
        f.m.wait_count("root.parent.child", NodeState::Dead, 1)
            .await;
        child.wait_state(NodeState::New).await;
    }
    assert_eq!(
        wait_rescheduled(&f.logs, "root.parent.child", 2).await,
        ["250ms", "375ms"]
    );
    die_tx.send(()).unwrap();
    f.m.wait_count("root.parent", NodeState::New, 2).await;
    child.wait_state(NodeState::New).await;
    child.send(RcCmd::Die);
    assert_eq!(
        wait_rescheduled(&f.logs, "root.parent.child", 3).await,
        ["250ms", "375ms", "250ms"]
    );
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_sibling_restarts_without_delay_and_its_backoff_does_not_advance() {
    let a = Rc::new();
    let b = Rc::new();
    let f = start(root_running(vec![("a", a.runnable()), ("b", b.runnable())])).await;
    a.wait_state(NodeState::New).await;
    b.send(RcCmd::Die);
    f.m.wait_count("root.a", NodeState::Canceled, 1).await;
    assert_eq!(wait_rescheduled(&f.logs, "root.a", 1).await, ["0s"]);
    a.wait_state(NodeState::New).await;
    // a's own first death uses the first range: the Canceled restart did not consume backoff.
    a.send(RcCmd::Die);
    assert_eq!(
        wait_rescheduled(&f.logs, "root.a", 2).await,
        ["0s", "250ms"]
    );
    shutdown_and_wait(&f.s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_dn_policy_override_sets_that_nodes_backoff() {
    let policy = supervisor::RestartPolicy::from_toml_str(
        r#"
[defaults]
randomization_factor = 0.0
[overrides."root.fast"]
initial_interval = "20ms"
"#,
    )
    .unwrap();
    let dies = || Runnable::new(|_ctx: Context| async { RunResult::Err("dies".into()) });
    let Fixture { s, logs, .. } = start_with(
        Runnable::new(move |ctx: Context| {
            let dies = dies();
            async move {
                ctx.run("fast", dies.clone())?;
                ctx.run("slow", dies)?;
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                RunResult::Ok(())
            }
        }),
        |options| options.restart_policy(policy),
    )
    .await;
    assert_eq!(
        &wait_rescheduled(&logs, "root.fast", 3).await[..3],
        ["20ms", "30ms", "45ms"]
    );
    assert_eq!(wait_rescheduled(&logs, "root.slow", 1).await[0], "500ms");
    shutdown_and_wait(&s).await;
}
