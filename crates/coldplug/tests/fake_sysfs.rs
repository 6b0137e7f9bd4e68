//! The coldplug actor on a fake sysfs tree, with a fake listener and a fake kernel: no root,
//! no real `/sys`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use coldplug::{ColdplugMsg, Pacing, PassKind};
use common::{
    FakeKernel, answer, config, device, fake_listener, start_coldplug, wait_last_pass, written_uuid,
};
use listener::ResyncReason;
use ractor::{call, call_t};

/// A task on the runtime that counts a tick every 5 ms: while a blocking call holds a worker,
/// the count goes on only if the runtime still runs other tasks.
fn spawn_ticker() -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = tokio::spawn({
        let ticks = Arc::clone(&ticks);
        async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                ticks.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (ticks, ticker)
}

/// Eight devices, three of which never answer, through a window of two: giving up on the
/// silent ones must not drop the devices still waiting to be written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giving_up_on_silent_devices_still_writes_the_rest_and_names_every_silent_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let devpaths: Vec<String> = (0..8).map(|i| format!("/devices/dev{i:02}")).collect();
    for devpath in &devpaths {
        device(tmp.path(), &devpath[1..], "fake", true);
    }
    let devpaths: Vec<&str> = devpaths.iter().map(String::as_str).collect();
    let silent = ["/devices/dev01", "/devices/dev04", "/devices/dev06"];
    let (pipeline, listener) = fake_listener().await;
    let kernel = FakeKernel::start(tmp.path(), &devpaths, &silent, pipeline);
    let coldplug = start_coldplug(
        coldplug::ColdplugConfig {
            pacing: Pacing::Window(2),
            settle_timeout: Duration::from_millis(100),
            ..config(tmp.path())
        },
        &listener,
    )
    .await;

    let report = call_t!(coldplug, ColdplugMsg::WaitSettled, 20_000).expect("the pass ends");
    eprintln!("{report:?}");
    let never_written: Vec<&str> = devpaths
        .iter()
        .copied()
        .filter(|d| kernel.writes(d) == 0)
        .collect();
    assert!(
        never_written.is_empty(),
        "devices never written: {never_written:?}\n{report:?}"
    );
    assert!(!report.settled);
    assert_eq!(
        report.unanswered,
        silent.map(PathBuf::from),
        "every device that never answered is named"
    );
    assert_eq!(report.retriggered, silent.map(PathBuf::from));
    assert_eq!((report.devices, report.answered), (8, 5));
    assert_eq!(report.written, 8 + silent.len(), "the silent ones twice");
    for devpath in silent {
        assert_eq!(kernel.writes(devpath), 2, "{devpath} is re-triggered once");
    }
    kernel.stop();
    coldplug.stop(None);
    listener.stop(None);
}

