//! `devmgr monitor` and `devmgr trigger` end to end: the built binary against the real kernel
//! (root needed: events are produced by writing into `/sys/devices/**/uevent`; skipped with a
//! reason otherwise, or failed when `DEVMGR_REQUIRE_ALL_TESTS=1`).
//!
//! Other processes (other test binaries, a running device manager) may send platform events
//! while these tests run: every event the tests produce carries a UUID of their own, and a
//! test that caught a stranger's event instead tries again. The tests of this file run one at
//! a time, so they never catch each other's.

mod common;
use common::skip_or_fail;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, sendto, socket,
};
use uevent::{Action, Uevent};

const DEVMGR: &str = env!("CARGO_BIN_EXE_devmgr");
const SERIAL: &str = "/devices/platform/serial8250";
const SERIAL_UEVENT: &str = "/sys/devices/platform/serial8250/uevent";
const BANNER: &str = "monitor will print the received events for:";
/// A safety net only: every wait ends as soon as the line or exit it waits for arrives.
const PATIENCE: Duration = Duration::from_secs(20);
/// Tries when a stranger's platform event got in first.
const ATTEMPTS: usize = 5;

/// One kernel-touching test at a time (tests of one binary run in parallel threads).
static KERNEL: Mutex<()> = Mutex::new(());

/// Whether the test can run (root, the serial port's `uevent`, a uevent socket); if so, holds
/// the kernel for it.
fn host_test(test: &str) -> Option<MutexGuard<'static, ()>> {
    let why = if !nix::unistd::geteuid().is_root() {
        "needs root (writes /sys/devices/**/uevent)".to_owned()
    } else if !std::path::Path::new(SERIAL_UEVENT).exists() {
        format!("no {SERIAL_UEVENT}")
    } else if let Err(err) = listener::UeventSocket::open(1 << 20) {
        format!("no uevent socket: {err}")
    } else {
        return Some(KERNEL.lock().unwrap_or_else(PoisonError::into_inner));
    };
    skip_or_fail(test, &why);
    None
}

fn kernel_uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("random uuid")
        .trim()
        .to_owned()
}

/// Makes the kernel send `add` for the serial port, tagged `SYNTH_UUID=<uuid>`.
fn trigger_serial(uuid: &str) {
    std::fs::write(SERIAL_UEVENT, format!("add {uuid}")).expect("write the serial port's uevent");
}

fn devmgr(args: &[&str]) -> Output {
    Command::new(DEVMGR)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run devmgr")
}

/// A running `devmgr monitor` whose stdout is read line by line.
struct Monitor {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Monitor {
    /// Starts `devmgr monitor ARGS` and waits for its banner: from then on it is listening.
    fn start(args: &[&str]) -> Monitor {
        let mut child = Command::new(DEVMGR)
            .arg("monitor")
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start devmgr monitor");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line);
                if tx.send(text.trim_end_matches('\n').to_owned()).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let mut monitor = Monitor {
            child,
            lines,
            seen: Vec::new(),
        };
        assert!(
            monitor.wait_line(|l| l == BANNER),
            "no banner from the monitor: {:?}",
            monitor.seen
        );
        monitor
    }

