//! Running load plans: one load in flight per module (others await its result), independent
//! modules in parallel on a bounded pool, and the kernel asked afresh each time whether a
//! module is in (`docs/kmod-loader.md#the-scheduler`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};

use super::compression::Compression;
use super::insert::{Outcome, insert};
use super::install::{self, InstallKind, InstallPolicy};
use super::kernel::Kernel;
use super::state::SysModule;

/// How a step puts its module into the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadAction {
    /// Load this module file.
    Insert(PathBuf),
    /// Built into the kernel: nothing to do.
    Builtin,
    /// Run this modprobe.d `install` command instead (`docs/kmod-loader.md#install-commands`).
    Install(String),
}

/// One module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    /// Normalised module name.
    pub module: String,
    /// How to load it.
    pub action: LoadAction,
    /// Options to pass (to the kernel, or as `$CMDLINE_OPTS` to an `install` command).
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
    /// Requests answered without a load: live already, or `EEXIST`.
    pub already_loaded: u64,
    /// Failed loads by errno name (`ENODEV`, `ENOENT`, ...); failed `install` commands under
    /// `install`, load tasks that panicked under `panic`.
    pub failed: BTreeMap<String, u64>,
    /// Modules left out because an `install … /bin/true` or `/bin/false` line disables them.
    pub disabled: u64,
    /// `install` commands run.
    pub install_commands: u64,
    /// `install` commands not run because running them is switched off.
    pub install_refused: u64,
    /// Loads (or commands) still running after the slow-load warning's threshold.
    pub slow: u64,
    /// Wall-clock time of the loads and `install` commands, summed over all of them: each
    /// from taking a worker to its end — reading (and, if needed, decompressing) the module
    /// file, `finit_module`/`init_module` (which runs the module's init and its probes), or the
    /// command. Loads overlap, so this can exceed the time the loading took.
    pub load_time: Duration,
}

/// The default threshold after which a load still running is logged as slow (and waited for).
pub const SLOW_LOAD: Duration = Duration::from_secs(30);

/// Loads modules for many plans at once.
pub struct Loader {
    kernel: Arc<dyn Kernel>,
    sys: SysModule,
    kernel_decompresses: Option<Compression>,
    kernel_blacklist: Vec<String>,
    install: InstallPolicy,
    slow_after: Duration,
    pool: Arc<Semaphore>,
    /// Loads in flight, by module: later requests wait for the outcome.
    in_flight: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    attempted: AtomicU64,
    loaded: AtomicU64,
    already: AtomicU64,
    disabled: AtomicU64,
    install_commands: AtomicU64,
    install_refused: AtomicU64,
    slow: AtomicU64,
    load_nanos: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
}

/// The default size of the worker pool: two loads per CPU plus 16, at most 64 — the size
/// systemd-udevd gives its worker pool. A load spends most of its time waiting, not computing:
/// for the module's probe of its hardware, for timeouts of hardware that is not there, for
/// firmware; more loads at once than CPUs keep the CPUs busy (figures in `BENCH.md`).
pub fn default_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus * 2 + 16).min(64)
}

/// What one load does, decided before it takes a worker.
enum Work {
    Insert(PathBuf),
    Command(String),
}

/// How one load ended: the kernel's answer, or an outcome decided without one.
enum Done {
    Kernel(Result<(), nix::errno::Errno>),
    Outcome(Outcome),
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
            install: InstallPolicy::default(),
            slow_after: SLOW_LOAD,
            pool: Arc::new(Semaphore::new(workers.max(1))),
            in_flight: Mutex::default(),
            attempted: AtomicU64::new(0),
            loaded: AtomicU64::new(0),
            already: AtomicU64::new(0),
            disabled: AtomicU64::new(0),
            install_commands: AtomicU64::new(0),
            install_refused: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            load_nanos: AtomicU64::new(0),
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

    /// Whether and how `install` commands run (default: as modprobe, with a time limit).
    pub fn install_commands(mut self, policy: InstallPolicy) -> Loader {
        self.install = policy;
        self
    }

    /// Logs a load still running after `after` (default [`SLOW_LOAD`]); it is still waited for.
    pub fn slow_load_warning(mut self, after: Duration) -> Loader {
        self.slow_after = after;
        self
    }

