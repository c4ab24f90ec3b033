//! The v0 JSON body — the predecessor's shape of a feedback event — made into a full event on
//! arrival.

use serde::Deserialize;

use crate::event::{
    BackpressureLevel, CoordinatorId, DecodeError, FeedbackEvent, InstanceId, check_reason,
    coordinator_field,
};

/// Instance id of v0 events that name no `source`.
pub(crate) const DEFAULT_SOURCE: &str = "http";

/// `{coordinator_id, queue_size, capacity, level, ts?, source?, reason?}`; unknown fields are
/// ignored, as for full events.
#[derive(Deserialize)]
struct V0Wire {
    coordinator_id: String,
    queue_size: u64,
    capacity: u64,
    level: String,
    #[serde(default)]
    ts: Option<f64>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// A validated v0 event, waiting for the sequence number (and, without `ts`, the
/// time) the receiver gives it.
///
/// The v0 JSON body has no epoch or sequence number, so the receiver numbers these events in
/// arrival order: a resent event is a new event, and duplicates cannot be detected.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct V0Event {
    coordinator_id: CoordinatorId,
    instance_id: InstanceId,
    level: BackpressureLevel,
    queue_depth: u64,
    capacity: u64,
    timestamp_ms: Option<u64>,
    reason: Option<String>,
}

impl V0Event {
    /// Validates a JSON object as the v0 JSON body.
    pub(crate) fn parse(value: serde_json::Value) -> Result<Self, DecodeError> {
        let w: V0Wire =
            serde_json::from_value(value).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let level: BackpressureLevel = w.level.parse()?;
        let coordinator_id = coordinator_field(w.coordinator_id)?;
        let instance_id = InstanceId::new(w.source.unwrap_or_else(|| DEFAULT_SOURCE.into()))
            .map_err(|source| DecodeError::InvalidId {
                field: "source",
                source,
            })?;
        let timestamp_ms = match w.ts {
            None => None,
            Some(ts) if ts.is_finite() && ts >= 0.0 => Some((ts * 1000.0).round() as u64),
            Some(ts) => {
                return Err(DecodeError::InvalidField {
                    field: "ts",
                    reason: format!("{ts} is not a time in seconds since the Unix epoch"),
                });
            }
        };
        check_reason(w.reason.as_deref())?;
        Ok(Self {
            coordinator_id,
            instance_id,
            level,
            queue_depth: w.queue_size,
            capacity: w.capacity,
            timestamp_ms,
            reason: w.reason,
        })
    }

    /// The full event, epoch 0, numbered `seq`, stamped `now_ms` if it carried no `ts`.
    pub(crate) fn into_event(self, seq: u64, now_ms: u64) -> FeedbackEvent {
        let mut event = FeedbackEvent::new(
            self.coordinator_id,
            self.instance_id,
            0,
            seq,
            self.timestamp_ms.unwrap_or(now_ms),
            self.level,
            self.queue_depth,
            self.capacity,
        );
        event.reason = self.reason;
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v0_body_becomes_a_numbered_event() {
        let v0 = V0Event::parse(json!({
            "coordinator_id": "default", "queue_size": 800, "capacity": 1000,
            "level": "SOFT", "ts": 1_700_000_000.123_4, "source": "store-py", "extra": 1,
        }))
        .unwrap();
        let e = v0.into_event(7, 5);
        assert_eq!(e.level, BackpressureLevel::Soft);
        assert_eq!(e.instance_id.as_str(), "store-py");
        assert_eq!((e.epoch, e.seq), (0, 7));
        assert_eq!(e.timestamp_ms, 1_700_000_000_123);
        assert_eq!((e.queue_depth, e.capacity), (800, 1000));

        let bare = V0Event::parse(json!({
            "coordinator_id": "default", "queue_size": 0, "capacity": 10, "level": "ok",
            "ts": null, "reason": "level_change",
        }))
        .unwrap()
        .into_event(1, 42);
        assert_eq!(bare.instance_id.as_str(), DEFAULT_SOURCE);
        assert_eq!(bare.timestamp_ms, 42);
        assert_eq!(bare.reason.as_deref(), Some("level_change"));
    }

    #[test]
    fn bad_v0_fields_are_typed_errors() {
        let base =
            || json!({"coordinator_id": "default", "queue_size": 1, "capacity": 2, "level": "ok"});
        let with = |key: &str, value: serde_json::Value| {
            let mut v = base();
            v[key] = value;
            V0Event::parse(v)
        };
        assert!(matches!(
            with("level", json!("medium")),
            Err(DecodeError::UnknownLevel(_))
        ));
        assert!(matches!(
            with("coordinator_id", json!("a.b")),
            Err(DecodeError::InvalidId {
                field: "coordinator_id",
                ..
            })
        ));
        assert!(matches!(
            with("source", json!("a b")),
            Err(DecodeError::InvalidId {
                field: "source",
                ..
            })
        ));
        assert!(matches!(
            with("ts", json!(-1.0)),
            Err(DecodeError::InvalidField { field: "ts", .. })
        ));
        assert!(matches!(
            with("reason", json!("x".repeat(300))),
            Err(DecodeError::InvalidField {
                field: "reason",
                ..
            })
        ));
        assert!(matches!(
            with("queue_size", json!(-1)),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            V0Event::parse(json!([1])),
            Err(DecodeError::Malformed(_))
        ));
    }
}
