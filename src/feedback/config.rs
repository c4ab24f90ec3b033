//! The agent's feedback settings (`feedback:`): which policy, its parameters, and the fleet
//! view's; and the one enum that names a policy everywhere (settings, CLI, simulator).

use std::fmt;

use serde::Deserialize;

use super::{
    FairShareConfig, FairSharePolicy, HysteresisConfig, HysteresisPolicy, Policy,
    ProportionalConfig, ProportionalPolicy, StepPolicy,
};
use crate::event::CoordinatorId;
use crate::fleet::{FleetConfig, Follow, Interest};
use crate::invalid::InvalidSetting;
use crate::rate::RateCoordinator;

/// Which policy an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// No feedback: agents run at their base rates (the same as `enable_feedback: false`).
    None,
    /// [`StepPolicy`]: the predecessor's fixed map, OK 1.0 / SOFT 0.5 / HARD 0.0.
    Step,
    /// [`HysteresisPolicy`]: level ceilings, dwell and gradual ramp.
    Hysteresis,
    /// [`ProportionalPolicy`]: the default; the scale falls with the queue's depth.
    #[default]
    Proportional,
    /// [`FairSharePolicy`]: the store's explicit fair rate per class and weight.
    FairShare,
}

impl PolicyKind {
    /// Every kind, in table order.
    pub const ALL: [PolicyKind; 5] = [
        Self::None,
        Self::Step,
        Self::Hysteresis,
        Self::Proportional,
        Self::FairShare,
    ];

    /// The name used in settings, tables, files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Step => "step",
            Self::Hysteresis => "hysteresis",
            Self::Proportional => "proportional",
            Self::FairShare => "fair_share",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PolicyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown policy {s:?} (none, step, hysteresis, proportional, fair_share)")
            })
    }
}

/// The agent's feedback settings (`feedback:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// When false the agent ignores feedback and runs at base rates.
    pub enable_feedback: bool,
    /// The provider whose rate feedback scales; `*` for every registered provider.
    pub provider_name: String,
    /// Coordinators whose feedback this agent obeys. Empty (the default): the coordinators it
    /// writes to (`agent.coordinator_id`); `["*"]`: every coordinator; otherwise exactly the
    /// listed ones, whichever transport brings their events.
    pub coordinators: Vec<Follow>,
    /// The policy.
    pub policy: PolicyKind,
    /// Settings of the step policy.
    pub step: StepPolicy,
    /// Settings of the hysteresis policy.
    pub hysteresis: HysteresisConfig,
    /// Settings of the proportional policy.
    pub proportional: ProportionalConfig,
    /// This agent's class and weight under the fair-share policy (also sent in its demand
    /// events).
    pub fair_share: FairShareConfig,
    /// Ordering, staleness and expiry of events.
    pub fleet: FleetConfig,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            enable_feedback: true,
            provider_name: "ibkr".into(),
            coordinators: Vec::new(),
            policy: PolicyKind::default(),
            step: StepPolicy::default(),
            hysteresis: HysteresisConfig::default(),
            proportional: ProportionalConfig::default(),
            fair_share: FairShareConfig::default(),
            fleet: FleetConfig::default(),
        }
    }
}

impl FeedbackConfig {
    /// Feedback with `policy`, every other setting default.
    pub fn with_policy(policy: PolicyKind) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Whether feedback is obeyed at all (enabled, and a policy other than `none`).
    pub fn is_enabled(&self) -> bool {
        self.enable_feedback && self.policy != PolicyKind::None
    }

    /// The configured policy (`None` when feedback is off); `seed` spreads agents' jitter
    /// apart.
    pub fn build_policy(&self, seed: u64) -> Option<Box<dyn Policy>> {
        if !self.enable_feedback {
            return None;
        }
        Some(match self.policy {
            PolicyKind::None => return None,
            PolicyKind::Proportional => {
                Box::new(ProportionalPolicy::new(self.proportional.clone(), seed))
            }
            PolicyKind::FairShare => Box::new(FairSharePolicy::new(
                self.fair_share.clone(),
                self.proportional.clone(),
                seed,
            )),
            PolicyKind::Hysteresis => {
                Box::new(HysteresisPolicy::new(self.hysteresis.clone(), seed))
            }
            PolicyKind::Step => Box::new(self.step.clone()),
        })
    }

    /// The coordinators obeyed by an agent that writes to `writes_to`.
    pub fn interest(&self, writes_to: &[CoordinatorId]) -> Interest {
        Interest::following(&self.coordinators, writes_to)
    }

    /// The providers feedback applies to, given what `rate` has registered.
    pub fn providers(&self, rate: &RateCoordinator) -> Vec<String> {
        if self.provider_name == "*" {
            rate.provider_names()
        } else {
            vec![self.provider_name.clone()]
        }
    }

    /// Checks every policy's and the fleet view's ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.step.validate().map_err(|e| e.under("step"))?;
        self.hysteresis
            .validate()
            .map_err(|e| e.under("hysteresis"))?;
        self.proportional
            .validate()
            .map_err(|e| e.under("proportional"))?;
        self.fair_share
            .validate()
            .map_err(|e| e.under("fair_share"))?;
        self.fleet.validate().map_err(|e| e.under("fleet"))
    }
}
