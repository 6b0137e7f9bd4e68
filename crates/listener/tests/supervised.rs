//! The listener under the supervisor, through the actor adapter. Binding group 1 needs no
//! privilege, so this runs without root.

use std::time::Duration;

use listener::{Listener, ListenerConfig, ListenerMsg};
use ractor::{ActorRef, call};
use supervisor::{Context, NodeState, Options, Signal, Supervisor, actor_runnable};

async fn port(listener: &ActorRef<ListenerMsg>) -> u32 {
    call!(listener, ListenerMsg::Stats).expect("stats").port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervised_listener_is_healthy_once_bound_and_found_again_by_name_after_a_restart() {
    let name = format!("devmgr-test-listener-{}", std::process::id());
    let registered = name.clone();
    let sup = Supervisor::new(
        move |ctx: Context| {
            let name = registered.clone();
            async move {
                ctx.run(
                    "listener",
                    actor_runnable(Some(name), |_ctx: &Context| {
                        let config = ListenerConfig {
                            receive_buffer: 1 << 20,
                            ..ListenerConfig::default()
                        };
                        (Listener, config)
                    }),
                )?;
                ctx.signal(Signal::Healthy)?;
                ctx.signal(Signal::Done)?;
                Ok(())
            }
        },
        Options::new(),
    )
    .await
    .expect("supervisor starts");
    sup.wait_settled().await.expect("settles");
    assert_eq!(sup.node_state("root.listener"), Some(NodeState::Healthy));

    // Healthy means bound: the socket has its kernel-assigned port.
    let first = ActorRef::<ListenerMsg>::where_is(name.clone()).expect("registered by name");
    let first_port = port(&first).await;
    assert_ne!(first_port, 0);

    // Killed, it is restarted (after the backoff) and found again under the same name, bound
    // again. (The kernel may hand the new socket the same port id once the old one is closed.)
    first.kill();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let second = loop {
        if let Some(actor) = ActorRef::<ListenerMsg>::where_is(name.clone())
            && actor.get_id() != first.get_id()
        {
            break actor;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener not restarted within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_ne!(port(&second).await, 0);
    assert_eq!(sup.node_state("root.listener"), Some(NodeState::Healthy));

    sup.shutdown();
    sup.wait_stopped().await;
    assert!(
        ActorRef::<ListenerMsg>::where_is(name).is_none(),
        "stopped with the tree"
    );
}
