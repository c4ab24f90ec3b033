//! `run`: the whole agent, from its sources through the rate limits to the write stream.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::publisher::{PublishPlan, RowPublisher};
use crate::bus::http::{HttpError, HttpReceiver};
use crate::bus::nats::{NatsConnection, NatsError, NatsSubscriber};
use crate::bus::{Delivery, Interest};
use crate::clock::WallClock;
use crate::event::InstanceId;
use crate::feedback::{FeedbackHandler, HandlerStats};
use crate::market::CsvError;
use crate::metrics::{FeedbackTransport, Metrics, MetricsError, serve};
use crate::rate::{RateCoordinator, RateError};
use crate::settings::Settings;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Invalid settings.
    #[error("invalid agent setting {0}: {1}")]
    Config(String, String),
    /// NATS could not be set up.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A provider could not be registered or found.
    #[error(transparent)]
    Rate(#[from] RateError),
    /// A replay file is unusable.
    #[error(transparent)]
    Csv(#[from] CsvError),
    /// The ack log cannot be opened.
    #[error("ack log {0}: {1}")]
    AckLog(String, std::io::Error),
    /// `/metrics` could not be served.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The HTTP feedback receiver could not start.
    #[error(transparent)]
    Http(#[from] HttpError),
}

/// What an agent did, reported when it stops.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AgentReport {
    /// The agent's name.
    pub name: String,
    /// Rows produced by the sources.
    pub produced: u64,
    /// Rows the write stream acknowledged.
    pub acked: u64,
    /// Messages (batches of rows) published.
    pub messages: u64,
    /// Publish attempts that failed and were retried.
    pub retries: u64,
    /// Rows still unacknowledged when the drain timed out.
    pub unacked: u64,
    /// Lowest scale feedback applied.
    pub min_scale: f64,
    /// Scale changes applied by feedback.
    pub adjustments: u64,
}

/// Runs an agent until `shutdown` (or until every source is exhausted or reached
/// `agent.max_rows`), then waits up to `agent.drain_timeout_ms` for outstanding
/// acknowledgements.
pub async fn run(
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<AgentReport, AgentError> {
    let config = &settings.agent;
    config
        .validate()
        .map_err(|(k, r)| AgentError::Config(format!("agent.{k}"), r))?;
    if settings.rate_coordinator.providers.is_empty() {
        return Err(AgentError::Config(
            "rate_coordinator.providers".into(),
            "an agent needs at least one provider".into(),
        ));
    }
    for p in config.sources.keys() {
        if !settings.rate_coordinator.providers.contains_key(p) {
            return Err(AgentError::Config(
                format!("agent.sources.{p}"),
                "no such provider in rate_coordinator.providers".into(),
            ));
        }
    }
    let name = config
        .name
        .clone()
        .unwrap_or_else(|| InstanceId::generate().to_string());
    let rate = settings.rate_coordinator.build()?;
    let conn = settings.nats.connect("backflow-agent").await?;
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();

    let metrics = Metrics::new()?;
    let handler_stats = if settings.feedback.enable_feedback {
        Some(start_feedback(&settings, &rate, &conn, &stop, &mut tasks, &name, &metrics).await?)
    } else {
        tracing::info!("Feedback disabled: running at base rates.");
        metrics.register_rate(&rate, &rate.provider_names())?;
        None
    };
    let client = conn.client.clone();
    let router = metrics
        .router(move || client.connection_state() == async_nats::connection::State::Connected);
    let (metrics_addr, metrics_server) =
        serve(&settings.metrics, router, stop.clone().cancelled_owned()).await?;
    tasks.spawn(async move {
        let _ = metrics_server.await;
    });
    tracing::info!(%metrics_addr, "Agent metrics listening.");
    let min_scale = Arc::new(AtomicU64::new(1.0f64.to_bits()));
    for provider in rate.provider_names() {
        let mut scale = rate.watch_scale(&provider)?;
        let (min_scale, stop) = (min_scale.clone(), stop.clone());
        tasks.spawn(async move {
            while let Some(Ok(())) = stop.run_until_cancelled(scale.changed()).await {
                let s = *scale.borrow_and_update();
                min_scale.fetch_min(s.to_bits(), Relaxed); // non-negative floats order as bits
            }
        });
    }

    let log = match &config.ack_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| AgentError::AckLog(path.display().to_string(), e))?,
        ),
        None => None,
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(config.publish_timeout_ms))
        .build(conn.client.clone());
    let publisher = RowPublisher::new(
        js,
        PublishPlan {
            subject: conn.subjects.writes(&config.coordinator_id),
            ack_timeout: Duration::from_millis(config.publish_timeout_ms),
            retry_delay: Duration::from_millis(config.retry_delay_ms),
            max_in_flight: config.max_in_flight,
            batch_rows: config.batch_rows,
            linger: Duration::from_millis(config.linger_ms),
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
        },
        log,
    );

    let (tx, rx) = mpsc::channel(config.batch_rows.max(64) * 2);
    let produced = Arc::new(AtomicU64::new(0));
    let now_ms = WallClock::new().now_ms() as i64;
    let mut producers = JoinSet::new();
    for (i, provider) in rate.provider_names().into_iter().enumerate() {
        let source_config = config.sources.get(&provider).cloned().unwrap_or_default();
        let seed = fastrand::u64(..) ^ i as u64;
        let mut source = source_config.open(&format!("{provider}:{name}"), now_ms, seed)?;
        let (rate, tx, stop, produced) = (rate.clone(), tx.clone(), stop.clone(), produced.clone());
        let limit = config.max_rows.unwrap_or(u64::MAX);
        producers.spawn(async move {
            let mut n = 0;
            while n < limit {
                match stop.run_until_cancelled(rate.acquire(&provider, 1)).await {
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        tracing::error!(%error, provider, "Cannot acquire.");
                        break;
                    }
                    None => break,
                }
                let Some(bar) = source.next_bar() else { break };
                if tx.send(bar).await.is_err() {
                    break;
                }
                n += 1;
                produced.fetch_add(1, Relaxed);
            }
        });
    }
    drop(tx);
    tracing::info!(%name, providers = ?rate.provider_names(), "Agent running.");
    let stats = publisher.run(rx, shutdown, stop.clone()).await;
    while producers.join_next().await.is_some() {}
    tasks.shutdown().await;
    Ok(AgentReport {
        name,
        produced: produced.load(Relaxed),
        acked: stats.acked,
        messages: stats.messages,
        retries: stats.retries,
        unacked: stats.unacked,
        min_scale: f64::from_bits(min_scale.load(Relaxed)),
        adjustments: handler_stats.map_or(0, |s| s.adjustments.load(Relaxed)),
    })
}

