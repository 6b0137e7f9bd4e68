//! Host tests on the real `/sys` and the real kernel socket (root needed; skipped with a reason
//! otherwise). They run one at a time: every listener in the process sees every test's events.

mod common;

use std::path::Path;
use std::time::Duration;

use coldplug::walk::{Select, devices};
use coldplug::{
    Coldplug, ColdplugArgs, ColdplugConfig, ColdplugMsg, Pacing, Pass, PassKind, PassReport,
    UuidSource,
};
use common::wait_last_pass;
use listener::testing::{host_test, kernel_uuid, stalling_subscription, trigger_serial_add};
use listener::{Listener, ListenerConfig, ListenerMsg, ListenerStats};
use ractor::{Actor, ActorRef, call, call_t};
use tokio::sync::Mutex;

/// Serialises the tests of this binary.
static SYSFS: Mutex<()> = Mutex::const_new(());

async fn start_listener(receive_buffer: usize) -> ActorRef<ListenerMsg> {
    let config = ListenerConfig {
        receive_buffer,
        ..ListenerConfig::default()
    };
    Actor::spawn(None, Listener, config)
        .await
        .expect("listener starts")
        .0
}

async fn stats(listener: &ActorRef<ListenerMsg>) -> ListenerStats {
    call!(listener, ListenerMsg::Stats).expect("stats")
}

async fn coldplug(
    listener: &ActorRef<ListenerMsg>,
    pacing: Pacing,
    settle_timeout: Duration,
) -> ActorRef<ColdplugMsg> {
    let args = ColdplugArgs {
        config: ColdplugConfig {
            pacing,
            settle_timeout,
            ..ColdplugConfig::default()
        },
        listener: listener.clone(),
        on_settled: None,
    };
    Actor::spawn(None, Coldplug, args)
        .await
        .expect("coldplug starts")
        .0
}

