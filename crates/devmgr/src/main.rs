//! The `devmgr` command line:
//!
//! - `devmgr run`: the device manager (`--dry-run` loads nothing);
//! - `devmgr resolve MODALIAS…`: load plans in the form of `modprobe --show-depends`;
//! - `devmgr monitor`: the kernel uevents the daemon would accept, printed like
//!   `udevadm monitor --kernel --property` (the listener's socket and trust checks: forged
//!   datagrams are dropped, not printed);
//! - `devmgr trigger`: an event for every (matching) device, like
//!   `udevadm trigger --type=devices`, each write tagged with a `SYNTH_UUID`; with `--settle`
//!   it waits until the kernel has answered every write (coldplug's `Pass`);
//! - `devmgr settle`: waits until the running daemon has handled every uevent the kernel had
//!   sent when it was called, like `udevadm settle` (asks the daemon's control socket);
//! - `devmgr completions SHELL` and `devmgr man [COMMAND]`: shell completions and man pages,
//!   generated from the same definitions as `--help`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kmod_loader::{Resolver, ResolverOptions, Step};

/// A Linux device manager: listens to kernel uevents, replays existing devices and loads the
/// kernel modules they need.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the device manager: listen to uevents, replay every device, load modules. Prints a
    /// summary once the replay has settled; runs until SIGINT/SIGTERM.
    Run(RunArgs),
    /// Print what would be loaded for each MODALIAS, like `modprobe --show-depends`:
    /// `insmod PATH OPTIONS` per module file, `builtin NAME` for builtin modules,
    /// `install COMMAND` for modules with an install command. Nothing is loaded or executed.
    Resolve(ResolveArgs),
    /// Print the kernel uevents devmgr accepts as they arrive, like
    /// `udevadm monitor --kernel --property`: a header line per event, then its properties
    /// (ACTION, DEVPATH, SUBSYSTEM, SEQNUM, the others in arrival order) and a blank line.
    /// Datagrams that did not come from the kernel are dropped, as by `devmgr run`. Runs until
    /// SIGINT/SIGTERM or `--count` events.
    Monitor(MonitorArgs),
    /// Make the kernel send an event for every device, like `udevadm trigger --type=devices`:
    /// writes `ACTION UUID` into each device's `uevent` file. With `--settle`, waits until every
    /// write has come back as an event carrying its `SYNTH_UUID`.
    Trigger(TriggerArgs),
    /// Wait until the running daemon has handled every uevent the kernel had sent when this was
    /// called (its seqnum in /sys/kernel/uevent_seqnum): accepted by the listener, looked up by
    /// the loader and the load plans it started ended. Like `udevadm settle`. Exits 0 when
    /// handled, 1 on timeout (naming what is pending), 2 on bad arguments, 3 when no daemon
    /// answers.
    Settle(SettleArgs),
    /// Print a shell completion script for SHELL (bash, zsh or fish) on standard output.
    Completions {
        /// The shell.
        #[arg(value_parser = ["bash", "zsh", "fish"])]
        shell: String,
    },
    /// Print the man page of devmgr, or of one of its commands (devmgr-COMMAND(1)), in roff on
    /// standard output (`devmgr man run | man -l -`).
    Man {
        /// The command whose page to print; without it, devmgr(1).
        command: Option<String>,
    },
    /// Stress tests only (feature `fault-injection`): send COUNT forged multicast, unicast,
    /// bad-header and oversize datagrams each, as a hostile process would.
    #[cfg(feature = "fault-injection")]
    Flood {
        /// Datagrams of each kind.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Configuration file (TOML); without it, the defaults.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Resolve and log what would be loaded; load nothing.
    #[arg(long)]
    dry_run: bool,
    /// Stop once the replay has settled and the loads are done (for tests and initramfs use).
    #[arg(long)]
    exit_when_settled: bool,
}

