//! Counters of what happened to every accepted item, so none is lost silently.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::histogram::Histogram;

use super::sink::DeadLetterReason;
pub(crate) use super::starvation::Starvation;

/// Why an accepted item was dropped instead of written or dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// `drop_oldest` made room for a newer item.
    Overflow,
    /// The dead-letter sink failed too.
    DeadLetterFailed,
    /// A worker did not finish its write within the stop timeout; the outcome is unknown.
    AbandonedInFlight,
}

impl DropReason {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overflow => "overflow",
            Self::DeadLetterFailed => "dead_letter_failed",
            Self::AbandonedInFlight => "abandoned_in_flight",
        }
    }
}

/// Live counters; read a consistent-enough copy with [`CoordinatorStats::snapshot`].
#[derive(Debug, Default)]
pub(crate) struct CoordinatorStats {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) written: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) write_failures: AtomicU64,
    pub(crate) dropped_overflow: AtomicU64,
    pub(crate) dropped_dead_letter_failed: AtomicU64,
    pub(crate) dropped_abandoned: AtomicU64,
    pub(crate) dead_retries: AtomicU64,
    pub(crate) dead_rejected: AtomicU64,
    pub(crate) dead_shutdown: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) level_changes: AtomicU64,
    pub(crate) events_published: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    /// Time all workers spent waiting for items, an idle stretch going on included.
    pub(crate) starvation: Starvation,
    /// Fine: the simulator's figures compare queue waits within a few per cent.
    pub(crate) queue_wait: FineHistogram,
    pub(crate) batch_latency: Histogram,
}

/// A [`Histogram::fine`] that a `Default` struct can hold.
#[derive(Debug)]
pub(crate) struct FineHistogram(Histogram);

impl Default for FineHistogram {
    fn default() -> Self {
        Self(Histogram::fine())
    }
}

impl std::ops::Deref for FineHistogram {
    type Target = Histogram;

    fn deref(&self) -> &Histogram {
        &self.0
    }
}

impl CoordinatorStats {
    pub(crate) fn dropped(&self, reason: DropReason, n: u64) {
        match reason {
            DropReason::Overflow => &self.dropped_overflow,
            DropReason::DeadLetterFailed => &self.dropped_dead_letter_failed,
            DropReason::AbandonedInFlight => &self.dropped_abandoned,
        }
        .fetch_add(n, Relaxed);
    }

    pub(crate) fn dead_lettered(&self, reason: DeadLetterReason, n: u64) {
        match reason {
            DeadLetterReason::RetriesExhausted => &self.dead_retries,
            DeadLetterReason::Rejected => &self.dead_rejected,
            DeadLetterReason::Shutdown => &self.dead_shutdown,
        }
        .fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        StatsSnapshot {
            accepted: g(&self.accepted),
            refused_full: g(&self.refused_full),
            written: g(&self.written),
            batches: g(&self.batches),
            write_failures: g(&self.write_failures),
            dropped_overflow: g(&self.dropped_overflow),
            dropped_dead_letter_failed: g(&self.dropped_dead_letter_failed),
            dropped_abandoned: g(&self.dropped_abandoned),
            dead_lettered_retries_exhausted: g(&self.dead_retries),
            dead_lettered_rejected: g(&self.dead_rejected),
            dead_lettered_shutdown: g(&self.dead_shutdown),
            in_flight: g(&self.in_flight),
            level_changes: g(&self.level_changes),
            events_published: g(&self.events_published),
            publish_errors: g(&self.publish_errors),
        }
    }
}

/// A copy of a coordinator's counters.
///
/// Every accepted item ends in exactly one of: written, dead-lettered (by reason), dropped (by
/// reason), or still queued / in flight: see [`StatsSnapshot::unaccounted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct StatsSnapshot {
    /// Items taken into the queue.
    pub accepted: u64,
    /// Items refused because the queue was full (`error` strategy); the caller kept them.
    pub refused_full: u64,
    /// Items the sink committed.
    pub written: u64,
    /// Batches the sink committed.
    pub batches: u64,
    /// Failed write attempts (each retry counts).
    pub write_failures: u64,
    /// Items dropped by `drop_oldest`.
    pub dropped_overflow: u64,
    /// Items lost because the dead-letter sink failed.
    pub dropped_dead_letter_failed: u64,
    /// Items whose write was still running when stop gave up on it.
    pub dropped_abandoned: u64,
    /// Items dead-lettered after the last retry.
    pub dead_lettered_retries_exhausted: u64,
    /// Items dead-lettered because the sink refused them permanently.
    pub dead_lettered_rejected: u64,
    /// Items dead-lettered at stop.
    pub dead_lettered_shutdown: u64,
    /// Items taken by workers and not yet written or dead-lettered.
    pub in_flight: u64,
    /// Level transitions.
    pub level_changes: u64,
    /// Feedback events sent.
    pub events_published: u64,
    /// Feedback events the bus refused.
    pub publish_errors: u64,
}

impl StatsSnapshot {
    /// All dead-lettered items.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered_retries_exhausted
            + self.dead_lettered_rejected
            + self.dead_lettered_shutdown
    }

    /// All dropped items.
    pub fn dropped(&self) -> u64 {
        self.dropped_overflow + self.dropped_dead_letter_failed + self.dropped_abandoned
    }

    /// Accepted items not yet written, dead-lettered or dropped (queued or in flight).
    pub fn unaccounted(&self) -> u64 {
        self.accepted
            .saturating_sub(self.written + self.dead_lettered() + self.dropped())
    }
}
