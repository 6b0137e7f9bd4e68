//! Watching a running subsystem from outside: when it has settled, and a summary of every
//! actor's counters on request.
//!
//! # The settle rule
//!
//! *Settled* means that all of these hold at one moment:
//!
//! 1. the coldplug replay ended (every replayed device answered, or was given up on), no event
//!    waits in front of the loader, and no replay asked for a loader that fell behind is
//!    pending or running;
//! 2. no module load is running, and the loader saw no lookup and no plan end for the short
//!    window, `coldplug.settle_quiet` (default 200 ms): a module's probe may leave work behind
//!    it that adds devices a moment after the load returned (HD audio codecs, devices whose
//!    uevents are still on their way to the listener);
//! 3. nothing that the listener saw recently can still produce devices. Each accepted event
//!    (replayed ones excepted: they announce devices that exist, not new ones) may hold the
//!    rule for a while after it arrived:
//!    - a USB hub bound (`bind`, `DRIVER=hub`: root hubs of new host controllers and hubs
//!      plugged into them) or a USB host controller bound (`bind` of a PCI device of class
//!      `0x0c03xx`): the enumeration window, `coldplug.settle_enumeration` (default 600 ms). The
//!      hub driver adds the devices on its ports only after power-on-good, a 100 ms debounce,
//!      a port reset and the descriptors' exchange;
//!    - a USB device added: the enumeration window too, since its hub may still be working
//!      through its other ports (one after another, each one a debounce and a reset later);
//!    - usb-storage bound: its `delay_use` (read from sysfs at that moment; 1 s when it cannot
//!      be read) plus the enumeration window, since usb-storage scans its SCSI bus only after
//!      that delay, from a work item, after its module load returned;
//!    - any other driver bound, or a device that can lead to more devices added (a SCSI host
//!      or target, an ATA port): the short window.
//!
//! The windows anchor the wait on what can still produce devices instead of a fixed quiet
//! period after every lookup: once the last load returned and no hub is enumerating, the rule
//! holds after the short window. What it cannot see: a hub bound before the listener's socket
//! was (a built-in host controller still enumerating when devmgr starts), and a device that
//! takes longer than the enumeration window to enumerate. Such devices are still handled when
//! they appear, as every hotplug is; only `--exit-when-settled` does not wait for them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use coldplug::{ColdplugMsg, PassReport};
use kmod_loader::load::{LoaderMsg, LoaderStats};
use listener::{ListenerMsg, ListenerStats};
use ractor::{ActorRef, call_t};
use uevent::{Action, Uevent};

use crate::subsystem::Observer;

/// How long a question to an actor may take before it counts as unanswered.
const ASK_TIMEOUT_MS: u64 = 10_000;
/// How long waiting for the loads to end may take.
const IDLE_TIMEOUT_MS: u64 = 600_000;

/// The counters of every actor at one moment.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The report of the coldplug replay, once it ended.
    pub replay: Option<PassReport>,
    /// The listener's counters (`None`: not running at the moment).
    pub listener: Option<ListenerStats>,
    /// The loader's counters (`None`: not running, or module loading is disabled).
    pub loader: Option<LoaderStats>,
    /// Whether module loading is enabled at all.
    pub loading: bool,
    /// Whether the loader only resolves (dry run).
    pub dry_run: bool,
}

