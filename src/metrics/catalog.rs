//! Every metric backflow exports, in one table: name, type, labels and help text.
//!
//! The names are what a scrape shows, exactly: the exporter adds no unit or `_total` suffix and
//! no scope label. `coordinator_queue_depth` and `coordinator_backpressure_{ok,soft,hard}` are
//! the seed's names and an interface (KEDA queries them); the others start with `backflow_`.

/// How Prometheus sees a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonic count (names end in `_total`).
    Counter,
    /// Cumulative `_bucket{le}`, `_sum` and `_count` series (names end in `_seconds`).
    Histogram,
}

impl MetricKind {
    /// The `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gauge => "gauge",
            Self::Counter => "counter",
            Self::Histogram => "histogram",
        }
    }
}

/// Which binary exports a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exporter {
    /// Every binary.
    All,
    /// `backflow-store`, per registered write coordinator.
    Store,
    /// `backflow-store` (its own state) and `backflow-bridge` (the fleet view).
    StoreAndBridge,
    /// `backflow-agent`.
    Agent,
    /// Whatever receives feedback: `backflow-agent` and `backflow-bridge`.
    Receiver,
    /// `backflow-bridge`, per coordinator in its fleet view.
    Bridge,
}

/// One exported metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// The name as scraped (histograms: the base of `_bucket`, `_sum`, `_count`).
    pub name: &'static str,
    /// Type.
    pub kind: MetricKind,
    /// Label names, besides `le` on histogram buckets.
    pub labels: &'static [&'static str],
    /// Help text.
    pub help: &'static str,
    /// Who exports it.
    pub exporter: Exporter,
}

const fn m(
    name: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    exporter: Exporter,
    help: &'static str,
) -> MetricInfo {
    MetricInfo {
        name,
        kind,
        labels,
        help,
        exporter,
    }
}

use Exporter::{Agent, All, Bridge, Receiver, Store, StoreAndBridge};
use MetricKind::{Counter, Gauge, Histogram};

const COORD: &[&str] = &["coordinator_id"];
const COORD_REASON: &[&str] = &["coordinator_id", "reason"];
const PROVIDER: &[&str] = &["provider"];

/// `coordinator_queue_depth{coordinator_id}`.
pub const QUEUE_DEPTH: MetricInfo = m(
    "coordinator_queue_depth",
    Gauge,
    COORD,
    StoreAndBridge,
    "Items waiting to be written: queued plus counted external backlog. The store exports its \
     own; the bridge exports the deepest instance of each coordinator, so \
     max(coordinator_queue_depth{coordinator_id=...}) means the same over either.",
);
/// `coordinator_backpressure_ok{coordinator_id}`.
pub const BACKPRESSURE_OK: MetricInfo = m(
    "coordinator_backpressure_ok",
    Gauge,
    COORD,
    StoreAndBridge,
    "1 while the level is ok (depth at or below the low watermark), else 0.",
);
/// `coordinator_backpressure_soft{coordinator_id}`.
pub const BACKPRESSURE_SOFT: MetricInfo = m(
    "coordinator_backpressure_soft",
    Gauge,
    COORD,
    StoreAndBridge,
    "1 while the level is soft (between the watermarks), else 0.",
);
/// `coordinator_backpressure_hard{coordinator_id}`.
pub const BACKPRESSURE_HARD: MetricInfo = m(
    "coordinator_backpressure_hard",
    Gauge,
    COORD,
    StoreAndBridge,
    "1 while the level is hard (depth reached the high watermark), else 0.",
);

