//! MessagePack (named fields) and JSON encodings of [`FeedbackEvent`], with typed decode errors.

use serde::Deserialize;

use super::{
    BackpressureLevel, CoordinatorId, FairRates, FeedbackEvent, IdError, InstanceId,
    SCHEMA_VERSION, UnknownLevel,
};

/// Longest `reason` accepted, in bytes: reasons are labels, not payloads.
pub const MAX_REASON_LEN: usize = 256;

/// Refuses a rate that is negative or not finite.
pub fn check_rate(field: &'static str, rate: f64) -> Result<(), DecodeError> {
    if rate >= 0.0 && rate.is_finite() {
        Ok(())
    } else {
        Err(DecodeError::InvalidField {
            field,
            reason: format!("{rate} is not a rate (finite, >= 0)"),
        })
    }
}

/// The `coordinator_id` field of an event, validated.
pub fn coordinator_field(raw: String) -> Result<CoordinatorId, DecodeError> {
    CoordinatorId::new(raw).map_err(|source| DecodeError::InvalidId {
        field: "coordinator_id",
        source,
    })
}

/// Refuses a `reason` longer than [`MAX_REASON_LEN`].
pub fn check_reason(reason: Option<&str>) -> Result<(), DecodeError> {
    match reason {
        Some(r) if r.len() > MAX_REASON_LEN => Err(DecodeError::InvalidField {
            field: "reason",
            reason: format!("{} bytes long (at most {MAX_REASON_LEN})", r.len()),
        }),
        _ => Ok(()),
    }
}

/// Deepest MessagePack nesting accepted. An event is a flat map, and rmp-serde's own limit
/// (1024) let an unknown field nested ~900 deep overflow a 2 MiB thread stack in a debug
/// build, which aborts the process (found by replaying the fuzz corpus).
pub(super) const MAX_DEPTH: usize = 32;

/// Why bytes are not a valid feedback event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not MessagePack/JSON, or a required field is missing or has the wrong type.
    #[error("malformed feedback event: {0}")]
    Malformed(String),
    /// A schema major version this reader does not know.
    #[error("unsupported feedback schema version {0} (this reader knows {SCHEMA_VERSION})")]
    UnsupportedVersion(u16),
    /// A level other than `ok`, `soft` or `hard`.
    #[error(transparent)]
    UnknownLevel(#[from] UnknownLevel),
    /// A coordinator or instance id that is not a single subject token.
    #[error("invalid {field}: {source}")]
    InvalidId {
        /// `coordinator_id` or `instance_id`.
        field: &'static str,
        /// What is wrong with it.
        source: IdError,
    },
    /// A field whose value is out of range.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's wire name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The wire shape, with strings where the typed event has validated types, so that each
/// failure becomes a typed error instead of a serde message.
#[derive(Deserialize)]
struct Wire {
    version: u16,
    coordinator_id: String,
    instance_id: String,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    level: String,
    queue_depth: u64,
    capacity: u64,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    heartbeat_ms: u32,
    #[serde(default)]
    leaving: bool,
    #[serde(default)]
    service_rate: Option<f64>,
    #[serde(default)]
    fair_rates: Option<FairRates>,
}

impl TryFrom<Wire> for FeedbackEvent {
    type Error = DecodeError;

    fn try_from(w: Wire) -> Result<Self, DecodeError> {
        if w.version != SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(w.version));
        }
        let level: BackpressureLevel = w.level.parse()?;
        let coordinator_id = coordinator_field(w.coordinator_id)?;
        let instance_id =
            InstanceId::new(w.instance_id).map_err(|source| DecodeError::InvalidId {
                field: "instance_id",
                source,
            })?;
        if w.seq == 0 {
            return Err(DecodeError::InvalidField {
                field: "seq",
                reason: "sequence numbers start at 1".into(),
            });
        }
        check_reason(w.reason.as_deref())?;
        if let Some(rate) = w.service_rate {
            check_rate("service_rate", rate)?;
        }
        if w.fair_rates.is_some_and(|r| !r.is_valid()) {
            return Err(DecodeError::InvalidField {
                field: "fair_rates",
                reason: "every rate must be finite and >= 0".into(),
            });
        }
        Ok(FeedbackEvent {
            version: w.version,
            coordinator_id,
            instance_id,
            epoch: w.epoch,
            seq: w.seq,
            timestamp_ms: w.timestamp_ms,
            level,
            queue_depth: w.queue_depth,
            capacity: w.capacity,
            reason: w.reason,
            heartbeat_ms: w.heartbeat_ms,
            leaving: w.leaving,
            service_rate: w.service_rate,
            fair_rates: w.fair_rates,
        })
    }
}

/// Encodes as a MessagePack map with named fields, so that readers can skip fields they do not
/// know and writers can add fields without breaking them.
pub fn encode(event: &FeedbackEvent) -> Vec<u8> {
    // Serialising a struct of plain fields into a Vec cannot fail.
    rmp_serde::to_vec_named(event).unwrap_or_default()
}