impl Observer {
    /// Waits until the subsystem has settled (see the module docs) and returns the summary at
    /// that moment; `None` if the subsystem went away first.
    pub async fn wait_settled(&mut self) -> Option<Summary> {
        loop {
            self.settled.wait_for(Option::is_some).await.ok()?;
            self.loading.wait_for(Option::is_some).await.ok()?;
            if self.loading() && !self.quiet_loader().await {
                // The loader is down (a restart under way): wait for the next incarnation.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if !self.nothing_queued().await {
                // Events wait in front of the loader, or a replay was asked for it (it fell
                // behind) or runs: its lookups are still to come.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            // The checks above ran one after another: an event looked up (or a hold set) in
            // between shows in the loader's counters now.
            if self.loading() && !self.still_quiet().await {
                continue;
            }
            // Still the same incarnation's state: a restart in between resets both.
            if self.settled.borrow().is_some() && self.loading.borrow().is_some() {
                return Some(self.summary().await);
            }
        }
    }

    /// No event handed to the loader waits for its lookups, no replay it asked for waits to
    /// be passed on, and coldplug runs no pass and has none queued. `false` while coldplug is
    /// not running or does not answer.
    async fn nothing_queued(&self) -> bool {
        // Coldplug first: the loader's subscription comes before coldplug's, so an event that
        // ends a pass is in the ledger before coldplug sees it; read the other way round, a
        // pass could end, its last event unlooked-up, between the two reads.
        let Some(coldplug) = ActorRef::<ColdplugMsg>::where_is(self.coldplug.clone()) else {
            return false;
        };
        if !matches!(
            call_t!(coldplug, ColdplugMsg::Busy, ASK_TIMEOUT_MS),
            Ok(false)
        ) {
            return false;
        }
        self.ledger.borrow().idle()
    }

    /// The loader is still idle for the short window and no hold is left: nothing was looked
    /// up, no plan ended and no event set a hold since [`Observer::quiet_loader`] said so.
    async fn still_quiet(&self) -> bool {
        let Some(loader) = ActorRef::<LoaderMsg>::where_is(self.loader.clone()) else {
            return false;
        };
        let Ok(stats) = call_t!(loader, LoaderMsg::Stats, ASK_TIMEOUT_MS) else {
            return false;
        };
        self.left_to_wait(&stats).is_some_and(|wait| wait.is_zero())
    }

    /// How much longer rule steps 2 and 3 hold with the loader's counters `stats`: the short
    /// window after the loader's last activity, and whatever the events seen hold the rule
    /// for; `None` while a plan runs.
    fn left_to_wait(&self, stats: &LoaderStats) -> Option<Duration> {
        let idle = stats.idle_for?;
        Some(
            self.quiet
                .saturating_sub(idle)
                .max(self.holds.remaining(Instant::now())),
        )
    }

    /// Waits until the loader is idle and has been for the quiet period (no lookup asked for,
    /// no plan ended). `false` when the loader is not running (it is being restarted).
    async fn quiet_loader(&self) -> bool {
        loop {
            let Some(loader) = ActorRef::<LoaderMsg>::where_is(self.loader.clone()) else {
                return false;
            };
            let _ = call_t!(loader, LoaderMsg::WaitIdle, IDLE_TIMEOUT_MS);
            let Ok(stats) = call_t!(loader, LoaderMsg::Stats, ASK_TIMEOUT_MS) else {
                return false;
            };
            if let Some(wait) = self.left_to_wait(&stats) {
                if wait.is_zero() {
                    if let Some(last) = self.holds.last() {
                        tracing::debug!(cause = %last.cause, devpath = %last.devpath, "settle rule: the last hold has passed");
                    }
                    return true;
                }
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Asks every actor for its counters.
    pub async fn summary(&self) -> Summary {
        let listener = match ActorRef::<ListenerMsg>::where_is(self.listener.clone()) {
            Some(actor) => call_t!(actor, ListenerMsg::Stats, ASK_TIMEOUT_MS).ok(),
            None => None,
        };
        let loader = match ActorRef::<LoaderMsg>::where_is(self.loader.clone()) {
            Some(actor) => call_t!(actor, LoaderMsg::Stats, ASK_TIMEOUT_MS).ok(),
            None => None,
        };
        Summary {
            replay: self.settled.borrow().clone(),
            listener,
            loader,
            loading: self.loading(),
            dry_run: self.dry_run,
        }
    }

    /// Whether module loading is enabled (the module index could be read).
    pub fn loading(&self) -> bool {
        *self.loading.borrow() == Some(true)
    }
}

/// Why an event holds the settle rule (rule step 3 of the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCause {
    /// A USB hub bound: the devices on its ports come within the enumeration window.
    HubBound,
    /// A USB host controller (PCI class `0x0c03xx`) bound: its root hub enumerates.
    HostControllerBound,
    /// A USB device added: its hub may still enumerate its next ports.
    UsbDeviceAdded,
    /// usb-storage bound: it scans its SCSI bus after its `delay_use`.
    UsbStorageBound,
    /// Another driver bound: its probe may leave work that adds devices.
    DriverBound,
    /// A device that can lead to more devices was added (SCSI host or target, ATA port).
    DeviceAdded,
}

impl fmt::Display for HoldCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HoldCause::HubBound => "USB hub bound",
            HoldCause::HostControllerBound => "USB host controller bound",
            HoldCause::UsbDeviceAdded => "USB device added",
            HoldCause::UsbStorageBound => "usb-storage bound",
            HoldCause::DriverBound => "driver bound",
            HoldCause::DeviceAdded => "device added",
        })
    }
}

