//! Host tests against the real kernel socket (root needed; skipped with a reason otherwise).

mod common;

use std::os::fd::AsRawFd;
use std::time::Duration;

use common::{Ended, Probe, trigger_add, uuid, wait_for_uuid};
use listener::testing::{host_test as can_run, stalling_subscription};
use listener::{
    DropReason, Listener, ListenerConfig, ListenerMsg, ListenerStats, Notification, ResyncReason,
    Subscription,
};
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, sendto, socket,
};
use ractor::{Actor, ActorProcessingErr, ActorRef, ActorStatus, call};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::{Mutex, MutexGuard};
use uevent::{Action, Uevent};

/// The tests of this file one at a time: each listens to every uevent of the machine, and the
/// overrun test's burst of 4,000 events overflowed the 1,024-event subscription of a test
/// running beside it, whose sentinel event was then dropped (seen once in a clean-clone run).
static KERNEL: Mutex<()> = Mutex::const_new(());

async fn one_at_a_time() -> MutexGuard<'static, ()> {
    KERNEL.lock().await
}

async fn start(receive_buffer: usize) -> ActorRef<ListenerMsg> {
    let config = ListenerConfig {
        receive_buffer,
        ..ListenerConfig::default()
    };
    let (listener, _) = Actor::spawn(None, Listener, config)
        .await
        .expect("listener starts");
    listener
}

async fn subscribe_channel(
    listener: &ActorRef<ListenerMsg>,
    capacity: usize,
) -> UnboundedReceiver<Notification> {
    let (tx, rx) = unbounded_channel();
    let sub = Subscription::to_fn(move |n| tx.send(n).is_ok()).capacity(capacity);
    call!(listener, ListenerMsg::Subscribe, sub).expect("subscribed");
    rx
}

async fn stats(listener: &ActorRef<ListenerMsg>) -> ListenerStats {
    call!(listener, ListenerMsg::Stats).expect("stats")
}

/// A ractor subscriber that forwards what it gets to the test.
struct Forwarder;

impl Actor for Forwarder {
    type Msg = Notification;
    type State = UnboundedSender<Notification>;
    type Arguments = UnboundedSender<Notification>;

