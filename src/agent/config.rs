//! The agent's settings (`agent:`) and everything an agent needs to start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::bus::http::HttpReceiverConfig;
use crate::bus::nats::NatsOptions;
use crate::event::CoordinatorId;
use crate::feedback::FeedbackConfig;
use crate::invalid::{InvalidSetting, at_least_one};
use crate::market::{BarSource, CsvError, CsvSource, SyntheticSource};
use crate::metrics::MetricsConfig;
use crate::rate::RateConfig;

/// Where one provider's bars come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// Random-walk bars for a set of symbols.
    Synthetic {
        /// Symbols, produced round-robin.
        #[serde(default = "default_symbols")]
        symbols: Vec<String>,
        /// Bar length in milliseconds (each symbol's timestamps advance by this).
        #[serde(default = "default_interval")]
        interval_ms: i64,
        /// First bar's timestamp (default: the agent's start, rounded to the interval).
        #[serde(default)]
        start_ms: Option<i64>,
        /// Random seed (default: from the agent's name).
        #[serde(default)]
        seed: Option<u64>,
    },
    /// Replay of a CSV file (`symbol,timestamp,open,high,low,close,volume`).
    Csv {
        /// The file.
        path: PathBuf,
    },
}

fn default_symbols() -> Vec<String> {
    ["AAPL", "MSFT", "NVDA", "ESZ6", "EURUSD"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

fn default_interval() -> i64 {
    60_000
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self::Synthetic {
            symbols: default_symbols(),
            interval_ms: default_interval(),
            start_ms: None,
            seed: None,
        }
    }
}

impl SourceConfig {
    /// Opens the source; its bars carry `source` as their source.
    pub fn open(
        &self,
        source: &str,
        now_ms: i64,
        seed: u64,
    ) -> Result<Box<dyn BarSource>, CsvError> {
        Ok(match self {
            Self::Synthetic {
                symbols,
                interval_ms,
                start_ms,
                seed: fixed,
            } => {
                let interval = (*interval_ms).max(1);
                let start = start_ms.unwrap_or(now_ms - now_ms.rem_euclid(interval));
                Box::new(SyntheticSource::new(
                    source,
                    symbols,
                    start,
                    interval,
                    fixed.unwrap_or(seed),
                ))
            }
            Self::Csv { path } => Box::new(CsvSource::open(path, source)?),
        })
    }
}

/// How the agent produces and publishes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// The coordinator whose write subject rows go to.
    pub coordinator_id: CoordinatorId,
    /// This agent's name, part of every row's `source` (`<provider>:<name>`); default: the
    /// host name with a random suffix.
    pub name: Option<String>,
    /// One source per provider of `rate_coordinator.providers` (default: synthetic bars for
    /// every provider).
    pub sources: BTreeMap<String, SourceConfig>,
    /// Messages awaiting their acknowledgement at once.
    pub max_in_flight: usize,
    /// Rows per message: a batch is sent when full or `linger_ms` after its first row.
    pub batch_rows: usize,
    /// Longest time a row waits for its batch to fill, milliseconds.
    pub linger_ms: u64,
    /// How long to wait for a publish acknowledgement before retrying, milliseconds.
    pub publish_timeout_ms: u64,
    /// Delay before a failed publish is retried, milliseconds.
    pub retry_delay_ms: u64,
    /// How long shutdown waits for outstanding acknowledgements, milliseconds.
    pub drain_timeout_ms: u64,
    /// Stop each provider after this many rows (replays, tests, benchmarks).
    pub max_rows: Option<u64>,
    /// Append `source,symbol,ts_ms` of every acknowledged row to this file (an audit trail
    /// of what the stream accepted).
    pub ack_log: Option<PathBuf>,
    /// Also accept feedback on `POST /feedback` (settings `http.receiver`), for stores that
    /// post instead of (or as well as) publishing on NATS.
    pub http_receiver: bool,
    /// How often the agent publishes its demand on `<prefix>.demand.<coordinator_id>`,
    /// milliseconds (it expires after a few missed intervals).
    pub demand_interval_ms: u64,
    /// The window its offered and granted rates are smoothed over, milliseconds.
    pub demand_window_ms: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            coordinator_id: CoordinatorId::default(),
            name: None,
            sources: BTreeMap::new(),
            max_in_flight: 64,
            batch_rows: 100,
            linger_ms: 5,
            publish_timeout_ms: 5_000,
            retry_delay_ms: 200,
            drain_timeout_ms: 10_000,
            max_rows: None,
            ack_log: None,
            http_receiver: false,
            demand_interval_ms: 1_000,
            demand_window_ms: 5_000,
        }
    }
}

impl AgentConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        at_least_one(&[
            ("max_in_flight", self.max_in_flight as u64),
            ("publish_timeout_ms", self.publish_timeout_ms),
            ("demand_interval_ms", self.demand_interval_ms),
            ("demand_window_ms", self.demand_window_ms),
        ])?;
        if !(1..=crate::market::MAX_BATCH_ROWS).contains(&self.batch_rows) {
            return Err(InvalidSetting::new(
                "batch_rows",
                format!("must be within 1..={}", crate::market::MAX_BATCH_ROWS),
            ));
        }
        if let Some(name) = &self.name {
            if name.is_empty()
                || name.len() > 48
                || name.chars().any(|c| c.is_control() || c == ',')
            {
                return Err(InvalidSetting::new(
                    "name",
                    "1..=48 printable characters, no commas",
                ));
            }
        }
        Ok(())
    }
}

/// Everything an agent needs to start: its own section and the shared ones it reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentSetup {
    /// `agent:`: sources, batching, publishing.
    pub agent: AgentConfig,
    /// `rate_coordinator:`: the providers' limits.
    pub rate: RateConfig,
    /// `feedback:`: the policy and the fleet view.
    pub feedback: FeedbackConfig,
    /// `nats:`: the connection, subjects and signing.
    pub nats: NatsOptions,
    /// `http.receiver:`: the `POST /feedback` endpoint (when `agent.http_receiver`).
    pub receiver: HttpReceiverConfig,
    /// `metrics:`: where `/metrics` is served.
    pub metrics: MetricsConfig,
}

impl AgentSetup {
    /// Checks every section and how they fit together, naming the offending key in full.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.agent.validate().map_err(|e| e.under("agent"))?;
        self.rate
            .validate()
            .map_err(|e| e.under("rate_coordinator"))?;
        self.feedback.validate().map_err(|e| e.under("feedback"))?;
        self.nats.validate().map_err(|e| e.under("nats"))?;
        self.receiver
            .validate()
            .map_err(|e| e.under("http.receiver"))?;
        let fb = &self.feedback;
        let providers = &self.rate.providers;
        if fb.enable_feedback
            && fb.provider_name != "*"
            && !providers.is_empty()
            && !providers.contains_key(&fb.provider_name)
        {
            return Err(InvalidSetting::new(
                "feedback.provider_name",
                format!(
                    "{:?} is not among rate_coordinator.providers ({})",
                    fb.provider_name,
                    providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// What an agent needs beyond valid sections: at least one provider, and a source only
    /// for providers that exist.
    pub fn check_runnable(&self) -> Result<(), InvalidSetting> {
        if self.rate.providers.is_empty() {
            return Err(InvalidSetting::new(
                "rate_coordinator.providers",
                "an agent needs at least one provider",
            ));
        }
        for p in self.agent.sources.keys() {
            if !self.rate.providers.contains_key(p) {
                return Err(InvalidSetting::new(
                    format!("agent.sources.{p}"),
                    "no such provider in rate_coordinator.providers",
                ));
            }
        }
        Ok(())
    }
}
