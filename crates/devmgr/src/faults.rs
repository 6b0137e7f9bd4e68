//! Fault injection for stress tests (cargo feature `fault-injection`, off by default; never in
//! a production build): kills the subsystem's actors at random moments so that tests can show
//! the supervisor restarts them and the device manager still ends with every module loaded.
//!
//! `devmgr run` reads the plan from `DEVMGR_FAULTS`, e.g. `rounds=2,seed=7,gap_ms=1500`: in
//! each round it kills the listener, then the loader, then the coldplug actor, each after a
//! random pause of up to `gap_ms`; an actor that is being restarted is waited for (up to 30 s)
//! and then killed; the next step waits until the supervisor has brought up a new incarnation
//! of the killed actor. Every kill is logged (`fault injection: killed`, with the actor and the DN
//! of its supervised node).
//!
//! `stall_ms=N` first holds the listener's reader thread for N ms from the first event it
//! delivers (a subscriber that blocks, `listener::testing::stalling_subscription`), so the
//! kernel's queue for the socket fills up and overruns for real: with a small receive buffer
//! this makes the replay overrun the socket even where the reader would keep pace (it does,
//! even with an 8 KiB buffer and no pacing: scripts/vm-stress says so).
//!
//! `loader_capacity=N,loader_stall_ms=M` give the loader room for only N events in flight and
//! hold it for M ms after its first batch (as slow loads would), so that its subscription
//! overflows for real: the listener drops its events and resyncs it, and coldplug replays the
//! devices for it.

use std::time::Duration;

use listener::ListenerMsg;
use ractor::{ActorCell, ActorId, ActorRef, call};
use supervisor::{RandomSource, XorShift};

use crate::subsystem::Observer;

/// What to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    /// Rounds of three kills (listener, loader, coldplug).
    pub rounds: usize,
    /// Seed of the pauses.
    pub seed: u64,
    /// Longest pause before a kill.
    pub max_gap: Duration,
    /// Hold the listener's reader this long once it delivers its first event (zero: never).
    pub stall: Duration,
    /// Events the loader may have in flight (default: the subsystem's).
    pub loader_capacity: Option<usize>,
    /// Hold the loader this long after its first batch (zero: never).
    pub loader_stall: Duration,
}

impl FaultPlan {
    /// Parses `rounds=N,seed=N,gap_ms=N` (every key optional: 2 rounds, seed 1, 1,500 ms).
    pub fn parse(text: &str) -> Result<FaultPlan, String> {
        let mut plan = FaultPlan {
            rounds: 2,
            seed: 1,
            max_gap: Duration::from_millis(1500),
            stall: Duration::ZERO,
            loader_capacity: None,
            loader_stall: Duration::ZERO,
        };
        for part in text.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("DEVMGR_FAULTS: {part:?} is not key=value"))?;
            let value: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("DEVMGR_FAULTS: {key}={value:?} is not a number"))?;
            match key.trim() {
                "rounds" => plan.rounds = usize::try_from(value).unwrap_or(usize::MAX).min(100),
                "seed" => plan.seed = value.max(1),
                "gap_ms" => plan.max_gap = Duration::from_millis(value.clamp(1, 60_000)),
                "stall_ms" => plan.stall = Duration::from_millis(value.min(60_000)),
                "loader_capacity" => {
                    plan.loader_capacity =
                        Some(usize::try_from(value).unwrap_or(1).clamp(1, 1 << 20))
                }
                "loader_stall_ms" => plan.loader_stall = Duration::from_millis(value.min(60_000)),
                other => return Err(format!("DEVMGR_FAULTS: unknown key {other:?}")),
            }
        }
        Ok(plan)
    }
}

/// One kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    /// `listener`, `loader` or `coldplug`.
    pub actor: &'static str,
    /// The pause before it.
    pub after: Duration,
}

/// Runs the plan against the actors `observer` names; returns the kills done.
pub async fn inject(observer: &Observer, plan: FaultPlan) -> Vec<Kill> {
    if !plan.stall.is_zero() {
        stall_reader(&observer.listener, plan.stall).await;
    }
    let mut random = XorShift::with_seed(plan.seed);
    let gap_ms = plan.max_gap.as_millis();
    let mut kills = Vec::new();
    for _ in 0..plan.rounds {
        for (actor, name) in [
            ("listener", &observer.listener),
            ("loader", &observer.loader),
            ("coldplug", &observer.coldplug),
        ] {
            let after = Duration::from_secs_f64(random.next_f64() * gap_ms as f64 / 1000.0);
            tokio::time::sleep(after).await;
            let Some(cell) = wait_registered(name, None).await else {
                tracing::warn!(actor, "fault injection: not running for 30 s; kill skipped");
                continue;
            };
            let killed = cell.get_id();
            cell.kill();
            tracing::warn!(actor, dn = %format!("root.devmgr.{actor}"), after_ms = after.as_millis() as u64, "fault injection: killed");
            kills.push(Kill { actor, after });
            // The next kill (and, after the last, the wait for settling) starts once the
            // supervisor has brought a new incarnation up.
            if wait_registered(name, Some(killed)).await.is_none() {
                tracing::warn!(actor, "fault injection: no new incarnation within 30 s");
            }
        }
    }
    kills
}

/// Subscribes a subscriber that holds the listener's reader thread for `stall` from the first
/// event it delivers.
async fn stall_reader(listener: &str, stall: Duration) {
    let Some(cell) = wait_registered(listener, None).await else {
        tracing::warn!("fault injection: no listener to stall");
        return;
    };
    let listener: ActorRef<ListenerMsg> = cell.into();
    let (subscription, gate) = listener::testing::stalling_subscription(|_| true);
    if let Err(err) = call!(listener, ListenerMsg::Subscribe, subscription) {
        tracing::warn!(error = %err, "fault injection: cannot subscribe the stalling subscriber");
        return;
    }
    tokio::task::spawn_blocking(move || {
        if gate.wait_stalled() {
            tracing::warn!(
                stall_ms = stall.as_millis() as u64,
                "fault injection: reader thread held"
            );
            std::thread::sleep(stall);
        }
        gate.release();
    });
}

/// Waits (up to 30 s) until `name` is registered to an actor other than `not`.
async fn wait_registered(name: &str, not: Option<ActorId>) -> Option<ActorCell> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(cell) = ractor::registry::where_is(name)
            && Some(cell.get_id()) != not
        {
            return Some(cell);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_is_read_from_key_value_pairs() {
        assert_eq!(
            FaultPlan::parse("rounds=3,seed=9,gap_ms=200"),
            Ok(FaultPlan {
                rounds: 3,
                seed: 9,
                max_gap: Duration::from_millis(200),
                stall: Duration::ZERO,
                loader_capacity: None,
                loader_stall: Duration::ZERO,
            })
        );
        assert_eq!(
            FaultPlan::parse("rounds=0,loader_capacity=64,loader_stall_ms=2000")
                .map(|p| (p.loader_capacity, p.loader_stall)),
            Ok((Some(64), Duration::from_secs(2)))
        );
        assert_eq!(FaultPlan::parse("").map(|p| p.rounds), Ok(2));
        assert_eq!(
            FaultPlan::parse("rounds=0,stall_ms=300").map(|p| (p.rounds, p.stall)),
            Ok((0, Duration::from_millis(300)))
        );
        assert!(FaultPlan::parse("rounds=x").is_err());
        assert!(FaultPlan::parse("kill=all").is_err());
    }
}