    fn in_flight(&self) -> MutexGuard<'_, HashMap<String, watch::Receiver<Option<Outcome>>>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs a plan as udev's `kmod load` does for each module an alias resolves to: when the
    /// target is already live (or built in), nothing at all — its softdeps neither; otherwise
    /// each step after the previous one; after a required step fails, the rest is skipped (a
    /// module cannot load without its dependencies); softdep failures are ignored. Returns
    /// each step's outcome.
    pub async fn run(self: &Arc<Self>, plan: &ModulePlan) -> Vec<(String, Outcome)> {
        if let Some(target) = plan.steps.iter().find(|s| s.module == plan.target) {
            let outcome = match target.action {
                LoadAction::Builtin => Some(Outcome::Builtin),
                _ if self.sys.state(&target.module).is_loaded() => {
                    self.already.fetch_add(1, Ordering::Relaxed);
                    Some(Outcome::AlreadyLoaded)
                }
                _ => None,
            };
            if let Some(outcome) = outcome {
                return vec![(plan.target.clone(), outcome)];
            }
        }
        let mut outcomes = Vec::with_capacity(plan.steps.len());
        let mut broken = false;
        for step in &plan.steps {
            let outcome = if broken {
                Outcome::Skipped
            } else {
                self.load(step).await
            };
            if !outcome.succeeded() && !step.soft && outcome != Outcome::Skipped {
                broken = true;
            }
            outcomes.push((step.module.clone(), outcome));
        }
        outcomes
    }