/// The windows of the settle rule (`coldplug.settle_quiet`, `coldplug.settle_enumeration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettleWindows {
    /// The short window.
    pub quiet: Duration,
    /// The enumeration window.
    pub enumeration: Duration,
}

/// How long `event` holds the settle rule after it arrived, and why; `None` when it cannot
/// produce devices (or is a replay). `usb_storage_delay` gives usb-storage's `delay_use`, asked
/// only for a usb-storage bind.
pub fn hold_for(
    event: &Uevent,
    windows: SettleWindows,
    usb_storage_delay: impl FnOnce() -> Duration,
) -> Option<(HoldCause, Duration)> {
    if event.is_synthetic() {
        return None;
    }
    let subsystem = event.subsystem().unwrap_or_default();
    match event.action() {
        Action::Bind => {
            let driver = event.driver().unwrap_or_default();
            Some(if subsystem == b"usb" && driver == b"hub" {
                (HoldCause::HubBound, windows.enumeration)
            } else if subsystem == b"pci" && is_usb_host_controller(event) {
                (HoldCause::HostControllerBound, windows.enumeration)
            } else if subsystem == b"usb" && driver == b"usb-storage" {
                (
                    HoldCause::UsbStorageBound,
                    usb_storage_delay().saturating_add(windows.enumeration),
                )
            } else {
                (HoldCause::DriverBound, windows.quiet)
            })
        }
        Action::Add => {
            let devtype = event.devtype().unwrap_or_default();
            if (subsystem, devtype) == (&b"usb"[..], &b"usb_device"[..]) {
                return Some((HoldCause::UsbDeviceAdded, windows.enumeration));
            }
            let producer = matches!(
                (subsystem, devtype),
                (b"scsi", b"scsi_host" | b"scsi_target")
            ) || subsystem == b"ata_port";
            producer.then_some((HoldCause::DeviceAdded, windows.quiet))
        }
        _ => None,
    }
}

/// A PCI device of class `0x0c03xx` (serial bus controller, USB), from its `PCI_CLASS`
/// property (hexadecimal, as the kernel writes it).
fn is_usb_host_controller(event: &Uevent) -> bool {
    event
        .property(b"PCI_CLASS")
        .and_then(|class| std::str::from_utf8(class).ok())
        .and_then(|class| u32::from_str_radix(class, 16).ok())
        .is_some_and(|class| class >> 8 == 0x0c03)
}

/// The longest usb-storage `delay_use` the rule waits for (a larger value read from sysfs is
/// taken as this).
pub const MAX_USB_STORAGE_DELAY: Duration = Duration::from_secs(60);

/// usb-storage's default `delay_use`, used when the parameter cannot be read.
pub const DEFAULT_USB_STORAGE_DELAY: Duration = Duration::from_secs(1);

/// usb-storage's `delay_use` from the text of its sysfs parameter: whole seconds (`1`), or
/// with a unit as newer kernels write a value that is not whole seconds (`1500ms`); at most
/// [`MAX_USB_STORAGE_DELAY`]. `None` when it is neither.
pub fn parse_delay_use(text: &str) -> Option<Duration> {
    let text = text.trim();
    let delay = match text.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().ok()?),
        None => Duration::from_secs(text.strip_suffix('s').unwrap_or(text).parse().ok()?),
    };
    Some(delay.min(MAX_USB_STORAGE_DELAY))
}

/// The latest hold of the settle rule: until when, why, and for which device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The rule holds until then.
    pub until: Instant,
    /// Why.
    pub cause: HoldCause,
    /// The device whose event holds it.
    pub devpath: String,
}

