//! Per-node exponential backoff (see `docs/supervisor.md#restart-backoff`): the algorithm of
//! `cenkalti/backoff/v4` `ExponentialBackOff` with `MaxElapsedTime = 0` (never give up).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Backoff parameters. The defaults are Go's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffParams {
    /// First interval (`cur` after a reset). Go: 500 ms.
    pub initial_interval: Duration,
    /// Growth factor of `cur` per consecutive Dead restart. Go: 1.5.
    pub multiplier: f64,
    /// Jitter: the delay is uniform in `cur·(1±factor)`. Go: 0.5.
    pub randomization_factor: f64,
    /// Cap on `cur` (not on the randomised delay). Go: 60 s.
    pub max_interval: Duration,
}

/// The smallest accepted [`BackoffParams::initial_interval`]. Anything shorter would let a
/// failing runnable restart in a tight loop (with 1 ns, `trunc(1 ns · 1.5)` never grows).
pub const MIN_INITIAL_INTERVAL: Duration = Duration::from_millis(1);

/// Backoff parameters (or a restart-policy override) that were rejected because they would make
/// restarts spin or are meaningless.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidPolicy {
    /// A backoff parameter is out of range.
    #[error("invalid backoff parameter `{field}`: {message}")]
    Param {
        /// The field at fault (`initial_interval`, `multiplier`, `randomization_factor` or
        /// `max_interval`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// An override or attach point of a [`RestartPolicy`] names something that is not a DN.
    ///
    /// [`RestartPolicy`]: crate::RestartPolicy
    #[error("{0:?} is not a valid DN (expected `root` or `root.<name>...`)")]
    Dn(String),
    /// An override or attach point of a [`SubtreePolicy`] names something that is not a DN
    /// relative to the policy's attach point.
    ///
    /// [`SubtreePolicy`]: crate::SubtreePolicy
    #[error(
        "{0:?} is not a valid relative DN (expected `<name>` or `<name>.<name>...`, relative to \
         the node the policy is attached at)"
    )]
    RelativeDn(String),
}

impl BackoffParams {
    /// Checks the parameters: `initial_interval` ≥ [`MIN_INITIAL_INTERVAL`], a finite
    /// `multiplier` ≥ 1, `randomization_factor` within `[0, 1]` and
    /// `max_interval` ≥ `initial_interval`.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        let bad = |field, message| Err(InvalidPolicy::Param { field, message });
        if self.initial_interval < MIN_INITIAL_INTERVAL {
            return bad(
                "initial_interval",
                format!(
                    "initial_interval must be at least {MIN_INITIAL_INTERVAL:?}, got {:?}",
                    self.initial_interval
                ),
            );
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return bad(
                "multiplier",
                format!(
                    "multiplier must be a finite number >= 1, got {}",
                    self.multiplier
                ),
            );
        }
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            return bad(
                "randomization_factor",
                format!(
                    "randomization_factor must be within [0, 1], got {}",
                    self.randomization_factor
                ),
            );
        }
        if self.max_interval < self.initial_interval {
            return bad(
                "max_interval",
                format!(
                    "initial_interval ({:?}) must not exceed max_interval ({:?})",
                    self.initial_interval, self.max_interval
                ),
            );
        }
        Ok(())
    }
}

impl Default for BackoffParams {
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_millis(500),
            multiplier: 1.5,
            randomization_factor: 0.5,
            max_interval: Duration::from_secs(60),
        }
    }
}

/// A source of uniform random numbers in `[0, 1)`, injectable so tests control the jitter.
pub trait RandomSource: Send + Sync + std::fmt::Debug {
    /// The next number, uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64;
}

/// A small xorshift64* generator, seeded from the clock and a process-wide counter.
#[derive(Debug, Clone)]
pub struct XorShift {
    state: u64,
}

