//! Every opentelemetry instrument, registered in one place: each catalog entry (other than the
//! histograms, which [`histograms`](super::histograms) exports) and how its value is read from
//! a scrape.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

use super::MetricsError;
use super::catalog::{CATALOG, MetricKind};
use super::sources::{Scrape, Sources};
use crate::bridge::CoordinatorView;
use crate::coordinator::{DeadLetterReason, DropReason, Health};
use crate::event::BackpressureLevel;
use crate::rate::ProviderSnapshot;

/// Reports one value with its labels.
type Emit<'a> = &'a mut dyn FnMut(f64, &[KeyValue]);

/// Reads one metric's series from a scrape.
type Reader = fn(&Scrape, Emit<'_>);

fn coordinator(id: &impl ToString) -> KeyValue {
    KeyValue::new("coordinator_id", id.to_string())
}

fn stores(s: &Scrape, emit: Emit<'_>, value: impl Fn(&Health) -> u64) {
    for h in &s.stores {
        emit(value(h) as f64, &[coordinator(&h.coordinator_id)]);
    }
}

fn fleet(s: &Scrape, emit: Emit<'_>, value: impl Fn(&CoordinatorView) -> Option<f64>) {
    for v in &s.fleet {
        if let Some(x) = value(v) {
            emit(x, &[coordinator(&v.coordinator_id)]);
        }
    }
}

fn providers(s: &Scrape, emit: Emit<'_>, value: impl Fn(&ProviderSnapshot) -> f64) {
    for p in &s.providers {
        emit(value(p), &[KeyValue::new("provider", p.name.clone())]);
    }
}

fn level_flag(s: &Scrape, emit: Emit<'_>, level: BackpressureLevel) {
    stores(s, emit, |h| u64::from(h.level == level));
    fleet(s, emit, |v| Some(f64::from(u8::from(v.level == level))));
}

fn level_code(level: BackpressureLevel) -> f64 {
    match level {
        BackpressureLevel::Ok => 0.0,
        BackpressureLevel::Soft => 1.0,
        BackpressureLevel::Hard => 2.0,
    }
}

fn load(c: &AtomicU64) -> f64 {
    c.load(Relaxed) as f64
}

fn transport(name: &'static str) -> KeyValue {
    KeyValue::new("transport", name)
}

fn refused(s: &Scrape, emit: Emit<'_>) {
    for n in &s.nats {
        for (reason, c) in [
            ("invalid_subject", &n.invalid_subject),
            ("oversize", &n.oversize),
            ("unsigned", &n.unsigned),
            ("untrusted_key", &n.untrusted_key),
            ("bad_signature", &n.bad_signature),
        ] {
            emit(
                load(c),
                &[transport("nats"), KeyValue::new("reason", reason)],
            );
        }
    }
    for h in &s.http {
        for (reason, c) in [
            ("unauthorized", &h.unauthorized),
            ("too_large", &h.too_large),
            ("unsupported_media_type", &h.unsupported_media_type),
            ("queue_full", &h.queue_full),
            ("unanswered", &h.unanswered),
        ] {
            emit(
                load(c),
                &[transport("http"), KeyValue::new("reason", reason)],
            );
        }
    }
}

/// How each non-histogram catalog entry is read.
const READERS: &[(&str, Reader)] = &[
    ("backflow_build_info", |_, emit| {
        emit(1.0, &[KeyValue::new("version", env!("CARGO_PKG_VERSION"))])
    }),
    ("coordinator_queue_depth", |s, emit| {
        stores(s, emit, |h| h.depth);
        fleet(s, emit, |v| Some(v.queue_depth as f64));
    }),
    ("coordinator_backpressure_ok", |s, emit| {
        level_flag(s, emit, BackpressureLevel::Ok)
    }),
    ("coordinator_backpressure_soft", |s, emit| {
        level_flag(s, emit, BackpressureLevel::Soft)
    }),
    ("coordinator_backpressure_hard", |s, emit| {
        level_flag(s, emit, BackpressureLevel::Hard)
    }),
    ("backflow_store_queue_capacity", |s, emit| {
        stores(s, emit, |h| h.capacity)
    }),
    ("backflow_store_queued_items", |s, emit| {
        stores(s, emit, |h| h.queued)
    }),
    ("backflow_store_external_backlog", |s, emit| {
        stores(s, emit, |h| h.external_backlog)
    }),
    ("backflow_store_in_flight_items", |s, emit| {
        stores(s, emit, |h| h.stats.in_flight)
    }),
    ("backflow_store_workers_running", |s, emit| {
        stores(s, emit, |h| h.workers_running as u64)
    }),
    ("backflow_store_breaker_state", |s, emit| {
        stores(s, emit, |h| h.breaker.as_gauge())
    }),
    ("backflow_store_items_submitted_total", |s, emit| {
        stores(s, emit, |h| h.stats.accepted)
    }),
    ("backflow_store_items_refused_total", |s, emit| {
        stores(s, emit, |h| h.stats.refused_full)
    }),
    ("backflow_store_items_written_total", |s, emit| {
        stores(s, emit, |h| h.stats.written)
    }),
    ("backflow_store_batches_written_total", |s, emit| {
        stores(s, emit, |h| h.stats.batches)
    }),
    ("backflow_store_write_failures_total", |s, emit| {
        stores(s, emit, |h| h.stats.write_failures)
    }),
    ("backflow_store_items_dropped_total", |s, emit| {
        for h in &s.stores {
            let st = &h.stats;
            for (reason, n) in [
                (DropReason::Overflow, st.dropped_overflow),
                (DropReason::DeadLetterFailed, st.dropped_dead_letter_failed),
                (DropReason::AbandonedInFlight, st.dropped_abandoned),
            ] {
                let labels = [
                    coordinator(&h.coordinator_id),
                    KeyValue::new("reason", reason.as_str()),
                ];
                emit(n as f64, &labels);
            }
        }
    }),
    ("backflow_store_items_dead_lettered_total", |s, emit| {
        for h in &s.stores {
            let st = &h.stats;
            for (reason, n) in [
                (
                    DeadLetterReason::RetriesExhausted,
                    st.dead_lettered_retries_exhausted,
                ),
                (DeadLetterReason::Rejected, st.dead_lettered_rejected),
                (DeadLetterReason::Shutdown, st.dead_lettered_shutdown),
            ] {
                let labels = [
                    coordinator(&h.coordinator_id),
                    KeyValue::new("reason", reason.as_str()),
                ];
                emit(n as f64, &labels);
            }
        }
    }),
    ("backflow_store_level_changes_total", |s, emit| {
        stores(s, emit, |h| h.stats.level_changes)
    }),
    ("backflow_store_feedback_published_total", |s, emit| {
        stores(s, emit, |h| h.stats.events_published)
    }),
    ("backflow_store_feedback_publish_errors_total", |s, emit| {
        stores(s, emit, |h| h.stats.publish_errors)
    }),
    ("backflow_agent_rate_scale", |s, emit| {
        providers(s, emit, |p| p.scale)
    }),
    ("backflow_agent_rate_limit", |s, emit| {
        providers(s, emit, |p| p.effective_rate)
    }),
    ("backflow_agent_pressure_level", |s, emit| {
        providers(s, emit, |p| level_code(p.pressure))
    }),
    ("backflow_agent_breaker_state", |s, emit| {
        providers(s, emit, |p| p.breaker.as_gauge() as f64)
    }),
    ("backflow_agent_items_granted_total", |s, emit| {
        providers(s, emit, |p| p.granted as f64)
    }),
    ("backflow_agent_feedback_outcomes_total", |s, emit| {
        if let Some(h) = &s.handler {
            for (outcome, c) in [
                ("applied", &h.applied),
                ("duplicate", &h.duplicates),
                ("out_of_order", &h.out_of_order),
                ("too_old", &h.too_old),
                ("left", &h.left),
            ] {
                emit(load(c), &[KeyValue::new("outcome", outcome)]);
            }
        }
    }),
    ("backflow_agent_feedback_adjustments_total", |s, emit| {
        if let Some(h) = &s.handler {
            emit(load(&h.adjustments), &[]);
        }
    }),
    ("backflow_agent_feedback_silent_instances", |s, emit| {
        if let Some(h) = &s.handler {
            emit(load(&h.silent_instances), &[]);
        }
    }),
    ("backflow_feedback_events_total", |s, emit| {
        for (id, level, n) in &s.events {
            let labels = [
                KeyValue::new("coordinator_id", id.clone()),
                KeyValue::new("level", level.as_str()),
            ];
            emit(*n as f64, &labels);
        }
    }),
    ("backflow_feedback_decode_errors_total", |s, emit| {
        for n in &s.nats {
            emit(load(&n.decode_errors), &[transport("nats")]);
        }
        for h in &s.http {
            emit(load(&h.invalid), &[transport("http")]);
        }
    }),
    ("backflow_feedback_refused_total", refused),
    ("coordinator_fleet_queue_depth", |s, emit| {
        fleet(s, emit, |v| Some(v.fleet_queue_depth as f64))
    }),
    ("coordinator_consumer_lag", |s, emit| {
        fleet(s, emit, |v| v.consumer_lag.map(|l| l as f64))
    }),
    ("coordinator_backlog", |s, emit| {
        fleet(s, emit, |v| Some(v.backlog as f64))
    }),
    ("coordinator_capacity", |s, emit| {
        fleet(s, emit, |v| Some(v.capacity as f64))
    }),
    ("coordinator_utilization", |s, emit| {
        fleet(s, emit, |v| Some(v.utilization))
    }),
    ("coordinator_instances", |s, emit| {
        fleet(s, emit, |v| Some(v.instances as f64))
    }),
    ("coordinator_silent_instances", |s, emit| {
        fleet(s, emit, |v| Some(v.silent_instances as f64))
    }),
    ("backflow_bridge_published_total", |s, emit| {
        if let Some(b) = &s.bridge {
            emit(load(&b.published), &[]);
        }
    }),
    ("backflow_bridge_publish_errors_total", |s, emit| {
        if let Some(b) = &s.bridge {
            emit(load(&b.publish_errors), &[]);
        }
    }),
    ("backflow_bridge_consumer_lag_errors_total", |s, emit| {
        if let Some(b) = &s.bridge {
            emit(load(&b.lag_errors), &[]);
        }
    }),
];

fn reader(name: &str) -> Option<Reader> {
    READERS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// Creates every gauge and counter of the catalog on `meter`, each reading the current scrape
/// of `sources` when collected.
pub(crate) fn register(meter: &Meter, sources: &Arc<Sources>) -> Result<(), MetricsError> {
    for info in CATALOG {
        if info.kind == MetricKind::Histogram {
            continue;
        }
        let read = reader(info.name).ok_or(MetricsError::Unregistered(info.name))?;
        let sources = sources.clone();
        let observe = move |o: &dyn opentelemetry::metrics::AsyncInstrument<f64>| {
            let scrape = sources.current();
            read(&scrape, &mut |v, labels| o.observe(v, labels));
        };
        match info.kind {
            MetricKind::Gauge => {
                meter
                    .f64_observable_gauge(info.name)
                    .with_description(info.help)
                    .with_callback(observe)
                    .build();
            }
            MetricKind::Counter => {
                meter
                    .f64_observable_counter(info.name)
                    .with_description(info.help)
                    .with_callback(observe)
                    .build();
            }
            MetricKind::Histogram => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_has_exactly_one_reader() {
        for info in CATALOG {
            let readers = READERS.iter().filter(|(n, _)| *n == info.name).count();
            let expected = usize::from(info.kind != MetricKind::Histogram);
            assert_eq!(readers, expected, "{}", info.name);
        }
        for (name, _) in READERS {
            assert!(CATALOG.iter().any(|m| m.name == *name), "{name}");
        }
    }
}
