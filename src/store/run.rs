//! `run`: the whole store node, from its consumer to the database and back to the agents.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures_util::StreamExt;
use tokio::time::{sleep, timeout};

use super::pending::{AckStats, Acking, Pending, Redeliver};
use super::sink::{SinkSetupError, build_sink};
use super::stream::{ensure_write_consumer, ensure_write_stream};
use crate::bus::http::HttpPublisher;
use crate::bus::nats::{NatsConnection, NatsError, NatsPublisher, ensure_state_stream};
use crate::bus::{Fanout, FeedbackPublisher};
use crate::clock::WallClock;
use crate::coordinator::{ConfigError, StatsSnapshot, WriteCoordinator};
use crate::market::Bar;
use crate::metrics::{Metrics, MetricsError, serve};
use crate::settings::Settings;
use tokio_util::sync::CancellationToken;

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Invalid settings.
    #[error("invalid store setting {0}: {1}")]
    Config(&'static str, String),
    /// NATS could not be set up.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// The database could not be set up.
    #[error(transparent)]
    Sink(#[from] SinkSetupError),
    /// The coordinator configuration is invalid.
    #[error(transparent)]
    Coordinator(#[from] ConfigError),
    /// The HTTP emitter could not be built.
    #[error("http emitter: {0}")]
    Http(String),
    /// `/metrics` could not be served.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// What a store did, reported when it stops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoreReport {
    /// Messages received from the consumer.
    pub received: u64,
    /// Rows in those messages.
    pub rows: u64,
    /// Messages that were not bars (dead-lettered and terminated).
    pub poison: u64,
    /// Messages acknowledged after all their rows were committed.
    pub acked: u64,
    /// Messages handed back for redelivery.
    pub redelivered: u64,
    /// Whether the queue drained before the timeout.
    pub drained: bool,
    /// The write coordinator's counters.
    pub stats: StatsSnapshot,
}

/// Runs a store node until `shutdown`, then drains: stops pulling, writes and acknowledges
/// what is queued (up to `store.drain_timeout_ms`), hands the rest back for redelivery, and
/// says goodbye to the agents.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<StoreReport, StoreError> {
    let config = &settings.store;
    config
        .validate()
        .map_err(|(k, r)| StoreError::Config(k, r))?;
    let id = settings.coordinator.coordinator_id.clone();
    let conn = settings.nats.connect("backflow-store").await?;
    // A pod may start while the NATS cluster is still electing its JetStream leader: retry
    // the setup for a while before giving up.
    let consumer = with_retries(|| async {
        if let Err(error) = ensure_state_stream(&conn).await {
            tracing::warn!(%error, "Last-value stream unavailable; agents will learn levels from live events only.");
        }
        ensure_write_stream(&conn, &config.stream).await?;
        ensure_write_consumer(&conn, &id, config).await
    })
    .await?;
    let sink = build_sink::<Pending>(&config.sink, &config.throttle).await?;
    let acks = Arc::new(AckStats::default());
    let coordinator = WriteCoordinator::builder(
        settings.coordinator.clone(),
        Arc::new(Acking {
            inner: sink,
            stats: acks.clone(),
        }),
    )
    .dead_letter(Arc::new(Redeliver {
        client: conn.client.clone(),
        dead_subject: format!("{}.deadletter.{id}", conn.subjects.prefix()),
        delay: Duration::from_millis(config.redeliver_delay_ms),
        stats: acks.clone(),
    }))
    .publisher(publisher(&settings, &conn)?)
    .wall_clock(skewed_clock(config.clock_skew_ms))
    .start()?;
    let metrics = Metrics::new()?;
    metrics.register_store(&coordinator)?;
    let http_stop = CancellationToken::new();
    let probe = coordinator.clone();
    let (metrics_addr, http) = serve(
        &settings.metrics,
        metrics.router(move || probe.health().is_healthy()),
        http_stop.clone().cancelled_owned(),
    )
    .await?;
    tracing::info!(
        coordinator_id = %id,
        consumer = %conn.subjects.write_consumer(&id),
        metrics = %metrics_addr,
        "Store running."
    );

    let counters = Arc::new(PullCounters::default());
    let backlog = tokio::spawn(poll_backlog(
        consumer.clone(),
        coordinator.clone(),
        counters.clone(),
        config.rows_per_message,
        Duration::from_millis(config.backlog_poll_ms),
    ));
    tokio::pin!(shutdown);
    tokio::select! {
        () = pull(&consumer, &coordinator, &conn, &settings, &counters) => {}
        () = &mut shutdown => tracing::info!("Store stopping: draining."),
    }
    backlog.abort();
    let stopped = coordinator
        .stop(true, Duration::from_millis(config.drain_timeout_ms))
        .await;
    let _ = conn.client.flush().await;
    http_stop.cancel();
    let _ = http.await;
    Ok(StoreReport {
        received: counters.received.load(Relaxed),
        rows: counters.rows.load(Relaxed),
        poison: counters.poison.load(Relaxed),
        acked: acks.acked.load(Relaxed),
        redelivered: acks.redelivered.load(Relaxed),
        drained: stopped.drained,
        stats: stopped.stats,
    })
}

/// Runs `setup` until it succeeds, for up to about 30 s.
async fn with_retries<T, F, Fut>(mut setup: F) -> Result<T, NatsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, NatsError>>,
{
    let mut attempt = 0;
    loop {
        match setup().await {
            Ok(v) => return Ok(v),
            Err(error) if attempt < 30 => {
                attempt += 1;
                tracing::warn!(%error, attempt, "JetStream setup failed; retrying.");
                sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

fn skewed_clock(skew_ms: i64) -> WallClock {
    let now = WallClock::new().now_unix();
    let skew = Duration::from_millis(skew_ms.unsigned_abs());
    WallClock::anchored_at(if skew_ms >= 0 {
        now + skew
    } else {
        now.saturating_sub(skew)
    })
}

fn publisher(
    settings: &Settings,
    conn: &NatsConnection,
) -> Result<Arc<dyn FeedbackPublisher>, StoreError> {
    let nats: Arc<dyn FeedbackPublisher> = Arc::new(NatsPublisher::new(conn));
    if settings.http.emitter.urls.is_empty() {
        return Ok(nats);
    }
    let http =
        HttpPublisher::new(&settings.http.emitter).map_err(|e| StoreError::Http(e.to_string()))?;
    Ok(Arc::new(Fanout(vec![nats, Arc::new(http)])))
}

#[derive(Default)]
struct PullCounters {
    received: AtomicU64,
    rows: AtomicU64,
    poison: AtomicU64,
}

impl PullCounters {
    /// Average rows per message received so far.
    fn rows_per_message(&self) -> Option<f64> {
        let messages = self
            .received
            .load(Relaxed)
            .saturating_sub(self.poison.load(Relaxed));
        (messages > 0).then(|| self.rows.load(Relaxed) as f64 / messages as f64)
    }
}

/// Pulls at most the queue's free room at a time, forever.
async fn pull(
    consumer: &PullConsumer,
    coordinator: &WriteCoordinator<Pending>,
    conn: &NatsConnection,
    settings: &Settings,
    counters: &PullCounters,
) {
    let config = &settings.store;
    let idle_ceiling = Duration::from_millis(config.idle_poll_ms);
    let answer_within = Duration::from_millis(config.pull_timeout_ms);
    let mut unanswered = 0u64;
    let dead_subject = format!(
        "{}.deadletter.{}",
        conn.subjects.prefix(),
        settings.coordinator.coordinator_id
    );
    let mut idle_wait = Duration::ZERO;
    loop {
        let free = coordinator.free_capacity() as usize;
        if free == 0 {
            coordinator.wait_for_room().await;
            continue;
        }
        // Messages carry up to `rows_per_message` rows each: ask for what fits, and take only
        // what is there (no wait). Long polls (`expires`) are avoided on purpose: nats-server
        // 2.9 may neither fill nor expire a partly served pull request, which left stores
        // idle for the client's 5 s safety timer while rows piled up in the stream. An empty
        // stream is polled again after a pause that doubles from 1 ms up to `idle_poll_ms`.
        let wanted = (free / config.rows_per_message.max(1)).clamp(1, config.fetch_batch);
        let request = timeout(
            answer_within,
            consumer.fetch().max_messages(wanted).messages(),
        )
        .await;
        let mut messages = match request {
            Ok(Ok(m)) => m,
            Ok(Err(error)) => {
                tracing::warn!(%error, "Pull request failed; retrying.");
                sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(_) => continue,
        };
        let mut got = 0;
        loop {
            // A request sent just before a disconnect, or while the consumer's leader is being
            // elected, is never answered, and a no-wait fetch has no timer of its own: without
            // this deadline the store would stop pulling for good.
            let message = match timeout(answer_within, messages.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(None) => break,
                Ok(Some(Err(error))) => {
                    tracing::debug!(%error, "Pull batch ended with an error.");
                    break;
                }
                Err(_) => {
                    unanswered += 1;
                    if unanswered.is_power_of_two() {
                        tracing::warn!(unanswered, "A pull request got no answer; asking again.");
                    }
                    break;
                }
            };
            counters.received.fetch_add(1, Relaxed);
            got += 1;
            let (message, acker) = message.split();
            match Bar::decode_batch(&message.payload) {
                Ok(bars) => {
                    counters.rows.fetch_add(bars.len() as u64, Relaxed);
                    for row in Pending::from_message(bars, acker) {
                        if coordinator.submit(row).await.is_err() {
                            return; // closed: stopping
                        }
                    }
                }
                Err(error) => {
                    counters.poison.fetch_add(1, Relaxed);
                    tracing::warn!(%error, subject = %message.subject, "Poison message dead-lettered.");
                    let _ = conn
                        .client
                        .publish(dead_subject.clone(), message.payload.clone())
                        .await;
                    let _ = acker.ack_with(AckKind::Term).await;
                }
            }
        }
        idle_wait = if got == 0 {
            (idle_wait * 2).clamp(Duration::from_millis(1), idle_ceiling)
        } else {
            Duration::ZERO
        };
        if !idle_wait.is_zero() {
            sleep(idle_wait).await;
        }
    }
}

/// Keeps the coordinator's external backlog at the rows waiting in the consumer: its count
/// of undelivered messages times the rows per message seen so far (`rows_per_message` until
/// the first message), so that the level reflects rows waiting in JetStream, in the same unit
/// as the in-memory queue.
async fn poll_backlog(
    mut consumer: PullConsumer,
    coordinator: WriteCoordinator<Pending>,
    counters: Arc<PullCounters>,
    rows_per_message: usize,
    every: Duration,
) {
    loop {
        match consumer.info().await {
            Ok(info) => {
                let per_message = counters
                    .rows_per_message()
                    .unwrap_or(rows_per_message as f64);
                let rows = (info.num_pending as f64 * per_message).round() as u64;
                coordinator.set_external_backlog(rows);
            }
            Err(error) => tracing::debug!(%error, "Cannot read the consumer's pending count."),
        }
        sleep(every).await;
    }
}
