//! Running load plans: one load in flight per module (others await its result), a module
//! loaded once however many plans share it, independent modules in parallel on a bounded pool
//! (rules R34, R35).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::compression::Compression;
use super::insert::{Outcome, insert};
use super::kernel::Kernel;
use super::state::SysModule;

/// One module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    /// Normalised module name.
    pub module: String,
    /// Its file; `None` for a builtin module.
    pub path: Option<PathBuf>,
    /// Options to pass.
    pub options: String,
    /// A softdep: its failure does not stop the plan.
    pub soft: bool,
}

/// Everything to load for one target module, in order: softdep pre, dependencies, the
/// module, softdep post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    /// The module the plan is for.
    pub target: String,
    /// The loads, in order.
    pub steps: Vec<LoadStep>,
}

/// Counters of a [`Loader`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Loads handed to the kernel.
    pub attempted: u64,
    /// Of those, loaded.
    pub loaded: u64,
    /// Requests answered without a load: live already, loaded earlier, or `EEXIST`.
    pub already_loaded: u64,
    /// Failed loads by errno name (`ENODEV`, `ENOENT`, ...).
    pub failed: BTreeMap<String, u64>,
    /// Time spent in the kernel, summed over loads.
    pub kernel_time: Duration,
}

enum Slot {
    InFlight(watch::Receiver<Option<Outcome>>),
    Loaded,
}

/// Loads modules for many plans at once.
pub struct Loader {
    kernel: Arc<dyn Kernel>,
    sys: SysModule,
    kernel_decompresses: Option<Compression>,
    kernel_blacklist: Vec<String>,
    pool: Arc<Semaphore>,
    slots: Mutex<HashMap<String, Slot>>,
    attempted: AtomicU64,
    loaded: AtomicU64,
    already: AtomicU64,
    kernel_nanos: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
}

/// The default size of the worker pool: two loads per CPU plus 16, at most 64 — the size
/// systemd-udevd gives its worker pool. A load spends most of its time waiting, not computing:
/// for the module's probe of its hardware, for timeouts of hardware that is not there, for
/// firmware. Measured on 2026-11-27 in the QEMU guest on Debian's 6.1 kernel (2 vCPUs, 74
/// modules; `scripts/guest build` then `scripts/guest boot DIR LOG devmgr.config=NAME` with
/// a `tests/vm/configs/NAME.toml` holding `[loader] workers = N`, two boots each, alternating,
/// host busy): 16 workers settled in 7.1 s and 8.1 s, 2 workers in 8.6 s and 10.5 s.
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus * 2 + 16).min(64)
}

impl Loader {
    /// A loader using `kernel`, reading module states under `sys`, with at most `workers`
    /// loads at once.
    pub fn new(kernel: Arc<dyn Kernel>, sys: SysModule, workers: usize) -> Loader {
        Loader {
            kernel,
            sys,
            kernel_decompresses: None,
            kernel_blacklist: Vec::new(),
            pool: Arc::new(Semaphore::new(workers.max(1))),
            slots: Mutex::default(),
            attempted: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            already: AtomicU64::new(0),
            kernel_nanos: AtomicU64::new(0),
            failed: Mutex::default(),
        }
    }

    /// The format the kernel decompresses itself (from `/sys/module/compression`).
    pub fn kernel_decompresses(mut self, compression: Option<Compression>) -> Loader {
        self.kernel_decompresses = compression;
        self
    }

