//! `devmgr monitor`: the kernel uevents devmgr accepts, printed as they arrive in the format of
//! `udevadm monitor --kernel --property`.
//!
//! The events come from a [`Listener`] actor, the same socket, trust checks (kernel port 0,
//! group 1, kernel credentials) and parser as `devmgr run`: a datagram forged by a userspace
//! process is dropped and counted (the listener logs the first of each kind), never printed.
//! The banner is printed only once the socket is bound and subscribed to, so anything that
//! happens after it has appeared is seen.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use listener::{
    Filter, Listener, ListenerConfig, ListenerMsg, Notification, ResyncReason, Subscription,
};
use ractor::{Actor, ActorRef, call};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use uevent::Uevent;

use crate::MonitorArgs;

/// What `udevadm monitor --kernel` prints first.
const BANNER: &str = "monitor will print the received events for:\nKERNEL - the kernel uevent\n\n";

/// Events the monitor may have in flight from the listener before it is told to resync.
const CAPACITY: usize = 1 << 16;

/// A single-threaded runtime (the listener reads its socket on a thread of its own), or `None`
/// once the reason there is none was printed.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    let built = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    built
        .map_err(|err| eprintln!("devmgr: cannot start the runtime: {err}"))
        .ok()
}

/// Runs `devmgr monitor`.
pub(crate) fn monitor(args: MonitorArgs) -> ExitCode {
    crate::logging::init("warn");
    let matches = match args
        .subsystems
        .iter()
        .map(|s| SubsystemMatch::parse(s))
        .collect::<Option<Vec<_>>>()
    {
        Some(matches) => matches,
        None => {
            eprintln!("devmgr: --subsystem-match takes SUBSYSTEM or SUBSYSTEM/DEVTYPE");
            return ExitCode::from(2);
        }
    };
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(watch(&args, &matches)) {
        Ok(()) => ExitCode::SUCCESS,
        // `devmgr monitor | head`: the reader is gone, which ends the monitor.
        Err(Failure::Io(err)) if err.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("devmgr: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Why the monitor stopped early.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot listen for uevents: {0}")]
    Listen(String),
    #[error("the uevent listener stopped")]
    ListenerGone,
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error("writing the events: {0}")]
    Io(#[from] io::Error),
}

async fn watch(args: &MonitorArgs, matches: &[SubsystemMatch]) -> Result<(), Failure> {
    let mut term = signal(SignalKind::terminate()).map_err(Failure::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Failure::Signals)?;
    let (listener, events) = listen(matches).await?;
    let printed = print_events(args, matches, events, async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
    .await;
    listener.stop(None);
    printed
}

/// Starts a listener and subscribes to the events of `matches`' subsystems (all without any).
async fn listen(
    matches: &[SubsystemMatch],
) -> Result<(ActorRef<ListenerMsg>, UnboundedReceiver<Notification>), Failure> {
    let (listener, _) = Actor::spawn(None, Listener, ListenerConfig::default())
        .await
        .map_err(|e| Failure::Listen(e.to_string()))?;
    let mut filter = Filter::all();
    if !matches.is_empty() {
        let mut subsystems: Vec<Vec<u8>> = matches.iter().map(|m| m.subsystem.clone()).collect();
        subsystems.sort();
        subsystems.dedup();
        filter.subsystems = Some(subsystems);
    }
    let (tx, rx) = unbounded_channel();
    let subscription = Subscription::to_fn(move |n| tx.send(n).is_ok())
        .filter(filter)
        .capacity(CAPACITY);
    if let Err(err) = call!(listener, ListenerMsg::Subscribe, subscription) {
        listener.stop(None);
        return Err(Failure::Listen(err.to_string()));
    }
    Ok((listener, rx))
}

/// Prints the banner, then every event that passes `matches` until `stop` completes, the
/// `--count` is reached or the listener goes away.
async fn print_events(
    args: &MonitorArgs,
    matches: &[SubsystemMatch],
    mut events: UnboundedReceiver<Notification>,
    stop: impl Future<Output = ()>,
) -> Result<(), Failure> {
    let mut out = io::stdout();
    let escape = escape_for(&out);
    out.write_all(BANNER.as_bytes())?;
    out.flush()?;
    let mut printed = 0u64;
    let mut text = Vec::with_capacity(4096);
    tokio::pin!(stop);
    loop {
        let batch = tokio::select! {
            () = &mut stop => return Ok(()),
            notification = events.recv() => match notification {
                Some(Notification::Uevents(batch)) => batch,
                Some(Notification::Resync(reason)) => {
                    let why = match reason {
                        ResyncReason::Overrun => "the socket's receive buffer overran",
                        ResyncReason::SubscriberOverflow => "the output could not keep up",
                    };
                    tracing::warn!(?reason, "events were lost: {why}");
                    continue;
                }
                None => return Err(Failure::ListenerGone),
            },
        };
        for event in batch {
            if !matches.is_empty() && !matches.iter().any(|m| m.matches(&event)) {
                continue;
            }
            text.clear();
            render(
                &event,
                monotonic_now(),
                !args.no_properties,
                escape,
                &mut text,
            );
            drop(event);
            out.write_all(&text)?;
            out.flush()?;
            printed += 1;
            if args.count.is_some_and(|count| printed >= count) {
                return Ok(());
            }
        }
    }
}

/// One `--subsystem-match`: a subsystem and maybe a device type, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubsystemMatch {
    subsystem: Vec<u8>,
    devtype: Option<Vec<u8>>,
}

