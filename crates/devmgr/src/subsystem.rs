//! The device manager as one subsystem of a supervision tree: a `devmgr` node whose children
//! are `listener`, `loader` and `coldplug`, in one group (when one dies, all three restart, and
//! the restarted coldplug replays every device, so nothing lost in between stays unloaded).
//!
//! Order: the listener is up (its socket bound) before anything else starts; the loader is
//! subscribed to that listener before coldplug writes a single `uevent` file. When the module
//! index cannot be loaded (the modules are on a file system mounted later), the loader says so,
//! looks for it again on each batch of events and every second, and once it opens asks
//! coldplug to replay the devices, so that none that arrived meanwhile stays driverless.

use std::sync::Arc;
use std::time::{Duration, Instant};

use coldplug::PassReport;
use kmod_loader::load::{
    Compression, InstallPolicy, LinuxKernel, Loader, LoaderActor, LoaderArgs, LoaderMsg, SysModule,
    default_workers,
};
use kmod_loader::{Resolver, ResolverOptions, Stamp};
use listener::{Filter, Listener, ListenerMsg, Notification, Subscription};
use ractor::{Actor, ActorId, ActorRef, call};
use supervisor::{CancelToken, Canceled, Context, RunResult, Runnable, Signal, actor_runnable};
use tokio::sync::{mpsc, watch};
use uevent::Action;

use crate::config::Config;
use crate::handled::{Ledger, LookupTicket, ReplayTicket, note_accepted};
use crate::observe::{SettleHolds, SettleWindows};
use crate::subscription::Hub;

/// Events the loader may have in flight from the listener (default of
/// [`RunOptions::loader_capacity`]): about 2 MB of events at most.
pub const LOADER_CAPACITY: usize = 4096;

/// How the subsystem runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// Resolve and log what would be loaded; load nothing.
    pub dry_run: bool,
    /// Appended to the registry names of the actors, so several instances can share a process
    /// (tests).
    pub instance: String,
    /// Events the loader may have in flight (queued or being handled). Past this the listener
    /// drops the loader's events and sends it a resync, and coldplug replays the devices, so
    /// memory stays bounded under a storm and nothing stays unloaded.
    pub loader_capacity: usize,
    /// Stress tests: the loader stops taking events for this long after its first batch, as
    /// a loader held up by slow loads would (zero, the default: never).
    pub loader_stall: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            instance: String::new(),
            loader_capacity: LOADER_CAPACITY,
            loader_stall: Duration::ZERO,
        }
    }
}

/// What the outside can watch of a running subsystem.
#[derive(Debug, Clone)]
pub struct Observer {
    /// The coldplug pass's report, once it ended.
    pub settled: watch::Receiver<Option<PassReport>>,
    /// The listener's registry name (to ask it for its counters; other subsystems subscribe
    /// with [`Observer::subscribe`], which follows the listener through restarts).
    pub listener: String,
    /// The loader's registry name.
    pub loader: String,
    /// The coldplug actor's registry name.
    pub coldplug: String,
    /// The short window of the settle rule (`coldplug.settle_quiet`).
    pub(crate) quiet: Duration,
    /// What the accepted events hold the settle rule for (fed by the `settle` subscription).
    pub(crate) holds: Arc<SettleHolds>,
    /// Whether the module index could be read at start (`None` until the subsystem started).
    pub(crate) loading: watch::Receiver<Option<bool>>,
    /// Dry run.
    pub(crate) dry_run: bool,
    /// What the listener accepted and the loader has yet to look up ([`Observer::settle`]).
    pub(crate) ledger: watch::Receiver<Ledger>,
    /// The typed subscriptions ([`Observer::subscribe`]).
    pub(crate) hub: Arc<Hub>,
    /// Closed once the subsystem is gone (its sender is never used otherwise).
    pub(crate) alive: watch::Receiver<()>,
}

/// Where [`root`] mounts the device manager.
pub const ROOT_DN: &str = "root.devmgr";

/// The restart policy of a tree made by [`root`]: devmgr's `[restart]` attached at
/// [`ROOT_DN`] (the root node itself, which never restarts, takes the same defaults).
pub fn root_policy(
    restart: &supervisor::SubtreePolicy,
) -> Result<supervisor::RestartPolicy, supervisor::InvalidPolicy> {
    supervisor::RestartPolicy::new(restart.defaults())?.attach(ROOT_DN, restart.clone())
}

