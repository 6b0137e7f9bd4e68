//! Coldplug of a huge `/sys` (issue #16): on generated trees of 1,000, 10,000 and 100,000
//! devices (`tests/huge_sysfs`), the time and the peak heap per device of the walk and of the
//! replay (the walk, then a write into every device's `uevent`, each answered at once as the
//! kernel would; paced as the daemon does, and unpaced), and, in the same run and on the same
//! tree, `udevadm trigger --dry-run --verbose` next to devmgr's walk in the same wrapper: a
//! private mount namespace with the tree bind-mounted over `/sys`.
//!
//! Run with `cargo bench -p coldplug --bench huge_sysfs` (root for the udevadm part: it needs
//! `unshare -m` and `mount`; without root or udevadm that part is skipped and says why).
//! `COLDPLUG_BENCH_SIZES=1000,10000` picks the sizes; `COLDPLUG_TREE_DIR` where the trees go
//! (default `/dev/shm`). Figures and their reading: `crates/coldplug/BENCH.md`.
#![allow(unsafe_code)]

#[path = "../tests/huge_sysfs/mod.rs"]
mod huge_sysfs;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldplug::walk::{Select, list};
use huge_sysfs::{heap, replay};

/// Where the wrapper mounts the tree and what runs there, after `sh -c SCRIPT sh TREE`.
const WRAPPER: &str = r#"mount --bind "$1" /sys && shift && exec "$@""#;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// Runs `command` in a private mount namespace with `tree` bind-mounted over `/sys`; returns
/// its wall time (wrapper included) and how many lines it printed.
fn in_namespace(tree: &Path, command: &[&str], env: &[(&str, &str)]) -> (Duration, usize) {
    let start = Instant::now();
    let mut child = Command::new("unshare")
        .args(["-m", "sh", "-c", WRAPPER, "sh"])
        .arg(tree)
        .args(command)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare runs");
    let stdout = child.stdout.take().expect("stdout");
    let lines = BufReader::new(stdout).split(b'\n').count();
    let status = child.wait().expect("wait");
    let took = start.elapsed();
    assert!(status.success(), "{command:?} in the namespace: {status}");
    (took, lines)
}

/// Why the udevadm comparison cannot run here, if it cannot.
fn udevadm_missing() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (it needs unshare -m and mount)".into());
    }
    let works = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !works("udevadm", "--version") {
        return Some("udevadm is not installed (Debian: apt-get install udev)".into());
    }
    if !works("unshare", "--version") {
        return Some("unshare is not installed".into());
    }
    None
}

/// The child run in the namespace: devmgr's walk of `sysfs` (the daemon's, compact), printing
/// every device found as `udevadm trigger --verbose` does.
fn walk_child(sysfs: &Path) {
    let listing = list(sysfs, Select::All);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for dir in &listing.devices {
        let _ = out.write_all(dir.as_os_str().as_encoded_bytes());
        let _ = out.write_all(b"\n");
    }
}

struct Row {
    devices: usize,
    shape: huge_sysfs::Shape,
    directories: usize,
    build: Duration,
    rounds: usize,
    before: Duration,
    before_peak: usize,
    walk: Duration,
    walk_peak: usize,
    list_bytes: usize,
    paced: Duration,
    paced_peak: usize,
    unpaced: Duration,
    unpaced_peak: usize,
    udevadm: Option<Udevadm>,
}

struct Udevadm {
    udevadm: Duration,
    devmgr: Duration,
    baseline: Duration,
}

fn per_device(d: Duration, n: usize) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6 / n as f64)
}

fn bytes_per_device(b: usize, n: usize) -> String {
    format!("{:.1} B", b as f64 / n as f64)
}

