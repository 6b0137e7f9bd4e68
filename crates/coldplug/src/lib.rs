//! The coldplug actor: writes `add <uuid>` into every `/sys/devices/**/uevent` so the kernel
//! replays an `add` event for each existing device, paces the writes against the listener, and
//! knows when every replayed event has come back (settled).
//!
//! Status: not implemented yet (issue #5). The crate exports nothing so far.
