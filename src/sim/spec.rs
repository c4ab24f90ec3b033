//! The parts of a scenario: the sink, the stores and the agents' load over time.

use serde::Deserialize;

use crate::event::Class;
use crate::invalid::{InvalidSetting, at_least_one, fractions};
use crate::rate::ProviderConfig;

/// The entry for `index` of a list that repeats, if it has any.
fn cycled<T: Copy>(list: &[T], index: usize) -> Option<T> {
    (!list.is_empty()).then(|| list[index % list.len()])
}

/// Finite and above 0.
pub(super) fn positive(v: f64) -> bool {
    v > 0.0 && v.is_finite()
}

/// A window of time within the run, in seconds from its start.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Start, seconds.
    pub at_s: f64,
    /// Length, seconds.
    pub duration_s: f64,
}

impl Window {
    /// Whether `t` (seconds) falls inside.
    pub fn contains(&self, t: f64) -> bool {
        t >= self.at_s && t < self.at_s + self.duration_s
    }
}

/// A period of reduced sink capacity.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brownout {
    /// Start, seconds.
    pub at_s: f64,
    /// Length, seconds.
    pub duration_s: f64,
    /// Fraction of the normal capacity left, in (0, 1].
    pub factor: f64,
}

/// The simulated database behind each store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkSpec {
    /// Rows per second one store's sink writes.
    pub rows_per_sec: f64,
    /// Fixed latency added to each batch write, milliseconds.
    pub latency_ms: f64,
    /// Each write's service time and latency vary at random by up to this fraction (0..=1;
    /// the mean capacity is unchanged).
    pub jitter: f64,
    /// Periods of reduced capacity.
    pub brownouts: Vec<Brownout>,
    /// Periods during which every write fails (transiently).
    pub outages: Vec<Window>,
}

impl Default for SinkSpec {
    fn default() -> Self {
        Self {
            rows_per_sec: 2_000.0,
            latency_ms: 5.0,
            jitter: 0.5,
            brownouts: Vec::new(),
            outages: Vec::new(),
        }
    }
}

impl SinkSpec {
    /// Capacity (rows per second) at `t` seconds: zero in an outage.
    pub fn capacity_at(&self, t: f64) -> f64 {
        if self.outages.iter().any(|o| o.contains(t)) {
            return 0.0;
        }
        self.brownouts
            .iter()
            .filter(|b| b.window().contains(t))
            .fold(self.rows_per_sec, |c, b| {
                c.min(self.rows_per_sec * b.factor)
            })
    }
}

/// A coordinator whose feedback events stop reaching the bus for a while.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Silence {
    /// Index of the store (0-based).
    pub store: usize,
    /// Start, seconds.
    pub at_s: f64,
    /// Length, seconds.
    pub duration_s: f64,
}

impl Silence {
    /// The silent window.
    pub fn window(&self) -> Window {
        Window {
            at_s: self.at_s,
            duration_s: self.duration_s,
        }
    }
}

impl Brownout {
    /// The reduced-capacity window.
    pub fn window(&self) -> Window {
        Window {
            at_s: self.at_s,
            duration_s: self.duration_s,
        }
    }
}

/// The stores (write coordinators), all alike.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSpec {
    /// Number of stores; agents spread their rows over all of them.
    pub count: usize,
    /// Queue capacity, rows.
    pub capacity: u64,
    /// Low watermark, fraction of capacity.
    pub low_watermark: f64,
    /// High watermark, fraction of capacity.
    pub high_watermark: f64,
    /// Rows per batch write.
    pub batch_size: usize,
    /// Concurrent writers.
    pub workers: usize,
    /// Longest wait for a batch to fill, milliseconds.
    pub flush_interval_ms: u64,
    /// Feedback heartbeat, milliseconds.
    pub heartbeat_ms: u64,
    /// Stores that go silent.
    pub silences: Vec<Silence>,
    /// Time each feedback event spends on the bus before agents see it, milliseconds.
    pub feedback_delay_ms: u64,
    /// The stores' sojourn-time target for fair rates, milliseconds (0: derived).
    pub sojourn_target_ms: u64,
}

