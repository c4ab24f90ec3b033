//! KEDA between the triggers' sources and the HPA (KEDA v2.20 `pkg/scaling/scale_handler.go`,
//! `pkg/fallback/fallback.go`, `pkg/scaling/executor/scale_scaledobjects.go`): how a scaler
//! reads a source, how failures are counted and answered with `fallback`, the
//! `useCachedMetrics` cache, and the polling loop that scales from and to zero.
//!
//! KEDA reads a trigger on two paths, and both count failures: its own loop every
//! `pollingInterval`, and the metrics server each time the HPA asks (every HPA sync). Any
//! success resets the trigger's count; a failure with the count then *above*
//! `failureThreshold` is answered with the fallback value.

use super::reading::{Reading, Replicas};
use super::replicas::milli;
use super::scaled_object::ScaledObject;
use super::trigger::{MetricType, Scaler, Trigger};

/// Why a trigger gave the HPA no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerError {
    /// The source could not be read or its answer was refused (see [`Reading::Failed`]).
    Failed,
    /// The source had nothing to read and the scaler does not read that as 0 (Prometheus
    /// with `ignoreNullValues: "false"`, a missing consumer or JSON value).
    Empty,
    /// The fallback of a `Value` trigger divides by the ready replicas, and none are ready.
    NoReadyReplicas,
}

/// Where the value the HPA got for a trigger came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Source {
    /// A fresh read of the source.
    Live,
    /// KEDA's last poll (`useCachedMetrics`).
    Cached,
    /// `fallback`: the trigger failed too often; the value makes the HPA ask for `replicas`.
    Fallback {
        /// The count the fallback asks for.
        replicas: u32,
    },
}

/// A trigger's metric as the HPA receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Metric {
    /// Milli-units.
    pub(crate) milli: i64,
    pub(crate) source: Source,
}

/// What KEDA's polling loop did to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KedaAction {
    /// Nothing: the HPA handles 1..N.
    None,
    /// A trigger became active while at 0 replicas: scaled to `minReplicaCount` (at least 1).
    Activated(u32),
    /// Every trigger inactive for `cooldownPeriod` with `minReplicaCount: 0`: scaled to 0.
    Deactivated,
    /// Fewer replicas than `minReplicaCount`: raised to it.
    RaisedToMin(u32),
}

/// One run of KEDA's polling loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KedaPoll {
    /// Whether any trigger was active (above its activation threshold, or falling back).
    pub active: bool,
    /// Whether any trigger failed (without fallback).
    pub error: bool,
    /// What it did.
    pub action: KedaAction,
}

#[derive(Debug, Clone, Default)]
struct TriggerState {
    failures: u32,
    cached: Option<Result<Metric, TriggerError>>,
}

/// KEDA's state for one ScaledObject.
#[derive(Debug, Clone)]
pub(crate) struct Keda {
    object: ScaledObject,
    triggers: Vec<TriggerState>,
    created_s: Option<f64>,
    last_active_s: Option<f64>,
}

impl Keda {
    pub(crate) fn new(object: &ScaledObject) -> Self {
        Self {
            object: object.clone(),
            triggers: vec![TriggerState::default(); object.triggers.len()],
            created_s: None,
            last_active_s: None,
        }
    }

    /// The trigger's consecutive failures so far.
    pub(crate) fn failures(&self, index: usize) -> u32 {
        self.triggers.get(index).map_or(0, |t| t.failures)
    }

    /// The HPA asks for trigger `index`'s metric (the metrics server's path).
    pub(crate) fn serve(
        &mut self,
        index: usize,
        reading: Reading,
        replicas: Replicas,
    ) -> Result<Metric, TriggerError> {
        let Some(trigger) = self.object.triggers.get(index) else {
            return Err(TriggerError::Failed);
        };
        let cached = match self.triggers.get(index) {
            Some(state) if trigger.use_cached_metrics => state.cached,
            _ => None,
        };
        match cached {
            // A cached value (fallback values included) goes out as is and counts as a success.
            Some(Ok(metric)) => {
                self.succeeded(index);
                let source = match metric.source {
                    Source::Fallback { .. } => metric.source,
                    Source::Live | Source::Cached => Source::Cached,
                };
                Ok(Metric { source, ..metric })
            }
            Some(Err(e)) => self.failed(index, e, replicas),
            None => {
                let raw = scaler_value(trigger, reading);
                self.answer(index, raw, replicas)
            }
        }
    }

    /// What a fresh read of trigger `index` gives the HPA: its value, counted as a success,
    /// or the failure counted (and, past the threshold, the fallback).
    fn answer(
        &mut self,
        index: usize,
        raw: Result<f64, TriggerError>,
        replicas: Replicas,
    ) -> Result<Metric, TriggerError> {
        match raw {
            Ok(v) => {
                self.succeeded(index);
                Ok(Metric {
                    milli: milli(v),
                    source: Source::Live,
                })
            }
            Err(e) => self.failed(index, e, replicas),
        }
    }

