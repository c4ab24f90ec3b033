//! Prometheus metrics for every binary, through opentelemetry.

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// Where a binary serves `/metrics` (and its health endpoints).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Listen address.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 9464)),
        }
    }
}
