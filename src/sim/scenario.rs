//! A scenario as data: the sink, the stores, the agents' load over time, and the expected
//! ranges of every figure per policy.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::expect::Expect;
use super::fleet_spec::AutoscaleSpec;
use super::spec::{AgentSpec, SinkSpec, StoreSpec, positive};
use crate::feedback::{FeedbackConfig, PolicyKind};
use crate::invalid::{InvalidSetting, at_least_one};

/// One closed-loop experiment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name (file stem by convention).
    pub name: String,
    /// What it shows.
    #[serde(default)]
    pub description: String,
    /// Length of the run, seconds.
    pub duration_s: f64,
    /// Figures over a window (utilisation, flips, fairness) start here, seconds.
    #[serde(default)]
    pub warmup_s: f64,
    /// Time between trace samples, milliseconds.
    #[serde(default = "default_sample_ms")]
    pub sample_ms: u64,
    /// Seed of every random choice (sink jitter, policy jitter).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// The sink behind each store.
    #[serde(default)]
    pub sink: SinkSpec,
    /// The stores.
    #[serde(default)]
    pub store: StoreSpec,
    /// The agents.
    #[serde(default)]
    pub agents: AgentSpec,
    /// The agents' feedback settings (policy parameters, fleet view); `policy` is set per
    /// run.
    #[serde(default)]
    pub feedback: FeedbackConfig,
    /// Policies to run, in order (default: all).
    #[serde(default = "all_policies")]
    pub policies: Vec<PolicyKind>,
    /// Expected ranges per policy.
    #[serde(default)]
    pub expect: BTreeMap<PolicyKind, Expect>,
    /// With this section the scenario is a fleet run: replicas of one store pulling from a
    /// shared stream, scaled by models of KEDA and the HPA (load factors are then multiples
    /// of one replica's capacity).
    #[serde(default)]
    pub autoscale: Option<AutoscaleSpec>,
}

fn default_sample_ms() -> u64 {
    100
}

fn default_seed() -> u64 {
    1
}

fn all_policies() -> Vec<PolicyKind> {
    PolicyKind::ALL.to_vec()
}

/// A scenario that cannot be read or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not a valid scenario document.
    #[error("invalid scenario {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// Why (with the key path).
        reason: String,
    },
    /// A trigger set's ScaledObject is not one the autoscaler model can run.
    #[error("invalid ScaledObject {path} in scenario {name}")]
    TriggerSet {
        /// The scenario.
        name: String,
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: crate::autoscale::ScaledObjectError,
    },
    /// A value out of range.
    #[error("invalid scenario {name}: {setting}")]
    Invalid {
        /// The scenario.
        name: String,
        /// The key and what is wrong.
        setting: InvalidSetting,
    },
}

impl Scenario {
    /// Reads and validates a YAML scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates YAML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let scenario: Scenario =
            serde_path_to_error::deserialize(de).map_err(|e| ScenarioError::Parse {
                path: origin.to_owned(),
                reason: format!("{}: {}", e.path(), e.inner()),
            })?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks that every value can run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        self.check().map_err(|setting| ScenarioError::Invalid {
            name: self.name.clone(),
            setting,
        })
    }

    fn check(&self) -> Result<(), InvalidSetting> {
        // A fleet run may last a (compressed) day; a store-only run an hour.
        let longest = if self.autoscale.is_some() {
            86_400.0
        } else {
            3_600.0
        };
        if !positive(self.duration_s) || self.duration_s > longest {
            return Err(InvalidSetting::new(
                "duration_s",
                format!("must be within (0, {longest}]"),
            ));
        }
        if !(0.0..self.duration_s).contains(&self.warmup_s) {
            return Err(InvalidSetting::new(
                "warmup_s",
                "must be within [0, duration_s)",
            ));
        }
        at_least_one(&[("sample_ms", self.sample_ms)])?;
        self.sink.check().map_err(|e| e.under("sink"))?;
        self.store.check().map_err(|e| e.under("store"))?;
        self.agents.check().map_err(|e| e.under("agents"))?;
        self.agents
            .limits(self.total_capacity() / self.agents.count as f64)
            .validate()
            .map_err(|e| InvalidSetting::new("agents.base", e.to_string()))?;
        self.feedback.validate().map_err(|e| e.under("feedback"))?;
        if let Some(spec) = &self.autoscale {
            spec.check().map_err(|e| e.under("autoscale"))?;
            if self.store.count != 1 || !self.store.silences.is_empty() {
                return Err(InvalidSetting::new(
                    "store.count",
                    "a fleet scenario describes one replica (count 1, no silences)",
                ));
            }
        }
        if self.policies.is_empty() {
            return Err(InvalidSetting::new(
                "policies",
                "must name at least one policy",
            ));
        }
        Ok(())
    }

    /// The sinks' total normal capacity, rows per second.
    pub fn total_capacity(&self) -> f64 {
        self.sink.rows_per_sec * self.store.count as f64
    }

    /// Times (seconds) at which the load changes after the start, with the factors before
    /// and after.
    pub fn load_steps(&self) -> Vec<(f64, f64, f64)> {
        self.agents
            .load
            .windows(2)
            .map(|w| (w[1].at_s, w[0].factor, w[1].factor))
            .filter(|(t, _, _)| *t < self.duration_s)
            .collect()
    }
}
