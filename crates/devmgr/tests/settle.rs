//! `devmgr settle` end to end: the built binary against a `devmgr run` daemon on the real
//! kernel (root needed: real events come from writing into
//! `/sys/devices/platform/serial8250/uevent`; skipped with a reason otherwise, or failed when
//! `DEVMGR_REQUIRE_ALL_TESTS=1`).
//!
//! The daemon really loads (no dry run), from the index of one fake module
//! ([`common::FakeModule`]): a load plan for the serial port takes a known time, leaves a mark
//! when it ended, and inserts nothing into the kernel.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::{FakeModule, kernel_lock, skip_or_fail};

const DEVMGR: &str = env!("CARGO_BIN_EXE_devmgr");
const SERIAL_UEVENT: &str = "/sys/devices/platform/serial8250/uevent";

/// The fake module's index and modprobe.d, and a configuration for the daemon with its control
/// socket in the same temporary directory.
struct Setup {
    module: FakeModule,
}

impl Setup {
    fn new() -> Setup {
        let module = FakeModule::new();
        std::fs::write(
            module.path().join("devmgr.toml"),
            format!(
                "[loader]\nmodule_dir = {:?}\nmodprobe_d = [{:?}]\ncmdline = \"\"\n\
                 [coldplug]\nsettle_quiet = \"100ms\"\n[control]\nsocket = {:?}\n",
                module.module_dir().display().to_string(),
                module.modprobe_d().display().to_string(),
                module.path().join("run/control").display().to_string()
            ),
        )
        .expect("config");
        Setup { module }
    }

    fn config(&self) -> PathBuf {
        self.module.path().join("devmgr.toml")
    }

    fn socket(&self) -> PathBuf {
        self.module.path().join("run/control")
    }

    fn set_delay(&self, seconds: u32) {
        self.module.set_delay(seconds);
    }

    fn marks(&self) -> usize {
        self.module.marks()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.module.path().join("stderr")).unwrap_or_default()
    }

    /// Starts `devmgr run` (loading for real), returns once it has settled.
    fn start(&self) -> Daemon {
        let mut child = Command::new(DEVMGR)
            .arg("run")
            .arg("--config")
            .arg(self.config())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(self.module.path().join("stderr"))
                    .map(Stdio::from)
                    .expect("stderr file"),
            )
            .spawn()
            .expect("spawn devmgr run");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let daemon = Daemon { child, lines };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match daemon.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("devmgr: settled after") => break,
                Ok(_) => {}
                Err(_) => panic!("devmgr run did not settle within 60 s:\n{}", self.stderr()),
            }
        }
        daemon
    }

    /// Runs `devmgr settle ARGS`; its output and how long it took.
    fn settle(&self, args: &[&str]) -> (Output, Duration) {
        let started = Instant::now();
        let out = Command::new(DEVMGR)
            .arg("settle")
            .arg("--config")
            .arg(self.config())
            .args(args)
            .output()
            .expect("run devmgr settle");
        (out, started.elapsed())
    }
}

/// A running `devmgr run`, stopped with SIGTERM when dropped.
struct Daemon {
    child: Child,
    /// The daemon's stdout, line by line (kept: a closed pipe would end the daemon).
    lines: Receiver<String>,
}

