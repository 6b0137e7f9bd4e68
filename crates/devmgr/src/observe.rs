//! Watching a running subsystem from outside: when it has settled, and a summary of every
//! actor's counters on request.
//!
//! *Settled* means: the coldplug replay ended (every replayed device answered, or was given
//! up on), no module load is running, no device with a modalias (or a driver rule) was added
//! for `coldplug.settle_quiet`, no event waits in front of the loader, and no replay asked for
//! a loader that fell behind is pending or running. The quiet period is there because some devices appear
//! only a moment after a driver bound: USB devices are enumerated by the hub driver some
//! hundred milliseconds after their host controller's module was loaded.

use std::fmt;
use std::time::Duration;

use coldplug::{ColdplugMsg, PassReport};
use kmod_loader::load::{LoaderMsg, LoaderStats};
use listener::{ListenerMsg, ListenerStats};
use ractor::{ActorRef, call_t};

use crate::subsystem::Observer;

/// How long a question to an actor may take before it counts as unanswered.
const ASK_TIMEOUT_MS: u64 = 10_000;
/// How long waiting for the loads to end may take.
const IDLE_TIMEOUT_MS: u64 = 600_000;

/// The counters of every actor at one moment.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The report of the coldplug replay, once it ended.
    pub replay: Option<PassReport>,
    /// The listener's counters (`None`: not running at the moment).
    pub listener: Option<ListenerStats>,
    /// The loader's counters (`None`: not running, or module loading is disabled).
    pub loader: Option<LoaderStats>,
    /// Whether module loading is enabled at all.
    pub loading: bool,
    /// Whether the loader only resolves (dry run).
    pub dry_run: bool,
}