/// What the events the listener accepted hold the settle rule for (rule step 3): fed by the
/// subsystem's `settle` subscription, read by [`Observer::wait_settled`].
#[derive(Debug)]
pub struct SettleHolds {
    windows: SettleWindows,
    /// Where usb-storage's `delay_use` is read.
    delay_use: PathBuf,
    /// The hold that ends last.
    latest: Mutex<Option<Hold>>,
}

impl SettleHolds {
    /// Holds with these windows; usb-storage's parameter is read below `sysfs`.
    pub fn new(windows: SettleWindows, sysfs: &Path) -> SettleHolds {
        SettleHolds {
            windows,
            delay_use: sysfs.join("module/usb_storage/parameters/delay_use"),
            latest: Mutex::new(None),
        }
    }

    /// Notes the events of one delivery, arrived at `now`.
    pub fn note<'a>(&self, events: impl IntoIterator<Item = &'a Uevent>, now: Instant) {
        for event in events {
            let Some((cause, hold)) = hold_for(event, self.windows, || self.usb_storage_delay())
            else {
                continue;
            };
            let until = now + hold;
            let devpath = String::from_utf8_lossy(event.devpath());
            tracing::debug!(%cause, %devpath, hold_ms = hold.as_millis() as u64, "settle rule held");
            let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
            if latest.as_ref().is_none_or(|l| l.until <= until) {
                *latest = Some(Hold {
                    until,
                    cause,
                    devpath: devpath.into_owned(),
                });
            }
        }
    }

    /// How long the rule is still held at `now` (zero: not held).
    pub fn remaining(&self, now: Instant) -> Duration {
        self.last()
            .map_or(Duration::ZERO, |l| l.until.saturating_duration_since(now))
    }

    /// The hold that ends last, if any event held the rule.
    pub fn last(&self) -> Option<Hold> {
        self.latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn usb_storage_delay(&self) -> Duration {
        std::fs::read_to_string(&self.delay_use)
            .ok()
            .and_then(|text| parse_delay_use(&text))
            .unwrap_or(DEFAULT_USB_STORAGE_DELAY)
    }
}

impl fmt::Display for Summary {
    /// One line per actor, each starting with `devmgr: <actor>:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.replay {
            Some(r) => writeln!(
                f,
                "devmgr: coldplug: {} devices, {} replayed, {} answered, {} gone, {} failed, {} unanswered, replay took {:?}",
                r.devices,
                r.written,
                r.answered,
                r.gone,
                r.failed.len(),
                r.unanswered.len(),
                r.elapsed
            )?,
            None => writeln!(f, "devmgr: coldplug: replay not ended yet")?,
        }
        match &self.listener {
            Some(l) => {
                let dropped: u64 = l.counts.dropped.iter().map(|(_, n)| n).sum();
                writeln!(
                    f,
                    "devmgr: listener: {} received, {} accepted, {} dropped, {} overruns, {} resyncs, receive buffer {} bytes",
                    l.counts.received,
                    l.counts.accepted,
                    dropped,
                    l.counts.overruns,
                    l.counts.resyncs,
                    l.receive_buffer
                )?;
                for (reason, n) in &l.counts.dropped {
                    writeln!(f, "devmgr: listener: dropped {n}: {reason}")?;
                }
                // Who fell behind: events dropped for one subscriber, and its resyncs.
                for sub in &l.subscribers {
                    writeln!(
                        f,
                        "devmgr: listener: subscriber {}: {} delivered, {} dropped, {} resyncs",
                        sub.name.as_deref().unwrap_or("(unnamed)"),
                        sub.delivered,
                        sub.dropped,
                        sub.overflows
                    )?;
                }
            }
            None => writeln!(f, "devmgr: listener: not running")?,
        }
        match (&self.loader, self.loading) {
            (_, false) => write!(
                f,
                "devmgr: loader: module loading waits for the module index (see the log)"
            ),
            (None, true) => write!(f, "devmgr: loader: not running"),
            (Some(s), true) => {
                let failed: u64 = s.loads.failed.values().sum();
                write!(
                    f,
                    "devmgr: loader{}: {} lookups ({} folded into a running plan), {} unresolved, {} plans, {} modules loaded ({:.3}s loading), {} already loaded, {} failed{}, {} skipped (no device last time), {} index reloads{}",
                    if self.dry_run { " (dry run)" } else { "" },
                    s.events,
                    s.folded,
                    s.unresolved,
                    s.plans,
                    s.loads.loaded,
                    s.loads.load_time.as_secs_f64(),
                    s.loads.already_loaded,
                    failed,
                    if s.loads.failed.is_empty() {
                        String::new()
                    } else {
                        format!(" {:?}", s.loads.failed)
                    },
                    s.skipped_no_device,
                    s.reloads,
                    install_counts(&s.loads),
                )
            }
        }
    }
}