async fn wait_settled(coldplug: &ActorRef<ColdplugMsg>) -> PassReport {
    call_t!(coldplug, ColdplugMsg::WaitSettled, 120_000).expect("coldplug settles within 120 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_coldplug_of_sys_devices_settles_with_every_uuid_back() {
    if !host_test("a_full_coldplug_of_sys_devices_settles_with_every_uuid_back") {
        return;
    }
    let _serial = SYSFS.lock().await;
    let listener = start_listener(listener::DEFAULT_RECEIVE_BUFFER).await;
    let (tx, on_settled) = tokio::sync::oneshot::channel();
    let args = ColdplugArgs {
        config: ColdplugConfig::default(),
        listener: listener.clone(),
        on_settled: Some(Box::new(move |report: &PassReport| {
            let _ = tx.send(report.clone());
        })),
    };
    let (coldplug, _) = Actor::spawn(None, Coldplug, args).await.unwrap();
    let report = wait_settled(&coldplug).await;
    let expected = devices(Path::new("/sys"), Select::All).devices.len();
    eprintln!("full coldplug: {report:?}");
    assert_eq!(report.kind, PassKind::Coldplug);
    assert!(report.settled, "{report:?}");
    assert!(report.devices > 100 && report.devices.abs_diff(expected) <= 2);
    assert_eq!(
        report.answered, report.written,
        "every written uuid came back"
    );
    assert_eq!(
        report.written + report.gone + report.failed.len(),
        report.devices
    );
    assert!(report.retriggered.is_empty() && report.unanswered.is_empty());
    assert_eq!(on_settled.await.expect("on_settled called"), report);
    assert_eq!(stats(&listener).await.counts.overruns, 0);

    // A resync replays the devices that have a modalias, and settles too.
    coldplug.send_message(ColdplugMsg::Resync).unwrap();
    let resync = wait_last_pass(&coldplug, PassKind::Resync, Duration::from_secs(60)).await;
    let with_modalias = devices(Path::new("/sys"), Select::WithModalias)
        .devices
        .len();
    eprintln!("resync: {resync:?}");
    assert!(resync.settled, "{resync:?}");
    assert!(with_modalias > 0 && resync.devices.abs_diff(with_modalias) <= 2);
    assert_eq!(resync.answered, resync.written);
    coldplug.stop(None);
    listener.stop(None);
}

/// Runs a coldplug against a 16 KiB listener whose reader is held for 300 ms at the start.
async fn coldplug_against_a_stalled_small_buffer(pacing: Pacing) -> (PassReport, ListenerStats) {
    let listener = start_listener(16 * 1024).await;
    let (sub, stall) = stalling_subscription(|_| true);
    call!(listener, ListenerMsg::Subscribe, sub).expect("subscribed");
    trigger_serial_add(&kernel_uuid()).expect("trigger");
    let stall = tokio::task::spawn_blocking(move || {
        assert!(stall.wait_stalled());
        stall
    })
    .await
    .expect("stall helper");
    let coldplug = coldplug(&listener, pacing, Duration::from_secs(2)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stall.release();
    let report = wait_settled(&coldplug).await;
    if pacing == Pacing::Off {
        // The listener's overrun resync makes coldplug replay the modalias devices afterwards.
        let resync = wait_last_pass(&coldplug, PassKind::Resync, Duration::from_secs(60)).await;
        eprintln!("resync after the overrun: {resync:?}");
        assert!(resync.devices > 0 && resync.written > 0);
    }
    let stats = stats(&listener).await;
    coldplug.stop(None);
    listener.stop(None);
    (report, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_16_kib_buffer_paced_coldplug_settles_without_overrun_and_unpaced_overruns() {
    if !host_test("with_a_16_kib_buffer_paced_coldplug_settles_without_overrun") {
        return;
    }
    let _serial = SYSFS.lock().await;
    let (paced, paced_stats) = coldplug_against_a_stalled_small_buffer(Pacing::Auto).await;
    eprintln!("paced: {paced:?}\n{paced_stats:?}");
    assert!(paced.settled, "{paced:?}");
    assert_eq!(paced.answered, paced.written);
    assert!(paced.retriggered.is_empty());
    assert_eq!(
        paced_stats.counts.overruns, 0,
        "pacing kept the buffer from overrunning"
    );

    let (unpaced, unpaced_stats) = coldplug_against_a_stalled_small_buffer(Pacing::Off).await;
    eprintln!("unpaced: {unpaced:?}\n{unpaced_stats:?}");
    assert!(
        unpaced_stats.counts.overruns >= 1,
        "without pacing the same replay overruns the buffer"
    );
    assert!(
        !unpaced.retriggered.is_empty(),
        "lost answers were noticed and re-triggered"
    );
    assert!(unpaced_stats.counts.resyncs >= 1);
}

/// A tmpfs shaped like sysfs, mounted read-only: writes fail with `EROFS`.
#[test]
fn a_read_only_sysfs_stops_the_writes_and_says_so() {
    use nix::mount::{MsFlags, mount, umount};
    if !host_test("a_read_only_sysfs_stops_the_writes_and_says_so") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    mount(
        Some("tmpfs"),
        root,
        Some("tmpfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    for dev in ["devices/a", "devices/a/b", "devices/c"] {
        std::fs::create_dir_all(root.join(dev)).unwrap();
        std::fs::write(root.join(dev).join("uevent"), "").unwrap();
        std::os::unix::fs::symlink("../../bus/x", root.join(dev).join("subsystem")).unwrap();
    }
    let flags = MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, root, None::<&str>, flags, None::<&str>).unwrap();
    let walk = devices(root, Select::All);
    let mut pass = Pass::new(PassKind::Coldplug, root, walk, None);
    let written = pass.pump(&mut UuidSource::new(Path::new(
        "/proc/sys/kernel/random/uuid",
    )));
    let done = pass.is_done();
    let report = pass.finish();
    umount(root).unwrap();
    assert_eq!(written, 0);
    assert!(done, "nothing more is queued after EROFS");
    assert!(report.read_only);
    assert_eq!((report.devices, report.written), (3, 0));
}
