//! A fake sysfs tree, a listener without a socket and a kernel that answers writes, for actor
//! tests that need neither root nor the real `/sys`.

#![allow(dead_code, reason = "each test binary uses part of these helpers")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coldplug::{Coldplug, ColdplugArgs, ColdplugConfig, ColdplugMsg, PassKind, PassReport};
use listener::trust::UidPolicy;
use listener::{ListenerMsg, ListenerStats, Pipeline};
use ractor::{Actor, ActorProcessingErr, ActorRef, call};
use uevent::{Action, Uevent};

/// Creates the device `rel` (e.g. `devices/dev00`) under `root`: a directory with a regular
/// `uevent` file, a `subsystem` link to `../bus/<subsystem>`, and a `modalias` file if asked.
pub fn device(root: &Path, rel: &str, subsystem: &str, modalias: bool) {
    let dir = root.join(rel);
    std::fs::create_dir_all(&dir).expect("device directory");
    std::fs::write(dir.join("uevent"), "").expect("uevent file");
    std::os::unix::fs::symlink(format!("../bus/{subsystem}"), dir.join("subsystem"))
        .expect("subsystem link");
    if modalias {
        std::fs::write(dir.join("modalias"), "fake:v1").expect("modalias file");
    }
}

/// A listener actor without a socket: subscriptions go to `Pipeline`, which the test (or a
/// [`FakeKernel`]) feeds.
pub struct FakeListener;

impl Actor for FakeListener {
    type Msg = ListenerMsg;
    type State = Arc<Pipeline>;
    type Arguments = Arc<Pipeline>;

    async fn pre_start(
        &self,
        _myself: ActorRef<ListenerMsg>,
        pipeline: Arc<Pipeline>,
    ) -> Result<Arc<Pipeline>, ActorProcessingErr> {
        Ok(pipeline)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ListenerMsg>,
        msg: ListenerMsg,
        pipeline: &mut Arc<Pipeline>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ListenerMsg::Subscribe(subscription, reply) => {
                let _ = reply.send(pipeline.subscribe(subscription));
            }
            ListenerMsg::Unsubscribe(id) => {
                pipeline.unsubscribe(id);
            }
            ListenerMsg::Stats(reply) => {
                let _ = reply.send(ListenerStats {
                    counts: pipeline.counts(),
                    subscribers: pipeline.subscriber_counts(),
                    port: 0,
                    receive_buffer: 1 << 20,
                });
            }
            ListenerMsg::ReaderExited(_) => {}
        }
        Ok(())
    }
}

/// A pipeline and a fake listener serving it.
pub async fn fake_listener() -> (Arc<Pipeline>, ActorRef<ListenerMsg>) {
    let pipeline = Arc::new(Pipeline::new(UidPolicy::new("0 0 4294967295", 65534)));
    let (listener, _) = Actor::spawn(None, FakeListener, Arc::clone(&pipeline))
        .await
        .expect("fake listener starts");
    (pipeline, listener)
}

/// The `add` event the kernel sends for a write of `add <uuid>` into `<devpath>/uevent`.
pub fn answer(devpath: &str, uuid: &str) -> Arc<Uevent> {
    Arc::new(
        Uevent::builder(Action::Add, devpath)
            .subsystem("fake")
            .seqnum(1)
            .property("SYNTH_UUID", uuid)
            .build()
            .expect("valid event"),
    )
}

/// The UUID last written into `dir/uevent` (a regular file), if any.
pub fn written_uuid(dir: &Path) -> Option<String> {
    let uevent = dir.join("uevent");
    if !std::fs::symlink_metadata(&uevent).is_ok_and(|m| m.is_file()) {
        return None;
    }
    let content = std::fs::read_to_string(uevent).ok()?;
    Some(content.strip_prefix("add ")?.to_owned())
}

/// Plays the kernel for a fake sysfs tree: polls the `uevent` files of the devices it knows and
/// answers every new `add <uuid>` with an event tagged `SYNTH_UUID=<uuid>`, except for the
/// silent devices, and except while paused (a write made meanwhile and overwritten before the
/// pause ends is never seen).
#[derive(Clone)]
pub struct FakeKernel {
    /// UUIDs seen in each device's `uevent` file, in order, by devpath.
    seen: Arc<Mutex<HashMap<String, Vec<String>>>>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl FakeKernel {
    /// Starts polling `devpaths` (e.g. `/devices/dev00`, relative to `root`); those in `silent`
    /// are never answered.
    pub fn start(
        root: &Path,
        devpaths: &[&str],
        silent: &[&str],
        pipeline: Arc<Pipeline>,
    ) -> FakeKernel {
        let kernel = FakeKernel {
            seen: Arc::default(),
            paused: Arc::default(),
            stop: Arc::default(),
        };
        let devices: Vec<(String, PathBuf, bool)> = devpaths
            .iter()
            .map(|d| {
                let dir = root.join(d.trim_start_matches('/'));
                (d.to_string(), dir, silent.contains(d))
            })
            .collect();
        let this = kernel.clone();
        tokio::spawn(async move {
            while !this.stop.load(Ordering::Relaxed) {
                if !this.paused.load(Ordering::Relaxed) {
                    for (devpath, dir, silent) in &devices {
                        let Some(uuid) = written_uuid(dir) else {
                            continue;
                        };
                        let new = {
                            let mut seen = this.seen.lock().expect("seen");
                            let uuids = seen.entry(devpath.clone()).or_default();
                            let new = !uuids.contains(&uuid);
                            if new {
                                uuids.push(uuid.clone());
                            }
                            new
                        };
                        if new && !silent {
                            pipeline.deliver(&[answer(devpath, &uuid)]);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        kernel
    }

    /// How many distinct UUIDs were seen written into `devpath`'s `uevent` file.
    pub fn writes(&self, devpath: &str) -> usize {
        self.seen
            .lock()
            .expect("seen")
            .get(devpath)
            .map_or(0, Vec::len)
    }

    /// Stops or resumes reading (and answering).
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Ends the polling task.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts a coldplug actor on `config`, subscribed to `listener`.
pub async fn start_coldplug(
    config: ColdplugConfig,
    listener: &ActorRef<ListenerMsg>,
) -> ActorRef<ColdplugMsg> {
    let args = ColdplugArgs {
        config,
        listener: listener.clone(),
        on_settled: None,
    };
    Actor::spawn(None, Coldplug, args)
        .await
        .expect("coldplug starts")
        .0
}

/// A config for the fake tree at `root`: no random UUID file needed.
pub fn config(root: &Path) -> ColdplugConfig {
    ColdplugConfig {
        sysfs: root.to_path_buf(),
        random_uuid: "/nonexistent/uuid".into(),
        ..ColdplugConfig::default()
    }
}

/// Waits (polling, at most `within`) until the last ended pass is a `kind` pass.
pub async fn wait_last_pass(
    coldplug: &ActorRef<ColdplugMsg>,
    kind: PassKind,
    within: Duration,
) -> PassReport {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = call!(coldplug, ColdplugMsg::LastReport).expect("last report");
        if let Some(report) = last.filter(|r| r.kind == kind) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {kind:?} pass ended within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