/// A root runnable for a tree that holds only the device manager (`devmgr run`, tests): it
/// starts `devmgr` as `root.devmgr` ([`ROOT_DN`]) and is done.
pub fn root(devmgr: Runnable) -> Runnable {
    Runnable::new(move |ctx: Context| {
        let devmgr = devmgr.clone();
        async move {
            ctx.run("devmgr", devmgr)?;
            ctx.signal(Signal::Healthy)?;
            ctx.signal(Signal::Done)?;
            Ok(())
        }
    })
}

/// The `devmgr` runnable and a way to watch it.
pub fn runnable(config: Config, options: RunOptions) -> (Runnable, Observer) {
    let (shared, observer) = shared(config, options);
    let runnable = Runnable::new(move |ctx: Context| run(ctx, Arc::clone(&shared)));
    (runnable, observer)
}

/// The state the nodes of one subsystem share, and the observer of it.
fn shared(config: Config, options: RunOptions) -> (Arc<Shared>, Observer) {
    let names = Names {
        listener: format!("devmgr-listener{}", options.instance),
        loader: format!("devmgr-loader{}", options.instance),
        coldplug: format!("devmgr-coldplug{}", options.instance),
    };
    let (settled_tx, settled) = watch::channel(None);
    let (loading_tx, loading) = watch::channel(None);
    let (ledger_tx, ledger) = watch::channel(Ledger::default());
    let (alive_tx, alive) = watch::channel(());
    let hub = Arc::new(Hub::default());
    let holds = Arc::new(SettleHolds::new(
        SettleWindows {
            quiet: config.coldplug.settle_quiet,
            enumeration: config.coldplug.settle_enumeration,
        },
        &config.coldplug.sysfs,
    ));
    let observer = Observer {
        settled,
        listener: names.listener.clone(),
        loader: names.loader.clone(),
        coldplug: names.coldplug.clone(),
        quiet: config.coldplug.settle_quiet,
        holds: Arc::clone(&holds),
        loading,
        dry_run: options.dry_run,
        ledger,
        hub: Arc::clone(&hub),
        alive,
    };
    let shared = Arc::new(Shared {
        config,
        options,
        names,
        settled: settled_tx,
        loading: loading_tx,
        listener_run: watch::channel(None).0,
        subscribed: watch::channel(None).0,
        ledger: ledger_tx,
        hub,
        holds,
        _alive: alive_tx,
    });
    (shared, observer)
}

#[derive(Debug, Clone)]
struct Names {
    listener: String,
    loader: String,
    coldplug: String,
}

struct Shared {
    config: Config,
    options: RunOptions,
    names: Names,
    settled: watch::Sender<Option<PassReport>>,
    /// Whether module loading is enabled (decided at each start of the subsystem).
    loading: watch::Sender<Option<bool>>,
    /// Cancelled with the listener node's current incarnation; set as that incarnation starts,
    /// before its actor is spawned ([`listener_up`]).
    listener_run: watch::Sender<Option<CancelToken>>,
    /// The listener the loader is subscribed to (set by each loader incarnation, reset when it
    /// ends).
    subscribed: watch::Sender<Option<ActorId>>,
    /// Fed by the loader's subscription and the `settle` one ([`crate::handled`]).
    ledger: watch::Sender<Ledger>,
    /// The typed subscriptions, moved to each new listener by the loader node.
    hub: Arc<Hub>,
    /// Fed by the `settle` subscription: events that may still produce devices.
    holds: Arc<SettleHolds>,
    /// Dropped with the subsystem: ends [`crate::subscription::Subscription::recv`].
    _alive: watch::Sender<()>,
}

fn resolver_options(config: &Config) -> ResolverOptions {
    let defaults = ResolverOptions::default();
    ResolverOptions {
        module_dir: config
            .loader
            .module_dir
            .clone()
            .unwrap_or(defaults.module_dir),
        config_dirs: config
            .loader
            .modprobe_d
            .clone()
            .unwrap_or(defaults.config_dirs),
        cmdline: match &config.loader.cmdline {
            Some(path) if path.as_os_str().is_empty() => None,
            Some(path) => Some(path.clone()),
            None => defaults.cmdline,
        },
    }
}

