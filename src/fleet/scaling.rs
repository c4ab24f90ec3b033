//! The slow loop's signal: how many store replicas a coordinator needs for the demand its
//! agents report, not for the queue the fast loop holds down.

use serde::{Deserialize, Serialize};

use crate::invalid::InvalidSetting;

/// How the desired replica count is computed (`bridge.scaling:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    /// Capacity kept above the demand (1.25: replicas run at most 80 % busy).
    pub headroom: f64,
    /// A backlog should drain within this long, milliseconds.
    pub drain_target_ms: u64,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            headroom: 1.25,
            drain_target_ms: 60_000,
        }
    }
}

impl ScalingConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if !(self.headroom >= 1.0 && self.headroom.is_finite()) {
            return Err(InvalidSetting::new(
                "headroom",
                format!("must be >= 1, got {}", self.headroom),
            ));
        }
        crate::invalid::at_least_one(&[("drain_target_ms", self.drain_target_ms)])
    }
}

/// Everything the desired count is computed from, as the JSON API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scaling {
    /// Rows per second the agents offered before throttling.
    pub demand: f64,
    /// Rows waiting (the write consumer's lag when known, else the stores' depths).
    pub backlog: u64,
    /// Rows per second one replica writes while busy (the mean of the live replicas'
    /// measured service rates); `None` until some replica has been saturated.
    pub replica_capacity: Option<f64>,
    /// Live replicas.
    pub replicas: u64,
    /// [`ScalingConfig::headroom`].
    pub headroom: f64,
    /// [`ScalingConfig::drain_target_ms`], in seconds.
    pub drain_target_s: f64,
    /// The result.
    pub desired_replicas: u64,
    /// The formula with its numbers.
    pub formula: String,
}

impl Scaling {
    /// `desired = ceil(demand × headroom / capacity + backlog / (capacity × drain_target))`,
    /// at least 1. Without a capacity estimate (no replica has ever been saturated, so none
    /// has ever needed more capacity than it had) the desired count is the live count: the
    /// signal never shrinks a fleet it cannot measure.
    pub fn compute(
        config: &ScalingConfig,
        demand: f64,
        backlog: u64,
        replica_capacity: Option<f64>,
        replicas: u64,
    ) -> Self {
        let drain_target_s = config.drain_target_ms as f64 / 1_000.0;
        let (desired_replicas, formula) = match replica_capacity.filter(|c| *c > 0.0) {
            Some(cap) => {
                let need = demand * config.headroom / cap + backlog as f64 / (cap * drain_target_s);
                let desired = (need.ceil() as u64).max(1);
                let formula = format!(
                    "ceil({demand:.0} × {} / {cap:.0} + {backlog} / ({cap:.0} × {drain_target_s})) = {desired}",
                    config.headroom
                );
                (desired, formula)
            }
            None => (
                replicas.max(1),
                format!(
                    "no capacity measured yet: the live replicas, {}",
                    replicas.max(1)
                ),
            ),
        };
        Self {
            demand,
            backlog,
            replica_capacity,
            replicas,
            headroom: config.headroom,
            drain_target_s,
            desired_replicas,
            formula,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demand_and_backlog_ask_for_replicas() {
        let c = ScalingConfig::default();
        // 3× one replica's capacity with 25 % headroom: 3.75, so 4.
        assert_eq!(
            Scaling::compute(&c, 6_000.0, 0, Some(2_000.0), 1).desired_replicas,
            4
        );
        // A backlog of two minutes of one replica drains in a minute with 2 more.
        assert_eq!(
            Scaling::compute(&c, 2_000.0, 240_000, Some(2_000.0), 1).desired_replicas,
            4
        );
        // No demand: one.
        assert_eq!(
            Scaling::compute(&c, 0.0, 0, Some(2_000.0), 5).desired_replicas,
            1
        );
        // Unmeasured: hold the live count.
        let s = Scaling::compute(&c, 9_000.0, 0, None, 3);
        assert_eq!(s.desired_replicas, 3);
        assert!(s.formula.contains("no capacity"), "{}", s.formula);
        assert!(ScalingConfig { headroom: 0.9, ..c }.validate().is_err());
    }
}