    /// One run of KEDA's polling loop at `now_s`: reads every trigger, refreshes the cache,
    /// and scales from or to zero (or up to `minReplicaCount`) when that is due.
    pub(crate) fn poll(
        &mut self,
        now_s: f64,
        replicas: Replicas,
        readings: &[Reading],
    ) -> KedaPoll {
        let created_s = *self.created_s.get_or_insert(now_s);
        let (mut active, mut error) = (false, false);
        for index in 0..self.object.triggers.len() {
            let reading = readings.get(index).copied().unwrap_or(Reading::Failed);
            let Some(trigger) = self.object.triggers.get(index) else {
                continue;
            };
            let raw = scaler_value(trigger, reading);
            let is_active = raw.is_ok_and(|v| trigger.is_active(v));
            let answer = self.answer(index, raw, replicas);
            let falling_back = matches!(
                answer,
                Ok(Metric {
                    source: Source::Fallback { .. },
                    ..
                })
            );
            active |= answer.is_ok() && (is_active || falling_back);
            error |= answer.is_err();
            if let Some(state) = self.triggers.get_mut(index) {
                if self
                    .object
                    .triggers
                    .get(index)
                    .is_some_and(|t| t.use_cached_metrics)
                {
                    state.cached = Some(answer);
                }
            }
        }
        let action = self.execute(now_s, created_s, replicas.current, active, error);
        KedaPoll {
            active,
            error,
            action,
        }
    }

    /// KEDA's `RequestScale` for a ScaledObject.
    fn execute(
        &mut self,
        now_s: f64,
        created_s: f64,
        current: u32,
        active: bool,
        error: bool,
    ) -> KedaAction {
        let min = self.object.min_replica_count;
        if active {
            if current == 0 {
                self.last_active_s = Some(now_s);
                return KedaAction::Activated(min.max(1));
            }
            // With some trigger failing, KEDA does not refresh the last active time.
            if !error {
                self.last_active_s = Some(now_s);
            }
            return KedaAction::None;
        }
        let fallback_replicas = self.object.fallback.map(|f| f.replicas);
        if error && fallback_replicas != Some(0) {
            // Failing triggers: leave the count to the HPA (and the fallback).
            return KedaAction::None;
        }
        if current > 0 && min == 0 {
            let cooled = match self.last_active_s {
                None => created_s + f64::from(self.object.initial_cooldown_period_s) < now_s,
                Some(last) => last + f64::from(self.object.cooldown_period_s) < now_s,
            };
            return if cooled {
                KedaAction::Deactivated
            } else {
                KedaAction::None
            };
        }
        if current < min {
            return KedaAction::RaisedToMin(min);
        }
        KedaAction::None
    }

    fn succeeded(&mut self, index: usize) {
        // KEDA tracks health only for objects with a fallback.
        if self.object.fallback.is_some() {
            if let Some(state) = self.triggers.get_mut(index) {
                state.failures = 0;
            }
        }
    }

    /// `GetMetricsWithFallback` for a failed read.
    fn failed(
        &mut self,
        index: usize,
        error: TriggerError,
        replicas: Replicas,
    ) -> Result<Metric, TriggerError> {
        let Some(fallback) = self.object.fallback else {
            return Err(error);
        };
        let Some(state) = self.triggers.get_mut(index) else {
            return Err(error);
        };
        state.failures = state.failures.saturating_add(1);
        if state.failures <= fallback.failure_threshold {
            return Err(error);
        }
        let Some(trigger) = self.object.triggers.get(index) else {
            return Err(error);
        };
        let wanted = fallback
            .behavior
            .replicas(fallback.replicas, replicas.current);
        // KEDA reports `target × replicas` (divided by the ready pods for a Value target), so
        // that the HPA's own arithmetic lands on `replicas`.
        let factor = match trigger.metric_type {
            MetricType::AverageValue => f64::from(wanted),
            MetricType::Value if replicas.ready == 0 => return Err(TriggerError::NoReadyReplicas),
            MetricType::Value => f64::from(wanted) / f64::from(replicas.ready),
        };
        let target = milli(trigger.target()) as f64 / 1000.0;
        // Go's int64 conversion truncates.
        let value = (target * 1000.0 * factor) as i64;
        Ok(Metric {
            milli: value,
            source: Source::Fallback { replicas: wanted },
        })
    }
}

/// What a trigger's scaler makes of its source's answer.
pub(crate) fn scaler_value(trigger: &Trigger, reading: Reading) -> Result<f64, TriggerError> {
    match (&trigger.scaler, reading) {
        (
            Scaler::Prometheus {
                ignore_null_values, ..
            },
            Reading::Value(v),
        ) if !v.is_finite() => {
            // NaN and infinities are "null" too.
            if *ignore_null_values {
                Ok(0.0)
            } else {
                Err(TriggerError::Empty)
            }
        }
        (
            Scaler::Prometheus {
                ignore_null_values, ..
            },
            Reading::Empty,
        ) => {
            if *ignore_null_values {
                Ok(0.0)
            } else {
                Err(TriggerError::Empty)
            }
        }
        (_, Reading::Value(v)) => Ok(v),
        (_, Reading::Empty) => Err(TriggerError::Empty),
        (_, Reading::Failed) => Err(TriggerError::Failed),
    }
}

#[cfg(test)]
#[path = "keda_tests.rs"]
mod tests;
