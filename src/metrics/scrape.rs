//! The registered probes and the consistent copy of their readings each scrape works from.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};

use opentelemetry::KeyValue;

use super::MetricsError;
use crate::telemetry::{HistogramReading, Probe, Readings};

/// One scrape's readings, grouped for the instruments that report them.
#[derive(Default)]
pub(crate) struct Current {
    values: HashMap<&'static str, Vec<(Vec<KeyValue>, f64)>>,
    histograms: Vec<HistogramReading>,
}

impl Current {
    fn of(readings: Readings) -> Self {
        let mut values: HashMap<&'static str, Vec<(Vec<KeyValue>, f64)>> = HashMap::new();
        for r in readings.values() {
            let labels = r
                .labels
                .iter()
                .map(|(k, v)| KeyValue::new(*k, v.clone()))
                .collect();
            values
                .entry(r.metric.name)
                .or_default()
                .push((labels, r.value));
        }
        Self {
            values,
            histograms: readings.histograms().to_vec(),
        }
    }

    /// Every value of the gauge or counter `name`, with its labels.
    pub(crate) fn values(&self, name: &str) -> &[(Vec<KeyValue>, f64)] {
        self.values.get(name).map_or(&[], Vec::as_slice)
    }

    /// Every histogram reading.
    pub(crate) fn histograms(&self) -> &[HistogramReading] {
        &self.histograms
    }
}

/// A registered probe and the names it claims.
type Registered = (Vec<String>, Box<dyn Probe>);

/// Everything registered with one [`Metrics`](super::Metrics), and the current scrape.
#[derive(Default)]
pub(crate) struct Scrape {
    probes: RwLock<Vec<Registered>>,
    current: Mutex<Current>,
}

impl Scrape {
    /// Adds `probe`, unless another probe already claims one of its names.
    pub(crate) fn register(&self, probe: Box<dyn Probe>) -> Result<(), MetricsError> {
        let claims = probe.claims();
        let mut probes = self.probes.write().unwrap_or_else(PoisonError::into_inner);
        for claim in &claims {
            if probes.iter().any(|(taken, _)| taken.contains(claim)) {
                return Err(MetricsError::AlreadyRegistered(claim.clone()));
            }
        }
        probes.push((claims, probe));
        Ok(())
    }

    /// The copy the current scrape works from (a poisoned lock is read anyway: metrics must
    /// not take a process down).
    pub(crate) fn current(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every probe once and makes that the current scrape.
    pub(crate) fn refresh(&self) {
        let mut readings = Readings::default();
        for (_, probe) in self
            .probes
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            probe.read(&mut readings);
        }
        *self.current() = Current::of(readings);
    }
}
