//! One long-lived governor limiter whose granted rate follows a scale factor exactly.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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

/// An `f64` behind an atomic, so the fast path takes no lock.
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }

    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Acquire))
    }

    fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Release);
    }

    fn add(&self, delta: f64) {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let new = (f64::from_bits(cur) + delta).to_bits();
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => cur = seen,
            }
        }
    }
}

/// Limiters whose carry lives in thread-local slots; later ones share an atomic (a process
/// creating limiters without end must not grow every thread's table without end).
const LOCAL_CARRIES: usize = 4_096;
static NEXT_CARRY: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static CARRIES: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The fraction of a cell owed by earlier items, so that fractional costs add up exactly.
///
/// Each thread keeps its own fraction (no atomic on the fast path, no cache line bouncing
/// between cores): the total charged equals the total cost to within one cell per thread,
/// i.e. `1 / cells_per_item` of an item, and that error never grows.
enum Carry {
    Local(usize),
    Shared(AtomicF64),
}

impl Carry {
    fn new() -> Self {
        match NEXT_CARRY.fetch_add(1, Ordering::Relaxed) {
            id if id < LOCAL_CARRIES => Self::Local(id),
            _ => Self::Shared(AtomicF64::new(0.0)),
        }
    }

    fn local<R>(id: usize, f: impl FnOnce(&mut f64) -> R) -> R {
        CARRIES.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() <= id {
                c.resize(id + 1, 0.0);
            }
            f(&mut c[id])
        })
    }

    fn get(&self) -> f64 {
        match self {
            Self::Local(id) => Self::local(*id, |c| *c),
            Self::Shared(a) => a.load(),
        }
    }

    /// Adds `delta` (skipped when 0: whole-cell costs need no bookkeeping).
    fn add(&self, delta: f64) {
        if delta == 0.0 {
            return;
        }
        match self {
            Self::Local(id) => Self::local(*id, |c| *c += delta),
            Self::Shared(a) => a.add(delta),
        }
    }
}

/// Longest burst, as the nanoseconds a full bucket takes to refill at the base rate:
/// governor multiplies the period by the burst and adds times to the result in plain `u64`
/// arithmetic (which wraps in release builds), and a bucket that takes over a century to
/// refill is a typo anyway.
const MAX_BURST_NANOS: u64 = u64::MAX / 4;

/// The quota granting `refill_rate` items per second with bursts of `capacity` items, with
/// its cells per item and burst in cells; `None` if no quota can express them.
pub(crate) fn quota(capacity: u32, refill_rate: f64) -> Option<(Quota, f64, u32)> {
    if capacity == 0 || !(refill_rate > 0.0 && refill_rate.is_finite()) {
        return None;
    }
    // Keep the burst in cells inside u32 while making cells as fine as possible.
    let per_item = TARGET_CELLS_PER_ITEM.min((u32::MAX / 2) as f64 / capacity as f64);
    let period_ns = (1e9 / (refill_rate * per_item)).round().max(1.0);
    // The exact cells per item for the period actually used, so rounding the period
    // does not change the rate.
    let cells_per_item = 1e9 / period_ns / refill_rate;
    let burst_cells = ((capacity as f64 * cells_per_item)
        .ceil()
        .min(u32::MAX as f64) as u32)
        .max(1);
    // `as` saturates, and a saturated period fails the bound below.
    let period_ns = period_ns as u64;
    let burst_ns = period_ns.checked_mul(u64::from(burst_cells))?;
    if burst_ns > MAX_BURST_NANOS {
        return None;
    }
    let quota = Quota::with_period(Duration::from_nanos(period_ns))?
        .allow_burst(NonZeroU32::new(burst_cells)?);
    Some((quota, cells_per_item, burst_cells))
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
    scale: AtomicF64,
    /// Every grant adds its exact cost minus the whole cells it paid.
    carry: Carry,
}

impl ScaledLimiter {
    /// A limiter granting `refill_rate` items per second with bursts of `capacity` items.
    /// Returns `None` if the values cannot make a quota (caller validates first).
    pub(crate) fn new(capacity: u32, refill_rate: f64) -> Option<Self> {
        let (quota, cells_per_item, burst_cells) = quota(capacity, refill_rate)?;
        let clock = TokioClock::new();
        Some(Self {
            gcra: RateLimiter::direct_with_clock(quota, clock),
            clock,
            cells_per_item,
            burst_cells,
            scale: AtomicF64::new(1.0),
            carry: Carry::new(),
        })
    }

    pub(crate) fn scale(&self) -> f64 {
        self.scale.load()
    }

    pub(crate) fn set_scale(&self, scale: f64) {
        self.scale.store(scale);
    }

    /// Tries to pay for `items` items at the current scale.
    ///
    /// Lock-free: the whole cells are paid to governor (its one atomic), the rest is added to
    /// this thread's carry.
    pub(crate) fn try_take(&self, items: f64) -> Take {
        let scale = self.scale.load();
        if scale <= 0.0 {
            return Take::Paused;
        }
        let exact = items * self.cells_per_item / scale;
        let carry = self.carry.get();
        let cost = exact + carry;
        let whole = cost.floor();
        if whole < 1.0 {
            self.carry.add(exact);
            return Take::Done;
        }
        // A request dearer than the whole bucket (tiny scales) is paid in bucket-sized parts.
        let chunk = whole.min(self.burst_cells as f64);
        let Some(n) = NonZeroU32::new(chunk as u32) else {
            self.carry.add(exact);
            return Take::Done;
        };
        match self.gcra.check_n(n) {
            Ok(Ok(())) if chunk == whole => {
                self.carry.add(exact - whole);
                Take::Done
            }
            Ok(Ok(())) => {
                // What is left, the carry included, is handed back as items still to pay.
                self.carry.add(-carry);
                Take::Partial((cost - chunk) * scale / self.cells_per_item)
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

    #[test]
    fn quota_refuses_bursts_governor_cannot_count() {
        // The settings fuzz check caught governor's u64 nanoseconds overflowing here.
        assert!(quota(1, 1e-300).is_none());
        assert!(quota(u32::MAX, 1e-3).is_none());
        assert!(quota(u32::MAX, 1.0).is_some());
        assert!(quota(1, 1e300).is_some());
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
