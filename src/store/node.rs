//! `Store`: a running store node — its consumer feeding a write coordinator that writes to
//! the database, acknowledges what is committed and publishes feedback — and its stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

use super::config::StoreSetup;
use super::pending::{AckProbe, AckStats, Acking, DeferredAcks, Pending, Redeliver};
use super::pull::{PullCounters, Puller, poll_backlog};
use super::sink::build_sink;
use super::stream::{ensure_write_consumer, ensure_write_stream};
use super::{StoreError, StoreReport};
use crate::bus::http::HttpPublisher;
use crate::bus::nats::{
    NatsConnection, NatsError, NatsPublisher, ensure_state_stream, subscribe_demand,
};
use crate::bus::{Fanout, FeedbackPublisher};
use crate::clock::WallClock;
use crate::coordinator::WriteCoordinator;
use crate::error::Chain;
use crate::event::DemandEvent;
use crate::metrics::{Metrics, MetricsError, serve};
use crate::process::{Shutdown, StopPlan, StopProgress};

/// A running store node. Stop it with [`stop`](Self::stop).
pub struct Store {
    pub(super) coordinator: WriteCoordinator<Pending>,
    pub(super) conn: NatsConnection,
    pub(super) counters: Arc<PullCounters>,
    pub(super) acks: Arc<AckStats>,
    pub(super) deferred: Arc<DeferredAcks>,
    pub(super) drain_timeout: Duration,
    pub(super) plan: StopPlan,
    pub(super) feeding: CancellationToken,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) http_stop: CancellationToken,
    pub(super) http: JoinHandle<Result<(), MetricsError>>,
    metrics_addr: SocketAddr,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("coordinator_id", self.coordinator.coordinator_id())
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

/// Runs a store node until `shutdown`, then drains: stops pulling, writes and acknowledges
/// what is queued (up to `store.drain_timeout_ms`), hands the rest back for redelivery, and
/// says goodbye to the agents, all within [`StoreConfig::stop_plan`](super::StoreConfig)'s
/// total.
pub async fn run(
    setup: StoreSetup,
    shutdown: impl Into<Shutdown>,
) -> Result<StoreReport, StoreError> {
    let mut shutdown = shutdown.into();
    // A stop asked for while starting (JetStream setup retries for up to 30 s) ends it there.
    let store = tokio::select! {
        started = Store::start(&setup) => started?,
        () = shutdown.requested() => return Err(StoreError::StoppedWhileStarting),
    };
    shutdown.requested().await;
    Ok(store.stop_with(shutdown.progress()).await)
}

impl Store {
    /// Connects, makes sure the streams and the consumer exist (retrying while JetStream
    /// elects its leaders), opens the database, starts the write coordinator and its feeder,
    /// and serves `/metrics`, `/healthz` and `/readyz` on `metrics.listen`.
    pub async fn start(setup: &StoreSetup) -> Result<Self, StoreError> {
        setup.validate()?;
        let config = &setup.store;
        let conn = setup.nats.connect("backflow-store").await?;
        let consumer = prepare_streams(&conn, setup).await?;
        let acks = Arc::new(AckStats::default());
        let deferred = Arc::new(DeferredAcks::default());
        let coordinator = start_coordinator(setup, &conn, acks.clone(), deferred.clone()).await?;
        let metrics = Metrics::new()?;
        metrics.register(coordinator.clone())?;
        metrics.register(AckProbe {
            coordinator_id: coordinator.coordinator_id().clone(),
            stats: acks.clone(),
        })?;
        let interest = crate::bus::Interest::Only([coordinator.coordinator_id().clone()].into());
        let (demand, demand_stats) = subscribe_demand(&conn, &interest).await?;
        metrics.register(demand_stats)?;
        let http_stop = CancellationToken::new();
        let probe = coordinator.clone();
        let (metrics_addr, http) = serve(
            &setup.metrics,
            metrics.router(move || probe.health().is_healthy()),
            http_stop.clone().cancelled_owned(),
        )
        .await?;
        let id = coordinator.coordinator_id().clone();
        tracing::info!(
            coordinator_id = %id,
            consumer = %conn.subjects.write_consumer(&id),
            metrics = %metrics_addr,
            "Store running."
        );
        let mut store = Self {
            coordinator,
            conn,
            counters: Arc::default(),
            acks,
            deferred,
            drain_timeout: Duration::from_millis(config.drain_timeout_ms),
            plan: config.stop_plan(),
            feeding: CancellationToken::new(),
            tasks: Vec::new(),
            http_stop,
            http,
            metrics_addr,
        };
        store.feed(consumer, setup);
        store.follow_demand(demand);
        Ok(store)
    }

