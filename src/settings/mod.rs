//! Settings: one YAML file (in the predecessor's shape, extended), overridden by environment
//! variables, rejected with an error naming the key when unknown or out of range.
//!
//! Each component owns its section (type, defaults, validation); this module only assembles
//! the file and environment layers into them and hands each binary the sections it reads
//! ([`Settings::store_setup`], [`agent_setup`](Settings::agent_setup),
//! [`bridge_setup`](Settings::bridge_setup)).

mod env;

use std::path::Path;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::agent::{AgentConfig, AgentSetup};
use crate::bridge::{BridgeConfig, BridgeSetup};
use crate::bus::http::HttpConfig;
use crate::bus::nats::NatsOptions;
use crate::coordinator::CoordinatorConfig;
use crate::feedback::FeedbackConfig;
use crate::invalid::InvalidSetting;
use crate::metrics::MetricsConfig;
use crate::rate::RateConfig;
use crate::store::{StoreConfig, StoreSetup};

pub use env::EnvError;

/// Everything configurable, for every binary. Every field has a default.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The agent's feedback handling.
    pub feedback: FeedbackConfig,
    /// The agent's providers.
    pub rate_coordinator: RateConfig,
    /// The store's write coordinator.
    pub coordinator: CoordinatorConfig,
    /// The NATS connection and subjects, for every component.
    pub nats: NatsOptions,
    /// The HTTP transport.
    pub http: HttpConfig,
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
    /// `key` is wrong; `sources` says which keys came from which variable.
    fn invalid(key: String, reason: String, sources: &[(String, String)]) -> Self {
        let origin = sources
            .iter()
            .find(|(path, _)| key == *path || key.starts_with(&format!("{path}.")))
            .map(|(_, var)| format!(" (from {var})"))
            .unwrap_or_default();
        Self::Invalid {
            key,
            origin,
            reason,
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
            SettingsError::invalid(key, e.into_inner().to_string(), &sources)
        })?;
        settings
            .validate()
            .map_err(|e| SettingsError::invalid(e.key, e.reason, &sources))?;
        Ok(settings)
    }

    /// Range checks that types alone cannot express, for every binary's sections.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.store_setup().validate()?;
        self.agent_setup().validate()?;
        self.bridge_setup().validate()
    }

    /// What a store node reads.
    pub fn store_setup(&self) -> StoreSetup {
        StoreSetup {
            store: self.store.clone(),
            coordinator: self.coordinator.clone(),
            nats: self.nats.clone(),
            emitter: self.http.emitter.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// What an agent reads.
    pub fn agent_setup(&self) -> AgentSetup {
        AgentSetup {
            agent: self.agent.clone(),
            rate: self.rate_coordinator.clone(),
            feedback: self.feedback.clone(),
            nats: self.nats.clone(),
            receiver: self.http.receiver.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// What a bridge reads.
    pub fn bridge_setup(&self) -> BridgeSetup {
        BridgeSetup {
            bridge: self.bridge.clone(),
            nats: self.nats.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[cfg(test)]
mod tests;
