//! Settings: one YAML file in the seed's shape, overridden by `MDP_*` / `MDS_*` environment
//! variables, rejected with an error naming the key when unknown or out of range.

mod env;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::agent::AgentConfig;
use crate::bridge::BridgeConfig;
use crate::bus::http::{HttpEmitterConfig, HttpReceiverConfig};
use crate::bus::nats::NatsOptions;
use crate::coordinator::CoordinatorConfig;
use crate::event::CoordinatorId;
use crate::feedback::{
    FleetConfig, HysteresisConfig, HysteresisPolicy, Policy, ProportionalConfig,
    ProportionalPolicy, StepPolicy,
};
use crate::metrics::MetricsConfig;
use crate::rate::{ProviderConfig, RateCoordinator, RateError};
use crate::store::StoreConfig;

pub use env::EnvError;

/// Which policy an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// [`ProportionalPolicy`]: the default; the scale falls with the queue's depth.
    #[default]
    Proportional,
    /// [`HysteresisPolicy`]: level ceilings, dwell and gradual ramp.
    Hysteresis,
    /// [`StepPolicy`]: the seed's fixed map.
    Step,
}

/// The agent's feedback settings (`feedback:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackSettings {
    /// When false the agent ignores feedback and runs at base rates.
    pub enable_feedback: bool,
    /// The provider whose rate feedback scales; `*` for every registered provider.
    pub provider_name: String,
    /// Coordinators to listen to (empty: all).
    pub coordinators: Vec<CoordinatorId>,
    /// The policy.
    pub policy: PolicyKind,
    /// Settings of the step policy.
    pub step: StepPolicy,
    /// Settings of the hysteresis policy.
    pub hysteresis: HysteresisConfig,
    /// Settings of the proportional policy.
    pub proportional: ProportionalConfig,
    /// Ordering, staleness and expiry of events.
    pub fleet: FleetConfig,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        Self {
            enable_feedback: true,
            provider_name: "ibkr".into(),
            coordinators: Vec::new(),
            policy: PolicyKind::default(),
            step: StepPolicy::default(),
            hysteresis: HysteresisConfig::default(),
            proportional: ProportionalConfig::default(),
            fleet: FleetConfig::default(),
        }
    }
}

impl FeedbackSettings {
    /// The configured policy; `seed` spreads agents' jitter apart.
    pub fn build_policy(&self, seed: u64) -> Box<dyn Policy> {
        match self.policy {
            PolicyKind::Proportional => {
                Box::new(ProportionalPolicy::new(self.proportional.clone(), seed))
            }
            PolicyKind::Hysteresis => {
                Box::new(HysteresisPolicy::new(self.hysteresis.clone(), seed))
            }
            PolicyKind::Step => Box::new(self.step.clone()),
        }
    }

    /// The providers feedback applies to, given what `rate` has registered.
    pub fn providers(&self, rate: &RateCoordinator) -> Vec<String> {
        if self.provider_name == "*" {
            rate.provider_names()
        } else {
            vec![self.provider_name.clone()]
        }
    }
}

/// Provider limits (`rate_coordinator:`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateSettings {
    /// Limits per provider name.
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl RateSettings {
    /// A rate coordinator with every provider registered.
    pub fn build(&self) -> Result<RateCoordinator, RateError> {
        let rate = RateCoordinator::new();
        for (name, config) in &self.providers {
            rate.register_provider(name, config.clone())?;
        }
        Ok(rate)
    }
}

/// The HTTP transport (`http:`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// The agent's `POST /feedback` receiver.
    pub receiver: HttpReceiverConfig,
    /// The store's emitter (used when `urls` is not empty).
    pub emitter: HttpEmitterConfig,
}

/// Everything configurable, for every binary. Every field has a default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The agent's feedback handling.
    pub feedback: FeedbackSettings,
    /// The agent's providers.
    pub rate_coordinator: RateSettings,
    /// The store's write coordinator.
    pub coordinator: CoordinatorConfig,
    /// The NATS connection and subjects, for every component.
    pub nats: NatsOptions,
    /// The HTTP transport.
    pub http: HttpSettings,
    /// Where `/metrics` is served.
    pub metrics: MetricsConfig,
    /// The metrics bridge.
    pub bridge: BridgeConfig,
    /// The store node.
    pub store: StoreConfig,
    /// The pipeline agent.
    pub agent: AgentConfig,
}

