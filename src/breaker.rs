//! A circuit breaker as a pure state machine, shared by the store's sink and the rate limiter.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// The breaker's externally visible state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the instant passes.
    Open,
    /// One probe call is allowed; its outcome closes or re-opens the breaker.
    HalfOpen,
}

impl BreakerState {
    /// Gauge value: 0 closed, 1 open, 2 half-open.
    pub fn as_gauge(self) -> u64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// What the breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Go ahead.
    Pass,
    /// Go ahead as the single half-open probe; report its outcome.
    Probe,
    /// Not before this instant.
    RefusedUntil(Instant),
}

/// Counts consecutive failures; opens at `threshold`, lets one probe through after `open_for`.
///
/// A probe that never reports back (its caller died) is forgotten after another `open_for`,
/// so the breaker cannot wedge half-open.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    state: Inner,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed,
    Open { until: Instant },
    HalfOpen { probe_deadline: Option<Instant> },
}

impl CircuitBreaker {
    /// A closed breaker. A `threshold` of 0 disables it (it never opens).
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold,
            open_for,
            failures: 0,
            state: Inner::Closed,
        }
    }

    /// The state at `now` (an open breaker whose time has passed reads as half-open).
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.state {
            Inner::Closed => BreakerState::Closed,
            Inner::Open { until } if now < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Asks to make one call at `now`.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match self.state {
            Inner::Closed => Permit::Pass,
            Inner::Open { until } if now < until => Permit::RefusedUntil(until),
            Inner::Open { .. } => self.lend_probe(now),
            Inner::HalfOpen {
                probe_deadline: Some(deadline),
            } if now < deadline => Permit::RefusedUntil(deadline),
            Inner::HalfOpen { .. } => self.lend_probe(now),
        }
    }

    fn lend_probe(&mut self, now: Instant) -> Permit {
        self.state = Inner::HalfOpen {
            probe_deadline: Some(now + self.open_for),
        };
        Permit::Probe
    }

    /// Records a successful call: closes the breaker. Returns true if it was not closed.
    pub fn on_success(&mut self) -> bool {
        self.failures = 0;
        let was_open = !matches!(self.state, Inner::Closed);
        self.state = Inner::Closed;
        was_open
    }

    /// Records a failed call at `now`. Returns true if this failure opened the breaker.
    pub fn on_failure(&mut self, now: Instant) -> bool {
        self.failures = self.failures.saturating_add(1);
        let opens = match self.state {
            Inner::Closed => self.threshold > 0 && self.failures >= self.threshold,
            // A failed probe (or a late failure while half-open) re-opens at once.
            Inner::HalfOpen { .. } => true,
            Inner::Open { .. } => false,
        };
        if opens {
            self.state = Inner::Open {
                until: now + self.open_for,
            };
        }
        opens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_at_threshold_probes_after_timeout_and_closes_on_success() {
        let mut b = CircuitBreaker::new(3, Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(!b.on_failure(t0));
        assert!(!b.on_failure(t0));
        assert_eq!(b.permit(t0), Permit::Pass);
        assert!(b.on_failure(t0));
        assert_eq!(b.state(t0), BreakerState::Open);
        assert_eq!(
            b.permit(t0),
            Permit::RefusedUntil(t0 + Duration::from_secs(10))
        );

        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.state(t1), BreakerState::HalfOpen);
        assert_eq!(b.permit(t1), Permit::Probe);
        // Only one probe at a time.
        assert!(matches!(b.permit(t1), Permit::RefusedUntil(_)));
        assert!(b.on_success());
        assert_eq!(b.state(t1), BreakerState::Closed);
        assert_eq!(b.failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probe_reopens_and_lost_probe_expires() {
        let mut b = CircuitBreaker::new(1, Duration::from_secs(5));
        let t0 = Instant::now();
        assert!(b.on_failure(t0));
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(b.permit(t1), Permit::Probe);
        assert!(b.on_failure(t1));
        assert_eq!(b.state(t1), BreakerState::Open);

        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(b.permit(t2), Permit::Probe);
        // The probe's caller never reports; after another period a new probe is lent.
        assert_eq!(b.permit(t2 + Duration::from_secs(5)), Permit::Probe);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_threshold_never_opens() {
        let mut b = CircuitBreaker::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert!(!b.on_failure(Instant::now()));
        }
        assert_eq!(b.permit(Instant::now()), Permit::Pass);
    }
}
