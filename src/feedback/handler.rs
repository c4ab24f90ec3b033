//! `FeedbackHandler`: applies the fleet's feedback to the rate coordinator through a policy.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::fleet::{FleetConfig, FleetView, Observed};
use super::policy::{Decision, Policy, Signal};
use crate::bus::FeedbackSubscription;
use crate::clock::WallClock;
use crate::event::{BackpressureLevel, FeedbackEvent};
use crate::histogram::Histogram;
use crate::rate::{RateCoordinator, RateError};

/// Counters of a handler, shared with whoever exports them.
#[derive(Debug, Default)]
pub struct HandlerStats {
    /// Events received, whatever became of them.
    pub received: AtomicU64,
    /// Events that became their instance's state.
    pub applied: AtomicU64,
    /// Duplicates ignored.
    pub duplicates: AtomicU64,
    /// Late or replayed events ignored.
    pub out_of_order: AtomicU64,
    /// Events ignored for their age.
    pub too_old: AtomicU64,
    /// Instances that said goodbye.
    pub left: AtomicU64,
    /// Scale changes applied to the rate coordinator.
    pub adjustments: AtomicU64,
    /// Current scale, as `f64` bits.
    scale_bits: AtomicU64,
    /// Current merged level (0 ok, 1 soft, 2 hard).
    pub level: AtomicU64,
    /// Instances currently silent.
    pub silent_instances: AtomicU64,
    /// Time from an event's timestamp to its application (wall clocks of two hosts).
    pub latency: Histogram,
}

impl HandlerStats {
    /// The scale currently applied.
    pub fn scale(&self) -> f64 {
        f64::from_bits(self.scale_bits.load(Relaxed))
    }

    fn count(&self, outcome: Observed) {
        match outcome {
            Observed::Applied => &self.applied,
            Observed::Duplicate => &self.duplicates,
            Observed::OutOfOrder => &self.out_of_order,
            Observed::TooOld => &self.too_old,
            Observed::Left => &self.left,
        }
        .fetch_add(1, Relaxed);
    }
}

/// Turns feedback events into budget scales for one or more providers.
///
/// The fleet view orders each instance's events and expires silent ones; the policy maps the
/// merged signal to a scale; the handler applies it (capped by silent instances' fallback) to
/// every provider it serves. Drive it with [`run`](Self::run), or call
/// [`handle`](Self::handle) and [`tick`](Self::tick) yourself.
pub struct FeedbackHandler {
    rate: RateCoordinator,
    providers: Vec<String>,
    fleet: FleetView,
    policy: Box<dyn Policy>,
    wall: WallClock,
    decision: Decision,
    signal: Signal,
    applied: f64,
    stats: Arc<HandlerStats>,
}

impl FeedbackHandler {
    /// A handler for `providers`, which must be registered with `rate`.
    pub fn new(
        rate: RateCoordinator,
        providers: impl IntoIterator<Item = impl Into<String>>,
        policy: Box<dyn Policy>,
        fleet: FleetConfig,
    ) -> Result<Self, RateError> {
        let providers: Vec<String> = providers.into_iter().map(Into::into).collect();
        for p in &providers {
            rate.scale(p)?;
        }
        let wall = WallClock::new();
        let stats = Arc::new(HandlerStats::default());
        stats.scale_bits.store(1.0f64.to_bits(), Relaxed);
        Ok(Self {
            rate,
            providers,
            fleet: FleetView::new(fleet, wall),
            policy,
            wall,
            decision: Decision::hold(1.0),
            signal: Signal::QUIET,
            applied: 1.0,
            stats,
        })
    }

    /// Uses `wall` to age events (tests pin it).
    pub fn with_wall_clock(mut self, wall: WallClock) -> Self {
        self.wall = wall;
        self.fleet = FleetView::new(self.fleet.config().clone(), wall);
        self
    }

    /// Shared counters.
    pub fn stats(&self) -> Arc<HandlerStats> {
        self.stats.clone()
    }

    /// The merged signal last given to the policy.
    pub fn signal(&self) -> Signal {
        self.signal
    }

    /// The fleet as this handler sees it.
    pub fn fleet(&self) -> &FleetView {
        &self.fleet
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &'static str {
        self.policy.name()
    }

    /// Takes in one event: orders it, and if it changes the merge, asks the policy and
    /// applies the answer.
    pub fn handle(&mut self, event: FeedbackEvent) -> Observed {
        let now = Instant::now();
        self.stats.received.fetch_add(1, Relaxed);
        let sent_ms = event.timestamp_ms;
        let outcome = self.fleet.observe(event, now);
        self.stats.count(outcome);
        match outcome {
            Observed::Applied | Observed::Left => {
                let age = self.wall.now_ms().saturating_sub(sent_ms);
                self.stats.latency.record(Duration::from_millis(age));
                self.refresh(now);
            }
            Observed::Duplicate | Observed::OutOfOrder | Observed::TooOld => {
                tracing::debug!(outcome = outcome.as_str(), "Feedback event ignored.");
            }
        }
        outcome
    }

    /// Runs timers that are due: instance expiry and the policy's dwell/ramp steps.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if self.fleet.expire(now) {
            self.refresh(now);
        }
        if self.decision.wake_at.is_some_and(|at| at <= now) {
            self.decision = self.policy.on_tick(now);
            self.apply();
        }
    }

    /// When [`tick`](Self::tick) next has work.
    pub fn next_wake(&self) -> Option<Instant> {
        match (self.decision.wake_at, self.fleet.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn refresh(&mut self, now: Instant) {
        self.signal = self.fleet.signal();
        self.stats
            .silent_instances
            .store(self.fleet.silent() as u64, Relaxed);
        self.decision = self.policy.on_signal(&self.signal, now);
        self.apply();
    }

    fn apply(&mut self) {
        let level = self.signal.level;
        let scale = self
            .decision
            .scale
            .clamp(0.0, 1.0)
            .min(self.fleet.cap().unwrap_or(1.0));
        let level_code = match level {
            BackpressureLevel::Ok => 0,
            BackpressureLevel::Soft => 1,
            BackpressureLevel::Hard => 2,
        };
        self.stats.level.store(level_code, Relaxed);
        for p in &self.providers {
            // Providers were checked at construction and are never removed.
            let _ = self.rate.set_global_pressure(p, level);
        }
        if scale == self.applied {
            return;
        }
        for p in &self.providers {
            let _ = self.rate.set_budget_scale(p, scale);
        }
        tracing::info!(
            policy = self.policy.name(),
            %level,
            utilization = self.signal.utilization,
            from = self.applied,
            to = scale,
            "Feedback adjusted the rate scale."
        );
        self.applied = scale;
        self.stats.scale_bits.store(scale.to_bits(), Relaxed);
        self.stats.adjustments.fetch_add(1, Relaxed);
    }

    /// Applies events from `subscription` and runs timers until `shutdown` completes. If the
    /// subscription ends, timers keep running, so silent coordinators still fall back.
    pub async fn run<S: FeedbackSubscription>(
        mut self,
        mut subscription: S,
        shutdown: impl Future<Output = ()>,
    ) -> Self {
        tokio::pin!(shutdown);
        let mut open = true;
        loop {
            let wake = self.next_wake();
            tokio::select! {
                event = subscription.next(), if open => match event {
                    Some(delivery) => {
                        let (event, reply) = delivery.into_parts();
                        reply(self.handle(event));
                    }
                    None => {
                        tracing::warn!("Feedback subscription closed.");
                        open = false;
                    }
                },
                () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => self.tick(),
                () = &mut shutdown => break,
            }
        }
        self
    }
}
