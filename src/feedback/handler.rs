//! `FeedbackHandler`: applies the fleet's feedback to the rate coordinator through a policy.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::Instant;

use super::config::FeedbackConfig;
use super::policy::{Decision, Policy};
use super::stats::HandlerStats;
use crate::bus::FeedbackSubscription;
use crate::clock::WallClock;
use crate::event::{CoordinatorId, FeedbackEvent};
use crate::fleet::{FleetConfig, FleetView, Interest, Observed, Signal};
use crate::rate::{RateCoordinator, RateError};

/// Turns feedback events into budget scales for one or more providers.
///
/// Every transport's events take one path here: the coordinator filter (the [`Interest`] the
/// agent follows), then the fleet view, which orders each instance's events and expires silent
/// ones, then the policy, which maps the merged signal (silence caps included) to a scale the
/// handler applies to every provider it serves. Drive it with [`run`](Self::run), or call
/// [`handle`](Self::handle) and [`tick`](Self::tick) yourself.
pub struct FeedbackHandler {
    rate: RateCoordinator,
    providers: Vec<String>,
    following: Interest,
    fleet: FleetView,
    policy: Box<dyn Policy>,
    wall: WallClock,
    decision: Decision,
    signal: Signal,
    /// Events changed the merge since the policy was last asked.
    unsettled: bool,
    applied: f64,
    stats: Arc<HandlerStats>,
}

impl FeedbackHandler {
    /// A handler for `providers`, which must be registered with `rate`.
    pub fn new(
        rate: RateCoordinator,
        providers: impl IntoIterator<Item = impl Into<String>>,
        mut policy: Box<dyn Policy>,
        fleet: FleetConfig,
    ) -> Result<Self, RateError> {
        let providers: Vec<String> = providers.into_iter().map(Into::into).collect();
        let mut base = 0.0;
        for p in &providers {
            base += rate.snapshot(p)?.base_rate;
        }
        policy.set_base_rate(base);
        let wall = WallClock::new();
        let stats = Arc::new(HandlerStats::default());
        stats.set_scale(1.0);
        Ok(Self {
            rate,
            providers,
            following: Interest::All,
            fleet: FleetView::new(fleet, wall),
            policy,
            wall,
            decision: Decision::hold(1.0),
            signal: Signal::QUIET,
            unsettled: false,
            applied: 1.0,
            stats,
        })
    }

    /// The handler `config` describes for `providers` of `rate`, for an agent that writes to
    /// `writes_to` (whose coordinators it follows unless `feedback.coordinators` says
    /// otherwise), or `None` when feedback is off (`enable_feedback: false` or
    /// `policy: none`); `seed` spreads agents' jitter apart.
    pub fn from_config(
        rate: RateCoordinator,
        providers: impl IntoIterator<Item = impl Into<String>>,
        config: &FeedbackConfig,
        writes_to: &[CoordinatorId],
        seed: u64,
    ) -> Result<Option<Self>, RateError> {
        let Some(policy) = config.build_policy(seed) else {
            return Ok(None);
        };
        let handler = Self::new(rate, providers, policy, config.fleet.clone())?;
        Ok(Some(handler.following(config.interest(writes_to))))
    }

    /// Applies events of the coordinators in `interest` only (default: all); events of others
    /// are counted and answered [`Observed::Unfollowed`], whichever transport brought them.
    pub fn following(mut self, interest: Interest) -> Self {
        self.following = interest;
        self
    }

    /// The coordinators this handler follows.
    pub fn interest(&self) -> &Interest {
        &self.following
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

    /// Takes in one event: orders it, and if it (or an event taken in before it) changed the
    /// merge, asks the policy and applies the answer.
    pub fn handle(&mut self, event: FeedbackEvent) -> Observed {
        let outcome = self.take_in(event);
        if self.unsettled {
            self.refresh(Instant::now());
        }
        outcome
    }

    /// Takes in one event of a batch without asking the policy yet: the next
    /// [`handle`](Self::handle) (or timer) settles the whole batch at once.
    pub fn take_in(&mut self, event: FeedbackEvent) -> Observed {
        let now = Instant::now();
        self.stats.received.fetch_add(1, Relaxed);
        let sent_ms = event.timestamp_ms;
        let outcome = if self.following.wants(&event.coordinator_id) {
            self.fleet.observe(event, now)
        } else {
            Observed::Unfollowed
        };
        self.stats.count(outcome);
        match outcome {
            Observed::Applied | Observed::Left => {
                let age = self.wall.now_ms().saturating_sub(sent_ms);
                self.stats.latency.record(Duration::from_millis(age));
                self.unsettled = true;
            }
            Observed::Duplicate
            | Observed::OutOfOrder
            | Observed::TooOld
            | Observed::Unfollowed => {
                tracing::debug!(outcome = outcome.as_str(), "Feedback event ignored.");
            }
        }
        outcome
    }

    /// Runs timers that are due: instance expiry and the policy's dwell/ramp steps.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if self.fleet.expire(now) || self.unsettled {
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
        self.unsettled = false;
        self.signal = self.fleet.signal();
        self.stats
            .silent_instances
            .store(self.fleet.silent() as u64, Relaxed);
        self.decision = self.policy.on_signal(&self.signal, now);
        self.apply();
    }

    fn apply(&mut self) {
        let level = self.signal.level;
        // The silence cap is in the signal: the policy tightens to it and ramps back from it.
        let scale = self.decision.scale.clamp(0.0, 1.0);
        self.stats.level.store(u64::from(level.code()), Relaxed);
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
        self.stats.set_scale(scale);
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
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut open = true;
        loop {
            let wake = self.next_wake();
            if let Some(at) = wake.filter(|at| *at != timer.deadline()) {
                // One timer moved in place: a new one per event would take the timer driver's
                // lock to register and again to drop it, where moving a deadline later does not.
                timer.as_mut().reset(at);
            }
            tokio::select! {
                event = subscription.next(), if open => match event {
                    Some(delivery) => {
                        let more = delivery.more;
                        let (event, reply) = delivery.into_parts();
                        reply(if more { self.take_in(event) } else { self.handle(event) });
                    }
                    None => {
                        tracing::warn!("Feedback subscription closed.");
                        open = false;
                    }
                },
                () = &mut timer, if wake.is_some() => self.tick(),
                () = &mut shutdown => break,
            }
        }
        self
    }
}
