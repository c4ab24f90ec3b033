//! Every metric backflow exports, in one table: name, type, labels and help text.
//!
//! The names are what a scrape shows, exactly: the exporter adds no unit or `_total` suffix and
//! no scope label. `coordinator_queue_depth` and `coordinator_backpressure_{ok,soft,hard}` are
//! the predecessor's names and an interface (KEDA queries them); the others start with `backflow_`.

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
const COORD_CLASS: &[&str] = &["coordinator_id", "class"];
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
/// `backflow_build_info`.
pub const BUILD_INFO: MetricInfo = m(
    "backflow_build_info",
    Gauge,
    &["version"],
    All,
    "Always 1; the version label names the backflow release.",
);
/// `backflow_store_queue_capacity`.
pub const STORE_QUEUE_CAPACITY: MetricInfo = m(
    "backflow_store_queue_capacity",
    Gauge,
    COORD,
    Store,
    "Capacity of the in-memory write queue, items.",
);
/// `backflow_store_queued_items`.
pub const STORE_QUEUED_ITEMS: MetricInfo = m(
    "backflow_store_queued_items",
    Gauge,
    COORD,
    Store,
    "Items in the in-memory write queue.",
);
/// `backflow_store_external_backlog`.
pub const STORE_EXTERNAL_BACKLOG: MetricInfo = m(
    "backflow_store_external_backlog",
    Gauge,
    COORD,
    Store,
    "Backlog counted outside the queue (e.g. a JetStream consumer's pending messages).",
);
/// `backflow_store_in_flight_items`.
pub const STORE_IN_FLIGHT_ITEMS: MetricInfo = m(
    "backflow_store_in_flight_items",
    Gauge,
    COORD,
    Store,
    "Items taken by workers and not yet written or dead-lettered.",
);
/// `backflow_store_workers_running`.
pub const STORE_WORKERS_RUNNING: MetricInfo = m(
    "backflow_store_workers_running",
    Gauge,
    COORD,
    Store,
    "Batch writers still running.",
);
/// `backflow_store_breaker_state`.
pub const STORE_BREAKER_STATE: MetricInfo = m(
    "backflow_store_breaker_state",
    Gauge,
    COORD,
    Store,
    "The sink's circuit breaker: 0 closed, 1 open, 2 half-open.",
);
/// `backflow_store_items_submitted_total`.
pub const STORE_ITEMS_SUBMITTED_TOTAL: MetricInfo = m(
    "backflow_store_items_submitted_total",
    Counter,
    COORD,
    Store,
    "Items accepted into the write queue.",
);
/// `backflow_store_items_refused_total`.
pub const STORE_ITEMS_REFUSED_TOTAL: MetricInfo = m(
    "backflow_store_items_refused_total",
    Counter,
    COORD,
    Store,
    "Items refused because the queue was full (the caller kept them).",
);
/// `backflow_store_items_written_total`.
pub const STORE_ITEMS_WRITTEN_TOTAL: MetricInfo = m(
    "backflow_store_items_written_total",
    Counter,
    COORD,
    Store,
    "Items the sink committed.",
);
/// `backflow_store_batches_written_total`.
pub const STORE_BATCHES_WRITTEN_TOTAL: MetricInfo = m(
    "backflow_store_batches_written_total",
    Counter,
    COORD,
    Store,
    "Batches the sink committed.",
);
/// `backflow_store_write_failures_total`.
pub const STORE_WRITE_FAILURES_TOTAL: MetricInfo = m(
    "backflow_store_write_failures_total",
    Counter,
    COORD,
    Store,
    "Failed batch write attempts (every retry counts).",
);
/// `backflow_store_items_dropped_total`.
pub const STORE_ITEMS_DROPPED_TOTAL: MetricInfo = m(
    "backflow_store_items_dropped_total",
    Counter,
    COORD_REASON,
    Store,
    "Accepted items lost, by reason: overflow (drop_oldest), dead_letter_failed, \
         abandoned_in_flight.",
);
/// `backflow_store_items_dead_lettered_total`.
pub const STORE_ITEMS_DEAD_LETTERED_TOTAL: MetricInfo = m(
    "backflow_store_items_dead_lettered_total",
    Counter,
    COORD_REASON,
    Store,
    "Items handed to the dead-letter sink, by reason: retries_exhausted, rejected, shutdown.",
);
/// `backflow_store_level_changes_total`.
pub const STORE_LEVEL_CHANGES_TOTAL: MetricInfo = m(
    "backflow_store_level_changes_total",
    Counter,
    COORD,
    Store,
    "Backpressure level transitions.",
);
/// `backflow_store_feedback_published_total`.
pub const STORE_FEEDBACK_PUBLISHED_TOTAL: MetricInfo = m(
    "backflow_store_feedback_published_total",
    Counter,
    COORD,
    Store,
    "Feedback events sent (level changes and heartbeats).",
);
/// `backflow_store_feedback_publish_errors_total`.
pub const STORE_FEEDBACK_PUBLISH_ERRORS_TOTAL: MetricInfo = m(
    "backflow_store_feedback_publish_errors_total",
    Counter,
    COORD,
    Store,
    "Feedback events the bus refused.",
);
/// `backflow_store_messages_acked_total`.
pub const STORE_MESSAGES_ACKED_TOTAL: MetricInfo = m(
    "backflow_store_messages_acked_total",
    Counter,
    COORD,
    Store,
    "JetStream messages acknowledged once every row was committed, confirmed by the server.",
);
/// `backflow_store_ack_errors_total`.
pub const STORE_ACK_ERRORS_TOTAL: MetricInfo = m(
    "backflow_store_ack_errors_total",
    Counter,
    COORD,
    Store,
    "Acknowledgements that failed or went unconfirmed; the message is redelivered after ack_wait and the upsert absorbs its rows.",
);
/// `backflow_store_messages_redelivered_total`.
pub const STORE_MESSAGES_REDELIVERED_TOTAL: MetricInfo = m(
    "backflow_store_messages_redelivered_total",
    Counter,
    COORD,
    Store,
    "Messages handed back for redelivery: rows that exhausted their retries, or were not written by shutdown.",
);
/// `backflow_agent_rate_scale`.
pub const AGENT_RATE_SCALE: MetricInfo = m(
    "backflow_agent_rate_scale",
    Gauge,
    PROVIDER,
    Agent,
    "Budget scale applied to the provider's base rate, within [0, 1].",
);
/// `backflow_agent_rate_limit`.
pub const AGENT_RATE_LIMIT: MetricInfo = m(
    "backflow_agent_rate_limit",
    Gauge,
    PROVIDER,
    Agent,
    "Rate the provider is granted now (base rate x scale), items per second.",
);
/// `backflow_agent_pressure_level`.
pub const AGENT_PRESSURE_LEVEL: MetricInfo = m(
    "backflow_agent_pressure_level",
    Gauge,
    PROVIDER,
    Agent,
    "Pressure level that drove the scale: 0 ok, 1 soft, 2 hard.",
);
/// `backflow_agent_breaker_state`.
pub const AGENT_BREAKER_STATE: MetricInfo = m(
    "backflow_agent_breaker_state",
    Gauge,
    PROVIDER,
    Agent,
    "The provider's circuit breaker: 0 closed, 1 open, 2 half-open.",
);
/// `backflow_agent_items_granted_total`.
pub const AGENT_ITEMS_GRANTED_TOTAL: MetricInfo = m(
    "backflow_agent_items_granted_total",
    Counter,
    PROVIDER,
    Agent,
    "Items granted by acquire.",
);
/// `backflow_agent_feedback_outcomes_total`.
pub const AGENT_FEEDBACK_OUTCOMES_TOTAL: MetricInfo = m(
    "backflow_agent_feedback_outcomes_total",
    Counter,
    &["outcome"],
    Agent,
    "Feedback events by what the handler made of them: applied, duplicate, out_of_order, \
         too_old, left.",
);
/// `backflow_agent_feedback_adjustments_total`.
pub const AGENT_FEEDBACK_ADJUSTMENTS_TOTAL: MetricInfo = m(
    "backflow_agent_feedback_adjustments_total",
    Counter,
    &[],
    Agent,
    "Scale changes the feedback handler applied.",
);
/// `backflow_agent_feedback_silent_instances`.
pub const AGENT_FEEDBACK_SILENT_INSTANCES: MetricInfo = m(
    "backflow_agent_feedback_silent_instances",
    Gauge,
    &[],
    Agent,
    "Coordinator instances that stopped sending heartbeats (stale) and are not forgotten yet.",
);
/// `backflow_feedback_events_total`.
pub const FEEDBACK_EVENTS_TOTAL: MetricInfo = m(
    "backflow_feedback_events_total",
    Counter,
    &["coordinator_id", "level"],
    Receiver,
    "Valid feedback events received, by coordinator and level.",
);
/// `backflow_feedback_decode_errors_total`.
pub const FEEDBACK_DECODE_ERRORS_TOTAL: MetricInfo = m(
    "backflow_feedback_decode_errors_total",
    Counter,
    &["transport"],
    Receiver,
    "Feedback messages that could not be decoded (nats), or invalid bodies (http).",
);
/// `backflow_feedback_refused_total`.
pub const FEEDBACK_REFUSED_TOTAL: MetricInfo = m(
    "backflow_feedback_refused_total",
    Counter,
    &["transport", "reason"],
    Receiver,
    "Feedback messages refused for another reason: invalid_subject, oversize, unsigned, \
         untrusted_key, bad_signature (nats, and nats_demand for agents' demand); \
         unauthorized, too_large, unsupported_media_type, queue_full, unanswered (http).",
);
/// `coordinator_fleet_queue_depth`.
pub const COORDINATOR_FLEET_QUEUE_DEPTH: MetricInfo = m(
    "coordinator_fleet_queue_depth",
    Gauge,
    COORD,
    Bridge,
    "Sum of the depths reported by the coordinator's instances.",
);
/// `coordinator_consumer_lag`.
pub const COORDINATOR_CONSUMER_LAG: MetricInfo = m(
    "coordinator_consumer_lag",
    Gauge,
    COORD,
    Bridge,
    "Lag of the coordinator's JetStream write consumer (num_pending + num_ack_pending), \
         as KEDA's nats-jetstream scaler computes it; absent when unknown.",
);
/// `coordinator_backlog`.
pub const COORDINATOR_BACKLOG: MetricInfo = m(
    "coordinator_backlog",
    Gauge,
    COORD,
    Bridge,
    "Items waiting for the coordinator: the consumer lag when known (it counts every row \
         not yet acknowledged), otherwise coordinator_fleet_queue_depth.",
);
/// `coordinator_capacity`.
pub const COORDINATOR_CAPACITY: MetricInfo = m(
    "coordinator_capacity",
    Gauge,
    COORD,
    Bridge,
    "Sum of the queue capacities of the coordinator's instances.",
);
/// `coordinator_utilization`.
pub const COORDINATOR_UTILIZATION: MetricInfo = m(
    "coordinator_utilization",
    Gauge,
    COORD,
    Bridge,
    "Highest depth / capacity among the coordinator's instances.",
);
/// `coordinator_instances`.
pub const COORDINATOR_INSTANCES: MetricInfo = m(
    "coordinator_instances",
    Gauge,
    COORD,
    Bridge,
    "Instances of the coordinator in the fleet view (live and silent).",
);
/// `coordinator_silent_instances`.
pub const COORDINATOR_SILENT_INSTANCES: MetricInfo = m(
    "coordinator_silent_instances",
    Gauge,
    COORD,
    Bridge,
    "Instances that missed their heartbeats; they count with their last state until they \
         expire.",
);
/// `coordinator_demand_rows_per_second`.
pub const COORDINATOR_DEMAND_ROWS_PER_SECOND: MetricInfo = m(
    "coordinator_demand_rows_per_second",
    Gauge,
    COORD,
    Bridge,
    "Rows per second the coordinator's agents offered before throttling (the sum of their demand events).",
);
/// `coordinator_granted_rows_per_second`.
pub const COORDINATOR_GRANTED_ROWS_PER_SECOND: MetricInfo = m(
    "coordinator_granted_rows_per_second",
    Gauge,
    COORD,
    Bridge,
    "Rows per second the coordinator's agents were granted.",
);
/// `coordinator_unserved_rows_per_second`.
pub const COORDINATOR_UNSERVED_ROWS_PER_SECOND: MetricInfo = m(
    "coordinator_unserved_rows_per_second",
    Gauge,
    COORD,
    Bridge,
    "Demand the agents were not granted: what the fast loop holds back.",
);
/// `coordinator_replica_capacity_rows_per_second`.
pub const COORDINATOR_REPLICA_CAPACITY_ROWS_PER_SECOND: MetricInfo = m(
    "coordinator_replica_capacity_rows_per_second",
    Gauge,
    COORD,
    Bridge,
    "Rows per second one store replica writes while busy (the mean of the live replicas' measured service rates); absent until measured.",
);
/// `coordinator_fair_rate_rows_per_second`.
pub const COORDINATOR_FAIR_RATE_ROWS_PER_SECOND: MetricInfo = m(
    "coordinator_fair_rate_rows_per_second",
    Gauge,
    COORD_CLASS,
    Bridge,
    "Rows per second per unit of weight the coordinator's live instances grant agents of each priority class (the sum of their fair rates); absent while any live instance publishes none.",
);
/// `coordinator_desired_replicas`.
pub const COORDINATOR_DESIRED_REPLICAS: MetricInfo = m(
    "coordinator_desired_replicas",
    Gauge,
    COORD,
    Bridge,
    "Replicas the demand needs: ceil(demand x headroom / replica capacity + backlog / (replica capacity x drain target)); the live count while no capacity is measured. One series per coordinator: KEDA reads it with an AverageValue target of 1.",
);
/// `backflow_bridge_published_total`.
pub const BRIDGE_PUBLISHED_TOTAL: MetricInfo = m(
    "backflow_bridge_published_total",
    Counter,
    &[],
    Bridge,
    "Aggregated coordinator states republished on <prefix>.metrics.<coordinator_id>.",
);
/// `backflow_bridge_publish_errors_total`.
pub const BRIDGE_PUBLISH_ERRORS_TOTAL: MetricInfo = m(
    "backflow_bridge_publish_errors_total",
    Counter,
    &[],
    Bridge,
    "Republishes the bus refused.",
);
/// `backflow_bridge_consumer_lag_errors_total`.
pub const BRIDGE_CONSUMER_LAG_ERRORS_TOTAL: MetricInfo = m(
    "backflow_bridge_consumer_lag_errors_total",
    Counter,
    &[],
    Bridge,
    "Failed reads of a write consumer's lag (a missing consumer is not an error).",
);
/// Every metric, in the order of the reference table.
pub const CATALOG: &[MetricInfo] = &[
    BUILD_INFO,
    // Store: the predecessor's names, per coordinator.
    QUEUE_DEPTH,
    BACKPRESSURE_OK,
    BACKPRESSURE_SOFT,
    BACKPRESSURE_HARD,
    // Store: backflow_store_*.
    STORE_QUEUE_CAPACITY,
    STORE_QUEUED_ITEMS,
    STORE_EXTERNAL_BACKLOG,
    STORE_IN_FLIGHT_ITEMS,
    STORE_WORKERS_RUNNING,
    STORE_BREAKER_STATE,
    STORE_ITEMS_SUBMITTED_TOTAL,
    STORE_ITEMS_REFUSED_TOTAL,
    STORE_ITEMS_WRITTEN_TOTAL,
    STORE_BATCHES_WRITTEN_TOTAL,
    STORE_WRITE_FAILURES_TOTAL,
    STORE_ITEMS_DROPPED_TOTAL,
    STORE_ITEMS_DEAD_LETTERED_TOTAL,
    STORE_LEVEL_CHANGES_TOTAL,
    STORE_FEEDBACK_PUBLISHED_TOTAL,
    STORE_FEEDBACK_PUBLISH_ERRORS_TOTAL,
    STORE_MESSAGES_ACKED_TOTAL,
    STORE_ACK_ERRORS_TOTAL,
    STORE_MESSAGES_REDELIVERED_TOTAL,
    BATCH_WRITE_SECONDS,
    QUEUE_WAIT_SECONDS,
    // Agent: rates per provider.
    AGENT_RATE_SCALE,
    AGENT_RATE_LIMIT,
    AGENT_PRESSURE_LEVEL,
    AGENT_BREAKER_STATE,
    AGENT_ITEMS_GRANTED_TOTAL,
    ACQUIRE_WAIT_SECONDS,
    // Agent: the feedback handler.
    AGENT_FEEDBACK_OUTCOMES_TOTAL,
    AGENT_FEEDBACK_ADJUSTMENTS_TOTAL,
    AGENT_FEEDBACK_SILENT_INSTANCES,
    FEEDBACK_LATENCY_SECONDS,
    // Whatever receives feedback (agent, bridge).
    FEEDBACK_EVENTS_TOTAL,
    FEEDBACK_DECODE_ERRORS_TOTAL,
    FEEDBACK_REFUSED_TOTAL,
    // Bridge: the fleet view, per coordinator.
    COORDINATOR_FLEET_QUEUE_DEPTH,
    COORDINATOR_CONSUMER_LAG,
    COORDINATOR_BACKLOG,
    COORDINATOR_CAPACITY,
    COORDINATOR_UTILIZATION,
    COORDINATOR_INSTANCES,
    COORDINATOR_SILENT_INSTANCES,
    COORDINATOR_DEMAND_ROWS_PER_SECOND,
    COORDINATOR_GRANTED_ROWS_PER_SECOND,
    COORDINATOR_UNSERVED_ROWS_PER_SECOND,
    COORDINATOR_REPLICA_CAPACITY_ROWS_PER_SECOND,
    COORDINATOR_FAIR_RATE_ROWS_PER_SECOND,
    COORDINATOR_DESIRED_REPLICAS,
    // Bridge: its own work.
    BRIDGE_PUBLISHED_TOTAL,
    BRIDGE_PUBLISH_ERRORS_TOTAL,
    BRIDGE_CONSUMER_LAG_ERRORS_TOTAL,
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
