//! The device manager subsystem: wires the listener, coldplug and module-loader actors under a
//! supervisor, reads the configuration file, and backs the `devmgr` command line.
//!
//! - [`config`]: `devmgr.toml` (defaults without a file; unknown keys and bad values are errors
//!   naming the line).
//! - [`subsystem`]: the `devmgr` runnable a parent supervisor starts (e.g. as `root.devmgr`):
//!   `listener`, `loader` and `coldplug` as one group, in that order of readiness.
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
//! observer.settled.wait_for(Option::is_some).await?; // the coldplug replay has settled
//! # drop(tree); Ok(()) }
//! ```
//!
//! Still to come (issue #8): `devmgr monitor` and `devmgr trigger`, readiness notification,
//! re-synchronising after a restart of the loader alone (today the group restarts together),
//! the restart policy in the config file, the VM test against udevd and `scripts/demo`.

pub mod config;
pub mod subsystem;