    /// Modules in the kernel's `module_blacklist=` (an `EPERM` for them is reported as such).
    pub fn kernel_blacklist(mut self, modules: Vec<String>) -> Loader {
        self.kernel_blacklist = modules;
        self
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a plan: each step after the previous one; after a required step fails, the rest
    /// is skipped (a module cannot load without its dependencies); softdep failures are
    /// ignored. Returns each step's outcome.
    pub async fn run(self: &Arc<Self>, plan: &ModulePlan) -> Vec<(String, Outcome)> {
        let mut outcomes = Vec::with_capacity(plan.steps.len());
        let mut broken = false;
        for step in &plan.steps {
            let outcome = if broken {
                Outcome::Skipped
            } else {
                self.load(step).await
            };
            if !outcome.is_loaded() && !step.soft && outcome != Outcome::Skipped {
                broken = true;
            }
            outcomes.push((step.module.clone(), outcome));
        }
        outcomes
    }

    /// Loads one module, at most once at a time and once per boot: a request for a module
    /// being loaded waits for that load's outcome; a loaded module is not loaded again.
    pub async fn load(self: &Arc<Self>, step: &LoadStep) -> Outcome {
        let Some(path) = step.path.clone() else {
            return Outcome::Builtin;
        };
        let (tx, waiting) = {
            let mut slots = self.slots();
            match slots.get(&step.module) {
                Some(Slot::Loaded) => (None, None),
                Some(Slot::InFlight(rx)) => (None, Some(rx.clone())),
                None => {
                    let (tx, rx) = watch::channel(None);
                    slots.insert(step.module.clone(), Slot::InFlight(rx));
                    (Some(tx), None)
                }
            }
        };
        if let Some(mut rx) = waiting {
            let outcome = match rx.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.unwrap_or(Outcome::Skipped),
                Err(_) => Outcome::Skipped,
            };
            return if outcome.is_loaded() {
                self.already.fetch_add(1, Ordering::Relaxed);
                Outcome::AlreadyLoaded
            } else {
                outcome
            };
        }
        let Some(tx) = tx else {
            self.already.fetch_add(1, Ordering::Relaxed);
            return Outcome::AlreadyLoaded;
        };
        let outcome = self.load_now(step, path).await;
        {
            let mut slots = self.slots();
            if outcome.is_loaded() {
                slots.insert(step.module.clone(), Slot::Loaded);
            } else {
                // Not marked loaded: a later request tries again.
                slots.remove(&step.module);
            }
        }
        let _ = tx.send(Some(outcome));
        outcome
    }

