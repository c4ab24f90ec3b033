//! Agents' demand over NATS, for the readers of the slow loop (the bridge; the stores, for
//! fair shares): live events only, since every agent repeats its demand each interval.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::NatsError;
use super::connection::NatsConnection;
use super::subscriber::{SubscriberStats, subscribe_each};
use crate::bus::read_refusals;
use crate::event::{DemandEvent, decode_demand};
use crate::fleet::Interest;
use crate::telemetry::{Probe, Readings};

/// A demand subscription's refusals, exported as `transport="nats_demand"` beside the
/// feedback subscription's.
#[derive(Debug, Clone)]
pub struct DemandStats(pub Arc<SubscriberStats>);

impl Probe for DemandStats {
    fn claims(&self) -> Vec<String> {
        vec!["demand subscription".into()]
    }

    fn read(&self, out: &mut Readings) {
        let s = &self.0;
        read_refusals(
            out,
            "nats_demand",
            &s.decode_errors,
            &[
                ("invalid_subject", &s.invalid_subject),
                ("oversize", &s.oversize),
                ("unsigned", &s.unsigned),
                ("untrusted_key", &s.untrusted_key),
                ("bad_signature", &s.bad_signature),
            ],
        );
    }
}

/// Subscribes to the demand of the coordinators in `interest` and delivers every valid event:
/// within `nats.max_event_bytes`, decodable, on the subject of its coordinator, and signed by
/// a trusted key when keys are trusted. Refusals are counted in the returned stats.
pub async fn subscribe_demand(
    conn: &NatsConnection,
    interest: &Interest,
) -> Result<(mpsc::Receiver<DemandEvent>, DemandStats), NatsError> {
    let subjects = match interest {
        Interest::All => vec![conn.subjects.all_demand()],
        Interest::Only(ids) => ids.iter().map(|id| conn.subjects.demand(id)).collect(),
    };
    let subs = subscribe_each(conn, &subjects).await?;
    let stats = Arc::new(SubscriberStats::default());
    let (tx, rx) = mpsc::channel(1024);
    let (conn, counters) = (conn.clone(), stats.clone());
    tokio::spawn(async move {
        let mut live = futures_util::stream::select_all(subs);
        loop {
            let msg = tokio::select! {
                msg = live.next() => match msg {
                    Some(msg) => msg,
                    None => return,
                },
                () = tx.closed() => return,
            };
            let event = check(&conn, &counters, &msg);
            // Counted after the outcome, so whoever sees `received` grow also sees why.
            counters.received.fetch_add(1, Relaxed);
            if let Some(event) = event {
                counters.delivered.fetch_add(1, Relaxed);
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok((rx, DemandStats(stats)))
}

/// The event, or `None` with the refusal counted.
fn check(
    conn: &NatsConnection,
    stats: &SubscriberStats,
    msg: &async_nats::Message,
) -> Option<DemandEvent> {
    if msg.payload.len() > conn.options.max_event_bytes {
        stats.oversize.fetch_add(1, Relaxed);
        return None;
    }
    let Ok(event) = decode_demand(&msg.payload) else {
        stats.decode_errors.fetch_add(1, Relaxed);
        return None;
    };
    let id = event.coordinator_id.as_str();
    if conn.subjects.coordinator_of_demand(msg.subject.as_str()) != Some(id) {
        stats.invalid_subject.fetch_add(1, Relaxed);
        return None;
    }
    if let Some(verifier) = &conn.verifier {
        if let Err(refusal) = verifier.check(id, &msg.payload, msg.headers.as_ref()) {
            stats.refused(refusal).fetch_add(1, Relaxed);
            return None;
        }
    }
    Some(event)
}
