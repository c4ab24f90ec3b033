//! `Agent`: a running pipeline agent — its sources paced by the rate coordinator, published
//! to the write stream with acknowledgements, and slowed down by feedback — and its stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_nats::jetstream;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::announce::Announcer;
use super::config::AgentSetup;
use super::listen::{router, start_feedback};
use super::produce;
use super::publisher::{PublishPlan, PublishStats, RowPublisher};
use super::{AgentError, AgentReport};
use crate::bus::nats::NatsConnection;
use crate::event::InstanceId;
use crate::feedback::HandlerStats;
use crate::metrics::{Metrics, serve};
use crate::process::{Shutdown, StopPlan, StopProgress};

/// A running agent. Stop it with [`stop`](Self::stop); [`finished`](Self::finished) resolves
/// once every source is exhausted (or reached `agent.max_rows`) and what it produced is
/// published.
pub struct Agent {
    pub(super) name: String,
    pub(super) handler: Option<Arc<HandlerStats>>,
    pub(super) feedback_addr: Option<SocketAddr>,
    pub(super) produced: Arc<AtomicU64>,
    pub(super) metrics_addr: SocketAddr,
    /// Tells the publisher to stop taking rows and drain.
    pub(super) shutdown: CancellationToken,
    /// Stops producers, the feedback handler and the servers.
    pub(super) stop: CancellationToken,
    pub(super) publishing: JoinHandle<PublishStats>,
    pub(super) published: Option<PublishStats>,
    pub(super) producers: JoinSet<()>,
    pub(super) tasks: JoinSet<()>,
    /// Publishes the demand; awaited at stop so that its last (`leaving`) event goes out.
    pub(super) announcing: JoinHandle<bool>,
    pub(super) client: async_nats::Client,
    pub(super) plan: StopPlan,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("name", &self.name)
            .field("metrics_addr", &self.metrics_addr)
            .finish_non_exhaustive()
    }
}

/// Runs an agent until `shutdown` (or until every source is exhausted or reached
/// `agent.max_rows`), then waits up to `agent.drain_timeout_ms` for outstanding
/// acknowledgements; the whole stop ends within
/// [`AgentConfig::stop_plan`](super::AgentConfig)'s total.
pub async fn run(
    setup: AgentSetup,
    shutdown: impl Into<Shutdown>,
) -> Result<AgentReport, AgentError> {
    let mut shutdown = shutdown.into();
    let mut agent = tokio::select! {
        started = Agent::start(&setup) => started?,
        () = shutdown.requested() => return Err(AgentError::StoppedWhileStarting),
    };
    tokio::select! {
        () = shutdown.requested() => {}
        () = agent.finished() => {}
    }
    Ok(agent.stop_with(shutdown.progress()).await)
}

impl Agent {
    /// Connects, starts the feedback handler (NATS, and HTTP when `agent.http_receiver`),
    /// serves `/metrics`, and starts one producer per provider and the publisher.
    pub async fn start(setup: &AgentSetup) -> Result<Self, AgentError> {
        setup.validate()?;
        setup.check_runnable()?;
        let config = &setup.agent;
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| InstanceId::generate().to_string());
        let rate = setup.rate.build()?;
        let conn = setup.nats.connect("backflow-agent").await?;
        let (stop, mut tasks) = (CancellationToken::new(), JoinSet::new());
        let metrics = Metrics::new()?;
        let listening =
            start_feedback(setup, &name, &rate, &conn, &metrics, &stop, &mut tasks).await?;
        let (metrics_addr, server) = serve(
            &setup.metrics,
            router(&metrics, &conn),
            stop.clone().cancelled_owned(),
        )
        .await?;
        tasks.spawn(async move {
            let _ = server.await;
        });
        tracing::info!(%metrics_addr, "Agent metrics listening.");
        let produced = Arc::new(AtomicU64::new(0));
        let mut producers = JoinSet::new();
        let (rows, meters) =
            produce::start(config, &name, &rate, &produced, &stop, &mut producers)?;
        let agent_id = InstanceId::new(name.clone()).unwrap_or_else(|_| InstanceId::generate());
        let announcer = Announcer::new(
            conn.clone(),
            config.coordinator_id.clone(),
            agent_id,
            meters,
            Duration::from_millis(config.demand_interval_ms),
            Duration::from_millis(config.demand_window_ms),
            setup.feedback.fair_share.clone(),
        );
        let announcing = tokio::spawn(announcer.run(stop.clone()));
        let shutdown = CancellationToken::new();
        let publisher = row_publisher(setup, &conn)?;
        let publishing =
            tokio::spawn(publisher.run(rows, shutdown.clone().cancelled_owned(), stop.clone()));
        tracing::info!(%name, providers = ?rate.provider_names(), "Agent running.");
        Ok(Self {
            name,
            handler: listening.stats,
            feedback_addr: listening.http,
            produced,
            metrics_addr,
            shutdown,
            stop,
            publishing,
            published: None,
            producers,
            tasks,
            announcing,
            client: conn.client.clone(),
            plan: config.stop_plan(),
        })
    }

    /// Where `/metrics` is served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Where `POST /feedback` is served, when `agent.http_receiver` is on.
    pub fn feedback_addr(&self) -> Option<SocketAddr> {
        self.feedback_addr
    }

    /// The feedback handler's counters, when feedback is on.
    pub fn handler_stats(&self) -> Option<Arc<HandlerStats>> {
        self.handler.clone()
    }

    /// Resolves once the sources are exhausted and their rows published (never, for endless
    /// sources). Cancel-safe.
    pub async fn finished(&mut self) {
        if self.published.is_none() {
            let stats = (&mut self.publishing).await.unwrap_or_default();
            self.published = Some(stats);
        }
    }

    /// Stops production, publishes what was produced, waits up to `agent.drain_timeout_ms`
    /// for acknowledgements, stops the handler and the servers; returns what the agent did.
    /// See [`stop_with`](Self::stop_with).
    pub async fn stop(self) -> AgentReport {
        self.stop_with(&StopProgress::new()).await
    }
}

/// The publisher of rows to `<prefix>.writes.<coordinator_id>`, with the ack log if any.
fn row_publisher(setup: &AgentSetup, conn: &NatsConnection) -> Result<RowPublisher, AgentError> {
    let config = &setup.agent;
    let log = match &config.ack_log {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| AgentError::AckLog {
                    path: path.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(config.publish_timeout_ms))
        .build(conn.client.clone());
    let plan = PublishPlan {
        subject: conn.subjects.writes(&config.coordinator_id),
        ack_timeout: Duration::from_millis(config.publish_timeout_ms),
        retry_delay: Duration::from_millis(config.retry_delay_ms),
        max_in_flight: config.max_in_flight,
        batch_rows: config.batch_rows,
        linger: Duration::from_millis(config.linger_ms),
        drain_timeout: Duration::from_millis(config.drain_timeout_ms),
    };
    Ok(RowPublisher::new(js, plan, log))
}