impl SubsystemMatch {
    /// `SUBSYSTEM` or `SUBSYSTEM/DEVTYPE`; `None` when a part is empty.
    fn parse(text: &str) -> Option<SubsystemMatch> {
        let (subsystem, devtype) = match text.split_once('/') {
            Some((s, d)) => (s, Some(d)),
            None => (text, None),
        };
        if subsystem.is_empty() || devtype.is_some_and(str::is_empty) {
            return None;
        }
        Some(SubsystemMatch {
            subsystem: subsystem.as_bytes().to_vec(),
            devtype: devtype.map(|d| d.as_bytes().to_vec()),
        })
    }

    fn matches(&self, event: &Uevent) -> bool {
        event.subsystem() == Some(self.subsystem.as_slice())
            && self
                .devtype
                .as_ref()
                .is_none_or(|d| event.devtype() == Some(d.as_slice()))
    }
}

/// How bytes from the event are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// As the kernel sent them.
    None,
    /// Control characters (C0, DEL, C1) and bytes that are not UTF-8 as `\xNN`, the
    /// backslash as `\\`, so that nothing printed can steer a terminal.
    ControlBytes,
}

/// How events are written to `out`. Values come from devices (USB descriptors, firmware): on a
/// terminal their control bytes could move the cursor or retitle the window, so they are
/// escaped there; a pipe or a file gets the bytes as the kernel sent them.
fn escape_for(out: &impl io::IsTerminal) -> Escape {
    if out.is_terminal() {
        Escape::ControlBytes
    } else {
        Escape::None
    }
}

