//! One run at a time per alias: the loader actor folds a request for an alias whose plans run
//! now into that run, so a thousand devices with the same `MODALIAS` added at once make one or
//! two runs, not a thousand tasks waiting on the same module. What a replayed device and a
//! device that really appeared meanwhile get: `docs/kmod-loader.md#one-run-at-a-time-per-alias`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The aliases whose plans run, each with the next run reserved for it, if a device that really
/// appeared asked meanwhile. `T` is what a reserved run holds from the moment it is asked for
/// (the loader actor's entry in its plan book, so that a settle that began after the request
/// waits for that run, and one that began before the request does not wait for later ones).
#[derive(Debug)]
pub(crate) struct Flights<T> {
    runs: Mutex<HashMap<String, Run<T>>>,
}

/// One alias's run under way.
#[derive(Debug)]
struct Run<T> {
    /// Every module the alias's plans are for (the lookup of its run), for a reserved run.
    targets: Arc<[String]>,
    /// The next run, once reserved.
    next: Option<T>,
}

impl<T> Default for Flights<T> {
    fn default() -> Self {
        Flights {
            runs: Mutex::default(),
        }
    }
}

/// What [`Flights::ask`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// Nothing runs for the alias: resolve it and start a run ([`Flights::start`]).
    Start,
    /// A run is under way and answers for this request too (one more follows it for a device
    /// that really appeared).
    Folded,
}

impl<T> Flights<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Run<T>>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request for `alias` (`synthetic`: a replayed device). When a run is under way and the
    /// device really appeared, the next run is reserved with `reserve`, given the modules of the
    /// alias (once, however many such requests come before it starts).
    pub(crate) fn ask(
        &self,
        alias: &str,
        synthetic: bool,
        reserve: impl FnOnce(&[String]) -> T,
    ) -> Asked {
        match self.lock().get_mut(alias) {
            Some(run) => {
                if !synthetic && run.next.is_none() {
                    run.next = Some(reserve(&run.targets));
                }
                Asked::Folded
            }
            None => Asked::Start,
        }
    }

    /// A run of `alias` starts; the alias counts as running until [`Flight::again`] says no
    /// more runs are due, or the flight is dropped (its task ended early or panicked; a run
    /// reserved meanwhile is dropped with it).
    /// `targets`: every module the alias's plans are for.
    pub(crate) fn start(self: &Arc<Self>, alias: String, targets: Arc<[String]>) -> Flight<T> {
        self.lock().insert(
            alias.clone(),
            Run {
                targets,
                next: None,
            },
        );
        Flight {
            flights: Arc::clone(self),
            alias,
            landed: false,
        }
    }
}

/// The runs of one alias, from its first to its last.
#[derive(Debug)]
pub(crate) struct Flight<T> {
    flights: Arc<Flights<T>>,
    alias: String,
    landed: bool,
}

impl<T> Flight<T> {
    /// Once a run ended: the run reserved meanwhile (it is then under way), or `None`, and the
    /// alias no longer counts as running.
    pub(crate) fn again(&mut self) -> Option<T> {
        let mut runs = self.flights.lock();
        let next = runs.get_mut(&self.alias).and_then(|run| run.next.take());
        if next.is_none() {
            runs.remove(&self.alias);
            self.landed = true;
        }
        next
    }
}

impl<T> Drop for Flight<T> {
    fn drop(&mut self) {
        // Only while it still counts as running: after `again` said none, a new flight of the
        // same alias may have started and owns the entry.
        if !self.landed {
            self.flights.lock().remove(&self.alias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Arc<[String]> {
        Arc::from(["sd_mod".to_owned()])
    }

    #[test]
    fn replays_fold_into_the_run_under_way_and_new_devices_into_one_reserved_run() {
        let flights = Arc::new(Flights::default());
        let mut reserved = 0;
        assert_eq!(flights.ask("scsi:t-0x00", false, |_| 0), Asked::Start);
        let mut flight = flights.start("scsi:t-0x00".into(), targets());
        for _ in 0..1000 {
            assert_eq!(flights.ask("scsi:t-0x00", true, |_| 0), Asked::Folded);
        }
        assert_eq!(
            flights.ask("pci:v1AF4", false, |_| 0),
            Asked::Start,
            "other aliases run"
        );
        assert_eq!(flight.again(), None, "replays need no run of their own");
        assert_eq!(
            flights.ask("scsi:t-0x00", true, |_| 0),
            Asked::Start,
            "landed"
        );

        let mut flight = flights.start("scsi:t-0x00".into(), targets());
        for (n, synthetic) in [true, false, true, false].into_iter().enumerate() {
            let asked = flights.ask("scsi:t-0x00", synthetic, |modules| {
                assert_eq!(modules, ["sd_mod"]);
                reserved += 1;
                n
            });
            assert_eq!(asked, Asked::Folded);
        }
        assert_eq!(reserved, 1, "one run reserved for the new devices");
        assert_eq!(
            flight.again(),
            Some(1),
            "the run reserved by the first new device"
        );
        assert_eq!(flight.again(), None, "nothing asked during it");
    }

    #[test]
    fn a_flight_dropped_before_it_landed_frees_its_alias_but_not_a_later_ones() {
        let flights = Arc::new(Flights::default());
        let early = flights.start("a".into(), targets());
        flights.ask("a", false, |_| Arc::new(()));
        drop(early); // its task panicked: its reserved run goes too
        assert_eq!(flights.ask("a", false, |_| Arc::new(())), Asked::Start);
        let mut landed = flights.start("a".into(), targets());
        assert!(landed.again().is_none());
        let current = flights.start("a".into(), targets());
        drop(landed);
        assert_eq!(
            flights.ask("a", true, |_| Arc::new(())),
            Asked::Folded,
            "the current flight keeps its alias"
        );
        drop(current);
        assert_eq!(flights.ask("a", true, |_| Arc::new(())), Asked::Start);
    }
}
