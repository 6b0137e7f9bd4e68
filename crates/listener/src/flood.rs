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
}
