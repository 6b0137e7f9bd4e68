//! One run at a time per alias: the loader actor folds a request for an alias whose plans run
//! now into that run, so a thousand devices with the same `MODALIAS` added at once (the logical
//! units of a SCSI target: `scsi:t-0x00`) make one or two runs, not a thousand tasks waiting on
//! the same module.
//!
//! A replayed device (coldplug) existed before the run started, so the run's outcome is its
//! outcome: its driver probed it when it registered, or it failed for it too — as the single
//! flight per module gave a second plan the first one's outcome. A device that really appeared
//! meanwhile gets one more run once the current one ends: if the load succeeded, it finds the
//! module live and does nothing (the driver bound the device as it was added); if it failed, the
//! new device gets its own try, as it would under udev.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The aliases whose plans run, each with the run asked for meanwhile, if any.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    /// Alias → whether a device that really appeared (not a replay) asked for it while it ran.
    runs: Mutex<HashMap<String, bool>>,
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

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, bool>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request for `alias` (`synthetic`: a replayed device).
    pub(crate) fn ask(&self, alias: &str, synthetic: bool) -> Asked {
        match self.lock().get_mut(alias) {
            Some(again) => {
                *again |= !synthetic;
                Asked::Folded
            }
            None => Asked::Start,
        }
    }

    /// A run of `alias` starts; the alias counts as running until [`Flight::again`] says no
    /// more runs are due, or the flight is dropped (its task ended early or panicked).
    pub(crate) fn start(self: &Arc<Self>, alias: String) -> Flight {
        self.lock().insert(alias.clone(), false);
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
    /// Once a run ended: whether another is due (a device that really appeared asked
    /// meanwhile; it is then under way). If not, the alias no longer counts as running.
    pub(crate) fn again(&mut self) -> bool {
        let mut runs = self.flights.lock();
        let again = runs.get_mut(&self.alias).is_some_and(std::mem::take);
        if !again {
            runs.remove(&self.alias);
            self.landed = true;
        }
        again
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        // Only while it still counts as running: after `again` said no, a new flight of the
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
    fn replays_fold_into_the_run_under_way_and_a_new_device_into_one_more() {
        let flights = Arc::new(Flights::default());
        assert_eq!(flights.ask("scsi:t-0x00", false), Asked::Start);
        let mut flight = flights.start("scsi:t-0x00".into());
        for _ in 0..1000 {
            assert_eq!(flights.ask("scsi:t-0x00", true), Asked::Folded);
        }
        assert_eq!(
            flights.ask("pci:v1AF4", false),
            Asked::Start,
            "other aliases run"
        );
        assert!(!flight.again(), "replays need no run of their own");
        assert_eq!(flights.ask("scsi:t-0x00", true), Asked::Start, "landed");

        let mut flight = flights.start("scsi:t-0x00".into());
        for synthetic in [true, false, true, false] {
            assert_eq!(flights.ask("scsi:t-0x00", synthetic), Asked::Folded);
        }
        assert!(flight.again(), "new devices: one more run");
        assert!(!flight.again(), "nothing asked during it");
    }

    #[test]
    fn a_flight_dropped_before_it_landed_frees_its_alias_but_not_a_later_ones() {
        let flights = Arc::new(Flights::default());
        let early = flights.start("a".into());
        drop(early); // its task panicked
        assert_eq!(flights.ask("a", false), Asked::Start);
        let mut landed = flights.start("a".into());
        assert!(!landed.again());
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
