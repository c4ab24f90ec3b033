//! A KEDA `ScaledObject` read from YAML into typed settings, with KEDA's defaults filled in.
//!
//! Only what changes a scaling decision is kept; every value is checked the way KEDA's CRD
//! and the HPA's API validation check it, and an error names the offending key
//! (`spec.triggers[1].metadata.threshold`).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::behavior_spec::{Behavior, RawBehavior};
use super::trigger::{RawTrigger, Trigger};
use crate::invalid::InvalidSetting;

/// KEDA's `pollingInterval` when the object sets none, in seconds.
pub const DEFAULT_POLLING_INTERVAL_S: u32 = 30;
/// KEDA's `cooldownPeriod` when the object sets none, in seconds.
pub const DEFAULT_COOLDOWN_PERIOD_S: u32 = 300;
/// KEDA's `maxReplicaCount` when the object sets none.
pub const DEFAULT_MAX_REPLICA_COUNT: u32 = 100;

/// A `ScaledObject`'s scaling settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaledObject {
    /// `metadata.name` (empty when unset).
    pub name: String,
    /// `minReplicaCount` (KEDA's default 0: scale to zero when every trigger is inactive).
    pub min_replica_count: u32,
    /// `maxReplicaCount` (default 100).
    pub max_replica_count: u32,
    /// `pollingInterval`: how often KEDA's own loop reads every trigger (default 30 s).
    pub polling_interval_s: u32,
    /// `cooldownPeriod`: how long every trigger must stay inactive before KEDA scales to zero
    /// (default 300 s; only with `minReplicaCount: 0`).
    pub cooldown_period_s: u32,
    /// `initialCooldownPeriod` (default 0 s).
    pub initial_cooldown_period_s: u32,
    /// `fallback`, when set.
    pub fallback: Option<Fallback>,
    /// `advanced.horizontalPodAutoscalerConfig.behavior`, with Kubernetes' defaults filled
    /// in. `None` when the object sets no behavior: KEDA then creates the HPA without one,
    /// and the HPA controller uses its older rules (see [`Behavior`]).
    pub behavior: Option<Behavior>,
    /// `triggers`, in order.
    pub triggers: Vec<Trigger>,
    /// `idleReplicaCount`, which the model does not cover.
    pub idle_replica_count: Option<u32>,
    /// Whether `advanced.scalingModifiers` is set, which the model does not cover.
    pub scaling_modifiers: bool,
}

/// `spec.fallback`: what KEDA reports for a trigger once it has failed too often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    /// `failureThreshold`: KEDA falls back once a trigger's consecutive failures *exceed* it.
    pub failure_threshold: u32,
    /// `replicas`.
    pub replicas: u32,
    /// `behavior` (KEDA 2.17 and later; `static` before and by default).
    pub behavior: FallbackBehavior,
}

/// `spec.fallback.behavior`: how the fallback count relates to the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackBehavior {
    /// `static`: `replicas`.
    Static,
    /// `currentReplicas`: keep the current count.
    CurrentReplicas,
    /// `currentReplicasIfHigher`: the current count if higher, else `replicas`.
    CurrentReplicasIfHigher,
    /// `currentReplicasIfLower`: the current count if lower, else `replicas`.
    CurrentReplicasIfLower,
    /// `scalingModifiers` (KEDA 2.20): handled by a formula, which the model does not cover.
    ScalingModifiers,
}

impl FallbackBehavior {
    fn parse(s: &str) -> Result<Self, InvalidSetting> {
        Ok(match s {
            "static" => Self::Static,
            "currentReplicas" => Self::CurrentReplicas,
            "currentReplicasIfHigher" => Self::CurrentReplicasIfHigher,
            "currentReplicasIfLower" => Self::CurrentReplicasIfLower,
            "scalingModifiers" => Self::ScalingModifiers,
            other => {
                return Err(InvalidSetting::new(
                    "behavior",
                    format!(
                        "{other:?} is not one of static, currentReplicas, currentReplicasIfHigher, \
                         currentReplicasIfLower, scalingModifiers"
                    ),
                ));
            }
        })
    }

    /// The replica count KEDA's fallback asks for, given the target's `current` count.
    pub fn replicas(self, fallback_replicas: u32, current: u32) -> u32 {
        match self {
            Self::Static | Self::ScalingModifiers => fallback_replicas,
            Self::CurrentReplicas => current,
            Self::CurrentReplicasIfHigher => current.max(fallback_replicas),
            Self::CurrentReplicasIfLower => current.min(fallback_replicas),
        }
    }
}

