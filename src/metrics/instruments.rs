//! Every opentelemetry instrument, registered in one place: one observable gauge or counter
//! per catalog entry (histograms have their own collector), each reporting what the probes
//! read in the current scrape.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use super::scrape::Scrape;
use crate::telemetry::{BUILD_INFO, CATALOG, MetricInfo, MetricKind};

/// Creates every gauge and counter of the catalog on `meter`.
pub(crate) fn register(meter: &Meter, scrape: &Arc<Scrape>) {
    for info in CATALOG {
        let scrape = scrape.clone();
        let observe = move |o: &dyn AsyncInstrument<f64>| emit(info, &scrape, o);
        match info.kind {
            MetricKind::Gauge => {
                meter
                    .f64_observable_gauge(info.name)
                    .with_description(info.help)
                    .with_callback(observe)
                    .build();
            }
            MetricKind::Counter => {
                meter
                    .f64_observable_counter(info.name)
                    .with_description(info.help)
                    .with_callback(observe)
                    .build();
            }
            MetricKind::Histogram => {}
        }
    }
}

/// Reports every reading of `info` in the current scrape (and the build info, which is the
/// exporter's own).
fn emit(info: &'static MetricInfo, scrape: &Scrape, o: &dyn AsyncInstrument<f64>) {
    if info == &BUILD_INFO {
        o.observe(1.0, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))]);
        return;
    }
    for (labels, value) in scrape.current().values(info.name) {
        o.observe(*value, labels);
    }
}
