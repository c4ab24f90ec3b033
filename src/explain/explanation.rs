//! One look at a ScaledObject: each trigger's observation beside the model's verdict on it,
//! and the model's decision. Pure: built from observations someone else made.

use crate::autoscale::{
    Autoscaler, Decision, MetricType, ModelParams, Reading, Replicas, ScaledObject, Tolerances,
    TriggerVerdict,
};
use crate::invalid::InvalidSetting;

use super::answer::Observation;

/// Why the model scales (or not) the target, trigger by trigger.
///
/// Display prints one line per trigger, the policies, and the result;
/// [`to_json`](Self::to_json) gives the same for machines.
#[derive(Debug)]
pub struct Explanation {
    /// The ScaledObject looked at.
    pub object: ScaledObject,
    /// The target's pods, as given.
    pub replicas: Replicas,
    /// The tolerances the HPA applies.
    pub tolerances: Tolerances,
    /// The stabilization windows (up, down), seconds.
    pub windows_s: (f64, f64),
    /// One per trigger, in order.
    pub triggers: Vec<TriggerExplanation>,
    /// The model's decision.
    pub decision: Decision,
}

/// One trigger: what its source answered and what the model made of it.
#[derive(Debug)]
pub struct TriggerExplanation {
    /// Its name (or `<type>#<index>`).
    pub name: String,
    /// KEDA's `type`.
    pub kind: &'static str,
    /// Its metric type.
    pub metric_type: MetricType,
    /// Its target.
    pub target: f64,
    /// What its source answered.
    pub observation: Observation,
    /// The model's verdict, when the HPA read the metrics (not at 0 replicas or outside
    /// min..max).
    pub verdict: Option<TriggerVerdict>,
    /// Whether the value makes the trigger active (above its activation threshold): what
    /// scales from zero.
    pub active: Option<bool>,
}

impl Explanation {
    /// Runs a fresh model of `object` under `params` once (KEDA's loop, then the HPA's sync)
    /// on `observations`, one per trigger in order, with the target at `replicas`.
    ///
    /// Refuses what the model does not cover ([`Autoscaler::new`]).
    pub fn new(
        object: &ScaledObject,
        params: ModelParams,
        replicas: Replicas,
        observations: Vec<Observation>,
    ) -> Result<Self, InvalidSetting> {
        let mut model = Autoscaler::new(object, params)?;
        let readings: Vec<Reading> = observations.iter().map(|o| o.answer.reading()).collect();
        let decision = model.poll(0.0, replicas, &readings);
        let mut verdicts = decision.per_trigger.clone().into_iter();
        let triggers = object
            .triggers
            .iter()
            .zip(observations)
            .enumerate()
            .map(|(i, (trigger, observation))| {
                let active = observation
                    .answer
                    .reading()
                    .value()
                    .map(|v| trigger.is_active(v));
                TriggerExplanation {
                    name: trigger.label(i),
                    kind: trigger.kind(),
                    metric_type: trigger.metric_type,
                    target: trigger.target(),
                    observation,
                    verdict: verdicts.next(),
                    active,
                }
            })
            .collect();
        Ok(Self {
            object: object.clone(),
            replicas,
            tolerances: model.tolerances(),
            windows_s: model.stabilization_windows_s(),
            triggers,
            decision,
        })
    }
}
