#![doc = include_str!("../README.md")]

mod action;
mod encode;
mod error;
mod event;
mod kernel;
mod sysfs;

pub use action::{Action, UnknownAction};
pub use encode::UeventBuilder;
pub use error::{BuildError, EncodeError, Field, ParseError, RejectReason, SysfsError};
pub use event::Uevent;

/// The largest datagram or sysfs `uevent` file accepted, in bytes. The kernel's own limit is
/// 2048 bytes of environment plus the header (`UEVENT_BUFFER_SIZE`).
pub const MAX_LEN: usize = 8 * 1024;

/// The most `KEY=VALUE` fields accepted in one event, `ACTION`, `DEVPATH`, `SUBSYSTEM` and
/// `SEQNUM` included (the kernel's `UEVENT_NUM_ENVP`).
pub const MAX_FIELDS: usize = 64;
