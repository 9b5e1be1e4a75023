//! `Backoff`: exponential backoff computed in whole nanoseconds, `retry`'s default policy.

use std::fmt;
use std::time::Duration;

/// Exponential backoff, computed in whole nanoseconds: the default policy of
/// [`retry`](crate::retry), and a [backon](crate::backon) policy like any other (it is an
/// iterator of delays, so it goes wherever backon takes a `BackoffBuilder`).
///
/// The `n`-th delay (from zero) is `min_delay × factorⁿ`, capped at `max_delay`, plus,
/// with jitter, a random share of itself (up to all of it, so at most twice the delay).
/// The delays never end: [`retry`](crate::retry)'s `max_attempts` and `max_elapsed` (or
/// `Iterator::take`) decide when to stop.
///
/// The defaults, `retry`'s: 100 ms, doubling up to 10 s, with jitter.
///
/// # Why not backon's `ExponentialBuilder`
///
/// backon computes its delays in `f32` seconds, so 100 ms doubled is 200.000003 ms, and
/// three delays "of 100, 200 and 400 ms" add up to 700.000009 ms on a virtual clock,
/// where tests compare instants exactly. Here every delay is a whole number of
/// nanoseconds, multiplied exactly: an integer factor gives exactly 100, 200 and 400 ms,
/// and any other factor is applied as the exact value of its `f64` (1.5 is 3/2), the
/// product rounded down to the nanosecond. Jitter is drawn in nanoseconds too, from a
/// seed if you give one ([`with_jitter_seed`](Backoff::with_jitter_seed)), so a seeded
/// policy gives the same delays on every run and every platform.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use hatchery::Backoff;
///
/// let ms = Duration::from_millis;
/// let delays: Vec<_> = Backoff::new().without_jitter().take(9).collect();
/// assert_eq!(delays[..3], [ms(100), ms(200), ms(400)]);
/// assert_eq!(delays[3..].iter().max(), Some(&ms(10_000))); // capped at 10 s
///
/// let slow: Vec<_> =
///     Backoff::new().with_min_delay(ms(10)).with_factor(1.5).without_jitter().take(3).collect();
/// assert_eq!(slow, [ms(10), ms(15), Duration::from_micros(22_500)]);
/// ```
///
/// Exact timings on a virtual clock:
///
/// ```
/// use std::time::Duration;
/// use hatchery::{retry, testing::{elapsed, virtual_time}, Backoff};
///
/// hatchery_smol::run(virtual_time(async {
///     let r = retry(|| async { Err::<(), _>("busy") })
///         .backoff(Backoff::new().without_jitter())
///         .max_attempts(4)
///         .await;
///     assert_eq!(r, Err("busy"));
///     assert_eq!(elapsed(), Duration::from_millis(100 + 200 + 400)); // to the nanosecond
/// }));
/// ```
#[derive(Clone)]
pub struct Backoff {
    min_delay: Duration,
    max_delay: Option<Duration>,
    factor: Factor,
    jitter: Jitter,
    /// The base delay (before jitter) of the next call to `next`; `None` before the first.
    current: Option<Duration>,
}

/// The jitter setting, and its generator once the first delay is drawn.
#[derive(Clone)]
enum Jitter {
    Off,
    /// Seeded from the OS when the first delay is drawn.
    Random(Option<fastrand::Rng>),
    Seeded(fastrand::Rng),
}

/// A factor `mantissa × 2^exp`, the exact value of the `f64` it was given.
#[derive(Clone, Copy, Debug)]
struct Factor {
    f: f64,
    mantissa: u64,
    exp: i32,
}

impl Factor {
    /// # Panics
    ///
    /// If `f` is not finite or is below 1 (backoff that shrinks, or NaN).
    #[track_caller]
    fn new(f: f64) -> Factor {
        assert!(
            f.is_finite() && f >= 1.0,
            "hatchery: a backoff factor must be a finite number of at least 1, not {f}"
        );
        // f = 1.m × 2^e for a normal f64 (every finite f ≥ 1 is one): the 53-bit integer
        // mantissa (hidden bit included) times 2^(e - 52).
        let bits = f.to_bits();
        let biased = ((bits >> 52) & 0x7ff) as i32;
        let mantissa = (bits & ((1 << 52) - 1)) | (1 << 52);
        Factor {
            f,
            mantissa,
            exp: biased - 1023 - 52,
        }
    }

