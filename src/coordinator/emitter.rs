//! Turns level changes and heartbeats into numbered feedback events on the bus.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

use super::config::CoordinatorConfig;
use super::fair_rate::FairRate;
use super::queue::LevelChange;
use super::service_rate::{Counters, ServiceRate};
use super::stats::CoordinatorStats;
use crate::bus::FeedbackPublisher;
use crate::clock::WallClock;
use crate::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId};
use crate::fleet::DemandView;

/// The queue as an event reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Now {
    pub(crate) level: BackpressureLevel,
    pub(crate) depth: u64,
    /// The integral of the depth over time so far, row-seconds.
    pub(crate) area: f64,
}

impl Now {
    /// The state a level change reported (its level and depth, in the order they happened).
    fn at(self, change: LevelChange) -> Self {
        Self {
            level: change.level,
            depth: change.depth,
            area: self.area,
        }
    }
}

/// Who is speaking, and how to number what it says.
pub(crate) struct Emitter {
    pub(crate) publisher: Arc<dyn FeedbackPublisher>,
    pub(crate) coordinator_id: CoordinatorId,
    pub(crate) instance_id: InstanceId,
    pub(crate) epoch: u64,
    pub(crate) capacity: u64,
    pub(crate) heartbeat: Option<Duration>,
    pub(crate) wall: WallClock,
    pub(crate) stats: Arc<CoordinatorStats>,
    pub(crate) seq: u64,
    pub(crate) failing: bool,
    pub(crate) service_rate: ServiceRate,
    /// The agents' demands (fed by [`WriteCoordinator::observe_demand`](super::WriteCoordinator::observe_demand)).
    pub(crate) demand: Arc<Mutex<DemandView>>,
    pub(crate) fair: FairRate,
}

impl Emitter {
    /// The emitter of instance `instance_id` of `config`'s coordinator; its epoch is now.
    pub(crate) fn new(
        publisher: Arc<dyn FeedbackPublisher>,
        config: &CoordinatorConfig,
        instance_id: InstanceId,
        wall: WallClock,
        stats: Arc<CoordinatorStats>,
        demand: Arc<Mutex<DemandView>>,
    ) -> Self {
        Self {
            publisher,
            coordinator_id: config.coordinator_id.clone(),
            instance_id,
            epoch: wall.now_us(),
            capacity: config.capacity,
            heartbeat: config.heartbeat_interval(),
            wall,
            stats,
            seq: 0,
            failing: false,
            service_rate: ServiceRate::new(),
            demand,
            fair: FairRate::new(
                config.sojourn_target(),
                config.batch_size,
                config.flush_interval(),
                config.heartbeat_interval(),
            ),
        }
    }

    fn event(&mut self, now: Now, reason: &str) -> FeedbackEvent {
        let Now { level, depth, area } = now;
        self.seq += 1;
        let mut event = FeedbackEvent::new(
            self.coordinator_id.clone(),
            self.instance_id.clone(),
            self.epoch,
            self.seq,
            self.wall.now_ms(),
            level,
            depth,
            self.capacity,
        )
        .with_reason(reason);
        event.heartbeat_ms = self
            .heartbeat
            .map_or(0, |d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
        let now = Instant::now();
        let counters = Counters {
            written: self.stats.written.load(Relaxed),
            idle_us: self.stats.starvation.idle_us(now),
            failures: self.stats.write_failures.load(Relaxed),
        };
        event.service_rate = self.service_rate.observe(now, counters);
        let mut demand = self.demand.lock().unwrap_or_else(|e| e.into_inner());
        event.fair_rates = self.fair.rates(
            now,
            self.service_rate.working(),
            (depth, area),
            &mut demand,
            &self.coordinator_id,
        );
        drop(demand);
        event
    }

    /// Publishes `event`; true if the bus took it.
    async fn send(&mut self, event: FeedbackEvent) -> bool {
        match self.publisher.publish(&event).await {
            Ok(()) => {
                self.stats.events_published.fetch_add(1, Relaxed);
                if std::mem::take(&mut self.failing) {
                    tracing::info!(seq = event.seq, "Feedback publishing recovered.");
                }
                true
            }
            Err(error) => {
                self.stats.publish_errors.fetch_add(1, Relaxed);
                // One warning per outage, not one per event.
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(%error, seq = event.seq, "Feedback publish failed.");
                }
                false
            }
        }
    }

    /// Publishes every level change at once and the current state every heartbeat, until
    /// `stop`; then publishes what is pending and a last `leaving` event. True if the bus took
    /// that last event.
    pub(crate) async fn run(
        mut self,
        mut changes: mpsc::UnboundedReceiver<LevelChange>,
        current: impl Fn() -> Now + Send,
        stop: CancellationToken,
    ) -> bool {
        let mut beat = interval(self.heartbeat.unwrap_or(Duration::from_secs(3600)));
        beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        beat.tick().await; // the first tick is immediate: announce the starting state
        let first = self.event(current(), "start");
        self.send(first).await;
        loop {
            tokio::select! {
                biased;
                change = changes.recv() => match change {
                    Some(c) => {
                        let e = self.event(current().at(c), "level_change");
                        self.send(e).await;
                    }
                    None => break,
                },
                () = stop.cancelled() => break,
                _ = beat.tick(), if self.heartbeat.is_some() => {
                    let e = self.event(current(), "heartbeat");
                    self.send(e).await;
                }
            }
        }
        while let Ok(c) = changes.try_recv() {
            let e = self.event(current().at(c), "level_change");
            self.send(e).await;
        }
        let mut last = self.event(current(), "stopping");
        last.leaving = true;
        self.send(last).await
    }
}
