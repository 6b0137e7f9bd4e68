//! Deciding whether a datagram comes from the kernel (see `docs/uevents.md#trust-checks`).
//!
//! The kernel multicasts the uevents it generates to group 1 from port 0, and their
//! `SCM_CREDENTIALS` are all zero: pid 0, uid 0 (seen inside a user namespace that does not map
//! root as the overflow uid). A datagram is accepted only with all of these:
//!
//! - **Port 0, group 1.** Userspace cannot bind port 0, so a process multicasting from its own
//!   socket (which needs `CAP_NET_ADMIN`) shows its own port.
//! - **Pid 0.** A process with `CAP_SYS_ADMIN` over the network namespace's user namespace can
//!   also have the kernel multicast a uevent for it: a netlink message of a type of at least
//!   `NLMSG_MIN_TYPE`, sent to port 0, goes to `uevent_net_rcv_skb` (lib/kobject_uevent.c), which
//!   appends a `SEQNUM` and broadcasts the payload from port 0 to group 1 — with the sender's
//!   credentials, so uid 0 for root. The pid in them is never 0: netlink stamps every message a
//!   process sends with its credentials, whether or not it attached any, and the pid is the
//!   sender's thread-group id as its own pid namespace numbers it (taken at send time). A sender
//!   with `CAP_SYS_ADMIN` may claim another pid, but only one that exists there, which pid 0
//!   never does (`ESRCH`). Such a datagram is dropped as [`DropReason::Injected`].
//! - **Uid 0**, or the overflow uid when it is not mapped in our user namespace ([`UidPolicy`]).
//!
//! What pid 0 does and does not prove, across pid namespaces:
//!
//! - Netlink does not translate the pid into the receiver's pid namespace (unlike `AF_UNIX`,
//!   where a pid the receiver cannot see reads as 0). So a sender in any other pid namespace —
//!   a child, a sibling, an ancestor — still shows the non-zero pid it has in its own: a
//!   process that is pid 1 of a fresh pid namespace shows up as pid 1 here, whatever its pid in
//!   ours. No pid namespace layout makes an injected datagram read as pid 0.
//! - For the same reason a non-zero pid names no process of ours: only "zero or not" is used.
//! - Pid 0 proves that no process sent the datagram, not that no process caused it: writing to
//!   a device's `uevent` file makes the kernel generate a genuine event (pid 0), which is what
//!   coldplug relies on. Its content is the kernel's (a writer's extra `KEY=VALUE` arguments
//!   arrive prefixed with `SYNTH_ARG_`).
//! - This rests on how the kernel fills netlink credentials (forced for every sender, zeroed in
//!   the buffers the kernel allocates for its own uevents), not on a documented ABI; the host
//!   test `a_uevent_injected_through_the_kernel_is_dropped_and_a_real_add_is_accepted` checks
//!   it against the running kernel.

use std::io;
use std::path::Path;

use crate::stats::DropReason;

/// What `recvmsg` said about one datagram besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// The sender's netlink port id and the multicast group mask it was sent to, if the kernel
    /// gave an address.
    pub sender: Option<Sender>,
    /// The `SCM_CREDENTIALS`, if present.
    pub credentials: Option<Credentials>,
    /// The datagram was larger than the receive buffer (`MSG_TRUNC`).
    pub truncated: bool,
}

/// A netlink source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sender {
    /// Port id (`nl_pid`); 0 is the kernel.
    pub port: u32,
    /// Multicast group mask (`nl_groups`); 0 means unicast.
    pub groups: u32,
}

/// The parts of `SCM_CREDENTIALS` that are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The sender's pid as its own pid namespace numbers it; 0 for the kernel.
    pub pid: i32,
    /// The sender's uid, as our user namespace maps it.
    pub uid: u32,
}

impl Envelope {
    /// What the kernel attaches to its own uevents: port 0, group 1, pid 0, uid 0.
    pub const KERNEL: Envelope = Envelope {
        sender: Some(Sender { port: 0, groups: 1 }),
        credentials: Some(Credentials { pid: 0, uid: 0 }),
        truncated: false,
    };
}

/// Which sender uids are the kernel's: 0, and the overflow uid when it is not mapped in our
/// user namespace (the kernel's uid 0 as seen from a namespace that does not map it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidPolicy {
    /// The overflow uid, accepted only when it is not mapped in our namespace.
    unmapped_overflow_uid: Option<u32>,
}

impl UidPolicy {
    /// Accepts uid 0 only (the init user namespace maps every uid).
    pub const ROOT_ONLY: UidPolicy = UidPolicy {
        unmapped_overflow_uid: None,
    };

    /// Builds the policy from `uid_map` (`/proc/self/uid_map`) and `overflowuid`
    /// (`/proc/sys/kernel/overflowuid`). When either cannot be read, only uid 0 is accepted.
    pub fn from_proc(uid_map: &Path, overflowuid: &Path) -> UidPolicy {
        let read = |path: &Path| std::fs::read_to_string(path);
        match (read(uid_map), read(overflowuid)) {
            (Ok(map), Ok(overflow)) => match overflow.trim().parse::<u32>() {
                Ok(overflow) => UidPolicy::new(&map, overflow),
                Err(_) => UidPolicy::ROOT_ONLY,
            },
            _ => UidPolicy::ROOT_ONLY,
        }
    }

