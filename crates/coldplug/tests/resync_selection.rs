//! What a resync replays, on a fake sysfs tree: the devices with a `modalias` file, and those
//! that rules outside the `MODALIAS` lookup act on (udev's driver rules).

mod common;

use std::time::Duration;

use coldplug::walk::DeviceMatch;
use coldplug::{ColdplugMsg, Pacing, PassKind};
use common::{FakeKernel, config, device, fake_listener, start_coldplug, wait_last_pass};
use ractor::call_t;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_replays_the_devices_the_driver_rules_act_on_not_only_those_with_a_modalias() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // (devpath, subsystem, modalias, replayed by a resync)
    let devices = [
        ("/devices/pci0000:00/0000:00:01.0", "pci", true, true),
        ("/devices/pci0000:00/0000:00:02.0", "pci", false, false),
        (
            "/devices/pci0000:00/0000:00:02.0/tifm0:1",
            "tifm",
            false,
            true,
        ),
        ("/devices/pci0000:00/0000:00:03.0", "pci", false, false),
        (
            "/devices/pci0000:00/0000:00:03.0/memstick0",
            "memstick",
            false,
            true,
        ),
        ("/devices/pci0000:00/0000:00:04.0/iop0", "i2o", false, true),
        ("/devices/virtual/mtd/mtd0", "mtd", false, false),
        ("/devices/virtual/mtd/mtd0ro", "mtd", false, true),
        ("/devices/virtual/mtd/mtd0rox", "mtd", false, false),
        ("/devices/virtual/misc/mtd1ro", "misc", false, true),
    ];
    for (devpath, subsystem, modalias, _) in devices {
        device(root, &devpath[1..], subsystem, modalias);
    }
    // parport_pc's module event, replayed by every pass through `extra`.
    std::fs::create_dir_all(root.join("module/parport_pc")).expect("module dir");
    std::fs::write(root.join("module/parport_pc/uevent"), "").expect("module uevent");
    let mut devpaths: Vec<&str> = devices.iter().map(|d| d.0).collect();
    devpaths.push("/module/parport_pc");

    let (pipeline, listener) = fake_listener().await;
    let kernel = FakeKernel::start(root, &devpaths, &[], pipeline);
    let coldplug = start_coldplug(
        coldplug::ColdplugConfig {
            pacing: Pacing::Window(4),
            settle_timeout: Duration::from_secs(10),
            extra: vec!["module/parport_pc".into()],
            resync_also: DeviceMatch {
                subsystems: vec!["tifm".into(), "memstick".into(), "i2o".into()],
                names: vec!["mtd*ro".into()],
            },
            ..config(root)
        },
        &listener,
    )
    .await;
    let first = call_t!(coldplug, ColdplugMsg::WaitSettled, 20_000).expect("settles");
    assert!(first.settled, "{first:?}");
    assert_eq!(first.devices, devices.len() + 1);

    coldplug
        .send_message(ColdplugMsg::Resync)
        .expect("coldplug runs");
    let resync = wait_last_pass(&coldplug, PassKind::Resync, Duration::from_secs(20)).await;
    assert!(resync.settled, "{resync:?}");
    let mut wrong = Vec::new();
    for (devpath, _, _, replayed) in devices {
        let expected = if replayed { 2 } else { 1 };
        if kernel.writes(devpath) != expected {
            wrong.push((devpath, kernel.writes(devpath), expected));
        }
    }
    assert!(
        wrong.is_empty(),
        "(devpath, writes, expected writes): {wrong:?}"
    );
    assert_eq!(kernel.writes("/module/parport_pc"), 2);
    assert_eq!(resync.devices, 7);
    kernel.stop();
    coldplug.stop(None);
    listener.stop(None);
}
