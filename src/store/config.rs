//! The store's settings (`store:`) and everything a store node needs to start.

use serde::Deserialize;

use super::sink::{SinkConfig, ThrottleConfig};
use crate::bus::http::HttpEmitterConfig;
use crate::bus::nats::NatsOptions;
use crate::coordinator::CoordinatorConfig;
use crate::invalid::{InvalidSetting, at_least_one};
use crate::metrics::MetricsConfig;

/// The write stream's limits (`store.stream:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WriteStreamConfig {
    /// Largest size in bytes (-1: unlimited). When full, agents' publishes are refused (and
    /// retried): rows are never discarded to make room.
    pub max_bytes: i64,
    /// Oldest row kept, milliseconds (0: unlimited).
    pub max_age_ms: u64,
    /// Replicas (3 in a 3-node cluster).
    pub replicas: usize,
    /// Window in which a re-published row (same message id) is stored once, milliseconds.
    pub duplicate_window_ms: u64,
}

impl Default for WriteStreamConfig {
    fn default() -> Self {
        Self {
            max_bytes: -1,
            max_age_ms: 0,
            replicas: 1,
            duplicate_window_ms: 120_000,
        }
    }
}

/// How the store pulls, writes and acknowledges.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// The database.
    pub sink: SinkConfig,
    /// A throttle in front of it, for experiments.
    pub throttle: ThrottleConfig,
    /// Most messages requested per pull.
    pub fetch_batch: usize,
    /// Rows expected per message (the agents' `batch_rows`): a pull asks for the queue's free
    /// room divided by this, so what is in flight stays within the free room.
    pub rows_per_message: usize,
    /// Longest pause between pulls while the stream is empty, milliseconds (pauses double
    /// from 1 ms up to this).
    pub idle_poll_ms: u64,
    /// How long a pull request may go unanswered before the store asks again, milliseconds.
    pub pull_timeout_ms: u64,
    /// Time the server waits for an acknowledgement before redelivering, milliseconds.
    /// Longer than the worst batch write including retries.
    pub ack_wait_ms: u64,
    /// Deliveries per message before the server gives up (-1: unlimited).
    pub max_deliver: i64,
    /// How often the consumer's pending count is read into the backlog, milliseconds.
    pub backlog_poll_ms: u64,
    /// How long SIGTERM waits for the queue to drain, milliseconds.
    pub drain_timeout_ms: u64,
    /// Delay before a row handed back after exhausted retries is redelivered, milliseconds.
    pub redeliver_delay_ms: u64,
    /// The write stream.
    pub stream: WriteStreamConfig,
    /// Shifts this store's event timestamps by this many milliseconds, for clock-skew drills
    /// (0 in production).
    pub clock_skew_ms: i64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            sink: SinkConfig::default(),
            throttle: ThrottleConfig::default(),
            fetch_batch: 500,
            rows_per_message: 100,
            idle_poll_ms: 50,
            pull_timeout_ms: 2_000,
            ack_wait_ms: 60_000,
            max_deliver: -1,
            backlog_poll_ms: 100,
            drain_timeout_ms: 30_000,
            redeliver_delay_ms: 1_000,
            stream: WriteStreamConfig::default(),
            clock_skew_ms: 0,
        }
    }
}

impl StoreConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one(&[
            ("fetch_batch", self.fetch_batch as u64),
            ("rows_per_message", self.rows_per_message as u64),
            ("idle_poll_ms", self.idle_poll_ms),
            ("pull_timeout_ms", self.pull_timeout_ms),
            ("ack_wait_ms", self.ack_wait_ms),
            ("backlog_poll_ms", self.backlog_poll_ms),
            ("stream.replicas", self.stream.replicas as u64),
        ])?;
        if let SinkConfig::Postgres {
            connections: Some(0),
            ..
        } = self.sink
        {
            return Err(InvalidSetting::new(
                "sink.connections",
                "must be at least 1",
            ));
        }
        if !(self.throttle.rows_per_sec >= 0.0 && self.throttle.rows_per_sec.is_finite()) {
            return Err(InvalidSetting::new("throttle.rows_per_sec", "must be >= 0"));
        }
        Ok(())
    }
}

/// Everything a store node needs to start: its own section and the shared ones it reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreSetup {
    /// `store:`: the consumer, the database, draining.
    pub store: StoreConfig,
    /// `coordinator:`: the write queue and its feedback.
    pub coordinator: CoordinatorConfig,
    /// `nats:`: the connection, subjects and signing.
    pub nats: NatsOptions,
    /// `http.emitter:`: agents to POST feedback to as well (none by default).
    pub emitter: HttpEmitterConfig,
    /// `metrics:`: where `/metrics` is served.
    pub metrics: MetricsConfig,
}

impl StoreSetup {
    /// Checks every section, naming the offending key in full.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.store.validate().map_err(|e| e.under("store"))?;
        self.coordinator
            .validate()
            .map_err(|e| e.under("coordinator"))?;
        self.nats.validate().map_err(|e| e.under("nats"))?;
        if self.emitter.is_enabled() {
            self.emitter
                .validate()
                .map_err(|e| e.under("http.emitter"))?;
        }
        Ok(())
    }
}
