//! modprobe.d `install` commands: what the loader does for a module that has one, as modprobe
//! does (libkmod's `module_do_install_commands`) but for `/bin/true` and `/bin/false`, which
//! are understood and not run, and for [`InstallPolicy`], which may forbid the others
//! (`docs/kmod-loader.md#install-commands`).

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest an `install` command may run before it is killed.
pub const DEFAULT_INSTALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether and how `install` commands run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstallPolicy {
    /// Run commands other than `/bin/true` and `/bin/false` (modprobe does).
    pub run: bool,
    /// Kill a command still running after this long.
    pub timeout: Duration,
}

impl Default for InstallPolicy {
    fn default() -> Self {
        InstallPolicy {
            run: true,
            timeout: DEFAULT_INSTALL_TIMEOUT,
        }
    }
}

/// What an `install` command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallKind {
    /// `/bin/true`: the module is disabled, the plan goes on.
    True,
    /// `/bin/false`: the module is disabled and the plan stops.
    False,
    /// Anything else: a shell command to run.
    Shell,
}

/// Sorts an `install` command (surrounding blanks ignored).
pub fn classify(command: &str) -> InstallKind {
    match command.trim_matches([' ', '\t']) {
        "/bin/true" | "/usr/bin/true" | "true" => InstallKind::True,
        "/bin/false" | "/usr/bin/false" | "false" => InstallKind::False,
        _ => InstallKind::Shell,
    }
}

/// `command` with every `$CMDLINE_OPTS` replaced by the module's options, as libkmod passes
/// them: followed by a space when there are any.
pub fn substitute_options(command: &str, options: &str) -> String {
    let options = if options.is_empty() {
        String::new()
    } else {
        format!("{options} ")
    };
    command.replace("$CMDLINE_OPTS", &options)
}

/// Why an `install` command failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// `/bin/sh` could not be started.
    #[error("cannot start /bin/sh: {0}")]
    Spawn(#[source] std::io::Error),
    /// The command exited with a non-zero status.
    #[error("exit status {0}")]
    Exit(i32),
    /// The command was killed by a signal.
    #[error("killed by signal {0}")]
    Signal(i32),
    /// The command ran longer than its time limit and was killed.
    #[error("still running after {0:?}: killed")]
    TimedOut(Duration),
    /// Waiting for the command failed.
    #[error("cannot wait for the command: {0}")]
    Wait(#[source] std::io::Error),
}

/// Runs `command` (options already substituted) for `module` through `/bin/sh -c`, with
/// `MODPROBE_MODULE` set, standard input from `/dev/null` and its output on our standard
/// error, in a process group of its own; kills that group (the shell and whatever it started)
/// after `timeout`. Blocks: call it from a blocking thread.
pub fn run(module: &str, command: &str, timeout: Duration) -> Result<(), InstallError> {
    use std::os::unix::process::CommandExt;
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let stdout = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or_else(|_| Stdio::null(), Stdio::from);
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .env("MODPROBE_MODULE", module)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .spawn()
        .map_err(InstallError::Spawn)?;
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match child.try_wait().map_err(InstallError::Wait)? {
            Some(status) => {
                use std::os::unix::process::ExitStatusExt;
                return match (status.code(), status.signal()) {
                    (Some(0), _) => Ok(()),
                    (Some(code), _) => Err(InstallError::Exit(code)),
                    (None, Some(signal)) => Err(InstallError::Signal(signal)),
                    (None, None) => Err(InstallError::Exit(-1)),
                };
            }
            None if Instant::now() >= deadline => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(InstallError::TimedOut(timeout));
            }
            None => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_and_false_are_recognised_in_their_usual_spellings() {
        for c in ["/bin/true", " /usr/bin/true ", "true"] {
            assert_eq!(classify(c), InstallKind::True, "{c}");
        }
        for c in ["/bin/false", "/usr/bin/false\t", "false"] {
            assert_eq!(classify(c), InstallKind::False, "{c}");
        }
        for c in [
            "/bin/true; modprobe x",
            "/sbin/modprobe --ignore-install e1000 $CMDLINE_OPTS",
            "",
        ] {
            assert_eq!(classify(c), InstallKind::Shell, "{c}");
        }
    }

    #[test]
    fn cmdline_opts_become_the_options_as_libkmod_passes_them() {
        assert_eq!(
            substitute_options("modprobe -i x $CMDLINE_OPTS; echo $CMDLINE_OPTS", "a=1 b=2"),
            "modprobe -i x a=1 b=2 ; echo a=1 b=2 "
        );
        assert_eq!(substitute_options("m $CMDLINE_OPTS", ""), "m ");
        assert_eq!(substitute_options("plain", "a=1"), "plain");
    }

    #[test]
    fn a_command_runs_with_the_module_in_its_environment_and_its_status_counts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let marker = tmp.path().join("marker");
        let command = format!("echo \"$MODPROBE_MODULE\" > {}", marker.display());
        run("snd_x", &command, Duration::from_secs(10)).expect("runs");
        assert_eq!(std::fs::read_to_string(&marker).expect("marker"), "snd_x\n");
        assert!(matches!(
            run("m", "exit 3", Duration::from_secs(10)),
            Err(InstallError::Exit(3))
        ));
        assert!(matches!(
            run("m", "kill -9 $$", Duration::from_secs(10)),
            Err(InstallError::Signal(9))
        ));
    }

    #[test]
    fn a_command_that_hangs_is_killed_at_its_time_limit() {
        let started = Instant::now();
        let result = run("m", "sleep 30", Duration::from_millis(200));
        assert!(
            matches!(result, Err(InstallError::TimedOut(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