impl Escape {
    fn write(self, bytes: &[u8], out: &mut Vec<u8>) {
        if self == Escape::None {
            out.extend_from_slice(bytes);
            return;
        }
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => out.extend_from_slice(b"\\\\"),
                    c if c.is_control() => {
                        let mut buf = [0u8; 4];
                        for b in c.encode_utf8(&mut buf).bytes() {
                            let _ = write!(out, "\\x{b:02x}");
                        }
                    }
                    c => {
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                }
            }
            for b in chunk.invalid() {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// Appends `event` as `udevadm monitor` prints it: `KERNEL[secs.usecs] ACTION   DEVPATH
/// (SUBSYSTEM)`, then, with `properties`, `KEY=VALUE` lines (the four typed fields first, the
/// rest in arrival order) and a blank line; the event's bytes written as `escape` says.
fn render(event: &Uevent, at: Duration, properties: bool, escape: Escape, out: &mut Vec<u8>) {
    let action = event.action().as_str();
    let subsystem = event.subsystem().unwrap_or_default();
    let _ = write!(
        out,
        "KERNEL[{}.{:06}] {action:<8} ",
        at.as_secs(),
        at.subsec_micros()
    );
    escape.write(event.devpath(), out);
    out.extend_from_slice(b" (");
    escape.write(subsystem, out);
    out.extend_from_slice(b")\n");
    if !properties {
        return;
    }
    let mut line = |key: &[u8], value: &[u8]| {
        escape.write(key, out);
        out.push(b'=');
        escape.write(value, out);
        out.push(b'\n');
    };
    line(b"ACTION", action.as_bytes());
    line(b"DEVPATH", event.devpath());
    if let Some(subsystem) = event.subsystem() {
        line(b"SUBSYSTEM", subsystem);
    }
    if let Some(seqnum) = event.seqnum() {
        line(b"SEQNUM", seqnum.to_string().as_bytes());
    }
    for (key, value) in event.properties() {
        line(key, value);
    }
    out.push(b'\n');
}

/// The time on `CLOCK_MONOTONIC`, as `udevadm monitor` prints it (zero if it cannot be read,
/// which Linux never refuses).
fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uevent::Action;

    fn event() -> Uevent {
        Uevent::builder(Action::Add, "/devices/platform/serial8250")
            .subsystem("platform")
            .seqnum(4242)
            .property("SYNTH_UUID", "0")
            .property("MODALIAS", "platform:serial8250")
            .build()
            .expect("event")
    }

    #[test]
    fn an_event_prints_like_udevadm_monitor_kernel_property() {
        let mut out = Vec::new();
        render(
            &event(),
            Duration::new(12, 3_456_789),
            true,
            Escape::None,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "KERNEL[12.003456] add      /devices/platform/serial8250 (platform)\n\
             ACTION=add\n\
             DEVPATH=/devices/platform/serial8250\n\
             SUBSYSTEM=platform\n\
             SEQNUM=4242\n\
             SYNTH_UUID=0\n\
             MODALIAS=platform:serial8250\n\n"
        );
        let mut out = Vec::new();
        render(
            &event(),
            Duration::new(1, 0),
            false,
            Escape::ControlBytes,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "KERNEL[1.000000] add      /devices/platform/serial8250 (platform)\n"
        );
    }

    #[test]
    fn on_a_terminal_control_bytes_from_devices_are_escaped_and_a_pipe_gets_them_raw() {
        // A USB device whose serial number holds a terminal escape sequence (set the title,
        // clear the screen, move to the start of the line), a C1 CSI, and bytes that are not
        // UTF-8.
        let mut value = b"\x1b]0;pwned\x07\x1b[2J\xc2\x9b31m\rFAKE=1 caf\xc3\xa9 \\ \xff".to_vec();
        let event = Uevent::builder(Action::Add, "/devices/usb1/1-1")
            .subsystem("usb")
            .seqnum(7)
            .property("ID_SERIAL", &value)
            .build()
            .expect("event");
        let mut out = Vec::new();
        render(&event, Duration::ZERO, true, Escape::ControlBytes, &mut out);
        let text = String::from_utf8(out).expect("escaped output is UTF-8");
        assert!(
            text.contains(
                "ID_SERIAL=\\x1b]0;pwned\\x07\\x1b[2J\\xc2\\x9b31m\\x0dFAKE=1 café \\\\ \\xff\n"
            ),
            "{text}"
        );
        assert!(!text.bytes().any(|b| b < 0x20 && b != b'\n'), "{text:?}");

        let mut raw = Vec::new();
        render(&event, Duration::ZERO, true, Escape::None, &mut raw);
        value.push(b'\n');
        assert!(
            raw.windows(value.len()).any(|w| w == value.as_slice()),
            "a pipe gets the bytes as sent"
        );
    }

    #[test]
    fn output_on_a_terminal_is_escaped_and_on_a_pipe_or_a_file_is_raw() {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        assert_eq!(
            escape_for(&pty.slave),
            Escape::ControlBytes,
            "a terminal (pty)"
        );
        let (read, write) = nix::unistd::pipe().expect("pipe");
        assert_eq!(escape_for(&write), Escape::None, "a pipe");
        assert_eq!(escape_for(&read), Escape::None, "a pipe");
        let file = tempfile::tempfile().expect("tempfile");
        assert_eq!(escape_for(&file), Escape::None, "a file");
    }

    #[test]
    fn subsystem_matches_take_an_optional_devtype() {
        let disk = Uevent::builder(Action::Add, "/devices/virtual/block/loop0")
            .subsystem("block")
            .seqnum(1)
            .property("DEVTYPE", "disk")
            .build()
            .expect("event");
        let parse = |s: &str| SubsystemMatch::parse(s).expect("parses");
        assert!(parse("block").matches(&disk));
        assert!(parse("block/disk").matches(&disk));
        assert!(!parse("block/partition").matches(&disk));
        assert!(!parse("platform").matches(&disk));
        assert!(!parse("platform/disk").matches(&disk));
        for bad in ["", "/disk", "block/"] {
            assert_eq!(SubsystemMatch::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_monotonic_clock_is_read() {
        let (a, b) = (monotonic_now(), monotonic_now());
        assert!(!a.is_zero());
        assert!(b >= a);
        // CLOCK_MONOTONIC never runs ahead of CLOCK_BOOTTIME (/proc/uptime), which only adds
        // the time spent suspended.
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .expect("uptime")
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("a number");
        assert!(a.as_secs_f64() <= uptime + 0.02, "{a:?} vs {uptime}");
    }
}
