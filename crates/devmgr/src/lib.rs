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
//! - [`handled`]: [`Observer::settle`](subsystem::Observer::settle), the wait behind
//!   `devmgr settle`: until every uevent the kernel had sent up to a seqnum has been handled
//!   (accepted by the listener; for the loader, looked up and its load plans ended), or a
//!   timeout says what is pending. The exact rule is in the module docs.
//! - [`control`]: the control socket `devmgr run` answers `devmgr settle` on.
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
//! use supervisor::{Options, Supervisor};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("devmgr.toml".as_ref())?;
//! let policy = config.restart.clone();
//! let (devmgr, mut observer) = subsystem::runnable(config, Default::default());
//! // A node agent runs `devmgr` under its own root with ctx.run("devmgr", devmgr);
//! // alone, subsystem::root does that:
//! let tree = Supervisor::new(subsystem::root(devmgr), Options::new().restart_policy(policy)).await?;
//! let summary = observer.wait_settled().await; // replay answered, loads done, quiet
//! println!("{}", summary.unwrap_or_default());
//! // Later, e.g. after plugging a device: wait until every event the kernel has sent so far
//! // is handled (`devmgr settle` does this through the daemon's control socket).
//! let seqnum = devmgr::handled::kernel_seqnum("/sys".as_ref())?;
//! match observer.settle(seqnum, std::time::Duration::from_secs(120)).await {
//!     Ok(()) => println!("handled"),
//!     Err(pending) => eprintln!("{pending}"), // the lowest unhandled seqnum, plans running, …
//! }
//! # drop(tree); Ok(()) }
//! ```

pub mod config;
pub mod control;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod handled;
pub mod notify;
pub mod observe;
pub mod subsystem;