/// Why a positional encoding is refused: a field added later would shift every field after
/// it, so an older reader would misread a newer writer's events.
pub(super) const NAMED_FIELDS_ONLY: &str = "an event is a map with named fields, not an array";

/// Decodes and validates a MessagePack event: a map with named fields (a positional array is
/// refused, although serde could read one). Never panics, whatever the bytes.
pub fn decode(bytes: &[u8]) -> Result<FeedbackEvent, DecodeError> {
    // fixarray, array 16, array 32.
    if matches!(bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd)) {
        return Err(DecodeError::Malformed(NAMED_FIELDS_ONLY.into()));
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    let wire = Wire::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    wire.try_into()
}

/// Encodes as JSON with the same field names.
pub fn encode_json(event: &FeedbackEvent) -> String {
    serde_json::to_string(event).unwrap_or_default()
}

/// Decodes and validates a JSON event with the same field names as the MessagePack form (an
/// object; an array is refused).
pub fn decode_json(bytes: &[u8]) -> Result<FeedbackEvent, DecodeError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(DecodeError::Malformed(NAMED_FIELDS_ONLY.into()));
    }
    let wire: Wire =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    wire.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    fn event() -> FeedbackEvent {
        FeedbackEvent::new(
            CoordinatorId::new("default").unwrap(),
            InstanceId::new("pod-1").unwrap(),
            1_700_000_000_000_000,
            42,
            1_700_000_000_123,
            BackpressureLevel::Hard,
            950,
            1000,
        )
        .with_reason("level_change")
    }

    #[test]
    fn msgpack_and_json_round_trip() {
        let e = event();
        assert_eq!(decode(&encode(&e)), Ok(e.clone()));
        assert_eq!(decode_json(encode_json(&e).as_bytes()), Ok(e));
    }

    #[derive(Serialize)]
    struct Newer<'a> {
        version: u16,
        coordinator_id: &'a str,
        instance_id: &'a str,
        epoch: u64,
        seq: u64,
        timestamp_ms: u64,
        level: &'a str,
        queue_depth: u64,
        capacity: u64,
        budget_rows_per_sec: f64,
    }

    fn newer(version: u16, level: &str, coordinator_id: &str) -> Vec<u8> {
        rmp_serde::to_vec_named(&Newer {
            version,
            coordinator_id,
            instance_id: "pod-1",
            epoch: 1,
            seq: 1,
            timestamp_ms: 5,
            level,
            queue_depth: 1,
            capacity: 2,
            budget_rows_per_sec: 12.5,
        })
        .unwrap()
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let e = decode(&newer(1, "soft", "default")).unwrap();
        assert_eq!(e.level, BackpressureLevel::Soft);
        assert_eq!(e.reason, None);
    }

    #[test]
    fn bad_version_level_and_id_are_typed_errors() {
        assert_eq!(
            decode(&newer(2, "soft", "default")),
            Err(DecodeError::UnsupportedVersion(2))
        );
        assert_eq!(
            decode(&newer(1, "medium", "default")),
            Err(DecodeError::UnknownLevel(UnknownLevel("medium".into())))
        );
        assert!(matches!(
            decode(&newer(1, "ok", "a.b")),
            Err(DecodeError::InvalidId {
                field: "coordinator_id",
                ..
            })
        ));
        assert!(matches!(
            decode(b"\xc1garbage"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(decode(&[]), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn deep_nesting_is_malformed_not_a_stack_overflow() {
        // A valid event plus an unknown field holding arrays nested 5,000 deep.
        let mut bytes = encode(&event());
        bytes[0] += 1; // one more entry in the fixmap
        bytes.extend_from_slice(b"\xa1x");
        bytes.extend(std::iter::repeat_n(0x91, 5_000));
        bytes.push(0xc0);
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn positional_arrays_are_refused_in_both_encodings() {
        let e = event();
        let positional = rmp_serde::to_vec(&e).unwrap();
        assert!(matches!(
            positional.first(),
            Some(0x90..=0x9f | 0xdc | 0xdd)
        ));
        assert_eq!(
            decode(&positional),
            Err(DecodeError::Malformed(NAMED_FIELDS_ONLY.into()))
        );
        let json = serde_json::to_value(&e).unwrap();
        let array: Vec<serde_json::Value> = json.as_object().unwrap().values().cloned().collect();
        let text = serde_json::to_vec(&array).unwrap();
        assert!(matches!(decode_json(&text), Err(DecodeError::Malformed(_))));
        assert_eq!(decode(&encode(&e)), Ok(e));
    }

    #[test]
    fn named_encoding_stays_small() {
        // A typical event must stay well under a NATS frame's noise floor.
        assert!(encode(&event()).len() < 200);
    }
}
