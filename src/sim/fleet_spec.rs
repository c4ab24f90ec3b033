//! A scenario's slow loop: store replicas sharing one coordinator's stream, scaled by a model
//! of KEDA and the HPA reading each ScaledObject compared, and the ranges the fleet's figures
//! must fall in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::expect::Range;
use crate::fleet::ScalingConfig;
use crate::invalid::{InvalidSetting, at_least_one};

/// How the store fleet is scaled (`autoscale:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscaleSpec {
    /// Replicas at the start.
    pub initial_replicas: usize,
    /// Time from a scale-up to the new pod pulling rows, seconds.
    pub pod_start_s: f64,
    /// Rows per message, to turn rows into the messages KEDA's lag trigger counts.
    pub rows_per_message: u64,
    /// Each replica's longest pause between pulls that found the stream empty (the store's
    /// `store.idle_poll_ms`, default 50).
    pub idle_poll_ms: u64,
    /// How the bridge computes the desired replica count.
    pub scaling: ScalingConfig,
    /// The ScaledObjects compared, by name (paths relative to the crate root).
    pub trigger_sets: BTreeMap<String, PathBuf>,
    /// Expected ranges per trigger set.
    pub expect: BTreeMap<String, FleetExpect>,
}

impl Default for AutoscaleSpec {
    fn default() -> Self {
        Self {
            initial_replicas: 1,
            pod_start_s: 20.0,
            rows_per_message: 100,
            idle_poll_ms: 50,
            scaling: ScalingConfig::default(),
            trigger_sets: BTreeMap::from([
                (
                    "demand".into(),
                    PathBuf::from("deploy/keda/scaledobject-coordinator.yaml"),
                ),
                (
                    "queue-depth".into(),
                    PathBuf::from("tests/data/keda/scaledobject-queue-depth.yaml"),
                ),
            ]),
            expect: BTreeMap::new(),
        }
    }
}

impl AutoscaleSpec {
    /// Checks ranges, naming the offending key.
    pub(super) fn check(&self) -> Result<(), InvalidSetting> {
        at_least_one(&[
            ("initial_replicas", self.initial_replicas as u64),
            ("rows_per_message", self.rows_per_message),
            ("idle_poll_ms", self.idle_poll_ms),
        ])?;
        if !(self.pod_start_s >= 0.0 && self.pod_start_s.is_finite()) {
            return Err(InvalidSetting::new("pod_start_s", "must be >= 0"));
        }
        if self.trigger_sets.is_empty() {
            return Err(InvalidSetting::new(
                "trigger_sets",
                "must name at least one ScaledObject",
            ));
        }
        if let Some(name) = self
            .expect
            .keys()
            .find(|k| !self.trigger_sets.contains_key(*k))
        {
            return Err(InvalidSetting::new(
                "expect",
                format!("{name:?} is not a trigger set"),
            ));
        }
        self.scaling.validate().map_err(|e| e.under("scaling"))
    }
}

/// Ranges for one trigger set's fleet figures; absent keys are not checked.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetExpect {
    /// Longest time from a rise in demand until the needed replicas run, seconds.
    pub reach_max_s: Option<Range>,
    /// Replica direction changes per hour that move away from the needed count.
    pub reversals_per_hour: Option<Range>,
    /// Replica-seconds over the ideal (the needed count at every moment, without delay).
    pub replica_seconds_ratio: Option<Range>,
    /// The agents' mean scale while the needed replicas run.
    pub mean_scale_scaled: Option<Range>,
    /// Seconds from the last fall in the needed count to the first replica removed (at
    /// least the scale-down stabilization window).
    pub first_down_s: Option<Range>,
    /// Seconds from the last fall in the needed count until the replicas equal it.
    pub down_settle_s: Option<Range>,
    /// Rows dropped.
    pub drops: Option<Range>,
    /// 99th percentile queue wait, milliseconds (worst replica).
    pub p99_wait_ms: Option<Range>,
    /// The agents' mean scale over the run.
    pub mean_scale: Option<Range>,
}
