//! The loader actor: takes `add` events from the listener, resolves their `MODALIAS` and runs
//! the load plans on a [`Loader`], remembering `ENODEV` answers per (module, alias).

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{Semaphore, watch};
use uevent::{Action, Uevent};

use super::flight::{Asked, Flights};
use super::insert::Outcome;
use super::scheduler::{LoadStats, Loader, ModulePlan, NoDeviceCache};
use crate::error::IndexError;
use crate::resolve::ResolveError;

/// Turns a `MODALIAS` into load plans (one per module the alias resolves to).
pub trait PlanSource: Send + Sync + 'static {
    /// The plans for `modalias`; empty when nothing matches or everything is builtin.
    fn plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, ResolveError>;

    /// Reloads the index and configuration if they changed on disk; returns whether it
    /// did. Called before each batch of events. The default never reloads.
    fn reload_if_changed(&mut self) -> Result<bool, IndexError> {
        Ok(false)
    }
}

/// Plans running or waiting at once; past this the actor stops taking events until some
/// finish (so memory stays bounded and the listener sees back-pressure).
pub const MAX_PLANS_IN_FLIGHT: usize = 4096;

/// What the loader actor starts with.
pub struct LoaderArgs {
    /// The resolver (owned by the actor, which reloads it when its files change).
    pub resolver: Box<dyn PlanSource>,
    /// The loader (kernel, module states, pool).
    pub loader: Arc<Loader>,
    /// Resolve and log what would be loaded, load nothing.
    pub dry_run: bool,
}

/// Whether the loader actor has anything to look up for `event`: an `add` event with a
/// `MODALIAS`, or one a driver rule names modules for ([`super::rules::rule_modules`]). A
/// subscription can drop the rest before they reach the actor's queue.
pub fn looks_up(event: &Uevent) -> bool {
    event.action() == Action::Add
        && (event.modalias().is_some() || !super::rules::rule_modules(event).is_empty())
}

/// Something to keep alive until a batch of events has been handled, e.g. the listener's
/// deliveries, whose in-flight slots are released when they are dropped.
pub type Keepalive = Box<dyn Any + Send>;

/// Messages of the loader actor.
pub enum LoaderMsg {
    /// Device events, in order (only `add` events with a `MODALIAS` load anything); the
    /// keepalive is dropped once they have been handled.
    Events(Vec<Arc<Uevent>>, Option<Keepalive>),
    /// Events may have been lost; the coldplug actor replays devices, nothing to do here but
    /// to log it.
    Resync,
    /// Load what `modalias` needs, as if a device with it was added (`synthetic`: replayed).
    Load {
        /// The device's `MODALIAS`.
        modalias: String,
        /// Whether the event was a coldplug replay.
        synthetic: bool,
    },
    /// Reply once no plan is running.
    WaitIdle(RpcReplyPort<()>),
    /// Reply with the counters.
    Stats(RpcReplyPort<LoaderStats>),
    /// Reply once every plan started before this message was handled has ended. Plans started
    /// after it are not waited for (unlike [`LoaderMsg::WaitIdle`]), so a steady stream of
    /// events cannot hold the reply back. `devmgr settle` sends it once the lookups of the
    /// events it waits for are done.
    WaitStarted(RpcReplyPort<()>),
    /// Reply with the plans running now, the oldest first.
    RunningPlans(RpcReplyPort<Vec<RunningPlan>>),
}

impl std::fmt::Debug for LoaderMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoaderMsg::Events(events, _) => write!(f, "Events({} events)", events.len()),
            LoaderMsg::Resync => f.write_str("Resync"),
            LoaderMsg::Load {
                modalias,
                synthetic,
            } => {
                write!(f, "Load({modalias:?}, synthetic: {synthetic})")
            }
            LoaderMsg::WaitIdle(_) => f.write_str("WaitIdle"),
            LoaderMsg::Stats(_) => f.write_str("Stats"),
            LoaderMsg::WaitStarted(_) => f.write_str("WaitStarted"),
            LoaderMsg::RunningPlans(_) => f.write_str("RunningPlans"),
        }
    }
}

