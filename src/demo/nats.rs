//! The demo through real NATS: the real store and agent code paths in one process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::DemoConfig;
use crate::agent::{AgentError, AgentReport, AgentSetup};
use crate::bus::nats::{NatsError, NatsOptions, NatsSubscriber};
use crate::bus::{FeedbackSubscription, Interest};
use crate::event::FeedbackEvent;
use crate::feedback::FeedbackConfig;
use crate::metrics::MetricsConfig;
use crate::rate::ProviderConfig;
use crate::store::sink::{SinkConfig, ThrottleConfig};
use crate::store::{Store, StoreError, StoreReport, StoreSetup};

/// What the NATS demo ran into.
#[derive(Debug, thiserror::Error)]
pub enum NatsDemoError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An agent failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// NATS failed.
    #[error(transparent)]
    Nats(#[from] NatsError),
    /// A task of the demo panicked.
    #[error("a demo task failed")]
    Task(#[from] tokio::task::JoinError),
}

/// The outcome of the NATS demo.
#[derive(Debug, Clone)]
pub struct NatsDemoReport {
    /// The store's report.
    pub store: StoreReport,
    /// Each agent's report.
    pub agents: Vec<AgentReport>,
}

/// The connection every component of the demo uses: `url`, subject prefix `backflow-demo`.
fn nats(url: &str) -> NatsOptions {
    NatsOptions {
        prefix: "backflow-demo".into(),
        ..NatsOptions::for_url(url)
    }
}

/// Several components in one process: each serves /metrics on its own free port.
fn any_port() -> MetricsConfig {
    MetricsConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
    }
}

/// One store: SQLite at `db`, throttled to the demo's sink rate.
fn store_setup(config: &DemoConfig, url: &str, db: &Path) -> StoreSetup {
    let mut setup = StoreSetup {
        nats: nats(url),
        metrics: any_port(),
        ..StoreSetup::default()
    };
    setup.coordinator.capacity = config.capacity;
    setup.coordinator.heartbeat_interval_ms = 500;
    setup.store.sink = SinkConfig::Sqlite {
        path: db.to_owned(),
        table: "bars".into(),
    };
    setup.store.throttle = ThrottleConfig {
        rows_per_sec: config.sink_rate,
        ..ThrottleConfig::default()
    };
    setup.store.drain_timeout_ms = 60_000;
    setup
}

/// Agent `i`: one provider at the demo's agent rate, obeying the demo's policy.
fn agent_setup(config: &DemoConfig, url: &str, i: usize) -> AgentSetup {
    let mut setup = AgentSetup {
        nats: nats(url),
        metrics: any_port(),
        feedback: FeedbackConfig {
            provider_name: "demo".into(),
            ..FeedbackConfig::with_policy(config.policy)
        },
        ..AgentSetup::default()
    };
    let burst = (config.agent_rate / 10.0).max(10.0) as u32;
    setup
        .rate
        .providers
        .insert("demo".into(), ProviderConfig::new(burst, config.agent_rate));
    setup.agent.name = Some(format!("demo-agent-{i}"));
    setup
}

/// Runs one `backflow-store` code path (SQLite at `db`, throttled to `sink_rate`) and
/// `agents` agent code paths against the NATS server at `url`, under the subject prefix
/// `backflow-demo`, calling `on_event` with every feedback event, for `duration`.
pub async fn run_nats(
    config: &DemoConfig,
    url: &str,
    db: &Path,
    mut on_event: impl FnMut(&FeedbackEvent),
) -> Result<NatsDemoReport, NatsDemoError> {
    // Everything else starts once the store has created its streams: nats-server 2.9.10
    // crashed (a nil pointer in its message-get handler) when a reader asked for kept values
    // while the store was creating the last-value stream.
    let store = Store::start(&store_setup(config, url, db)).await?;
    let conn = nats(url).connect("backflow-demo-watch").await?;
    let (mut events, _) = NatsSubscriber::start(&conn, Interest::All).await?;
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(10), events.next()).await {
        on_event(&d.event);
    }
    let stop_agents = CancellationToken::new();
    let agent_tasks: Vec<_> = (0..config.agents)
        .map(|i| {
            tokio::spawn(crate::agent::run(
                agent_setup(config, url, i),
                stop_agents.clone().cancelled_owned(),
            ))
        })
        .collect();
    watch(&mut events, config.duration, &mut on_event).await;
    stop_agents.cancel();
    let mut agents = Vec::new();
    for t in agent_tasks {
        agents.push(t.await??);
    }
    let store = store.stop().await;
    Ok(NatsDemoReport { store, agents })
}

/// Passes every event to `on_event` for `duration`.
async fn watch(
    events: &mut impl FeedbackSubscription,
    duration: Duration,
    on_event: &mut impl FnMut(&FeedbackEvent),
) {
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            d = events.next() => match d {
                Some(d) => on_event(&d.event),
                None => break,
            },
        }
    }
}
