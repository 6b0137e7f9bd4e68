//! The `NETLINK_KOBJECT_UEVENT` socket (see `docs/uevents.md#the-socket`).

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
    UnixCredentials, bind, getsockname, getsockopt, recvmsg, setsockopt, socket, sockopt,
};

use crate::buffer::MAX_RECEIVE_BUFFER;
use crate::trust::{Credentials, Envelope, Sender};

/// The kernel's uevent multicast group.
pub const KERNEL_GROUP: u32 = 1;

/// Why the socket could not be set up; each names the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// `socket(AF_NETLINK, NETLINK_KOBJECT_UEVENT)` failed.
    #[error("creating the uevent socket: {0}")]
    Create(Errno),
    /// `SO_PASSCRED` could not be set.
    #[error("setting SO_PASSCRED: {0}")]
    PassCred(Errno),
    /// The receive buffer asked for is larger than the kernel takes ([`MAX_RECEIVE_BUFFER`]).
    #[error(
        "a receive buffer of {0} bytes is more than the kernel takes (at most {MAX_RECEIVE_BUFFER})"
    )]
    ReceiveBufferRange(usize),
    /// Neither `SO_RCVBUFFORCE` nor `SO_RCVBUF` could be set.
    #[error("setting the receive buffer to {bytes} bytes: {errno}")]
    ReceiveBuffer {
        /// The size asked for.
        bytes: usize,
        /// The error of `SO_RCVBUF`.
        errno: Errno,
    },
    /// Binding to group 1 failed.
    #[error("binding to uevent multicast group 1: {0}")]
    Bind(Errno),
    /// Reading back the bound address or the buffer size failed.
    #[error("reading back the socket's address or buffer size: {0}")]
    Query(Errno),
}

/// A non-blocking, close-on-exec uevent socket bound to group 1 with a port id chosen by the
/// kernel, passing credentials.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
    port: u32,
    receive_buffer: usize,
}

/// One datagram's size and envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// Sender, credentials and truncation.
    pub envelope: Envelope,
}

impl UeventSocket {
    /// Opens and binds the socket with a receive buffer of `receive_buffer` bytes, set with
    /// `SO_RCVBUFFORCE` (which needs `CAP_NET_ADMIN` and ignores `net.core.rmem_max`) or, if
    /// that is refused, `SO_RCVBUF` (silently capped at `rmem_max`). Sizes above
    /// [`MAX_RECEIVE_BUFFER`] are refused: the kernel takes the size as a C `int`, and larger
    /// ones would be cut or wrap to its minimum buffer.
    pub fn open(receive_buffer: usize) -> Result<UeventSocket, SocketError> {
        if receive_buffer > MAX_RECEIVE_BUFFER {
            return Err(SocketError::ReceiveBufferRange(receive_buffer));
        }
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .map_err(SocketError::Create)?;
        setsockopt(&fd, sockopt::PassCred, &true).map_err(SocketError::PassCred)?;
        if let Err(forced) = setsockopt(&fd, sockopt::RcvBufForce, &receive_buffer) {
            tracing::warn!(
                errno = %forced,
                bytes = receive_buffer,
                "SO_RCVBUFFORCE refused; falling back to SO_RCVBUF, capped at net.core.rmem_max"
            );
            setsockopt(&fd, sockopt::RcvBuf, &receive_buffer).map_err(|errno| {
                SocketError::ReceiveBuffer {
                    bytes: receive_buffer,
                    errno,
                }
            })?;
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, KERNEL_GROUP)).map_err(SocketError::Bind)?;
        let local: NetlinkAddr = getsockname(fd.as_raw_fd()).map_err(SocketError::Query)?;
        let effective = getsockopt(&fd, sockopt::RcvBuf).map_err(SocketError::Query)?;
        if effective < receive_buffer {
            tracing::warn!(
                requested = receive_buffer,
                effective,
                "the receive buffer is smaller than requested; events may be lost in bursts"
            );
        }
        Ok(UeventSocket {
            fd,
            port: local.pid(),
            receive_buffer: effective,
        })
    }

    /// The port id the kernel assigned (not necessarily our pid).
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The effective receive buffer as the kernel reports it (twice the size asked for, to
    /// account for its bookkeeping).
    pub fn receive_buffer(&self) -> usize {
        self.receive_buffer
    }

    /// Receives one datagram into `buf` without blocking. `cmsg` is scratch space from
    /// [`credentials_space`]. Errors are the kernel's: `EAGAIN` when the queue is empty,
    /// `ENOBUFS` once after the kernel dropped events for this socket.
    pub fn recv(&self, buf: &mut [u8], cmsg: &mut [u8]) -> Result<Received, Errno> {
        let mut iov = [IoSliceMut::new(buf)];
        let msg =
            recvmsg::<NetlinkAddr>(self.fd.as_raw_fd(), &mut iov, Some(cmsg), MsgFlags::empty())?;
        let credentials = msg.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|c| match c {
                ControlMessageOwned::ScmCredentials(creds) => Some(Credentials {
                    pid: creds.pid(),
                    uid: creds.uid(),
                }),
                _ => None,
            })
        });
        Ok(Received {
            len: msg.bytes,
            envelope: Envelope {
                sender: msg.address.map(|a| Sender {
                    port: a.pid(),
                    groups: a.groups(),
                }),
                credentials,
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            },
        })
    }
}

impl AsFd for UeventSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Scratch space for one `SCM_CREDENTIALS` control message.
pub fn credentials_space() -> Vec<u8> {
    nix::cmsg_space!(UnixCredentials)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SO_RCVBUF(FORCE)` takes a C `int`: a size above `i32::MAX` must not wrap to a negative
    /// number, which the kernel turns into its minimum buffer.
    #[test]
    fn a_receive_buffer_the_kernel_cannot_take_is_refused() {
        for bytes in [1 << 31, 3 << 30, (1 << 32) - 1, 1 << 32] {
            match UeventSocket::open(bytes) {
                Err(SocketError::ReceiveBufferRange(asked)) => assert_eq!(asked, bytes),
                Ok(socket) => panic!(
                    "{bytes} bytes asked for, {} bytes effective: accepted",
                    socket.receive_buffer()
                ),
                Err(other) => panic!("{bytes}: {other}"),
            }
        }
    }

    #[test]
    fn the_largest_receive_buffer_the_kernel_takes_is_accepted() {
        let socket = UeventSocket::open(MAX_RECEIVE_BUFFER)
            .unwrap_or_else(|err| panic!("{MAX_RECEIVE_BUFFER} bytes: {err}"));
        // Without CAP_NET_ADMIN, net.core.rmem_max caps it; it never wraps to the minimum.
        assert!(socket.receive_buffer() > 64 * 1024, "{socket:?}");
    }
}