async fn start_feedback(
    settings: &Settings,
    rate: &RateCoordinator,
    conn: &NatsConnection,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
    name: &str,
    metrics: &Metrics,
) -> Result<Arc<HandlerStats>, AgentError> {
    let fb = &settings.feedback;
    let (nats, nats_stats) =
        NatsSubscriber::start(conn, Interest::of(fb.coordinators.iter().cloned())).await?;
    metrics.register_transport(FeedbackTransport::Nats(nats_stats));
    let deliveries: mpsc::Receiver<Delivery> = if settings.agent.http_receiver {
        let receiver = HttpReceiver::new(settings.http.receiver.clone())?;
        let (addr, http, server) = receiver.serve(stop.clone().cancelled_owned()).await?;
        tracing::info!(%addr, "Accepting feedback over HTTP as well.");
        metrics.register_transport(FeedbackTransport::Http(receiver.stats()));
        tasks.spawn(async move {
            let _keep = receiver; // numbers seed-shaped events for as long as it serves
            let _ = server.await;
        });
        crate::bus::merge(nats, http)
    } else {
        nats
    };
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let providers = fb.providers(rate);
    let handler = FeedbackHandler::new(
        rate.clone(),
        providers.clone(),
        fb.build_policy(seed),
        fb.fleet.clone(),
    )?;
    let stats = handler.stats();
    metrics.register_agent(rate, &providers, stats.clone(), None)?;
    let counted = metrics.count_feedback(deliveries);
    tasks.spawn({
        let stop = stop.clone();
        async move {
            handler.run(counted, stop.cancelled_owned()).await;
        }
    });
    Ok(stats)
}
