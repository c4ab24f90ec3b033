//! `Metrics`: one Prometheus registry fed by opentelemetry, read from the probes registered in
//! it.

use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Registry, TextEncoder};

use super::MetricsError;
use super::histograms::HistogramCollector;
use super::instruments;
use super::scrape::Scrape;
use crate::telemetry::Probe;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Inner {
    registry: Registry,
    scrape: Arc<Scrape>,
    /// One scrape at a time: each reads every probe into the current copy, then gathers.
    render: Mutex<()>,
    // Kept alive for the callbacks; shut down on drop.
    _provider: SdkMeterProvider,
}

/// A process's metrics: register what it runs, then serve [`render`](Self::render) on
/// `/metrics` (see [`router`](Self::router)).
///
/// Every value is read when scraped, from the [probes](Probe) registered here; nothing is
/// recorded on hot paths. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// An empty registry with every instrument of the [catalog](crate::telemetry::CATALOG)
    /// defined.
    ///
    /// The exporter adds no unit or `_total` suffix, no `otel_scope_*` label and no
    /// `target_info`: names and labels are exactly the catalog's.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let scrape = Arc::new(Scrape::default());
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.into()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        instruments::register(&provider.meter("backflow"), &scrape);
        let histograms = HistogramCollector::new(scrape.clone())
            .map_err(|e| MetricsError::Exporter(e.into()))?;
        registry
            .register(Box::new(histograms))
            .map_err(|e| MetricsError::Exporter(e.into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                scrape,
                render: Mutex::new(()),
                _provider: provider,
            }),
        })
    }

    /// Reads `probe` at every scrape from now on.
    ///
    /// Fails if a registered probe already claims one of its names (the same coordinator,
    /// provider, handler or bridge twice). The registry keeps the probe, and with it whatever
    /// the probe holds (e.g. a write coordinator's handle): stop such things explicitly rather
    /// than relying on the last handle being dropped.
    pub fn register(&self, probe: impl Probe) -> Result<(), MetricsError> {
        self.inner.scrape.register(Box::new(probe))
    }

    /// Reads every registered probe and encodes the Prometheus text format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let _one_at_a_time = self
            .inner
            .render
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.scrape.refresh();
        let families = self.inner.registry.gather();
        TextEncoder::new()
            .encode_to_string(&families)
            .map_err(|e| MetricsError::Encode(e.into()))
    }
}
