//! The probes' histogram readings, exported as Prometheus histograms at scrape time.
//!
//! A [`Histogram`](crate::histogram::Histogram) records into fine log-linear buckets without
//! locks on the hot path; this collector reads them only when scraped and folds them into
//! fixed `le` bounds, so nothing on a write or acquire path knows about metrics.

use std::collections::HashMap;
use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Bucket, Histogram as ProtoHistogram, LabelPair, Metric, MetricFamily};

use super::scrape::Scrape;
use crate::telemetry::{CATALOG, HistogramReading, MetricKind};

/// Upper bounds of the exported buckets, seconds: 100 µs to 1 min, about three per decade.
pub const BUCKET_BOUNDS_SECONDS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

/// Values recorded (the sum of the bucket counts, so that `+Inf` always equals `_count`).
fn count(h: &HistogramReading) -> u64 {
    h.buckets.iter().map(|(_, n)| n).sum()
}

/// Cumulative counts at each of [`BUCKET_BOUNDS_SECONDS`].
///
/// A fine bucket counts towards the first bound at or above its own upper bound, which is at
/// most 12.5% above any value in it: a value just under a bound may land one bound up, never
/// one down.
fn cumulative(h: &HistogramReading) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(BUCKET_BOUNDS_SECONDS.len());
    let mut fine = h.buckets.iter().peekable();
    let mut seen = 0;
    for le in BUCKET_BOUNDS_SECONDS {
        while let Some((_, n)) = fine.next_if(|(upper, _)| upper.as_secs_f64() <= le) {
            seen += n;
        }
        out.push((le, seen));
    }
    out
}

fn to_proto(h: &HistogramReading) -> Metric {
    let buckets = cumulative(h)
        .into_iter()
        .map(|(le, n)| {
            let mut b = Bucket::default();
            b.set_upper_bound(le);
            b.set_cumulative_count(n);
            b
        })
        .collect();
    let mut proto = ProtoHistogram::default();
    proto.set_sample_count(count(h));
    proto.set_sample_sum(h.sum.as_secs_f64());
    proto.set_bucket(buckets);
    let mut m = Metric::default();
    m.set_label(
        h.labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name((*k).to_owned());
                l.set_value(v.clone());
                l
            })
            .collect(),
    );
    m.set_histogram(proto);
    m
}

/// Exports the histogram readings of the current scrape.
pub(crate) struct HistogramCollector {
    descs: Vec<Desc>,
    scrape: Arc<Scrape>,
}

impl HistogramCollector {
    /// A collector for every histogram in the catalog.
    pub(crate) fn new(scrape: Arc<Scrape>) -> prometheus::Result<Self> {
        let descs = CATALOG
            .iter()
            .filter(|m| m.kind == MetricKind::Histogram)
            .map(|m| {
                Desc::new(
                    m.name.to_owned(),
                    m.help.to_owned(),
                    m.labels.iter().map(|l| (*l).to_owned()).collect(),
                    HashMap::new(),
                )
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(Self { descs, scrape })
    }
}

impl Collector for HistogramCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let current = self.scrape.current();
        let mut families: Vec<MetricFamily> = Vec::new();
        for reading in current.histograms() {
            let metric = to_proto(reading);
            match families
                .iter_mut()
                .find(|f| f.name() == reading.metric.name)
            {
                Some(f) => f.mut_metric().push(metric),
                None => {
                    let mut f = MetricFamily::default();
                    f.set_name(reading.metric.name.to_owned());
                    f.set_help(reading.metric.help.to_owned());
                    f.set_field_type(prometheus::proto::MetricType::HISTOGRAM);
                    f.set_metric(vec![metric]);
                    families.push(f);
                }
            }
        }
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::histogram::Histogram;
    use crate::telemetry::{QUEUE_WAIT_SECONDS, Readings};

    fn reading(h: &Histogram) -> HistogramReading {
        let mut r = Readings::default();
        r.histogram(&QUEUE_WAIT_SECONDS, &[("coordinator_id", "a")], h);
        r.histograms()[0].clone()
    }

    #[test]
    fn fine_buckets_fold_into_cumulative_bounds() {
        let h = Histogram::new();
        for ms in [1, 1, 3, 40, 700] {
            h.record(Duration::from_millis(ms));
        }
        h.record(Duration::from_secs(120));
        let s = reading(&h);
        assert_eq!(count(&s), 6);
        let at = |le: f64| {
            cumulative(&s)
                .into_iter()
                .find(|(b, _)| *b == le)
                .map(|(_, n)| n)
                .unwrap()
        };
        // 1 ms lands in a fine bucket whose upper bound is just above 1 ms: counted at 2.5 ms.
        assert_eq!(at(0.0005), 0);
        assert_eq!(at(0.0025), 2);
        assert_eq!(at(0.005), 3);
        assert_eq!(at(0.05), 4);
        assert_eq!(at(1.0), 5);
        // Beyond the last bound only +Inf (the count) holds it.
        assert_eq!(at(60.0), 5);
        let all = cumulative(&s);
        assert!(all.windows(2).all(|w| w[0].1 <= w[1].1));
        assert!((s.sum.as_secs_f64() - 120.745).abs() < 1e-9);
    }

    #[test]
    fn empty_histogram_exports_zeros() {
        let s = reading(&Histogram::new());
        assert_eq!(count(&s), 0);
        assert!(cumulative(&s).iter().all(|(_, n)| *n == 0));
    }
}
