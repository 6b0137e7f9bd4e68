//! Coldplug: replay an `add` event for every device that existed before devmgr started, and
//! know when the replay is complete.
//!
//! - **Walk** ([`walk::list`]): `<sysfs>/devices` without following symlinks, parents before
//!   children, every directory with a regular `uevent` file and a `subsystem` link, found from
//!   one read of each directory (the entries' types come with them: nothing is `stat`ed). The
//!   walk holds one path and the names in the directories on it; the devices found are kept
//!   front-coded ([`walk::DeviceList`]: mostly the part of each path that differs from the one
//!   before), so a pass's heap grows by tens of bytes per device, not by whole paths
//!   ([`walk::devices`] gives the same list as whole paths).
//! - **Write** ([`trigger::add`]): `add <uuid>` into each `uevent` file, a fresh UUID per write,
//!   so the kernel sends `SYNTH_UUID=<uuid>`. `ENOENT`/`ENODEV` (device gone, driver refuses)
//!   are counted and skipped, `EROFS` stops the writes, any other error is logged, counted and
//!   skipped.
//! - **Pace and settle** ([`Pass`]): at most a window of written-but-unanswered devices, so the
//!   replay cannot overrun the listener's socket; settled when every written UUID has come back
//!   through the listener (matched on `SYNTH_UUID`, never on devpath). When answers stop for the
//!   settle timeout, each silent device is re-triggered once; a device still silent at the next
//!   timeout is given up on and named in the report, and the devices not written yet are still
//!   written. The pass ends unsettled if it gave up on any.
//! - **Actor** ([`Coldplug`]): subscribes to the listener, runs the coldplug pass at start, answers
//!   [`ColdplugMsg::WaitSettled`] when it ends (and calls `on_settled`, e.g. to signal Done),
//!   and on every listener `Resync` (or [`ColdplugMsg::Resync`]; those asked for while a pass
//!   runs make one pass after it) replays the devices module loading depends on: those with a
//!   `modalias` file and those [`ColdplugConfig::resync_also`] matches ([`walk::DeviceMatch`]:
//!   by subsystem or name, for rules that do not go by `MODALIAS`). The walk and the writes run
//!   on tokio's blocking threads ([`Batch`]), so a slow driver's uevent callback never holds a
//!   worker thread that the listener's and the loader's actors need.
//! - **Supervised** ([`runnable`]): a node of the supervision tree that starts only once the
//!   listener is registered, signals Healthy when subscribed and Done when settled, then keeps
//!   serving resyncs until cancelled.
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
//! # Performance
//!
//! Knowing that every device was replayed costs little over not knowing, because most of
//! either run is the walk of sysfs itself; the figures (the cost of certainty, and a `/sys` of
//! 100,000 devices) and the commands that measure them are in `BENCH.md`.
//!
//! # Dependencies
//!
//! `nix` for errno values, `ractor`/`tokio` for the actor, `supervisor` for the supervised
//! runnable, `listener` and `uevent` for the events, `tracing`. (`walkdir`, which the walk used
//! before, is now only the reference of a test.)

mod actor;
mod pass;
pub mod supervised;
pub mod trigger;
mod uuid;
pub mod walk;

pub use actor::{
    Coldplug, ColdplugArgs, ColdplugConfig, ColdplugMsg, ColdplugState, OnSettled, Pacing,
};
pub use pass::{Batch, BatchOutcome, Pass, PassKind, PassReport, TimeoutAction};
pub use supervised::runnable;
pub use uuid::{UuidSource, is_uuid};