/// The loader actor's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// Lookups asked for: `add` events with a `MODALIAS`, and modules named by the driver
    /// rules ([`super::rules`]).
    pub events: u64,
    /// Aliases that did not resolve (bad syntax, index error).
    pub unresolved: u64,
    /// Plans run.
    pub plans: u64,
    /// Times the index and configuration were reloaded because they changed on disk.
    pub reloads: u64,
    /// Plans skipped: the module answered `ENODEV` for this alias before, and the event was a
    /// replay.
    pub skipped_no_device: u64,
    /// Lookups folded into the run of the same alias under way (one more run follows it).
    pub folded: u64,
    /// The loads.
    pub loads: LoadStats,
    /// How long no lookup was asked for and no plan ended; `None` while a plan runs.
    pub idle_for: Option<Duration>,
}

/// The loader actor.
#[derive(Debug, Default)]
pub struct LoaderActor;

/// Its state.
pub struct LoaderState {
    args: LoaderArgs,
    cache: Arc<NoDeviceCache>,
    slots: Arc<Semaphore>,
    running: watch::Sender<usize>,
    /// When the last lookup was asked for or the last plan ended.
    last_activity: Arc<std::sync::Mutex<Instant>>,
    /// The plans running, by start order (for `WaitStarted` and `RunningPlans`).
    book: Arc<Mutex<PlanBook>>,
    /// The aliases whose plans run, one run at a time each, with the next run reserved (in
    /// the plan book) for a device that really appeared meanwhile.
    flights: Arc<Flights<Running>>,
    stats: LoaderStats,
}

impl Actor for LoaderActor {
    type Msg = LoaderMsg;
    type State = LoaderState;
    type Arguments = LoaderArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LoaderMsg>,
        args: LoaderArgs,
    ) -> Result<LoaderState, ActorProcessingErr> {
        Ok(LoaderState {
            args,
            cache: Arc::default(),
            slots: Arc::new(Semaphore::new(MAX_PLANS_IN_FLIGHT)),
            running: watch::channel(0).0,
            last_activity: Arc::new(std::sync::Mutex::new(Instant::now())),
            book: Arc::default(),
            flights: Arc::default(),
            stats: LoaderStats::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LoaderMsg>,
        msg: LoaderMsg,
        state: &mut LoaderState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LoaderMsg::Events(events, keepalive) => {
                state.reload_if_changed();
                for event in &events {
                    if event.action() != Action::Add {
                        continue;
                    }
                    if let Some(modalias) = event.modalias() {
                        let modalias = String::from_utf8_lossy(modalias).into_owned();
                        state.load(modalias, event.is_synthetic()).await;
                    }
                    for module in super::rules::rule_modules(event) {
                        tracing::debug!(module, devpath = %String::from_utf8_lossy(event.devpath()), "driver rule");
                        state.load((*module).to_owned(), event.is_synthetic()).await;
                    }
                }
                drop(keepalive);
            }
            LoaderMsg::Resync => {
                tracing::info!("events may have been lost; coldplug replays the devices");
            }
            LoaderMsg::Load {
                modalias,
                synthetic,
            } => {
                state.reload_if_changed();
                state.load(modalias, synthetic).await;
            }
            LoaderMsg::WaitIdle(reply) => {
                let mut running = state.running.subscribe();
                tokio::spawn(async move {
                    let _ = running.wait_for(|n| *n == 0).await;
                    let _ = reply.send(());
                });
            }
            LoaderMsg::Stats(reply) => {
                let mut stats = state.stats.clone();
                stats.loads = state.args.loader.stats();
                stats.idle_for = (*state.running.borrow() == 0)
                    .then(|| state.last_activity.lock().map(|t| t.elapsed()).ok())
                    .flatten();
                let _ = reply.send(stats);
            }
            LoaderMsg::WaitStarted(reply) => {
                let upto = lock(&state.book).next;
                let book = Arc::clone(&state.book);
                // Every `Running` holds a sender of `running`, and changes it after leaving the
                // book: the wait ends once the last plan started before now has ended, also
                // after the actor stopped.
                let mut running = state.running.subscribe();
                tokio::spawn(async move {
                    let _ = running
                        .wait_for(|_| lock(&book).all_ended_before(upto))
                        .await;
                    let _ = reply.send(());
                });
            }
            LoaderMsg::RunningPlans(reply) => {
                let _ = reply.send(lock(&state.book).running());
            }
        }
        Ok(())
    }
}

impl LoaderState {
    fn reload_if_changed(&mut self) {
        match self.args.resolver.reload_if_changed() {
            Ok(true) => {
                self.stats.reloads += 1;
                // New modules or new options may bind where the old ones found no device.
                self.cache = Arc::default();
                // Runs under way keep the old plans: later requests start runs of their own.
                self.flights = Arc::default();
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(error = %err, "module index changed but cannot be reloaded; keeping the old one")
            }
        }
    }

