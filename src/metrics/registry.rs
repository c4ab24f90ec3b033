//! `Metrics`: one Prometheus registry fed by opentelemetry, and what each binary registers in it.

use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::metrics::MeterProvider;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Registry, TextEncoder};

use super::MetricsError;
use super::counts::Counted;
use super::histograms::HistogramCollector;
use super::instruments;
use super::sources::{BridgeSource, RateSource, Sources, write};
use crate::bridge::{BridgeStats, CoordinatorView};
use crate::bus::FeedbackSubscription;
use crate::bus::http::HttpReceiverStats;
use crate::bus::nats::SubscriberStats;
use crate::coordinator::WriteCoordinator;
use crate::feedback::HandlerStats;
use crate::rate::RateCoordinator;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where feedback comes from, for the receive-side counters.
#[derive(Debug, Clone)]
pub enum FeedbackTransport {
    /// A [`NatsSubscriber`](crate::bus::nats::NatsSubscriber)'s counters.
    Nats(Arc<SubscriberStats>),
    /// An [`HttpReceiver`](crate::bus::http::HttpReceiver)'s counters.
    Http(Arc<HttpReceiverStats>),
}

struct Inner {
    registry: Registry,
    sources: Arc<Sources>,
    /// One scrape at a time: each reads every source into the current copy, then gathers.
    render: Mutex<()>,
    // Kept alive for the callbacks; shut down on drop.
    _provider: SdkMeterProvider,
}

/// A process's metrics: register what it runs, then serve [`render`](Self::render) on
/// `/metrics` (see [`router`](super::router)).
///
/// Every value is read when scraped, from the coordinators, limiters and counters registered
/// here; nothing is recorded on hot paths. Cheap to clone.
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
    /// An empty registry with every instrument of the [catalog](super::CATALOG) defined.
    ///
    /// The exporter adds no unit or `_total` suffix, no `otel_scope_*` label and no
    /// `target_info`: names and labels are exactly the catalog's.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let sources = Arc::new(Sources::default());
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_units()
            .without_counter_suffixes()
            .without_target_info()
            .scope_info_enabled(false)
            .build()
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        let provider = SdkMeterProvider::builder().with_reader(exporter).build();
        instruments::register(&provider.meter("backflow"), &sources)?;
        let histograms = HistogramCollector::new(sources.clone())
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        registry
            .register(Box::new(histograms))
            .map_err(|e| MetricsError::Exporter(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                sources,
                render: Mutex::new(()),
                _provider: provider,
            }),
        })
    }

    fn sources(&self) -> &Sources {
        &self.inner.sources
    }

    /// Exports a write coordinator: `coordinator_queue_depth`,
    /// `coordinator_backpressure_{ok,soft,hard}` and the `backflow_store_*` metrics, labelled
    /// with its coordinator id, read from [`WriteCoordinator::health`] at each scrape.
    ///
    /// The registry keeps a handle to the coordinator; stop it explicitly
    /// ([`WriteCoordinator::stop`]) rather than relying on the last handle being dropped.
    /// Fails if a coordinator with the same id is already registered.
    pub fn register_store<T: Send + Sync + 'static>(
        &self,
        coordinator: &WriteCoordinator<T>,
    ) -> Result<(), MetricsError> {
        let mut stores = write(&self.sources().stores);
        let id = coordinator.coordinator_id();
        if stores.iter().any(|s| &s.health().coordinator_id == id) {
            return Err(MetricsError::AlreadyRegistered(format!("coordinator {id}")));
        }
        stores.push(Arc::new(coordinator.clone()));
        Ok(())
    }

    /// Exports an agent: `backflow_agent_*` for `providers` of `rate` and for the feedback
    /// handler whose counters are `handler`, plus the receive-side counters of `transport`
    /// when given.
    ///
    /// Wrap the handler's subscription in [`count_feedback`](Self::count_feedback) to count
    /// events by coordinator and level. Fails if a provider or a handler is already
    /// registered, or a provider is unknown to `rate`.
    pub fn register_agent(
        &self,
        rate: &RateCoordinator,
        providers: &[String],
        handler: Arc<HandlerStats>,
        transport: Option<FeedbackTransport>,
    ) -> Result<(), MetricsError> {
        self.register_rate(rate, providers)?;
        {
            let mut slot = write(&self.sources().handler);
            if slot.is_some() {
                return Err(MetricsError::AlreadyRegistered("feedback handler".into()));
            }
            *slot = Some(handler);
        }
        if let Some(t) = transport {
            self.register_transport(t);
        }
        Ok(())
    }

    /// Exports `providers` of `rate` (`backflow_agent_rate_*`, pressure, breaker, grants,
    /// acquire wait).
    pub fn register_rate(
        &self,
        rate: &RateCoordinator,
        providers: &[String],
    ) -> Result<(), MetricsError> {
        let mut rates = write(&self.sources().rates);
        for p in providers {
            rate.scale(p)
                .map_err(|_| MetricsError::UnknownProvider(p.clone()))?;
            if rates.iter().any(|r| r.providers.contains(p)) {
                return Err(MetricsError::AlreadyRegistered(format!("provider {p}")));
            }
        }
        let mut providers = providers.to_vec();
        providers.sort();
        providers.dedup();
        rates.push(RateSource {
            rate: rate.clone(),
            providers,
        });
        Ok(())
    }

    /// Exports a feedback transport's counters (`backflow_feedback_decode_errors_total`,
    /// `backflow_feedback_refused_total`).
    pub fn register_transport(&self, transport: FeedbackTransport) {
        match transport {
            FeedbackTransport::Nats(s) => write(&self.sources().nats).push(s),
            FeedbackTransport::Http(s) => write(&self.sources().http).push(s),
        }
    }

    /// Wraps a feedback subscription so that every event it yields is counted in
    /// `backflow_feedback_events_total{coordinator_id, level}`.
    pub fn count_feedback<S: FeedbackSubscription>(&self, subscription: S) -> Counted<S> {
        Counted::new(subscription, self.sources().events.clone())
    }

    /// Exports the bridge's fleet view (`coordinator_*` per coordinator) and counters.
    /// `view` is called once per scrape.
    pub fn register_bridge(
        &self,
        stats: Arc<BridgeStats>,
        view: impl Fn() -> Vec<CoordinatorView> + Send + Sync + 'static,
    ) -> Result<(), MetricsError> {
        let mut slot = write(&self.sources().bridge);
        if slot.is_some() {
            return Err(MetricsError::AlreadyRegistered("bridge".into()));
        }
        *slot = Some(BridgeSource {
            stats,
            view: Box::new(view),
        });
        Ok(())
    }

    /// Reads every registered source and encodes the Prometheus text format.
    pub fn render(&self) -> Result<String, MetricsError> {
        let _one_at_a_time = self
            .inner
            .render
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.inner.sources.refresh();
        let families = self.inner.registry.gather();
        TextEncoder::new()
            .encode_to_string(&families)
            .map_err(|e| MetricsError::Encode(e.to_string()))
    }
}