    /// Waits for a line that satisfies `want`; `false` if stdout ended or patience ran out.
    fn wait_line(&mut self, want: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = want(&line);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Waits for the monitor to exit on its own (after `--count`); returns its status, every
    /// line it printed and its stderr.
    fn finish(mut self) -> (ExitStatus, Vec<String>, String) {
        while self.wait_line(|_| false) {}
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the monitor did not exit: {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
        }
        (status, std::mem::take(&mut self.seen), stderr)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The event blocks the monitor printed: a header line, its properties, up to a blank line.
fn blocks(lines: &[String]) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for line in lines.iter().skip_while(|l| !l.starts_with("KERNEL[")) {
        if line.is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
            }
        } else {
            current.push(line.clone());
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

/// Starts a monitor for platform events with `--count 1`, runs `between` (which may send
/// forgeries or run a dry trigger), writes `add` with a fresh UUID into the serial port's
/// `uevent` and returns the one event printed, once it is ours. `between` runs again on each
/// try.
fn catch_our_serial_add(mut between: impl FnMut()) -> (Vec<String>, String, String) {
    for _ in 0..ATTEMPTS {
        let monitor = Monitor::start(&["--count", "1", "--subsystem-match", "platform"]);
        between();
        let uuid = kernel_uuid();
        trigger_serial(&uuid);
        let (status, lines, stderr) = monitor.finish();
        assert!(status.success(), "{status}: {lines:?}\n{stderr}");
        let blocks = blocks(&lines);
        assert_eq!(blocks.len(), 1, "--count 1 prints one event: {lines:?}");
        let block = blocks.into_iter().next().unwrap_or_default();
        if block.contains(&format!("SYNTH_UUID={uuid}")) {
            return (block, uuid, stderr);
        }
        let _ = writeln!(
            std::io::stderr(),
            "another process's platform event came first; trying again: {block:?}"
        );
    }
    panic!("our event never came first in {ATTEMPTS} tries");
}

#[test]
fn monitor_prints_a_real_kernel_event_like_udevadm_monitor() {
    let Some(_kernel) = host_test("monitor_prints_a_real_kernel_event") else {
        return;
    };
    let (block, _, _) = catch_our_serial_add(|| {});
    let header = &block[0];
    let time = header
        .strip_prefix("KERNEL[")
        .and_then(|rest| rest.split_once("] "))
        .map(|(time, rest)| {
            assert_eq!(rest, format!("add      {SERIAL} (platform)"), "{header}");
            time
        })
        .unwrap_or_else(|| panic!("not a header: {header}"));
    let (secs, micros) = time.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok_and(|s| s > 0), "{header}");
    assert!(
        micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
        "{header}"
    );
    assert_eq!(
        block[1..5]
            .iter()
            .map(|l| l.split('=').next())
            .collect::<Vec<_>>(),
        [
            Some("ACTION"),
            Some("DEVPATH"),
            Some("SUBSYSTEM"),
            Some("SEQNUM")
        ],
        "{block:?}"
    );
    assert_eq!(block[1], "ACTION=add");
    assert_eq!(block[2], format!("DEVPATH={SERIAL}"));
    assert_eq!(block[3], "SUBSYSTEM=platform");
    let seqnum = block[4].strip_prefix("SEQNUM=").expect("SEQNUM");
    assert!(seqnum.parse::<u64>().is_ok_and(|s| s > 0), "{block:?}");
}

#[test]
fn monitor_never_prints_a_datagram_forged_by_a_userspace_process() {
    let Some(_kernel) = host_test("monitor_never_prints_a_forged_datagram") else {
        return;
    };
    let forged_uuid = kernel_uuid();
    let forged = Uevent::builder(Action::Add, SERIAL)
        .subsystem("platform")
        .seqnum(1)
        .property("SYNTH_UUID", &forged_uuid)
        .property("MODALIAS", "platform:devmgr-forged")
        .build()
        .expect("event")
        .encode()
        .expect("encode");
    // A root process's own uevent socket (non-zero port) multicasting to the kernel's group:
    // queued before the real event, so read first.
    let forger = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .expect("socket");
    bind(forger.as_raw_fd(), &NetlinkAddr::new(0, 0)).expect("bind");
    let (block, _, stderr) = catch_our_serial_add(|| {
        let sent = sendto(
            forger.as_raw_fd(),
            &forged,
            &NetlinkAddr::new(0, 1),
            MsgFlags::empty(),
        );
        assert_eq!(sent, Ok(forged.len()), "root may multicast on group 1");
    });
    assert!(!block.iter().any(|l| l.contains(&forged_uuid)), "{block:?}");
    assert!(
        stderr.contains("datagram dropped") && stderr.contains("not_kernel_port"),
        "the forgery reached the monitor and was dropped: {stderr}"
    );
}

/// `triggered N devices, M answered, K gone, F failed` (`M answered, ` only with --settle).
fn summary(stdout: &str) -> Vec<usize> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("triggered "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    line.split(", ")
        .map(|part| {
            part.trim_start_matches("triggered ")
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("bad summary: {line}"))
        })
        .collect()
}

fn platform_devices() -> usize {
    std::fs::read_dir("/sys/bus/platform/devices")
        .expect("platform devices")
        .count()
}

#[test]
fn trigger_settle_gets_an_answer_from_every_platform_device() {
    let Some(_kernel) = host_test("trigger_settle_gets_an_answer") else {
        return;
    };
    let platform = platform_devices();
    for action in ["add", "change"] {
        let out = devmgr(&[
            "trigger",
            "--settle",
            "--action",
            action,
            "--subsystem-match",
            "platform",
            "--timeout",
            "10s",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{action}: {stdout}\n{stderr}");
        let [triggered, answered, gone, failed] = summary(&stdout)[..] else {
            panic!("{stdout}");
        };
        assert!(triggered > 0, "{stdout}");
        assert_eq!(answered, triggered, "every write answered: {stdout}");
        assert_eq!(
            triggered + gone,
            platform,
            "every platform device: {stdout}"
        );
        assert_eq!(failed, 0, "{stdout}\n{stderr}");
    }
    // Without --settle: written, not waited for.
    let out = devmgr(&["trigger", "-s", "platf*"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let [triggered, gone, 0] = summary(&stdout)[..] else {
        panic!("{stdout}");
    };
    assert_eq!(triggered + gone, platform, "{stdout}");
}

#[test]
fn trigger_dry_run_lists_the_devices_and_writes_nothing() {
    let Some(_kernel) = host_test("trigger_dry_run_writes_nothing") else {
        return;
    };
    // A dry run that wrote would have its events printed before ours, on every try.
    let mut listed = String::new();
    catch_our_serial_add(|| {
        let out = devmgr(&["trigger", "--dry-run", "--subsystem-match", "platform"]);
        assert!(out.status.success(), "{out:?}");
        listed = String::from_utf8_lossy(&out.stdout).into_owned();
    });
    let lines: Vec<&str> = listed.lines().collect();
    assert!(
        lines.contains(&"/sys/devices/platform/serial8250"),
        "{listed}"
    );
    let n = lines.len() - 1;
    assert_eq!(
        lines.last().copied(),
        Some(format!("would trigger {n} devices (dry run: nothing written)").as_str()),
        "{listed}"
    );
    assert_eq!(n, platform_devices(), "{listed}");
}

#[test]
fn bad_arguments_exit_2_before_anything_starts() {
    for args in [
        &["trigger", "--timeout", "soon"][..],
        &["trigger", "--timeout", "0s"],
        // Once an Instant overflow (a panic) when a device stayed silent.
        &["trigger", "--settle", "--timeout", "1e19"],
        &["trigger", "--settle", "--timeout", "18446744073709551615"],
        &["trigger", "--timeout", "2h"],
        &["trigger", "--action", "explode"],
        &["monitor", "--count", "0"],
        &["monitor", "--subsystem-match", "block/"],
    ] {
        let out = devmgr(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

/// A fake sysfs: `devices/a` (platform), `devices/a/b` (tty), `devices/c` (no subsystem link,
/// so not a device the kernel announces).
fn fake_sysfs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for (dir, subsystem) in [
        ("devices/a", Some("../../bus/platform")),
        ("devices/a/b", Some("../../../class/tty")),
        ("devices/c", None),
    ] {
        let dir = tmp.path().join(dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("uevent"), "").expect("uevent");
        if let Some(target) = subsystem {
            std::os::unix::fs::symlink(target, dir.join("subsystem")).expect("symlink");
        }
    }
    tmp
}

fn written(sysfs: &std::path::Path, dir: &str) -> String {
    std::fs::read_to_string(sysfs.join(dir).join("uevent")).expect("read uevent")
}

#[test]
fn trigger_writes_the_action_and_a_uuid_into_each_matching_device_of_a_fake_sysfs() {
    let tmp = fake_sysfs();
    let sysfs = tmp.path().to_str().expect("utf-8 path");

    let out = devmgr(&["trigger", "--sysfs", sysfs, "-s", "plat*", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout,
        format!("{sysfs}/devices/a\nwould trigger 1 devices (dry run: nothing written)\n")
    );
    assert_eq!(
        written(tmp.path(), "devices/a"),
        "",
        "a dry run writes nothing"
    );

    let out = devmgr(&["trigger", "--sysfs", sysfs, "--action", "change", "-v"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout,
        format!("{sysfs}/devices/a\n{sysfs}/devices/a/b\ntriggered 2 devices, 0 gone, 0 failed\n")
    );
    let (a, b) = (
        written(tmp.path(), "devices/a"),
        written(tmp.path(), "devices/a/b"),
    );
    for text in [&a, &b] {
        let uuid = text.strip_prefix("change ").expect("the action first");
        assert!(coldplug::is_uuid(uuid), "{text:?}");
    }
    assert_ne!(a, b, "a fresh UUID per device");
    assert_eq!(written(tmp.path(), "devices/c"), "", "not a device");

    let out = devmgr(&["trigger", "--sysfs", "/nonexistent/devmgr-sysfs"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

#[test]
fn trigger_settle_gives_up_on_devices_that_never_answer() {
    // The kernel never answers a write into a plain file; the listener needs no root.
    if let Err(err) = listener::UeventSocket::open(1 << 20) {
        return skip_or_fail(
            "trigger_settle_gives_up",
            &format!("no uevent socket: {err}"),
        );
    }
    // `add` goes through coldplug's Pass, the other actions through devmgr's own bookkeeping.
    for action in ["add", "change"] {
        let tmp = fake_sysfs();
        let sysfs = tmp.path().to_str().expect("utf-8 path");
        let started = Instant::now();
        let out = devmgr(&[
            "trigger",
            "--settle",
            "--action",
            action,
            "--sysfs",
            sysfs,
            "-s",
            "tty",
            "--timeout",
            "100ms",
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{action}: {stdout}\n{stderr}");
        assert_eq!(
            stdout,
            "triggered 1 devices, 0 answered, 0 gone, 0 failed\n"
        );
        assert!(
            stderr.contains("devmgr: /devices/a/b never answered"),
            "{action}: {stderr}"
        );
        // Triggered once more after the first timeout, given up after the second.
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{action}: {:?}",
            started.elapsed()
        );
        let text = written(tmp.path(), "devices/a/b");
        assert!(text.starts_with(&format!("{action} ")), "{text:?}");
        assert_eq!(written(tmp.path(), "devices/a"), "", "not a tty");
    }
}

/// The subcommands `devmgr --help` lists.
fn subcommands() -> Vec<String> {
    let help = String::from_utf8(devmgr(&["--help"]).stdout).expect("utf8");
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // "  name  description"; a wrapped description goes on with deeper indentation.
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

/// The long options `devmgr ARGS --help` lists.
fn long_options(args: &[&str]) -> Vec<String> {
    let mut argv = args.to_vec();
    argv.push("--help");
    let help = String::from_utf8(devmgr(&argv).stdout).expect("utf8");
    // Option lines: "  -c, --config <CONFIG>  text" or "      --dry-run  text"; a wrapped
    // description goes on deeper (help is wrapped to the terminal, or to 100 columns).
    let mut options: Vec<String> = help
        .lines()
        .filter(|l| l.len() - l.trim_start().len() <= 6)
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split("  ").next())
        .flat_map(|spec| spec.split([',', ' ']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.split(['=', '<']).next().unwrap_or(w).to_owned())
        .collect();
    options.sort();
    options.dedup();
    options
}

#[test]
fn completions_and_man_pages_cover_every_command_and_option_of_help() {
    let commands = subcommands();
    assert!(commands.len() >= 6, "{commands:?}");
    let man_top = String::from_utf8(devmgr(&["man"]).stdout).expect("utf8");
    let scripts: Vec<(String, String)> = ["bash", "zsh", "fish"]
        .iter()
        .map(|shell| {
            let out = devmgr(&["completions", shell]);
            assert!(out.status.success(), "{shell}: {out:?}");
            (
                (*shell).to_owned(),
                String::from_utf8(out.stdout).expect("utf8"),
            )
        })
        .collect();
    for command in &commands {
        assert!(
            man_top.contains(command.as_str()),
            "devmgr(1) lacks {command}"
        );
        let out = devmgr(&["man", command]);
        assert!(out.status.success(), "man {command}: {out:?}");
        // roff escapes every '-' as '\-'.
        let page = String::from_utf8(out.stdout)
            .expect("utf8")
            .replace("\\-", "-");
        assert!(
            page.contains(&format!("devmgr-{command}")),
            "{command}: {page}"
        );
        for option in long_options(&[command.as_str()]) {
            assert!(page.contains(&option), "devmgr-{command}(1) lacks {option}");
            for (shell, script) in &scripts {
                // fish names long options without their dashes (`-l config`).
                let bare = option.trim_start_matches('-');
                assert!(
                    script.contains(&option) || (shell == "fish" && script.contains(bare)),
                    "{shell} completions lack {command} {option}"
                );
            }
        }
        for (shell, script) in &scripts {
            assert!(
                script.contains(command.as_str()),
                "{shell} completions lack {command}"
            );
        }
    }
    assert_eq!(devmgr(&["man", "nosuch"]).status.code(), Some(2));
    assert_eq!(devmgr(&["completions", "tcsh"]).status.code(), Some(2));
}
