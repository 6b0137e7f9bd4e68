//! `devmgr run` end to end on the build machine: the real `/sys`, the real uevent socket, a
//! Debian module index from the cache (`scripts/kernels`), nothing loaded (`--dry-run`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DEVMGR: &str = env!("CARGO_BIN_EXE_devmgr");

mod common;
use common::{kernel_lock, root_with_index, skip_or_fail};

fn run(config: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    command(dir.path(), config, extra)
        .output()
        .expect("run devmgr")
}

/// Like [`run`], but a devmgr that has not exited within `limit` is killed and the test fails
/// with the end of what it wrote to stderr (instead of waiting for it forever).
fn run_within(config: &str, extra: &[&str], limit: Duration) -> Output {
    use std::io::Read;
    use std::process::Stdio;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = command(dir.path(), config, extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn devmgr");
    // Drained while devmgr runs: one that keeps going may write more than a pipe holds.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for devmgr") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let Some(status) = status else {
        let stderr = String::from_utf8_lossy(&stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        panic!(
            "devmgr run did not exit within {limit:?} (killed); the last lines of its stderr:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

/// `devmgr run --config <config> <extra>`, the configuration written into `dir` with a control
/// socket of its own there: another devmgr (a test run beside this one, the machine's device
/// manager) may hold the default one.
fn command(dir: &Path, config: &str, extra: &[&str]) -> Command {
    let path = dir.join("devmgr.toml");
    let config = format!(
        "{config}\n[control]\nsocket = {:?}\n",
        dir.join("control").display().to_string()
    );
    std::fs::write(&path, config).expect("config");
    let mut command = Command::new(DEVMGR);
    command
        .arg("run")
        .arg("--config")
        .arg(&path)
        .args(extra)
        .env("RUST_LOG", "info");
    command
}

/// Every modalias of a device the kernel announces (regular `uevent`, `subsystem` link).
fn sys_modaliases() -> Vec<String> {
    coldplug::walk::devices(Path::new("/sys"), coldplug::walk::Select::WithModalias)
        .devices
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("modalias")).ok())
        .map(|m| m.trim_end_matches('\n').to_owned())
        .collect()
}

#[test]
fn dry_run_coldplugs_the_real_sys_settles_and_plans_every_device_with_a_modalias() {
    let test = "dry_run_coldplugs_the_real_sys";
    let Some((_kernel, dir)) = root_with_index(test) else {
        return;
    };
    let config = format!(
        "[loader]\nmodule_dir = {:?}\ncmdline = \"\"\n",
        dir.display().to_string()
    );
    let out = run(&config, &["--dry-run", "--exit-when-settled"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("devmgr: settled after")),
        "no settle line: {stdout}"
    );
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("devmgr: coldplug: "))
        .unwrap_or_else(|| panic!("no coldplug summary: {stdout}"));
    // "N devices, N replayed, N answered, 0 gone, 0 failed, 0 unanswered, replay took …"
    let numbers: Vec<u64> = summary
        .trim_start_matches("devmgr: coldplug: ")
        .split(", ")
        .filter_map(|part| part.split(' ').next()?.parse().ok())
        .collect();
    assert!(numbers.len() == 6 && numbers[0] > 100, "{summary}");
    assert_eq!(
        numbers[1], numbers[2],
        "every replayed device answered: {summary}"
    );
    assert_eq!(numbers[5], 0, "{summary}");
    assert!(stdout.contains("devmgr: loader (dry run):"), "{stdout}");
    assert!(
        stdout.contains(" 0 modules loaded ("),
        "a dry run loads nothing: {stdout}"
    );

    let modaliases = sys_modaliases();
    assert!(!modaliases.is_empty());
    for modalias in &modaliases {
        let planned = stderr.lines().any(|l| {
            (l.contains("would load") || l.contains("nothing to load"))
                && l.contains(&format!("modalias={modalias}"))
        });
        assert!(planned, "no plan reported for {modalias}");
    }
    eprintln!("{summary}; {} modaliases planned", modaliases.len());
}

#[test]
fn a_bad_configuration_exits_2_naming_the_line_and_starts_nothing() {
    let out = run("[coldplug]\npacing = \"sometimes\"\n", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("devmgr.toml:2:"), "{stderr}");
    assert!(stderr.contains("pacing"), "{stderr}");
    assert!(
        !stderr.contains("listening for kernel uevents"),
        "half-started: {stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_receive_buffer_that_cannot_hold_one_pacing_window_fails_the_start() {
    // 16 KiB effective (the kernel doubles 8 KiB) for a window of 65,536 events. Bounded: were
    // the check before the start gone, the supervisor would restart the listener forever.
    let out = run_within(
        "[listener]\nreceive_buffer = 8192\n[coldplug]\npacing = 65536\n",
        &["--dry-run", "--exit-when-settled"],
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen for uevents"), "{stderr}");
    assert!(stderr.contains("pacing window of 65536"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing started");
}

#[test]
fn without_a_module_index_it_settles_without_loading_and_says_so() {
    let test = "without_a_module_index_it_settles_without_loading";
    if !nix::unistd::geteuid().is_root() {
        return skip_or_fail(test, "needs root (writes /sys/devices/**/uevent)");
    }
    let _kernel = kernel_lock();
    let out = run(
        "[loader]\nmodule_dir = \"/nonexistent/devmgr/modules\"\n",
        &["--exit-when-settled"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("module loading waits"), "{stderr}");
    assert!(stdout.contains("devmgr: settled after"), "{stdout}");
    assert!(
        stdout.contains("devmgr: loader: module loading waits for the module index"),
        "{stdout}"
    );
}

#[test]
fn a_corrupt_index_falls_back_or_disables_loading_with_a_message() {
    let test = "a_corrupt_index_disables_loading";
    if !nix::unistd::geteuid().is_root() {
        return skip_or_fail(test, "needs root (writes /sys/devices/**/uevent)");
    }
    let _kernel = kernel_lock();
    // A module directory whose indexes are all garbage: no usable text fallback either.
    let dir = tempfile::tempdir().expect("tempdir");
    for file in [
        "modules.dep",
        "modules.dep.bin",
        "modules.alias",
        "modules.alias.bin",
    ] {
        std::fs::write(dir.path().join(file), b"\xB0\x07\xF4\x57garbage\x00\xff").expect("write");
    }
    let config = format!(
        "[loader]\nmodule_dir = {:?}\n",
        dir.path().display().to_string()
    );
    let out = run(&config, &["--exit-when-settled", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("module loading waits"), "{stderr}");
    assert!(stdout.contains("devmgr: settled after"), "{stdout}");
}

#[test]
fn a_module_index_that_appears_after_the_start_is_used_and_every_device_replayed_to_it() {
    use std::time::{Duration, Instant};

    let test = "a_module_index_that_appears_late_is_used";
    let Some((_kernel, dir)) = root_with_index(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    // The modules are on a file system mounted later: the directory is not there at start.
    let late = tmp.path().join("modules");
    let (mut child, lines) = spawn_dry_run(tmp.path(), &late, &[]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let wait_line = |want: &dyn Fn(&str) -> bool, what: &str| -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        panic!("no {what} line within 60 s");
    };
    wait_line(&|l| l.starts_with("devmgr: settled after"), "settled");
    // The index appears (copied: the dry run needs the index files only) and nothing is
    // replugged: devmgr must find it by itself and replay every device with a modalias.
    std::fs::create_dir(&late).expect("mkdir");
    for entry in std::fs::read_dir(&dir).expect("module dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("modules.") && entry.path().is_file() {
            std::fs::copy(entry.path(), late.join(&name)).expect("copy index file");
        }
    }
    let want = sys_modaliases().len() as u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    let lookups = loop {
        std::thread::sleep(Duration::from_millis(500));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("USR1");
        let line = wait_line(&|l| l.starts_with("devmgr: loader"), "loader summary");
        let lookups = number_after(&line, "devmgr: loader (dry run): ").unwrap_or(0);
        if lookups >= want || Instant::now() > deadline {
            break (lookups, line);
        }
    };
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("TERM");
    let status = child.wait().expect("exit");
    let stderr = std::fs::read_to_string(tmp.path().join("stderr")).unwrap_or_default();
    assert!(
        lookups.0 >= want,
        "{want} devices with a modalias, but after the index appeared: {}\n{stderr}",
        lookups.1
    );
    assert!(status.success(), "{status}");
}

#[test]
fn run_tells_the_service_manager_when_settled_summarises_on_sigusr1_and_stops_on_sigterm() {
    use std::os::unix::net::UnixDatagram;
    use std::time::Duration;

    let test = "run_notifies_and_summarises";
    let Some((_kernel, dir)) = root_with_index(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let socket_path = tmp.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let (mut child, lines) = spawn_dry_run(tmp.path(), &dir, &[("NOTIFY_SOCKET", &socket_path)]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let mut buf = [0u8; 512];

    let n = socket.recv(&mut buf).expect("a notification within 60 s");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        ready.starts_with("READY=1\nSTATUS=settled after "),
        "{ready:?}"
    );
    // The summary printed at settling, then again on SIGUSR1.
    let mut summaries = 0;
    let mut seen = Vec::new();
    while summaries < 2 {
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("summary lines so far: {seen:#?}"));
        if line.starts_with("devmgr: coldplug: ") {
            summaries += 1;
            if summaries == 1 {
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("USR1");
            }
        }
        seen.push(line);
    }
    assert!(
        seen.iter().any(|l| l.starts_with("devmgr: listener: ")),
        "{seen:#?}"
    );
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("TERM");
    let n = socket.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status}");
}

/// Starts `devmgr run --dry-run` with the 6.12 index, stdout lines on a channel, stderr into
/// `config_dir/stderr`.
fn spawn_dry_run(
    config_dir: &Path,
    dir: &Path,
    envs: &[(&str, &Path)],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let config = config_dir.join("devmgr.toml");
    std::fs::write(
        &config,
        format!(
            "[loader]\nmodule_dir = {:?}\ncmdline = \"\"\n[control]\nsocket = {:?}\n",
            dir.display().to_string(),
            config_dir.join("control").display().to_string()
        ),
    )
    .expect("config");
    let mut child = Command::new(DEVMGR)
        .args(["run", "--dry-run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .envs(envs.iter().copied())
        .stderr(
            std::fs::File::create(config_dir.join("stderr"))
                .map(std::process::Stdio::from)
                .expect("stderr file"),
        )
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn devmgr");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The first number after `prefix` in `line`.
fn number_after(line: &str, prefix: &str) -> Option<u64> {
    line.strip_prefix(prefix)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn memory_stays_bounded_over_100000_real_events() {
    use std::io::Write;
    use std::time::{Duration, Instant};

    const EVENTS: u64 = 100_000;
    let test = "memory_stays_bounded_over_100000_real_events";
    let Some((_kernel, dir)) = root_with_index(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let (mut child, lines) = spawn_dry_run(tmp.path(), &dir, &[]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let next = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {what} from devmgr within 60 s"))
    };
    // Settled: the summary ends with the memory line.
    let mut received = 0;
    let settled_rss = loop {
        let line = next("summary");
        if let Some(n) = number_after(&line, "devmgr: listener: ") {
            received = n;
        }
        if let Some(kib) = number_after(&line, "devmgr: peak RSS ") {
            break kib;
        }
    };
    let started = Instant::now();
    let uevent = "/sys/devices/platform/serial8250/uevent";
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(uevent)
        .expect("open uevent");
    for _ in 0..EVENTS {
        file.write_all(b"add").expect("trigger");
    }
    let written = started.elapsed();
    // Ask for summaries until the listener has seen them all.
    let target = received + EVENTS;
    let (mut peak, mut overruns) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while received < target {
        assert!(
            Instant::now() < deadline,
            "{received} of {target} events received"
        );
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("USR1");
        loop {
            let line = next("summary");
            if let Some(n) = number_after(&line, "devmgr: listener: ") {
                received = n;
                overruns = line
                    .split(", ")
                    .find_map(|p| p.strip_suffix(" overruns")?.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            if let Some(kib) = number_after(&line, "devmgr: peak RSS ") {
                peak = kib;
                break;
            }
        }
        if overruns > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("TERM");
    assert!(child.wait().expect("exit").success());
    assert_eq!(overruns, 0, "the 128 MiB buffer took {EVENTS} events");
    // Bounded: 100,000 events held or leaked would take far more than this.
    assert!(
        peak <= settled_rss + 8 * 1024,
        "peak RSS grew from {settled_rss} KiB to {peak} KiB over {EVENTS} events"
    );
    let _ = writeln!(
        std::io::stderr(),
        "{test}: peak RSS {settled_rss} KiB when settled, {peak} KiB after {EVENTS} events \
         (written in {written:?}, all received)"
    );
}

#[test]
fn a_flood_of_forged_and_malformed_datagrams_during_coldplug_is_never_accepted() {
    use listener::flood::{FORGED_MODALIAS, flood, uevent_listener_ports};
    use std::io::Write;
    use std::time::{Duration, Instant};

    const EACH: usize = 10_000;
    let test = "a_flood_of_forged_and_malformed_datagrams";
    let Some((_kernel, dir)) = root_with_index(test) else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let before = uevent_listener_ports(0);
    let log = Path::new("info");
    let (mut child, lines) = spawn_dry_run(tmp.path(), &dir, &[("RUST_LOG", log)]);
    // Flood as soon as devmgr's socket is bound, so the flood overlaps its coldplug.
    let deadline = Instant::now() + Duration::from_secs(10);
    let ports = loop {
        let new: Vec<u32> = uevent_listener_ports(0)
            .into_iter()
            .filter(|p| !before.contains(p))
            .collect();
        if !new.is_empty() {
            break new;
        }
        assert!(Instant::now() < deadline, "devmgr's socket never appeared");
        std::thread::sleep(Duration::from_millis(1));
    };
    let report = flood(EACH, &ports).expect("flood");
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a summary line within 60 s")
    };
    let mut summary = Vec::new();
    // The summary at settling, then one asked for after the flood.
    while !summary
        .iter()
        .any(|l: &String| l.starts_with("devmgr: peak RSS"))
    {
        summary.push(next());
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("USR1");
    let mut after = Vec::new();
    while !after
        .iter()
        .any(|l: &String| l.starts_with("devmgr: peak RSS"))
    {
        after.push(next());
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("TERM");
    assert!(child.wait().expect("exit").success());
    let stderr = std::fs::read_to_string(tmp.path().join("stderr")).expect("stderr");

    assert_eq!(report.sent, [EACH as u64; 4], "{report:?}");
    assert!(!report.ports.is_empty(), "devmgr's port was unicast to");
    assert!(
        !stderr.contains(FORGED_MODALIAS),
        "a forged event reached the loader"
    );
    let coldplug = summary
        .iter()
        .find(|l| l.starts_with("devmgr: coldplug: "))
        .expect("coldplug line");
    let numbers: Vec<u64> = coldplug
        .trim_start_matches("devmgr: coldplug: ")
        .split(", ")
        .filter_map(|p| p.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(
        numbers.get(1),
        numbers.get(2),
        "every write answered: {coldplug}"
    );
    let listener = after
        .iter()
        .find(|l| l.starts_with("devmgr: listener: "))
        .expect("listener line");
    let count = |what: &str| {
        listener
            .trim_start_matches("devmgr: listener: ")
            .split(", ")
            .find_map(|p| p.strip_suffix(what)?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {what:?} in {listener}"))
    };
    if count("overruns") == 0 {
        assert!(
            count("dropped") >= 4 * EACH as u64,
            "every forgery read was dropped: {listener}; flood: {report:?}; at settling: {summary:?}"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{test}: sent {:?} (multicast, unicast, bad header, oversize) to ports {:?}; {listener}; {}",
        report.sent,
        report.ports,
        after.last().map_or("", String::as_str)
    );
}
