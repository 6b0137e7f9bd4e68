//! The typed kernel uevent that every devmgr actor exchanges.
//!
//! A [`Uevent`] is one device event: an [`Action`], the device's `devpath` below `/sys`, its
//! subsystem, the kernel's sequence number, and every other `KEY=VALUE` property in arrival
//! order, as bytes (the kernel does not promise UTF-8). It comes from one of three places:
//!
//! - [`Uevent::parse_kernel`] checks a datagram from `NETLINK_KOBJECT_UEVENT` against rules
//!   R6–R10 of the reference notes and refuses the whole datagram on any fault, with a typed
//!   [`ParseError`] whose [`ParseError::reason`] can be counted.
//! - [`Uevent::parse_sysfs`] reads the `KEY=VALUE` lines of a `/sys/.../uevent` file (for
//!   re-synchronising from sysfs), refusing bad lines with a [`SysfsError`] naming the line.
//! - [`Uevent::builder`] makes one by hand; [`Uevent::encode`] turns an event back into the
//!   kernel's datagram form (for tests and tools).
//!
//! ```
//! use uevent::{Action, Uevent};
//!
//! let event = Uevent::builder(Action::Add, "/devices/pci0000:00/0000:00:05.0/virtio4")
//!     .subsystem("virtio")
//!     .seqnum(819)
//!     .property("MODALIAS", "virtio:d00000004v00001AF4")
//!     .property("SYNTH_UUID", "0")
//!     .build()?;
//! let datagram = event.encode()?;
//! let parsed = Uevent::parse_kernel(&datagram)?;
//! assert_eq!(parsed, event);
//! assert!(parsed.is_synthetic());
//! assert_eq!(parsed.modalias(), Some(&b"virtio:d00000004v00001AF4"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Limits
//!
//! Memory per event is bounded: a datagram or sysfs file is at most [`MAX_LEN`] bytes and
//! carries at most [`MAX_FIELDS`] fields. Each parsed event holds one copy of its bytes and a
//! table of offsets into them (two allocations).
//!
//! # Performance
//!
//! `cargo bench -p uevent` parses a 300-byte `add` datagram of a USB interface (9 fields).
//! See the crate README for the figures measured on the build machine.
//!
//! # Dependencies
//!
//! Only `thiserror`, for the error types.

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
