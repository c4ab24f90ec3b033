//! Reads each coordinator's write-consumer lag from JetStream, as KEDA's nats-jetstream
//! scaler computes it: `num_pending + num_ack_pending` of `store-<coordinator_id>`.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, context::ConsumerInfoErrorKind};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::state::{BridgeStats, FleetState};
use crate::bus::nats::{NatsConnection, NatsError};
use crate::error::Chain;
use crate::event::CoordinatorId;

/// What one read found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lag {
    /// The consumer's lag.
    Known(u64),
    /// The stream or consumer does not exist (a coordinator not fed from JetStream).
    Absent,
}

/// Reads the lag of `coordinator`'s write consumer.
pub(crate) async fn read_lag(
    js: &jetstream::Context,
    conn: &NatsConnection,
    coordinator: &CoordinatorId,
) -> Result<Lag, NatsError> {
    let stream = js
        .get_stream_no_info(conn.subjects.write_stream())
        .await
        .map_err(|e| NatsError::jetstream("find the write stream", e))?;
    match stream
        .consumer_info(conn.subjects.write_consumer(coordinator))
        .await
    {
        Ok(info) => Ok(Lag::Known(
            info.num_pending.saturating_add(info.num_ack_pending as u64),
        )),
        Err(e)
            if matches!(
                e.kind(),
                ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
            ) =>
        {
            Ok(Lag::Absent)
        }
        Err(e) => Err(NatsError::jetstream("read the write consumer's info", e)),
    }
}

/// Every `every`, reads the lag of each coordinator in `state` until `stop` (which also cuts
/// a round short).
pub(crate) async fn poll(
    conn: NatsConnection,
    state: Arc<Mutex<FleetState>>,
    stats: Arc<BridgeStats>,
    every: Duration,
    stop: CancellationToken,
) {
    let js = jetstream::ContextBuilder::new()
        .timeout(every.clamp(Duration::from_millis(200), Duration::from_secs(5)))
        .build(conn.client.clone());
    let mut last_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            () = round(&js, &conn, &state, &stats, &mut last_warning) => {}
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = sleep(every) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Reads every known coordinator's lag once.
async fn round(
    js: &jetstream::Context,
    conn: &NatsConnection,
    state: &Mutex<FleetState>,
    stats: &BridgeStats,
    last_warning: &mut Option<Instant>,
) {
    let ids = lock(state).coordinators();
    for id in ids {
        let lag = match read_lag(js, conn, &id).await {
            Ok(Lag::Known(n)) => Some(n),
            Ok(Lag::Absent) => None,
            Err(error) => {
                stats.lag_errors.fetch_add(1, Relaxed);
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    *last_warning = Some(Instant::now());
                    tracing::warn!(coordinator_id = %id, error = %Chain(&error), "Cannot read the write consumer's lag.");
                }
                None
            }
        };
        lock(state).set_consumer_lag(&id, lag);
    }
}

pub(crate) fn lock(state: &Mutex<FleetState>) -> std::sync::MutexGuard<'_, FleetState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}
