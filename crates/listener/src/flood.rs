//! Hostile input for stress tests (feature `test-support`): a process that floods the uevent
//! group and the listeners' ports with forged and malformed datagrams, as an attacker with its
//! own netlink socket could. Used by the host tests and, through `devmgr flood` (feature
//! `fault-injection` of the devmgr crate), inside the QEMU guest.
//!
//! Every forged event names [`FORGED_MODALIAS`]: a module no test machine needs, so a forgery
//! that got through would show up as an extra module or plan.

use std::io;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, sendto, socket,
};
use uevent::{Action, Uevent};

/// The modalias every forged event carries (Intel 82574L, driven by `e1000e`, which the test
/// guests do not have).
pub const FORGED_MODALIAS: &str = "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00";

/// The kinds of datagram sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// A well-formed `add` event multicast on group 1 from a userspace port.
    Multicast,
    /// A well-formed `add` event sent straight to a listener's port.
    Unicast,
    /// Multicast datagrams with broken headers: libudev's frame, no `@`, a header that does not
    /// match `DEVPATH`, no `SEQNUM`, a relative devpath, bytes that are no event at all.
    BadHeader,
    /// Multicast events larger than any valid one (20 KiB).
    Oversize,
}

impl Forgery {
    /// Every kind, in the order [`flood`] sends them.
    pub const ALL: [Forgery; 4] = [
        Forgery::Multicast,
        Forgery::Unicast,
        Forgery::BadHeader,
        Forgery::Oversize,
    ];
}

/// What a flood sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloodReport {
    /// Datagrams the kernel took, per kind in [`Forgery::ALL`] order.
    pub sent: [u64; 4],
    /// Sends that failed (e.g. `ENOBUFS`, `ECONNREFUSED` of a port that went away).
    pub failed: u64,
    /// Listener ports the unicast datagrams went to.
    pub ports: Vec<u32>,
}

/// A forged event for device number `n`.
pub fn forged_event(n: usize) -> Vec<u8> {
    Uevent::builder(Action::Add, format!("/devices/devmgr-forged/dev{n}"))
        .subsystem("pci")
        .seqnum(1 + n as u64)
        .property("MODALIAS", FORGED_MODALIAS)
        .build()
        .ok()
        .and_then(|e| e.encode().ok())
        .unwrap_or_default()
}

/// Malformed datagram number `n` (cycling through the broken forms).
pub fn malformed(n: usize) -> Vec<u8> {
    let valid = forged_event(n);
    match n % 6 {
        0 => {
            let mut frame = b"libudev\0\xfe\xed\xca\xfe".to_vec();
            frame.extend_from_slice(&valid);
            frame
        }
        1 => b"add /devices/x\0ACTION=add\0DEVPATH=/devices/x\0SEQNUM=1\0".to_vec(),
        2 => b"add@/devices/a\0ACTION=add\0DEVPATH=/devices/b\0SUBSYSTEM=pci\0SEQNUM=1\0".to_vec(),
        3 => b"add@/devices/a\0ACTION=add\0DEVPATH=/devices/a\0SUBSYSTEM=pci\0".to_vec(),
        4 => b"add@devices/../a\0ACTION=add\0DEVPATH=devices/../a\0SUBSYSTEM=pci\0SEQNUM=1\0"
            .to_vec(),
        _ => (0..512).map(|i| (i * 7 + n) as u8).collect(),
    }
}

