//! One long-lived governor limiter whose granted rate follows a scale factor exactly.

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::TokioClock;

type Gcra = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// Cells an item costs at scale 1, at most: fine enough that rounding never matters.
const TARGET_CELLS_PER_ITEM: f64 = 1_000.0;

/// What one charge attempt achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Take {
    /// The whole request is paid for.
    Done,
    /// Part of it was paid; this many items are left to pay.
    Partial(f64),
    /// Nothing was paid; retry after this long (or when the scale changes).
    Wait(Duration),
    /// The scale is 0: nothing can be paid until it rises.
    Paused,
}

struct Charge {
    scale: f64,
    /// Fraction of a cell owed by earlier items, so fractional costs add up exactly.
    carry: f64,
}

/// A GCRA limiter at the base rate in fine-grained cells, where an item costs
/// `cells_per_item / scale` cells.
///
/// governor cannot change a quota at runtime, and rebuilding the limiter on each change hands
/// out a fresh burst every time. Charging more cells per item instead keeps one continuous
/// schedule: the granted rate is `base × scale` across any sequence of scale changes, and a
/// change takes effect for the very next item. The burst is a fixed amount of time credit
/// (`capacity / refill_rate` seconds at the base rate), which at scale `s` releases
/// `capacity × s` items at once: a full-size burst into an overloaded store is exactly what
/// backpressure must prevent.
pub(crate) struct ScaledLimiter {
    gcra: Gcra,
    clock: TokioClock,
    cells_per_item: f64,
    burst_cells: u32,
    charge: Mutex<Charge>,
}

impl ScaledLimiter {
    /// A limiter granting `refill_rate` items per second with bursts of `capacity` items.
    /// Returns `None` if the values cannot make a quota (caller validates first).
    pub(crate) fn new(capacity: u32, refill_rate: f64) -> Option<Self> {
        if capacity == 0 || !(refill_rate > 0.0 && refill_rate.is_finite()) {
            return None;
        }
        // Keep the burst in cells inside u32 while making cells as fine as possible.
        let per_item = TARGET_CELLS_PER_ITEM.min((u32::MAX / 2) as f64 / capacity as f64);
        let period_ns = (1e9 / (refill_rate * per_item)).round().max(1.0);
        // The exact cells per item for the period actually used, so rounding the period
        // does not change the rate.
        let cells_per_item = 1e9 / period_ns / refill_rate;
        let burst_cells = (capacity as f64 * cells_per_item)
            .ceil()
            .min(u32::MAX as f64) as u32;
        let quota = Quota::with_period(Duration::from_nanos(period_ns as u64))?
            .allow_burst(NonZeroU32::new(burst_cells.max(1))?);
        let clock = TokioClock::new();
        Some(Self {
            gcra: RateLimiter::direct_with_clock(quota, clock),
            clock,
            cells_per_item,
            burst_cells: burst_cells.max(1),
            charge: Mutex::new(Charge {
                scale: 1.0,
                carry: 0.0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Charge> {
        self.charge.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn scale(&self) -> f64 {
        self.lock().scale
    }

    pub(crate) fn set_scale(&self, scale: f64) {
        self.lock().scale = scale;
    }

    /// Tries to pay for `items` items at the current scale.
    pub(crate) fn try_take(&self, items: f64) -> Take {
        let mut ch = self.lock();
        if ch.scale <= 0.0 {
            return Take::Paused;
        }
        let cost = items * self.cells_per_item / ch.scale + ch.carry;
        let whole = cost.floor();
        if whole < 1.0 {
            ch.carry = cost;
            return Take::Done;
        }
        // A request dearer than the whole bucket (tiny scales) is paid in bucket-sized parts.
        let chunk = whole.min(self.burst_cells as f64);
        let Some(n) = NonZeroU32::new(chunk as u32) else {
            return Take::Done;
        };
        match self.gcra.check_n(n) {
            Ok(Ok(())) if chunk == whole => {
                ch.carry = cost - whole;
                Take::Done
            }
            Ok(Ok(())) => {
                ch.carry = 0.0;
                Take::Partial((cost - chunk) * ch.scale / self.cells_per_item)
            }
            Ok(Err(not_until)) => Take::Wait(not_until.wait_time_from(self.clock.now())),
            // Unreachable: chunks never exceed the burst. Waiting one period is harmless.
            Err(_) => Take::Wait(Duration::from_millis(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(l: &ScaledLimiter) -> u32 {
        let mut n = 0;
        while l.try_take(1.0) == Take::Done {
            n += 1;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn burst_is_capacity_at_full_scale_and_shrinks_with_scale() {
        let l = ScaledLimiter::new(100, 50.0).unwrap();
        assert_eq!(drain(&l), 100);
        let l = ScaledLimiter::new(100, 50.0).unwrap();
        l.set_scale(0.5);
        assert_eq!(drain(&l), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn wait_time_reflects_the_scaled_rate() {
        let l = ScaledLimiter::new(4, 10.0).unwrap();
        assert_eq!(drain(&l), 4);
        let Take::Wait(d) = l.try_take(1.0) else {
            panic!("expected a wait");
        };
        assert_eq!(d, Duration::from_millis(100));
        l.set_scale(0.25);
        let Take::Wait(d) = l.try_take(1.0) else {
            panic!("expected a wait");
        };
        assert_eq!(d, Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_scale_pauses_and_tiny_scale_pays_in_parts() {
        let l = ScaledLimiter::new(2, 10.0).unwrap();
        l.set_scale(0.0);
        assert_eq!(l.try_take(1.0), Take::Paused);
        l.set_scale(0.01);
        // One item now costs 50 bursts' worth of cells: it is paid in parts.
        assert!(matches!(l.try_take(1.0), Take::Partial(left) if (left - 0.98).abs() < 1e-9));
    }

    #[test]
    fn rejects_values_that_make_no_quota() {
        assert!(ScaledLimiter::new(0, 1.0).is_none());
        assert!(ScaledLimiter::new(1, 0.0).is_none());
        assert!(ScaledLimiter::new(1, f64::NAN).is_none());
    }
}