/// A write into a `uevent` file that blocks (a slow driver's uevent callback; here a FIFO no
/// one reads yet) must not hold the runtime's only thread: the listener, the loader and every
/// other task share it. Nor may the coldplug actor wait for it: it answers requests while the
/// write is still blocked (the FIFO is opened, letting the write through, only once the test
/// has its answer, or after 5 s without one).
#[tokio::test(flavor = "current_thread")]
async fn a_uevent_write_that_blocks_does_not_stall_the_runtime() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for dev in ["devices/dev00", "devices/dev01"] {
        device(tmp.path(), dev, "fake", true);
    }
    let dev00 = tmp.path().join("devices/dev00");
    let fifo = tmp.path().join("devices/dev01/uevent");
    let (pipeline, listener) = fake_listener().await;
    // A window of one: dev01 is written only once dev00 has answered, so its `uevent` can be
    // swapped for a FIFO after the walk listed it as a device.
    let coldplug = start_coldplug(
        coldplug::ColdplugConfig {
            pacing: Pacing::Window(1),
            settle_timeout: Duration::from_secs(30),
            ..config(tmp.path())
        },
        &listener,
    )
    .await;
    let first = loop {
        if let Some(uuid) = written_uuid(&dev00) {
            break uuid;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    std::fs::remove_file(&fifo).expect("remove uevent");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");

    let (ticks, ticker) = spawn_ticker();
    // Set once the test no longer needs the write to stay blocked.
    let answered = Arc::new(AtomicBool::new(false));
    // Off the runtime: count the ticks over a second while the write into the FIFO is pending,
    // then, once the test had coldplug's answer (or after 5 s more), open the FIFO's other
    // end, which lets the write through, and read what was written.
    let (tx, measured) = tokio::sync::oneshot::channel();
    std::thread::spawn({
        let ticks = Arc::clone(&ticks);
        let answered = Arc::clone(&answered);
        let fifo = fifo.clone();
        move || {
            std::thread::sleep(Duration::from_millis(300));
            let before = ticks.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_secs(1));
            let during = ticks.load(Ordering::Relaxed) - before;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !answered.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = tx.send((during, read_fifo(&fifo)));
        }
    });
    // Now dev00 answers and coldplug writes into the FIFO, where the write blocks.
    pipeline.deliver(&[answer("/devices/dev00", &first)]);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The coldplug actor itself keeps answering while its write blocks: promptly (it answers
    // in well under a millisecond), and necessarily before the FIFO is read, which waits for
    // `answered`.
    let started = std::time::Instant::now();
    let last = call_t!(coldplug, ColdplugMsg::LastReport, 1_000);
    let busy = call_t!(coldplug, ColdplugMsg::Busy, 1_000);
    let took = started.elapsed();
    answered.store(true, Ordering::Relaxed);
    let (during, written) = measured.await.expect("measured");
    ticker.abort();
    assert!(
        during > 0,
        "no other task ran for a second while the write into dev01's uevent blocked"
    );
    assert!(
        matches!(last, Ok(None)) && matches!(busy, Ok(true)),
        "coldplug did not answer within 1 s while its write into dev01's uevent blocked \
         (after {took:?}): LastReport {last:?}, Busy {busy:?}"
    );
    let second = written
        .strip_prefix("add ")
        .unwrap_or_else(|| panic!("coldplug wrote {written:?} into the FIFO"));
    pipeline.deliver(&[answer("/devices/dev01", second)]);
    let report = call_t!(coldplug, ColdplugMsg::WaitSettled, 10_000).expect("settles");
    assert!(report.settled, "{report:?}");
    assert_eq!((report.written, report.answered), (2, 2));
    coldplug.stop(None);
    listener.stop(None);
}

/// The walk of sysfs blocks too (it reads directories and links, and a resync's reads the
/// `uevent` file of each device without a `modalias` file): it must not hold the runtime's only
/// thread either. Here that `uevent` file is a FIFO bind-mounted over a regular file (the
/// directory entry still says regular file, so the walk opens it), and the walk's read blocks
/// until the test closes the FIFO's writing end. Root only (the bind mount).
#[tokio::test(flavor = "current_thread")]
async fn a_sysfs_walk_that_blocks_does_not_stall_the_runtime() {
    const TEST: &str = "a_sysfs_walk_that_blocks_does_not_stall_the_runtime";
    if !nix::unistd::geteuid().is_root() {
        return test_support::skip_or_fail(TEST, "it needs root (a bind mount)");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    // No device yet: the coldplug pass is over at once.
    std::fs::create_dir(tmp.path().join("devices")).expect("devices");
    let (_pipeline, listener) = fake_listener().await;
    let coldplug = start_coldplug(config(tmp.path()), &listener).await;
    let report = call_t!(coldplug, ColdplugMsg::WaitSettled, 10_000).expect("the pass ends");
    assert_eq!(report.devices, 0, "{report:?}");

    device(tmp.path(), "devices/dev00", "fake", false);
    let fifo = tmp.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    let _mount = match FifoMount::new(&fifo, &tmp.path().join("devices/dev00/uevent")) {
        Ok(mount) => mount,
        Err(err) => return test_support::skip_or_fail(TEST, &format!("no bind mount: {err}")),
    };
    let (ticks, ticker) = spawn_ticker();
    // Off the runtime: wait until the walk has the FIFO open to read (a writer's non-blocking
    // open succeeds only then), count the ticks over half a second while the walk waits in its
    // read, then close the writing end: the walk reads an empty file and goes on.
    let (tx, measured) = tokio::sync::oneshot::channel();
    std::thread::spawn({
        let ticks = Arc::clone(&ticks);
        let fifo = fifo.clone();
        move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let writer = loop {
                match open_writer(&fifo) {
                    Ok(writer) => break Some(writer),
                    Err(err)
                        if err.raw_os_error() == Some(nix::libc::ENXIO)
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break None,
                }
            };
            let before = ticks.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(500));
            let during = ticks.load(Ordering::Relaxed) - before;
            let _ = tx.send((writer.is_some(), during));
        }
    });
    coldplug
        .send_message(ColdplugMsg::Resync)
        .expect("coldplug runs");
    let (reached, during) = measured.await.expect("measured");
    ticker.abort();
    assert!(reached, "the resync's walk never opened dev00's uevent");
    assert!(
        during > 0,
        "no other task ran for half a second while the walk of sysfs blocked"
    );
    let resync = wait_last_pass(&coldplug, PassKind::Resync, Duration::from_secs(10)).await;
    assert_eq!(resync.devices, 0, "dev00 has no MODALIAS: {resync:?}");
    coldplug.stop(None);
    listener.stop(None);
}