async fn run(ctx: Context, shared: Arc<Shared>) -> RunResult {
    let receive_buffer = shared.config.listener.receive_buffer;
    let pacing_window = pacing_window(shared.config.coldplug.pacing);
    let listener_run = shared.listener_run.clone();
    let listener = actor_runnable(Some(shared.names.listener.clone()), move |ctx: &Context| {
        // Called as each listener incarnation starts, when the previous one's actor is gone.
        listener_run.send_replace(Some(ctx.child_token()));
        let config = listener::ListenerConfig {
            receive_buffer,
            pacing_window,
            ..listener::ListenerConfig::default()
        };
        (Listener, config)
    });
    let loader = {
        let shared = Arc::clone(&shared);
        Runnable::new(move |ctx: Context| loader_node(ctx, Arc::clone(&shared)))
    };
    let coldplug = {
        let shared = Arc::clone(&shared);
        Runnable::new(move |ctx: Context| coldplug_node(ctx, Arc::clone(&shared)))
    };
    ctx.run_group([
        ("listener", listener),
        ("loader", loader),
        ("coldplug", coldplug),
    ])?;
    ctx.signal(Signal::Healthy)?;
    ctx.signal(Signal::Done)?;
    Ok(())
}

/// The pacing window, in events, the listener's effective receive buffer must hold for
/// coldplug's `pacing` (0: no pacing, nothing to check).
pub fn pacing_window(pacing: coldplug::Pacing) -> usize {
    match pacing {
        coldplug::Pacing::Auto => listener::MIN_PACING_WINDOW,
        coldplug::Pacing::Off => 0,
        coldplug::Pacing::Window(n) => n,
    }
}