    /// The policy for a namespace whose `uid_map` reads `uid_map` and whose overflow uid is
    /// `overflow_uid`. Malformed map lines are ignored (they map nothing).
    pub fn new(uid_map: &str, overflow_uid: u32) -> UidPolicy {
        let mapped = uid_map.lines().any(|line| {
            let mut fields = line.split_whitespace().map(str::parse::<u64>);
            match (fields.next(), fields.next(), fields.next()) {
                (Some(Ok(inside)), Some(Ok(_)), Some(Ok(count))) => {
                    let uid = u64::from(overflow_uid);
                    inside <= uid && uid < inside.saturating_add(count)
                }
                _ => false,
            }
        });
        UidPolicy {
            unmapped_overflow_uid: (!mapped).then_some(overflow_uid),
        }
    }

    /// Whether `uid` is the kernel's.
    pub fn accepts(&self, uid: u32) -> bool {
        uid == 0 || Some(uid) == self.unmapped_overflow_uid
    }
}

/// Checks the envelope of one datagram; `Err` names why it is not the kernel's.
pub fn check(envelope: &Envelope, uids: &UidPolicy) -> Result<(), DropReason> {
    if envelope.truncated {
        return Err(DropReason::Truncated);
    }
    let sender = envelope.sender.ok_or(DropReason::NoAddress)?;
    if sender.groups == 0 {
        return Err(DropReason::Unicast);
    }
    if sender.groups != 1 {
        return Err(DropReason::WrongGroup);
    }
    if sender.port != 0 {
        return Err(DropReason::NotKernelPort);
    }
    let credentials = envelope.credentials.ok_or(DropReason::NoCredentials)?;
    if credentials.pid != 0 {
        return Err(DropReason::Injected);
    }
    if !uids.accepts(credentials.uid) {
        return Err(DropReason::ForeignUid);
    }
    Ok(())
}

/// Whether our network namespace is the init process's (other namespaces never see
/// hardware uevents). `Err` when either namespace link cannot be read.
pub fn in_init_netns(ours: &Path, init: &Path) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (a, b) = (std::fs::metadata(ours)?, std::fs::metadata(init)?);
    Ok(a.dev() == b.dev() && a.ino() == b.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Envelope)) -> Envelope {
        let mut envelope = Envelope::KERNEL;
        f(&mut envelope);
        envelope
    }

    #[test]
    fn kernel_envelope_is_accepted() {
        assert_eq!(check(&Envelope::KERNEL, &UidPolicy::ROOT_ONLY), Ok(()));
    }

    #[test]
    fn each_untrusted_envelope_is_refused_with_its_reason() {
        let policy = UidPolicy::ROOT_ONLY;
        let cases = [
            (with(|e| e.truncated = true), DropReason::Truncated),
            (with(|e| e.sender = None), DropReason::NoAddress),
            (
                with(|e| e.sender = Some(Sender { port: 0, groups: 0 })),
                DropReason::Unicast,
            ),
            (
                with(|e| e.sender = Some(Sender { port: 0, groups: 2 })),
                DropReason::WrongGroup,
            ),
            (
                with(|e| {
                    e.sender = Some(Sender {
                        port: 4242,
                        groups: 1,
                    })
                }),
                DropReason::NotKernelPort,
            ),
            (with(|e| e.credentials = None), DropReason::NoCredentials),
            (
                with(|e| e.credentials = Some(Credentials { pid: 4242, uid: 0 })),
                DropReason::Injected,
            ),
            (
                with(|e| e.credentials = Some(Credentials { pid: 1, uid: 0 })),
                DropReason::Injected,
            ),
            (
                with(|e| e.credentials = Some(Credentials { pid: 0, uid: 1000 })),
                DropReason::ForeignUid,
            ),
        ];
        for (envelope, reason) in cases {
            assert_eq!(check(&envelope, &policy), Err(reason), "{envelope:?}");
        }
    }

    #[test]
    fn init_namespace_maps_everything_so_only_root_is_the_kernel() {
        let policy = UidPolicy::new("         0          0 4294967295\n", 65534);
        assert!(policy.accepts(0));
        assert!(!policy.accepts(65534));
    }

    #[test]
    fn in_a_user_namespace_the_unmapped_overflow_uid_is_the_kernel() {
        // A rootless container: our root is host uid 100000, 65536 uids mapped.
        let policy = UidPolicy::new("0 100000 65534\n", 65534);
        assert!(policy.accepts(65534));
        assert!(policy.accepts(0));
        assert!(!policy.accepts(1000));
        // When the overflow uid is itself mapped, it is an ordinary user.
        let policy = UidPolicy::new("0 100000 65536\n", 65534);
        assert!(!policy.accepts(65534));
    }

    #[test]
    fn unreadable_proc_files_fall_back_to_root_only() {
        let missing = Path::new("/nonexistent/devmgr/uid_map");
        assert_eq!(UidPolicy::from_proc(missing, missing), UidPolicy::ROOT_ONLY);
    }

    #[test]
    fn malformed_uid_map_lines_map_nothing() {
        let policy = UidPolicy::new("garbage\n0 x 5\n", 65534);
        assert!(policy.accepts(65534));
    }
}
