//! A pure model of KEDA + the Kubernetes HPA scaling the store Deployment, whose decisions
//! say why (`backflow explain`, in [`crate::explain`], prints them for live readings).
//!
//! [`ScaledObject::from_yaml`] reads a KEDA `ScaledObject`; an [`Autoscaler`] built from it
//! is a state machine on the caller's clock: [`Autoscaler::poll`] takes the time in seconds,
//! the target's replicas and one [`Reading`] per trigger, and returns a [`Decision`] with the
//! new replica count and why. No I/O and no clock of its own, so a simulator can drive it
//! under paused time and a real-process test with readings from a real Prometheus.
//! [`Query`] evaluates the PromQL our triggers use over series the caller supplies.
//!
//! ```
//! use backflow::autoscale::{Autoscaler, Query, Series};
//!
//! let yaml = std::fs::read_to_string("deploy/keda/scaledobject-coordinator.yaml").unwrap();
//! let mut model = Autoscaler::from_yaml(&yaml).unwrap();
//! let series = [Series::new("coordinator_desired_replicas", &[("coordinator_id", "default")], 5.0),
//!               Series::new("coordinator_backpressure_hard", &[("coordinator_id", "default")], 0.0)];
//! // Prometheus triggers read their query over the series; the lag trigger reads 0 here.
//! let readings: Vec<_> = model.object().triggers.iter().map(|t| match &t.scaler {
//!     backflow::autoscale::Scaler::Prometheus { query, .. } =>
//!         Query::parse(query).unwrap().reading(&series),
//!     _ => backflow::autoscale::Reading::Value(0.0),
//! }).collect();
//! let decision = model.poll(0.0, 1, &readings);
//! // ceil(5 / 1) = 5 asked; the scale-up policy (+10 pods per 15 s) allows 1 -> 5 at once.
//! assert_eq!(decision.desired, 5);
//! ```
//!
//! What is modelled and what is not is listed in `deploy/keda/README.md` ("The autoscaler
//! model"); each file names the Kubernetes or KEDA source it follows.

mod autoscaler;
mod behavior_spec;
mod decision;
mod history;
mod hpa;
mod keda;
mod limits;
mod query;
mod reading;
mod replicas;
mod scaled_object;
mod trigger;

pub use autoscaler::Autoscaler;
pub use behavior_spec::{Behavior, PolicyType, ScalingPolicy, ScalingRules, SelectPolicy};
pub use decision::{Decision, TriggerVerdict, Why};
pub use history::Stabilization;
pub use hpa::{HpaSync, HpaVerdict, Limit, ModelParams};
pub use keda::{KedaAction, KedaPoll, Source, TriggerError};
pub use query::{Aggregation, Matcher, Query, QueryError, Sample, Series};
pub use reading::{Reading, Replicas};
pub use replicas::{Proposal, Tolerances, milli};
pub use scaled_object::{
    DEFAULT_COOLDOWN_PERIOD_S, DEFAULT_MAX_REPLICA_COUNT, DEFAULT_POLLING_INTERVAL_S, Fallback,
    FallbackBehavior, ScaledObject, ScaledObjectError,
};
pub use trigger::{MetricType, Scaler, Trigger};

#[cfg(test)]
mod properties;