impl Daemon {
    fn stop(&mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.child.wait().expect("devmgr run exits")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Whether a test that runs the daemon against the real kernel can run here.
fn root(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        skip_or_fail(test, "needs root (writes /sys/devices/**/uevent)");
        return false;
    }
    if !Path::new(SERIAL_UEVENT).exists() {
        skip_or_fail(test, &format!("no {SERIAL_UEVENT}"));
        return false;
    }
    true
}

fn trigger_serial_add() {
    std::fs::write(SERIAL_UEVENT, "add").expect("write the serial port's uevent");
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn settle_returns_0_once_the_daemons_loader_has_handled_the_real_events() {
    let test = "settle_returns_0_once_the_loader_has_handled_the_events";
    if !root(test) {
        return;
    }
    let _kernel = kernel_lock();
    let setup = Setup::new();
    let _daemon = setup.start();
    // Nothing pending: settle answers at once.
    let (out, took) = setup.settle(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(2), "idle settle took {took:?}");

    setup.set_delay(2);
    let before = setup.marks();
    trigger_serial_add();
    let (out, took) = setup.settle(&["--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "quiet on success"
    );
    assert!(
        setup.marks() > before,
        "settle returned before the load plan of the event ended"
    );
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    eprintln!("{test}: settle returned after {took:?} (the load took 2 s)");
}

#[test]
fn seqnums_that_never_reach_the_daemon_do_not_hold_settle() {
    let test = "seqnums_that_never_reach_the_daemon_do_not_hold_settle";
    if !root(test) {
        return;
    }
    let _kernel = kernel_lock();
    let setup = Setup::new();
    let _daemon = setup.start();
    setup.set_delay(2);
    let before = setup.marks();
    trigger_serial_add();
    // A new network namespace: its loopback device's events take seqnums but go only to
    // sockets in that namespace, so the kernel's seqnum is one the daemon never sees.
    let seqnum = || {
        std::fs::read_to_string("/sys/kernel/uevent_seqnum")
            .expect("seqnum")
            .trim()
            .parse::<u64>()
            .expect("number")
    };
    let ours = seqnum();
    let unshared = Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .expect("run unshare (util-linux)");
    assert!(unshared.success(), "unshare --net true: {unshared}");
    assert!(seqnum() > ours, "the new namespace took seqnums");
    let (out, took) = setup.settle(&["--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(setup.marks() > before, "returned before the plan ended");
    assert!(took < Duration::from_secs(30), "{took:?}");
    eprintln!(
        "{test}: seqnums {}..={} never reached the daemon; settle took {took:?}",
        ours + 1,
        seqnum()
    );
}

#[test]
fn settle_times_out_with_exit_1_naming_the_plan_still_running() {
    let test = "settle_times_out_with_exit_1_naming_the_plan_still_running";
    if !root(test) {
        return;
    }
    let _kernel = kernel_lock();
    let setup = Setup::new();
    let _daemon = setup.start();
    setup.set_delay(5);
    trigger_serial_add();
    let (out, took) = setup.settle(&["--timeout", "500ms"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("devmgr settle: timed out after 500ms: "),
        "{stderr}"
    );
    assert!(stderr.contains("not handled yet"), "{stderr}");
    assert!(
        stderr.contains("platform:serial8250 loading devmgr_settle_test for "),
        "the plan and its module are named: {stderr}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    eprintln!("{test}: {}", stderr.trim_end());
    // Asked again with time enough, it ends once the plan did.
    let before = setup.marks();
    let (out, _) = setup.settle(&["--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(setup.marks() > before);
}

#[test]
fn the_daemon_replaces_a_stale_socket_refuses_a_second_daemon_and_removes_its_socket() {
    use std::os::unix::fs::PermissionsExt;

    let test = "the_daemon_replaces_a_stale_socket_and_refuses_a_second_daemon";
    if !root(test) {
        return;
    }
    let _kernel = kernel_lock();
    let setup = Setup::new();
    // A daemon that crashed left its socket.
    std::fs::create_dir_all(setup.socket().parent().expect("parent")).expect("mkdir");
    drop(std::os::unix::net::UnixListener::bind(setup.socket()).expect("bind"));
    let (out, _) = setup.settle(&[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no devmgr daemon is running"),
        "{}",
        text(&out.stderr)
    );

    let mut daemon = setup.start();
    let mode = std::fs::metadata(setup.socket())
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert!(
        setup
            .stderr()
            .contains("replacing the stale control socket")
    );
    let (out, _) = setup.settle(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let second = Command::new(DEVMGR)
        .arg("run")
        .arg("--config")
        .arg(setup.config())
        .arg("--dry-run")
        .output()
        .expect("run a second devmgr");
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("another devmgr is running"),
        "{}",
        text(&second.stderr)
    );
    assert!(second.stdout.is_empty(), "it started nothing");

    assert!(daemon.stop().success());
    assert!(!setup.socket().exists(), "removed at exit");
    let (out, _) = setup.settle(&[]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn settle_without_a_daemon_exits_3_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("control");
    let run = |args: &[&str]| {
        Command::new(DEVMGR)
            .arg("settle")
            .args(args)
            .output()
            .expect("run devmgr settle")
    };
    let out = run(&["--socket", missing.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        text(&out.stderr),
        format!(
            "devmgr settle: no devmgr daemon is running: {}: no control socket\n",
            missing.display()
        )
    );
    let config = dir.path().join("devmgr.toml");
    std::fs::write(&config, "[control]\nsocket = \"\"\n").expect("config");
    let out = run(&["--config", config.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("no control socket (control.socket = \"\")"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn settle_with_bad_arguments_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_config = dir.path().join("devmgr.toml");
    std::fs::write(&bad_config, "[control]\nsocket = \"relative\"\n").expect("config");
    let bad_config = bad_config.to_str().expect("utf8");
    for (args, says) in [
        (&["--timeout", "0"][..], "--timeout"),
        (&["--timeout", "2h"], "is not between 1ms and 3600s"),
        (&["--timeout", "soon"], "--timeout"),
        (
            &["--config", "/nonexistent/devmgr.toml"],
            "devmgr settle: bad configuration: /nonexistent/devmgr.toml:?: cannot read",
        ),
        (
            &["--config", bad_config],
            "devmgr settle: bad configuration: ",
        ),
        (
            &["--config", bad_config, "--socket", "/tmp/x"],
            "cannot be used with",
        ),
        (&["extra"], "unexpected argument 'extra'"),
    ] {
        let out = Command::new(DEVMGR)
            .arg("settle")
            .args(args)
            .output()
            .expect("run devmgr settle");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
