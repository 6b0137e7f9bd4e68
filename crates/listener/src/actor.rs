//! The listener actor: owns the socket and its reader thread, the subscriber list and the
//! statistics, and fails (for its supervisor to restart it) when the socket fails.

use std::path::PathBuf;
use std::sync::Arc;

use nix::errno::Errno;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::fanout::{SubscriberCounts, Subscription, SubscriptionId};
use crate::pipeline::{Pipeline, SharedPipeline};
use crate::reader::{self, ReaderHandle};
use crate::socket::UeventSocket;
use crate::stats::Counts;
use crate::trust::{self, UidPolicy};

/// The listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Receive buffer to ask for, in bytes (default 128 MiB, as udevd). The kernel allocates
    /// it only as events queue up.
    pub receive_buffer: usize,
    /// Our user namespace's uid map (default `/proc/self/uid_map`).
    pub uid_map: PathBuf,
    /// The kernel's overflow uid (default `/proc/sys/kernel/overflowuid`).
    pub overflowuid: PathBuf,
    /// Our network namespace (default `/proc/self/ns/net`).
    pub netns: PathBuf,
    /// The init process's network namespace (default `/proc/1/ns/net`).
    pub init_netns: PathBuf,
}

/// The default receive buffer: 128 MiB.
pub const DEFAULT_RECEIVE_BUFFER: usize = 128 << 20;

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            receive_buffer: DEFAULT_RECEIVE_BUFFER,
            uid_map: "/proc/self/uid_map".into(),
            overflowuid: "/proc/sys/kernel/overflowuid".into(),
            netns: "/proc/self/ns/net".into(),
            init_netns: "/proc/1/ns/net".into(),
        }
    }
}

/// Messages the listener handles.
#[derive(Debug)]
pub enum ListenerMsg {
    /// Start sending accepted events to a subscriber; replies with its id.
    Subscribe(Subscription, RpcReplyPort<SubscriptionId>),
    /// Stop sending to a subscriber.
    Unsubscribe(SubscriptionId),
    /// Reply with the statistics.
    Stats(RpcReplyPort<ListenerStats>),
    /// The reader thread ended on its own (sent by the listener to itself).
    ReaderExited(Result<(), Errno>),
}

/// The listener's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerStats {
    /// What was received, accepted and dropped.
    pub counts: Counts,
    /// Per-subscriber counters.
    pub subscribers: Vec<SubscriberCounts>,
    /// The socket's port id.
    pub port: u32,
    /// The effective receive buffer in bytes.
    pub receive_buffer: usize,
}

/// The listener actor. Its `pre_start` opens and binds the socket, so a successful spawn means
/// the socket is listening (the supervisor adapter signals Healthy then).
#[derive(Debug, Default)]
pub struct Listener;

/// The listener's state.
#[derive(Debug)]
pub struct ListenerState {
    pipeline: SharedPipeline,
    port: u32,
    receive_buffer: usize,
    _reader: ReaderHandle,
}

impl Actor for Listener {
    type Msg = ListenerMsg;
    type State = ListenerState;
    type Arguments = ListenerConfig;

    async fn pre_start(
        &self,
        myself: ActorRef<ListenerMsg>,
        config: ListenerConfig,
    ) -> Result<ListenerState, ActorProcessingErr> {
        match trust::in_init_netns(&config.netns, &config.init_netns) {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "not in the init network namespace: hardware uevents will not arrive here"
            ),
            Err(err) => tracing::warn!(error = %err, "cannot compare network namespaces"),
        }
        let uids = UidPolicy::from_proc(&config.uid_map, &config.overflowuid);
        let socket = UeventSocket::open(config.receive_buffer)?;
        let (port, receive_buffer) = (socket.port(), socket.receive_buffer());
        let pipeline = Arc::new(Pipeline::new(uids));
        let reader = reader::spawn(socket, Arc::clone(&pipeline), move |result| {
            // The actor may already be gone (it stopped us): nothing to tell then.
            let _ = myself.send_message(ListenerMsg::ReaderExited(result));
        })?;
        tracing::info!(port, receive_buffer, "listening for kernel uevents");
        Ok(ListenerState {
            pipeline,
            port,
            receive_buffer,
            _reader: reader,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ListenerMsg>,
        msg: ListenerMsg,
        state: &mut ListenerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ListenerMsg::Subscribe(subscription, reply) => {
                let id = state.pipeline.subscribe(subscription);
                tracing::debug!(subscription = id.0, "subscriber added");
                if reply.send(id).is_err() {
                    state.pipeline.unsubscribe(id);
                }
            }
            ListenerMsg::Unsubscribe(id) => {
                state.pipeline.unsubscribe(id);
            }
            ListenerMsg::Stats(reply) => {
                let _ = reply.send(ListenerStats {
                    counts: state.pipeline.counts(),
                    subscribers: state.pipeline.subscriber_counts(),
                    port: state.port,
                    receive_buffer: state.receive_buffer,
                });
            }
            ListenerMsg::ReaderExited(Ok(())) => {}
            ListenerMsg::ReaderExited(Err(errno)) => {
                return Err(format!("uevent socket failed: {errno}").into());
            }
        }
        Ok(())
    }
}
