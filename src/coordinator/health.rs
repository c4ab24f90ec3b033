//! `Health`: a point-in-time view of a write coordinator, for probes, dashboards and the
//! metrics it reports.

use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::handle::WriteCoordinator;
use super::sink::DeadLetterReason;
use super::stats::{DropReason, StatsSnapshot};
use crate::breaker::BreakerState;
use crate::event::{BackpressureLevel, CoordinatorId, InstanceId};
use crate::telemetry::{self as t, Probe, Readings};

/// A point-in-time view of a coordinator for probes and dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The logical store.
    pub coordinator_id: CoordinatorId,
    /// This instance.
    pub instance_id: InstanceId,
    /// Current level.
    pub level: BackpressureLevel,
    /// Depth the level is computed from (queued + external backlog).
    pub depth: u64,
    /// Items in the in-memory queue.
    pub queued: u64,
    /// Backlog counted outside the queue.
    pub external_backlog: u64,
    /// Queue capacity.
    pub capacity: u64,
    /// Sink circuit breaker.
    pub breaker: BreakerState,
    /// Workers still running.
    pub workers_running: usize,
    /// Whether submits are accepted.
    pub accepting: bool,
    /// Counters.
    pub stats: StatsSnapshot,
}

impl Health {
    /// Accepting, workers alive, and the sink's breaker not open.
    pub fn is_healthy(&self) -> bool {
        self.accepting && self.workers_running > 0 && self.breaker != BreakerState::Open
    }
}

impl<T: Send + Sync + 'static> WriteCoordinator<T> {
    /// A point-in-time view for health probes.
    pub fn health(&self) -> Health {
        let shared = &self.inner.shared;
        let q = shared.queue.snapshot();
        let breaker = shared
            .breaker
            .lock()
            .map_or(BreakerState::Closed, |b| b.state(Instant::now()));
        Health {
            coordinator_id: self.inner.coordinator_id.clone(),
            instance_id: self.inner.instance_id.clone(),
            level: q.level,
            depth: q.depth,
            queued: q.queued,
            external_backlog: q.external,
            capacity: self.inner.capacity,
            breaker,
            workers_running: shared.workers_running.load(Ordering::Acquire),
            accepting: !q.closed,
            stats: shared.stats.snapshot(),
        }
    }
}

impl<T: Send + Sync + 'static> Probe for WriteCoordinator<T> {
    fn claims(&self) -> Vec<String> {
        vec![format!("coordinator {}", self.coordinator_id())]
    }

    fn read(&self, out: &mut Readings) {
        let h = self.health();
        let id = h.coordinator_id.as_str();
        let label = [("coordinator_id", id)];
        let s = &h.stats;
        for (metric, value) in [
            (&t::QUEUE_DEPTH, h.depth),
            (
                &t::BACKPRESSURE_OK,
                u64::from(h.level == BackpressureLevel::Ok),
            ),
            (
                &t::BACKPRESSURE_SOFT,
                u64::from(h.level == BackpressureLevel::Soft),
            ),
            (
                &t::BACKPRESSURE_HARD,
                u64::from(h.level == BackpressureLevel::Hard),
            ),
            (&t::STORE_QUEUE_CAPACITY, h.capacity),
            (&t::STORE_QUEUED_ITEMS, h.queued),
            (&t::STORE_EXTERNAL_BACKLOG, h.external_backlog),
            (&t::STORE_IN_FLIGHT_ITEMS, s.in_flight),
            (&t::STORE_WORKERS_RUNNING, h.workers_running as u64),
            (&t::STORE_BREAKER_STATE, h.breaker.as_gauge()),
            (&t::STORE_ITEMS_SUBMITTED_TOTAL, s.accepted),
            (&t::STORE_ITEMS_REFUSED_TOTAL, s.refused_full),
            (&t::STORE_ITEMS_WRITTEN_TOTAL, s.written),
            (&t::STORE_BATCHES_WRITTEN_TOTAL, s.batches),
            (&t::STORE_WRITE_FAILURES_TOTAL, s.write_failures),
            (&t::STORE_LEVEL_CHANGES_TOTAL, s.level_changes),
            (&t::STORE_FEEDBACK_PUBLISHED_TOTAL, s.events_published),
            (&t::STORE_FEEDBACK_PUBLISH_ERRORS_TOTAL, s.publish_errors),
        ] {
            out.set(metric, &label, value as f64);
        }
        for (reason, n) in [
            (DropReason::Overflow, s.dropped_overflow),
            (DropReason::DeadLetterFailed, s.dropped_dead_letter_failed),
            (DropReason::AbandonedInFlight, s.dropped_abandoned),
        ] {
            let labels = [("coordinator_id", id), ("reason", reason.as_str())];
            out.set(&t::STORE_ITEMS_DROPPED_TOTAL, &labels, n as f64);
        }
        for (reason, n) in [
            (
                DeadLetterReason::RetriesExhausted,
                s.dead_lettered_retries_exhausted,
            ),
            (DeadLetterReason::Rejected, s.dead_lettered_rejected),
            (DeadLetterReason::Shutdown, s.dead_lettered_shutdown),
        ] {
            let labels = [("coordinator_id", id), ("reason", reason.as_str())];
            out.set(&t::STORE_ITEMS_DEAD_LETTERED_TOTAL, &labels, n as f64);
        }
        out.histogram(&t::BATCH_WRITE_SECONDS, &label, self.batch_latency());
        out.histogram(&t::QUEUE_WAIT_SECONDS, &label, self.queue_wait());
    }
}