impl Default for StoreSpec {
    fn default() -> Self {
        Self {
            count: 1,
            capacity: 4_000,
            low_watermark: 0.5,
            high_watermark: 0.8,
            batch_size: 100,
            workers: 2,
            flush_interval_ms: 50,
            heartbeat_ms: 100,
            silences: Vec::new(),
            feedback_delay_ms: 0,
            sojourn_target_ms: 0,
        }
    }
}

/// From `at_s` on, the agents' demand is `factor` × the sinks' total normal capacity.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadStep {
    /// Seconds from the start.
    pub at_s: f64,
    /// Demand as a multiple of the sinks' total capacity.
    pub factor: f64,
}

/// The agents: rate-limited producers, each with its own feedback handler.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentSpec {
    /// Number of agents; they share the load equally.
    pub count: usize,
    /// All agents' base rate together, as a multiple of the sinks' total capacity (default:
    /// the largest load factor, so that the agents' limits never cap the demand).
    pub base: Option<f64>,
    /// Rows per `acquire` (one unit of upstream work).
    pub chunk: u32,
    /// Each chunk's demand interval varies at random by up to this fraction (0..=1): bursty
    /// upstream data with the same mean.
    pub noise: f64,
    /// The demand over time; the first step should be at 0.
    pub load: Vec<LoadStep>,
    /// Ramp linearly from one step's factor to the next's instead of jumping (a diurnal
    /// curve as a few points).
    pub interpolate: bool,
    /// Agents that join late and leave early (fleet scenarios).
    pub churn: Option<Churn>,
    /// Each agent's demand and base rate as a multiple of the equal share, cycled over the
    /// agents (default: all 1).
    pub shares: Vec<f64>,
    /// Each agent's priority class, cycled (default: all `standard`).
    pub classes: Vec<Class>,
    /// Each agent's share weight, cycled (default: all 1).
    pub weights: Vec<f64>,
    /// How often agents tell the stores their demand, milliseconds (the agent's default).
    pub demand_ms: u64,
}

/// Some of the agents are there only for a while; each brings its share of the load.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// How many of the agents (the last ones).
    pub agents: usize,
    /// When they join, seconds.
    pub join_s: f64,
    /// When they leave, seconds.
    pub leave_s: f64,
}

impl Default for AgentSpec {
    fn default() -> Self {
        Self {
            count: 4,
            base: None,
            chunk: 10,
            noise: 0.5,
            load: vec![LoadStep {
                at_s: 0.0,
                factor: 2.0,
            }],
            interpolate: false,
            churn: None,
            shares: Vec::new(),
            classes: Vec::new(),
            weights: Vec::new(),
            demand_ms: 1_000,
        }
    }
}

impl AgentSpec {
    /// The demand factor at `t` seconds.
    pub fn factor_at(&self, t: f64) -> f64 {
        let next = self.load.iter().position(|s| s.at_s > t);
        let Some(now) = next.unwrap_or(self.load.len()).checked_sub(1) else {
            return 0.0;
        };
        let here = self.load[now];
        match next.map(|i| self.load[i]) {
            Some(then) if self.interpolate => {
                let f = (t - here.at_s) / (then.at_s - here.at_s);
                here.factor + f * (then.factor - here.factor)
            }
            _ => here.factor,
        }
    }

    /// Whether agent `index` is there at `t` seconds.
    pub fn present(&self, index: usize, t: f64) -> bool {
        self.presence(index)
            .is_none_or(|(join, leave)| t >= join && t < leave)
    }

    /// When agent `index` is there (join, leave), seconds; `None` when always.
    pub fn presence(&self, index: usize) -> Option<(f64, f64)> {
        self.churn
            .filter(|c| index >= self.count.saturating_sub(c.agents))
            .map(|c| (c.join_s, c.leave_s))
    }

    /// The agents' total base rate as a multiple of capacity.
    pub fn base_factor(&self) -> f64 {
        self.base
            .unwrap_or_else(|| self.load.iter().map(|s| s.factor).fold(0.0, f64::max))
    }
}

