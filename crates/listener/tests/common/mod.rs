//! Helpers for the host tests, which need root and a real kernel.

use std::path::Path;
use std::time::Duration;

use listener::{Delivery, Notification, ResyncReason};
use tokio::sync::mpsc::UnboundedReceiver;

/// A device whose `uevent` file makes the kernel send an event, harmlessly.
pub const SERIAL: &str = "/sys/devices/platform/serial8250/uevent";
/// `/dev/null`'s device: `change` events on it are harmless.
pub const NULL_DEVICE: &str = "/sys/devices/virtual/mem/null/uevent";

/// Whether this host test can run. Without root (or without sysfs) it prints why it skips,
/// unless `DEVMGR_REQUIRE_ALL_TESTS=1` (set by `scripts/test`), which turns the skip into a
/// failure.
pub fn can_run(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if root && Path::new(SERIAL).exists() {
        return true;
    }
    let why = if root {
        "no /sys/devices/platform/serial8250"
    } else {
        "needs root"
    };
    if std::env::var("DEVMGR_REQUIRE_ALL_TESTS").as_deref() == Ok("1") {
        panic!("{test}: {why}, and DEVMGR_REQUIRE_ALL_TESTS=1 forbids skipping");
    }
    eprintln!("skipping {test}: {why} (a host test against the real kernel)");
    false
}

/// A fresh random UUID from the kernel.
pub fn uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("kernel uuid")
        .trim()
        .to_owned()
}

/// Writes `add <uuid>` into the serial port's `uevent` file.
pub fn trigger_add(uuid: &str) {
    std::fs::write(SERIAL, format!("add {uuid}")).expect("write uevent");
}

/// Waits (at most 10 s) for the event tagged `uuid`; returns it and the resyncs seen before it.
pub async fn wait_for_uuid(
    rx: &mut UnboundedReceiver<Notification>,
    uuid: &str,
) -> (Delivery, Vec<ResyncReason>) {
    let mut resyncs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        match next {
            Ok(Some(Notification::Uevents(batch))) => {
                if let Some(d) = batch
                    .into_iter()
                    .find(|d| d.synth_uuid() == Some(uuid.as_bytes()))
                {
                    return (d, resyncs);
                }
            }
            Ok(Some(Notification::Resync(reason))) => resyncs.push(reason),
            Ok(None) => panic!("subscription closed before the event tagged {uuid}"),
            Err(_) => panic!("no event tagged {uuid} within 10 s"),
        }
    }
}