#[derive(clap::Args)]
struct ResolveArgs {
    /// Root directory prefix of the module directory (like `modprobe -d`).
    #[arg(short = 'd', long = "dirname", default_value = "/")]
    root: PathBuf,
    /// Kernel version (like `modprobe -S`); default: the running kernel.
    #[arg(short = 'S', long = "set-version")]
    kernel: Option<String>,
    /// The module directory itself; overrides --dirname and --set-version.
    #[arg(long = "dir")]
    dir: Option<PathBuf>,
    /// modprobe.d directory or file, repeatable (like `modprobe -C`); default: libkmod's
    /// directories (/etc/modprobe.d, /run/modprobe.d, /usr/local/lib/modprobe.d,
    /// /usr/lib/modprobe.d, /lib/modprobe.d).
    #[arg(short = 'C', long = "config")]
    config: Vec<PathBuf>,
    /// Kernel command line file for `modprobe.blacklist=` and `module.param=`.
    #[arg(long, default_value = "/proc/cmdline")]
    cmdline: PathBuf,
    /// Ignore the kernel command line.
    #[arg(long, conflicts_with = "cmdline")]
    no_cmdline: bool,
    /// The modaliases (or module names) to resolve.
    #[arg(required = true, value_name = "MODALIAS")]
    modaliases: Vec<String>,
}

/// `devmgr monitor`'s arguments.
#[derive(clap::Args)]
struct MonitorArgs {
    /// Only events of this subsystem, optionally only of this device type
    /// (`SUBSYSTEM[/DEVTYPE]`, exact match); repeatable, any may match (like `udevadm monitor
    /// -s`).
    #[arg(
        short = 's',
        long = "subsystem-match",
        value_name = "SUBSYSTEM[/DEVTYPE]"
    )]
    subsystems: Vec<String>,
    /// Exit after printing this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Print only the header line of each event, not its properties.
    #[arg(long)]
    no_properties: bool,
}

/// `devmgr trigger`'s arguments.
#[derive(clap::Args)]
struct TriggerArgs {
    /// Wait until the kernel has answered every write (its event came back with the write's
    /// `SYNTH_UUID`); exit non-zero if some never did.
    #[arg(short = 'w', long)]
    settle: bool,
    /// The action to write: add, remove, change, move, online, offline, bind, unbind. `add`
    /// (what devmgr acts on) unlike udevadm, whose default is `change`.
    #[arg(short = 'c', long, default_value = "add")]
    action: uevent::Action,
    /// Only devices of this subsystem (a glob, like `udevadm trigger -s`); repeatable, any may
    /// match.
    #[arg(short = 's', long = "subsystem-match", value_name = "SUBSYSTEM")]
    subsystems: Vec<String>,
    /// The sysfs mount; devices are found under `SYSFS/devices`.
    #[arg(long, default_value = "/sys")]
    sysfs: PathBuf,
    /// Print the devices that would be triggered; write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Print each device's path before triggering it.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// With --settle: how long without any answer before the silent devices are triggered once
    /// more, and after that before giving up on them (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = trigger::parse_timeout)]
    timeout: std::time::Duration,
}

/// `devmgr settle`'s arguments.
#[derive(clap::Args)]
struct SettleArgs {
    /// How long to wait at most (`120s` default, like udevadm; `500ms`, `1m30s`, bare seconds;
    /// 1 ms to 1 h).
    #[arg(short = 't', long, default_value = "120s", value_parser = trigger::parse_timeout)]
    timeout: std::time::Duration,
    /// The daemon's configuration file, for its `control.socket`.
    #[arg(short, long, conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// The daemon's control socket (default /run/devmgr/control).
    #[arg(long)]
    socket: Option<PathBuf>,
}

mod docs;
mod logging;
mod malloc;
mod monitor;
mod run;
mod settle;
mod trigger;

fn module_dir(args: &ResolveArgs) -> PathBuf {
    if let Some(dir) = &args.dir {
        return dir.clone();
    }
    let kernel = args.kernel.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned()
    });
    args.root.join(Path::new("lib/modules")).join(kernel)
}

