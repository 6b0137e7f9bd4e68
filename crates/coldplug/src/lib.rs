//! Coldplug: replay an `add` event for every device that existed before devmgr started, and
//! know when the replay is complete.
//!
//! - **Walk** ([`walk::devices`]): `<sysfs>/devices` without following symlinks, parents before
//!   children, every directory with a regular `uevent` file.
//! - **Write** ([`trigger::add`]): `add <uuid>` into each `uevent` file, a fresh UUID per write,
//!   so the kernel sends `SYNTH_UUID=<uuid>`. `ENOENT`/`ENODEV` (device gone, driver refuses)
//!   are counted and skipped, `EROFS` stops the writes, any other error is logged, counted and
//!   skipped.
//! - **Pace and settle** ([`Pass`]): at most a window of written-but-unanswered devices, so the
//!   replay cannot overrun the listener's socket; settled when every written UUID has come back
//!   through the listener (matched on `SYNTH_UUID`, never on devpath). When answers stop for the
//!   settle timeout, the silent devices are re-triggered once; after a second timeout the pass
//!   ends unsettled and names them.
//! - **Actor** ([`Coldplug`]): subscribes to the listener, runs the coldplug pass at start, answers
//!   [`ColdplugMsg::WaitSettled`] when it ends (and calls `on_settled`, e.g. to signal Done),
//!   and on every listener `Resync` (or [`ColdplugMsg::Resync`]) replays the devices that have a
//!   `modalias` file.
//!
//! ```no_run
//! use coldplug::{Coldplug, ColdplugArgs, ColdplugConfig, ColdplugMsg};
//! use listener::{Listener, ListenerConfig};
//! use ractor::{Actor, call};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (listener, _) = Actor::spawn(None, Listener, ListenerConfig::default()).await?;
//! let args = ColdplugArgs { config: ColdplugConfig::default(), listener, on_settled: None };
//! let (coldplug, _) = Actor::spawn(None, Coldplug, args).await?;
//! let report = call!(coldplug, ColdplugMsg::WaitSettled)?;
//! println!("{} devices, {} answered, settled: {}", report.devices, report.answered, report.settled);
//! # Ok(()) }
//! ```
//!
//! # Dependencies
//!
//! `walkdir` for the sysfs walk, `nix` for errno values, `ractor`/`tokio` for the actor,
//! `listener` and `uevent` for the events, `tracing`, `thiserror`.

mod actor;
mod pass;
pub mod trigger;
mod uuid;
pub mod walk;

pub use actor::{
    Coldplug, ColdplugArgs, ColdplugConfig, ColdplugMsg, ColdplugState, OnSettled, Pacing,
};
pub use pass::{Pass, PassKind, PassReport, TimeoutAction};
pub use uuid::{UuidSource, is_uuid};
