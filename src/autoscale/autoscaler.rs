//! The model itself: KEDA's polling loop and the HPA's sync loop around one ScaledObject,
//! driven by the caller's clock.

use super::decision::{Decision, TriggerVerdict, Why};
use super::hpa::{Hpa, HpaSync, ModelParams};
use super::keda::{Keda, KedaAction, KedaPoll};
use super::reading::{Reading, Replicas};
use super::replicas::{self, milli};
use super::scaled_object::{FallbackBehavior, ScaledObject, ScaledObjectError};
use crate::invalid::InvalidSetting;

/// Slack when comparing the caller's clock with a loop's due time, so that polls at
/// accumulated float steps (0.1 s × 150) still land on their period.
const DUE_SLACK_S: f64 = 1e-6;

/// KEDA + the Kubernetes HPA for one ScaledObject, as a pure state machine.
///
/// Two loops run on the caller's clock, as in a cluster:
/// - **KEDA's loop**, every `pollingInterval`: reads every trigger, counts failures, refreshes
///   the `useCachedMetrics` cache, and scales from zero (a trigger above its activation
///   threshold), to zero (`minReplicaCount: 0`, every trigger inactive for `cooldownPeriod`)
///   or up to `minReplicaCount`. It never scales between 1 and N: the HPA does.
/// - **The HPA's sync**, every [`ModelParams::hpa_sync_period_s`] (15 s): asks KEDA's metrics
///   server for each trigger's value, which KEDA answers with a fresh read of the source
///   (or its cache with `useCachedMetrics`, or the fallback value after too many failures),
///   and computes the new count: per-trigger proposals with the tolerance, the max over
///   triggers, the stabilization windows, the `behavior` policies, min/max.
///
/// So between 1 and N replicas the reaction time is set by the HPA's sync period, not by
/// `pollingInterval` (unless the triggers use cached metrics).
///
/// Both loops run at the first [`poll`](Self::poll), then each again once its period has
/// passed since its last run; a poll in between runs whatever is due and returns
/// [`Why::NotDue`] when nothing is. Call it whenever convenient (every simulated second, or
/// at [`next_due_s`](Self::next_due_s)) with what each trigger's source answers *now*.
#[derive(Debug, Clone)]
pub struct Autoscaler {
    object: ScaledObject,
    params: ModelParams,
    hpa: Hpa,
    keda: Keda,
    next_hpa_s: Option<f64>,
    next_keda_s: Option<f64>,
}

impl Autoscaler {
    /// A model of `object` under the HPA controller's `params`.
    ///
    /// Refuses what the model does not cover (`idleReplicaCount`, `scalingModifiers`, a
    /// `scalingModifiers` fallback) and out-of-range parameters, naming the key.
    pub fn new(object: &ScaledObject, params: ModelParams) -> Result<Self, InvalidSetting> {
        if object.idle_replica_count.is_some() {
            return Err(InvalidSetting::new(
                "spec.idleReplicaCount",
                "not covered by the model",
            ));
        }
        if object.scaling_modifiers {
            return Err(InvalidSetting::new(
                "spec.advanced.scalingModifiers",
                "not covered by the model",
            ));
        }
        if object
            .fallback
            .is_some_and(|f| f.behavior == FallbackBehavior::ScalingModifiers)
        {
            return Err(InvalidSetting::new(
                "spec.fallback.behavior",
                "scalingModifiers is not covered by the model",
            ));
        }
        crate::invalid::positive(&[("hpa_sync_period_s", params.hpa_sync_period_s)])?;
        if !(params.tolerance >= 0.0 && params.tolerance.is_finite()) {
            return Err(InvalidSetting::new(
                "tolerance",
                format!("must be >= 0, got {}", params.tolerance),
            ));
        }
        if !(params.downscale_stabilization_s >= 0.0
            && params.downscale_stabilization_s.is_finite())
        {
            return Err(InvalidSetting::new(
                "downscale_stabilization_s",
                format!("must be >= 0, got {}", params.downscale_stabilization_s),
            ));
        }
        Ok(Self {
            object: object.clone(),
            params,
            hpa: Hpa::new(object, &params),
            keda: Keda::new(object),
            next_hpa_s: None,
            next_keda_s: None,
        })
    }

    /// Reads a ScaledObject from `yaml` and models it with the default parameters.
    pub fn from_yaml(yaml: &str) -> Result<Self, ScaledObjectError> {
        let object = ScaledObject::from_yaml(yaml)?;
        Ok(Self::new(&object, ModelParams::default())?)
    }

    /// The modelled object.
    pub fn object(&self) -> &ScaledObject {
        &self.object
    }

