//! The subsystem in-process, as a node agent would run it, on the real `/sys` and uevent socket
//! (dry run: nothing is loaded): after the loader or the listener is killed, the group restarts
//! and every device is replayed, so nothing missed while one was down stays without a plan.

mod common;

use std::time::Duration;

use common::root_with_index;
use devmgr::config::Config;
use devmgr::subsystem::{self, Observer, RunOptions};
use kmod_loader::load::LoaderMsg;
use listener::ListenerMsg;
use ractor::ActorRef;
use supervisor::{BackoffParams, LogRecorder, Options, RestartPolicy, Supervisor};
use tokio::sync::{Mutex, MutexGuard};

/// A running subsystem, and the lock that keeps the other tests of this binary (whose replays
/// and bursts reach every listener) from running meanwhile.
type Started = (MutexGuard<'static, ()>, Supervisor, Observer, LogRecorder);

/// Held by each test of this binary while its subsystem runs.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn start(instance: &str) -> Option<Started> {
    start_with(instance, RunOptions::default()).await
}

async fn start_with(instance: &str, options: RunOptions) -> Option<Started> {
    let (kernel, dir) = root_with_index(instance)?;
    drop(kernel);
    let lock = ONE_AT_A_TIME.lock().await;
    let mut config = Config::default();
    config.loader.module_dir = Some(dir);
    config.loader.cmdline = Some("".into());
    config.coldplug.settle_quiet = Duration::from_millis(100);
    let (devmgr, observer) = subsystem::runnable(
        config,
        RunOptions {
            dry_run: true,
            instance: format!("-{instance}"),
            ..options
        },
    );
    let root = subsystem::root(devmgr);
    let fast = BackoffParams {
        initial_interval: Duration::from_millis(5),
        max_interval: Duration::from_millis(50),
        ..BackoffParams::default()
    };
    let recorder = LogRecorder::new();
    let options = Options::new()
        .restart_policy(RestartPolicy::new(fast).expect("valid policy"))
        .log_recorder(recorder.clone());
    let tree = Supervisor::new(root, options).await.expect("tree starts");
    Some((lock, tree, observer, recorder))
}

/// Kills the actor registered as `name` with `kill`, then waits for a new coldplug pass to
/// settle and returns the new loader's lookups.
async fn kill_and_resettle(observer: &mut Observer, kill: impl FnOnce()) -> u64 {
    observer.settled.borrow_and_update();
    kill();
    tokio::time::timeout(Duration::from_secs(30), observer.settled.changed())
        .await
        .expect("a new replay settles within 30 s")
        .expect("subsystem alive");
    let summary = tokio::time::timeout(Duration::from_secs(30), observer.wait_settled())
        .await
        .expect("settles")
        .expect("subsystem alive");
    let replay = summary.replay.expect("replay report");
    assert!(replay.settled, "{replay:?}");
    assert_eq!(replay.written, replay.answered, "{replay:?}");
    summary.loader.expect("a loader runs again").events
}

/// Waits (at most 60 s) until the subsystem settled; its summary and the counters of the
/// loader's subscription then.
async fn settled_and_loader_counts(
    observer: &mut Observer,
) -> (devmgr::observe::Summary, listener::SubscriberCounts) {
    let summary = tokio::time::timeout(Duration::from_secs(60), observer.wait_settled())
        .await
        .expect("settles within 60 s")
        .expect("subsystem alive");
    let loader = summary
        .listener
        .as_ref()
        .expect("listener counters")
        .subscribers
        .iter()
        .find(|s| s.name.as_deref() == Some("loader"))
        .expect("the loader's subscription")
        .clone();
    (summary, loader)
}

