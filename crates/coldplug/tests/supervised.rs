//! Coldplug as a node of the supervision tree.

use std::time::Duration;

use coldplug::ColdplugConfig;
use listener::testing::host_test;
use listener::{Listener, ListenerConfig};
use supervisor::{
    Context, LogRecorder, NodeState, Options, Severity, Signal, Supervisor, actor_runnable,
};

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_listener_coldplug_fails_and_is_retried() {
    let logs = LogRecorder::new();
    let sup = Supervisor::new(
        |ctx: Context| async move {
            ctx.run(
                "coldplug",
                coldplug::runnable("devmgr-test-no-such-listener", ColdplugConfig::default()),
            )?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            Ok(())
        },
        Options::new().log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor");
    let deaths = || {
        logs.entries_at("root.coldplug")
            .iter()
            .filter(|e| {
                e.severity == Severity::Fatal && e.message.contains("no listener registered")
            })
            .count()
    };
    // It dies, is restarted after its backoff, and dies again for the same reason: never a
    // write without a listening socket.
    within("two deaths", async {
        while deaths() < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    sup.shutdown();
    sup.wait_stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_coldplug_settles_after_the_listener_is_up_signals_done_and_stays() {
    if !host_test("supervised_coldplug_settles_after_the_listener_is_up") {
        return;
    }
    let name = format!("devmgr-test-coldplug-listener-{}", std::process::id());
    let logs = LogRecorder::new();
    let registered = name.clone();
    let sup = Supervisor::new(
        move |ctx: Context| {
            let name = registered.clone();
            async move {
                let listener_name = name.clone();
                ctx.run(
                    "listener",
                    actor_runnable(Some(listener_name), |_: &Context| {
                        (Listener, ListenerConfig::default())
                    }),
                )?;
                ctx.run(
                    "coldplug",
                    coldplug::runnable(name, ColdplugConfig::default()),
                )?;
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                Ok(())
            }
        },
        Options::new().log_recorder(logs.clone()),
    )
    .await
    .expect("supervisor");
    let settled = within(
        "coldplug to settle",
        logs.wait_for(|e| e.dn == "root.coldplug" && e.message.starts_with("coldplug settled=")),
    )
    .await;
    assert!(
        settled.message.starts_with("coldplug settled=true"),
        "{}",
        settled.message
    );
    assert!(
        !settled.message.contains(" answered=0 "),
        "{}",
        settled.message
    );
    // Done was signalled, but the node keeps running to serve resyncs.
    assert_eq!(sup.node_state("root.coldplug"), Some(NodeState::Healthy));
    assert_eq!(sup.node_state("root.listener"), Some(NodeState::Healthy));
    assert!(sup.live_runnables().contains(&"root.coldplug".to_string()));
    sup.shutdown();
    sup.wait_stopped().await;
    assert!(sup.live_runnables().is_empty());
}
