//! Which database the store writes to, and the optional throttle in front of it.

use std::borrow::Borrow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{PostgresMode, PostgresOptions, PostgresSink, SqliteSink};
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
        /// Connection string (`host=... user=... dbname=...` or `postgres://...`), with
        /// `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`) and
        /// `sslrootcert` as libpq reads them.
        url: String,
        /// The table (default `bars`).
        #[serde(default = "default_table")]
        table: String,
        /// How batches are written (default `insert`).
        #[serde(default)]
        mode: PostgresMode,
        /// Connections in the pool (default: one per coordinator worker).
        #[serde(default)]
        connections: Option<usize>,
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

/// Opens the configured database (creating the table) behind the configured throttle;
/// `workers` (the coordinator's concurrent writers) sizes a PostgreSQL pool not sized in
/// `sink`.
pub async fn build_sink<T: Borrow<Bar> + Send + Sync + 'static>(
    sink: &SinkConfig,
    throttle: &ThrottleConfig,
    workers: usize,
) -> Result<Arc<dyn Sink<T>>, SinkSetupError> {
    if !(throttle.rows_per_sec >= 0.0 && throttle.rows_per_sec.is_finite()) {
        return Err(SinkSetupError::Config(
            "throttle.rows_per_sec must be >= 0".into(),
        ));
    }
    Ok(match sink {
        SinkConfig::Sqlite { path, table } => throttled(SqliteSink::open(path, table)?, throttle),
        SinkConfig::Postgres {
            url,
            table,
            mode,
            connections,
        } => {
            let options = PostgresOptions {
                mode: *mode,
                connections: connections.unwrap_or(workers.max(1)),
            };
            throttled(
                PostgresSink::connect_with(url, table, options).await?,
                throttle,
            )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_mode_and_pool_size_are_read_and_bad_modes_named() {
        let sink: SinkConfig =
            serde_yaml_ng::from_str("{kind: postgres, url: 'host=db', mode: copy, connections: 3}")
                .unwrap();
        assert_eq!(
            sink,
            SinkConfig::Postgres {
                url: "host=db".into(),
                table: "bars".into(),
                mode: PostgresMode::Copy,
                connections: Some(3),
            }
        );
        let sink: SinkConfig = serde_yaml_ng::from_str("{kind: postgres, url: 'host=db'}").unwrap();
        assert!(matches!(
            sink,
            SinkConfig::Postgres {
                mode: PostgresMode::Insert,
                connections: None,
                ..
            }
        ));
        let err = serde_yaml_ng::from_str::<SinkConfig>("{kind: postgres, url: x, mode: bulk}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `bulk`"), "{err}");
    }
}