    async fn load(&mut self, modalias: String, synthetic: bool) {
        self.stats.events += 1;
        touch(&self.last_activity);
        if !self.args.dry_run {
            // Every module of the alias: that run tries each, as the device's own event would.
            let reserve = |targets: &[String]| {
                Running::start(
                    &self.running,
                    &self.last_activity,
                    (&self.book, modalias.clone(), targets.to_vec()),
                )
            };
            if self.flights.ask(&modalias, synthetic, reserve) == Asked::Folded {
                self.stats.folded += 1;
                return;
            }
        }
        let plans = match self.args.resolver.plans(&modalias) {
            Ok(plans) => plans,
            Err(err) => {
                self.stats.unresolved += 1;
                tracing::warn!(%modalias, error = %err, "cannot resolve modalias");
                return;
            }
        };
        if plans.is_empty() && self.args.dry_run {
            tracing::info!(%modalias, "nothing to load");
        }
        // Each plan, and whether it is due now (the ENODEV memory skips it for a replay; a
        // later run for a device that really appeared tries it).
        let mut to_run = Vec::with_capacity(plans.len());
        for plan in plans {
            if !self.cache.should_try(&plan.target, &modalias, synthetic) {
                self.stats.skipped_no_device += 1;
                tracing::debug!(%modalias, module = %plan.target, "skipped: no device for it last time");
                to_run.push((plan, false));
                continue;
            }
            self.stats.plans += 1;
            if self.args.dry_run {
                for step in &plan.steps {
                    tracing::info!(%modalias, module = %step.module, options = %step.options, "would load");
                }
                continue;
            }
            to_run.push((plan, true));
        }
        if !to_run.iter().any(|(_, due)| *due) {
            return;
        }
        let Ok(slot) = Arc::clone(&self.slots).acquire_owned().await else {
            return;
        };
        let targets = to_run
            .iter()
            .filter(|(_, due)| *due)
            .map(|(p, _)| p.target.clone())
            .collect();
        let running = Running::start(
            &self.running,
            &self.last_activity,
            (&self.book, modalias.clone(), targets),
        );
        let (loader, cache) = (Arc::clone(&self.args.loader), Arc::clone(&self.cache));
        let every_target = to_run.iter().map(|(p, _)| p.target.clone()).collect();
        let mut flight = self.flights.start(modalias.clone(), every_target);
        // The modules of one alias load one after another, in the lookup's order (udev's
        // `kmod load`): the first gets the first chance to bind the device. Aliases are
        // independent and run in parallel; requests for this one meanwhile make one more run.
        tokio::spawn(async move {
            // The plan book's entry of the run under way; a reserved run's replaces it.
            let mut _running = running;
            let mut every = false;
            loop {
                for (plan, _) in to_run.iter().filter(|(_, due)| every || *due) {
                    if every {
                        // A device that really appeared: the ENODEV memory is forgotten, as
                        // for its own event.
                        cache.should_try(&plan.target, &modalias, false);
                    }
                    let outcomes = loader.run(plan).await;
                    let target = outcomes
                        .iter()
                        .rev()
                        .find(|(m, _)| *m == plan.target)
                        .map_or(Outcome::Skipped, |(_, o)| *o);
                    cache.record(&plan.target, &modalias, target);
                }
                let Some(reserved) = flight.again() else {
                    break;
                };
                _running = reserved;
                // For a device that really appeared: every plan, as its own event would.
                every = true;
            }
            drop(slot);
        });
    }
}

/// Counts a running plan for as long as it lives (also if its task panics), and notes when it
/// ended. Until then it is also in the plan book, under its ticket.
struct Running(
    watch::Sender<usize>,
    Arc<std::sync::Mutex<Instant>>,
    (Arc<Mutex<PlanBook>>, u64),
);