/// Settings that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file could not be read.
    #[error("cannot read settings file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not YAML.
    #[error("settings file {path} is not valid YAML: {source}")]
    Yaml {
        /// The file.
        path: String,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// An environment variable could not be applied.
    #[error(transparent)]
    Env(#[from] EnvError),
    /// A key is unknown or its value has the wrong type.
    #[error("invalid setting {key}{origin}: {reason}")]
    Invalid {
        /// The dotted key path.
        key: String,
        /// ` (from VAR)` when the value came from the environment.
        origin: String,
        /// What is wrong.
        reason: String,
    },
}

impl SettingsError {
    fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            origin: String::new(),
            reason: reason.into(),
        }
    }
}

impl Settings {
    /// Reads `path` (if given), applies `MDP_*` / `MDS_*` variables from the process
    /// environment, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`load`](Self::load) with an explicit environment.
    pub fn load_with_env(
        path: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|source| SettingsError::Read {
                path: p.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        Self::parse(
            &text,
            path.map_or("<none>".into(), |p| p.display().to_string()),
            vars,
        )
    }

    /// Parses YAML `text` (named `origin` in errors), then applies `vars` and validates.
    pub fn parse(
        text: &str,
        origin: String,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let mut tree: Value = if text.trim().is_empty() {
            Value::Mapping(Default::default())
        } else {
            serde_yaml_ng::from_str(text).map_err(|source| SettingsError::Yaml {
                path: origin,
                source,
            })?
        };
        let sources = env::apply(&mut tree, vars)?;
        let settings: Settings = serde_path_to_error::deserialize(tree).map_err(|e| {
            let key = e.path().to_string();
            let origin = sources
                .iter()
                .find(|(path, _)| key == **path || key.starts_with(&format!("{path}.")))
                .map(|(_, var)| format!(" (from {var})"))
                .unwrap_or_default();
            SettingsError::Invalid {
                key,
                origin,
                reason: e.into_inner().to_string(),
            }
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Range checks that types alone cannot express.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.coordinator
            .validate()
            .map_err(|e| SettingsError::invalid(format!("coordinator.{}", e.key), e.reason))?;
        for (name, p) in &self.rate_coordinator.providers {
            p.validate().map_err(|(key, reason)| {
                SettingsError::invalid(format!("rate_coordinator.providers.{name}.{key}"), reason)
            })?;
        }
        let fb = &self.feedback;
        fb.hysteresis
            .validate()
            .map_err(|(k, r)| SettingsError::invalid(format!("feedback.hysteresis.{k}"), r))?;
        fb.proportional
            .validate()
            .map_err(|(k, r)| SettingsError::invalid(format!("feedback.proportional.{k}"), r))?;
        fb.fleet
            .validate()
            .map_err(|(k, r)| SettingsError::invalid(format!("feedback.fleet.{k}"), r))?;
        for (key, v) in [
            ("ok", fb.step.ok),
            ("soft", fb.step.soft),
            ("hard", fb.step.hard),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SettingsError::invalid(
                    format!("feedback.step.{key}"),
                    format!("must be within [0, 1], got {v}"),
                ));
            }
        }
        self.bridge
            .validate()
            .map_err(|e| SettingsError::invalid(format!("bridge.{}", e.0), e.1))?;
        self.agent
            .validate()
            .map_err(|(k, r)| SettingsError::invalid(format!("agent.{k}"), r))?;
        self.store
            .validate()
            .map_err(|(k, r)| SettingsError::invalid(format!("store.{k}"), r))?;
        self.nats
            .validate()
            .map_err(|(k, r)| SettingsError::invalid(format!("nats.{k}"), r))?;
        self.http
            .receiver
            .validate()
            .map_err(|e| SettingsError::invalid(format!("http.receiver.{}", e.key), e.reason))?;
        if !self.http.emitter.urls.is_empty() {
            self.http
                .emitter
                .validate()
                .map_err(|e| SettingsError::invalid(format!("http.emitter.{}", e.key), e.reason))?;
        }
        let providers = &self.rate_coordinator.providers;
        if fb.enable_feedback
            && fb.provider_name != "*"
            && !providers.is_empty()
            && !providers.contains_key(&fb.provider_name)
        {
            return Err(SettingsError::invalid(
                "feedback.provider_name",
                format!(
                    "{:?} is not among rate_coordinator.providers ({})",
                    fb.provider_name,
                    providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
