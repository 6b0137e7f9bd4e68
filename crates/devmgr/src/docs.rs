//! `devmgr completions SHELL` and `devmgr man [COMMAND]`: generated from the clap definitions
//! that also make `--help`, so they cannot drift from it.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::Cli;

/// Prints the completion script for `shell` (`bash`, `zsh` or `fish`; clap checked the name).
pub(crate) fn completions(shell: &str) -> ExitCode {
    let shell = match shell {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        _ => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cmd, "devmgr", &mut out);
    finish(out.flush())
}

/// Prints devmgr(1), or devmgr-COMMAND(1) for `command`.
pub(crate) fn man(command: Option<&str>) -> ExitCode {
    let cmd = Cli::command();
    let page = match command {
        None => clap_mangen::Man::new(cmd),
        Some(name) => match cmd.find_subcommand(name) {
            // The page is devmgr-NAME(1), as git and cargo name theirs.
            Some(sub) => {
                let title = format!("devmgr-{name}");
                let sub = sub
                    .clone()
                    .display_name(title.clone())
                    .bin_name(format!("devmgr {name}"));
                clap_mangen::Man::new(sub).title(title)
            }
            None => {
                eprintln!("devmgr: no command {name:?} (see `devmgr --help`)");
                return ExitCode::from(2);
            }
        },
    };
    let mut out = std::io::stdout().lock();
    finish(page.render(&mut out).and_then(|()| out.flush()))
}

fn finish(written: std::io::Result<()>) -> ExitCode {
    match written {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`devmgr man | head`) is not worth a message.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("devmgr: {err}");
            ExitCode::FAILURE
        }
    }
}