fn measure(n: usize, udevadm: bool, exe: &Path) -> Row {
    let tmp = huge_sysfs::tempdir();
    let root = tmp.path();
    let start = Instant::now();
    let shape = huge_sysfs::build(root, n).expect("the tree");
    let build = start.elapsed();
    let directories = huge_sysfs::count_directories(root);
    let uuid_file = huge_sysfs::uuid_file(root);
    let rounds = match n {
        0..=1_000 => 21,
        1_001..=10_000 => 9,
        _ => 5,
    };
    // Warm up the caches (the tree was just written; the first walk also fills the dentries).
    let _ = list(root, Select::All);
    let _ = replay(root, &uuid_file, Some(1024));

    let (mut walk, mut paced, mut unpaced) = (Vec::new(), Vec::new(), Vec::new());
    let (mut walk_peak, mut paced_peak, mut unpaced_peak, mut list_bytes) = (0, 0, 0, 0);
    let (mut before, mut before_peak) = (Vec::new(), 0);
    let (mut u_times, mut d_times, mut b_times) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        // The walk as it was before issue #16: walkdir, `lstat`s, a `Vec<PathBuf>`.
        let start = Instant::now();
        let ((found, _), peak) = heap::peak_during(|| huge_sysfs::reference(root, |_| true));
        before.push(start.elapsed());
        assert_eq!(found.len(), n);
        before_peak = before_peak.max(peak);
        drop(found);

        let start = Instant::now();
        let (listing, peak) = heap::peak_during(|| list(root, Select::All));
        walk.push(start.elapsed());
        assert_eq!(listing.devices.len(), n);
        walk_peak = walk_peak.max(peak);
        list_bytes = listing.devices.heap_bytes();
        drop(listing);

        for (window, times, peak_max) in [
            (Some(1024), &mut paced, &mut paced_peak),
            (None, &mut unpaced, &mut unpaced_peak),
        ] {
            let start = Instant::now();
            let (report, peak) = heap::peak_during(|| replay(root, &uuid_file, window));
            times.push(start.elapsed());
            assert!(report.settled && report.answered == n, "{report:?}");
            *peak_max = (*peak_max).max(peak);
        }

        if udevadm {
            let (t, lines) = in_namespace(
                root,
                &["udevadm", "trigger", "--dry-run", "--verbose"],
                &[("SYSTEMD_DEVICE_VERIFY_SYSFS", "0")],
            );
            assert_eq!(lines, n, "udevadm lists every device of the tree");
            u_times.push(t);
            let exe = exe.to_str().expect("UTF-8 path of the bench");
            let (t, lines) = in_namespace(root, &[exe, "--walk", "/sys"], &[]);
            assert_eq!(lines, n, "devmgr's walk lists every device of the tree");
            d_times.push(t);
            let (t, _) = in_namespace(root, &["true"], &[]);
            b_times.push(t);
        }
    }
    Row {
        devices: n,
        shape,
        directories,
        build,
        rounds,
        before: median(before),
        before_peak,
        walk: median(walk),
        walk_peak,
        list_bytes,
        paced: median(paced),
        paced_peak,
        unpaced: median(unpaced),
        unpaced_peak,
        udevadm: udevadm.then(|| Udevadm {
            udevadm: median(u_times),
            devmgr: median(d_times),
            baseline: median(b_times),
        }),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--walk") {
        let sysfs = args.get(i + 1).map_or("/sys", String::as_str);
        walk_child(Path::new(sysfs));
        return;
    }
    let sizes: Vec<usize> = std::env::var("COLDPLUG_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    let missing = udevadm_missing();
    if let Some(why) = &missing {
        test_support::skip_or_fail("huge_sysfs bench's udevadm comparison", why);
    }
    let udevadm_version = Command::new("udevadm")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    let exe = std::env::current_exe().expect("the bench's path");

    let mut rows = Vec::new();
    for &n in &sizes {
        let row = measure(n, missing.is_none(), &exe);
        eprintln!(
            "{n} devices: walk {:?} (before #16: {:?}), paced replay {:?}, unpaced replay {:?} \
             (medians of {})",
            row.walk, row.before, row.paced, row.unpaced, row.rounds
        );
        rows.push(row);
    }

    println!(
        "\nTrees (generated in {}):\n",
        std::env::var("COLDPLUG_TREE_DIR").unwrap_or_else(|_| "/dev/shm".into())
    );
    println!(
        "| devices | with a modalias file | MODALIAS in uevent only | directories under devices/ | deepest | made in | rounds |"
    );
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.2} s | {} |",
            r.devices,
            r.shape.modalias_files,
            r.shape.modalias_in_uevent,
            r.directories,
            r.shape.max_depth,
            r.build.as_secs_f64(),
            r.rounds
        );
    }

    println!("\nPer device (medians; peak heap above what was allocated before):\n");
    println!(
        "| devices | walk before #16: time | peak heap | walk: time | walk: peak heap | list kept | replay paced (window 1024): time | peak heap | replay unpaced: time | peak heap |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let n = r.devices;
        println!(
            "| {n} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            per_device(r.before, n),
            bytes_per_device(r.before_peak, n),
            per_device(r.walk, n),
            bytes_per_device(r.walk_peak, n),
            bytes_per_device(r.list_bytes, n),
            per_device(r.paced, n),
            bytes_per_device(r.paced_peak, n),
            per_device(r.unpaced, n),
            bytes_per_device(r.unpaced_peak, n),
        );
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        let growth = |f: fn(&Row) -> Duration| {
            (f(last).as_secs_f64() / last.devices as f64)
                / (f(first).as_secs_f64() / first.devices as f64)
        };
        println!(
            "\nPer-device time at {} over at {} devices: walk {:.2}x, paced replay {:.2}x, unpaced replay {:.2}x (1.00x: linear)",
            last.devices,
            first.devices,
            growth(|r| r.walk),
            growth(|r| r.paced),
            growth(|r| r.unpaced),
        );
    }

    if missing.is_none() {
        println!(
            "\n`udevadm trigger --dry-run --verbose` ({}) next to devmgr's walk (this bench run with \
             `--walk /sys`, printing every device too), each as `unshare -m sh -c 'mount --bind TREE \
             /sys && exec ...'` (udevadm with SYSTEMD_DEVICE_VERIFY_SYSFS=0); wall time, medians; \
             the wrapper alone (`exec true`) is subtracted in the last columns:\n",
            udevadm_version.as_deref().unwrap_or("?")
        );
        println!(
            "| devices | udevadm | devmgr walk | wrapper alone | ratio udevadm / devmgr | udevadm − wrapper, per device | devmgr − wrapper, per device | ratio without the wrapper |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for r in &rows {
            let Some(u) = &r.udevadm else { continue };
            let n = r.devices;
            let (ue, de) = (
                u.udevadm.saturating_sub(u.baseline),
                u.devmgr.saturating_sub(u.baseline),
            );
            println!(
                "| {n} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}x | {} | {} | {:.2}x |",
                u.udevadm.as_secs_f64() * 1e3,
                u.devmgr.as_secs_f64() * 1e3,
                u.baseline.as_secs_f64() * 1e3,
                u.udevadm.as_secs_f64() / u.devmgr.as_secs_f64(),
                per_device(ue, n),
                per_device(de, n),
                ue.as_secs_f64() / de.as_secs_f64().max(1e-9),
            );
        }
    }
}
