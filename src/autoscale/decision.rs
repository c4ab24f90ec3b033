//! What one poll of the model decided, and why: per trigger, for KEDA's loop and for the HPA.

use std::fmt;

use super::history::Stabilization;
use super::hpa::{HpaSync, HpaVerdict, Limit};
use super::keda::{KedaAction, KedaPoll, Source, TriggerError};
use super::replicas::Proposal;
use super::trigger::MetricType;

/// The outcome of [`Autoscaler::poll`](super::Autoscaler::poll).
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// When, in the caller's seconds.
    pub at_s: f64,
    /// The replica count before.
    pub current: u32,
    /// The replica count the target should have now (`current` when nothing changed it).
    pub desired: u32,
    /// What each trigger gave the HPA, when the HPA synced in this poll (else empty).
    pub per_trigger: Vec<TriggerVerdict>,
    /// KEDA's polling loop, when it ran in this poll.
    pub keda: Option<KedaPoll>,
    /// The HPA's sync, when it ran in this poll.
    pub hpa: Option<HpaSync>,
    /// The short answer.
    pub why: Why,
}

/// One trigger at one HPA sync.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerVerdict {
    /// The trigger's name (or `<type>#<index>`).
    pub name: String,
    /// Its metric type.
    pub metric_type: MetricType,
    /// Its target.
    pub target: f64,
    /// The value the HPA received (after KEDA's rounding to milli-units), or why none.
    pub value: Result<f64, TriggerError>,
    /// Where the value came from.
    pub source: Option<Source>,
    /// The replica calculator's proposal for the value.
    pub proposal: Option<Proposal>,
    /// The trigger's consecutive failures as KEDA counts them, after this read.
    pub failures: u32,
}

/// Why the count is what it is after a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Neither loop was due; nothing changed.
    NotDue,
    /// Only KEDA's loop ran.
    Keda(KedaAction),
    /// The HPA synced (after KEDA's loop, if that ran too and changed nothing).
    Hpa(HpaVerdict),
    /// KEDA's loop changed the count and the HPA then synced on the new one.
    KedaThenHpa(KedaAction, HpaVerdict),
}

impl Decision {
    /// Whether the count changed.
    pub fn changed(&self) -> bool {
        self.desired != self.current
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "t={:.0}s {} -> {}: {}",
            self.at_s, self.current, self.desired, self.why
        )?;
        for t in &self.per_trigger {
            write!(f, "; {t}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TriggerVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.value, &self.proposal) {
            (Ok(v), Some(p)) => write!(
                f,
                "{} {}/{} ratio {:.2}{} -> {}",
                self.name,
                v,
                self.target,
                p.ratio,
                if p.within_tolerance {
                    " (within tolerance)"
                } else {
                    ""
                },
                p.replicas
            )?,
            (Ok(v), None) => write!(f, "{} {v}/{}", self.name, self.target)?,
            (Err(e), _) => write!(f, "{} {e} ({} failures)", self.name, self.failures)?,
        }
        if let Some(Source::Fallback { replicas }) = self.source {
            write!(f, " [fallback {replicas}]")?;
        }
        Ok(())
    }
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDue => f.write_str("no loop due"),
            Self::Keda(action) => write!(f, "KEDA {action}"),
            Self::Hpa(verdict) => write!(f, "HPA {verdict}"),
            Self::KedaThenHpa(action, verdict) => write!(f, "KEDA {action}, then HPA {verdict}"),
        }
    }
}

impl fmt::Display for TriggerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Failed => "failed",
            Self::Empty => "empty",
            Self::NoReadyReplicas => "fallback impossible (no ready replica)",
        })
    }
}

impl fmt::Display for KedaAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("left the count to the HPA"),
            Self::Activated(n) => write!(f, "activated the target at {n}"),
            Self::Deactivated => f.write_str("scaled to zero after the cooldown"),
            Self::RaisedToMin(n) => write!(f, "raised the count to minReplicaCount {n}"),
        }
    }
}

impl fmt::Display for HpaVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ScalingDisabled => f.write_str("disabled at 0 replicas"),
            Self::AboveMax => f.write_str("above maxReplicaCount: set to it"),
            Self::BelowMin => f.write_str("below minReplicaCount: set to it"),
            Self::InvalidMetrics {
                invalid,
                recommendation,
            } => {
                write!(f, "did not scale: {invalid} metric(s) failed")?;
                match recommendation {
                    Some(r) => write!(f, " and the others ask for {r}, fewer than now"),
                    None => Ok(()),
                }
            }
            Self::Normalized {
                recommendation,
                stabilized,
                stabilization,
                limit,
            } => {
                write!(f, "recommends {recommendation}")?;
                if *stabilization != Stabilization::None {
                    write!(f, ", {stabilization} at {stabilized}")?;
                }
                write!(f, ", {limit}")
            }
        }
    }
}

impl fmt::Display for Stabilization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "not stabilized",
            Self::ScaleUpStabilized => "held down by the scale-up window",
            Self::ScaleDownStabilized => "held up by the scale-down window",
        })
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DesiredWithinRange => "within policies and min/max",
            Self::ScaleUpLimit => "limited by the scale-up policy",
            Self::ScaleDownLimit => "limited by the scale-down policy",
            Self::TooManyReplicas => "capped at maxReplicaCount",
            Self::TooFewReplicas => "raised to minReplicaCount",
        })
    }
}
