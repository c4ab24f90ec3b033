//! `RateCoordinator`: named providers, each a scaled governor limiter with cooldown and breaker.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::time::{Instant, sleep, sleep_until};

use super::RateError;
use super::provider::{Gate, Provider, ProviderConfig};
use super::scaled::Take;
use crate::breaker::BreakerState;
use crate::event::BackpressureLevel;
use crate::invalid::InvalidSetting;

/// Providers looked up without a lock: registrations fill these slots in order (under the
/// map's write lock) and never empty them, so `acquire` finds its provider with atomic loads
/// only. A read-write lock showed in the fast path (`benches/rate.rs`).
const SLOTS: usize = 32;

struct Registry {
    slots: [OnceLock<Arc<Provider>>; SLOTS],
    /// Every provider by name: registration, names, and providers beyond the slots.
    map: RwLock<HashMap<String, Arc<Provider>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
            map: RwLock::default(),
        }
    }
}

impl Registry {
    /// The provider if it sits in a slot: no lock, no reference count touched.
    fn slot(&self, name: &str) -> Option<&Arc<Provider>> {
        for slot in &self.slots {
            match slot.get() {
                Some(p) if p.name == name => return Some(p),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }
}

/// Per-provider token buckets whose rates follow a budget scale.
///
/// Cheap to clone; clones share the providers.
#[derive(Clone, Default)]
pub struct RateCoordinator {
    providers: Arc<Registry>,
}

impl std::fmt::Debug for RateCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateCoordinator")
            .field("providers", &self.provider_names())
            .finish()
    }
}

impl RateCoordinator {
    /// No providers yet.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn get(&self, name: &str) -> Result<Arc<Provider>, RateError> {
        if let Some(p) = self.providers.slot(name) {
            return Ok(p.clone());
        }
        self.providers
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| RateError::UnknownProvider(name.to_owned()))
    }

    /// Registers a provider: `capacity` burst, `refill_rate` items per second, the cooldown
    /// used by [`trigger_cooldown`](Self::trigger_cooldown), and its circuit breaker.
    pub fn register_provider(&self, name: &str, config: ProviderConfig) -> Result<(), RateError> {
        config.validate()?;
        let provider = Provider::new(name.to_owned(), config.clone())
            .ok_or_else(|| InvalidSetting::new("refill_rate", "no quota can express this rate"))?;
        let mut map = self
            .providers
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if map.contains_key(name) {
            return Err(RateError::AlreadyRegistered(name.to_owned()));
        }
        let provider = Arc::new(provider);
        map.insert(name.to_owned(), provider.clone());
        // Under the write lock: slots fill in order, one registration at a time.
        if let Some(free) = self.providers.slots.iter().find(|s| s.get().is_none()) {
            let _ = free.set(provider);
        }
        tracing::info!(
            provider = name,
            capacity = config.capacity,
            refill_rate = config.refill_rate,
            "Provider registered."
        );
        Ok(())
    }

    /// Registered provider names, sorted.
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .providers
            .map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Waits until `n` items may be used from `provider`, at `base × scale`.
    ///
    /// Waits (without spinning) through a cooldown, an open breaker and a scale of 0; a scale
    /// change or a closing breaker wakes waiters at once, so nobody sleeps on an old schedule.
    /// While the breaker is half-open one caller is let through as the probe; it should report
    /// [`record_success`](Self::record_success) or [`record_failure`](Self::record_failure).
    pub async fn acquire(&self, provider: &str, n: u32) -> Result<(), RateError> {
        let mut left = f64::from(n);
        let mut probe = false;
        // The fast path, a grant that does not wait: no lock, no reference count, and no
        // clock read beyond the limiter's own.
        let owned;
        let p: &Provider = match self.providers.slot(provider) {
            Some(p) => p,
            None => {
                owned = self.get(provider)?;
                &owned
            }
        };
        if n == 0 {
            return Ok(());
        }
        if n > p.config.capacity {
            return Err(RateError::ExceedsCapacity {
                provider: provider.to_owned(),
                requested: n,
                capacity: p.config.capacity,
            });
        }
        let mut wait = attempt(p, &mut left, &mut probe);
        while matches!(wait, Some(Wait::Again)) {
            wait = attempt(p, &mut left, &mut probe);
        }
        if wait.is_none() {
            p.acquire_wait.record(Duration::ZERO);
            p.granted.fetch_add(u64::from(n), Relaxed);
            return Ok(());
        }
        let started = Instant::now();
        while let Some(wait) = attempt(p, &mut left, &mut probe) {
            if matches!(wait, Wait::Again) {
                continue;
            }
            // Subscribe only when we have to wait (the fast path takes no extra step), then
            // look once more so that a change between the two is not missed.
            let mut changed = p.subscribe();
            let Some(wait) = attempt(p, &mut left, &mut probe) else {
                break;
            };
            match wait {
                Wait::For(d) => tokio::select! {
                    () = sleep(d) => {}
                    _ = changed.changed() => {}
                },
                Wait::Until(t) => tokio::select! {
                    () = sleep_until(t) => {}
                    _ = changed.changed() => {}
                },
                Wait::Change => {
                    let _ = changed.changed().await;
                }
                Wait::Again => {}
            }
        }
        p.acquire_wait.record(started.elapsed());
        p.granted.fetch_add(u64::from(n), Relaxed);
        Ok(())
    }

    /// Records a failed call to `provider`; enough in a row open its breaker.
    pub fn record_failure(&self, provider: &str) -> Result<BreakerState, RateError> {
        let p = self.get(provider)?;
        let now = Instant::now();
        if p.failure(now) {
            tracing::warn!(provider, "Provider circuit breaker opened.");
        }
        Ok(p.breaker_state(now).0)
    }

    /// Records a successful call to `provider`: resets its failures and closes its breaker.
    pub fn record_success(&self, provider: &str) -> Result<(), RateError> {
        if self.get(provider)?.success() {
            tracing::info!(provider, "Provider circuit breaker closed.");
        }
        Ok(())
    }

    /// Pauses `provider` for its configured cooldown (e.g. after the provider said "too many
    /// requests"). `scope` names what triggered it, for logs and snapshots.
    pub fn trigger_cooldown(&self, provider: &str, scope: &str) -> Result<Instant, RateError> {
        let until = self.get(provider)?.cooldown(scope, Instant::now());
        tracing::warn!(provider, scope, "Provider cooling down.");
        Ok(until)
    }

    /// Sets `provider`'s rate to `base × scale`, scale within [0, 1] (0 pauses). Capacity and
    /// base rate are kept; the next item is charged at the new rate.
    pub fn set_budget_scale(&self, provider: &str, scale: f64) -> Result<(), RateError> {
        if !(0.0..=1.0).contains(&scale) {
            return Err(RateError::InvalidScale(scale));
        }
        let p = self.get(provider)?;
        let old = p.set_scale(scale);
        if old != scale {
            tracing::info!(
                provider,
                from = old,
                to = scale,
                rate = p.config.refill_rate * scale,
                "Budget scale changed."
            );
        }
        Ok(())
    }

    /// Records the pressure level that drove the current scale (for logs and metrics).
    pub fn set_global_pressure(
        &self,
        provider: &str,
        level: BackpressureLevel,
    ) -> Result<(), RateError> {
        let old = self.get(provider)?.set_pressure(level);
        if old != level {
            tracing::debug!(provider, from = %old, to = %level, "Pressure changed.");
        }
        Ok(())
    }

    /// `provider`'s current scale.
    pub fn scale(&self, provider: &str) -> Result<f64, RateError> {
        Ok(self.get(provider)?.scale())
    }

    /// A receiver that sees every change of `provider`'s scale made while it exists (for metrics
    /// and observers; without receivers a change notifies nobody).
    pub fn watch_scale(
        &self,
        provider: &str,
    ) -> Result<tokio::sync::watch::Receiver<f64>, RateError> {
        Ok(self.get(provider)?.watch_scale())
    }

    /// `provider`'s last pressure level.
    pub fn pressure(&self, provider: &str) -> Result<BackpressureLevel, RateError> {
        Ok(self.get(provider)?.pressure())
    }
}

