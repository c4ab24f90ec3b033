//! One `triggers[]` entry: its scaler, the metadata that scaler reads, and its target.
//!
//! Metadata is read as KEDA's scalers read it (KEDA v2.20 `pkg/scalers/*_scaler.go`): the
//! same keys, defaults and number formats. Values a `TriggerAuthentication` may supply
//! (`serverAddress` excepted for Prometheus) are optional here.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::invalid::InvalidSetting;

/// A trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `name`, when set.
    pub name: Option<String>,
    /// `metricType` (KEDA's default `AverageValue`).
    pub metric_type: MetricType,
    /// `useCachedMetrics`: the HPA is answered from KEDA's last poll instead of a fresh query.
    pub use_cached_metrics: bool,
    /// Whether `authenticationRef` is set (some metadata then comes from a Secret).
    pub authenticated: bool,
    /// The scaler and its metadata.
    pub scaler: Scaler,
}

/// How the HPA compares the trigger's value with its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// The value is a total to be shared: `desired = ceil(value / target)`.
    AverageValue,
    /// The value is compared as is: `desired = ceil(ready × value / target)`.
    Value,
}

impl MetricType {
    /// The name KEDA uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AverageValue => "AverageValue",
            Self::Value => "Value",
        }
    }
}

/// The scalers the model knows, with the metadata each reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Scaler {
    /// `prometheus`: one PromQL query that must return at most one series.
    Prometheus {
        /// `serverAddress`.
        server_address: String,
        /// `query`.
        query: String,
        /// `threshold`: the target.
        threshold: f64,
        /// `activationThreshold` (default 0): active above it.
        activation_threshold: f64,
        /// `ignoreNullValues` (default true): an empty answer reads as 0 instead of failing.
        ignore_null_values: bool,
    },
    /// `nats-jetstream`: `num_pending + num_ack_pending` of one consumer, from `/jsz`.
    NatsJetStream {
        /// `stream`.
        stream: String,
        /// `consumer`.
        consumer: String,
        /// `account` (or from the authentication).
        account: Option<String>,
        /// `natsServerMonitoringEndpoint` (or from the authentication).
        monitoring_endpoint: Option<String>,
        /// `lagThreshold` (default 10): the target.
        lag_threshold: i64,
        /// `activationLagThreshold` (default 0).
        activation_lag_threshold: i64,
    },
    /// `metrics-api`: one number at `valueLocation` of a JSON (or other) document.
    MetricsApi {
        /// `url`.
        url: String,
        /// `valueLocation` (a GJSON path for JSON).
        value_location: String,
        /// `format` (default `json`).
        format: String,
        /// `targetValue`: the target.
        target_value: f64,
        /// `activationTargetValue` (default 0).
        activation_target_value: f64,
    },
}

impl Trigger {
    /// The value one replica should carry (`AverageValue`) or the fleet's target (`Value`).
    pub fn target(&self) -> f64 {
        match &self.scaler {
            Scaler::Prometheus { threshold, .. } => *threshold,
            // KEDA builds this target from an int64, so it is exact.
            Scaler::NatsJetStream { lag_threshold, .. } => *lag_threshold as f64,
            Scaler::MetricsApi { target_value, .. } => *target_value,
        }
    }

