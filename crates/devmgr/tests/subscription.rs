//! [`Observer::subscribe`], the typed subscription of the embedding API, on the real kernel
//! (root; dry run, nothing is loaded): one handle receives real `add` events, a `Resync` when
//! the listener actor is killed and its group restarts, and real events from the new listener
//! after it, without ever being told about the replacement otherwise.

mod common;

use std::time::Duration;

use common::root_with_index;
use devmgr::config::Config;
use devmgr::subscription::{Action, Filter, Notification, Resync, Subscription};
use devmgr::subsystem::{self, Observer, RunOptions};
use listener::ListenerMsg;
use ractor::ActorRef;
use supervisor::{BackoffParams, Options, RestartPolicy, Supervisor};

const SERIAL: &str = "/devices/platform/serial8250";

/// Writes `add <uuid>` into the serial port's `uevent` file: the kernel answers with a real
/// `add` event carrying `SYNTH_UUID=<uuid>`.
fn trigger(uuid: &str) {
    std::fs::write(format!("/sys{SERIAL}/uevent"), format!("add {uuid}")).expect("write uevent");
}

/// Receives until the serial port's `add` with `uuid` arrives; panics on any `Resync` (none is
/// expected here) and after 30 s.
async fn receive_trigger(sub: &mut Subscription, uuid: &str) {
    let wait = async {
        loop {
            match sub.recv().await.expect("the subsystem is alive") {
                Notification::Uevents(batch) => {
                    if batch.iter().any(|e| {
                        e.devpath() == SERIAL.as_bytes() && e.synth_uuid() == Some(uuid.as_bytes())
                    }) {
                        return;
                    }
                }
                Notification::Resync(why) => panic!("unexpected resync: {why:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .unwrap_or_else(|_| panic!("no add event with SYNTH_UUID={uuid} within 30 s"));
}

/// The subscriptions on the listener actor (the subsystem's relay of every handle is one).
async fn listener_subscribers(observer: &Observer) -> Vec<Option<String>> {
    let listener = ActorRef::<ListenerMsg>::where_is(observer.listener.clone()).expect("listener");
    let stats = ractor::call!(listener, ListenerMsg::Stats).expect("stats");
    stats
        .subscribers
        .iter()
        .map(|s| s.name.as_deref().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_a_listener_restart_with_one_resync_and_real_events_after_it() {
    let Some((lock, dir)) = root_with_index("subscription") else {
        return;
    };
    // The only test of this binary (binaries run one after another).
    drop(lock);
    let mut config = Config::default();
    config.loader.module_dir = Some(dir);
    config.loader.cmdline = Some("".into());
    config.coldplug.settle_quiet = Duration::from_millis(100);
    let (devmgr, mut observer) = subsystem::runnable(
        config,
        RunOptions {
            dry_run: true,
            instance: "-subscription".into(),
            ..RunOptions::default()
        },
    );
    // Subscribed before the subsystem starts: the handle gets a notice when the first listener
    // feeds it (nobody heard what happened before), then coldplug's replay.
    let filter = Filter {
        subsystems: Some(vec![b"platform".to_vec()]),
        actions: Some(vec![Action::Add]),
        ..Filter::default()
    };
    let mut sub = observer.subscribe(filter, 1024);
    let fast = BackoffParams {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(50),
        ..BackoffParams::default()
    };
    let options = Options::new().restart_policy(RestartPolicy::new(fast).expect("valid policy"));
    let tree = Supervisor::new(subsystem::root(devmgr), options)
        .await
        .expect("tree starts");
    tokio::time::timeout(Duration::from_secs(60), observer.wait_settled())
        .await
        .expect("settles within 60 s")
        .expect("subsystem alive");

    // The replay reached the handle: the serial port's replayed `add` is queued.
    assert!(
        matches!(
            sub.recv().await,
            Some(Notification::Resync(Resync::NewListener))
        ),
        "the first listener's notice comes first"
    );
    let mut replayed = false;
    while let Ok(Some(n)) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
        match n {
            Notification::Uevents(batch) => {
                assert!(
                    batch
                        .iter()
                        .all(|e| e.subsystem() == Some(&b"platform"[..]))
                );
                replayed |= batch
                    .iter()
                    .any(|e| e.devpath() == SERIAL.as_bytes() && e.is_synthetic());
            }
            Notification::Resync(why) => panic!("unexpected resync: {why:?}"),
        }
    }
    assert!(replayed, "the replay of {SERIAL} did not reach the handle");

    // A real event.
    let first = "5ab0c5f0-0000-4000-8000-000000000001";
    trigger(first);
    receive_trigger(&mut sub, first).await;

    // The listener is killed; the group restarts with a new listener actor.
    let old = ActorRef::<ListenerMsg>::where_is(observer.listener.clone()).expect("listener");
    let old_id = old.get_id();
    old.kill();
    let resync = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match sub.recv().await.expect("the subsystem is alive") {
                Notification::Resync(why) => return why,
                // Late events of the old listener may come first.
                Notification::Uevents(_) => {}
            }
        }
    })
    .await
    .expect("a resync within 30 s of the listener's death");
    assert_eq!(resync, Resync::NewListener);
    tokio::time::timeout(Duration::from_secs(60), observer.wait_settled())
        .await
        .expect("settles again within 60 s")
        .expect("subsystem alive");
    let new = ActorRef::<ListenerMsg>::where_is(observer.listener.clone()).expect("listener");
    assert_ne!(new.get_id(), old_id, "the listener actor was replaced");

    // Real events again, through the same handle.
    let second = "5ab0c5f0-0000-4000-8000-000000000002";
    trigger(second);
    receive_trigger(&mut sub, second).await;

    // Dropping the handle unsubscribes it: the next event is not offered to it, and the
    // listener keeps its one relay for the handles (and the loader's subscriptions).
    let before = observer.subscriptions();
    drop(sub);
    assert_eq!(observer.subscriptions(), before - 1);
    let names = listener_subscribers(&observer).await;
    assert_eq!(
        names
            .iter()
            .filter(|n| n.as_deref() == Some("subscriptions"))
            .count(),
        1,
        "{names:?}"
    );
    tree.shutdown();
    tree.wait_stopped().await;
}
