//! The trust check on uids (`docs/uevents.md#trust-checks`) in a user namespace: the kernel's
//! uid 0 is not mapped there and shows up as the overflow uid; kernel events must still be
//! accepted (systemd#16307). The test re-runs itself
//! under `unshare --user` (no uid mapping) as the listening child; the parent, root in the init
//! namespace, triggers the event.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use listener::testing::{host_test, kernel_uuid, trigger_serial_add};
use listener::trust::UidPolicy;
use listener::{Pipeline, Subscription, UeventSocket, credentials_space};

const CHILD: &str = "DEVMGR_USERNS_CHILD_UUID";
const TEST: &str = "kernel_events_are_accepted_in_a_user_namespace_that_does_not_map_root";

#[test]
fn kernel_events_are_accepted_in_a_user_namespace_that_does_not_map_root() {
    if let Ok(uuid) = std::env::var(CHILD) {
        return child(&uuid);
    }
    if !host_test(TEST) {
        return;
    }
    let uuid = kernel_uuid();
    let mut child = Command::new("unshare")
        .arg("--user")
        .arg(std::env::current_exe().expect("test binary"))
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, &uuid)
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare --user (util-linux)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.ends_with("READY"));
    assert!(ready, "the child did not get ready");
    trigger_serial_add(&uuid).expect("trigger");
    let report: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("child exit");
    assert!(status.success(), "child failed: {report:?}");
    let accepted = report.iter().find(|l| l.starts_with("ACCEPTED"));
    assert_eq!(
        accepted.map(String::as_str),
        Some("ACCEPTED uid_map_empty=true overflow_uid_accepted=true"),
        "{report:?}"
    );
}

/// Inside the user namespace: listen with the policy built from our own /proc, wait for the
/// tagged event.
fn child(uuid: &str) {
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").expect("uid_map");
    let policy = UidPolicy::from_proc(
        Path::new("/proc/self/uid_map"),
        Path::new("/proc/sys/kernel/overflowuid"),
    );
    let overflow: u32 = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .expect("overflowuid")
        .trim()
        .parse()
        .expect("overflowuid number");
    let socket = UeventSocket::open(1 << 20).expect("a uevent socket in the user namespace");
    let pipeline = Pipeline::new(policy);
    let (tx, rx) = std::sync::mpsc::channel();
    pipeline.subscribe(Subscription::to_fn(move |n| tx.send(n).is_ok()));
    // The test harness has printed "test <name> ... " without a newline: READY ends that line.
    println!("READY");
    let (mut buf, mut cmsg) = (vec![0u8; 16 * 1024], credentials_space());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match socket.recv(&mut buf, &mut cmsg) {
            Ok(received) => {
                let len = received.len.min(buf.len());
                pipeline.ingest(&buf[..len], &received.envelope);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        while let Ok(listener::Notification::Uevents(batch)) = rx.try_recv() {
            if batch
                .iter()
                .any(|d| d.synth_uuid() == Some(uuid.as_bytes()))
            {
                println!(
                    "ACCEPTED uid_map_empty={} overflow_uid_accepted={}",
                    uid_map.trim().is_empty(),
                    policy.accepts(overflow)
                );
                return;
            }
        }
    }
    panic!(
        "no event tagged {uuid} accepted within 10 s: {:?}",
        pipeline.counts()
    );
}
