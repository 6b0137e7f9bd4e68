//! Coldplug: replay an `add` event for every device that existed before devmgr started, and
//! know when the replay is complete.
//!
//! `docs/uevents.md#coldplug` describes each step; here:
//!
//! - [`walk::list`]: the devices under `<sysfs>/devices`, held front-coded
//!   ([`walk::DeviceList`]; [`walk::devices`] gives the same list as whole paths).
//! - [`trigger::add`]: `add <uuid>` into a device's `uevent` file, a fresh UUID per write.
//! - [`Pass`]: pacing the writes against the listener, and settling when every UUID came back
//!   (re-triggering the silent once, then giving up on them).
//! - [`Coldplug`]: the actor. It runs the pass at start, answers [`ColdplugMsg::WaitSettled`]
//!   when it ends (and calls `on_settled`), and replays the devices module loading depends on
//!   ([`ColdplugConfig::resync_also`], [`walk::DeviceMatch`]) on every listener `Resync` or
//!   [`ColdplugMsg::Resync`]. Walks and writes run on tokio's blocking threads ([`Batch`]).
//! - [`runnable`]: the supervised node, which starts only once the listener is registered.
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