    async fn pre_start(
        &self,
        _: ActorRef<Notification>,
        tx: UnboundedSender<Notification>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _: ActorRef<Notification>,
        msg: Notification,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        tx.send(msg).map_err(|_| "test gone".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_add_written_to_sysfs_reaches_an_actor_subscriber_with_its_synth_uuid() {
    if !can_run("a_real_add_written_to_sysfs_reaches_an_actor_subscriber") {
        return;
    }
    let _serial = one_at_a_time().await;
    let listener = start(listener::DEFAULT_RECEIVE_BUFFER).await;
    let (tx, mut rx) = unbounded_channel();
    let (forwarder, _) = Actor::spawn(None, Forwarder, tx).await.unwrap();
    call!(
        listener,
        ListenerMsg::Subscribe,
        Subscription::to_actor(forwarder.clone())
    )
    .unwrap();

    let uuid = uuid();
    trigger_add(&uuid);
    let (event, _) = wait_for_uuid(&mut rx, &uuid).await;
    assert_eq!(event.action(), Action::Add);
    assert_eq!(event.devpath(), b"/devices/platform/serial8250");
    assert_eq!(event.subsystem(), Some(&b"platform"[..]));
    assert_eq!(event.modalias(), Some(&b"platform:serial8250"[..]));
    assert!(event.is_synthetic());
    assert!(event.seqnum().is_some());

    let stats = stats(&listener).await;
    assert!(stats.counts.accepted >= 1);
    assert_ne!(
        stats.port, 0,
        "the kernel assigns a non-zero port to userspace sockets"
    );
    assert!(stats.receive_buffer >= listener::DEFAULT_RECEIVE_BUFFER);
    listener.stop(None);
    forwarder.stop(None);
}

fn forged(devpath: &str) -> Vec<u8> {
    Uevent::builder(Action::Add, devpath)
        .subsystem("platform")
        .seqnum(1)
        .property("MODALIAS", "platform:devmgr_forged")
        .build()
        .expect("valid forged event")
        .encode()
        .expect("encodable")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_multicast_unicast_and_oversize_datagrams_are_dropped_and_counted() {
    if !can_run("forged_multicast_and_unicast_are_dropped") {
        return;
    }
    let _serial = one_at_a_time().await;
    let listener = start(listener::DEFAULT_RECEIVE_BUFFER).await;
    let mut rx = subscribe_channel(&listener, 1024).await;
    let port = stats(&listener).await.port;

    // A root process with its own uevent socket (a kernel-assigned, non-zero port).
    let forger = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .unwrap();
    bind(forger.as_raw_fd(), &NetlinkAddr::new(0, 0)).unwrap();
    let multicast = forged("/devices/devmgr/forged-multicast");
    let unicast = forged("/devices/devmgr/forged-unicast");
    let sent = sendto(
        forger.as_raw_fd(),
        &multicast,
        &NetlinkAddr::new(0, 1),
        MsgFlags::empty(),
    );
    assert_eq!(sent, Ok(multicast.len()), "root may multicast on group 1");
    let sent = sendto(
        forger.as_raw_fd(),
        &unicast,
        &NetlinkAddr::new(port, 0),
        MsgFlags::empty(),
    );
    assert_eq!(sent, Ok(unicast.len()), "root may unicast to our port");
    // Larger than the 16 KiB receive buffer: truncated, and dropped for that first.
    let mut oversize = forged("/devices/devmgr/forged-oversize");
    oversize.resize(20 * 1024, b'x');
    let sent = sendto(
        forger.as_raw_fd(),
        &oversize,
        &NetlinkAddr::new(0, 1),
        MsgFlags::empty(),
    );
    assert_eq!(sent, Ok(oversize.len()));

    // A real event queued after them: once it arrives, every forgery has been read.
    let uuid = uuid();
    trigger_add(&uuid);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Notification::Uevents(batch))) => {
                let sentinel = batch
                    .iter()
                    .any(|d| d.synth_uuid() == Some(uuid.as_bytes()));
                seen.extend(batch.iter().map(|d| d.devpath().to_vec()));
                if sentinel {
                    break;
                }
            }
            Ok(Some(Notification::Resync(_))) => {}
            other => panic!("the sentinel event did not arrive: {other:?}"),
        }
    }
    assert!(
        !seen.iter().any(|d| d.starts_with(b"/devices/devmgr/")),
        "a forged event reached the subscriber"
    );
    let counts = stats(&listener).await.counts;
    assert_eq!(
        counts.dropped_for(DropReason::NotKernelPort),
        1,
        "{counts:?}"
    );
    assert_eq!(counts.dropped_for(DropReason::Unicast), 1, "{counts:?}");
    assert_eq!(counts.dropped_for(DropReason::Truncated), 1, "{counts:?}");
    let dropped: u64 = counts.dropped.iter().map(|(_, n)| n).sum();
    assert_eq!(
        dropped, 3,
        "exactly the three forgeries dropped: {counts:?}"
    );
    listener.stop(None);
}