/// Resolves every modalias, writing plan lines to `out` and diagnostics to `err`. Returns
/// whether every modalias resolved to something.
fn resolve(
    args: &ResolveArgs,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<bool> {
    let defaults = ResolverOptions::default();
    let options = ResolverOptions {
        module_dir: module_dir(args),
        config_dirs: if args.config.is_empty() {
            defaults.config_dirs
        } else {
            args.config.clone()
        },
        cmdline: (!args.no_cmdline).then(|| args.cmdline.clone()),
    };
    let resolver = match Resolver::open(options) {
        Ok(r) => r,
        Err(e) => {
            writeln!(err, "devmgr: {e}")?;
            return Ok(false);
        }
    };
    let mut ok = true;
    for modalias in &args.modaliases {
        let plan = match resolver.plan(modalias) {
            Ok(plan) => plan,
            Err(e) => {
                writeln!(err, "devmgr: {modalias}: {e}")?;
                ok = false;
                continue;
            }
        };
        if plan.lookup.modules.is_empty() {
            writeln!(
                err,
                "devmgr: {modalias}: no module found in {}",
                resolver.index().dir().display()
            )?;
            ok = false;
        }
        for module in &plan.blacklisted {
            writeln!(err, "devmgr: {modalias}: {module} is blacklisted")?;
        }
        for step in &plan.steps {
            if let Step::NotFound { module } = step {
                writeln!(
                    err,
                    "devmgr: {modalias}: {module} is neither a module file nor builtin"
                )?;
            }
            if let Some(line) = step.show_depends_line() {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(ok)
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Monitor(args)) => monitor::monitor(args),
        Some(Command::Trigger(args)) => trigger::trigger(args),
        Some(Command::Settle(args)) => settle::settle(args),
        Some(Command::Completions { shell }) => docs::completions(&shell),
        Some(Command::Man { command }) => docs::man(command.as_deref()),
        Some(Command::Resolve(args)) => {
            match resolve(
                &args,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            ) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("devmgr: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        #[cfg(feature = "fault-injection")]
        Some(Command::Flood { count }) => {
            let ports = listener::flood::uevent_listener_ports(0);
            match listener::flood::flood(count, &ports) {
                Ok(report) => {
                    println!(
                        "devmgr flood: sent {:?} (multicast, unicast, bad header, oversize), {} failed, unicast to ports {:?}",
                        report.sent, report.failed, report.ports
                    );
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("devmgr flood: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        None => {
            eprintln!("devmgr: no command given (see `devmgr --help`)");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(dir: &Path, config: &Path, aliases: &[&str]) -> (bool, String, String) {
        let mut argv = vec![
            "devmgr".to_owned(),
            "resolve".to_owned(),
            "--dir".to_owned(),
        ];
        argv.push(dir.display().to_string());
        argv.extend([
            "-C".to_owned(),
            config.display().to_string(),
            "--no-cmdline".to_owned(),
        ]);
        argv.extend(aliases.iter().map(|a| (*a).to_owned()));
        let Some(Command::Resolve(args)) = Cli::try_parse_from(argv).expect("parse").command else {
            panic!("not the resolve command");
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let ok = resolve(&args, &mut out, &mut err).expect("write");
        (
            ok,
            String::from_utf8(out).expect("utf8"),
            String::from_utf8(err).expect("utf8"),
        )
    }

    #[test]
    fn resolve_prints_plans_like_modprobe_show_depends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("modules.dep"),
            "kernel/igb.ko.xz: kernel/dca.ko.xz\nkernel/dca.ko.xz:\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("modules.alias"),
            "alias pci:v00008086d00001533* igb\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("modules.builtin"), "kernel/ext4.ko\n").expect("write");
        std::fs::write(conf.path().join("o.conf"), "options igb x=1\n").expect("write");
        let (ok, out, err) = run(
            dir.path(),
            conf.path(),
            &["pci:v00008086d00001533sv0", "ext4"],
        );
        assert!(ok, "{err}");
        let d = dir.path().display();
        assert_eq!(
            out,
            format!(
                "insmod {d}/kernel/dca.ko.xz \ninsmod {d}/kernel/igb.ko.xz x=1 \nbuiltin ext4\n"
            )
        );
        let (ok, out, err) = run(dir.path(), conf.path(), &["usb:nothing"]);
        assert!(!ok);
        assert!(out.is_empty());
        assert!(err.contains("usb:nothing: no module found"), "{err}");
    }

    #[test]
    fn the_module_directory_follows_dirname_and_set_version() {
        let Some(Command::Resolve(args)) =
            Cli::try_parse_from(["devmgr", "resolve", "-d", "/root", "-S", "6.1.0", "x"])
                .expect("parse")
                .command
        else {
            panic!("not the resolve command");
        };
        assert_eq!(module_dir(&args), PathBuf::from("/root/lib/modules/6.1.0"));
    }
}