    /// KEDA's `type`.
    pub fn kind(&self) -> &'static str {
        match self.scaler {
            Scaler::Prometheus { .. } => "prometheus",
            Scaler::NatsJetStream { .. } => "nats-jetstream",
            Scaler::MetricsApi { .. } => "metrics-api",
        }
    }

    /// Whether `value` makes the trigger active (KEDA: strictly above the activation level).
    pub fn is_active(&self, value: f64) -> bool {
        match &self.scaler {
            Scaler::Prometheus {
                activation_threshold,
                ..
            } => value > *activation_threshold,
            Scaler::NatsJetStream {
                activation_lag_threshold,
                ..
            } => value > *activation_lag_threshold as f64,
            Scaler::MetricsApi {
                activation_target_value,
                ..
            } => value > *activation_target_value,
        }
    }

    /// `name`, or `<type>#<index>` for an unnamed trigger.
    pub fn label(&self, index: usize) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("{}#{index}", self.kind()),
        }
    }

    pub(crate) fn from_raw(raw: RawTrigger) -> Result<Self, InvalidSetting> {
        let metric_type = match raw.metric_type.as_deref() {
            None | Some("AverageValue") => MetricType::AverageValue,
            Some("Value") => MetricType::Value,
            Some(other) => {
                return Err(InvalidSetting::new(
                    "metricType",
                    format!(
                        "{other:?} is not AverageValue or Value (the model's scalers refuse Utilization)"
                    ),
                ));
            }
        };
        let authenticated = raw.authentication_ref.is_some();
        let meta = Metadata(&raw.metadata);
        let scaler = match raw.kind.as_str() {
            "prometheus" => Scaler::Prometheus {
                server_address: meta.required("serverAddress")?.to_owned(),
                query: meta.required("query")?.to_owned(),
                threshold: meta
                    .float("threshold")?
                    .ok_or_else(|| missing("threshold"))?,
                activation_threshold: meta.float("activationThreshold")?.unwrap_or(0.0),
                ignore_null_values: meta.boolean("ignoreNullValues")?.unwrap_or(true),
            },
            "nats-jetstream" => {
                let account = meta.optional("account").or(meta.optional("accountID"));
                if account.is_none() && !authenticated {
                    return Err(missing("account"));
                }
                let monitoring_endpoint = meta.optional("natsServerMonitoringEndpoint");
                if monitoring_endpoint.is_none() && !authenticated {
                    return Err(missing("natsServerMonitoringEndpoint"));
                }
                Scaler::NatsJetStream {
                    stream: meta.required("stream")?.to_owned(),
                    consumer: meta.required("consumer")?.to_owned(),
                    account: account.map(str::to_owned),
                    monitoring_endpoint: monitoring_endpoint.map(str::to_owned),
                    lag_threshold: meta.int("lagThreshold")?.unwrap_or(10),
                    activation_lag_threshold: meta.int("activationLagThreshold")?.unwrap_or(0),
                }
            }
            "metrics-api" => {
                let target_value = meta.float("targetValue")?.unwrap_or(0.0);
                // KEDA refuses a missing or zero target outside scaling modifiers.
                if target_value == 0.0 {
                    return Err(InvalidSetting::new("metadata.targetValue", "missing or 0"));
                }
                Scaler::MetricsApi {
                    url: meta.required("url")?.to_owned(),
                    value_location: meta.required("valueLocation")?.to_owned(),
                    format: meta.optional("format").unwrap_or("json").to_owned(),
                    target_value,
                    activation_target_value: meta.float("activationTargetValue")?.unwrap_or(0.0),
                }
            }
            other => {
                return Err(InvalidSetting::new(
                    "type",
                    format!(
                        "{other:?}: the model knows prometheus, nats-jetstream and metrics-api"
                    ),
                ));
            }
        };
        let trigger = Self {
            name: raw.name,
            metric_type,
            use_cached_metrics: raw.use_cached_metrics.unwrap_or(false),
            authenticated,
            scaler,
        };
        if !(trigger.target() > 0.0 && trigger.target().is_finite()) {
            return Err(InvalidSetting::new(
                "metadata",
                format!("the target must be > 0, got {}", trigger.target()),
            ));
        }
        Ok(trigger)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawTrigger {
    #[serde(rename = "type")]
    kind: String,
    name: Option<String>,
    metric_type: Option<String>,
    use_cached_metrics: Option<bool>,
    authentication_ref: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

fn missing(key: &str) -> InvalidSetting {
    InvalidSetting::new(format!("metadata.{key}"), "missing")
}

/// Typed reads of a trigger's string metadata, errors keyed `metadata.<key>`.
struct Metadata<'a>(&'a BTreeMap<String, String>);

impl<'a> Metadata<'a> {
    fn optional(&self, key: &str) -> Option<&'a str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn required(&self, key: &str) -> Result<&'a str, InvalidSetting> {
        self.optional(key).ok_or_else(|| missing(key))
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, InvalidSetting> {
        match self.optional(key) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                InvalidSetting::new(format!("metadata.{key}"), format!("{v:?} is not {what}"))
            }),
        }
    }

    fn float(&self, key: &str) -> Result<Option<f64>, InvalidSetting> {
        self.parsed(key, "a number")
    }

    fn int(&self, key: &str) -> Result<Option<i64>, InvalidSetting> {
        self.parsed(key, "an integer")
    }

    /// Go's `strconv.ParseBool`, which KEDA uses.
    fn boolean(&self, key: &str) -> Result<Option<bool>, InvalidSetting> {
        match self.optional(key) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(Some(false)),
            Some(v) => Err(InvalidSetting::new(
                format!("metadata.{key}"),
                format!("{v:?} is not a boolean"),
            )),
        }
    }
}
