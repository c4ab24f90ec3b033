//! One provider's limiter, cooldown, circuit breaker and pressure state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::scaled::{ScaledLimiter, Take, quota};
use crate::breaker::{BreakerState, CircuitBreaker, Permit};
use crate::event::BackpressureLevel;
use crate::histogram::Histogram;
use crate::invalid::{InvalidSetting, at_least_one};

/// Longest cooldown or breaker pause, in seconds (a year): longer is a typo, and a pause is
/// added to the clock, which must not overflow.
pub const MAX_PAUSE_SEC: f64 = 365.0 * 24.0 * 3600.0;

/// A provider's limits, as in the predecessor's `register_provider`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderConfig {
    /// Burst size in items (the bucket's capacity).
    pub capacity: u32,
    /// Base rate in items per second, before any scale.
    pub refill_rate: f64,
    /// Pause after [`trigger_cooldown`](super::RateCoordinator::trigger_cooldown), seconds.
    pub cooldown_sec: f64,
    /// Consecutive failures that open the breaker (0 disables it).
    pub breaker_threshold: u32,
    /// Seconds the breaker stays open before one probe.
    pub breaker_timeout_sec: f64,
}

impl Default for ProviderConfig {
    /// The predecessor's defaults: 60 burst, 60/s, 600 s cooldown, breaker 5 failures / 60 s.
    fn default() -> Self {
        Self {
            capacity: 60,
            refill_rate: 60.0,
            cooldown_sec: 600.0,
            breaker_threshold: 5,
            breaker_timeout_sec: 60.0,
        }
    }
}

