//! The feedback event: one coordinator instance's backpressure state at one moment.

use serde::Serialize;

use super::{BackpressureLevel, CoordinatorId, FairRates, InstanceId};

/// The wire schema's major version. Adding a field does not bump it (readers ignore unknown
/// fields); removing or retyping one does, and readers reject versions they do not know.
pub const SCHEMA_VERSION: u16 = 1;

/// One coordinator instance's backpressure state, published on every level change and as a
/// heartbeat.
///
/// `(epoch, seq)` orders the events of one instance: `epoch` is fixed when the instance starts
/// (microseconds since the Unix epoch, so a restarted pod that keeps its instance id still sorts
/// after its previous life) and `seq` increases by one per event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackEvent {
    /// Wire schema major version ([`SCHEMA_VERSION`]).
    pub version: u16,
    /// The logical store this instance belongs to.
    pub coordinator_id: CoordinatorId,
    /// The publishing instance (pod).
    pub instance_id: InstanceId,
    /// Start time of this incarnation of the instance, microseconds since the Unix epoch.
    pub epoch: u64,
    /// Per-incarnation sequence number, starting at 1.
    pub seq: u64,
    /// When the event was made, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The backpressure level.
    pub level: BackpressureLevel,
    /// Items waiting (the in-memory queue plus any external backlog the store counts).
    pub queue_depth: u64,
    /// The queue's capacity.
    pub capacity: u64,
    /// Why the event was sent (`level_change`, `heartbeat`, `stopping`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The publisher's heartbeat interval in milliseconds (0 if it sends none), so receivers
    /// know when an instance has gone silent without sharing configuration.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub heartbeat_ms: u32,
    /// Set on the last event of an instance that is shutting down cleanly: forget it at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
    /// Rows per second this instance writes while it has work (its service rate, measured
    /// only while its workers never wait for items; held while it is idle). Absent until
    /// first measured. Added in schema 1 as an optional field: older readers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_rate: Option<f64>,
    /// The explicit fair rates this instance grants, per unit of weight and class (the
    /// `fair_share` policy's input). Absent while the store has no capacity estimate or fair
    /// shares are off. Added in schema 1 as an optional field: older readers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fair_rates: Option<FairRates>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

impl FeedbackEvent {
    /// A current-version event with no reason, heartbeat or leaving flag.
    #[allow(clippy::too_many_arguments)] // mirrors the wire fields one to one
    pub fn new(
        coordinator_id: CoordinatorId,
        instance_id: InstanceId,
        epoch: u64,
        seq: u64,
        timestamp_ms: u64,
        level: BackpressureLevel,
        queue_depth: u64,
        capacity: u64,
    ) -> Self {
        Self {
            version: SCHEMA_VERSION,
            coordinator_id,
            instance_id,
            epoch,
            seq,
            timestamp_ms,
            level,
            queue_depth,
            capacity,
            reason: None,
            heartbeat_ms: 0,
            leaving: false,
            service_rate: None,
            fair_rates: None,
        }
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Queue depth as a fraction of capacity (may exceed 1.0 when an external backlog is
    /// counted; 1.0 for a non-empty queue of capacity 0).
    pub fn utilization(&self) -> f64 {
        match (self.queue_depth, self.capacity) {
            (0, _) => 0.0,
            (_, 0) => 1.0,
            (depth, cap) => depth as f64 / cap as f64,
        }
    }

    /// The ordering key of this instance's events.
    pub fn order_key(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(depth: u64, capacity: u64) -> FeedbackEvent {
        FeedbackEvent::new(
            CoordinatorId::new("default").unwrap(),
            InstanceId::new("pod-1").unwrap(),
            1,
            1,
            0,
            BackpressureLevel::Soft,
            depth,
            capacity,
        )
    }

    #[test]
    fn utilization_is_depth_over_capacity() {
        assert_eq!(sample(800, 1000).utilization(), 0.8);
        assert_eq!(sample(0, 0).utilization(), 0.0);
        assert_eq!(sample(5, 0).utilization(), 1.0);
        assert_eq!(sample(1500, 1000).utilization(), 1.5);
    }
}
