//! The uevent listener: a `NETLINK_KOBJECT_UEVENT` socket that accepts only what the kernel
//! sent, parses it into [`uevent::Uevent`]s and fans them out to subscribers, without ever
//! losing an event silently.
//!
//! - **Socket** ([`UeventSocket`]): bound to group 1 with a kernel-chosen port id, close-on-exec,
//!   non-blocking, `SO_PASSCRED`, receive buffer set with `SO_RCVBUFFORCE` (falling back to
//!   `SO_RCVBUF`) and read back; sizes above what the kernel takes ([`MAX_RECEIVE_BUFFER`])
//!   are refused.
//! - **Trust** ([`trust`]): a datagram is dropped, and counted by [`DropReason`], when it was
//!   truncated, is unicast, came from a non-zero port or another group, has no
//!   `SCM_CREDENTIALS`, carries a non-zero pid (a uevent a process injected through the
//!   kernel), or a uid that is neither 0 nor unmapped in our user namespace; then when it does
//!   not parse. A warning is logged at start when we are not in the init network namespace.
//! - **Overrun**: `ENOBUFS` (or `POLLERR`) never stops the reader: it empties the queue, counts
//!   the overrun, and publishes [`Notification::Resync`] to every subscriber.
//! - **Fan-out** ([`Subscription`]): each subscriber gets every accepted event that passes its
//!   [`Filter`], as a [`Delivery`] in its ractor mailbox, in batches of what one pass over the
//!   socket read ([`MAX_BATCH`] at most). A subscriber has a bounded number of
//!   events in flight; one that falls behind gets a `Resync` instead of silent loss, and never
//!   slows the socket or the other subscribers.
//! - **Actor** ([`Listener`]): binds in `pre_start`, so a started listener is listening (under
//!   the supervisor's `actor_runnable` its node turns Healthy only then); the start fails when
//!   the effective receive buffer cannot hold a pacing window ([`check_window`]). It fails,
//!   for its supervisor to restart it, whenever its reader thread ends: on a socket error or a
//!   panic (a subscriber's sink runs on that thread). [`ListenerMsg::Stats`] returns the
//!   counters.
//! - **Reader thread**: the socket is read by a dedicated thread that sleeps in `poll` on the
//!   socket and on a stop pipe, not by a tokio task. This is a deliberate choice: the socket
//!   keeps draining at full speed however busy the async runtime is during a boot storm, and no
//!   `unsafe` is needed (registering a raw fd with tokio's `AsyncFd` is an `unsafe fn` since
//!   tokio 1.54). The actor owns the thread: dropping its state stops it.
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
