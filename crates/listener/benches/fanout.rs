//! Receive → check → parse → fan-out throughput, and the memory that events in flight hold.
//!
//! No root needed: datagrams come from memory with the kernel's envelope and go through the
//! same [`Pipeline`] the socket reader drives, to two ractor subscribers. Run with
//! `cargo bench -p listener --bench fanout`.
//!
//! - throughput: 100,000 events ingested from a plain thread in batches of `MAX_BATCH` (as the
//!   reader thread does in a burst);
//!   timed until both subscribers have handled all of them; best and median of 5 rounds.
//! - memory: both subscribers are held up while 100,000 events are ingested, so every event
//!   sits in both mailboxes; the growth of the resident set is reported.

use std::sync::Arc;
use std::time::{Duration, Instant};

use listener::{
    MAX_BATCH, Notification, Pipeline, Subscription, trust::Envelope, trust::UidPolicy,
};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{Notify, oneshot};
use uevent::{Action, Uevent};

const EVENTS: u64 = 100_000;
const ROUNDS: usize = 5;

struct Counter;

struct CounterState {
    seen: u64,
    done: Option<oneshot::Sender<()>>,
    gate: Option<Arc<Notify>>,
}

impl Actor for Counter {
    type Msg = Notification;
    type State = CounterState;
    type Arguments = (oneshot::Sender<()>, Option<Arc<Notify>>);

    async fn pre_start(
        &self,
        _: ActorRef<Notification>,
        (done, gate): Self::Arguments,
    ) -> Result<CounterState, ActorProcessingErr> {
        Ok(CounterState {
            seen: 0,
            done: Some(done),
            gate,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Notification>,
        msg: Notification,
        state: &mut CounterState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(gate) = state.gate.take() {
            gate.notified().await;
        }
        if let Notification::Uevents(batch) = msg {
            for event in &batch {
                std::hint::black_box(event.modalias());
            }
            state.seen += batch.len() as u64;
            if state.seen == EVENTS
                && let Some(done) = state.done.take()
            {
                let _ = done.send(());
            }
        }
        Ok(())
    }
}

/// 64 different 300-byte-class USB interface events, as the kernel would send them.
fn datagrams() -> Vec<Vec<u8>> {
    (0..64u64)
        .map(|i| {
            Uevent::builder(
                Action::Add,
                format!("/devices/pci0000:00/0000:00:14.0/usb1/1-{i}/1-{i}:1.0"),
            )
            .subsystem("usb")
            .seqnum(1000 + i)
            .property("DEVTYPE", "usb_interface")
            .property("PRODUCT", "46d/c52b/1211")
            .property("TYPE", "0/0/0")
            .property("INTERFACE", "3/1/1")
            .property(
                "MODALIAS",
                "usb:v046DpC52Bd1211dc00dsc00dp00ic03isc01ip01in00",
            )
            .property("DRIVER", "usbhid")
            .build()
            .map(|e| e.encode().unwrap_or_default())
            .unwrap_or_default()
        })
        .collect()
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// One round: returns the time until both subscribers handled every event, and the resident
/// set growth measured while every event was in flight (when `hold` is set).
async fn round(datagrams: &Arc<Vec<Vec<u8>>>, hold: bool) -> (Duration, Option<i64>) {
    let pipeline = Arc::new(Pipeline::new(UidPolicy::ROOT_ONLY));
    let gate = Arc::new(Notify::new());
    let mut done = Vec::new();
    let mut actors = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = oneshot::channel();
        let held = hold.then(|| Arc::clone(&gate));
        let (actor, _) = Actor::spawn(None, Counter, (tx, held))
            .await
            .expect("spawn counter");
        pipeline.subscribe(Subscription::to_actor(actor.clone()).capacity(EVENTS as usize * 2));
        done.push(rx);
        actors.push(actor);
    }
    let before = resident_bytes();
    let start = Instant::now();
    let (p, d) = (Arc::clone(&pipeline), Arc::clone(datagrams));
    tokio::task::spawn_blocking(move || ingest(&p, &d))
        .await
        .expect("ingest thread");
    let held = hold.then(|| resident_bytes() as i64 - before as i64);
    gate.notify_waiters();
    gate.notify_one();
    for rx in done {
        rx.await.expect("subscriber finished");
    }
    let elapsed = start.elapsed();
    assert_eq!(pipeline.counts().accepted, EVENTS);
    for actor in actors {
        actor.stop(None);
    }
    (elapsed, held)
}

/// The reader thread's share: the same ingest loop, with subscribers that drop every
/// notification at once (no mailbox, no other thread).
fn ingest_only(datagrams: &[Vec<u8>]) -> Duration {
    let pipeline = Pipeline::new(UidPolicy::ROOT_ONLY);
    for _ in 0..2 {
        pipeline.subscribe(Subscription::to_fn(|n| {
            drop(std::hint::black_box(n));
            true
        }));
    }
    let start = Instant::now();
    ingest(&pipeline, datagrams);
    start.elapsed()
}

/// What the reader thread does in a burst: accept each datagram, deliver in batches of
/// `MAX_BATCH`.
fn ingest(pipeline: &Pipeline, datagrams: &[Vec<u8>]) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    for i in 0..EVENTS as usize {
        if let Some(event) = pipeline.accept(&datagrams[i % datagrams.len()], &Envelope::KERNEL) {
            batch.push(event);
            if batch.len() == MAX_BATCH {
                pipeline.deliver(&batch);
                batch.clear();
            }
        }
    }
    pipeline.deliver(&batch);
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let datagrams = Arc::new(datagrams());
        assert!(datagrams.iter().all(|d| !d.is_empty()));
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            times.push(round(&datagrams, false).await.0);
        }
        times.sort();
        let rate = |d: Duration| EVENTS as f64 / d.as_secs_f64();
        println!(
            "fanout to 2 subscribers, {EVENTS} events: best {:.0} events/s, median {:.0} events/s ({} rounds)",
            rate(times[0]),
            rate(times[ROUNDS / 2]),
            ROUNDS
        );
        let mut reader_side = Vec::new();
        for _ in 0..ROUNDS {
            reader_side.push(ingest_only(&datagrams));
        }
        reader_side.sort();
        println!(
            "reader side alone (check, parse, fan-out to 2 subscribers that drop at once): median {:.0} events/s",
            rate(reader_side[ROUNDS / 2])
        );
        let (_, held) = round(&datagrams, true).await;
        let held = held.unwrap_or(0);
        println!(
            "memory with {EVENTS} events in flight to 2 subscribers: {:.1} MiB resident growth, {} bytes per event",
            held as f64 / (1024.0 * 1024.0),
            held / EVENTS as i64
        );
    });
}
