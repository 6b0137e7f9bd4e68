//! One run at a time per alias: the loader actor folds a request for an alias whose plans run
//! now into one more run of them once they end, so a thousand devices with the same `MODALIAS`
//! added at once (the logical units of a SCSI target: `scsi:t-0x00`) make two runs, not a
//! thousand tasks waiting on the same module. The extra run keeps udev's outcome: a device added
//! while the module loaded is bound by it anyway (the driver probes every device present when it
//! registers, and every device added after), and if the load failed the device gets its own try.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The aliases whose plans run, each with the run asked for meanwhile, if any.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    /// Alias → `Some(synthetic)` once a request came in while it ran: whether every such
    /// request was a replay (only then does the `ENODEV` memory apply to the next run).
    runs: Mutex<HashMap<String, Option<bool>>>,
}

/// What [`Flights::ask`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Asked {
    /// Nothing runs for the alias: resolve it and start a run ([`Flights::start`]).
    Start,
    /// A run is under way: one more follows it.
    Folded,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Option<bool>>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request for `alias` (`synthetic`: a replayed device).
    pub(crate) fn ask(&self, alias: &str, synthetic: bool) -> Asked {
        match self.lock().get_mut(alias) {
            Some(next) => {
                *next = Some(next.map_or(synthetic, |all| all && synthetic));
                Asked::Folded
            }
            None => Asked::Start,
        }
    }

    /// A run of `alias` starts; the alias counts as running until [`Flight::next`] says no
    /// more runs are asked for, or the flight is dropped (its task ended early or panicked).
    pub(crate) fn start(self: &Arc<Self>, alias: String) -> Flight {
        self.lock().insert(alias.clone(), None);
        Flight {
            flights: Arc::clone(self),
            alias,
            landed: false,
        }
    }
}

/// The runs of one alias, from its first to its last.
#[derive(Debug)]
pub(crate) struct Flight {
    flights: Arc<Flights>,
    alias: String,
    landed: bool,
}

impl Flight {
    /// Once a run ended: `Some(synthetic)` if another was asked for meanwhile (it is then
    /// under way), else `None`, and the alias no longer counts as running.
    pub(crate) fn next(&mut self) -> Option<bool> {
        let mut runs = self.flights.lock();
        let next = runs.get_mut(&self.alias).and_then(Option::take);
        if next.is_none() {
            runs.remove(&self.alias);
            self.landed = true;
        }
        next
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        // Only while it still counts as running: after `next` said none, a new flight of the
        // same alias may have started and owns the entry.
        if !self.landed {
            self.flights.lock().remove(&self.alias);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_while_an_alias_runs_fold_into_one_more_run() {
        let flights = Arc::new(Flights::default());
        assert_eq!(flights.ask("scsi:t-0x00", true), Asked::Start);
        let mut flight = flights.start("scsi:t-0x00".into());
        for _ in 0..1000 {
            assert_eq!(flights.ask("scsi:t-0x00", true), Asked::Folded);
        }
        assert_eq!(
            flights.ask("pci:v1AF4", false),
            Asked::Start,
            "other aliases run"
        );
        assert_eq!(flight.next(), Some(true), "one more run, of replays only");
        assert_eq!(flight.next(), None, "nothing asked during it");
        assert_eq!(flights.ask("scsi:t-0x00", true), Asked::Start, "landed");
    }

    #[test]
    fn one_new_device_among_replays_makes_the_next_run_a_new_devices() {
        let flights = Arc::new(Flights::default());
        let mut flight = flights.start("a".into());
        flights.ask("a", true);
        flights.ask("a", false);
        flights.ask("a", true);
        assert_eq!(flight.next(), Some(false));
    }

    #[test]
    fn a_flight_dropped_before_it_landed_frees_its_alias_but_not_a_later_ones() {
        let flights = Arc::new(Flights::default());
        let early = flights.start("a".into());
        drop(early); // its task panicked
        assert_eq!(flights.ask("a", false), Asked::Start);
        let mut landed = flights.start("a".into());
        assert_eq!(landed.next(), None);
        let current = flights.start("a".into());
        drop(landed);
        assert_eq!(
            flights.ask("a", false),
            Asked::Folded,
            "the current flight keeps its alias"
        );
        drop(current);
        assert_eq!(flights.ask("a", false), Asked::Start);
    }
}