impl XorShift {
    /// A generator with an explicit seed (0 is replaced by a fixed non-zero value).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// A generator seeded from the current time and a counter.
    pub fn from_time() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::with_seed(nanos ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl RandomSource for XorShift {
    fn next_f64(&mut self) -> f64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // 53 random bits -> [0, 1).
        (v >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The backoff state of one node (one object per node, kept across the node's restarts).
#[derive(Debug)]
pub struct Backoff {
    params: BackoffParams,
    current_nanos: u64,
    rng: Box<dyn RandomSource>,
}

impl Backoff {
    /// A backoff with the given parameters and a time-seeded generator. Fails when the
    /// parameters do not pass [`BackoffParams::validate`].
    pub fn new(params: BackoffParams) -> Result<Self, InvalidPolicy> {
        Self::with_rng(params, Box::new(XorShift::from_time()))
    }

    /// A backoff with an injected random source. Fails when the parameters do not pass
    /// [`BackoffParams::validate`].
    pub fn with_rng(
        params: BackoffParams,
        rng: Box<dyn RandomSource>,
    ) -> Result<Self, InvalidPolicy> {
        params.validate()?;
        Ok(Self::from_valid(params, rng))
    }

    /// A backoff from parameters that were already validated (by a [`RestartPolicy`]).
    ///
    /// [`RestartPolicy`]: crate::RestartPolicy
    pub(crate) fn from_valid(params: BackoffParams, rng: Box<dyn RandomSource>) -> Self {
        Self {
            params,
            current_nanos: nanos(params.initial_interval),
            rng,
        }
    }

    /// The parameters.
    pub fn params(&self) -> BackoffParams {
        self.params
    }

    /// The current interval `cur` (before jitter).
    pub fn current_interval(&self) -> Duration {
        Duration::from_nanos(self.current_nanos)
    }

    /// Resets `cur` to the initial interval (on SignalHealthy and SignalDone).
    pub fn reset(&mut self) {
        self.current_nanos = nanos(self.params.initial_interval);
    }

    /// The next delay, then advances `cur`. Called only for Dead restarts.
    pub fn next_backoff(&mut self) -> Duration {
        let r = self.rng.next_f64();
        let delay = randomized(self.params.randomization_factor, r, self.current_nanos);
        self.current_nanos = advance(self.current_nanos, &self.params);
        Duration::from_nanos(delay)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// `cur·(1−f) + r·(cur·(1+f) − cur·(1−f) + 1ns)`, truncated to whole nanoseconds.
pub(crate) fn randomized(factor: f64, r: f64, cur_nanos: u64) -> u64 {
    if factor == 0.0 {
        return cur_nanos;
    }
    let cur = cur_nanos as f64;
    let delta = factor * cur;
    let lo = cur - delta;
    let hi = cur + delta;
    let v = lo + r * (hi - lo + 1.0);
    if v <= 0.0 { 0 } else { v as u64 }
}

/// `cur ≥ max/multiplier` → `max`, else `trunc(cur·multiplier)`.
pub(crate) fn advance(cur_nanos: u64, p: &BackoffParams) -> u64 {
    let max = nanos(p.max_interval);
    if cur_nanos as f64 >= max as f64 / p.multiplier {
        max
    } else {
        (cur_nanos as f64 * p.multiplier) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random source replaying a fixed list.
    #[derive(Debug)]
    struct Replay(Vec<f64>, usize);
    impl RandomSource for Replay {
        fn next_f64(&mut self) -> f64 {
            let v = self.0[self.1 % self.0.len()];
            self.1 += 1;
            v
        }
    }

    /// The table of delay ranges: (cur in seconds, low, high) for the n-th consecutive Dead
    /// restart.
    const TABLE: [(f64, f64, f64); 13] = [
        (0.5, 0.25, 0.75),
        (0.75, 0.375, 1.125),
        (1.125, 0.5625, 1.6875),
        (1.6875, 0.84375, 2.53125),
        (2.53125, 1.265625, 3.796875),
        (3.796875, 1.8984375, 5.6953125),
        (5.6953125, 2.84765625, 8.54296875),
        (8.54296875, 4.271484375, 12.814453125),
        (12.814453125, 6.4072265625, 19.2216796875),
        (19.2216796875, 9.61083984375, 28.83251953125),
        (28.83251953125, 14.416259765625, 43.248779296875),
        (43.248779296875, 21.6243896484375, 64.8731689453125),
        (60.0, 30.0, 90.0),
    ];

    #[test]
    fn defaults_are_the_go_values() {
        let p = BackoffParams::default();
        assert_eq!(p.initial_interval, Duration::from_millis(500));
        assert_eq!(p.multiplier, 1.5);
        assert_eq!(p.randomization_factor, 0.5);
        assert_eq!(p.max_interval, Duration::from_secs(60));
    }

    #[test]
    fn without_randomization_the_delay_is_cur_and_cur_is_capped() {
        let p = BackoffParams {
            randomization_factor: 0.0,
            ..BackoffParams::default()
        };
        let mut b = Backoff::new(p).unwrap();
        let got: Vec<u128> = (0..14).map(|_| b.next_backoff().as_millis()).collect();
        assert_eq!(
            got,
            [
                500, 750, 1125, 1687, 2531, 3796, 5695, 8542, 12814, 19221, 28832, 43248, 60000,
                60000
            ]
        );
    }

    #[test]
    fn reset_returns_to_the_initial_interval() {
        let mut b =
            Backoff::with_rng(BackoffParams::default(), Box::new(Replay(vec![0.0], 0))).unwrap();
        b.next_backoff();
        b.next_backoff();
        assert_eq!(b.current_interval(), Duration::from_nanos(1_125_000_000));
        b.reset();
        assert_eq!(b.next_backoff(), Duration::from_millis(250));
    }

    #[test]
    fn the_randomised_value_is_not_capped() {
        let mut b = Backoff::with_rng(
            BackoffParams::default(),
            Box::new(Replay(vec![0.999_999_999], 0)),
        )
        .unwrap();
        let last = (0..20).map(|_| b.next_backoff()).last().unwrap();
        assert!(last > Duration::from_secs(89), "{last:?}");
    }

    /// Go's formula exactly: `cur·(1−f) + r·(cur·(1+f) − cur·(1−f) + 1ns)`, truncated, for
    /// fixed `r`.
    #[test]
    fn delays_for_fixed_random_values_are_exact() {
        let seq = |rs: Vec<f64>| {
            let mut b =
                Backoff::with_rng(BackoffParams::default(), Box::new(Replay(rs, 0))).unwrap();
            (0..3)
                .map(|_| b.next_backoff().as_nanos())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seq(vec![0.0]),
            [250_000_000, 375_000_000, 562_500_000],
            "r = 0: the low ends"
        );
        assert_eq!(
            seq(vec![0.5]),
            [500_000_000, 750_000_000, 1_125_000_000],
            "r = 0.5: cur (the +1ns adds half a ns, truncated away)"
        );
        // Without the +1ns term these would be 749_999_999, 1_124_999_999 and 1_687_499_998.
        assert_eq!(
            seq(vec![0.999_999_999]),
            [750_000_000, 1_125_000_000, 1_687_499_999],
            "r -> 1: (nearly) the high ends, thanks to the +1ns"
        );
        assert_eq!(
            seq(vec![0.25, 0.75, 0.1]),
            [375_000_000, 937_500_000, 675_000_000]
        );
        // On tiny intervals the +1ns term is visible directly.
        assert_eq!(randomized(0.5, 0.999, 2), 3);
        assert_eq!(randomized(0.5, 0.0, 2), 1);
        assert_eq!(randomized(0.0, 0.999, 2), 2);
    }

    #[test]
    fn parameters_that_would_spin_are_rejected() {
        let d = BackoffParams::default();
        let field = |p: BackoffParams| match Backoff::new(p) {
            Err(InvalidPolicy::Param { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        };
        for initial in [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_micros(999),
        ] {
            let p = BackoffParams {
                initial_interval: initial,
                ..d
            };
            assert_eq!(field(p), "initial_interval", "{initial:?}");
        }
        for multiplier in [f64::NAN, f64::INFINITY, 0.5, -1.0] {
            assert_eq!(field(BackoffParams { multiplier, ..d }), "multiplier");
        }
        for randomization_factor in [f64::NAN, -0.1, 1.5] {
            let p = BackoffParams {
                randomization_factor,
                ..d
            };
            assert_eq!(field(p), "randomization_factor");
        }
        let p = BackoffParams {
            max_interval: Duration::from_millis(100),
            ..d
        };
        assert_eq!(field(p), "max_interval");
        // The boundaries are accepted.
        let edge = BackoffParams {
            initial_interval: MIN_INITIAL_INTERVAL,
            multiplier: 1.0,
            randomization_factor: 1.0,
            max_interval: MIN_INITIAL_INTERVAL,
        };
        assert!(Backoff::new(edge).is_ok());
        // The floor makes the interval grow: 1 ms, 1.5 ms, 2.25 ms.
        let mut b = Backoff::with_rng(
            BackoffParams {
                initial_interval: MIN_INITIAL_INTERVAL,
                randomization_factor: 0.0,
                ..d
            },
            Box::new(Replay(vec![0.0], 0)),
        )
        .unwrap();
        let got: Vec<u128> = (0..3).map(|_| b.next_backoff().as_micros()).collect();
        assert_eq!(got, [1000, 1500, 2250]);
    }

    #[test]
    fn xorshift_stays_in_the_unit_interval() {
        let mut r = XorShift::with_seed(42);
        for _ in 0..10_000 {
            let v = r.next_f64();
            assert!((0.0..1.0).contains(&v));
        }
    }

    proptest! {
        /// For any jitter sequence the n-th delay lies in the table's range and `cur`
        /// follows the table.
        #[test]
        fn backoff_sequence_follows_the_spec_table(rs in proptest::collection::vec(0.0f64..1.0, 16)) {
            let mut b = Backoff::with_rng(BackoffParams::default(), Box::new(Replay(rs, 0))).unwrap();
            for n in 0..16 {
                let (cur, lo, hi) = TABLE[n.min(TABLE.len() - 1)];
                let cur_now = b.current_interval().as_secs_f64();
                prop_assert!((cur_now - cur).abs() < 1e-6, "n={} cur={} want {}", n, cur_now, cur);
                let d = b.next_backoff().as_secs_f64();
                prop_assert!(d >= lo - 1e-6 && d <= hi + 1e-6, "n={} delay={} not in [{}, {}]", n, d, lo, hi);
            }
        }
    }
}