impl Running {
    fn start(
        count: &watch::Sender<usize>,
        last: &Arc<std::sync::Mutex<Instant>>,
        (book, modalias, modules): (&Arc<Mutex<PlanBook>>, String, Vec<String>),
    ) -> Running {
        let ticket = lock(book).start(modalias, modules);
        count.send_modify(|n| *n += 1);
        Running(count.clone(), Arc::clone(last), (Arc::clone(book), ticket))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Noted before the count drops, so whoever sees the loader idle sees the new time.
        touch(&self.1);
        // Out of the book before the count changes, so that a `WaitStarted` woken by the
        // change sees the plan gone.
        lock(&self.2.0).end(self.2.1);
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A load plan the actor started that has not ended ([`LoaderMsg::RunningPlans`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningPlan {
    /// The `MODALIAS` (or module name, for a driver rule) it loads for.
    pub modalias: String,
    /// The modules the alias resolved to, loaded one after another in this order.
    pub modules: Vec<String>,
    /// How long it has been running.
    pub running_for: Duration,
}

/// The plans running, by ticket (start order).
#[derive(Debug, Default)]
struct PlanBook {
    /// The ticket of the next plan.
    next: u64,
    running: BTreeMap<u64, (String, Vec<String>, Instant)>,
}

impl PlanBook {
    fn start(&mut self, modalias: String, modules: Vec<String>) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.running
            .insert(ticket, (modalias, modules, Instant::now()));
        ticket
    }

    fn end(&mut self, ticket: u64) {
        self.running.remove(&ticket);
    }

    /// Whether every plan with a ticket below `upto` has ended.
    fn all_ended_before(&self, upto: u64) -> bool {
        self.running.range(..upto).next().is_none()
    }

    fn running(&self) -> Vec<RunningPlan> {
        self.running
            .values()
            .map(|(modalias, modules, started)| RunningPlan {
                modalias: modalias.clone(),
                modules: modules.clone(),
                running_for: started.elapsed(),
            })
            .collect()
    }
}

fn lock(book: &Mutex<PlanBook>) -> std::sync::MutexGuard<'_, PlanBook> {
    book.lock().unwrap_or_else(PoisonError::into_inner)
}

fn touch(last: &std::sync::Mutex<Instant>) {
    if let Ok(mut t) = last.lock() {
        *t = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;
    use std::time::Duration;

    use nix::errno::Errno;
    use ractor::call;

    use super::*;
    use crate::load::fake::FakeKernel;
    use crate::load::scheduler::{LoadAction, LoadStep};
    use crate::load::state::SysModule;

    struct MapResolver(HashMap<String, Vec<ModulePlan>>);

    impl PlanSource for MapResolver {
        fn plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, ResolveError> {
            Ok(self.0.get(modalias).cloned().unwrap_or_default())
        }
    }

    fn plan(dir: &Path, target: &str, deps: &[&str]) -> ModulePlan {
        let step = |m: &str| {
            std::fs::write(dir.join(format!("{m}.ko")), m).unwrap();
            LoadStep {
                module: m.into(),
                action: LoadAction::Insert(dir.join(format!("{m}.ko"))),
                options: String::new(),
                soft: false,
            }
        };
        let mut steps: Vec<LoadStep> = deps.iter().map(|d| step(d)).collect();
        steps.push(step(target));
        ModulePlan {
            target: target.into(),
            steps,
        }
    }

    fn event(seqnum: u64, modalias: &str, synthetic: bool) -> Arc<Uevent> {
        let mut b = Uevent::builder(Action::Add, format!("/devices/system/cpu/cpu{seqnum}"))
            .subsystem("cpu")
            .seqnum(seqnum)
            .property("MODALIAS", modalias);
        if synthetic {
            b = b.property("SYNTH_UUID", "6b0c3e1e-5d2a-4f5e-9a1b-0d3c2e1f4a5b");
        }
        Arc::new(b.build().unwrap())
    }

    #[test]
    fn only_add_events_with_a_modalias_or_a_driver_rule_are_looked_up() {
        assert!(looks_up(&event(1, "pci:v1AF4", false)));
        let build = |action, devpath: &str, subsystem: &str| {
            Uevent::builder(action, devpath)
                .subsystem(subsystem)
                .seqnum(2)
                .build()
                .unwrap()
        };
        assert!(!looks_up(&build(
            Action::Add,
            "/devices/virtual/block/sda",
            "block"
        )));
        assert!(looks_up(&build(
            Action::Add,
            "/module/parport_pc",
            "module"
        )));
        assert!(!looks_up(&build(
            Action::Remove,
            "/module/parport_pc",
            "module"
        )));
        let removed = Uevent::builder(Action::Remove, "/devices/pci0000:00/0000:00:03.0")
            .subsystem("pci")
            .seqnum(3)
            .property("MODALIAS", "pci:v1AF4")
            .build()
            .unwrap();
        assert!(!looks_up(&removed));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_devices_with_one_alias_make_one_running_plan_and_one_more_run() {
        // The logical units of a SCSI target hot-added at once: one alias, a slow load.
        let modules = tempfile::tempdir().unwrap();
        let lun = "scsi:t-0x00";
        let kernel = Arc::new(FakeKernel::new(Duration::from_millis(300)));
        let plans = HashMap::from([(
            lun.to_string(),
            vec![plan(modules.path(), "sd_mod", &["t10_pi"])],
        )]);
        let (actor, _sys) = spawn_loader_on(plans, &kernel, 4, false).await;
        let added: Vec<Arc<Uevent>> = (1..=1000).map(|n| event(n, lun, false)).collect();
        for batch in added.chunks(128) {
            actor
                .send_message(LoaderMsg::Events(batch.to_vec(), None))
                .unwrap();
        }
        let running = call!(actor, LoaderMsg::RunningPlans).unwrap();
        assert_eq!(
            running.len(),
            2,
            "one run of the alias, and one more reserved for the devices added meanwhile"
        );
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        let stats = call!(actor, LoaderMsg::Stats).unwrap();
        assert_eq!((stats.events, stats.folded), (1000, 999));
        assert_eq!(
            kernel.calls("sd_mod"),
            2,
            "the first run, and one for the rest"
        );
        assert_eq!(
            stats.loads.loaded, 2,
            "t10_pi and sd_mod, once: the kernel has them after"
        );
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replays_of_one_alias_take_the_outcome_of_the_run_under_way() {
        // Both CPUs of a machine replayed by coldplug; the model's module finds no device.
        let modules = tempfile::tempdir().unwrap();
        let cpu = "cpu:type:x86,ven0002fam0019mod0001:feature:,0000";
        let kernel = Arc::new(
            FakeKernel::new(Duration::from_millis(200)).failing("edac_mce_amd", Errno::ENODEV),
        );
        let plans = HashMap::from([(
            cpu.to_string(),
            vec![plan(modules.path(), "amd64_edac", &["edac_mce_amd"])],
        )]);
        let (actor, _sys) = spawn_loader_on(plans, &kernel, 4, false).await;
        actor
            .send_message(LoaderMsg::Events(
                vec![event(1, cpu, true), event(2, cpu, true)],
                None,
            ))
            .unwrap();
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(
            kernel.calls("edac_mce_amd"),
            1,
            "one attempt answers for both"
        );
        let stats = call!(actor, LoaderMsg::Stats).unwrap();
        assert_eq!((stats.events, stats.folded), (2, 1));
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_device_is_not_retried_for_replays_of_the_same_alias_but_is_for_a_new_device() {
        let modules = tempfile::tempdir().unwrap();
        let cpu = "cpu:type:x86,ven0000fam0006mod00CF:feature:,0000";
        let kernel = Arc::new(
            FakeKernel::new(Duration::from_millis(1)).failing("acpi_cpufreq", Errno::ENODEV),
        );
        let plans = HashMap::from([
            (
                cpu.to_string(),
                vec![plan(modules.path(), "acpi_cpufreq", &["freq_table"])],
            ),
            (
                "pci:v1AF4".to_string(),
                vec![plan(modules.path(), "virtio_net", &["net_failover"])],
            ),
        ]);
        let (actor, _sys) = spawn_loader_on(plans, &kernel, 2, false).await;

        let send =
            |events: Vec<Arc<Uevent>>| actor.send_message(LoaderMsg::Events(events, None)).unwrap();
        send(vec![event(1, cpu, true)]);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("acpi_cpufreq"), 1);

        // 1,535 more CPUs replayed by coldplug: no more attempts, and the storm is counted.
        // In batches of 128, as the listener delivers a burst.
        let replays: Vec<Arc<Uevent>> = (2..=1536).map(|n| event(n, cpu, true)).collect();
        for batch in replays.chunks(128) {
            send(batch.to_vec());
        }
        send(vec![event(5000, "pci:v1AF4", true)]);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(
            kernel.calls("acpi_cpufreq"),
            1,
            "ENODEV remembered for replays"
        );
        assert_eq!(kernel.calls("freq_table"), 1);
        assert_eq!(kernel.calls("virtio_net"), 1);
        let stats = call!(actor, LoaderMsg::Stats).unwrap();
        assert_eq!(stats.events, 1537);
        assert_eq!(stats.skipped_no_device, 1535);
        assert_eq!(stats.loads.failed.get("ENODEV"), Some(&1));

        // A CPU that really appears (hotplug, not a replay) is tried again.
        send(vec![event(9000, cpu, false)]);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("acpi_cpufreq"), 2);
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_modules_of_one_alias_load_one_after_another_in_lookup_order() {
        // The PIIX IDE function matches ata_piix and ata_generic: udev loads ata_piix first, so
        // it binds the device; ata_generic comes after it has had its chance. Another alias
        // still loads in parallel with them.
        let modules = tempfile::tempdir().unwrap();
        let piix = "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80";
        let plans = HashMap::from([
            (
                piix.to_string(),
                vec![
                    plan(modules.path(), "ata_piix", &["libata"]),
                    plan(modules.path(), "ata_generic", &["libata"]),
                ],
            ),
            (
                "pci:v1AF4".to_string(),
                vec![plan(modules.path(), "virtio_net", &[])],
            ),
        ]);
        let sys = tempfile::tempdir().unwrap();
        let kernel =
            Arc::new(FakeKernel::new(Duration::from_millis(100)).with_sys_module(sys.path()));
        let actor = spawn_actor(MapResolver(plans), &kernel, sys.path(), 8, false).await;
        actor
            .send_message(LoaderMsg::Events(
                vec![event(1, piix, false), event(2, "pci:v1AF4", false)],
                None,
            ))
            .unwrap();
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        let order: Vec<String> = kernel.loaded().into_iter().map(|(n, _)| n).collect();
        let pos = |n: &str| order.iter().position(|m| m == n).unwrap();
        assert!(pos("libata") < pos("ata_piix"), "{order:?}");
        assert!(
            pos("ata_piix") < pos("ata_generic"),
            "lookup order: {order:?}"
        );
        assert_eq!(
            kernel.calls("ata_generic") + kernel.calls("ata_piix"),
            2,
            "each once"
        );
        // ata_generic's load started only after ata_piix's ended: with the other alias's
        // load beside them, never more than two loads at once.
        assert_eq!(kernel.max_in_flight(), 2, "{order:?}");
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steady_stream_of_one_alias_does_not_hold_back_wait_started() {
        // Each run of the alias takes 200 ms; new devices keep coming until the wait returns.
        let modules = tempfile::tempdir().unwrap();
        let lun = "scsi:t-0x00";
        let kernel = Arc::new(FakeKernel::new(Duration::from_millis(200)));
        let plans = HashMap::from([(lun.to_string(), vec![plan(modules.path(), "sd_mod", &[])])]);
        let (actor, _sys) = spawn_loader_on(plans, &kernel, 2, false).await;
        let add = |seqnum| {
            actor
                .send_message(LoaderMsg::Events(vec![event(seqnum, lun, false)], None))
                .unwrap()
        };
        add(1);
        add(2); // folded: one more run reserved
        let waiter = actor.clone();
        let mut wait = tokio::spawn(async move { call!(waiter, LoaderMsg::WaitStarted) });
        let mut seqnum = 3;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let returned = loop {
            tokio::select! {
                done = &mut wait => break done.is_ok(),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {
                    add(seqnum);
                    seqnum += 1;
                    if tokio::time::Instant::now() > deadline {
                        break false;
                    }
                }
            }
        };
        assert!(
            returned,
            "WaitStarted waited for runs asked for after it ({seqnum} events sent)"
        );
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_device_folded_into_a_run_forgets_the_no_device_answer() {
        let modules = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        let alias = "platform:fake";
        // No device at the first try; the device that really appears brings one.
        let kernel = Arc::new(
            FakeKernel::new(Duration::from_millis(200))
                .with_sys_module(sys.path())
                .failing_first("fake", Errno::ENODEV, 1),
        );
        let plans = HashMap::from([(alias.to_string(), vec![plan(modules.path(), "fake", &[])])]);
        let actor = spawn_actor(MapResolver(plans), &kernel, sys.path(), 2, false).await;
        let send = |seqnum, synthetic| {
            actor
                .send_message(LoaderMsg::Events(
                    vec![event(seqnum, alias, synthetic)],
                    None,
                ))
                .unwrap()
        };
        send(1, true); // a replay: ENODEV, remembered
        send(2, false); // a real device, folded into that run: one more run, which loads it
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("fake"), 2);
        // rmmod, then a replay (a resync): the module is tried again, as udev would.
        kernel.unload("fake");
        send(3, true);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("fake"), 3, "the ENODEV answer was forgotten");
        actor.stop(None);
    }

    /// Plans from a map that becomes `next` at the first reload after `changed` is set (a changed
    /// index or modprobe.d).
    struct Swapping {
        now: HashMap<String, Vec<ModulePlan>>,
        next: HashMap<String, Vec<ModulePlan>>,
        changed: Arc<std::sync::atomic::AtomicBool>,
    }

    impl PlanSource for Swapping {
        fn plans(&self, modalias: &str) -> Result<Vec<ModulePlan>, ResolveError> {
            Ok(self.now.get(modalias).cloned().unwrap_or_default())
        }

        fn reload_if_changed(&mut self) -> Result<bool, IndexError> {
            let changed = self
                .changed
                .swap(false, std::sync::atomic::Ordering::SeqCst);
            if changed {
                self.now = std::mem::take(&mut self.next);
            }
            Ok(changed)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_after_a_reload_runs_the_new_plans_not_the_running_ones() {
        let modules = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        let alias = "pci:v8086d100E";
        let changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let resolver = Swapping {
            now: HashMap::from([(alias.to_string(), vec![plan(modules.path(), "e1000", &[])])]),
            // depmod ran: a second module matches the alias now.
            next: HashMap::from([(
                alias.to_string(),
                vec![
                    plan(modules.path(), "e1000", &[]),
                    plan(modules.path(), "e1000_new", &[]),
                ],
            )]),
            changed: Arc::clone(&changed),
        };
        let kernel = Arc::new(FakeKernel::new(Duration::from_millis(300)));
        let actor = spawn_actor(resolver, &kernel, sys.path(), 2, false).await;
        let add = |seqnum| {
            actor
                .send_message(LoaderMsg::Events(vec![event(seqnum, alias, false)], None))
                .unwrap()
        };
        add(1);
        // Once the first run is under way: depmod ran.
        while call!(actor, LoaderMsg::RunningPlans).unwrap().is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        changed.store(true, std::sync::atomic::Ordering::SeqCst);
        add(2); // its batch reloads first, while the first run still loads e1000
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(
            kernel.calls("e1000_new"),
            1,
            "the new module was tried: {:?}",
            kernel.all_calls()
        );
        actor.stop(None);
    }

    #[tokio::test]
    async fn a_reload_forgets_the_no_device_answers() {
        let modules = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        let alias = "platform:pcspkr";
        let changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let plans = HashMap::from([(alias.to_string(), vec![plan(modules.path(), "pcspkr", &[])])]);
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO).failing("pcspkr", Errno::ENODEV));
        // modprobe.d changed (e.g. an option): the same plans after the reload.
        let resolver = Swapping {
            now: plans.clone(),
            next: plans,
            changed: Arc::clone(&changed),
        };
        let actor = spawn_actor(resolver, &kernel, sys.path(), 1, false).await;
        let replay = |seqnum| {
            actor
                .send_message(LoaderMsg::Events(vec![event(seqnum, alias, true)], None))
                .unwrap()
        };
        replay(1);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        replay(2);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("pcspkr"), 1, "ENODEV remembered for replays");
        // An administrator changes modprobe.d (e.g. an option) and replays the devices.
        changed.store(true, std::sync::atomic::Ordering::SeqCst);
        replay(3);
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("pcspkr"), 2, "tried again after the reload");
        actor.stop(None);
    }

    /// A loader actor over `plans` that loads into a fake kernel (instant loads).
    async fn spawn_loader(
        plans: HashMap<String, Vec<ModulePlan>>,
        dry_run: bool,
    ) -> (ActorRef<LoaderMsg>, Arc<FakeKernel>, tempfile::TempDir) {
        let kernel = Arc::new(FakeKernel::new(Duration::ZERO));
        let (actor, sys) = spawn_loader_on(plans, &kernel, 2, dry_run).await;
        (actor, kernel, sys)
    }

    /// A loader actor over `plans` that loads into `kernel` with `workers` workers; module
    /// states are read below the temporary directory returned.
    async fn spawn_loader_on(
        plans: HashMap<String, Vec<ModulePlan>>,
        kernel: &Arc<FakeKernel>,
        workers: usize,
        dry_run: bool,
    ) -> (ActorRef<LoaderMsg>, tempfile::TempDir) {
        let sys = tempfile::tempdir().unwrap();
        let actor = spawn_actor(MapResolver(plans), kernel, sys.path(), workers, dry_run).await;
        (actor, sys)
    }

    /// A loader actor over `resolver` that loads into `kernel` with `workers` workers, reading
    /// module states below `sys`.
    async fn spawn_actor(
        resolver: impl PlanSource,
        kernel: &Arc<FakeKernel>,
        sys: &Path,
        workers: usize,
        dry_run: bool,
    ) -> ActorRef<LoaderMsg> {
        let args = LoaderArgs {
            resolver: Box::new(resolver),
            loader: Arc::new(Loader::new(kernel.clone(), SysModule::new(sys), workers)),
            dry_run,
        };
        Actor::spawn(None, LoaderActor, args).await.unwrap().0
    }

    #[tokio::test]
    async fn a_module_add_event_for_parport_pc_loads_ppdev_by_the_driver_rules() {
        let modules = tempfile::tempdir().unwrap();
        let plans = HashMap::from([(
            "ppdev".to_string(),
            vec![plan(modules.path(), "ppdev", &["parport"])],
        )]);
        let (actor, kernel, _sys) = spawn_loader(plans, false).await;
        let module_added = Uevent::builder(Action::Add, "/module/parport_pc")
            .subsystem("module")
            .seqnum(7)
            .build()
            .unwrap();
        actor
            .send_message(LoaderMsg::Events(vec![Arc::new(module_added)], None))
            .unwrap();
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert_eq!(kernel.calls("ppdev"), 1);
        assert_eq!(kernel.calls("parport"), 1);
        let idle = call!(actor, LoaderMsg::Stats).unwrap().idle_for;
        assert!(idle.is_some(), "idle once the plan ended");
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wait_started_waits_for_the_plans_started_before_it_and_not_for_later_ones() {
        let modules = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        // Every load takes 300 ms: "a" is one load, "b" three one after another.
        let plans = HashMap::from([
            ("a".to_string(), vec![plan(modules.path(), "mod_a", &[])]),
            (
                "b".to_string(),
                vec![plan(modules.path(), "mod_b", &["dep_b1", "dep_b2"])],
            ),
        ]);
        let kernel = Arc::new(FakeKernel::new(Duration::from_millis(300)));
        let actor = spawn_actor(MapResolver(plans), &kernel, sys.path(), 4, false).await;
        // Nothing running: the answer comes at once.
        ractor::call_t!(actor, LoaderMsg::WaitStarted, 5000).unwrap();

        let started = Instant::now();
        actor
            .send_message(LoaderMsg::Events(vec![event(1, "a", false)], None))
            .unwrap();
        let barrier = {
            let actor = actor.clone();
            tokio::spawn(async move { call!(actor, LoaderMsg::WaitStarted) })
        };
        // Handled after the barrier: not waited for.
        tokio::time::sleep(Duration::from_millis(50)).await;
        actor
            .send_message(LoaderMsg::Events(vec![event(2, "b", false)], None))
            .unwrap();
        barrier.await.unwrap().unwrap();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        let running = call!(actor, LoaderMsg::RunningPlans).unwrap();
        assert_eq!(running.len(), 1, "{running:?}");
        assert_eq!(running[0].modalias, "b");
        assert_eq!(running[0].modules, ["mod_b"]);
        assert!(
            waited < Duration::from_millis(850),
            "waited for b too: {waited:?}"
        );

        call!(actor, LoaderMsg::WaitIdle).unwrap();
        assert!(call!(actor, LoaderMsg::RunningPlans).unwrap().is_empty());
        actor.stop(None);
    }

    #[tokio::test]
    async fn dry_run_resolves_but_loads_nothing() {
        let modules = tempfile::tempdir().unwrap();
        let plans = HashMap::from([(
            "pci:v1AF4".to_string(),
            vec![plan(modules.path(), "virtio_net", &["net_failover"])],
        )]);
        let (actor, kernel, _sys) = spawn_loader(plans, true).await;
        actor
            .send_message(LoaderMsg::Load {
                modalias: "pci:v1AF4".into(),
                synthetic: false,
            })
            .unwrap();
        call!(actor, LoaderMsg::WaitIdle).unwrap();
        let stats = call!(actor, LoaderMsg::Stats).unwrap();
        assert_eq!((stats.events, stats.plans), (1, 1));
        assert!(kernel.all_calls().is_empty());
        actor.stop(None);
    }
}