    /// Loads one module, at most once at a time: a request for a module being loaded waits
    /// for that load's outcome. Whether a module is in the kernel is read from sysfs at each
    /// request, never remembered: after an `rmmod` the next request loads it again.
    pub async fn load(self: &Arc<Self>, step: &LoadStep) -> Outcome {
        if step.action == LoadAction::Builtin {
            return Outcome::Builtin;
        }
        let (tx, waiting) = {
            let mut in_flight = self.in_flight();
            match in_flight.get(&step.module) {
                Some(rx) => (None, Some(rx.clone())),
                None => {
                    let (tx, rx) = watch::channel(None);
                    in_flight.insert(step.module.clone(), rx);
                    (Some(tx), None)
                }
            }
        };
        if let Some(mut rx) = waiting {
            let outcome = match rx.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.unwrap_or(Outcome::Skipped),
                Err(_) => Outcome::Skipped,
            };
            return if outcome == Outcome::Loaded {
                self.already.fetch_add(1, Ordering::Relaxed);
                Outcome::AlreadyLoaded
            } else {
                outcome
            };
        }
        let outcome = self.load_now(step).await;
        self.in_flight().remove(&step.module);
        if let Some(tx) = tx {
            let _ = tx.send(Some(outcome));
        }
        outcome
    }

    async fn load_now(self: &Arc<Self>, step: &LoadStep) -> Outcome {
        // libkmod's `module_is_inkernel`: only `live` (builtins never get here). A `coming`
        // module is loaded again: the kernel waits for the first load and answers `EEXIST`.
        if self.sys.state(&step.module).is_loaded() {
            self.already.fetch_add(1, Ordering::Relaxed);
            return Outcome::AlreadyLoaded;
        }
        let work = match &step.action {
            LoadAction::Builtin => return Outcome::Builtin,
            LoadAction::Insert(path) => Work::Insert(path.clone()),
            LoadAction::Install(command) => match install::classify(command) {
                kind @ (InstallKind::True | InstallKind::False) => {
                    self.disabled.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(module = %step.module, command, "disabled by an install line; not loaded");
                    return Outcome::Disabled {
                        stops_plan: kind == InstallKind::False,
                    };
                }
                InstallKind::Shell if !self.install.run => {
                    self.install_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(module = %step.module, command, "install command not run: loader.run_install_commands is off; module not loaded");
                    return Outcome::InstallRefused;
                }
                InstallKind::Shell => {
                    Work::Command(install::substitute_options(command, &step.options))
                }
            },
        };
        let Ok(_permit) = self.pool.acquire().await else {
            return Outcome::Skipped;
        };
        let started = Instant::now();
        let this = Arc::clone(self);
        let (module, options) = (step.module.clone(), step.options.clone());
        let mut task = tokio::task::spawn_blocking(move || match work {
            Work::Insert(path) => {
                let result = insert(
                    this.kernel.as_ref(),
                    &path,
                    &options,
                    this.kernel_decompresses,
                );
                // Not the kernel's ENOENT (an unknown symbol or parameter): the file is gone.
                if result == Err(nix::errno::Errno::ENOENT) && !path.exists() {
                    Done::Outcome(Outcome::FileMissing)
                } else {
                    Done::Kernel(result)
                }
            }
            Work::Command(command) => Done::Outcome(
                match install::run(&module, &command, this.install.timeout) {
                    Ok(()) => {
                        tracing::info!(module, command, "install command ran");
                        Outcome::Installed
                    }
                    Err(err) => {
                        tracing::error!(module, command, error = %err, "install command failed");
                        Outcome::InstallFailed
                    }
                },
            ),
        });
        let joined = match tokio::time::timeout(self.slow_after, &mut task).await {
            Ok(joined) => joined,
            Err(_) => {
                self.slow.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(module = %step.module, waited_s = self.slow_after.as_secs(), "module load still running; waiting for it");
                task.await
            }
        };
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.load_nanos.fetch_add(nanos, Ordering::Relaxed);
        let (outcome, errno) = match joined {
            Ok(Done::Kernel(result)) => (
                Outcome::classify(result, &step.module, &self.kernel_blacklist),
                result.err(),
            ),
            Ok(Done::Outcome(outcome)) => (outcome, None),
            Err(err) if err.is_panic() => (Outcome::Panicked, None),
            // Cancelled: the runtime is shutting down and the task never ran.
            Err(_) => (
                Outcome::Failed(nix::errno::Errno::EINTR),
                Some(nix::errno::Errno::EINTR),
            ),
        };
        self.record(step, outcome, errno);
        outcome
    }

    fn record(&self, step: &LoadStep, outcome: Outcome, errno: Option<nix::errno::Errno>) {
        let path = match &step.action {
            LoadAction::Insert(path) => Some(path.display().to_string()),
            _ => None,
        };
        match outcome {
            Outcome::Loaded => {
                self.attempted.fetch_add(1, Ordering::Relaxed);
                self.loaded.fetch_add(1, Ordering::Relaxed);
                tracing::info!(module = %step.module, options = %step.options, "module loaded");
            }
            Outcome::AlreadyLoaded => {
                self.attempted.fetch_add(1, Ordering::Relaxed);
                self.already.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Installed => {
                self.install_commands.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::InstallFailed => {
                self.install_commands.fetch_add(1, Ordering::Relaxed);
                self.count_failure("install");
            }
            Outcome::Panicked => {
                self.attempted.fetch_add(1, Ordering::Relaxed);
                self.count_failure("panic");
                tracing::error!(module = %step.module, path, "module load task panicked; the module may or may not be loaded");
            }
            Outcome::FileMissing => {
                self.attempted.fetch_add(1, Ordering::Relaxed);
                self.count_failure("ENOENT");
                tracing::warn!(module = %step.module, path, "module file listed in modules.dep is missing (index out of date?)");
            }
            _ => {
                self.attempted.fetch_add(1, Ordering::Relaxed);
                let errno = errno.unwrap_or(nix::errno::Errno::UnknownErrno);
                self.count_failure(&format!("{errno:?}"));
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

    fn count_failure(&self, key: &str) {
        *self
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key.to_owned())
            .or_default() += 1;
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
            disabled: self.disabled.load(Ordering::Relaxed),
            install_commands: self.install_commands.load(Ordering::Relaxed),
            install_refused: self.install_refused.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            load_time: Duration::from_nanos(self.load_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// Per-boot memory of `ENODEV` answers, by (module, alias): a coldplug replay of a device with
/// the same alias does not try again (one ACPI processor alias per CPU would otherwise load
/// `acpi_cpufreq` once per CPU; `docs/kmod-loader.md#remembering-enodev`), but a device that
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
    use crate::load::fake::FakeKernel;

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
                action: LoadAction::Insert(self.dir.path().join(format!("{name}.ko"))),
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

        // Exactly one load per module (drv13 fails, so requests after its failure try again;
        // bus_b is in the kernel without sysfs saying so, so each request asks the kernel,
        // which answers EEXIST).
        for name in &names {
            let calls = kernel.calls(name);
            match name.as_str() {
                "drv13" | "bus_b" => assert!(calls >= 1, "{name}"),
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
            action: LoadAction::Builtin,
            options: String::new(),
            soft: false,
        };
        assert_eq!(loader.load(&builtin).await, Outcome::Builtin);
        assert_eq!(kernel.all_calls().len(), 0);
    }

    #[tokio::test]
    async fn a_module_removed_by_rmmod_is_loaded_again_on_the_next_request() {
        let modules = Modules::new(&["e1000".to_string()]);
        let sys = tempfile::tempdir().unwrap();
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO).with_sys_module(sys.path()));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 1));
        let step = modules.step("e1000", false);
        assert_eq!(loader.load(&step).await, Outcome::Loaded);
        assert_eq!(loader.load(&step).await, Outcome::AlreadyLoaded, "live");
        assert_eq!(kernel.calls("e1000"), 1);
        kernel.unload("e1000");
        assert_eq!(
            loader.load(&step).await,
            Outcome::Loaded,
            "after rmmod, loaded again"
        );
        assert_eq!(kernel.calls("e1000"), 2);
    }

    #[tokio::test]
    async fn only_live_counts_as_in_the_kernel_not_coming_going_or_a_bare_directory() {
        let names: Vec<String> = ["coming_one", "going_one", "bare_one"]
            .map(String::from)
            .to_vec();
        let modules = Modules::new(&names);
        let sys = tempfile::tempdir().unwrap();
        for (name, state) in [
            ("coming_one", Some("coming\n")),
            ("going_one", Some("going\n")),
            ("bare_one", None),
        ] {
            std::fs::create_dir(sys.path().join(name)).unwrap();
            if let Some(state) = state {
                std::fs::write(sys.path().join(name).join("initstate"), state).unwrap();
            }
        }
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 1));
        for name in &names {
            assert_eq!(
                loader.load(&modules.step(name, false)).await,
                Outcome::Loaded
            );
            assert_eq!(kernel.calls(name), 1, "{name}: handed to the kernel");
        }
    }

    #[tokio::test]
    async fn a_live_target_is_left_alone_softdeps_and_all() {
        let names: Vec<String> = ["soft_pre", "dep", "target"].map(String::from).to_vec();
        let modules = Modules::new(&names);
        let sys = tempfile::tempdir().unwrap();
        std::fs::create_dir(sys.path().join("target")).unwrap();
        std::fs::write(sys.path().join("target/initstate"), "live\n").unwrap();
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 1));
        let plan = ModulePlan {
            target: "target".into(),
            steps: vec![
                modules.step("soft_pre", true),
                modules.step("dep", false),
                modules.step("target", false),
            ],
        };
        let outcomes = loader.run(&plan).await;
        assert_eq!(outcomes, [("target".to_string(), Outcome::AlreadyLoaded)]);
        assert!(kernel.all_calls().is_empty(), "{:?}", kernel.all_calls());
    }

    fn install_step(module: &str, command: &str, options: &str) -> LoadStep {
        LoadStep {
            module: module.to_owned(),
            action: LoadAction::Install(command.to_owned()),
            options: options.to_owned(),
            soft: false,
        }
    }

    #[tokio::test]
    async fn install_true_disables_quietly_and_install_false_stops_the_plan() {
        let names: Vec<String> = ["dep", "target"].map(String::from).to_vec();
        let modules = Modules::new(&names);
        let sys = tempfile::tempdir().unwrap();
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 1));
        let plan = |dep: LoadStep| ModulePlan {
            target: "target".into(),
            steps: vec![dep, modules.step("target", false)],
        };
        let outcomes = loader
            .run(&plan(install_step("dep", "/bin/true", "")))
            .await;
        assert_eq!(
            outcomes,
            [
                ("dep".to_string(), Outcome::Disabled { stops_plan: false }),
                ("target".to_string(), Outcome::Loaded)
            ],
            "/bin/true succeeds: the plan goes on, as in modprobe"
        );
        kernel.unload("target");
        let outcomes = loader
            .run(&plan(install_step("dep", "/bin/false", "")))
            .await;
        assert_eq!(
            outcomes,
            [
                ("dep".to_string(), Outcome::Disabled { stops_plan: true }),
                ("target".to_string(), Outcome::Skipped)
            ],
            "/bin/false fails: the plan stops, as in modprobe"
        );
        assert_eq!(kernel.calls("dep"), 0);
        assert_eq!(kernel.calls("target"), 1);
        let stats = loader.stats();
        assert_eq!((stats.disabled, stats.install_commands), (2, 0));
        assert!(stats.failed.is_empty(), "quiet: {stats:?}");
    }

    #[tokio::test]
    async fn an_install_command_runs_instead_of_the_load_with_its_options_unless_switched_off() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("marker");
        let command = format!(
            "echo \"$MODPROBE_MODULE $CMDLINE_OPTS\" > {}",
            marker.display()
        );
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(tmp.path()), 1));
        let step = install_step("snd_x", &command, "index=1 p=\"a b\"");
        assert_eq!(loader.load(&step).await, Outcome::Installed);
        assert_eq!(
            std::fs::read_to_string(&marker).unwrap(),
            "snd_x index=1 p=a b \n"
        );
        let failing = install_step("snd_y", "exit 7", "");
        assert_eq!(loader.load(&failing).await, Outcome::InstallFailed);
        let stats = loader.stats();
        assert_eq!(stats.install_commands, 2);
        assert_eq!(stats.failed.get("install"), Some(&1));
        assert!(kernel.all_calls().is_empty());

        std::fs::remove_file(&marker).unwrap();
        let locked = Arc::new(
            Loader::new(kernel.clone(), SysModule::new(tmp.path()), 1).install_commands(
                InstallPolicy {
                    run: false,
                    ..InstallPolicy::default()
                },
            ),
        );
        assert_eq!(locked.load(&step).await, Outcome::InstallRefused);
        assert!(!marker.exists(), "not run");
        assert_eq!(locked.stats().install_refused, 1);
        // /bin/true still disables quietly: nothing is run for it either way.
        assert_eq!(
            locked.load(&install_step("e1000", "/bin/true", "")).await,
            Outcome::Disabled { stops_plan: false }
        );
    }

    #[tokio::test]
    async fn a_module_file_missing_on_disk_is_told_apart_from_the_kernels_enoent() {
        let modules = Modules::new(&["present".to_string()]);
        let sys = tempfile::tempdir().unwrap();
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO).failing("present", Errno::ENOENT));
        let loader = Arc::new(Loader::new(kernel.clone(), SysModule::new(sys.path()), 1));
        let gone = LoadStep {
            module: "gone".into(),
            action: LoadAction::Insert(modules.dir.path().join("gone.ko")),
            options: String::new(),
            soft: false,
        };
        let log = test_support::Capture::default();
        let guard = tracing::subscriber::set_default(log.clone());
        assert_eq!(loader.load(&gone).await, Outcome::FileMissing);
        drop(guard);
        let warned = log.at_least(tracing::Level::WARN);
        assert!(
            warned.iter().any(|e| e.field("module") == "gone"),
            "a missing module file is a warning naming the module: {warned:?}"
        );
        assert_eq!(
            loader.load(&modules.step("present", false)).await,
            Outcome::NotFound,
            "the kernel's ENOENT: an unknown symbol"
        );
    }

    #[tokio::test]
    async fn a_slow_load_is_counted_and_still_waited_for() {
        let modules = Modules::new(&["slow".to_string()]);
        let sys = tempfile::tempdir().unwrap();
        let kernel = Arc::new(FakeKernel::new(Duration::from_millis(300)));
        let loader = Arc::new(
            Loader::new(kernel.clone(), SysModule::new(sys.path()), 1)
                .slow_load_warning(Duration::from_millis(20)),
        );
        let log = test_support::Capture::default();
        let guard = tracing::subscriber::set_default(log.clone());
        assert_eq!(
            loader.load(&modules.step("slow", false)).await,
            Outcome::Loaded
        );
        drop(guard);
        assert_eq!(loader.stats().slow, 1);
        let warned = log.at_least(tracing::Level::WARN);
        assert!(
            warned.iter().any(|e| e.field("module") == "slow"),
            "a slow load is a warning naming the module: {warned:?}"
        );
    }

    #[test]
    fn a_load_is_slow_after_thirty_seconds_by_default() {
        // The bound, and what an operator reads in the docs (docs/kmod-loader.md).
        assert_eq!(SLOW_LOAD, Duration::from_secs(30));
    }

    /// A kernel whose loads panic, as a bug in a load task would.
    struct PanickingKernel;

    impl Kernel for PanickingKernel {
        fn finit_module(
            &self,
            _file: &std::fs::File,
            _params: &std::ffi::CStr,
            _flags: u32,
        ) -> Result<(), Errno> {
            panic!("load task panics (test)")
        }

        fn init_module(&self, _image: &[u8], _params: &std::ffi::CStr) -> Result<(), Errno> {
            panic!("load task panics (test)")
        }
    }

    #[tokio::test]
    async fn a_panicked_load_task_is_its_own_outcome_counted_as_a_panic_not_an_errno() {
        let names: Vec<String> = ["dep", "target"].map(String::from).to_vec();
        let modules = Modules::new(&names);
        let sys = tempfile::tempdir().unwrap();
        let loader = Arc::new(Loader::new(
            Arc::new(PanickingKernel),
            SysModule::new(sys.path()),
            1,
        ));
        let plan = ModulePlan {
            target: "target".into(),
            steps: vec![modules.step("dep", false), modules.step("target", false)],
        };
        let outcomes = loader.run(&plan).await;
        assert_eq!(
            outcomes,
            [
                ("dep".to_string(), Outcome::Panicked),
                ("target".to_string(), Outcome::Skipped)
            ]
        );
        let stats = loader.stats();
        assert_eq!(stats.failed.get("panic"), Some(&1), "{stats:?}");
        assert_eq!(stats.failed.get("EINTR"), None, "{stats:?}");
        assert_eq!(stats.attempted, 1);
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
