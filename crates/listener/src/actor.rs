//! The listener actor: owns the socket and its reader thread, the subscriber list and the
//! statistics, and fails (for its supervisor to restart it) when its reader thread ends, be it
//! on a socket error or a panic: a listener whose thread is gone would look healthy and hear
//! nothing.

use std::path::PathBuf;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::buffer::{self, MIN_PACING_WINDOW};
use crate::fanout::{SubscriberCounts, Subscription, SubscriptionId};
use crate::pipeline::{Pipeline, SharedPipeline};
use crate::reader::{self, ReaderExit, ReaderHandle};
use crate::socket::UeventSocket;
use crate::stats::Counts;
use crate::trust::{self, UidPolicy};

/// The listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Receive buffer to ask for, in bytes (default 128 MiB, as udevd), at most
    /// [`MAX_RECEIVE_BUFFER`](crate::MAX_RECEIVE_BUFFER). The kernel allocates it only as
    /// events queue up.
    pub receive_buffer: usize,
    /// The pacing window, in events of [`EVENT_BUDGET`](crate::EVENT_BUDGET) bytes, that the
    /// effective receive buffer must hold, or the start fails (see [`crate::check_window`]).
    /// Default [`MIN_PACING_WINDOW`], the smallest window of coldplug's automatic pacing; set
    /// it to a fixed window a paced writer uses, or to 0 for no check.
    pub pacing_window: usize,
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
            pacing_window: MIN_PACING_WINDOW,
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
    /// The reader thread ended (sent by the listener's reader thread, whatever ended it). While
    /// the listener runs this is a failure: nothing reads the socket any more.
    ReaderExited(ReaderExit),
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
        if let Err(small) = buffer::check_window(receive_buffer, config.pacing_window) {
            tracing::error!(
                requested = config.receive_buffer,
                effective = receive_buffer,
                window = config.pacing_window,
                "the receive buffer cannot hold one pacing window"
            );
            return Err(small.into());
        }
        let pipeline = Arc::new(Pipeline::new(uids));
        let reader = reader::spawn(socket, Arc::clone(&pipeline), move |exit| {
            // The actor may already be gone (it stopped us): nothing to tell then.
            let _ = myself.send_message(ListenerMsg::ReaderExited(exit));
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
            // Only dropping our state stops the thread, and then no message is handled any
            // more: whatever ended it, the listener is deaf.
            ListenerMsg::ReaderExited(exit) => {
                return Err(format!("the uevent reader thread ended: {exit}").into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ractor::SupervisionEvent;
    use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

    use super::*;

    /// A supervisor that forwards the failures of the actors linked to it.
    struct Probe;

    impl Actor for Probe {
        type Msg = ();
        type State = UnboundedSender<String>;
        type Arguments = UnboundedSender<String>;

        async fn pre_start(
            &self,
            _: ActorRef<()>,
            tx: UnboundedSender<String>,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(tx)
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<()>,
            event: SupervisionEvent,
            tx: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            if let SupervisionEvent::ActorFailed(_, err) = event {
                let _ = tx.send(err.to_string());
            }
            Ok(())
        }
    }

    fn config(receive_buffer: usize) -> ListenerConfig {
        ListenerConfig {
            receive_buffer,
            ..ListenerConfig::default()
        }
    }

    /// Binding group 1 needs no privilege: this runs anywhere with netlink.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reader_thread_that_ends_while_the_listener_runs_fails_the_listener() {
        let (tx, mut failed) = unbounded_channel();
        let (probe, _) = Actor::spawn(None, Probe, tx).await.unwrap();
        let (listener, _) = Actor::spawn_linked(None, Listener, config(1 << 20), probe.get_cell())
            .await
            .unwrap();
        // What the reader thread reports when it returns without a socket error.
        listener
            .send_message(ListenerMsg::ReaderExited(ReaderExit::Stopped))
            .unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), failed.recv()).await;
        assert!(
            matches!(&err, Ok(Some(e)) if e.contains("reader thread")),
            "the listener did not fail: {err:?}, status {:?}",
            listener.get_status()
        );
        probe.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receive_buffer_too_small_for_one_pacing_window_fails_the_start() {
        // Asked 4 KiB, the kernel gives 8 KiB: two events' worth, fewer than the smallest
        // automatic pacing window of coldplug.
        let err = Actor::spawn(None, Listener, config(4096)).await;
        let err = err.map(|(listener, _)| listener.stop(None)).unwrap_err();
        assert!(err.to_string().contains("receive buffer"), "{err}");
        // Twice that is enough: 16 KiB, four events.
        let (listener, _) = Actor::spawn(None, Listener, config(8192)).await.unwrap();
        listener.stop(None);
    }
}