/// Opens the FIFO's writing end without blocking: fails with `ENXIO` while no one has it open
/// to read.
fn open_writer(fifo: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(fifo)
}

/// A FIFO bind-mounted over a file, unmounted on drop.
struct FifoMount {
    fifo: PathBuf,
    target: PathBuf,
}

impl FifoMount {
    fn new(fifo: &std::path::Path, target: &std::path::Path) -> nix::Result<FifoMount> {
        nix::mount::mount(
            Some(fifo),
            target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(FifoMount {
            fifo: fifo.to_path_buf(),
            target: target.to_path_buf(),
        })
    }
}

impl Drop for FifoMount {
    fn drop(&mut self) {
        // A reader still waiting in its open (a failed test) gets a writer, and once that is
        // closed, an empty file: no blocking thread is left stuck.
        drop(open_writer(&self.fifo));
        let _ = nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Opens the FIFO's reading end without blocking and reads until the writer wrote something
/// (at most 10 s).
fn read_fifo(fifo: &std::path::Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open(fifo)
        .expect("open the FIFO to read");
    let mut content = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while content.is_empty() && std::time::Instant::now() < deadline {
        let mut buf = [0u8; 128];
        match file.read(&mut buf) {
            Ok(n) => content.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => panic!("reading the FIFO: {err}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    content
}

/// Resyncs asked for while a pass runs (the loader's subscription overflowing, the listener
/// overrunning) wait for it to end, and however many there were, make one more pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resyncs_asked_for_during_a_pass_are_queued_and_collapse_into_one() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let devpaths = ["/devices/dev00", "/devices/dev01", "/devices/dev02"];
    for devpath in devpaths {
        device(tmp.path(), &devpath[1..], "fake", true);
    }
    let (pipeline, listener) = fake_listener().await;
    let kernel = FakeKernel::start(tmp.path(), &devpaths, &[], Arc::clone(&pipeline));
    // No answers yet: the coldplug pass stays running while the resyncs come in.
    kernel.pause(true);
    let coldplug = start_coldplug(
        coldplug::ColdplugConfig {
            pacing: Pacing::Window(2),
            settle_timeout: Duration::from_secs(30),
            ..config(tmp.path())
        },
        &listener,
    )
    .await;
    for _ in 0..5 {
        coldplug
            .send_message(ColdplugMsg::Resync)
            .expect("coldplug runs");
    }
    pipeline.resync(ResyncReason::SubscriberOverflow);
    coldplug
        .send_message(ColdplugMsg::Resync)
        .expect("coldplug runs");
    // Every message above has been handled once this call returns.
    let last = call!(coldplug, ColdplugMsg::LastReport).expect("last report");
    assert_eq!(last, None, "the coldplug pass is still running");

    kernel.pause(false);
    let first = call_t!(coldplug, ColdplugMsg::WaitSettled, 20_000).expect("settles");
    assert!(first.settled, "{first:?}");
    let resync = wait_last_pass(&coldplug, PassKind::Resync, Duration::from_secs(20)).await;
    assert!(resync.settled, "{resync:?}");
    assert_eq!(resync.devices, 3);
    // Time for a further pass, if one had been queued, to write.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for devpath in devpaths {
        assert_eq!(
            kernel.writes(devpath),
            2,
            "{devpath}: one coldplug pass and one resync pass"
        );
    }
    let last = call!(coldplug, ColdplugMsg::LastReport).expect("last report");
    assert_eq!(last.as_ref(), Some(&resync), "no further pass ended");
    kernel.stop();
    coldplug.stop(None);
    listener.stop(None);
}