/// Uevent number `n` as a root process injects it through the kernel, a netlink message for
/// `uevent_net_rcv_skb` (lib/kobject_uevent.c): `NLM_F_REQUEST`, a type of at least
/// `NLMSG_MIN_TYPE` (0x10), and an event without `SEQNUM` as its payload. Sent to port 0 by a
/// process with `CAP_SYS_ADMIN`, it makes the kernel append `SEQNUM=<n>\0` and multicast the
/// payload to group 1 from port 0, with the sender's credentials (its pid, not 0).
pub fn injection(n: usize) -> Vec<u8> {
    let devpath = format!("/devices/devmgr-injected/dev{n}");
    let payload = format!(
        "add@{devpath}\0ACTION=add\0DEVPATH={devpath}\0SUBSYSTEM=pci\0MODALIAS={FORGED_MODALIAS}\0"
    );
    const NLMSG_HDRLEN: usize = 16;
    const NLMSG_MIN_TYPE: u16 = 0x10;
    const NLM_F_REQUEST: u16 = 1;
    let len = u32::try_from(NLMSG_HDRLEN + payload.len()).unwrap_or(u32::MAX);
    let mut message = Vec::with_capacity(NLMSG_HDRLEN + payload.len());
    message.extend_from_slice(&len.to_ne_bytes());
    message.extend_from_slice(&NLMSG_MIN_TYPE.to_ne_bytes());
    message.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    message.extend_from_slice(&0u32.to_ne_bytes()); // sequence number
    message.extend_from_slice(&0u32.to_ne_bytes()); // sender port: filled in by the kernel
    message.extend_from_slice(payload.as_bytes());
    message
}

/// The ports of the sockets bound to the uevent multicast group, from `/proc/net/netlink`
/// (protocol 15, group bit 1), without `own`.
pub fn uevent_listener_ports(own: u32) -> Vec<u32> {
    let Ok(table) = std::fs::read_to_string("/proc/net/netlink") else {
        return Vec::new();
    };
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (eth, pid, groups) = (f.get(1)?, f.get(2)?, f.get(3)?);
            let pid: u32 = pid.parse().ok()?;
            let groups = u32::from_str_radix(groups, 16).ok()?;
            (*eth == "15" && pid != 0 && pid != own && groups & 1 == 1).then_some(pid)
        })
        .collect()
}

/// Sends `count` datagrams of every kind of [`Forgery`] from a fresh uevent socket (needs
/// root for multicast). Unicast datagrams go round-robin to `ports` (e.g. every listener of
/// [`uevent_listener_ports`]).
pub fn flood(count: usize, ports: &[u32]) -> io::Result<FloodReport> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )?;
    bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
    let ports = ports.to_vec();
    let mut report = FloodReport {
        ports: ports.clone(),
        ..FloodReport::default()
    };
    let group = NetlinkAddr::new(0, 1);
    for (slot, kind) in Forgery::ALL.into_iter().enumerate() {
        for n in 0..count {
            let (bytes, to) = match kind {
                Forgery::Multicast => (forged_event(n), group),
                Forgery::Unicast => match ports.get(n % ports.len().max(1)) {
                    Some(port) => (forged_event(n), NetlinkAddr::new(*port, 0)),
                    None => break,
                },
                Forgery::BadHeader => (malformed(n), group),
                Forgery::Oversize => {
                    let mut big = forged_event(n);
                    big.resize(20 * 1024, b'x');
                    (big, group)
                }
            };
            match sendto(sock.as_raw_fd(), &bytes, &to, MsgFlags::empty()) {
                Ok(_) => report.sent[slot] += 1,
                Err(_) => report.failed += 1,
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_events_parse_as_events_and_malformed_ones_do_not() {
        let forged = forged_event(3);
        let event = Uevent::parse_kernel(&forged).expect("a valid event");
        assert_eq!(event.modalias(), Some(FORGED_MODALIAS.as_bytes()));
        for n in 0..6 {
            assert!(Uevent::parse_kernel(&malformed(n)).is_err(), "form {n}");
        }
    }

    #[test]
    fn an_injection_is_a_netlink_message_around_an_event_without_seqnum() {
        let message = injection(7);
        let len = u32::from_ne_bytes([message[0], message[1], message[2], message[3]]);
        assert_eq!(len as usize, message.len());
        assert_eq!(u16::from_ne_bytes([message[4], message[5]]), 0x10);
        let mut event = message[16..].to_vec();
        // What the kernel appends before it broadcasts.
        event.extend_from_slice(b"SEQNUM=1\0");
        let event = Uevent::parse_kernel(&event).expect("a valid event once the kernel is done");
        assert_eq!(event.devpath(), b"/devices/devmgr-injected/dev7");
        assert_eq!(event.modalias(), Some(FORGED_MODALIAS.as_bytes()));
    }
}
