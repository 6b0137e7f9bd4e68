//! `devmgr settle`: reads the kernel's uevent seqnum, asks the daemon's control socket to wait
//! until every event up to it is handled, and exits 0 (handled), 1 (timeout, what is pending on
//! stderr), 2 (bad arguments or configuration) or 3 (no daemon answers).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use devmgr::config::Config;
use devmgr::control::{self, Answer, Request};

use crate::SettleArgs;

/// Exit status when the daemon cannot be asked.
const NO_DAEMON: u8 = 3;
/// How much longer than its timeout the client waits for the daemon's answer.
const GRACE: Duration = Duration::from_secs(10);

pub(crate) fn settle(args: SettleArgs) -> ExitCode {
    // Read before anything else: the events the kernel had sent when we were called.
    let seqnum = match devmgr::handled::kernel_seqnum("/sys".as_ref()) {
        Ok(seqnum) => seqnum,
        Err(err) => {
            eprintln!("devmgr settle: cannot read the kernel's uevent seqnum: {err}");
            return ExitCode::from(NO_DAEMON);
        }
    };
    let socket = match socket_path(&args) {
        Ok(Some(socket)) => socket,
        Ok(None) => {
            eprintln!(
                "devmgr settle: the configuration has no control socket (control.socket = \"\"): no daemon to ask"
            );
            return ExitCode::from(NO_DAEMON);
        }
        Err(err) => {
            eprintln!("devmgr settle: bad configuration: {err}");
            return ExitCode::from(2);
        }
    };
    let request = Request::Settle {
        seqnum,
        timeout: args.timeout,
    };
    match control::ask(&socket, &request, args.timeout + GRACE) {
        Ok(Answer::Handled(_)) => ExitCode::SUCCESS,
        Ok(Answer::Pending(what)) => {
            eprintln!("devmgr settle: timed out after {:?}: {what}", args.timeout);
            ExitCode::FAILURE
        }
        Ok(Answer::Error(err)) => {
            eprintln!("devmgr settle: the daemon refused the request: {err}");
            ExitCode::from(NO_DAEMON)
        }
        Err(err) => {
            eprintln!("devmgr settle: {err}");
            ExitCode::from(NO_DAEMON)
        }
    }
}

/// The control socket: `--socket`, the configuration's, or the default.
fn socket_path(args: &SettleArgs) -> Result<Option<PathBuf>, String> {
    if let Some(socket) = &args.socket {
        return Ok(Some(socket.clone()));
    }
    match &args.config {
        Some(path) => Config::load(path)
            .map(|config| config.control.socket)
            .map_err(|err| err.to_string()),
        None => Ok(Some(control::DEFAULT_SOCKET.into())),
    }
}