    /// Hands the agents' demand to the coordinator, whose feedback events then carry fair
    /// rates, until the store stops feeding.
    fn follow_demand(&mut self, mut demand: tokio::sync::mpsc::Receiver<DemandEvent>) {
        let (coordinator, stop) = (self.coordinator.clone(), self.feeding.clone());
        self.tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = demand.recv() => match event {
                        Some(event) => {
                            coordinator.observe_demand(event);
                        }
                        None => return,
                    },
                    () = stop.cancelled() => return,
                }
            }
        }));
    }

    /// Starts the puller and the backlog poll.
    fn feed(&mut self, consumer: PullConsumer, setup: &StoreSetup) {
        let config = setup.store.clone();
        let backlog = poll_backlog(
            consumer.clone(),
            self.coordinator.clone(),
            self.counters.clone(),
            config.rows_per_message,
            Duration::from_millis(config.backlog_poll_ms),
        );
        let feeding = self.feeding.clone();
        self.tasks.push(tokio::spawn(async move {
            feeding.run_until_cancelled(backlog).await;
        }));
        let (coordinator, client, counters) = (
            self.coordinator.clone(),
            self.conn.client.clone(),
            self.counters.clone(),
        );
        let dead_subject = self.conn.subjects.dead_letter(coordinator.coordinator_id());
        let feeding = self.feeding.clone();
        self.tasks.push(tokio::spawn(async move {
            let puller = Puller {
                consumer: &consumer,
                coordinator: &coordinator,
                client: &client,
                dead_subject,
                config: &config,
                counters: &counters,
            };
            feeding.run_until_cancelled(puller.run()).await;
        }));
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// The write coordinator.
    pub fn coordinator(&self) -> &WriteCoordinator<Pending> {
        &self.coordinator
    }

    /// Stops pulling, drains the queue (up to `store.drain_timeout_ms`), says goodbye and
    /// stops serving, within [`StoreConfig::stop_plan`](super::StoreConfig)'s total; returns
    /// what the store did. See [`stop_with`](Self::stop_with).
    pub async fn stop(self) -> StoreReport {
        self.stop_with(&StopProgress::new()).await
    }
}

/// The last-value stream (best effort), the write stream and this coordinator's consumer.
///
/// A pod may start while the NATS cluster is still electing its JetStream leader: the setup
/// is retried for a while before giving up.
async fn prepare_streams(
    conn: &NatsConnection,
    setup: &StoreSetup,
) -> Result<PullConsumer, NatsError> {
    let id = &setup.coordinator.coordinator_id;
    with_retries(|| async {
        if let Err(error) = ensure_state_stream(conn).await {
            tracing::warn!(error = %Chain(&error), "Last-value stream unavailable; agents will learn levels from live events only.");
        }
        ensure_write_stream(conn, &setup.store.stream).await?;
        ensure_write_consumer(conn, id, &setup.store).await
    })
    .await
}

/// The write coordinator over the database, handing rows it cannot write back to JetStream
/// and publishing feedback on NATS (and HTTP when configured).
async fn start_coordinator(
    setup: &StoreSetup,
    conn: &NatsConnection,
    acks: Arc<AckStats>,
    deferred: Arc<DeferredAcks>,
) -> Result<WriteCoordinator<Pending>, StoreError> {
    let config = &setup.store;
    let sink = build_sink::<Pending>(&config.sink, &config.throttle).await?;
    let coordinator = WriteCoordinator::builder(
        setup.coordinator.clone(),
        Arc::new(Acking {
            inner: sink,
            stats: acks.clone(),
            deferred,
        }),
    )
    .dead_letter(Arc::new(Redeliver {
        client: conn.client.clone(),
        dead_subject: conn.subjects.dead_letter(&setup.coordinator.coordinator_id),
        delay: Duration::from_millis(config.redeliver_delay_ms),
        stats: acks,
    }))
    .publisher(publisher(setup, conn)?)
    .wall_clock(skewed_clock(config.clock_skew_ms))
    .start()
    .map_err(|e| e.under("coordinator"))?;
    Ok(coordinator)
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
                tracing::warn!(error = %Chain(&error), attempt, "JetStream setup failed; retrying.");
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

/// NATS, plus the HTTP emitter when URLs are configured.
fn publisher(
    setup: &StoreSetup,
    conn: &NatsConnection,
) -> Result<Arc<dyn FeedbackPublisher>, StoreError> {
    let nats: Arc<dyn FeedbackPublisher> = Arc::new(NatsPublisher::new(conn));
    if !setup.emitter.is_enabled() {
        return Ok(nats);
    }
    let http = HttpPublisher::new(&setup.emitter)?;
    Ok(Arc::new(Fanout(vec![nats, Arc::new(http)])))
}
