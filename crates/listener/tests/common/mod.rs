//! Helpers for the host tests, which need root and a real kernel.

use std::time::Duration;

use listener::{Delivery, Notification, ResyncReason};
use tokio::sync::mpsc::UnboundedReceiver;

/// `/dev/null`'s device: `change` events on it are harmless.
pub const NULL_DEVICE: &str = "/sys/devices/virtual/mem/null/uevent";

/// A fresh kernel UUID, checked.
pub fn uuid() -> String {
    let uuid = listener::testing::kernel_uuid();
    assert_eq!(uuid.len(), 36, "kernel uuid {uuid:?}");
    uuid
}

/// Writes `add <uuid>` into the serial port's `uevent` file.
pub fn trigger_add(uuid: &str) {
    listener::testing::trigger_serial_add(uuid).expect("write uevent");
}

/// Waits (at most 10 s) for the event tagged `uuid`; returns it and the resyncs seen before it.
pub async fn wait_for_uuid(
    rx: &mut UnboundedReceiver<Notification>,
    uuid: &str,
) -> (Delivery, Vec<ResyncReason>) {
    let mut resyncs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let next = tokio::time::timeout_at(deadline, rx.recv()).await;
        match next {
            Ok(Some(Notification::Uevents(batch))) => {
                if let Some(d) = batch
                    .into_iter()
                    .find(|d| d.synth_uuid() == Some(uuid.as_bytes()))
                {
                    return (d, resyncs);
                }
            }
            Ok(Some(Notification::Resync(reason))) => resyncs.push(reason),
            Ok(None) => panic!("subscription closed before the event tagged {uuid}"),
            Err(_) => panic!("no event tagged {uuid} within 10 s"),
        }
    }
}

/// How a linked actor ended, as its supervisor saw it.
#[derive(Debug)]
pub enum Ended {
    /// It failed: `handle` returned an error or it panicked. The error's text.
    Failed(String),
    /// It stopped without an error.
    Terminated,
}

/// A supervisor that only reports how the actors linked to it end.
pub struct Probe;

impl ractor::Actor for Probe {
    type Msg = ();
    type State = tokio::sync::mpsc::UnboundedSender<Ended>;
    type Arguments = tokio::sync::mpsc::UnboundedSender<Ended>;

    async fn pre_start(
        &self,
        _: ractor::ActorRef<()>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ractor::ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _: ractor::ActorRef<()>,
        event: ractor::SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ractor::ActorProcessingErr> {
        let ended = match event {
            ractor::SupervisionEvent::ActorFailed(_, err) => Ended::Failed(err.to_string()),
            ractor::SupervisionEvent::ActorTerminated(..) => Ended::Terminated,
            _ => return Ok(()),
        };
        let _ = tx.send(ended);
        Ok(())
    }
}