/// `backflow_store_batch_write_seconds`.
pub const BATCH_WRITE_SECONDS: MetricInfo = m(
    "backflow_store_batch_write_seconds",
    Histogram,
    COORD,
    Store,
    "Latency of successful batch writes to the sink, seconds.",
);
/// `backflow_store_queue_wait_seconds`.
pub const QUEUE_WAIT_SECONDS: MetricInfo = m(
    "backflow_store_queue_wait_seconds",
    Histogram,
    COORD,
    Store,
    "Time items waited in the queue before a worker took them, seconds.",
);
/// `backflow_agent_acquire_wait_seconds`.
pub const ACQUIRE_WAIT_SECONDS: MetricInfo = m(
    "backflow_agent_acquire_wait_seconds",
    Histogram,
    PROVIDER,
    Agent,
    "Time callers spent in acquire, seconds.",
);
/// `backflow_agent_feedback_latency_seconds`.
pub const FEEDBACK_LATENCY_SECONDS: MetricInfo = m(
    "backflow_agent_feedback_latency_seconds",
    Histogram,
    &[],
    Agent,
    "Time from a feedback event's timestamp to its application, seconds (two hosts' clocks).",
);
/// Every metric, in the order of the reference table.
pub const CATALOG: &[MetricInfo] = &[
    m(
        "backflow_build_info",
        Gauge,
        &["version"],
        All,
        "Always 1; the version label names the backflow release.",
    ),
    // Store: the seed's names, per coordinator.
    QUEUE_DEPTH,
    BACKPRESSURE_OK,
    BACKPRESSURE_SOFT,
    BACKPRESSURE_HARD,
    // Store: backflow_store_*.
    m(
        "backflow_store_queue_capacity",
        Gauge,
        COORD,
        Store,
        "Capacity of the in-memory write queue, items.",
    ),
    m(
        "backflow_store_queued_items",
        Gauge,
        COORD,
        Store,
        "Items in the in-memory write queue.",
    ),
    m(
        "backflow_store_external_backlog",
        Gauge,
        COORD,
        Store,
        "Backlog counted outside the queue (e.g. a JetStream consumer's pending messages).",
    ),
    m(
        "backflow_store_in_flight_items",
        Gauge,
        COORD,
        Store,
        "Items taken by workers and not yet written or dead-lettered.",
    ),
    m(
        "backflow_store_workers_running",
        Gauge,
        COORD,
        Store,
        "Batch writers still running.",
    ),
    m(
        "backflow_store_breaker_state",
        Gauge,
        COORD,
        Store,
        "The sink's circuit breaker: 0 closed, 1 open, 2 half-open.",
    ),
    m(
        "backflow_store_items_submitted_total",
        Counter,
        COORD,
        Store,
        "Items accepted into the write queue.",
    ),
    m(
        "backflow_store_items_refused_total",
        Counter,
        COORD,
        Store,
        "Items refused because the queue was full (the caller kept them).",
    ),
    m(
        "backflow_store_items_written_total",
        Counter,
        COORD,
        Store,
        "Items the sink committed.",
    ),
    m(
        "backflow_store_batches_written_total",
        Counter,
        COORD,
        Store,
        "Batches the sink committed.",
    ),
    m(
        "backflow_store_write_failures_total",
        Counter,
        COORD,
        Store,
        "Failed batch write attempts (every retry counts).",
    ),
    m(
        "backflow_store_items_dropped_total",
        Counter,
        COORD_REASON,
        Store,
        "Accepted items lost, by reason: overflow (drop_oldest), dead_letter_failed, \
         abandoned_in_flight.",
    ),
    m(
        "backflow_store_items_dead_lettered_total",
        Counter,
        COORD_REASON,
        Store,
        "Items handed to the dead-letter sink, by reason: retries_exhausted, rejected, shutdown.",
    ),
    m(
        "backflow_store_level_changes_total",
        Counter,
        COORD,
        Store,
        "Backpressure level transitions.",
    ),
    m(
        "backflow_store_feedback_published_total",
        Counter,
        COORD,
        Store,
        "Feedback events sent (level changes and heartbeats).",
    ),
    m(
        "backflow_store_feedback_publish_errors_total",
        Counter,
        COORD,
        Store,
        "Feedback events the bus refused.",
    ),
    BATCH_WRITE_SECONDS,
    QUEUE_WAIT_SECONDS,
    // Agent: rates per provider.
    m(
        "backflow_agent_rate_scale",
        Gauge,
        PROVIDER,
        Agent,
        "Budget scale applied to the provider's base rate, within [0, 1].",
    ),
    m(
        "backflow_agent_rate_limit",
        Gauge,
        PROVIDER,
        Agent,
        "Rate the provider is granted now (base rate x scale), items per second.",
    ),
    m(
        "backflow_agent_pressure_level",
        Gauge,
        PROVIDER,
        Agent,
        "Pressure level that drove the scale: 0 ok, 1 soft, 2 hard.",
    ),
    m(
        "backflow_agent_breaker_state",
        Gauge,
        PROVIDER,
        Agent,
        "The provider's circuit breaker: 0 closed, 1 open, 2 half-open.",
    ),
    m(
        "backflow_agent_items_granted_total",
        Counter,
        PROVIDER,
        Agent,
        "Items granted by acquire.",
    ),
    ACQUIRE_WAIT_SECONDS,
    // Agent: the feedback handler.
    m(
        "backflow_agent_feedback_outcomes_total",
        Counter,
        &["outcome"],
        Agent,
        "Feedback events by what the handler made of them: applied, duplicate, out_of_order, \
         too_old, left.",
    ),
    m(
        "backflow_agent_feedback_adjustments_total",
        Counter,
        &[],
        Agent,
        "Scale changes the feedback handler applied.",
    ),
    m(
        "backflow_agent_feedback_silent_instances",
        Gauge,
        &[],
        Agent,
        "Coordinator instances that stopped sending heartbeats (stale) and are not forgotten yet.",
    ),
    FEEDBACK_LATENCY_SECONDS,
    // Whatever receives feedback (agent, bridge).
    m(
        "backflow_feedback_events_total",
        Counter,
        &["coordinator_id", "level"],
        Receiver,
        "Valid feedback events received, by coordinator and level.",
    ),
    m(
        "backflow_feedback_decode_errors_total",
        Counter,
        &["transport"],
        Receiver,
        "Feedback messages that could not be decoded (nats), or invalid bodies (http).",
    ),
    m(
        "backflow_feedback_refused_total",
        Counter,
        &["transport", "reason"],
        Receiver,
        "Feedback messages refused for another reason: invalid_subject, oversize, unsigned, \
         untrusted_key, bad_signature (nats); \
         unauthorized, too_large, unsupported_media_type, queue_full, unanswered (http).",
    ),
    // Bridge: the fleet view, per coordinator.
    m(
        "coordinator_fleet_queue_depth",
        Gauge,
        COORD,
        Bridge,
        "Sum of the depths reported by the coordinator's instances.",
    ),
    m(
        "coordinator_consumer_lag",
        Gauge,
        COORD,
        Bridge,
        "Lag of the coordinator's JetStream write consumer (num_pending + num_ack_pending), \
         as KEDA's nats-jetstream scaler computes it; absent when unknown.",
    ),
    m(
        "coordinator_backlog",
        Gauge,
        COORD,
        Bridge,
        "Items waiting for the coordinator: the consumer lag when known (it counts every row \
         not yet acknowledged), otherwise coordinator_fleet_queue_depth.",
    ),
    m(
        "coordinator_capacity",
        Gauge,
        COORD,
        Bridge,
        "Sum of the queue capacities of the coordinator's instances.",
    ),
    m(
        "coordinator_utilization",
        Gauge,
        COORD,
        Bridge,
        "Highest depth / capacity among the coordinator's instances.",
    ),
    m(
        "coordinator_instances",
        Gauge,
        COORD,
        Bridge,
        "Instances of the coordinator in the fleet view (live and silent).",
    ),
    m(
        "coordinator_silent_instances",
        Gauge,
        COORD,
        Bridge,
        "Instances that missed their heartbeats; they count with their last state until they \
         expire.",
    ),
    // Bridge: its own work.
    m(
        "backflow_bridge_published_total",
        Counter,
        &[],
        Bridge,
        "Aggregated coordinator states republished on <prefix>.metrics.<coordinator_id>.",
    ),
    m(
        "backflow_bridge_publish_errors_total",
        Counter,
        &[],
        Bridge,
        "Republishes the bus refused.",
    ),
    m(
        "backflow_bridge_consumer_lag_errors_total",
        Counter,
        &[],
        Bridge,
        "Failed reads of a write consumer's lag (a missing consumer is not an error).",
    ),
];

/// The entry named `name`.
pub fn find(name: &str) -> Option<&'static MetricInfo> {
    CATALOG.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_follow_prometheus_conventions() {
        let mut names: Vec<&str> = CATALOG.iter().map(|m| m.name).collect();
        names.sort_unstable();
        let len = names.len();
        names.dedup();
        assert_eq!(names.len(), len, "duplicate metric names");
        for m in CATALOG {
            let valid = m
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            assert!(valid, "{}", m.name);
            assert_eq!(m.kind == Counter, m.name.ends_with("_total"), "{}", m.name);
            assert_eq!(
                m.kind == Histogram,
                m.name.ends_with("_seconds"),
                "{}",
                m.name
            );
            assert!(!m.help.is_empty(), "{}", m.name);
        }
    }
}
