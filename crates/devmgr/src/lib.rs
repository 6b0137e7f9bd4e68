//! The device manager subsystem: wires the listener, coldplug and module-loader actors under a
//! supervisor, reads the configuration file, and backs the `devmgr` command line.
//!
//! - [`config`]: `devmgr.toml` (defaults without a file; unknown keys and bad values are errors
//!   naming the line).
//! - [`subsystem`]: the `devmgr` runnable a parent supervisor starts (`root.devices` in the
//!   example agent, `root.devmgr` under `devmgr run`), with `listener`, `loader` and `coldplug`
//!   as one group (`docs/architecture.md#the-supervision-tree`).
//! - [`observe`]: when the subsystem has settled, and a summary of every actor's counters.
//! - [`handled`]: [`Observer::settle`](subsystem::Observer::settle), the wait behind
//!   `devmgr settle` until every uevent the kernel had sent up to a seqnum has been handled.
//! - [`subscription`]: [`Observer::subscribe`](subsystem::Observer::subscribe), bounded, typed
//!   subscriptions to the accepted uevents for the other subsystems of a node agent.
//! - [`control`]: the control socket `devmgr run` answers `devmgr settle` on.
//! - [`notify`]: readiness for a service manager (`NOTIFY_SOCKET`).
//!
//! # Embedding
//!
//! The way to put devmgr into a node agent is the example agent of this workspace,
//! `examples/node-agent` (`cargo run -p node-agent -- examples/node-agent/node-agent.toml` as
//! root; dry run by default): copy its `src/main.rs` and `node-agent.toml`. Its root mounts
//! devmgr as `root.devices` next to a subsystem that subscribes to the accepted uevents and
//! reports network interfaces and block devices as they come and go; devmgr's settings are
//! the `[devmgr]` table of the agent's own file ([`config::Section`]). The devmgr part is
//! about twenty lines:
//!
//! ```no_run
//! use devmgr::config::Config;
//! use devmgr::subscription::{Filter, Notification};
//! use devmgr::subsystem::{self, RunOptions};
//! use supervisor::{Context, Options, RestartPolicy, Signal, Supervisor};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::load("devmgr.toml".as_ref())?; // or Config::from_section
//! // devmgr's restart policy names its nodes relative to where it runs: attach it there.
//! let policy = RestartPolicy::default().attach("root.devices", config.restart.clone())?;
//! let (devices, mut observer) = subsystem::runnable(config, RunOptions::default());
//! // Another subsystem's subscription: typed, bounded, and it survives the listener's restarts.
//! let mut uevents = observer.subscribe(Filter::all(), 256);
//! let root = move |ctx: Context| {
//!     let devices = devices.clone();
//!     async move {
//!         ctx.run("devices", devices)?; // root.devices.{listener,loader,coldplug}
//!         ctx.signal(Signal::Healthy)?;
//!         ctx.signal(Signal::Done)?;
//!         Ok(())
//!     }
//! };
//! let tree = Supervisor::new(root, Options::new().restart_policy(policy)).await?;
//! let summary = observer.wait_settled().await; // replay answered, loads done, quiet
//! println!("{}", summary.unwrap_or_default());
//! while let Some(notification) = uevents.recv().await {
//!     match notification {
//!         Notification::Uevents(batch) => println!("{} events", batch.len()),
//!         Notification::Resync(why) => println!("events lost ({why:?}): re-read sysfs"),
//!     }
//! #   break;
//! }
//! // Later, e.g. after plugging a device: wait until every event the kernel has sent so far
//! // is handled (`devmgr settle` does this through the daemon's control socket).
//! let seqnum = devmgr::handled::kernel_seqnum("/sys".as_ref())?;
//! match observer.settle(seqnum, std::time::Duration::from_secs(120)).await {
//!     Ok(()) => println!("handled"),
//!     Err(pending) => eprintln!("{pending}"), // the lowest unhandled seqnum, plans running, …
//! }
//! # drop(tree); Ok(()) }
//! ```
//!
//! `devmgr run` mounts it alone, as `root.devmgr` ([`subsystem::root`]).

pub mod config;
pub mod control;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod handled;
pub mod notify;
pub mod observe;
pub mod subscription;
pub mod subsystem;