    async fn load_now(self: &Arc<Self>, step: &LoadStep, path: PathBuf) -> Outcome {
        if self.sys.state(&step.module).is_loaded() {
            self.already.fetch_add(1, Ordering::Relaxed);
            return Outcome::AlreadyLoaded;
        }
        let Ok(_permit) = self.pool.acquire().await else {
            return Outcome::Skipped;
        };
        self.attempted.fetch_add(1, Ordering::Relaxed);
        let this = Arc::clone(self);
        let options = step.options.clone();
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            insert(
                this.kernel.as_ref(),
                &path,
                &options,
                this.kernel_decompresses,
            )
        })
        .await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.kernel_nanos.fetch_add(nanos, Ordering::Relaxed);
        let result = joined.unwrap_or(Err(nix::errno::Errno::EINTR));
        let outcome = Outcome::classify(result, &step.module, &self.kernel_blacklist);
        self.record(step, outcome, result.err());
        outcome
    }

    fn record(&self, step: &LoadStep, outcome: Outcome, errno: Option<nix::errno::Errno>) {
        match outcome {
            Outcome::Loaded => {
                self.loaded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(module = %step.module, options = %step.options, "module loaded");
            }
            Outcome::AlreadyLoaded => {
                self.already.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                let errno = errno.unwrap_or(nix::errno::Errno::UnknownErrno);
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(format!("{errno:?}"))
                    .or_default() += 1;
                let path = step.path.as_deref().map(|p| p.display().to_string());
                match outcome {
                    Outcome::NoDevice | Outcome::NotFound => tracing::info!(
                        module = %step.module, path, errno = %errno, "module not loaded (expected for some hardware)"
                    ),
                    Outcome::BlacklistedByKernel => tracing::warn!(
                        module = %step.module, "module refused: listed in the kernel's module_blacklist="
                    ),
                    _ => {
                        tracing::error!(module = %step.module, path, errno = %errno, "module load failed")
                    }
                }
            }
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> LoadStats {
        LoadStats {
            attempted: self.attempted.load(Ordering::Relaxed),
            loaded: self.loaded.load(Ordering::Relaxed),
            already_loaded: self.already.load(Ordering::Relaxed),
            failed: self
                .failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            kernel_time: Duration::from_nanos(self.kernel_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// Per-boot memory of `ENODEV` answers, by (module, alias): a coldplug replay of a device with
/// the same alias does not try again (the 1,536 × `acpi_cpufreq` storm), but a device that
/// really appears (a non-synthetic `add`) does.
#[derive(Debug, Default)]
pub struct NoDeviceCache {
    entries: Mutex<HashSet<(String, String)>>,
}

impl NoDeviceCache {
    fn entries(&self) -> MutexGuard<'_, HashSet<(String, String)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether to load `module` for a device with `alias`: not if it answered `ENODEV` for this
    /// alias before and the event is a replay (`synthetic`); a real new device clears the entry.
    pub fn should_try(&self, module: &str, alias: &str, synthetic: bool) -> bool {
        let key = (module.to_owned(), alias.to_owned());
        let mut entries = self.entries();
        if synthetic {
            !entries.contains(&key)
        } else {
            entries.remove(&key);
            true
        }
    }

    /// Records an outcome of loading `module` for `alias`.
    pub fn record(&self, module: &str, alias: &str, outcome: Outcome) {
        if outcome == Outcome::NoDevice {
            self.entries().insert((module.to_owned(), alias.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::errno::Errno;

    use super::*;
    use crate::load::kernel::FakeKernel;

    /// A module directory of fake module files (each holds its name).
    struct Modules {
        dir: tempfile::TempDir,
    }

    impl Modules {
        fn new(names: &[String]) -> Modules {
            let dir = tempfile::tempdir().unwrap();
            for name in names {
                std::fs::write(dir.path().join(format!("{name}.ko")), name).unwrap();
            }
            Modules { dir }
        }

        fn step(&self, name: &str, soft: bool) -> LoadStep {
            LoadStep {
                module: name.to_owned(),
                path: Some(self.dir.path().join(format!("{name}.ko"))),
                options: String::new(),
                soft,
            }
        }
    }

    /// 50 drivers over two buses and a common core; every fifth driver has a softdep.
    fn plan_for(modules: &Modules, driver: usize) -> ModulePlan {
        let mut steps = Vec::new();
        if driver.is_multiple_of(5) {
            steps.push(modules.step("crc_pre", true));
        }
        steps.push(modules.step("core", false));
        steps.push(modules.step(
            if driver.is_multiple_of(2) {
                "bus_a"
            } else {
                "bus_b"
            },
            false,
        ));
        steps.push(modules.step(&format!("drv{driver:02}"), false));
        ModulePlan {
            target: format!("drv{driver:02}"),
            steps,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_storm_of_1000_events_for_300_devices_loads_each_module_once_in_dependency_order() {
        let mut names: Vec<String> = ["core", "bus_a", "bus_b", "crc_pre"]
            .map(String::from)
            .to_vec();
        names.extend((0..50).map(|d| format!("drv{d:02}")));
        let modules = Modules::new(&names);
        let sys = tempfile::tempdir().unwrap();
        let kernel = Arc::new(
            FakeKernel::new(Duration::from_millis(2))
                .with_sys_module(sys.path())
                .failing("drv13", Errno::EIO)
                .preloaded("bus_b"),
        );
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 4));

        // 300 devices, six per driver; 1000 add events (every device at least three times),
        // all in flight at once.
        let events: Vec<usize> = (0..1000).map(|i| (i * 7) % 300).collect();
        let tasks: Vec<_> = events
            .into_iter()
            .map(|device| {
                let loader = Arc::clone(&loader);
                let plan = plan_for(&modules, device % 50);
                tokio::spawn(async move { (plan.target.clone(), loader.run(&plan).await) })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }

        // Exactly one load per module (drv13 fails, so requests after its failure try again).
        for name in &names {
            let calls = kernel.calls(name);
            match name.as_str() {
                "drv13" => assert!(calls >= 1, "{name}"),
                _ => assert_eq!(calls, 1, "{name} loaded {calls} times"),
            }
        }
        // Dependencies (and the softdep) before dependents.
        let order: Vec<String> = kernel.loaded().into_iter().map(|(n, _)| n).collect();
        let pos = |n: &str| order.iter().position(|m| m == n);
        for d in (0..50usize).filter(|d| *d != 13) {
            let drv = pos(&format!("drv{d:02}")).unwrap();
            assert!(pos("core").unwrap() < drv);
            let bus = if d.is_multiple_of(2) {
                pos("bus_a").unwrap()
            } else {
                pos("bus_b").unwrap()
            };
            assert!(bus < drv);
            if d.is_multiple_of(5) {
                assert!(pos("crc_pre").unwrap() < drv, "softdep pre first");
            }
        }
        // EEXIST (bus_b was loaded by someone else) is success: its dependents loaded.
        assert_eq!(pos("bus_b"), Some(0));
        assert!(pos("drv01").is_some());
        // The failure is reported for every event of its devices, and not marked loaded.
        for (target, outcomes) in &results {
            let last = outcomes.last().unwrap().1;
            if target == "drv13" {
                assert_eq!(last, Outcome::Failed(Errno::EIO));
            } else {
                assert!(last.is_loaded(), "{target}: {outcomes:?}");
            }
        }
        assert!(!order.iter().any(|n| n == "drv13"));
        // Independent modules went in parallel, never more than the pool.
        let max = kernel.max_in_flight();
        assert!((2..=4).contains(&max), "max loads at once: {max}");
        let stats = loader.stats();
        assert_eq!(stats.loaded as usize, names.len() - 2, "{stats:?}");
        assert!(stats.failed.get("EIO").is_some_and(|n| *n >= 1));
    }

    #[tokio::test]
    async fn a_failed_dependency_skips_the_rest_but_a_failed_softdep_does_not() {
        let names: Vec<String> = ["soft", "dep", "mod"].map(String::from).to_vec();
        let modules = Modules::new(&names);
        let sys = tempfile::tempdir().unwrap();
        let plan = ModulePlan {
            target: "mod".into(),
            steps: vec![
                modules.step("soft", true),
                modules.step("dep", false),
                modules.step("mod", false),
            ],
        };
        // Runs the plan on a fresh kernel where `failing` fails with `errno`.
        let run_with = |failing: &str, errno: Errno| {
            let kernel = Arc::new(FakeKernel::new(Duration::ZERO).failing(failing, errno));
            let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 2));
            let plan = plan.clone();
            async move {
                let outcomes: Vec<Outcome> = loader
                    .run(&plan)
                    .await
                    .into_iter()
                    .map(|(_, o)| o)
                    .collect();
                (outcomes, kernel)
            }
        };
        let (outcomes, _) = run_with("soft", Errno::ENOENT).await;
        assert_eq!(
            outcomes,
            [Outcome::NotFound, Outcome::Loaded, Outcome::Loaded]
        );

        let (outcomes, kernel) = run_with("dep", Errno::ENOEXEC).await;
        assert_eq!(
            outcomes,
            [
                Outcome::Loaded,
                Outcome::Failed(Errno::ENOEXEC),
                Outcome::Skipped
            ]
        );
        assert_eq!(kernel.calls("mod"), 0);
    }

    #[tokio::test]
    async fn live_and_builtin_modules_are_not_loaded() {
        let modules = Modules::new(&["live_one".to_string()]);
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir(sys.path().join("live_one")).unwrap();
        std::fs::write(sys.path().join("live_one/initstate"), "live\n").unwrap();
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 1));
        assert_eq!(
            loader.load(&modules.step("live_one", false)).await,
            Outcome::AlreadyLoaded
        );
        let builtin = LoadStep {
            module: "builtin_one".into(),
            path: None,
            options: String::new(),
            soft: false,
        };
        assert_eq!(loader.load(&builtin).await, Outcome::Builtin);
        assert_eq!(kernel.all_calls().len(), 0);
    }

    #[test]
    fn no_device_answers_are_remembered_for_replays_and_forgotten_for_new_devices() {
        let cache = NoDeviceCache::default();
        let alias = "acpi:ACPI0007:";
        assert!(cache.should_try("acpi_cpufreq", alias, true));
        cache.record("acpi_cpufreq", alias, Outcome::NoDevice);
        assert!(
            !cache.should_try("acpi_cpufreq", alias, true),
            "replay: not again"
        );
        assert!(
            cache.should_try("acpi_cpufreq", "acpi:OTHER:", true),
            "other alias: yes"
        );
        assert!(
            cache.should_try("acpi_cpufreq", alias, false),
            "a real new device: yes"
        );
        assert!(
            cache.should_try("acpi_cpufreq", alias, true),
            "and the entry is gone"
        );
        cache.record("x", alias, Outcome::Loaded);
        assert!(cache.should_try("x", alias, true));
    }
}
