//! The cost of certainty: a full coldplug that waits until every replayed event came back,
//! next to the bare walk + write that udevadm trigger (without --settle) does.
//!
//! Needs root and the real `/sys` (it writes `add` into every device's `uevent` file); prints
//! why and exits 0 otherwise. Run with `cargo bench -p coldplug --bench coldplug`; figures in
//! `crates/coldplug/BENCH.md`.

use std::path::Path;
use std::time::{Duration, Instant};

use coldplug::walk::{Select, list};
use coldplug::{Coldplug, ColdplugArgs, ColdplugConfig, ColdplugMsg, Pass, PassKind, UuidSource};
use listener::{Listener, ListenerConfig};
use ractor::{Actor, call_t};

const ROUNDS: usize = 11;

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Walk + write every device, no listener, no waiting.
fn bare(sysfs: &Path) -> (Duration, usize) {
    let start = Instant::now();
    let walk = list(sysfs, Select::All);
    let mut pass = Pass::new(PassKind::Coldplug, sysfs, walk, None);
    let written = pass.pump(&mut UuidSource::new(Path::new(
        "/proc/sys/kernel/random/uuid",
    )));
    (start.elapsed(), written)
}

fn main() {
    if !nix::unistd::geteuid().is_root() || !Path::new("/sys/devices/platform").exists() {
        test_support::skip_or_fail("coldplug bench", "it needs root and the real /sys");
        return;
    }
    let sysfs = Path::new("/sys");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (listener, _) = Actor::spawn(None, Listener, ListenerConfig::default())
            .await
            .expect("listener");
        let mut bare_times = Vec::new();
        let mut full_times = Vec::new();
        let mut devices_written = 0;
        for _ in 0..ROUNDS {
            let (t, n) = bare(sysfs);
            bare_times.push(t);
            devices_written = n;
            // Let the bare round's events drain before the timed full round.
            tokio::time::sleep(Duration::from_millis(200)).await;

            let start = Instant::now();
            let args = ColdplugArgs {
                config: ColdplugConfig::default(),
                listener: listener.clone(),
                on_settled: None,
            };
            let (coldplug, _) = Actor::spawn(None, Coldplug, args).await.expect("coldplug");
            let report = call_t!(coldplug, ColdplugMsg::WaitSettled, 60_000).expect("settled");
            full_times.push(start.elapsed());
            assert!(report.settled && report.answered == report.written);
            coldplug.stop(None);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (bare, full) = (median(bare_times), median(full_times));
        println!("devices replayed: {devices_written}");
        println!("bare walk + write (no settle):      median {bare:?} over {ROUNDS} rounds");
        println!("coldplug + settle (every uuid back): median {full:?} over {ROUNDS} rounds");
        println!(
            "cost of certainty: {:.2}x the bare replay",
            full.as_secs_f64() / bare.as_secs_f64()
        );
        listener.stop(None);
    });
}