impl ProviderConfig {
    /// A provider with this burst and base rate and the predecessor's other defaults.
    pub fn new(capacity: u32, refill_rate: f64) -> Self {
        Self {
            capacity,
            refill_rate,
            ..Self::default()
        }
    }

    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one(&[("capacity", u64::from(self.capacity))])?;
        if !(self.refill_rate > 0.0 && self.refill_rate.is_finite()) {
            return Err(InvalidSetting::new(
                "refill_rate",
                format!("must be > 0, got {}", self.refill_rate),
            ));
        }
        if quota(self.capacity, self.refill_rate).is_none() {
            return Err(InvalidSetting::new(
                "refill_rate",
                format!(
                    "a burst of {} at {:?}/s takes over a century to refill",
                    self.capacity, self.refill_rate
                ),
            ));
        }
        for (key, v) in [
            ("cooldown_sec", self.cooldown_sec),
            ("breaker_timeout_sec", self.breaker_timeout_sec),
        ] {
            if !(0.0..=MAX_PAUSE_SEC).contains(&v) {
                return Err(InvalidSetting::new(
                    key,
                    format!("must be within [0, {MAX_PAUSE_SEC}], got {v:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// What stands between a caller and the limiter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Gate {
    Open,
    Probe,
    Until(Instant),
}

struct Gates {
    cooling_until: Option<Instant>,
    cooldown_scope: Option<String>,
    breaker: CircuitBreaker,
}

pub(crate) struct Provider {
    pub(crate) name: String,
    pub(crate) config: ProviderConfig,
    limiter: ScaledLimiter,
    gates: Mutex<Gates>,
    /// Fast path: false while no cooldown is set and the breaker is closed.
    gated: AtomicBool,
    pressure: Mutex<BackpressureLevel>,
    /// Bumped on every change that may let a waiter through sooner.
    changed: watch::Sender<u64>,
    /// The current scale, for observers.
    scale_tx: watch::Sender<f64>,
    pub(crate) granted: AtomicU64,
    pub(crate) acquire_wait: Histogram,
}

impl Provider {
    pub(crate) fn new(name: String, config: ProviderConfig) -> Option<Self> {
        let limiter = ScaledLimiter::new(config.capacity, config.refill_rate)?;
        let breaker = CircuitBreaker::new(
            config.breaker_threshold,
            Duration::from_secs_f64(config.breaker_timeout_sec),
        );
        Some(Self {
            name,
            config,
            limiter,
            gates: Mutex::new(Gates {
                cooling_until: None,
                cooldown_scope: None,
                breaker,
            }),
            gated: AtomicBool::new(false),
            pressure: Mutex::new(BackpressureLevel::Ok),
            changed: watch::Sender::new(0),
            scale_tx: watch::Sender::new(1.0),
            granted: AtomicU64::new(0),
            acquire_wait: Histogram::new(),
        })
    }

    fn gates(&self) -> MutexGuard<'_, Gates> {
        self.gates.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// [`gate`](Self::gate) without reading the clock while nothing is gated (the fast path).
    pub(crate) fn gate_now(&self) -> Gate {
        if !self.gated.load(Relaxed) {
            return Gate::Open;
        }
        self.gate(Instant::now())
    }

    /// Cooldown first, then the breaker.
    pub(crate) fn gate(&self, now: Instant) -> Gate {
        if !self.gated.load(Relaxed) {
            return Gate::Open;
        }
        let mut g = self.gates();
        if let Some(until) = g.cooling_until {
            if now < until {
                return Gate::Until(until);
            }
            g.cooling_until = None;
            tracing::info!(provider = %self.name, "Cooldown over.");
        }
        let gate = match g.breaker.permit(now) {
            Permit::Pass => Gate::Open,
            Permit::Probe => Gate::Probe,
            Permit::RefusedUntil(until) => Gate::Until(until),
        };
        self.gated.store(
            g.cooling_until.is_some() || g.breaker.state(now) != BreakerState::Closed,
            Relaxed,
        );
        gate
    }

    pub(crate) fn take(&self, items: f64) -> Take {
        self.limiter.try_take(items)
    }

    pub(crate) fn scale(&self) -> f64 {
        self.limiter.scale()
    }

    /// Returns the previous scale.
    pub(crate) fn set_scale(&self, scale: f64) -> f64 {
        let old = self.limiter.scale();
        self.limiter.set_scale(scale);
        if scale > old {
            self.notify();
        }
        if scale != old {
            // Waking nobody still takes the watch's eight waiter locks, on every change: only
            // announce a change someone can hear (one subscribing meanwhile reads the value).
            self.scale_tx.send_if_modified(|v| {
                *v = scale;
                self.scale_tx.receiver_count() > 0
            });
        }
        old
    }

    pub(crate) fn watch_scale(&self) -> watch::Receiver<f64> {
        self.scale_tx.subscribe()
    }

    pub(crate) fn pressure(&self) -> BackpressureLevel {
        *self.pressure.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_pressure(&self, level: BackpressureLevel) -> BackpressureLevel {
        std::mem::replace(
            &mut *self.pressure.lock().unwrap_or_else(|p| p.into_inner()),
            level,
        )
    }

    pub(crate) fn cooldown(&self, scope: &str, now: Instant) -> Instant {
        let until = now + Duration::from_secs_f64(self.config.cooldown_sec);
        let mut g = self.gates();
        g.cooling_until = Some(g.cooling_until.map_or(until, |u| u.max(until)));
        g.cooldown_scope = Some(scope.to_owned());
        self.gated.store(true, Relaxed);
        until
    }

    /// Returns true if this failure opened the breaker.
    pub(crate) fn failure(&self, now: Instant) -> bool {
        let opened = self.gates().breaker.on_failure(now);
        if opened {
            self.gated.store(true, Relaxed);
        }
        opened
    }

    /// Returns true if this success closed the breaker.
    pub(crate) fn success(&self) -> bool {
        let mut g = self.gates();
        let closed = g.breaker.on_success();
        if closed {
            self.gated.store(g.cooling_until.is_some(), Relaxed);
            drop(g);
            self.notify();
        }
        closed
    }

    pub(crate) fn breaker_state(&self, now: Instant) -> (BreakerState, u32) {
        let g = self.gates();
        (g.breaker.state(now), g.breaker.failures())
    }

    pub(crate) fn cooling(&self, now: Instant) -> Option<(Instant, Option<String>)> {
        let g = self.gates();
        g.cooling_until
            .filter(|u| now < *u)
            .map(|u| (u, g.cooldown_scope.clone()))
    }
}
