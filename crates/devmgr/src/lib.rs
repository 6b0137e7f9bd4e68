//! The device manager subsystem: wires the listener, coldplug and module-loader actors under a
//! supervisor, reads the configuration file, and backs the `devmgr` command line.
//!
//! - [`config`]: `devmgr.toml` (defaults without a file; unknown keys and bad values are errors
//!   naming the line).
//! - [`subsystem`]: the `devmgr` runnable a parent supervisor starts (e.g. as `root.devmgr`):
//!   `listener`, `loader` and `coldplug` as one group, in that order of readiness. When one of
//!   them dies, the group restarts and coldplug replays every device, so whatever was missed
//!   while the listener or the loader was down is handled; a listener `Resync` (overrun) makes
//!   coldplug replay the devices with a modalias.
//! - [`observe`]: when the subsystem has settled, and a summary of every actor's counters.
//! - [`notify`]: readiness for a service manager (`NOTIFY_SOCKET`).
//!
//! Other subsystems of a node agent subscribe to the uevents the listener accepted: look the
//! listener up by [`subsystem::Observer::listener`] and send it `ListenerMsg::Subscribe` with a
//! `listener::Subscription` (`Subscription::to_actor` or `Subscription::to_fn`, an optional
//! filter by action, a bound on events in flight); they get `Notification::Uevents` batches and a
//! `Notification::Resync` whenever events may have been lost. See the `listener` crate.
//!
//! ```no_run
//! use devmgr::{config::Config, subsystem};
//! use supervisor::{Context, Options, Signal, Supervisor};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (devmgr, mut observer) = subsystem::runnable(Config::default(), Default::default());
//! let tree = Supervisor::new(
//!     move |ctx: Context| {
//!         let devmgr = devmgr.clone();
//!         async move {
//!             ctx.run("devmgr", devmgr)?;
//!             ctx.signal(Signal::Healthy)?;
//!             ctx.signal(Signal::Done)?;
//!             Ok(())
//!         }
//!     },
//!     Options::new(),
//! )
//! .await?;
//! let summary = observer.wait_settled().await; // replay answered, loads done, quiet
//! println!("{}", summary.unwrap_or_default());
//! # drop(tree); Ok(()) }
//! ```

pub mod config;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod notify;
pub mod observe;
pub mod subsystem;
