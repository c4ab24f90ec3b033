//! What a rate coordinator reports about its providers: snapshots for logs and tests, and a
//! probe for metrics.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use super::{RateCoordinator, RateError};
use crate::breaker::BreakerState;
use crate::event::BackpressureLevel;
use crate::histogram::Histogram;
use crate::telemetry::{self as t, Probe, Readings};

/// A provider's state, for logs, tests and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderSnapshot {
    /// The provider's name.
    pub name: String,
    /// Burst capacity in items (never changed by the scale).
    pub capacity: u32,
    /// Base rate in items per second (never changed by the scale).
    pub base_rate: f64,
    /// Current scale factor.
    pub scale: f64,
    /// `base_rate × scale`.
    pub effective_rate: f64,
    /// Last pressure level set with `set_global_pressure`.
    pub pressure: BackpressureLevel,
    /// Circuit breaker state.
    pub breaker: BreakerState,
    /// Consecutive failures recorded.
    pub failures: u32,
    /// End of the current cooldown, if any.
    pub cooling_until: Option<Instant>,
    /// Scope given to the current cooldown.
    pub cooldown_scope: Option<String>,
    /// Items granted so far.
    pub granted: u64,
}

impl RateCoordinator {
    /// The `q`-quantile of time spent in `acquire` for `provider`.
    pub fn acquire_wait_quantile(&self, provider: &str, q: f64) -> Result<Duration, RateError> {
        Ok(self.get(provider)?.acquire_wait.quantile(q))
    }

    /// Reads the histogram of time spent in `acquire` for `provider`, for exporters.
    pub fn with_acquire_wait<R>(
        &self,
        provider: &str,
        read: impl FnOnce(&Histogram) -> R,
    ) -> Result<R, RateError> {
        Ok(read(&self.get(provider)?.acquire_wait))
    }

    /// `provider`'s full state.
    pub fn snapshot(&self, provider: &str) -> Result<ProviderSnapshot, RateError> {
        let p = self.get(provider)?;
        let now = Instant::now();
        let (breaker, failures) = p.breaker_state(now);
        let cooling = p.cooling(now);
        let scale = p.scale();
        Ok(ProviderSnapshot {
            name: p.name.clone(),
            capacity: p.config.capacity,
            base_rate: p.config.refill_rate,
            scale,
            effective_rate: p.config.refill_rate * scale,
            pressure: p.pressure(),
            breaker,
            failures,
            cooling_until: cooling.as_ref().map(|c| c.0),
            cooldown_scope: cooling.and_then(|c| c.1),
            granted: p.granted.load(Relaxed),
        })
    }

    /// A probe exporting `providers` (`backflow_agent_rate_*`, pressure, breaker, grants,
    /// acquire wait); fails if one is not registered.
    pub fn probe(&self, providers: &[String]) -> Result<RateProbe, RateError> {
        for p in providers {
            self.get(p)?;
        }
        let mut providers = providers.to_vec();
        providers.sort();
        providers.dedup();
        Ok(RateProbe {
            rate: self.clone(),
            providers,
        })
    }
}

/// Reports some providers of a rate coordinator; see [`RateCoordinator::probe`].
#[derive(Debug, Clone)]
pub struct RateProbe {
    rate: RateCoordinator,
    providers: Vec<String>,
}

impl Probe for RateProbe {
    fn claims(&self) -> Vec<String> {
        self.providers
            .iter()
            .map(|p| format!("provider {p}"))
            .collect()
    }

    fn read(&self, out: &mut Readings) {
        for name in &self.providers {
            // Providers are never removed once registered, so these reads succeed.
            let Ok(p) = self.rate.snapshot(name) else {
                continue;
            };
            let label = [("provider", name.as_str())];
            for (metric, value) in [
                (&t::AGENT_RATE_SCALE, p.scale),
                (&t::AGENT_RATE_LIMIT, p.effective_rate),
                (&t::AGENT_PRESSURE_LEVEL, f64::from(p.pressure.code())),
                (&t::AGENT_BREAKER_STATE, p.breaker.as_gauge() as f64),
                (&t::AGENT_ITEMS_GRANTED_TOTAL, p.granted as f64),
            ] {
                out.set(metric, &label, value);
            }
            let _ = self.rate.with_acquire_wait(name, |h: &Histogram| {
                out.histogram(&t::ACQUIRE_WAIT_SECONDS, &label, h);
            });
        }
    }
}