/// Why a ScaledObject could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScaledObjectError {
    /// The YAML is malformed or a field has the wrong type.
    #[error("cannot read the ScaledObject at {key}")]
    Yaml {
        /// Where (`spec.fallback.replicas`, or `.` for the document itself).
        key: String,
        /// The parser's complaint.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// No document of kind `ScaledObject`.
    #[error("no ScaledObject in the YAML (documents of kind: {found})")]
    NotFound {
        /// The kinds found, comma-separated.
        found: String,
    },
    /// A value out of range.
    #[error("invalid ScaledObject")]
    Invalid(#[from] InvalidSetting),
}

#[derive(Deserialize)]
struct RawDocument {
    kind: Option<String>,
    #[serde(default)]
    metadata: RawMetadata,
    spec: Option<RawSpec>,
}

#[derive(Deserialize, Default)]
struct RawMetadata {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    min_replica_count: Option<u32>,
    max_replica_count: Option<u32>,
    polling_interval: Option<u32>,
    cooldown_period: Option<u32>,
    initial_cooldown_period: Option<u32>,
    idle_replica_count: Option<u32>,
    fallback: Option<RawFallback>,
    advanced: Option<RawAdvanced>,
    #[serde(default)]
    triggers: Vec<RawTrigger>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFallback {
    failure_threshold: u32,
    replicas: u32,
    behavior: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAdvanced {
    horizontal_pod_autoscaler_config: Option<RawHpaConfig>,
    scaling_modifiers: Option<BTreeMap<String, serde_yaml_ng::Value>>,
}

#[derive(Deserialize)]
struct RawHpaConfig {
    behavior: Option<RawBehavior>,
}

impl ScaledObject {
    /// Reads the first document of kind `ScaledObject` in `yaml` (a file may hold several
    /// documents separated by `---`).
    pub fn from_yaml(yaml: &str) -> Result<Self, ScaledObjectError> {
        let mut kinds = Vec::new();
        for document in serde_yaml_ng::Deserializer::from_str(yaml) {
            let value = serde_yaml_ng::Value::deserialize(document).map_err(|source| {
                ScaledObjectError::Yaml {
                    key: ".".into(),
                    source,
                }
            })?;
            let raw: RawDocument =
                serde_path_to_error::deserialize(value).map_err(|e| ScaledObjectError::Yaml {
                    key: e.path().to_string(),
                    source: e.into_inner(),
                })?;
            match raw.kind.as_deref() {
                Some("ScaledObject") => {
                    let spec = raw
                        .spec
                        .ok_or_else(|| InvalidSetting::new("spec", "missing"))?;
                    return Ok(Self::from_raw(raw.metadata.name.unwrap_or_default(), spec)?);
                }
                other => kinds.push(other.unwrap_or("(none)").to_owned()),
            }
        }
        Err(ScaledObjectError::NotFound {
            found: kinds.join(", "),
        })
    }

    fn from_raw(name: String, spec: RawSpec) -> Result<Self, InvalidSetting> {
        let at = |e: InvalidSetting| e.under("spec");
        let min_replica_count = spec.min_replica_count.unwrap_or(0);
        let max_replica_count = spec.max_replica_count.unwrap_or(DEFAULT_MAX_REPLICA_COUNT);
        if max_replica_count == 0 {
            return Err(at(InvalidSetting::new(
                "maxReplicaCount",
                "must be at least 1",
            )));
        }
        if min_replica_count > max_replica_count {
            return Err(at(InvalidSetting::new(
                "minReplicaCount",
                format!("{min_replica_count} is above maxReplicaCount {max_replica_count}"),
            )));
        }
        let polling_interval_s = spec.polling_interval.unwrap_or(DEFAULT_POLLING_INTERVAL_S);
        if polling_interval_s == 0 {
            return Err(at(InvalidSetting::new(
                "pollingInterval",
                "must be at least 1",
            )));
        }
        let fallback = match spec.fallback {
            Some(f) => Some(Fallback {
                failure_threshold: f.failure_threshold,
                replicas: f.replicas,
                behavior: match f.behavior.as_deref() {
                    None => FallbackBehavior::Static,
                    Some(b) => FallbackBehavior::parse(b).map_err(|e| at(e.under("fallback")))?,
                },
            }),
            None => None,
        };
        let (behavior, scaling_modifiers) = match spec.advanced {
            Some(advanced) => {
                let behavior = advanced
                    .horizontal_pod_autoscaler_config
                    .and_then(|c| c.behavior)
                    .map(Behavior::from_raw)
                    .transpose()
                    .map_err(|e| at(e.under("advanced.horizontalPodAutoscalerConfig.behavior")))?;
                (
                    behavior,
                    advanced.scaling_modifiers.is_some_and(|m| !m.is_empty()),
                )
            }
            None => (None, false),
        };
        if spec.triggers.is_empty() {
            return Err(at(InvalidSetting::new(
                "triggers",
                "must list at least one",
            )));
        }
        let triggers = spec
            .triggers
            .into_iter()
            .enumerate()
            .map(|(i, t)| Trigger::from_raw(t).map_err(|e| at(e.under(&format!("triggers[{i}]")))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name,
            min_replica_count,
            max_replica_count,
            polling_interval_s,
            cooldown_period_s: spec.cooldown_period.unwrap_or(DEFAULT_COOLDOWN_PERIOD_S),
            initial_cooldown_period_s: spec.initial_cooldown_period.unwrap_or(0),
            fallback,
            behavior,
            triggers,
            idle_replica_count: spec.idle_replica_count,
            scaling_modifiers,
        })
    }

    /// The HPA's `minReplicas` as KEDA sets it: `minReplicaCount`, or 1 when that is 0 (the
    /// HPA cannot scale to zero; KEDA does that itself).
    pub fn hpa_min_replicas(&self) -> u32 {
        self.min_replica_count.max(1)
    }
}

#[cfg(test)]
#[path = "scaled_object_tests.rs"]
mod tests;
