//! The bridge's settings (`bridge:`) and everything it needs to start.

use serde::Deserialize;

use crate::bus::nats::NatsOptions;
use crate::event::CoordinatorId;
use crate::fleet::{FleetConfig, ScalingConfig, bridge_defaults};
use crate::invalid::InvalidSetting;
use crate::metrics::MetricsConfig;

/// Settings of the bridge (`bridge:`, `BACKFLOW_BRIDGE__<KEY>` in the environment).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Coordinators to follow (empty: every coordinator on the bus).
    pub coordinators: Vec<CoordinatorId>,
    /// How the fleet view orders, ages and expires events: the same keys as
    /// `feedback.fleet`, with the bridge's defaults ([`FleetConfig::bridge`]): a silent
    /// instance counts with its last state until `forget_after_ms` (10 s), so a pod that died
    /// under pressure keeps asking for capacity that long.
    #[serde(deserialize_with = "bridge_defaults")]
    pub fleet: FleetConfig,
    /// How often every coordinator's state is republished on
    /// `<prefix>.metrics.<coordinator_id>`, milliseconds (0: only on level changes).
    pub publish_interval_ms: u64,
    /// How often each coordinator's write-consumer lag is read from JetStream, milliseconds
    /// (0: never; `coordinator_backlog` then falls back to the reported depths).
    pub lag_poll_interval_ms: u64,
    /// How `coordinator_desired_replicas` is computed from the agents' demand.
    pub scaling: ScalingConfig,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            coordinators: Vec::new(),
            fleet: FleetConfig::bridge(),
            publish_interval_ms: 1_000,
            lag_poll_interval_ms: 2_000,
            scaling: ScalingConfig::default(),
        }
    }
}

impl BridgeConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.fleet.validate().map_err(|e| e.under("fleet"))?;
        self.scaling.validate().map_err(|e| e.under("scaling"))
    }
}

/// Everything a bridge needs to start: its own section and the shared ones it reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BridgeSetup {
    /// `bridge:`.
    pub bridge: BridgeConfig,
    /// `nats:`: the connection and subject prefix.
    pub nats: NatsOptions,
    /// `metrics:`: where `/metrics` and the JSON API are served.
    pub metrics: MetricsConfig,
}

impl BridgeSetup {
    /// Checks every section, naming the offending key in full.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.bridge.validate().map_err(|e| e.under("bridge"))?;
        self.nats.validate().map_err(|e| e.under("nats"))
    }
}