/// The loader's counts of `install` lines and slow loads, for the summary; empty when all are 0.
fn install_counts(loads: &kmod_loader::load::LoadStats) -> String {
    let mut out = String::new();
    for (n, what) in [
        (loads.disabled, "disabled by install lines"),
        (loads.install_commands, "install commands run"),
        (loads.install_refused, "install commands refused"),
        (loads.slow, "slow loads"),
    ] {
        if n > 0 {
            out.push_str(&format!(", {n} {what}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOWS: SettleWindows = SettleWindows {
        quiet: Duration::from_millis(200),
        enumeration: Duration::from_secs(1),
    };

    fn event(action: Action, subsystem: &str, props: &[(&str, &str)]) -> Uevent {
        let mut builder = Uevent::builder(action, "/devices/pci0000:00/0000:00:05.0/usb1/1-0:1.0")
            .subsystem(subsystem)
            .seqnum(7);
        for (k, v) in props {
            builder = builder.property(k, v);
        }
        builder.build().expect("valid event")
    }

    fn no_delay_asked() -> Duration {
        panic!("delay_use asked for an event that is not a usb-storage bind")
    }

    #[test]
    fn a_hub_or_host_controller_bound_holds_for_the_enumeration_window() {
        let hub = event(
            Action::Bind,
            "usb",
            &[("DEVTYPE", "usb_interface"), ("DRIVER", "hub")],
        );
        assert_eq!(
            hold_for(&hub, WINDOWS, no_delay_asked),
            Some((HoldCause::HubBound, WINDOWS.enumeration))
        );
        for class in ["C0330", "C0300", "c0320", "0C0310"] {
            let controller = event(
                Action::Bind,
                "pci",
                &[("DRIVER", "xhci_hcd"), ("PCI_CLASS", class)],
            );
            assert_eq!(
                hold_for(&controller, WINDOWS, no_delay_asked),
                Some((HoldCause::HostControllerBound, WINDOWS.enumeration)),
                "{class}"
            );
        }
        // A network controller is a driver bound like any other; a bad class is not a panic.
        for class in ["20000", "C0500", "C03", "zz", ""] {
            let other = event(
                Action::Bind,
                "pci",
                &[("DRIVER", "e1000"), ("PCI_CLASS", class)],
            );
            assert_eq!(
                hold_for(&other, WINDOWS, no_delay_asked),
                Some((HoldCause::DriverBound, WINDOWS.quiet)),
                "{class}"
            );
        }
    }

    #[test]
    fn usb_storage_holds_for_its_delay_and_the_enumeration_window() {
        let storage = event(
            Action::Bind,
            "usb",
            &[("DEVTYPE", "usb_interface"), ("DRIVER", "usb-storage")],
        );
        assert_eq!(
            hold_for(&storage, WINDOWS, || Duration::from_millis(1500)),
            Some((HoldCause::UsbStorageBound, Duration::from_millis(2500)))
        );
    }

    #[test]
    fn devices_that_lead_to_more_devices_hold_for_the_short_window_others_not_at_all() {
        let usb = event(Action::Add, "usb", &[("DEVTYPE", "usb_device")]);
        assert_eq!(
            hold_for(&usb, WINDOWS, no_delay_asked),
            Some((HoldCause::UsbDeviceAdded, WINDOWS.enumeration)),
            "its hub may enumerate its next port"
        );
        for (subsystem, devtype) in [
            ("scsi", "scsi_host"),
            ("scsi", "scsi_target"),
            ("ata_port", ""),
        ] {
            let added = event(Action::Add, subsystem, &[("DEVTYPE", devtype)]);
            assert_eq!(
                hold_for(&added, WINDOWS, no_delay_asked),
                Some((HoldCause::DeviceAdded, WINDOWS.quiet)),
                "{subsystem} {devtype}"
            );
        }
        for (action, subsystem, devtype) in [
            (Action::Add, "usb", "usb_interface"),
            (Action::Add, "block", "disk"),
            (Action::Add, "net", ""),
            (Action::Change, "usb", "usb_device"),
            (Action::Remove, "scsi", "scsi_host"),
            (Action::Unbind, "usb", "usb_interface"),
        ] {
            let e = event(
                action,
                subsystem,
                &[("DEVTYPE", devtype), ("DRIVER", "hub")],
            );
            assert_eq!(
                hold_for(&e, WINDOWS, no_delay_asked),
                None,
                "{action:?} {subsystem} {devtype}"
            );
        }
    }

    #[test]
    fn replays_hold_nothing() {
        let replayed = event(
            Action::Bind,
            "usb",
            &[("DRIVER", "hub"), ("SYNTH_UUID", "0")],
        );
        assert_eq!(hold_for(&replayed, WINDOWS, no_delay_asked), None);
        let replayed = event(
            Action::Add,
            "usb",
            &[("DEVTYPE", "usb_device"), ("SYNTH_UUID", "0")],
        );
        assert_eq!(hold_for(&replayed, WINDOWS, no_delay_asked), None);
    }

    #[test]
    fn delay_use_is_read_in_seconds_or_milliseconds_and_bounded() {
        assert_eq!(parse_delay_use("1\n"), Some(Duration::from_secs(1)));
        assert_eq!(parse_delay_use("0"), Some(Duration::ZERO));
        assert_eq!(
            parse_delay_use("1500ms\n"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_delay_use("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_delay_use("4294967295"), Some(MAX_USB_STORAGE_DELAY));
        for bad in ["", "ms", "-1", "1.5", "one", "99999999999999999999999"] {
            assert_eq!(parse_delay_use(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_hold_that_ends_last_wins_and_passes() {
        let sysfs = tempfile::tempdir().expect("tempdir");
        let holds = SettleHolds::new(WINDOWS, sysfs.path());
        let t0 = Instant::now();
        assert_eq!(holds.remaining(t0), Duration::ZERO, "nothing seen");
        let hub = event(Action::Bind, "usb", &[("DRIVER", "hub")]);
        holds.note([&hub], t0);
        assert_eq!(holds.remaining(t0), WINDOWS.enumeration);
        // A later, shorter hold does not cut the hub's enumeration window short.
        let device = event(Action::Add, "scsi", &[("DEVTYPE", "scsi_host")]);
        holds.note([&device], t0 + Duration::from_millis(100));
        assert_eq!(
            holds.remaining(t0 + Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        assert_eq!(holds.last().map(|h| h.cause), Some(HoldCause::HubBound));
        // One that ends later takes over.
        holds.note([&device], t0 + Duration::from_millis(900));
        assert_eq!(
            holds.remaining(t0 + Duration::from_secs(1)),
            Duration::from_millis(100)
        );
        assert_eq!(holds.last().map(|h| h.cause), Some(HoldCause::DeviceAdded));
        assert_eq!(holds.remaining(t0 + Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn usb_storage_delay_is_read_from_sysfs_with_a_default() {
        let sysfs = tempfile::tempdir().expect("tempdir");
        let holds = SettleHolds::new(WINDOWS, sysfs.path());
        let storage = event(Action::Bind, "usb", &[("DRIVER", "usb-storage")]);
        let t0 = Instant::now();
        holds.note([&storage], t0);
        assert_eq!(
            holds.remaining(t0),
            DEFAULT_USB_STORAGE_DELAY + WINDOWS.enumeration,
            "no parameter: the kernel's default"
        );
        let params = sysfs.path().join("module/usb_storage/parameters");
        std::fs::create_dir_all(&params).expect("mkdir");
        std::fs::write(params.join("delay_use"), "3\n").expect("write");
        holds.note([&storage], t0);
        assert_eq!(
            holds.remaining(t0),
            Duration::from_secs(3) + WINDOWS.enumeration
        );
    }
}
