//! Support for host tests of this and other crates (feature `test-support`): deciding whether
//! a test that needs root and the real kernel can run, triggering real events, and a subscriber
//! that stalls the reader thread to force a real overrun.

use std::path::Path;
use std::sync::{Mutex, mpsc};

use crate::fanout::{Notification, Subscription};

/// A device whose `uevent` file makes the kernel send an event, harmlessly.
pub const SERIAL_UEVENT: &str = "/sys/devices/platform/serial8250/uevent";

/// Whether a host test can run: it needs root and a real sysfs. Otherwise it says why it
/// skips ([`test_support::skip_or_fail`]: a failure under `DEVMGR_REQUIRE_ALL_TESTS=1`, which
/// `scripts/test` sets).
pub fn host_test(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if root && Path::new(SERIAL_UEVENT).exists() {
        return true;
    }
    let why = if root {
        "no /sys/devices/platform/serial8250"
    } else {
        "needs root (a host test against the real kernel; scripts/test runs it)"
    };
    test_support::skip_or_fail(test, why);
    false
}

/// A fresh random UUID from the kernel.
pub fn kernel_uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Writes `add <uuid>` into the serial port's `uevent` file: the kernel sends an `add` event
/// tagged `SYNTH_UUID=<uuid>`.
pub fn trigger_serial_add(uuid: &str) -> std::io::Result<()> {
    std::fs::write(SERIAL_UEVENT, format!("add {uuid}"))
}

/// A subscription whose first notification blocks the listener's reader thread until
/// [`Stall::release`]; later notifications go to `forward`. It breaks the subscriber contract
/// on purpose: with the reader held, the kernel's queue for the socket fills up for real.
pub fn stalling_subscription(
    forward: impl Fn(Notification) -> bool + Send + Sync + 'static,
) -> (Subscription, Stall) {
    let (release, gate) = mpsc::channel::<()>();
    let (stalled_tx, stalled) = mpsc::channel::<()>();
    let gate = Mutex::new(Some((gate, stalled_tx)));
    let sub = Subscription::to_fn(move |n| {
        let first = gate.lock().ok().and_then(|mut g| g.take());
        if let Some((gate, stalled_tx)) = first {
            let _ = stalled_tx.send(());
            let _ = gate.recv();
        }
        forward(n)
    })
    .named("stalling (test)");
    (sub, Stall { release, stalled })
}

/// Controls a [`stalling_subscription`].
#[derive(Debug)]
pub struct Stall {
    release: mpsc::Sender<()>,
    stalled: mpsc::Receiver<()>,
}

impl Stall {
    /// Blocks until the reader thread is held (it delivered its first notification). Returns
    /// `false` if that did not happen within 10 s.
    pub fn wait_stalled(&self) -> bool {
        self.stalled
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok()
    }

    /// Lets the reader thread go on.
    pub fn release(&self) {
        let _ = self.release.send(());
    }
}
