//! The example agent as a process on the host (root; dry run, nothing is loaded) against the
//! real `/sys` and uevent socket, with Debian's 6.12 module index from `scripts/kernels`: it
//! settles, then reports the real `add` events written into a network interface's and a block
//! device's `uevent` files, and stops cleanly on SIGTERM.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use test_support::skip_or_fail;

/// The agent's stdout, line by line, as it comes.
struct Output {
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Output {
    /// Waits (at most `timeout`) until `count` lines equal to `line` have been printed.
    fn wait_for(&mut self, line: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.count(line) < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => return false,
            }
        }
        true
    }

    fn count(&self, line: &str) -> usize {
        self.seen.iter().filter(|l| *l == line).count()
    }
}

/// Kills the agent if the test fails half-way.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_agent_reports_real_net_and_block_adds_in_dry_run() {
    let test = "the_agent_reports_real_net_and_block_adds_in_dry_run";
    if !nix::unistd::geteuid().is_root() {
        return skip_or_fail(test, "needs root (writes /sys/devices/**/uevent)");
    }
    let modules = match test_support::kernel("6.12.") {
        Ok(kernel) => kernel.module_dir(),
        Err(why) => return skip_or_fail(test, &why),
    };
    // A network interface and a block device that every host has (loop0 needs the loop
    // driver; without it only the interface is checked).
    let mut devices = vec![("net", "lo", PathBuf::from("/sys/class/net/lo"))];
    let loop0 = Path::new("/sys/devices/virtual/block/loop0");
    if loop0.exists() {
        devices.push(("block", "loop0", loop0.to_path_buf()));
    } else {
        eprintln!("{test}: no {}, block devices not checked", loop0.display());
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("node-agent.toml");
    let control = dir.path().join("control");
    std::fs::write(
        &config,
        format!(
            "[agent]\ndry_run = true\nreport = [\"net\", \"block\"]\n\n\
             [devmgr.loader]\nmodule_dir = {modules:?}\ncmdline = \"\"\n\n\
             [devmgr.coldplug]\nsettle_quiet = \"100ms\"\n\n\
             [devmgr.control]\nsocket = {control:?}\n"
        ),
    )
    .expect("write the agent's configuration");
    let log = dir.path().join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("the agent starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut agent = Agent(child);
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut out = Output {
        lines,
        seen: Vec::new(),
    };
    let failed = |out: &Output, what: &str| -> ! {
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        panic!(
            "{what}\nstdout:\n{}\nstderr (last lines):\n{}",
            out.seen.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )
    };

    // Settled: the replay of every device has been answered.
    let deadline = Instant::now() + Duration::from_secs(90);
    while !out.seen.iter().any(|l| l.starts_with("devmgr settled")) {
        match out
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(l) => out.seen.push(l),
            Err(mpsc::RecvTimeoutError::Timeout) => failed(
                &out,
                "the agent did not print `devmgr settled…` within 90 s",
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = agent.0.wait().expect("wait");
                failed(
                    &out,
                    &format!("the agent exited ({status}) before it settled"),
                )
            }
        }
    }

    // `devmgr settle` can ask the agent: its control socket is there.
    if !control.exists() {
        failed(&out, &format!("no control socket at {}", control.display()));
    }

    // A real `add` for each device, reported once more than before the write.
    for (subsystem, name, path) in &devices {
        let line = format!("{subsystem} {name} added");
        // Let the replay's events of this device come through first.
        std::thread::sleep(Duration::from_millis(300));
        while let Ok(l) = out.lines.try_recv() {
            out.seen.push(l);
        }
        let before = out.count(&line);
        std::fs::write(path.join("uevent"), "add").expect("write uevent");
        if !out.wait_for(&line, before + 1, Duration::from_secs(30)) {
            failed(
                &out,
                &format!(
                    "no `{line}` within 30 s of writing add to {}",
                    path.display()
                ),
            );
        }
    }

    // SIGTERM: the tree shuts down and the agent exits 0.
    let pid = nix::unistd::Pid::from_raw(agent.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = agent.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            failed(&out, "the agent did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if !status.success() {
        failed(&out, &format!("the agent exited with {status}"));
    }
}

#[test]
fn the_shipped_configuration_is_valid() {
    // The binary checks its file before anything starts (`--check`): exit 0 and no output on
    // stderr for the file a newcomer copies.
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/node-agent.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .args(["--check", shipped])
        .output()
        .expect("the agent runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bad value is refused with the line of the agent's file that holds it.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[agent]\nreport = [\"net\"]\n[devmgr.coldplug]\nsettle_quiet = \"2h\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_node-agent"))
        .arg("--check")
        .arg(&bad)
        .output()
        .expect("the agent runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "{}:4: devmgr.coldplug.settle_quiet",
            bad.display()
        )),
        "{stderr}"
    );
}