    /// `d × factor`, rounded down to the nanosecond; `None` past `Duration::MAX`.
    fn apply(self, d: Duration) -> Option<Duration> {
        let nanos = d.as_nanos().checked_mul(u128::from(self.mantissa))?;
        let nanos = match self.exp {
            e if e >= 0 => nanos.checked_mul(1u128.checked_shl(e.unsigned_abs())?)?,
            e => nanos.checked_shr(e.unsigned_abs()).unwrap_or(0),
        };
        from_nanos(nanos)
    }
}

/// The duration of `nanos` nanoseconds; `None` past `Duration::MAX`.
fn from_nanos(nanos: u128) -> Option<Duration> {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    // The remainder is below a second: it fits.
    Some(Duration::new(secs, (nanos % NANOS_PER_SEC) as u32))
}

impl Backoff {
    /// The defaults of [`retry`](crate::retry): 100 ms, doubling up to 10 s, with jitter
    /// (seeded from the OS).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// let first = Backoff::new().next().unwrap();
    /// // 100 ms plus up to 100% jitter.
    /// assert!(first >= Duration::from_millis(100) && first <= Duration::from_millis(200));
    /// ```
    pub fn new() -> Backoff {
        Backoff {
            min_delay: Duration::from_millis(100),
            max_delay: Some(Duration::from_secs(10)),
            factor: Factor::new(2.0),
            jitter: Jitter::Random(None),
            current: None,
        }
    }

    /// The first delay (before jitter), and the base the others grow from. 100 ms by
    /// default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// let mut b = Backoff::new().with_min_delay(Duration::from_secs(1)).without_jitter();
    /// assert_eq!(b.next(), Some(Duration::from_secs(1)));
    /// assert_eq!(b.next(), Some(Duration::from_secs(2)));
    /// ```
    pub fn with_min_delay(mut self, delay: Duration) -> Backoff {
        self.min_delay = delay;
        self.current = None;
        self
    }

    /// The longest delay (before jitter): delays grow up to it, then stay there. 10 s by
    /// default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let b = Backoff::new().with_max_delay(ms(300)).without_jitter();
    /// assert_eq!(b.take(4).collect::<Vec<_>>(), [ms(100), ms(200), ms(300), ms(300)]);
    /// ```
    pub fn with_max_delay(mut self, delay: Duration) -> Backoff {
        self.max_delay = Some(delay);
        self.current = None;
        self
    }

    /// Lets the delays grow without a cap, up to `Duration::MAX` (a wait that never
    /// ends): bound the retry another way ([`max_attempts`](crate::futures::Retry::max_attempts),
    /// [`max_elapsed`](crate::futures::Retry::max_elapsed), a deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// let last = Backoff::new().without_max_delay().without_jitter().nth(20).unwrap();
    /// assert_eq!(last, Duration::from_millis(100) * (1 << 20)); // about 29 hours
    /// ```
    pub fn without_max_delay(mut self) -> Backoff {
        self.max_delay = None;
        self.current = None;
        self
    }

    /// How much each delay is longer than the one before: 2 by default. The delays are
    /// whole nanoseconds, multiplied by the exact value of `factor` and rounded down, so
    /// an integer factor gives exact delays.
    ///
    /// # Panics
    ///
    /// If `factor` is below 1 or not finite (NaN, infinity): such a backoff would shrink,
    /// or have no delays to give.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// let ms = Duration::from_millis;
    /// let b = Backoff::new().with_factor(3.0).without_jitter();
    /// assert_eq!(b.take(3).collect::<Vec<_>>(), [ms(100), ms(300), ms(900)]);
    /// ```
    #[track_caller]
    pub fn with_factor(mut self, factor: f64) -> Backoff {
        self.factor = Factor::new(factor);
        self.current = None;
        self
    }

    /// Adds to each delay a random share of itself, from none to all of it (so at most
    /// twice the delay), so that clients that failed together do not retry together. On
    /// by default, seeded from the OS.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// let d = Backoff::new().without_jitter().with_jitter().next().unwrap();
    /// assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(200));
    /// ```
    pub fn with_jitter(mut self) -> Backoff {
        if let Jitter::Off = self.jitter {
            self.jitter = Jitter::Random(None);
        }
        self
    }

