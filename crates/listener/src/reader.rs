//! The reader thread: waits on the socket, reads every queued datagram into the pipeline, and
//! turns an overrun into a resync (see `docs/uevents.md#overruns-and-resyncs`).
//!
//! A dedicated thread keeps the socket drained whatever the async runtime is doing, and needs no
//! `unsafe` (tokio's `AsyncFd` registration is an `unsafe fn` since tokio 1.54). It sleeps in
//! `poll` on the socket and on a pipe; dropping the [`ReaderHandle`] closes the pipe's write end,
//! which wakes the thread and ends it.
//!
//! However the thread ends — stopped, on a socket error, or by a panic (subscribers' sinks run
//! on it) — its owner hears of it: a guard created first thing on the thread reports the end
//! when it is dropped, which unwinding does too. A panic that aborts the process needs no report.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::fanout::{MAX_BATCH, ResyncReason};
use crate::pipeline::SharedPipeline;
use crate::socket::{UeventSocket, credentials_space};

/// The receive buffer for one datagram: twice [`uevent::MAX_LEN`], so a datagram the parser
/// refuses as oversize is still read whole and counted as malformed; anything larger is
/// truncated (`MSG_TRUNC`) and dropped as truncated.
const DATAGRAM_BUFFER: usize = 16 * 1024;
/// Stack of the reader thread.
const READER_STACK: usize = 256 * 1024;

/// How the reader thread ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderExit {
    /// It was told to stop: its handle was dropped (or its stop pipe reported an error).
    Stopped,
    /// Reading the socket failed with this error.
    Failed(Errno),
    /// It panicked: in a subscriber's sink, which runs on this thread, or in the listener's own
    /// code.
    Panicked,
}

impl fmt::Display for ReaderExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReaderExit::Stopped => f.write_str("stopped"),
            ReaderExit::Failed(errno) => write!(f, "the uevent socket failed: {errno}"),
            ReaderExit::Panicked => f.write_str("panicked"),
        }
    }
}

/// Keeps the reader thread alive; dropping it stops the thread.
#[derive(Debug)]
pub(crate) struct ReaderHandle {
    _stop: OwnedFd,
    thread: Option<JoinHandle<()>>,
}

impl ReaderHandle {
    /// Whether the thread has ended.
    #[cfg(test)]
    pub(crate) fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for ReaderHandle {
    fn drop(&mut self) {
        // Closing `_stop` (after this body) wakes the thread; it is not joined here, so that
        // dropping never blocks an actor.
        drop(self.thread.take());
    }
}

/// Starts the reader thread on `socket`. `on_exit` is called once when the thread ends, for
/// whatever reason, panics included.
pub(crate) fn spawn(
    socket: UeventSocket,
    pipeline: SharedPipeline,
    on_exit: impl FnOnce(ReaderExit) + Send + 'static,
) -> std::io::Result<ReaderHandle> {
    let (wake, stop) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let thread = start(move || run(&socket, &wake, &pipeline), on_exit)?;
    Ok(ReaderHandle {
        _stop: stop,
        thread: Some(thread),
    })
}

/// Runs `body` on the reader thread, and `on_exit` once after it, however it ends.
fn start(
    body: impl FnOnce() -> Result<(), Errno> + Send + 'static,
    on_exit: impl FnOnce(ReaderExit) + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("uevent-reader".into())
        // Its deepest frame is a datagram's parse; not the 2 MiB default (see devmgr's
        // THREAD_STACK: a huge page can back a 2 MiB stack).
        .stack_size(READER_STACK)
        .spawn(move || {
            // Before anything that can panic: its drop reports the end, unwinding included.
            let mut guard = ExitGuard {
                on_exit: Some(on_exit),
                exit: ReaderExit::Stopped,
            };
            guard.exit = match body() {
                Ok(()) => ReaderExit::Stopped,
                Err(errno) => ReaderExit::Failed(errno),
            };
        })
}

/// Reports how the reader thread ended when dropped: `exit`, or [`ReaderExit::Panicked`] when
/// the thread is unwinding.
struct ExitGuard<F: FnOnce(ReaderExit)> {
    on_exit: Option<F>,
    exit: ReaderExit,
}

impl<F: FnOnce(ReaderExit)> Drop for ExitGuard<F> {
    fn drop(&mut self) {
        let exit = if std::thread::panicking() {
            ReaderExit::Panicked
        } else {
            self.exit
        };
        match exit {
            ReaderExit::Stopped => tracing::debug!("uevent reader thread stopped"),
            _ => {
                tracing::error!(%exit, "uevent reader thread ended; nothing reads the socket any more")
            }
        }
        if let Some(on_exit) = self.on_exit.take() {
            on_exit(exit);
        }
    }
}

fn run(socket: &UeventSocket, wake: &OwnedFd, pipeline: &SharedPipeline) -> Result<(), Errno> {
    let mut buf = vec![0u8; DATAGRAM_BUFFER];
    let mut cmsg = credentials_space();
    loop {
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            return Ok(());
        }
        // POLLIN or POLLERR (a pending ENOBUFS): read until the queue is empty either way.
        drain(socket, pipeline, &mut buf, &mut cmsg)?;
    }
}

