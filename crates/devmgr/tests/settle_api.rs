//! [`Observer::settle`], the embedding API behind `devmgr settle`, in-process as a node agent
//! would call it, on the real kernel (root needed; see `tests/settle.rs`): the subsystem loads
//! for real from the index of one fake module ([`common::FakeModule`]).

mod common;

use std::time::{Duration, Instant};

use common::{FakeModule, skip_or_fail};
use devmgr::config::Config;
use devmgr::handled::kernel_seqnum;
use devmgr::subsystem::{self, RunOptions};
use supervisor::{Options, Supervisor};

const SERIAL_UEVENT: &str = "/sys/devices/platform/serial8250/uevent";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observer_settle_waits_for_the_load_plans_and_says_what_is_pending_on_timeout() {
    let test = "observer_settle_waits_for_the_load_plans";
    if !nix::unistd::geteuid().is_root() {
        return skip_or_fail(test, "needs root (writes /sys/devices/**/uevent)");
    }
    if !std::path::Path::new(SERIAL_UEVENT).exists() {
        return skip_or_fail(test, &format!("no {SERIAL_UEVENT}"));
    }
    // The only test of this binary: no kernel lock needed (binaries run one after another).
    let module = FakeModule::new();
    let mut config = Config::default();
    config.loader.module_dir = Some(module.module_dir());
    config.loader.modprobe_d = Some(vec![module.modprobe_d()]);
    config.loader.cmdline = Some("".into());
    config.coldplug.settle_quiet = Duration::from_millis(100);
    let (devmgr, mut observer) = subsystem::runnable(
        config,
        RunOptions {
            instance: "-settle-api".into(),
            ..RunOptions::default()
        },
    );
    let tree = Supervisor::new(subsystem::root(devmgr), Options::new())
        .await
        .expect("tree starts");
    tokio::time::timeout(Duration::from_secs(60), observer.wait_settled())
        .await
        .expect("settles within 60 s")
        .expect("subsystem alive");

    // Handled: the plan of the event ended before settle returned.
    module.set_delay(2);
    let before = module.marks();
    std::fs::write(SERIAL_UEVENT, "add").expect("trigger");
    let seqnum = kernel_seqnum("/sys".as_ref()).expect("seqnum");
    let started = Instant::now();
    let settled = observer.settle(seqnum, Duration::from_secs(60)).await;
    let took = started.elapsed();
    assert_eq!(settled, Ok(()));
    assert!(module.marks() > before, "returned before the plan ended");
    assert!(took >= Duration::from_millis(1900), "{took:?}");

    // Timeout: the plan still running is named.
    module.set_delay(5);
    std::fs::write(SERIAL_UEVENT, "add").expect("trigger");
    let seqnum = kernel_seqnum("/sys".as_ref()).expect("seqnum");
    let pending = observer
        .settle(seqnum, Duration::from_millis(300))
        .await
        .expect_err("a 5 s load does not end in 300 ms");
    assert_eq!(pending.seqnum, seqnum);
    assert!(!pending.replay_running, "{pending}");
    assert!(
        pending
            .plans
            .iter()
            .any(|p| p.modalias == "platform:serial8250" && p.modules == ["devmgr_settle_test"]),
        "{pending:?}"
    );
    eprintln!("{test}: handled after {took:?}; on timeout: {pending}");
    // A later settle for the same events ends once the plan did.
    let before = module.marks();
    assert_eq!(
        observer.settle(seqnum, Duration::from_secs(60)).await,
        Ok(())
    );
    assert!(module.marks() > before);
    tree.shutdown();
    tree.wait_stopped().await;
}