enum Wait {
    For(Duration),
    Until(Instant),
    Change,
    Again,
}

/// One non-blocking step of `acquire`: `None` when everything is paid for. A caller that
/// was lent the breaker's probe keeps it while it waits for tokens.
fn attempt(p: &Provider, left: &mut f64, probe: &mut bool) -> Option<Wait> {
    if !*probe {
        match p.gate_now() {
            Gate::Open => {}
            Gate::Probe => *probe = true,
            Gate::Until(t) => return Some(Wait::Until(t)),
        }
    }
    match p.take(*left) {
        Take::Done => None,
        Take::Partial(rest) => {
            *left = rest;
            Some(Wait::Again)
        }
        Take::Wait(d) => Some(Wait::For(d)),
        Take::Paused => Some(Wait::Change),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn providers_beyond_the_lock_free_slots_work_alike() {
        let c = RateCoordinator::new();
        for i in 0..SLOTS + 8 {
            c.register_provider(&format!("p{i}"), ProviderConfig::new(5, 5.0))
                .unwrap();
        }
        assert_eq!(
            c.register_provider("p3", ProviderConfig::new(5, 5.0)),
            Err(RateError::AlreadyRegistered("p3".into()))
        );
        assert_eq!(
            c.register_provider(&format!("p{}", SLOTS + 2), ProviderConfig::new(5, 5.0)),
            Err(RateError::AlreadyRegistered(format!("p{}", SLOTS + 2)))
        );
        assert_eq!(c.provider_names().len(), SLOTS + 8);
        for i in [0, SLOTS - 1, SLOTS, SLOTS + 7] {
            let name = format!("p{i}");
            c.acquire(&name, 5).await.unwrap();
            assert_eq!(c.snapshot(&name).unwrap().granted, 5);
        }
        assert_eq!(
            c.acquire("nope", 1).await,
            Err(RateError::UnknownProvider("nope".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_scale_watcher_hears_changes_made_while_it_exists_and_reads_earlier_ones() {
        let c = RateCoordinator::new();
        c.register_provider("p", ProviderConfig::new(5, 5.0))
            .unwrap();
        // Changed while nobody watches: a later watcher still reads the value.
        c.set_budget_scale("p", 0.5).unwrap();
        let mut w = c.watch_scale("p").unwrap();
        assert_eq!(*w.borrow_and_update(), 0.5);
        c.set_budget_scale("p", 0.25).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(1), w.changed())
            .await
            .expect("the change is announced")
            .unwrap();
        assert_eq!(*w.borrow_and_update(), 0.25);
    }
}
