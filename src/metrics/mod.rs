//! The Prometheus exporter every binary serves on `/metrics`: one [`Metrics`] registry per
//! process that reads the [probes](crate::telemetry::Probe) registered in it at scrape time,
//! through opentelemetry. It knows no component: each reports through its own probe.
//!
//! ```no_run
//! # async fn example(coordinator: backflow::coordinator::WriteCoordinator<u64>) -> Result<(), backflow::metrics::MetricsError> {
//! use backflow::metrics::{Metrics, MetricsConfig, serve};
//!
//! let metrics = Metrics::new()?;
//! metrics.register(coordinator.clone())?;
//! let probe = coordinator.clone();
//! let router = metrics.router(move || probe.health().is_healthy());
//! let (addr, server) = serve(&MetricsConfig::default(), router, std::future::pending()).await?;
//! # Ok(()) }
//! ```

mod histograms;
mod http;
mod instruments;
mod registry;
mod scrape;

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::error::BoxError;

pub use histograms::BUCKET_BOUNDS_SECONDS;
pub use http::{ReadyFlag, serve};
pub use registry::{CONTENT_TYPE, Metrics};

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
    #[error("cannot set up the metrics exporter")]
    Exporter(#[source] BoxError),
    /// A registered probe already claims this name (the same coordinator, provider, handler
    /// or bridge twice).
    #[error("already registered: {0}")]
    AlreadyRegistered(String),
    /// The text format could not be written.
    #[error("cannot encode metrics")]
    Encode(#[source] BoxError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("metrics server failed")]
    Serve(#[source] std::io::Error),
}