fn devices_with_modalias() -> u64 {
    let walk = coldplug::walk::devices(
        std::path::Path::new("/sys"),
        coldplug::walk::Select::WithModalias,
    );
    walk.devices.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_loader_restarts_with_the_group_and_every_device_is_replayed_to_it() {
    let Some((_lock, tree, mut observer, recorder)) = start("loader-killed").await else {
        return;
    };
    let first = observer.wait_settled().await.expect("settles");
    let lookups = first.loader.expect("loader").events;
    let expected = devices_with_modalias();
    assert!(
        lookups >= expected,
        "{lookups} lookups < {expected} devices"
    );

    let name = observer.loader.clone();
    let lookups = kill_and_resettle(&mut observer, || {
        ActorRef::<LoaderMsg>::where_is(name)
            .expect("loader registered")
            .kill();
    })
    .await;
    assert!(
        lookups >= expected,
        "the new loader saw {lookups} lookups, {expected} devices have a modalias"
    );
    assert!(
        recorder
            .entries()
            .iter()
            .any(|e| e.dn.starts_with("root.devmgr.loader")),
        "the loader's failure is logged with its DN"
    );
    tree.shutdown();
    tree.wait_stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_restarts_with_the_group_and_every_device_is_replayed() {
    let Some((_lock, tree, mut observer, _)) = start("listener-killed").await else {
        return;
    };
    observer.wait_settled().await.expect("settles");
    let expected = devices_with_modalias();
    let name = observer.listener.clone();
    let lookups = kill_and_resettle(&mut observer, || {
        ActorRef::<ListenerMsg>::where_is(name)
            .expect("listener registered")
            .kill();
    })
    .await;
    assert!(
        lookups >= expected,
        "{lookups} lookups < {expected} devices"
    );
    tree.shutdown();
    tree.wait_stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_that_falls_behind_gets_every_device_replayed() {
    // Room for 64 events in flight: more than a replay of this machine's devices with a
    // modalias puts in flight at once, far fewer than the burst below (a loader held busy by
    // slow loads falls behind the same way with 4,096).
    let options = RunOptions {
        loader_capacity: 64,
        ..RunOptions::default()
    };
    let Some((_lock, tree, mut observer, _)) = start_with("loader-behind", options).await else {
        return;
    };
    let first = observer.wait_settled().await.expect("settles");
    assert!(first.loader.is_some());
    let coldplug_name = observer.coldplug.clone();
    let last_report = || async {
        let coldplug = ActorRef::<coldplug::ColdplugMsg>::where_is(coldplug_name.clone())
            .expect("coldplug registered");
        ractor::call!(coldplug, coldplug::ColdplugMsg::LastReport).expect("coldplug answers")
    };
    // Quiet first: the coldplug pass itself may already have overflowed the loader (its
    // replay then ran); wait until no pass has ended for a second.
    let mut before = last_report().await;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = last_report().await;
        if now == before {
            break;
        }
        before = now;
    }

    // A burst of real `add` events: every device with a modalias, 20 times over.
    let devices = coldplug::walk::devices(
        std::path::Path::new("/sys"),
        coldplug::walk::Select::WithModalias,
    )
    .devices;
    for _ in 0..20 {
        for device in &devices {
            let _ = std::fs::write(device.join("uevent"), "add");
        }
    }
    let listener = ActorRef::<ListenerMsg>::where_is(observer.listener.clone()).expect("listener");
    let stats = ractor::call!(listener, ListenerMsg::Stats).expect("stats");
    assert!(
        stats.subscribers.iter().any(|s| s.overflows > 0),
        "the loader's subscription overflowed: {:?}",
        stats.subscribers
    );
    // The loader's resync makes coldplug replay every device with a modalias for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let replay = loop {
        if let Some(report) = last_report().await
            && report.kind == coldplug::PassKind::Resync
            && Some(&report) != before.as_ref()
        {
            break report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no replay within 60 s of the loader's overflow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        replay.devices as u64 >= devices_with_modalias(),
        "{replay:?}"
    );
    assert_eq!(replay.written, replay.answered, "{replay:?}");
    // The operator sees who fell behind: the loader's drops and resyncs in the summary.
    let summary = observer.summary().await.to_string();
    let line = summary
        .lines()
        .find(|l| l.starts_with("devmgr: listener: subscriber loader: "))
        .unwrap_or_else(|| panic!("no loader subscriber line: {summary}"));
    let resyncs: u64 = line
        .trim_end_matches(" resyncs")
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(resyncs >= 1, "{line}");
    tree.shutdown();
    tree.wait_stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settled_waits_for_a_loader_that_fell_behind_and_the_replay_made_for_it() {
    // Room for 64 events in flight (enough for the replay made for it, see above) and held for
    // 3 s after its first batch; a burst of real `add` events while it is held overflows its
    // subscription. The loader actor itself sits idle meanwhile, so only the queue in front of
    // it and the resync behind that queue say the work is not done.
    let options = RunOptions {
        loader_capacity: 64,
        loader_stall: Duration::from_secs(3),
        ..RunOptions::default()
    };
    let Some((_lock, tree, mut observer, _)) = start_with("loader-held", options).await else {
        return;
    };
    let listener = loop {
        if let Some(listener) = ActorRef::<ListenerMsg>::where_is(observer.listener.clone())
            && let Ok(stats) = ractor::call!(listener, ListenerMsg::Stats)
            && stats.counts.accepted > 0
        {
            break listener;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(listener);
    let devices = coldplug::walk::devices(
        std::path::Path::new("/sys"),
        coldplug::walk::Select::WithModalias,
    )
    .devices;
    for _ in 0..(128 / devices.len().max(1) + 1) {
        for device in &devices {
            let _ = std::fs::write(device.join("uevent"), "add");
        }
    }
    let (summary, loader_subscription) = settled_and_loader_counts(&mut observer).await;
    assert!(
        loader_subscription.overflows > 0,
        "the boot's replay overflowed the held loader: {loader_subscription:?}"
    );
    let coldplug = ActorRef::<coldplug::ColdplugMsg>::where_is(observer.coldplug.clone())
        .expect("coldplug registered");
    let last = ractor::call!(coldplug, coldplug::ColdplugMsg::LastReport)
        .expect("coldplug answers")
        .expect("a pass ended");
    assert_eq!(
        last.kind,
        coldplug::PassKind::Resync,
        "settled before the replay for the loader ended: {last:?}"
    );
    let lookups = summary.loader.expect("loader").events;
    let expected = devices_with_modalias();
    assert!(
        lookups >= expected,
        "settled with {lookups} lookups, {expected} devices have a modalias"
    );
    tree.shutdown();
    tree.wait_stopped().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_loader_looks_nothing_up_for_never_fill_its_queue() {
    // Held for 2 s after its first batch, with room for twice the devices it looks anything up
    // for: the boot's replay of every device (most without a modalias: memory blocks, ttys,
    // block devices) must not overflow it.
    let devices =
        coldplug::walk::devices(std::path::Path::new("/sys"), coldplug::walk::Select::All)
            .devices
            .len();
    let capacity = 2 * devices_with_modalias() as usize + 16;
    let options = RunOptions {
        loader_capacity: capacity,
        loader_stall: Duration::from_secs(2),
        ..RunOptions::default()
    };
    let Some((_lock, tree, mut observer, _)) = start_with("loader-filtered", options).await else {
        return;
    };
    assert!(
        devices > 2 * capacity,
        "this machine has {devices} devices, too few to fill a queue of {capacity}"
    );
    let (summary, loader) = settled_and_loader_counts(&mut observer).await;
    assert_eq!(
        (loader.dropped, loader.overflows),
        (0, 0),
        "the loader's queue overflowed with {devices} devices replayed: {loader:?}"
    );
    let lookups = summary.loader.expect("loader").events;
    assert!(lookups >= devices_with_modalias(), "{lookups} lookups");
    tree.shutdown();
    tree.wait_stopped().await;
}
