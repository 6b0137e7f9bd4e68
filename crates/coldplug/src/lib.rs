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
//! # Performance: the cost of certainty
//!
//! `cargo bench -p coldplug --bench coldplug` (root, real `/sys`): the bare walk + write of
//! every device (what `udevadm trigger` does without `--settle`) next to a full coldplug that
//! waits until every written UUID came back through a 128 MiB listener (paced, window 1024),
//! medians of 11 rounds each, optimised bench profile, on the build machine (2 shared cores,
//! other builds running) on 2026-11-26:
//!
//! | run | devices | bare walk + write | coldplug + settle | ratio |
//! |---|---|---|---|---|
//! | 1 | 390 | 14.37 ms | 15.15 ms | 1.05× |
//! | 2 | 390 | 14.40 ms | 16.14 ms | 1.12× |
//!
//! Knowing that every device was replayed costs 5–12 % over not knowing; most of either run is
//! the walk of sysfs itself.
//!
//! # Dependencies
//!
//! `walkdir` for the sysfs walk, `nix` for errno values, `ractor`/`tokio` for the actor,
//! `supervisor` for the supervised runnable, `listener` and `uevent` for the events,
//! `tracing`.

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
