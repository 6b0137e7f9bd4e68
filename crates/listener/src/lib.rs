//! The uevent listener: a `NETLINK_KOBJECT_UEVENT` socket that accepts only what the kernel
//! sent, parses it into [`uevent::Uevent`]s and fans them out to subscribers, without ever
//! losing an event silently.
//!
//! `docs/uevents.md` describes each step; here:
//!
//! - [`UeventSocket`]: the socket ([`MAX_RECEIVE_BUFFER`] at most; `#the-socket`).
//! - [`trust`]: the checks a datagram must pass, each drop counted by [`DropReason`]
//!   (`#trust-checks`).
//! - The reader thread: drains the socket whatever the async runtime does, and turns an
//!   overrun into a [`Notification::Resync`] (`#the-reader-thread`, `#overruns-and-resyncs`).
//! - [`Subscription`]: each subscriber's [`Filter`] and bounded [`Delivery`]s, in batches of at
//!   most [`MAX_BATCH`] (`#fan-out-to-subscribers`).
//! - [`Listener`]: the actor. It binds in `pre_start`, refuses to start when the receive buffer
//!   cannot hold a pacing window ([`check_window`]), and fails whenever its reader thread ends;
//!   [`ListenerMsg::Stats`] returns the counters.
//!
//! ```no_run
//! use listener::{Listener, ListenerConfig, ListenerMsg, Notification, Subscription};
//! use ractor::{Actor, ActorProcessingErr, ActorRef};
//!
//! struct Printer;
//! impl Actor for Printer {
//!     type Msg = Notification;
//!     type State = ();
//!     type Arguments = ();
//!     async fn pre_start(&self, _: ActorRef<Notification>, _: ()) -> Result<(), ActorProcessingErr> {
//!         Ok(())
//!     }
//!     async fn handle(&self, _: ActorRef<Notification>, msg: Notification, _: &mut ()) -> Result<(), ActorProcessingErr> {
//!         match msg {
//!             Notification::Uevents(batch) => {
//!                 for event in batch {
//!                     println!("{:?}", *event);
//!                 }
//!             }
//!             Notification::Resync(reason) => println!("resync: {reason:?}"),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (listener, _) = Actor::spawn(None, Listener, ListenerConfig::default()).await?;
//! let (printer, _) = Actor::spawn(None, Printer, ()).await?;
//! let id = ractor::call!(listener, ListenerMsg::Subscribe, Subscription::to_actor(printer))?;
//! # let _ = id; Ok(()) }
//! ```
//!
//! # Performance
//!
//! Events go to subscribers in batches, one mailbox message per batch rather than per event,
//! because ractor's cost per message, not parsing, limits the throughput.
//! `cargo bench -p listener --bench fanout` measures check → parse → fan-out without root
//! (in-memory datagrams with the kernel's envelope through the same [`Pipeline`] the reader
//! drives, to two ractor subscribers); its figures are in `BENCH.md`.
//!
//! # Dependencies
//!
//! `nix` for the socket calls (`recvmsg` with `SCM_CREDENTIALS`, `poll`, `pipe2`): rustix loses
//! the kernel's pid-0 credentials, and netlink-sys has no `recvmsg`, so it is not used.
//! `tokio` for the per-subscriber semaphores, `ractor` for the actor, `tracing`, `thiserror`.

mod actor;
mod buffer;
mod fanout;
#[cfg(feature = "test-support")]
pub mod flood;
mod pipeline;
mod reader;
mod socket;
mod stats;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod trust;

pub use actor::{
    DEFAULT_RECEIVE_BUFFER, Listener, ListenerConfig, ListenerMsg, ListenerState, ListenerStats,
};
pub use buffer::{
    EVENT_BUDGET, MAX_RECEIVE_BUFFER, MIN_PACING_WINDOW, MIN_RECEIVE_BUFFER, ReceiveBufferTooSmall,
    check_window,
};
pub use fanout::{
    DEFAULT_CAPACITY, Delivery, Filter, MAX_BATCH, Notification, ResyncReason, SubscriberCounts,
    Subscription, SubscriptionId,
};
pub use pipeline::Pipeline;
pub use reader::ReaderExit;
pub use socket::{KERNEL_GROUP, Received, SocketError, UeventSocket, credentials_space};
pub use stats::{Counts, DropReason};
