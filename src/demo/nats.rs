//! The demo through real NATS: the real store and agent code paths in one process.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::DemoConfig;
use crate::agent::{AgentError, AgentReport};
use crate::bus::nats::{NatsOptions, NatsSubscriber};
use crate::bus::{FeedbackSubscription, Interest};
use crate::event::{CoordinatorId, FeedbackEvent};
use crate::rate::ProviderConfig;
use crate::settings::Settings;
use crate::store::sink::{SinkConfig, ThrottleConfig};
use crate::store::{StoreError, StoreReport};

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
    Nats(#[from] crate::bus::nats::NatsError),
}

/// The outcome of the NATS demo.
#[derive(Debug, Clone)]
pub struct NatsDemoReport {
    /// The store's report.
    pub store: StoreReport,
    /// Each agent's report.
    pub agents: Vec<AgentReport>,
}

/// Runs one `backflow-store` code path (SQLite at `db`, throttled to `sink_rate`) and
/// `agents` agent code paths against the NATS server at `url`, under the subject prefix
/// `backflow-demo`, calling `on_event` with every feedback event, for `duration`.
pub async fn run_nats(
    config: &DemoConfig,
    url: &str,
    db: &std::path::Path,
    mut on_event: impl FnMut(&FeedbackEvent),
) -> Result<NatsDemoReport, NatsDemoError> {
    let mut base = Settings {
        nats: NatsOptions {
            prefix: "backflow-demo".into(),
            ..NatsOptions::for_url(url)
        },
        ..Settings::default()
    };
    base.coordinator.coordinator_id = CoordinatorId::default();
    // Several components in one process: each serves /metrics on its own free port.
    base.metrics.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    base.coordinator.capacity = config.capacity;
    base.coordinator.heartbeat_interval_ms = 500;

    let mut store = base.clone();
    store.store.sink = SinkConfig::Sqlite {
        path: db.to_owned(),
        table: "bars".into(),
    };
    store.store.throttle = ThrottleConfig {
        rows_per_sec: config.sink_rate,
        ..ThrottleConfig::default()
    };
    store.store.drain_timeout_ms = 60_000;

    let stop_agents = CancellationToken::new();
    let stop_store = CancellationToken::new();
    let store_task = tokio::spawn(crate::store::run(
        store,
        stop_store.clone().cancelled_owned(),
    ));
    // Agents start once the store has created the write stream.
    let conn = base.nats.connect("backflow-demo-watch").await?;
    let (mut events, _) = NatsSubscriber::start(&conn, Interest::All).await?;
    let first = tokio::time::timeout(Duration::from_secs(10), events.next()).await;
    if let Ok(Some(d)) = first {
        on_event(&d.event);
    }

    let mut agent_tasks = Vec::new();
    for i in 0..config.agents {
        let mut s = base.clone();
        s.rate_coordinator.providers.insert(
            "demo".into(),
            ProviderConfig::new(
                (config.agent_rate / 10.0).max(10.0) as u32,
                config.agent_rate,
            ),
        );
        s.feedback.provider_name = "demo".into();
        if let Some(kind) = config.policy {
            s.feedback.policy = kind;
        } else {
            s.feedback.enable_feedback = false;
        }
        s.agent.name = Some(format!("demo-agent-{i}"));
        agent_tasks.push(tokio::spawn(crate::agent::run(
            s,
            stop_agents.clone().cancelled_owned(),
        )));
    }
    let deadline = tokio::time::sleep(config.duration);
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
    stop_agents.cancel();
    let mut agents = Vec::new();
    for t in agent_tasks {
        if let Ok(r) = t.await {
            agents.push(r?);
        }
    }
    stop_store.cancel();
    let store = match store_task.await {
        Ok(r) => r?,
        Err(e) => {
            return Err(NatsDemoError::Store(StoreError::Config(
                "task",
                e.to_string(),
            )));
        }
    };
    Ok(NatsDemoReport { store, agents })
}