/// Reads until `EAGAIN`, delivering accepted events in batches of at most [`MAX_BATCH`] (and
/// what is left when the queue is empty). After an overrun the queue is emptied first (which
/// lets the kernel deliver again) and then every subscriber is told to resynchronise.
fn drain(
    socket: &UeventSocket,
    pipeline: &SharedPipeline,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> Result<(), Errno> {
    let mut overrun = false;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        match socket.recv(buf, cmsg) {
            Ok(received) => {
                let len = received.len.min(buf.len());
                if let Some(event) = pipeline.accept(&buf[..len], &received.envelope) {
                    batch.push(event);
                    if batch.len() == MAX_BATCH {
                        pipeline.deliver(&batch);
                        batch.clear();
                    }
                }
            }
            Err(Errno::EAGAIN) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::ENOBUFS) => {
                pipeline.overrun();
                if !overrun {
                    tracing::warn!("uevent receive buffer overran: the kernel dropped events");
                }
                overrun = true;
            }
            Err(errno) => {
                pipeline.deliver(&batch);
                return Err(errno);
            }
        }
    }
    pipeline.deliver(&batch);
    if overrun {
        pipeline.resync(ResyncReason::Overrun);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::pipeline::Pipeline;
    use crate::trust::UidPolicy;

    /// Receiving on group 1 needs no privilege, so this runs anywhere with netlink.
    #[test]
    fn dropping_the_handle_ends_the_reader_thread_cleanly() {
        let socket = match UeventSocket::open(64 * 1024) {
            Ok(socket) => socket,
            Err(err) => panic!("opening a uevent socket (no privilege needed): {err}"),
        };
        let (tx, rx) = mpsc::channel();
        let pipeline = Arc::new(Pipeline::new(UidPolicy::ROOT_ONLY));
        let handle = spawn(socket, pipeline, move |exit| {
            let _ = tx.send(exit);
        })
        .unwrap();
        assert!(!handle.is_finished());
        drop(handle);
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(10)),
            Ok(ReaderExit::Stopped)
        );
    }

    fn exit_of(body: impl FnOnce() -> Result<(), Errno> + Send + 'static) -> ReaderExit {
        let (tx, rx) = mpsc::channel();
        let thread = start(body, move |exit| {
            let _ = tx.send(exit);
        })
        .unwrap();
        let exit = rx.recv_timeout(Duration::from_secs(10));
        let _ = thread.join();
        exit.unwrap_or_else(|_| panic!("on_exit was not called"))
    }

    #[test]
    fn every_end_of_the_thread_is_reported_panics_included() {
        assert_eq!(exit_of(|| Ok(())), ReaderExit::Stopped);
        assert_eq!(
            exit_of(|| Err(Errno::EBADF)),
            ReaderExit::Failed(Errno::EBADF)
        );
        assert_eq!(
            exit_of(|| panic!("test: the reader thread panics")),
            ReaderExit::Panicked
        );
    }
}