/// Writes `change` into `/dev/null`'s uevent file `per_thread` times from each of `threads`
/// threads at once.
fn burst(threads: usize, per_thread: usize) {
    let writers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    std::fs::write(common::NULL_DEVICE, "change").expect("write change");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer thread");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_overrun_is_reported_resynced_and_survived() {
    if !can_run("a_forced_overrun_is_reported_resynced_and_survived") {
        return;
    }
    let _serial = one_at_a_time().await;
    // 16 KiB asked for (the kernel doubles it): a few dozen events fit.
    let listener = start(16 * 1024).await;
    assert!(stats(&listener).await.receive_buffer <= 64 * 1024);

    // A subscriber that breaks the contract (its sink blocks) until the test releases it: it
    // holds the reader thread, so the kernel's queue for our socket fills up for real.
    let (tx, mut rx) = unbounded_channel();
    let (sub, stall) = stalling_subscription(move |n| tx.send(n).is_ok());
    call!(listener, ListenerMsg::Subscribe, sub.capacity(1 << 20)).unwrap();

    trigger_add(&uuid());
    tokio::task::spawn_blocking(move || {
        assert!(
            stall.wait_stalled(),
            "the reader reached the stalling subscriber"
        );
        burst(4, 1000);
        stall.release();
    })
    .await
    .unwrap();

    // The overrun is reported to subscribers once the queue has been emptied.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Notification::Resync(ResyncReason::Overrun))) => break,
            Ok(Some(_)) => {}
            other => panic!("no overrun resync after the overrun: {other:?}"),
        }
    }

    // The listener keeps receiving: a fresh real event arrives. The kernel drops everything
    // while the socket is congested, i.e. until the reader has emptied the queue of the burst's
    // tail, so a trigger that lands in that window is lost for the kernel's reasons; the
    // listener must deliver one of a few triggers spaced by 2 s.
    let mut attempts = 0;
    let event = loop {
        attempts += 1;
        let uuid = uuid();
        trigger_add(&uuid);
        match tokio::time::timeout(Duration::from_secs(2), wait_for_uuid(&mut rx, &uuid)).await {
            Ok((event, _)) => break event,
            Err(_) => assert!(
                attempts < 5,
                "no fresh event delivered after {attempts} triggers"
            ),
        }
    };
    assert_eq!(event.devpath(), b"/devices/platform/serial8250");
    let stats = stats(&listener).await;
    assert!(stats.counts.overruns >= 1);
    assert!(stats.counts.resyncs >= 1);
    assert_eq!(listener.get_status(), ActorStatus::Running);
    eprintln!(
        "overrun test: 4000 writes, {attempts} trigger(s) for the fresh event; received {}, \
         accepted {}, overruns {}, resyncs {}",
        stats.counts.received, stats.counts.accepted, stats.counts.overruns, stats.counts.resyncs
    );
    listener.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uevent_injected_through_the_kernel_is_dropped_and_a_real_add_is_accepted() {
    if !can_run("a_uevent_injected_through_the_kernel_is_dropped") {
        return;
    }
    let _serial = one_at_a_time().await;
    let listener = start(listener::DEFAULT_RECEIVE_BUFFER).await;
    let mut rx = subscribe_channel(&listener, 1024).await;

    let injector = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkKObjectUEvent,
    )
    .unwrap();
    bind(injector.as_raw_fd(), &NetlinkAddr::new(0, 0)).unwrap();
    // A netlink message to the kernel's port 0, which the kernel multicasts to group 1 from
    // port 0 as if it were its own event, with our credentials.
    let message = listener::flood::injection(0);
    let sent = sendto(
        injector.as_raw_fd(),
        &message,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    );
    assert_eq!(
        sent,
        Ok(message.len()),
        "root may inject through the kernel"
    );

    // A real event written after it: once it arrives, the injected one has been read.
    let uuid = uuid();
    trigger_add(&uuid);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let real = loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Notification::Uevents(batch))) => {
                seen.extend(batch.iter().map(|d| d.devpath().to_vec()));
                if let Some(real) = batch
                    .into_iter()
                    .find(|d| d.synth_uuid() == Some(uuid.as_bytes()))
                {
                    break real;
                }
            }
            Ok(Some(Notification::Resync(_))) => {}
            other => panic!("the real event did not arrive: {other:?}"),
        }
    };
    assert_eq!(real.modalias(), Some(&b"platform:serial8250"[..]));
    assert!(
        !seen
            .iter()
            .any(|d| d.starts_with(b"/devices/devmgr-injected/")),
        "the injected event reached the subscriber: {:?}",
        seen.iter()
            .map(|d| String::from_utf8_lossy(d))
            .collect::<Vec<_>>()
    );
    let counts = stats(&listener).await.counts;
    let injected: Vec<_> = counts
        .dropped
        .iter()
        .map(|(reason, n)| (reason.to_string(), *n))
        .collect();
    assert_eq!(
        injected,
        [("injected".to_owned(), 1)],
        "dropped once, as injected: {counts:?}"
    );
    listener.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_the_reader_thread_fails_the_listener() {
    if !can_run("a_panic_on_the_reader_thread_fails_the_listener") {
        return;
    }
    let _serial = one_at_a_time().await;
    let (ended_tx, mut ended) = unbounded_channel();
    let (probe, _) = Actor::spawn(None, Probe, ended_tx).await.unwrap();
    let config = ListenerConfig {
        receive_buffer: listener::DEFAULT_RECEIVE_BUFFER,
        ..ListenerConfig::default()
    };
    let (listener, _) = Actor::spawn_linked(None, Listener, config, probe.get_cell())
        .await
        .expect("listener starts");
    // A subscriber's sink runs on the reader thread: a panic there ends the thread.
    let panicking =
        Subscription::to_fn(|_| panic!("test: a subscriber panics on the reader thread"));
    call!(listener, ListenerMsg::Subscribe, panicking).unwrap();
    trigger_add(&uuid());

    match tokio::time::timeout(Duration::from_secs(10), ended.recv()).await {
        Ok(Some(Ended::Failed(err))) => {
            assert!(err.contains("reader thread"), "{err}");
        }
        other => panic!(
            "the listener did not fail within 10 s of its reader thread's panic: {other:?}, \
             status {:?}",
            listener.get_status()
        ),
    }
    probe.stop(None);
}