impl Observer {
    /// Waits until the subsystem has settled (see the module docs) and returns the summary at
    /// that moment; `None` if the subsystem went away first.
    pub async fn wait_settled(&mut self) -> Option<Summary> {
        loop {
            self.settled.wait_for(Option::is_some).await.ok()?;
            self.loading.wait_for(Option::is_some).await.ok()?;
            if self.loading() && !self.quiet_loader().await {
                // The loader is down (a restart under way): wait for the next incarnation.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            if !self.nothing_queued().await {
                // Events wait in front of the loader, or a replay was asked for it (it fell
                // behind) or runs: its lookups are still to come.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            // Still the same incarnation's state: a restart in between resets both.
            if self.settled.borrow().is_some() && self.loading.borrow().is_some() {
                return Some(self.summary().await);
            }
        }
    }

    /// No event handed to the loader waits for its lookups, no replay it asked for waits to
    /// be passed on, and coldplug runs no pass and has none queued. `false` while coldplug is
    /// not running or does not answer.
    async fn nothing_queued(&self) -> bool {
        if !self.ledger.borrow().idle() {
            return false;
        }
        let Some(coldplug) = ActorRef::<ColdplugMsg>::where_is(self.coldplug.clone()) else {
            return false;
        };
        matches!(
            call_t!(coldplug, ColdplugMsg::Busy, ASK_TIMEOUT_MS),
            Ok(false)
        )
    }

    /// Waits until the loader is idle and has been for the quiet period (no lookup asked for,
    /// no plan ended). `false` when the loader is not running (it is being restarted).
    async fn quiet_loader(&self) -> bool {
        loop {
            let Some(loader) = ActorRef::<LoaderMsg>::where_is(self.loader.clone()) else {
                return false;
            };
            let _ = call_t!(loader, LoaderMsg::WaitIdle, IDLE_TIMEOUT_MS);
            let Ok(stats) = call_t!(loader, LoaderMsg::Stats, ASK_TIMEOUT_MS) else {
                return false;
            };
            match stats.idle_for {
                Some(idle) if idle >= self.quiet => return true,
                Some(idle) => tokio::time::sleep(self.quiet - idle).await,
                None => {}
            }
        }
    }

    /// Asks every actor for its counters.
    pub async fn summary(&self) -> Summary {
        let listener = match ActorRef::<ListenerMsg>::where_is(self.listener.clone()) {
            Some(actor) => call_t!(actor, ListenerMsg::Stats, ASK_TIMEOUT_MS).ok(),
            None => None,
        };
        let loader = match ActorRef::<LoaderMsg>::where_is(self.loader.clone()) {
            Some(actor) => call_t!(actor, LoaderMsg::Stats, ASK_TIMEOUT_MS).ok(),
            None => None,
        };
        Summary {
            replay: self.settled.borrow().clone(),
            listener,
            loader,
            loading: self.loading(),
            dry_run: self.dry_run,
        }
    }

    /// Whether module loading is enabled (the module index could be read).
    pub fn loading(&self) -> bool {
        *self.loading.borrow() == Some(true)
    }
}

impl fmt::Display for Summary {
    /// One line per actor, each starting with `devmgr: <actor>:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.replay {
            Some(r) => writeln!(
                f,
                "devmgr: coldplug: {} devices, {} replayed, {} answered, {} gone, {} failed, {} unanswered, replay took {:?}",
                r.devices,
                r.written,
                r.answered,
                r.gone,
                r.failed.len(),
                r.unanswered.len(),
                r.elapsed
            )?,
            None => writeln!(f, "devmgr: coldplug: replay not ended yet")?,
        }
        match &self.listener {
            Some(l) => {
                let dropped: u64 = l.counts.dropped.iter().map(|(_, n)| n).sum();
                writeln!(
                    f,
                    "devmgr: listener: {} received, {} accepted, {} dropped, {} overruns, {} resyncs, receive buffer {} bytes",
                    l.counts.received,
                    l.counts.accepted,
                    dropped,
                    l.counts.overruns,
                    l.counts.resyncs,
                    l.receive_buffer
                )?;
                for (reason, n) in &l.counts.dropped {
                    writeln!(f, "devmgr: listener: dropped {n}: {reason}")?;
                }
                // Who fell behind: events dropped for one subscriber, and its resyncs.
                for sub in &l.subscribers {
                    writeln!(
                        f,
                        "devmgr: listener: subscriber {}: {} delivered, {} dropped, {} resyncs",
                        sub.name.as_deref().unwrap_or("(unnamed)"),
                        sub.delivered,
                        sub.dropped,
                        sub.overflows
                    )?;
                }
            }
            None => writeln!(f, "devmgr: listener: not running")?,
        }
        match (&self.loader, self.loading) {
            (_, false) => write!(
                f,
                "devmgr: loader: module loading waits for the module index (see the log)"
            ),
            (None, true) => write!(f, "devmgr: loader: not running"),
            (Some(s), true) => {
                let failed: u64 = s.loads.failed.values().sum();
                write!(
                    f,
                    "devmgr: loader{}: {} lookups, {} unresolved, {} plans, {} modules loaded ({:.3}s loading), {} already loaded, {} failed{}, {} skipped (no device last time), {} index reloads{}",
                    if self.dry_run { " (dry run)" } else { "" },
                    s.events,
                    s.unresolved,
                    s.plans,
                    s.loads.loaded,
                    s.loads.load_time.as_secs_f64(),
                    s.loads.already_loaded,
                    failed,
                    if s.loads.failed.is_empty() {
                        String::new()
                    } else {
                        format!(" {:?}", s.loads.failed)
                    },
                    s.skipped_no_device,
                    s.reloads,
                    install_counts(&s.loads),
                )
            }
        }
    }
}

/// The loader's counts of `install` lines and slow loads, for the summary; empty when all are 0.
fn install_counts(loads: &kmod_loader::load::LoadStats) -> String {
    let mut out = String::new();
    for (n, what) in [
        (loads.disabled, "disabled by install lines"),
        (loads.install_commands, "install commands run"),
        (loads.install_refused, "install commands refused"),
        (loads.slow, "slow loads"),
    ] {
        if n > 0 {
            out.push_str(&format!(", {n} {what}"));
        }
    }
    out
}