/// Waits (at most 10 s) until the listener of the listener node's current, live incarnation
/// is registered and answers, i.e. its socket is bound.
///
/// The name alone does not tell incarnations apart. The supervisor restarts each member of the
/// group as soon as that member has exited, not once the whole group has: when the loader
/// dies, the coldplug node (cancelled, restarted without backoff) or the loader (after its
/// backoff) may start again while the listener's actor, cancelled too, has not yet stopped and
/// still answers under its name. Whatever subscribes to that listener then hears nothing once
/// it stops (a coldplug pass that writes every device and gets no answer). So a listener only
/// counts while the incarnation that was current before it was looked up is not cancelled:
/// the previous incarnation's actor gave up its name before that node exited, so the one found
/// belongs to that incarnation, and a cancellation after the check also cancels the caller
/// (group siblings are cancelled together), which is then restarted.
async fn listener_up(ctx: &Context, shared: &Shared) -> Result<ActorRef<ListenerMsg>, String> {
    let name = &shared.names.listener;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let run = shared.listener_run.borrow().clone();
        if let Some(run) = run.filter(|run| !run.is_cancelled())
            && let Some(listener) = ActorRef::<ListenerMsg>::where_is(name.clone())
            && call!(listener, ListenerMsg::Stats).is_ok()
            && !run.is_cancelled()
        {
            return Ok(listener);
        }
        if ctx.is_cancelled() || tokio::time::Instant::now() > deadline {
            return Err(format!("listener {name:?} is not up"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The loader: subscribes to the listener at once (so coldplug can start replaying), reads the
/// module index meanwhile, then hands the queued events to the loader actor. Without a usable
/// index it stays up without loading anything, and says so.
async fn loader_node(ctx: Context, shared: Arc<Shared>) -> RunResult {
    // Unknown (`None`, as the previous incarnation left it) until this one has read the index
    // and its actor runs, and again as soon as it ends (killed, failed or cancelled), so nobody
    // takes a dead loader's state for settled while the group waits out its backoff.
    let _unknown_after = ResetOnDrop(&shared.loading);
    // Nor is a loader that has ended subscribed to any listener.
    let _unsubscribed_after = ResetOnDrop(&shared.subscribed);
    let listener = listener_up(&ctx, &shared).await?;
    let (queue, mut queued) = mpsc::unbounded_channel::<Queued>();
    // The `settle` subscription below ends with this incarnation.
    let alive = Arc::new(());
    let incarnation = Arc::downgrade(&alive);
    let ledger = shared.ledger.clone();
    let subscription = Subscription::to_fn(move |n| match n {
        Notification::Uevents(batch) => {
            let events = batch.iter().map(|d| Arc::clone(d.event())).collect();
            // Counted as not looked up until the loader actor has handled the message (or it
            // was dropped): `devmgr settle` waits for it.
            let ticket = LookupTicket::new(&ledger, &batch);
            // The deliveries ride along and are dropped once handled: the listener's bound on
            // events in flight holds through the queue and the loader's mailbox.
            queue
                .send(Queued::Events(LoaderMsg::Events(
                    events,
                    Some(Box::new((batch, ticket))),
                )))
                .is_ok()
        }
        // Counted as pending until passed on to coldplug: nobody takes the loader for settled
        // while the replay it needs has not even been asked for.
        Notification::Resync(_) => queue
            .send(Queued::Resync(ReplayTicket::new(&ledger)))
            .is_ok(),
    })
    // Only what the loader looks anything up for (not a disk's `block`, `bdi` or `scsi_disk`
    // events): a hot-add of thousands of devices queues a fraction of its events for it.
    .filter(Filter::actions([Action::Add]).only_if(kmod_loader::load::looks_up))
    .named("loader")
    // Past this many events in flight the listener drops the loader's events and sends it a
    // `Resync`, which is passed on to coldplug (below): memory stays bounded under a storm.
    .capacity(shared.options.loader_capacity.max(1));
    call!(listener, ListenerMsg::Subscribe, subscription)
        .map_err(|err| format!("loader could not subscribe to the listener: {err}"))?;
    // Every accepted event, for the highest seqnum the listener accepted and the settle rule's
    // holds (a hub bound, ...). After the loader's subscription, so when it sees an event the
    // loader's ticket for it exists already. Its deliveries are dropped at once: it never
    // falls behind.
    let ledger = shared.ledger.clone();
    let holds = Arc::clone(&shared.holds);
    let settle = Subscription::to_fn(move |n| {
        if let Notification::Uevents(batch) = n {
            note_accepted(&ledger, &batch);
            holds.note(batch.iter().map(|d| d.event().as_ref()), Instant::now());
        }
        incarnation.strong_count() > 0
    })
    .named("settle");
    call!(listener, ListenerMsg::Subscribe, settle)
        .map_err(|err| format!("settle could not subscribe to the listener: {err}"))?;
    // The typed subscriptions ([`Observer::subscribe`]) follow this listener, before coldplug
    // replays (they see the replay). Activated once subscribed: each gets its `NewListener`
    // notice then, before this listener's first event for it.
    let (relay, generation) = shared.hub.relay();
    call!(listener, ListenerMsg::Subscribe, relay)
        .map_err(|err| format!("the subscriptions could not follow the listener: {err}"))?;
    shared.hub.activate(generation);
    shared.subscribed.send_replace(Some(listener.get_id()));
    ctx.signal(Signal::Healthy)?;

    let config = &shared.config;
    let options = resolver_options(config);
    let resolver = match open_index(&ctx, &options).await? {
        Ok(resolver) => resolver,
        Err(why) => {
            let resolver = wait_for_index(&ctx, &shared, &options, why, &mut queued).await?;
            // Whatever arrived meanwhile was dropped: replay the devices so none stays
            // driverless (the coldplug actor queues it after a pass still running).
            match ActorRef::<coldplug::ColdplugMsg>::where_is(shared.names.coldplug.clone()) {
                Some(coldplug) => {
                    let _ = coldplug.send_message(coldplug::ColdplugMsg::Resync);
                }
                None => {
                    tracing::warn!("the coldplug actor is not running; devices are not replayed")
                }
            }
            resolver
        }
    };
    let cmdline = options
        .cmdline
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    let workers = match config.loader.workers {
        0 => default_workers(),
        n => n,
    };
    let loader = Loader::new(Arc::new(LinuxKernel), SysModule::default(), workers)
        .kernel_decompresses(Compression::supported_by_kernel(
            "/sys/module/compression".as_ref(),
        ))
        .kernel_blacklist(kernel_module_blacklist(&cmdline))
        .install_commands(InstallPolicy {
            run: config.loader.run_install_commands,
            ..InstallPolicy::default()
        });
    let args = LoaderArgs {
        resolver: Box::new(resolver),
        loader: Arc::new(loader),
        dry_run: shared.options.dry_run,
    };
    let (actor, mut stopped) = Actor::spawn(Some(shared.names.loader.clone()), LoaderActor, args)
        .await
        .map_err(|err| format!("loader actor did not start: {err}"))?;
    shared.loading.send_replace(Some(true));
    let mut stall = shared.options.loader_stall;
    loop {
        tokio::select! {
            msg = queued.recv() => {
                let msg = match msg {
                    Some(Queued::Events(msg)) => Some(msg),
                    Some(Queued::Resync(ticket)) => {
                        // The loader fell behind (or the socket overran): events were dropped,
                        // so the devices are replayed for it.
                        request_replay(&shared);
                        drop(ticket);
                        Some(LoaderMsg::Resync)
                    }
                    None => None,
                };
                let forwarded = match msg {
                    Some(msg) => actor.send_message(msg).is_ok(),
                    None => false,
                };
                if !stall.is_zero() {
                    tracing::warn!(stall_ms = stall.as_millis() as u64, "loader held (stress test)");
                    tokio::time::sleep(std::mem::take(&mut stall)).await;
                }
                if !forwarded {
                    actor.stop(Some("the listener stopped delivering".into()));
                    let _ = (&mut stopped).await;
                    return Err("the loader's subscription ended".into());
                }
            }
            _ = ctx.cancelled() => {
                actor.stop(Some("supervisor context cancelled".into()));
                let _ = (&mut stopped).await;
                return Err(Canceled.into());
            }
            _ = &mut stopped => return Err("loader actor stopped".into()),
        }
    }
}

/// What the loader's subscription queues for the loader node.
enum Queued {
    /// A batch of events for the loader actor.
    Events(LoaderMsg),
    /// The subscription overflowed: a replay is needed (pending in the ledger until asked).
    Resync(ReplayTicket),
}

/// Asks coldplug to replay the devices for the loader (after its current pass, if one runs;
/// several requests while one is pending make one replay). When coldplug is not running, the
/// group is restarting, and its new coldplug replays everything anyway.
fn request_replay(shared: &Shared) {
    match ActorRef::<coldplug::ColdplugMsg>::where_is(shared.names.coldplug.clone()) {
        Some(coldplug) => {
            let _ = coldplug.send_message(coldplug::ColdplugMsg::Resync);
        }
        None => tracing::debug!("coldplug not running; its next incarnation replays"),
    }
}

/// Opens the module index for lookups in place, as libkmod does (kmod-loader's
/// `Resolver::open`). The outer error is a cancellation, the inner one why the index cannot be
/// used.
async fn open_index(
    ctx: &Context,
    options: &ResolverOptions,
) -> Result<Result<Resolver, String>, supervisor::BoxError> {
    let reading = std::time::Instant::now();
    let read = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || Resolver::open(options))
    };
    let resolver = tokio::select! {
        read = read => read,
        _ = ctx.cancelled() => return Err(Canceled.into()),
    };
    Ok(match resolver {
        Ok(Ok(resolver)) => {
            tracing::info!(
                dir = %options.module_dir.display(),
                elapsed_ms = reading.elapsed().as_millis(),
                "module index read"
            );
            Ok(resolver)
        }
        Ok(Err(err)) => Err(err.to_string()),
        Err(err) => Err(err.to_string()),
    })
}

/// How often the module index is looked for while it is missing, besides each batch of events.
const INDEX_RECHECK: Duration = Duration::from_secs(1);

/// The module index cannot be read (not there yet: the modules may be on a file system mounted
/// later): say so, drop what arrives, and look again — by the stamp of its files, which costs
/// a few `stat` calls — on each batch of events and every [`INDEX_RECHECK`], until it opens.
async fn wait_for_index(
    ctx: &Context,
    shared: &Shared,
    options: &ResolverOptions,
    why: String,
    queued: &mut mpsc::UnboundedReceiver<Queued>,
) -> Result<Resolver, supervisor::BoxError> {
    ctx.logger().error(format!(
        "module loading waits: the module index cannot be loaded: {why}; looking again on each event and every {}s",
        INDEX_RECHECK.as_secs()
    ));
    shared.loading.send_replace(Some(false));
    let mut stamp = Stamp::take(options);
    let mut tick = tokio::time::interval(INDEX_RECHECK);
    loop {
        tokio::select! {
            msg = queued.recv() => if msg.is_none() {
                return Err("the loader's subscription ended".into());
            },
            _ = tick.tick() => {}
            _ = ctx.cancelled() => return Err(Canceled.into()),
        }
        let now = Stamp::take(options);
        if now == stamp {
            continue;
        }
        stamp = now;
        match open_index(ctx, options).await? {
            Ok(resolver) => {
                ctx.logger().info(format!(
                    "module index appeared in {}: module loading starts, devices replayed",
                    options.module_dir.display()
                ));
                return Ok(resolver);
            }
            Err(err) => {
                tracing::debug!(error = %err, "module index changed but still cannot be loaded")
            }
        }
    }
}

async fn coldplug_node(ctx: Context, shared: Arc<Shared>) -> RunResult {
    // `None` until this incarnation's replay ends (the previous one reset it when it ended),
    // and again once this one ends.
    let _unsettled_after = ResetOnDrop(&shared.settled);
    let listener = listener_up(&ctx, &shared).await?;
    // Not a single write before the loader listens to this very listener.
    let mut subscribed = shared.subscribed.subscribe();
    let id = listener.get_id();
    let waited = tokio::time::timeout(
        Duration::from_secs(10),
        subscribed.wait_for(|s| *s == Some(id)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    if !waited {
        return Err("the loader did not subscribe to the listener within 10 s".into());
    }
    let config = coldplug_config(&shared.config.coldplug, &shared.names.coldplug);
    // This very listener, not whatever is registered under its name by now.
    coldplug::supervised::run_with_listener(ctx, listener, config, Some(shared.settled.clone()))
        .await
}

/// Coldplug's settings from devmgr's `[coldplug]` (registered as `name`): besides the devices
/// with a modalias, its replays after lost events trigger what udev's driver rules act on.
fn coldplug_config(
    coldplug: &crate::config::ColdplugConfig,
    name: &str,
) -> coldplug::ColdplugConfig {
    let owned = |list: &[&str]| -> Vec<String> { list.iter().map(|s| (*s).to_owned()).collect() };
    coldplug::ColdplugConfig {
        sysfs: coldplug.sysfs.clone(),
        settle_timeout: coldplug.settle_timeout,
        pacing: coldplug.pacing,
        actor_name: Some(name.to_owned()),
        // The driver rules' kobjects outside /sys/devices (parport_pc's module event).
        extra: kmod_loader::load::rules::REPLAYED
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
        // The devices the driver rules act on without a modalias (tifm, memstick, mtd*ro).
        resync_also: coldplug::walk::DeviceMatch {
            subsystems: owned(kmod_loader::load::rules::RULE_SUBSYSTEMS),
            names: owned(kmod_loader::load::rules::RULE_NAMES),
        },
        ..coldplug::ColdplugConfig::default()
    }
}

/// Sets a watched state back to `None` when dropped (the node's future ends or is dropped).
struct ResetOnDrop<'a, T>(&'a watch::Sender<Option<T>>);

impl<T> Drop for ResetOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.send_replace(None);
    }
}

/// The modules of `module_blacklist=` on a kernel command line.
fn kernel_module_blacklist(cmdline: &str) -> Vec<String> {
    cmdline
        .split_whitespace()
        .filter_map(|arg| arg.strip_prefix("module_blacklist="))
        .flat_map(|list| list.split(','))
        .filter(|m| !m.is_empty())
        .map(|m| m.replace('-', "_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use listener::ListenerStats;
    use ractor::ActorProcessingErr;
    use supervisor::{Options, Supervisor};

    use super::*;

    /// Answers `Stats` as a listener whose socket is bound does; nothing else.
    struct FakeListener;

    impl Actor for FakeListener {
        type Msg = ListenerMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<ListenerMsg>,
            _args: (),
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }

        async fn handle(
            &self,
            _myself: ActorRef<ListenerMsg>,
            msg: ListenerMsg,
            _state: &mut (),
        ) -> Result<(), ActorProcessingErr> {
            if let ListenerMsg::Stats(reply) = msg {
                let _ = reply.send(ListenerStats {
                    counts: Default::default(),
                    subscribers: Vec::new(),
                    port: 0,
                    receive_buffer: 0,
                });
            }
            Ok(())
        }
    }

    /// The race behind a restarted coldplug pass that wrote every device and heard no answer:
    /// the loader died, the group's coldplug node was restarted at once, and found under the
    /// listener's name the previous listener, cancelled with the group but not stopped yet.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_listener_of_a_cancelled_incarnation_is_not_taken_for_the_current_one() {
        let options = RunOptions {
            instance: "-unit-cancelled-listener".into(),
            ..RunOptions::default()
        };
        let (shared, _observer) = shared(Config::default(), options);
        let name = shared.names.listener.clone();
        // The previous incarnation: its node is cancelled, its actor still answers.
        let previous_run = CancelToken::new();
        shared.listener_run.send_replace(Some(previous_run.clone()));
        let (previous, previous_stopped) = Actor::spawn(Some(name.clone()), FakeListener, ())
            .await
            .expect("spawns");
        previous_run.cancel();

        let (found_tx, mut found) = mpsc::unbounded_channel();
        let probe = {
            let shared = Arc::clone(&shared);
            Runnable::new(move |ctx: Context| {
                let (shared, found_tx) = (Arc::clone(&shared), found_tx.clone());
                async move {
                    let listener = listener_up(&ctx, &shared).await;
                    let _ = found_tx.send(listener.map(|l| l.get_id()));
                    ctx.signal(Signal::Healthy)?;
                    ctx.signal(Signal::Done)?;
                    Ok(())
                }
            })
        };
        let tree = Supervisor::new(probe, Options::new())
            .await
            .expect("tree starts");
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), found.recv()).await {
            panic!(
                "listener_up returned {got:?} while the only listener registered, {:?}, \
                 belongs to a cancelled incarnation",
                previous.get_id()
            );
        }

        // The previous actor stops (and gives up its name), the next incarnation starts.
        previous.stop(None);
        previous_stopped.await.expect("stops");
        shared.listener_run.send_replace(Some(CancelToken::new()));
        let (next, next_stopped) = Actor::spawn(Some(name), FakeListener, ())
            .await
            .expect("spawns");
        let got = tokio::time::timeout(Duration::from_secs(5), found.recv())
            .await
            .expect("listener_up returns once the next listener is up")
            .expect("probe ran");
        assert_eq!(got, Ok(next.get_id()));
        tree.shutdown();
        tree.wait_stopped().await;
        next.stop(None);
        next_stopped.await.expect("stops");
    }

    #[test]
    fn devmgrs_restart_overrides_name_its_nodes_relative_to_where_it_runs() {
        let text = "[restart.defaults]\ninitial_interval = \"100ms\"\n\
                    [restart.overrides.listener]\nmax_interval = \"1m30s\"\n";
        let config = Config::parse(text, std::path::Path::new("devmgr.toml")).expect("parses");
        let policy = root_policy(&config.restart).expect("valid");
        let listener = policy.params_for("root.devmgr.listener");
        assert_eq!(listener.max_interval, Duration::from_secs(90));
        assert_eq!(listener.initial_interval, Duration::from_millis(100));
        assert_eq!(
            policy.params_for("root.devmgr.loader").max_interval,
            Duration::from_secs(60),
            "the defaults' cap"
        );
    }

    #[test]
    fn the_kernels_module_blacklist_is_read_from_the_command_line() {
        assert_eq!(
            kernel_module_blacklist("quiet module_blacklist=nouveau,snd-pcsp root=/dev/vda"),
            ["nouveau", "snd_pcsp"]
        );
        assert!(kernel_module_blacklist("modprobe.blacklist=x quiet").is_empty());
    }

    #[test]
    fn replays_after_lost_events_reach_the_devices_the_driver_rules_act_on() {
        let sysfs = tempfile::tempdir().unwrap();
        // A device directory with its `uevent` file and `subsystem` link, as the walk wants.
        let device = |path: &str, subsystem: &str| {
            let (dir, class) = (
                sysfs.path().join(path),
                sysfs.path().join("bus").join(subsystem),
            );
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::create_dir_all(&class).unwrap();
            std::fs::write(dir.join("uevent"), "").unwrap();
            std::os::unix::fs::symlink(class, dir.join("subsystem")).unwrap();
        };
        device("devices/pci0000:00/0000:00:02.0/tifm0:1", "tifm");
        device("devices/virtual/mtd/mtd0ro", "mtd");
        device("devices/virtual/mtd/mtd0", "mtd");
        let config = coldplug_config(
            &crate::config::ColdplugConfig {
                sysfs: sysfs.path().to_owned(),
                ..Config::default().coldplug
            },
            "coldplug",
        );
        let replayed: Vec<String> = coldplug::walk::resync_list(sysfs.path(), &config.resync_also)
            .devices
            .iter()
            .map(|d| d.strip_prefix(sysfs.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(
            replayed,
            [
                "devices/pci0000:00/0000:00:02.0/tifm0:1",
                "devices/virtual/mtd/mtd0ro"
            ],
            "a tifm device and an mtd*ro, not a plain mtd device"
        );
        assert_eq!(
            config.extra,
            [std::path::PathBuf::from("module/parport_pc")]
        );
        assert_eq!(config.sysfs, sysfs.path());
    }
}
