//! Configuration of a [`WriteCoordinator`](super::WriteCoordinator).

use std::time::Duration;

use serde::Deserialize;

use super::retry::RetryConfig;
use super::watermark::{Watermark, Watermarks};
use crate::event::{CoordinatorId, InstanceId};
use crate::invalid::{InvalidSetting, at_least_one};

/// What `submit` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowStrategy {
    /// Wait for room (the caller is slowed down: in-process backpressure).
    #[default]
    Block,
    /// Make room by dropping the oldest queued item (counted, passed to the drop callback).
    DropOldest,
    /// Refuse the new item and hand it back to the caller.
    Error,
}

impl std::str::FromStr for OverflowStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "block" => Ok(Self::Block),
            "drop_oldest" => Ok(Self::DropOldest),
            "error" => Ok(Self::Error),
            other => Err(format!(
                "unknown overflow strategy {other:?} (expected block, drop_oldest or error)"
            )),
        }
    }
}

/// When the sink's circuit breaker opens and when it probes again.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Consecutive failed batch writes that open the breaker (0 disables it).
    pub failure_threshold: u32,
    /// How long the breaker stays open before one probe write, in milliseconds.
    pub half_open_after_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            half_open_after_ms: 10_000,
        }
    }
}

/// Everything a write coordinator needs to know. Every field has a default.
///
/// Choosing values: `capacity` bounds memory and the longest queue wait (capacity / sink
/// rows per second); the high watermark should leave room for the rows that arrive during one
/// feedback round trip plus one `batch_size` per worker; `flush_interval_ms` bounds the latency
/// added by batching when traffic is light.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoordinatorConfig {
    /// The logical store this instance serves (one subject token).
    pub coordinator_id: CoordinatorId,
    /// This instance's id; generated from the host name when absent.
    pub instance_id: Option<InstanceId>,
    /// Queue capacity in items.
    pub capacity: u64,
    /// HARD at or above this depth (count, or fraction of capacity).
    pub high_watermark: Watermark,
    /// OK at or below this depth (count, or fraction of capacity).
    pub low_watermark: Watermark,
    /// What to do when the queue is full.
    pub overflow: OverflowStrategy,
    /// Concurrent batch writers.
    pub workers: usize,
    /// Largest batch handed to the sink.
    pub batch_size: usize,
    /// Longest time an item waits for its batch to fill, in milliseconds.
    pub flush_interval_ms: u64,
    /// Heartbeat period of the feedback events, in milliseconds (0 = level changes only).
    /// Heartbeats carry the current depth, which the default policy steers by: 100–250 ms.
    pub heartbeat_interval_ms: u64,
    /// The queue wait the fair rates hold the queue at, in milliseconds (0 = one batch's
    /// gathering time, `batch_size` / service rate, and at least `flush_interval_ms`).
    pub sojourn_target_ms: u64,
    /// Sink retry policy.
    pub retry: RetryConfig,
    /// Sink circuit breaker.
    pub breaker: BreakerConfig,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            coordinator_id: CoordinatorId::default(),
            instance_id: None,
            capacity: 10_000,
            high_watermark: Watermark::Fraction(0.8),
            low_watermark: Watermark::Fraction(0.5),
            overflow: OverflowStrategy::Block,
            workers: 2,
            batch_size: 500,
            flush_interval_ms: 100,
            heartbeat_interval_ms: 250,
            sojourn_target_ms: 0,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

impl CoordinatorConfig {
    /// A default configuration for `coordinator_id`.
    pub fn new(coordinator_id: CoordinatorId) -> Self {
        Self {
            coordinator_id,
            ..Self::default()
        }
    }

    /// Checks every range and returns the resolved watermarks.
    pub fn validate(&self) -> Result<Watermarks, InvalidSetting> {
        at_least_one(&[
            ("capacity", self.capacity),
            ("workers", self.workers as u64),
            ("batch_size", self.batch_size as u64),
            ("flush_interval_ms", self.flush_interval_ms),
        ])?;
        self.retry.validate().map_err(|e| e.under("retry"))?;
        Watermarks::new(self.low_watermark, self.high_watermark, self.capacity)
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }

    pub(crate) fn sojourn_target(&self) -> Option<Duration> {
        (self.sojourn_target_ms > 0).then(|| Duration::from_millis(self.sojourn_target_ms))
    }

    pub(crate) fn heartbeat_interval(&self) -> Option<Duration> {
        (self.heartbeat_interval_ms > 0).then(|| Duration::from_millis(self.heartbeat_interval_ms))
    }
}
