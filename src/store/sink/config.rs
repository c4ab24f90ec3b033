//! Which database the store writes to, and the optional throttle in front of it.

use std::borrow::Borrow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{PostgresSink, SqliteSink};
use crate::coordinator::{Outage, Sink, Throttle};
use crate::market::Bar;

/// The store's database (`store.sink:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkConfig {
    /// An embedded SQLite file.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The table (default `bars`).
        #[serde(default = "default_table")]
        table: String,
    },
    /// A PostgreSQL server.
    Postgres {
        /// Connection string (`host=... user=... dbname=...` or `postgres://...`).
        url: String,
        /// The table (default `bars`).
        #[serde(default = "default_table")]
        table: String,
    },
}

fn default_table() -> String {
    "bars".into()
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self::Sqlite {
            path: "backflow.db".into(),
            table: default_table(),
        }
    }
}

/// An outage window for experiments, relative to the store's start.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutageConfig {
    /// Start, milliseconds after the store started.
    pub start_ms: u64,
    /// Length, milliseconds.
    pub duration_ms: u64,
}

/// A throttle in front of the database for experiments (`store.throttle:`); all zero (the
/// default) means no throttle.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Capacity in rows per second (0: unlimited).
    pub rows_per_sec: f64,
    /// Latency added to every write, milliseconds.
    pub latency_ms: u64,
    /// Scheduled outages, during which writes fail.
    pub outages: Vec<OutageConfig>,
}

impl ThrottleConfig {
    fn is_active(&self) -> bool {
        self.rows_per_sec > 0.0 || self.latency_ms > 0 || !self.outages.is_empty()
    }
}

/// The database could not be prepared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkSetupError {
    /// Invalid settings.
    #[error("invalid sink setting: {0}")]
    Config(String),
    /// The database refused.
    #[error("database: {0}")]
    Database(String),
}

/// Opens the configured database (creating the table) behind the configured throttle.
pub async fn build_sink<T: Borrow<Bar> + Send + Sync + 'static>(
    sink: &SinkConfig,
    throttle: &ThrottleConfig,
) -> Result<Arc<dyn Sink<T>>, SinkSetupError> {
    if !(throttle.rows_per_sec >= 0.0 && throttle.rows_per_sec.is_finite()) {
        return Err(SinkSetupError::Config(
            "throttle.rows_per_sec must be >= 0".into(),
        ));
    }
    Ok(match sink {
        SinkConfig::Sqlite { path, table } => throttled(SqliteSink::open(path, table)?, throttle),
        SinkConfig::Postgres { url, table } => {
            throttled(PostgresSink::connect(url, table).await?, throttle)
        }
    })
}

fn throttled<T, S>(inner: S, throttle: &ThrottleConfig) -> Arc<dyn Sink<T>>
where
    T: Sync + 'static,
    S: Sink<T>,
{
    if !throttle.is_active() {
        return Arc::new(inner);
    }
    Arc::new(throttle_of(inner, throttle))
}

/// `inner` behind the throttle `config` describes.
pub(crate) fn throttle_of<S>(inner: S, config: &ThrottleConfig) -> Throttle<S> {
    let mut t = Throttle::new(inner, config.rows_per_sec)
        .with_latency(Duration::from_millis(config.latency_ms));
    for o in &config.outages {
        t = t.with_outage(Outage {
            start: Duration::from_millis(o.start_ms),
            duration: Duration::from_millis(o.duration_ms),
        });
    }
    t
}
