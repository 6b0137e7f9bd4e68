//! The reader thread: waits on the socket, reads every queued datagram into the pipeline, and
//! turns an overrun into a resync (rules R11, R12).
//!
//! A dedicated thread keeps the socket drained whatever the async runtime is doing, and needs no
//! `unsafe` (tokio's `AsyncFd` registration is an `unsafe fn` since tokio 1.54). It sleeps in
//! `poll` on the socket and on a pipe; dropping the [`ReaderHandle`] closes the pipe's write end,
//! which wakes the thread and ends it.

use std::os::fd::{AsFd, OwnedFd};
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::fanout::{MAX_BATCH, ResyncReason};
use crate::pipeline::SharedPipeline;
use crate::socket::{UeventSocket, credentials_space};

/// The receive buffer for one datagram: kernel uevents are at most about 4 KiB, so anything
/// larger is truncated (`MSG_TRUNC`) and dropped.
const DATAGRAM_BUFFER: usize = 16 * 1024;
/// Stack of the reader thread.
const READER_STACK: usize = 256 * 1024;

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

/// Starts the reader thread on `socket`. `on_exit` is called once when the thread ends on
/// its own: `Err` names the socket error that ended it.
pub(crate) fn spawn(
    socket: UeventSocket,
    pipeline: SharedPipeline,
    on_exit: impl FnOnce(Result<(), Errno>) + Send + 'static,
) -> std::io::Result<ReaderHandle> {
    let (wake, stop) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let thread = std::thread::Builder::new()
        .name("uevent-reader".into())
        // Its deepest frame is a datagram's parse; not the 2 MiB default (see devmgr's
        // THREAD_STACK: a huge page can back a 2 MiB stack).
        .stack_size(READER_STACK)
        .spawn(move || {
            let result = run(&socket, &wake, &pipeline);
            if let Err(errno) = result {
                tracing::error!(%errno, "uevent socket failed; the reader stops");
            }
            on_exit(result);
        })?;
    Ok(ReaderHandle {
        _stop: stop,
        thread: Some(thread),
    })
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
        let handle = spawn(socket, pipeline, move |result| {
            let _ = tx.send(result);
        })
        .unwrap();
        assert!(!handle.is_finished());
        drop(handle);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(Ok(())));
    }
}
