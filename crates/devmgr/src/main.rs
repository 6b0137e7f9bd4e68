//! The `devmgr` command line. No command is implemented yet (issue #8): it answers `--help`
//! and `--version`, and otherwise says so and exits with status 2.

use std::process::ExitCode;

use clap::Parser;

/// A Linux device manager: listens to kernel uevents, replays existing devices and loads the
/// kernel modules they need.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> ExitCode {
    let Cli {} = Cli::parse();
    eprintln!("devmgr: no command is implemented yet; see `devmgr --help`");
    ExitCode::from(2)
}
