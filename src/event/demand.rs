//! The demand event an agent publishes per coordinator it writes to: what its sources offered
//! before throttling and what it was granted, so that the slow loop sees demand the fast loop
//! holds back.

use serde::{Deserialize, Serialize};

use super::codec::{MAX_DEPTH, NAMED_FIELDS_ONLY, check_rate, coordinator_field};
use super::{CoordinatorId, DecodeError, InstanceId};

/// The demand schema's major version (the same rules as [`super::SCHEMA_VERSION`]).
pub const DEMAND_SCHEMA_VERSION: u16 = 1;

/// Longest `class` accepted, in bytes.
const MAX_CLASS_LEN: usize = 32;

/// One agent's demand on one coordinator, published every heartbeat and when it stops.
///
/// `(epoch, seq)` orders one agent's events, as for feedback events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemandEvent {
    /// Schema major version ([`DEMAND_SCHEMA_VERSION`]).
    pub version: u16,
    /// The coordinator the agent writes to.
    pub coordinator_id: CoordinatorId,
    /// The agent (its name).
    pub agent_id: InstanceId,
    /// Start time of this incarnation of the agent, microseconds since the Unix epoch.
    pub epoch: u64,
    /// Per-incarnation sequence number, starting at 1.
    pub seq: u64,
    /// When the event was made, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Rows per second the agent's sources offered before any throttling (smoothed).
    pub offered_per_sec: f64,
    /// Rows per second the agent was granted (smoothed).
    pub granted_per_sec: f64,
    /// The agent's share weight (reserved for fair shares; 1 by default).
    pub weight: f64,
    /// The agent's priority class (reserved for fair shares).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The publisher's heartbeat interval in milliseconds: a demand not refreshed within a
    /// few heartbeats has expired.
    pub heartbeat_ms: u32,
    /// Set on the last event of an agent that is stopping: its demand is gone at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leaving: bool,
}

impl DemandEvent {
    /// Event `seq` (epoch 1) of `agent_id`'s demand on `coordinator_id`: the current schema,
    /// weight 1, no class, a 1 s heartbeat, no timestamp, not leaving. Senders set the rest
    /// with struct update syntax.
    pub fn new(
        coordinator_id: CoordinatorId,
        agent_id: InstanceId,
        seq: u64,
        offered_per_sec: f64,
        granted_per_sec: f64,
    ) -> Self {
        Self {
            version: DEMAND_SCHEMA_VERSION,
            coordinator_id,
            agent_id,
            epoch: 1,
            seq,
            timestamp_ms: 0,
            offered_per_sec,
            granted_per_sec,
            weight: 1.0,
            class: None,
            heartbeat_ms: 1_000,
            leaving: false,
        }
    }

    /// The ordering key of this agent's events.
    pub fn order_key(&self) -> (u64, u64) {
        (self.epoch, self.seq)
    }

    /// Demand the agent was not granted (offered − granted, never negative).
    pub fn unserved_per_sec(&self) -> f64 {
        (self.offered_per_sec - self.granted_per_sec).max(0.0)
    }
}

#[derive(Deserialize)]
struct Wire {
    version: u16,
    coordinator_id: String,
    agent_id: String,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    offered_per_sec: f64,
    granted_per_sec: f64,
    #[serde(default = "one")]
    weight: f64,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    heartbeat_ms: u32,
    #[serde(default)]
    leaving: bool,
}

fn one() -> f64 {
    1.0
}

impl TryFrom<Wire> for DemandEvent {
    type Error = DecodeError;

    fn try_from(w: Wire) -> Result<Self, DecodeError> {
        if w.version != DEMAND_SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion(w.version));
        }
        let coordinator_id = coordinator_field(w.coordinator_id)?;
        let agent_id = InstanceId::new(w.agent_id).map_err(|source| DecodeError::InvalidId {
            field: "agent_id",
            source,
        })?;
        check_rate("offered_per_sec", w.offered_per_sec)?;
        check_rate("granted_per_sec", w.granted_per_sec)?;
        if !(w.weight > 0.0 && w.weight.is_finite()) {
            return Err(DecodeError::InvalidField {
                field: "weight",
                reason: format!("{} is not a weight (finite, > 0)", w.weight),
            });
        }
        if w.class.as_ref().is_some_and(|c| {
            c.is_empty() || c.len() > MAX_CLASS_LEN || !c.chars().all(|ch| ch.is_ascii_graphic())
        }) {
            return Err(DecodeError::InvalidField {
                field: "class",
                reason: format!("1..={MAX_CLASS_LEN} printable ASCII characters"),
            });
        }
        if w.seq == 0 {
            return Err(DecodeError::InvalidField {
                field: "seq",
                reason: "sequence numbers start at 1".into(),
            });
        }
        Ok(Self {
            version: w.version,
            coordinator_id,
            agent_id,
            epoch: w.epoch,
            seq: w.seq,
            timestamp_ms: w.timestamp_ms,
            offered_per_sec: w.offered_per_sec,
            granted_per_sec: w.granted_per_sec,
            weight: w.weight,
            class: w.class,
            heartbeat_ms: w.heartbeat_ms,
            leaving: w.leaving,
        })
    }
}

/// Encodes as a MessagePack map with named fields.
pub fn encode_demand(event: &DemandEvent) -> Vec<u8> {
    // Serialising a struct of plain fields into a Vec cannot fail.
    rmp_serde::to_vec_named(event).unwrap_or_default()
}

/// Decodes and validates a MessagePack demand event (a map with named fields). Never panics.
pub fn decode_demand(bytes: &[u8]) -> Result<DemandEvent, DecodeError> {
    if matches!(bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd)) {
        return Err(DecodeError::Malformed(NAMED_FIELDS_ONLY.into()));
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    de.set_max_depth(MAX_DEPTH);
    let wire = Wire::deserialize(&mut de).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    wire.try_into()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn demand(offered: f64, granted: f64) -> DemandEvent {
        DemandEvent {
            timestamp_ms: 1_000,
            ..DemandEvent::new(
                CoordinatorId::new("default").unwrap(),
                InstanceId::new("agent-1").unwrap(),
                1,
                offered,
                granted,
            )
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_rates() {
        let e = demand(500.0, 200.0);
        assert_eq!(decode_demand(&encode_demand(&e)), Ok(e.clone()));
        assert_eq!(e.unserved_per_sec(), 300.0);
        let bad = DemandEvent {
            offered_per_sec: f64::NAN,
            ..e.clone()
        };
        assert!(matches!(
            decode_demand(&encode_demand(&bad)),
            Err(DecodeError::InvalidField {
                field: "offered_per_sec",
                ..
            })
        ));
        let classed = DemandEvent {
            class: Some("critical".into()),
            weight: 3.0,
            ..e
        };
        assert_eq!(decode_demand(&encode_demand(&classed)), Ok(classed));
        assert!(decode_demand(&rmp_serde::to_vec(&demand(1.0, 1.0)).unwrap()).is_err());
    }
}
