//! The HPA's `behavior` settings (scaling policies, stabilization windows, tolerances) as
//! the API server fills them in.
//!
//! The API server completes a `behavior` that is present (Kubernetes
//! `pkg/apis/autoscaling/v2/defaults.go`): scale-up defaults to no stabilization and the
//! larger of +100 % or +4 pods per 15 s; scale-down to 100 % per 15 s with the controller's
//! `--horizontal-pod-autoscaler-downscale-stabilization` window (300 s). An absent
//! `behavior` stays absent and the controller takes its older path instead (a scale-down
//! stabilization window, then at most `max(2 × current, 4)` per sync); the model follows both.

use serde::Deserialize;

use crate::invalid::InvalidSetting;

/// `behavior`: one set of rules per direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    /// `scaleUp`.
    pub scale_up: ScalingRules,
    /// `scaleDown`.
    pub scale_down: ScalingRules,
}

/// `scaleUp` / `scaleDown`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRules {
    /// `stabilizationWindowSeconds`. `None` only for a scale-down left unset: the controller
    /// then uses its `--horizontal-pod-autoscaler-downscale-stabilization` flag (300 s).
    pub stabilization_window_s: Option<u32>,
    /// `selectPolicy` (default `Max`).
    pub select_policy: SelectPolicy,
    /// `policies` (never empty).
    pub policies: Vec<ScalingPolicy>,
    /// `tolerance` (beta, behind the `HPAConfigurableTolerance` feature gate); `None` means
    /// the cluster-wide `--horizontal-pod-autoscaler-tolerance` (0.1).
    pub tolerance: Option<f64>,
}

/// One `policies` entry: at most `value` pods or percent per `period_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingPolicy {
    /// `type`.
    pub kind: PolicyType,
    /// `value` (> 0).
    pub value: u32,
    /// `periodSeconds` (1..=1800).
    pub period_s: u32,
}

/// A policy's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyType {
    /// `Pods`: an absolute number of pods.
    Pods,
    /// `Percent`: a percentage of the count at the start of the period.
    Percent,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change.
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

impl ScalingRules {
    /// Kubernetes' scale-up rules: no stabilization, the larger of +4 pods and +100 % per 15 s.
    pub fn default_scale_up() -> Self {
        Self {
            stabilization_window_s: Some(0),
            select_policy: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy {
                    kind: PolicyType::Pods,
                    value: 4,
                    period_s: 15,
                },
                ScalingPolicy {
                    kind: PolicyType::Percent,
                    value: 100,
                    period_s: 15,
                },
            ],
            tolerance: None,
        }
    }

    /// Kubernetes' scale-down rules: the controller's stabilization window, -100 % per 15 s.
    pub fn default_scale_down() -> Self {
        Self {
            stabilization_window_s: None,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy {
                kind: PolicyType::Percent,
                value: 100,
                period_s: 15,
            }],
            tolerance: None,
        }
    }

    /// The longest `periodSeconds` (how long past scale events matter).
    pub fn longest_period_s(&self) -> u32 {
        self.policies.iter().map(|p| p.period_s).max().unwrap_or(0)
    }

    fn from_raw(raw: Option<RawRules>, defaults: Self) -> Result<Self, InvalidSetting> {
        let Some(raw) = raw else { return Ok(defaults) };
        let stabilization_window_s = match raw.stabilization_window_seconds {
            Some(s) if s > 3600 => {
                return Err(InvalidSetting::new(
                    "stabilizationWindowSeconds",
                    format!("must be within [0, 3600], got {s}"),
                ));
            }
            Some(s) => Some(s),
            None => defaults.stabilization_window_s,
        };
        let select_policy = match raw.select_policy.as_deref() {
            None => defaults.select_policy,
            Some("Max") => SelectPolicy::Max,
            Some("Min") => SelectPolicy::Min,
            Some("Disabled") => SelectPolicy::Disabled,
            Some(other) => {
                return Err(InvalidSetting::new(
                    "selectPolicy",
                    format!("{other:?} is not one of Max, Min, Disabled"),
                ));
            }
        };
        let policies = match raw.policies {
            None => defaults.policies,
            Some(list) if list.is_empty() => {
                return Err(InvalidSetting::new(
                    "policies",
                    "must list at least one policy",
                ));
            }
            Some(list) => list
                .into_iter()
                .enumerate()
                .map(|(i, p)| p.parse().map_err(|e| e.under(&format!("policies[{i}]"))))
                .collect::<Result<_, _>>()?,
        };
        let tolerance = match raw.tolerance {
            None => None,
            Some(q) => {
                Some(quantity(&q).map_err(|reason| InvalidSetting::new("tolerance", reason))?)
            }
        };
        Ok(Self {
            stabilization_window_s,
            select_policy,
            policies,
            tolerance,
        })
    }
}

impl Behavior {
    pub(crate) fn from_raw(raw: RawBehavior) -> Result<Self, InvalidSetting> {
        Ok(Self {
            scale_up: ScalingRules::from_raw(raw.scale_up, ScalingRules::default_scale_up())
                .map_err(|e| e.under("scaleUp"))?,
            scale_down: ScalingRules::from_raw(raw.scale_down, ScalingRules::default_scale_down())
                .map_err(|e| e.under("scaleDown"))?,
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawBehavior {
    scale_up: Option<RawRules>,
    scale_down: Option<RawRules>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRules {
    stabilization_window_seconds: Option<u32>,
    select_policy: Option<String>,
    policies: Option<Vec<RawPolicy>>,
    tolerance: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    #[serde(rename = "type")]
    kind: String,
    value: u32,
    period_seconds: u32,
}

impl RawPolicy {
    fn parse(self) -> Result<ScalingPolicy, InvalidSetting> {
        let kind = match self.kind.as_str() {
            "Pods" => PolicyType::Pods,
            "Percent" => PolicyType::Percent,
            other => {
                return Err(InvalidSetting::new(
                    "type",
                    format!("{other:?} is not Pods or Percent"),
                ));
            }
        };
        if self.value == 0 {
            return Err(InvalidSetting::new("value", "must be greater than zero"));
        }
        if !(1..=1800).contains(&self.period_seconds) {
            return Err(InvalidSetting::new(
                "periodSeconds",
                format!("must be within [1, 1800], got {}", self.period_seconds),
            ));
        }
        Ok(ScalingPolicy {
            kind,
            value: self.value,
            period_s: self.period_seconds,
        })
    }
}

/// A non-negative Kubernetes quantity as a number: `0.05`, `5e-2`, `50m`, or an integer.
fn quantity(value: &serde_yaml_ng::Value) -> Result<f64, String> {
    let parsed = match value {
        serde_yaml_ng::Value::Number(n) => n.as_f64(),
        serde_yaml_ng::Value::String(s) => match s.strip_suffix('m') {
            Some(milli) => milli.parse::<f64>().ok().map(|v| v / 1000.0),
            None => s.parse::<f64>().ok(),
        },
        _ => None,
    };
    match parsed {
        Some(v) if v >= 0.0 && v.is_finite() => Ok(v),
        Some(v) => Err(format!("must be >= 0, got {v}")),
        None => Err(format!(
            "{value:?} is not a quantity the model reads (0.05, 50m)"
        )),
    }
}