impl SinkSpec {
    /// Checks that the sink can run, naming the offending key.
    pub(super) fn check(&self) -> Result<(), InvalidSetting> {
        if !positive(self.rows_per_sec) {
            return Err(InvalidSetting::new("rows_per_sec", "must be > 0"));
        }
        if !(self.latency_ms >= 0.0 && self.latency_ms.is_finite()) {
            return Err(InvalidSetting::new("latency_ms", "must be >= 0"));
        }
        fractions(&[("jitter", self.jitter)])?;
        if self
            .brownouts
            .iter()
            .any(|b| !(b.factor > 0.0 && b.factor <= 1.0))
        {
            return Err(InvalidSetting::new(
                "brownouts.factor",
                "must be within (0, 1]",
            ));
        }
        Ok(())
    }
}

impl StoreSpec {
    /// Checks that the stores can run, naming the offending key.
    pub(super) fn check(&self) -> Result<(), InvalidSetting> {
        if self.count == 0 || self.count > 16 {
            return Err(InvalidSetting::new("count", "must be within [1, 16]"));
        }
        if self.silences.iter().any(|s| s.store >= self.count) {
            return Err(InvalidSetting::new(
                "silences.store",
                "names a store that does not exist",
            ));
        }
        if !(self.low_watermark > 0.0 && self.low_watermark < self.high_watermark)
            || self.high_watermark > 1.0
        {
            return Err(InvalidSetting::new(
                "low_watermark/high_watermark",
                "need 0 < low < high <= 1",
            ));
        }
        Ok(())
    }
}

impl AgentSpec {
    /// One agent's rate limits when its share of the sinks' capacity is `share` rows/s: its
    /// base rate, with a burst of 50 ms of it, never less than one chunk.
    /// Agent `index`'s multiple of the equal share.
    pub fn share_of(&self, index: usize) -> f64 {
        cycled(&self.shares, index).unwrap_or(1.0)
    }

    /// Agent `index`'s class.
    pub fn class_of(&self, index: usize) -> Class {
        cycled(&self.classes, index).unwrap_or_default()
    }

    /// Agent `index`'s weight.
    pub fn weight_of(&self, index: usize) -> f64 {
        cycled(&self.weights, index).unwrap_or(1.0)
    }

    pub(super) fn limits(&self, share: f64) -> ProviderConfig {
        let base = self.base_factor() * share;
        ProviderConfig::new(((base / 20.0) as u32).max(self.chunk), base)
    }

    /// Checks that the agents can run, naming the offending key.
    pub(super) fn check(&self) -> Result<(), InvalidSetting> {
        if self.count == 0 || self.count > 10_000 {
            return Err(InvalidSetting::new("count", "must be within [1, 10000]"));
        }
        fractions(&[("noise", self.noise)])?;
        at_least_one(&[("chunk", u64::from(self.chunk))])?;
        if self.load.is_empty()
            || self
                .load
                .iter()
                .any(|s| !(s.factor >= 0.0 && s.factor.is_finite()))
        {
            return Err(InvalidSetting::new("load", "needs steps with factors >= 0"));
        }
        if self.load.windows(2).any(|w| w[1].at_s <= w[0].at_s) {
            return Err(InvalidSetting::new(
                "load",
                "steps must be in increasing time order",
            ));
        }
        if let Some(c) = self.churn {
            if c.agents == 0 || c.agents >= self.count {
                return Err(InvalidSetting::new(
                    "churn.agents",
                    "must be within [1, count - 1]",
                ));
            }
            if !(c.join_s >= 0.0 && c.join_s < c.leave_s) {
                return Err(InvalidSetting::new("churn", "needs 0 <= join_s < leave_s"));
            }
        }
        if self
            .shares
            .iter()
            .chain(&self.weights)
            .any(|v| !positive(*v))
        {
            return Err(InvalidSetting::new(
                "shares",
                "shares and weights must be > 0",
            ));
        }
        at_least_one(&[("demand_ms", self.demand_ms)])?;
        if !positive(self.base_factor()) {
            return Err(InvalidSetting::new("base", "must be > 0"));
        }
        if self.base_factor() < self.load.iter().map(|s| s.factor).fold(0.0, f64::max) {
            return Err(InvalidSetting::new(
                "base",
                "must cover the largest load factor",
            ));
        }
        Ok(())
    }
}