    /// The controller parameters.
    pub fn params(&self) -> &ModelParams {
        &self.params
    }

    /// The earliest time at which a poll runs a loop (`-inf` before the first poll).
    pub fn next_due_s(&self) -> f64 {
        match (self.next_hpa_s, self.next_keda_s) {
            (Some(h), Some(k)) => h.min(k),
            _ => f64::NEG_INFINITY,
        }
    }

    /// Runs whichever loops are due at `now_s` (seconds on any clock that only moves forward)
    /// with the target at `replicas` and `readings[i]` the answer of trigger `i`'s source
    /// (`Option<f64>`: `None` is an empty answer; or a [`Reading`], which can also say the
    /// read failed). A missing reading counts as failed; extra ones are ignored.
    pub fn poll<R: Copy + Into<Reading>>(
        &mut self,
        now_s: f64,
        replicas: impl Into<Replicas>,
        readings: &[R],
    ) -> Decision {
        let replicas = replicas.into();
        let readings: Vec<Reading> = readings.iter().map(|r| (*r).into()).collect();
        let due = |next: Option<f64>| next.is_none_or(|t| now_s + DUE_SLACK_S >= t);
        let mut current = replicas.current;
        let mut keda = None;
        if due(self.next_keda_s) {
            self.next_keda_s = Some(now_s + f64::from(self.object.polling_interval_s));
            let poll = self.keda.poll(now_s, replicas, &readings);
            current = match poll.action {
                KedaAction::None => current,
                KedaAction::Activated(n) | KedaAction::RaisedToMin(n) => n,
                KedaAction::Deactivated => 0,
            };
            keda = Some(poll);
        }
        let (mut hpa, mut per_trigger) = (None, Vec::new());
        if due(self.next_hpa_s) {
            self.next_hpa_s = Some(now_s + self.params.hpa_sync_period_s);
            let pods = Replicas::new(current, replicas.ready);
            let (sync, verdicts) = self.sync_hpa(now_s, pods, &readings);
            current = sync.desired;
            hpa = Some(sync);
            per_trigger = verdicts;
        }
        Decision {
            at_s: now_s,
            current: replicas.current,
            desired: current,
            why: why(keda, hpa),
            per_trigger,
            keda,
            hpa,
        }
    }

    fn sync_hpa(
        &mut self,
        now_s: f64,
        pods: Replicas,
        readings: &[Reading],
    ) -> (HpaSync, Vec<TriggerVerdict>) {
        let min = self.object.hpa_min_replicas();
        // Outside [min, max] (and at 0) the HPA corrects the count without asking KEDA.
        let reads_metrics =
            pods.current > 0 && (min..=self.object.max_replica_count).contains(&pods.current);
        let mut verdicts = Vec::new();
        if reads_metrics {
            let tolerances = self.hpa.tolerances();
            for (i, trigger) in self.object.triggers.iter().enumerate() {
                let reading = readings.get(i).copied().unwrap_or(Reading::Failed);
                let answer = self.keda.serve(i, reading, pods);
                let proposal = answer.ok().map(|m| {
                    replicas::external(
                        trigger.metric_type,
                        m.milli,
                        milli(trigger.target()),
                        pods,
                        tolerances,
                    )
                });
                verdicts.push(TriggerVerdict {
                    name: trigger.label(i),
                    metric_type: trigger.metric_type,
                    target: trigger.target(),
                    value: answer.map(|m| m.milli as f64 / 1000.0),
                    source: answer.ok().map(|m| m.source),
                    proposal,
                    failures: self.keda.failures(i),
                });
            }
        }
        let proposals: Vec<Option<u32>> = verdicts
            .iter()
            .map(|v| v.proposal.map(|p| p.replicas))
            .collect();
        (self.hpa.sync(now_s, pods.current, &proposals), verdicts)
    }

    /// The HPA's stabilization windows, up and down, in seconds.
    pub fn stabilization_windows_s(&self) -> (f64, f64) {
        self.hpa.stabilization_windows_s()
    }

    /// The tolerances the HPA applies (per direction).
    pub fn tolerances(&self) -> replicas::Tolerances {
        self.hpa.tolerances()
    }
}

fn why(keda: Option<KedaPoll>, hpa: Option<HpaSync>) -> Why {
    match (keda.map(|k| k.action), hpa) {
        (Some(action), Some(sync)) if action != KedaAction::None => {
            Why::KedaThenHpa(action, sync.verdict)
        }
        (_, Some(sync)) => Why::Hpa(sync.verdict),
        (Some(action), None) => Why::Keda(action),
        (None, None) => Why::NotDue,
    }
}

#[cfg(test)]
#[path = "autoscaler_tests.rs"]
mod tests;
