//! The uevent listener actor: a `NETLINK_KOBJECT_UEVENT` socket bound to group 1 that accepts
//! only datagrams from the kernel, parses them into [`uevent::Uevent`]s, survives receive-buffer
//! overruns by asking for a resynchronisation, and fans events out to subscribers.
//!
//! Status: not implemented yet (issue #4). The crate exports nothing so far.
