//! Prometheus metrics for every binary, through opentelemetry: one [`Metrics`] registry per
//! process, read at scrape time from what the process registered, served on `/metrics`.
//!
//! ```no_run
//! # async fn example(coordinator: backflow::coordinator::WriteCoordinator<u64>) -> Result<(), backflow::metrics::MetricsError> {
//! use backflow::metrics::{Metrics, MetricsConfig, serve};
//!
//! let metrics = Metrics::new()?;
//! metrics.register_store(&coordinator)?;
//! let probe = coordinator.clone();
//! let router = metrics.router(move || probe.health().is_healthy());
//! let (addr, server) = serve(&MetricsConfig::default(), router, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod catalog;
mod counts;
mod histograms;
mod http;
mod instruments;
mod registry;
mod sources;

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

pub use catalog::{
    ACQUIRE_WAIT_SECONDS, BACKPRESSURE_HARD, BACKPRESSURE_OK, BACKPRESSURE_SOFT,
    BATCH_WRITE_SECONDS, CATALOG, Exporter, FEEDBACK_LATENCY_SECONDS, MetricInfo, MetricKind,
    QUEUE_DEPTH, QUEUE_WAIT_SECONDS, find,
};
pub use counts::{Counted, FeedbackCounts, MAX_COUNTED_COORDINATORS, OTHER_COORDINATORS};
pub use histograms::BUCKET_BOUNDS_SECONDS;
pub use http::{ReadyFlag, serve};
pub use registry::{CONTENT_TYPE, FeedbackTransport, Metrics};

/// Where a binary serves `/metrics` and its health endpoints (`metrics:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Listen address (`0.0.0.0:9464` by default, the port registered for OpenTelemetry's
    /// Prometheus exporter).
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9464)),
        }
    }
}

/// What can go wrong with metrics.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The exporter or registry could not be set up.
    #[error("cannot set up the metrics exporter: {0}")]
    Exporter(String),
    /// A catalog entry has no instrument (a bug, caught by the unit tests).
    #[error("metric {0} has no instrument")]
    Unregistered(&'static str),
    /// The same coordinator, provider, handler or bridge was registered twice.
    #[error("already registered: {0}")]
    AlreadyRegistered(String),
    /// A provider to export is not registered with the rate coordinator.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// The text format could not be written.
    #[error("cannot encode metrics: {0}")]
    Encode(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("metrics server failed: {0}")]
    Serve(std::io::Error),
}
