//! `devmgr run`: the daemon. Prints progress once a second until settled, then a summary
//! (devices seen, modules loaded, failures, time to settle, peak memory); prints the summary
//! again on SIGUSR1; tells a service manager when it is ready (`NOTIFY_SOCKET`).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use devmgr::config::Config;
use devmgr::control::ControlSocket;
use devmgr::notify::notify;
use devmgr::observe::Summary;
use devmgr::subsystem::{self, Observer, RunOptions};
use supervisor::{Options, Supervisor};
use tokio::signal::unix::{SignalKind, signal};

use crate::RunArgs;

/// Stack size of the runtime's threads (workers and the blocking pool that runs the loads).
/// The deepest user is a load that decompresses a module in userspace (its decoder's frame is
/// kept out of line: `insert_decompressed`). Not the 2 MiB default: on a kernel with
/// transparent huge pages `always` (Debian's 6.1) a 2 MiB stack that happens to be
/// 2 MiB-aligned is backed by one whole huge page (crates/devmgr/BENCH.md, "Where the memory
/// goes").
const THREAD_STACK: usize = 512 * 1024;

pub(crate) fn run(args: RunArgs) -> ExitCode {
    let started = Instant::now();
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(err) => {
                eprintln!("devmgr: bad configuration: {err}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    crate::logging::init("info");
    // Before the tree starts: a receive buffer that cannot hold one pacing window would make
    // every replay overrun; under the supervisor that start failure would only be retried.
    let checked = listener::UeventSocket::open(config.listener.receive_buffer)
        .map_err(|err| err.to_string())
        .and_then(|socket| {
            let window = devmgr::subsystem::pacing_window(config.coldplug.pacing);
            listener::check_window(socket.receive_buffer(), window).map_err(|err| err.to_string())
        });
    if let Err(err) = checked {
        eprintln!("devmgr: cannot listen for uevents: {err}");
        return ExitCode::FAILURE;
    }
    // Before anything starts: a second daemon stops here.
    let control = match &config.control.socket {
        Some(path) => match ControlSocket::bind(path) {
            Ok(socket) => Some(socket),
            Err(err) => {
                eprintln!("devmgr: cannot open the control socket: {err}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // Before the runtime's threads exist (see crate::malloc).
    if !crate::malloc::limit_arenas(1) {
        tracing::debug!("malloc arenas not limited (not glibc, or glibc refused)");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(THREAD_STACK)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("devmgr: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(config, args, started, control))
}

async fn serve(
    config: Config,
    args: RunArgs,
    started: Instant,
    control: Option<ControlSocket>,
) -> ExitCode {
    #[allow(unused_mut)]
    let mut options = RunOptions {
        dry_run: args.dry_run,
        ..RunOptions::default()
    };
    // Stress tests: a loader with a small queue that stops taking events for a while.
    #[cfg(feature = "fault-injection")]
    if let Ok(Ok(plan)) =
        std::env::var("DEVMGR_FAULTS").map(|p| devmgr::faults::FaultPlan::parse(&p))
    {
        if let Some(capacity) = plan.loader_capacity {
            options.loader_capacity = capacity;
        }
        options.loader_stall = plan.loader_stall;
    }
    let policy = match subsystem::root_policy(&config.restart) {
        Ok(policy) => policy,
        Err(err) => {
            eprintln!("devmgr: bad restart policy: {err}");
            return ExitCode::from(2);
        }
    };
    let (devmgr, mut observer) = subsystem::runnable(config, options);
    let root = subsystem::root(devmgr);
    let (mut term, mut usr1) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::user_defined1()),
    ) {
        (Ok(term), Ok(usr1)) => (term, usr1),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("devmgr: cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };
    let tree = match Supervisor::new(root, Options::new().restart_policy(policy)).await {
        Ok(tree) => tree,
        Err(err) => {
            eprintln!("devmgr: cannot start the supervision tree: {err}");
            return ExitCode::FAILURE;
        }
    };
    let progress = tokio::spawn(progress(observer.clone(), started));
    // `devmgr settle` requests; the socket file goes when this task is aborted below.
    let control = control.map(|socket| tokio::spawn(socket.serve(observer.clone())));
    #[cfg(feature = "fault-injection")]
    if let Ok(plan) = std::env::var("DEVMGR_FAULTS") {
        match devmgr::faults::FaultPlan::parse(&plan) {
            Ok(plan) => {
                let kills = devmgr::faults::inject(&observer, plan).await;
                let count = |a: &str| kills.iter().filter(|k| k.actor == a).count();
                println!(
                    "devmgr: fault injection: killed listener {}x, loader {}x, coldplug {}x",
                    count("listener"),
                    count("loader"),
                    count("coldplug")
                );
            }
            Err(err) => {
                eprintln!("devmgr: {err}");
                tree.shutdown();
                tree.wait_stopped().await;
                return ExitCode::from(2);
            }
        }
    }
    let asked = observer.clone();
    let settled = {
        let wait = observer.wait_settled();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                summary = &mut wait => break summary,
                _ = usr1.recv() => print_summary(&asked.summary().await),
                _ = term.recv() => break None,
                _ = tokio::signal::ctrl_c() => break None,
            }
        }
    };
    progress.abort();
    if let Some(summary) = &settled {
        let settled = format!(
            "settled after {:.3}s{}",
            started.elapsed().as_secs_f64(),
            headline(summary)
        );
        println!("devmgr: {settled}");
        print_summary(summary);
        if let Err(err) = notify(&format!("READY=1\nSTATUS={settled}")) {
            tracing::warn!(error = %err, "cannot notify the service manager");
        }
        if !args.exit_when_settled {
            loop {
                tokio::select! {
                    _ = usr1.recv() => print_summary(&observer.summary().await),
                    _ = term.recv() => break,
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
    }
    let _ = notify("STOPPING=1");
    if let Some(control) = control {
        control.abort();
        let _ = control.await;
    }
    tree.shutdown();
    tree.wait_stopped().await;
    ExitCode::SUCCESS
}

/// `: N devices, M modules loaded, F failed` for the settle line.
fn headline(summary: &Summary) -> String {
    let devices = summary.replay.as_ref().map_or(0, |r| r.devices);
    match &summary.loader {
        Some(l) => format!(
            ": {devices} devices, {} modules {}, {} failed",
            if summary.dry_run {
                l.plans
            } else {
                l.loads.loaded
            },
            if summary.dry_run {
                "planned (dry run)"
            } else {
                "loaded"
            },
            l.loads.failed.values().sum::<u64>()
        ),
        None => format!(": {devices} devices, module loading waits for the module index"),
    }
}

/// One line a second until aborted.
async fn progress(observer: Observer, started: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let s = observer.summary().await;
        let accepted = s.listener.as_ref().map_or(0, |l| l.counts.accepted);
        let (loaded, failed) = s.loader.as_ref().map_or((0, 0), |l| {
            (l.loads.loaded, l.loads.failed.values().sum::<u64>())
        });
        println!(
            "devmgr: {:.1}s: {} events accepted, replay {}, {loaded} modules loaded, {failed} failed",
            started.elapsed().as_secs_f64(),
            accepted,
            if s.replay.is_some() {
                "done"
            } else {
                "running"
            },
        );
    }
}

/// Every actor's line, then the process's memory.
fn print_summary(summary: &Summary) {
    println!("{summary}");
    println!("{}", memory_line());
}

/// The process's memory: its peak resident set (`VmHWM`), what its page tables map now
/// (`/proc/self/smaps_rollup`, counted page by page), and the kernel's counters of it. Before
/// 6.2 the counters lag behind by what each thread has not yet added to them (up to 64 page
/// faults' worth each), so a 6.1 kernel's peak and counters can be well below what is mapped
/// (`crates/devmgr/BENCH.md`, "Where the memory goes").
fn memory_line() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let kib = |key: &str| status_kib(&status, key).unwrap_or(0);
    format!(
        "devmgr: peak RSS {} KiB (now: {} KiB mapped by its page tables; the kernel's counters: {} KiB anonymous, {} KiB file-backed, {} KiB shared memory)",
        kib("VmHWM"),
        status_kib(&rollup, "Rss").unwrap_or(0),
        kib("RssAnon"),
        kib("RssFile"),
        kib("RssShmem")
    )
}

/// A `kB` figure of a `/proc/<pid>/status` text (`VmHWM`: the peak resident set).
fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_line_has_the_peak_and_what_the_page_tables_map() {
        let line = memory_line();
        let after = |prefix: &str| -> u64 {
            let rest = &line[line
                .find(prefix)
                .unwrap_or_else(|| panic!("{prefix:?} in {line:?}"))
                + prefix.len()..];
            rest.split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        // A running test process has both; 0 would mean a file or a line not read.
        assert!(after("devmgr: peak RSS ") > 0, "{line}");
        assert!(after("(now: ") > 0, "{line}");
        // The figure after "now:" is the page tables' (smaps_rollup), not a kernel counter.
        let now = after("(now: ");
        assert!(
            line.contains(&format!("(now: {now} KiB mapped by its page tables;")),
            "{line}"
        );
    }

    #[test]
    fn kib_figures_are_read_by_their_key_only() {
        let text = "Rss:                2716 kB\nRssAnon:\t     380 kB\nVmHWM:\t    1196 kB\n";
        assert_eq!(status_kib(text, "Rss"), Some(2716));
        assert_eq!(status_kib(text, "RssAnon"), Some(380));
        assert_eq!(status_kib(text, "VmHWM"), Some(1196));
        assert_eq!(status_kib(text, "RssFile"), None);
    }
}
