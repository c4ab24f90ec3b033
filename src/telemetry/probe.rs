//! `Probe`: how a component reports its state at each scrape, as readings of catalog series.

use std::time::Duration;

use super::catalog::{MetricInfo, MetricKind};
use crate::histogram::Histogram;

/// Label names and values of one series.
pub type Labels = Vec<(&'static str, String)>;

/// One gauge or counter value.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The series.
    pub metric: &'static MetricInfo,
    /// Its labels, in the catalog's order.
    pub labels: Labels,
    /// Its value.
    pub value: f64,
}

/// One histogram's buckets and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramReading {
    /// The series.
    pub metric: &'static MetricInfo,
    /// Its labels, in the catalog's order.
    pub labels: Labels,
    /// (upper bound, count) of the non-empty fine buckets, ascending.
    pub buckets: Vec<(Duration, u64)>,
    /// The sum of the values recorded.
    pub sum: Duration,
}

/// Everything the probes reported in one scrape.
#[derive(Debug, Default)]
pub struct Readings {
    values: Vec<Reading>,
    histograms: Vec<HistogramReading>,
}

fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Readings {
    /// Reports the value of a gauge or counter.
    pub fn set(&mut self, metric: &'static MetricInfo, pairs: &[(&'static str, &str)], value: f64) {
        debug_assert_ne!(metric.kind, MetricKind::Histogram, "{}", metric.name);
        debug_assert_eq!(pairs.len(), metric.labels.len(), "{}", metric.name);
        self.values.push(Reading {
            metric,
            labels: labels(pairs),
            value,
        });
    }

    /// Reports a histogram as it is now.
    pub fn histogram(
        &mut self,
        metric: &'static MetricInfo,
        pairs: &[(&'static str, &str)],
        h: &Histogram,
    ) {
        debug_assert_eq!(metric.kind, MetricKind::Histogram, "{}", metric.name);
        self.histograms.push(HistogramReading {
            metric,
            labels: labels(pairs),
            buckets: h.buckets(),
            sum: h.sum(),
        });
    }

    /// The gauge and counter values, in the order reported.
    pub fn values(&self) -> &[Reading] {
        &self.values
    }

    /// The histograms, in the order reported.
    pub fn histograms(&self) -> &[HistogramReading] {
        &self.histograms
    }
}

/// Something whose state is read when metrics are scraped.
///
/// Components implement it over their own counters and snapshots; the exporter reads every
/// registered probe once per scrape, so related series agree and nothing is recorded on a hot
/// path.
pub trait Probe: Send + Sync + 'static {
    /// What this probe exports, one name per label set it owns (`coordinator default`,
    /// `provider ibkr`): registering two probes that claim the same name is refused, so no
    /// series is exported twice.
    fn claims(&self) -> Vec<String> {
        Vec::new()
    }

    /// Reports the current value of every series it knows.
    fn read(&self, out: &mut Readings);
}

impl<P: Probe + ?Sized> Probe for std::sync::Arc<P> {
    fn claims(&self) -> Vec<String> {
        (**self).claims()
    }

    fn read(&self, out: &mut Readings) {
        (**self).read(out);
    }
}
