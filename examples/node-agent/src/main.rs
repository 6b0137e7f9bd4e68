//! A node agent that embeds devmgr: one supervision tree whose root runs the device manager as
//! the subsystem `root.devices` and a second subsystem, `root.reporter`, that prints the
//! network interfaces and block devices as they come and go (`net eth0 added`).
//!
//! `node-agent [--check] [CONFIG]` (default `node-agent.toml`; `--check`: read it and exit).
//! Copy this file and `node-agent.toml` to put devmgr into your own agent.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use devmgr::config::{Config, Section};
use devmgr::control::ControlSocket;
use devmgr::subscription::{Action, Filter, Notification, Uevent};
use devmgr::subsystem::{self, Observer, RunOptions};
use supervisor::{Canceled, Context, Options, RestartPolicy, Runnable, Signal, Supervisor};
use tokio::signal::unix::{SignalKind, signal};

/// `node-agent.toml`: the agent's own `[agent]` table, and devmgr's keys under `[devmgr]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    agent: AgentSettings,
    #[serde(default)]
    devmgr: Section,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSettings {
    /// devmgr resolves modules and loads none.
    #[serde(default)]
    dry_run: bool,
    /// The subsystems whose devices are reported (`net`, `block`).
    report: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    // The log goes to stderr, the reports to stdout.
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("node-agent: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let check = std::env::args().any(|a| a == "--check");
    let path = std::env::args().skip(1).find(|a| a != "--check");
    let path = PathBuf::from(path.as_deref().unwrap_or("node-agent.toml"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: AgentFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    // devmgr checks its own table; errors name the line of this file.
    let config = Config::from_section(&text, &path, "devmgr", file.devmgr)?;
    if check {
        return Ok(());
    }
    // `devmgr settle` asks the agent as it asks `devmgr run` (`[devmgr.control]`, "" for none).
    let control = config
        .control
        .socket
        .as_deref()
        .map(ControlSocket::bind)
        .transpose()?;

    // devmgr: a runnable to mount in our tree, and an observer to watch it and subscribe.
    let options = RunOptions {
        dry_run: file.agent.dry_run,
        ..RunOptions::default()
    };
    // The agent's restart policy (Go's defaults here) with devmgr's `[devmgr.restart]` attached
    // where devmgr runs: its overrides name devmgr's nodes relative to it (`listener`).
    let policy = RestartPolicy::default().attach("root.devices", config.restart.clone())?;
    let (devices, mut observer) = subsystem::runnable(config, options);
    let reporter = reporter(observer.clone(), file.agent.report);
    let root = move |ctx: Context| {
        let (devices, reporter) = (devices.clone(), reporter.clone());
        async move {
            ctx.run("devices", devices)?; // root.devices.{listener,loader,coldplug}
            ctx.run("reporter", reporter)?; // root.reporter
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            Ok(())
        }
    };
    let tree = Supervisor::new(root, Options::new().restart_policy(policy)).await?;
    if let Some(control) = control {
        tokio::spawn(control.serve(observer.clone()));
    }

    // Runs until SIGTERM or Ctrl-C; says once when devmgr has settled (every device replayed).
    let settled = async {
        if let Some(summary) = observer.wait_settled().await {
            let devices = summary.replay.map_or(0, |r| r.devices);
            println!("devmgr settled: {devices} devices");
        }
        std::future::pending::<()>().await
    };
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = settled => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tree.shutdown();
    tree.wait_stopped().await;
    Ok(())
}

/// `root.reporter`: prints the devices of `subsystems` present at start, then each one added
/// or removed.
fn reporter(observer: Observer, subsystems: Vec<String>) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let (observer, subsystems) = (observer.clone(), subsystems.clone());
        async move {
            let filter = Filter {
                subsystems: Some(subsystems.iter().map(|s| s.as_bytes().to_vec()).collect()),
                actions: Some(vec![Action::Add, Action::Remove]),
                ..Filter::default()
            };
            // Typed, bounded, and it follows devmgr's listener through restarts by itself.
            let mut uevents = observer.subscribe(filter, 1024);
            scan(&subsystems); // subscribed first: nothing falls between the scan and events
            ctx.signal(Signal::Healthy)?;
            loop {
                let notification = tokio::select! {
                    n = uevents.recv() => n.ok_or("devmgr is gone")?,
                    _ = ctx.cancelled() => return Err(Canceled.into()),
                };
                match notification {
                    Notification::Uevents(batch) => batch.iter().for_each(|event| report(event)),
                    // Events were lost (an overrun, devmgr restarted): look at sysfs again.
                    Notification::Resync(why) => {
                        println!("resync: {why:?}");
                        scan(&subsystems);
                    }
                }
            }
        }
    })
}

/// Prints `net eth0 added` for an event of the interface `eth0` (its devpath's last part).
fn report(event: &Uevent) {
    let subsystem = String::from_utf8_lossy(event.subsystem().unwrap_or_default());
    let devpath = String::from_utf8_lossy(event.devpath());
    let name = devpath.rsplit('/').next().unwrap_or_default();
    let what = match event.action() {
        Action::Add => "added",
        Action::Remove => "removed",
        _ => "changed",
    };
    println!("{subsystem} {name} {what}");
}

/// Prints every device of `subsystems` in `/sys/class` now (`net lo present`).
fn scan(subsystems: &[String]) {
    for subsystem in subsystems {
        let entries = std::fs::read_dir(format!("/sys/class/{subsystem}"));
        for entry in entries.into_iter().flatten().flatten() {
            println!(
                "{subsystem} {} present",
                entry.file_name().to_string_lossy()
            );
        }
    }
}