    /// Jitter drawn from a generator seeded with `seed`: the same delays on every run
    /// (for tests on a virtual clock, say). Turns jitter on.
    ///
    /// # Examples
    ///
    /// ```
    /// use hatchery::Backoff;
    ///
    /// let a: Vec<_> = Backoff::new().with_jitter_seed(7).take(5).collect();
    /// let b: Vec<_> = Backoff::new().with_jitter_seed(7).take(5).collect();
    /// assert_eq!(a, b);
    /// ```
    pub fn with_jitter_seed(mut self, seed: u64) -> Backoff {
        self.jitter = Jitter::Seeded(fastrand::Rng::with_seed(seed));
        self
    }

    /// No jitter: every delay exactly as computed.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use hatchery::Backoff;
    ///
    /// assert_eq!(Backoff::new().without_jitter().next(), Some(Duration::from_millis(100)));
    /// ```
    pub fn without_jitter(mut self) -> Backoff {
        self.jitter = Jitter::Off;
        self
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let cap = |d: Duration| self.max_delay.map_or(d, |max| d.min(max));
        let base = match self.current {
            None => cap(self.min_delay),
            // Past `Duration::MAX`: the cap, or the longest wait there is.
            Some(cur) => cap(self.factor.apply(cur).unwrap_or(Duration::MAX)),
        };
        self.current = Some(base);
        let rng = match &mut self.jitter {
            Jitter::Off => return Some(base),
            Jitter::Random(rng) => rng.get_or_insert_with(fastrand::Rng::new),
            Jitter::Seeded(rng) => rng,
        };
        // A share of `base` in [0, 1), in 2^-64ths: `nanos × share / 2^64`, in two halves
        // so that no product overflows (nanos < 2^95).
        let (nanos, share) = (base.as_nanos(), u128::from(rng.u64(..)));
        let extra = (nanos >> 64) * share + (((nanos & u128::from(u64::MAX)) * share) >> 64);
        Some(from_nanos(nanos + extra).unwrap_or(Duration::MAX))
    }
}

impl fmt::Debug for Backoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .field("factor", &self.factor.f)
            .field("jitter", &!matches!(self.jitter, Jitter::Off))
            .field("next", &self.current)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_exact() {
        let ms = Duration::from_millis;
        let f = Factor::new(2.0);
        assert_eq!(f.apply(ms(100)), Some(ms(200)));
        assert_eq!(
            Factor::new(1.5).apply(ms(3)),
            Some(Duration::from_micros(4500))
        );
        assert_eq!(Factor::new(1.0).apply(ms(7)), Some(ms(7)));
        // 1.6 is not exact in binary: the product of its exact value, rounded down.
        assert_eq!(
            Factor::new(1.6).apply(Duration::from_secs(1)),
            Some(Duration::from_nanos(1_600_000_000))
        );
        assert_eq!(Factor::new(2.0).apply(Duration::MAX), None);
        assert_eq!(Factor::new(1e300).apply(Duration::from_nanos(1)), None);
        assert_eq!(Factor::new(2.0).apply(Duration::ZERO), Some(Duration::ZERO));
    }

    #[test]
    #[should_panic(expected = "at least 1")]
    fn a_shrinking_factor_panics() {
        let _ = Backoff::new().with_factor(0.5);
    }

    #[test]
    #[should_panic(expected = "not NaN")]
    fn a_nan_factor_panics() {
        let _ = Backoff::new().with_factor(f64::NAN);
    }

    #[test]
    fn uncapped_delays_saturate() {
        let mut b = Backoff::new()
            .with_min_delay(Duration::from_secs(u64::MAX / 2))
            .without_max_delay()
            .without_jitter();
        assert_eq!(b.next(), Some(Duration::from_secs(u64::MAX / 2)));
        assert_eq!(b.next(), Some(Duration::MAX));
        assert_eq!(b.next(), Some(Duration::MAX));
        let mut j = Backoff::new()
            .with_min_delay(Duration::MAX)
            .without_max_delay()
            .with_jitter_seed(1);
        assert_eq!(j.next(), Some(Duration::MAX));
    }

    #[test]
    fn jitter_stays_within_twice_the_delay() {
        let b = Backoff::new().with_jitter_seed(42).take(200);
        let plain = Backoff::new().without_jitter().take(200);
        for (j, p) in b.zip(plain) {
            assert!(j >= p && j <= p * 2, "{j:?} for {p:?}");
        }
    }
}
