//! A scenario as data: the sink, the stores, the agents' load over time, and the expected
//! ranges of every figure per policy.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::expect::Expect;
use super::spec::{AgentSpec, SinkSpec, StoreSpec};
use crate::settings::FeedbackSettings;

/// Which policy the agents of one run use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyChoice {
    /// No feedback: agents run at their base rate.
    None,
    /// The seed's step map (OK 1.0 / SOFT 0.5 / HARD 0.0).
    Step,
    /// Level ceilings with dwell and gradual ramp (the issue-2 default).
    Hysteresis,
    /// The default: the scale falls with the queue's depth.
    Proportional,
}

impl PolicyChoice {
    /// Every policy, in table order.
    pub const ALL: [PolicyChoice; 4] =
        [Self::None, Self::Step, Self::Hysteresis, Self::Proportional];

    /// The name used in tables, files and settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Step => "step",
            Self::Hysteresis => "hysteresis",
            Self::Proportional => "proportional",
        }
    }
}

impl fmt::Display for PolicyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PolicyChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown policy {s:?} (none, step, hysteresis, proportional)"))
    }
}

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
    pub feedback: FeedbackSettings,
    /// Policies to run, in order (default: all).
    #[serde(default = "all_policies")]
    pub policies: Vec<PolicyChoice>,
    /// Expected ranges per policy.
    #[serde(default)]
    pub expect: BTreeMap<PolicyChoice, Expect>,
}

fn default_sample_ms() -> u64 {
    100
}

fn default_seed() -> u64 {
    1
}

fn all_policies() -> Vec<PolicyChoice> {
    PolicyChoice::ALL.to_vec()
}

/// A scenario that cannot be read or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
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
    /// A value out of range.
    #[error("invalid scenario {name}: {key} {reason}")]
    Invalid {
        /// The scenario.
        name: String,
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
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

    fn invalid(&self, key: &'static str, reason: impl Into<String>) -> ScenarioError {
        ScenarioError::Invalid {
            name: self.name.clone(),
            key,
            reason: reason.into(),
        }
    }

    /// Checks that every value can run.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let positive = |v: f64| v > 0.0 && v.is_finite();
        if !positive(self.duration_s) || self.duration_s > 3_600.0 {
            return Err(self.invalid("duration_s", "must be within (0, 3600]"));
        }
        if !(0.0..self.duration_s).contains(&self.warmup_s) {
            return Err(self.invalid("warmup_s", "must be within [0, duration_s)"));
        }
        if self.sample_ms == 0 {
            return Err(self.invalid("sample_ms", "must be at least 1"));
        }
        if !positive(self.sink.rows_per_sec) {
            return Err(self.invalid("sink.rows_per_sec", "must be > 0"));
        }
        if !(self.sink.latency_ms >= 0.0 && self.sink.latency_ms.is_finite()) {
            return Err(self.invalid("sink.latency_ms", "must be >= 0"));
        }
        if !(0.0..=1.0).contains(&self.sink.jitter) {
            return Err(self.invalid("sink.jitter", "must be within [0, 1]"));
        }
        if self
            .sink
            .brownouts
            .iter()
            .any(|b| !(b.factor > 0.0 && b.factor <= 1.0))
        {
            return Err(self.invalid("sink.brownouts.factor", "must be within (0, 1]"));
        }
        let st = &self.store;
        if st.count == 0 || st.count > 16 {
            return Err(self.invalid("store.count", "must be within [1, 16]"));
        }
        if st.silences.iter().any(|s| s.store >= st.count) {
            return Err(self.invalid("store.silences.store", "names a store that does not exist"));
        }
        if !(st.low_watermark > 0.0 && st.low_watermark < st.high_watermark)
            || st.high_watermark > 1.0
        {
            return Err(self.invalid(
                "store.low_watermark/high_watermark",
                "need 0 < low < high <= 1",
            ));
        }
        let ag = &self.agents;
        if ag.count == 0 || ag.count > 10_000 {
            return Err(self.invalid("agents.count", "must be within [1, 10000]"));
        }
        if !(0.0..=1.0).contains(&ag.noise) {
            return Err(self.invalid("agents.noise", "must be within [0, 1]"));
        }
        if ag.chunk == 0 {
            return Err(self.invalid("agents.chunk", "must be at least 1"));
        }
        if ag.load.is_empty()
            || ag
                .load
                .iter()
                .any(|s| !(s.factor >= 0.0 && s.factor.is_finite()))
        {
            return Err(self.invalid("agents.load", "needs steps with factors >= 0"));
        }
        if ag.load.windows(2).any(|w| w[1].at_s <= w[0].at_s) {
            return Err(self.invalid("agents.load", "steps must be in increasing time order"));
        }
        if !positive(ag.base_factor()) {
            return Err(self.invalid("agents.base", "must be > 0"));
        }
        if ag.base_factor() < ag.load.iter().map(|s| s.factor).fold(0.0, f64::max) {
            return Err(self.invalid("agents.base", "must cover the largest load factor"));
        }
        for (key, check) in [
            (
                "feedback.proportional",
                self.feedback.proportional.validate(),
            ),
            ("feedback.hysteresis", self.feedback.hysteresis.validate()),
            ("feedback.fleet", self.feedback.fleet.validate()),
        ] {
            if let Err((k, reason)) = check {
                return Err(self.invalid(key, format!("{k}: {reason}")));
            }
        }
        if self.policies.is_empty() {
            return Err(self.invalid("policies", "must name at least one policy"));
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
