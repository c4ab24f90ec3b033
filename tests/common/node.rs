//! A real agent node on a spawned server, and the store's side of the streams it needs.

use backflow::agent::{Agent, AgentSetup};
use backflow::bus::nats::{NatsConnection, NatsOptions, ensure_state_stream};
use backflow::feedback::FeedbackConfig;
use backflow::metrics::MetricsConfig;
use backflow::rate::ProviderConfig;
use backflow::store::{WriteStreamConfig, ensure_write_stream};

use super::nats::NatsServer;

/// A real agent (NATS, and `POST /feedback` on a free port) with one provider `p` at
/// `limits`, handling feedback as `feedback` says.
pub async fn agent_node(
    server: &NatsServer,
    feedback: FeedbackConfig,
    limits: ProviderConfig,
) -> Agent {
    let mut setup = AgentSetup {
        nats: NatsOptions::for_url(server.url()),
        metrics: MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
        },
        feedback: FeedbackConfig {
            provider_name: "p".into(),
            ..feedback
        },
        ..AgentSetup::default()
    };
    setup.receiver.listen = "127.0.0.1:0".parse().unwrap();
    setup.agent.http_receiver = true;
    setup.rate.providers.insert("p".into(), limits);
    Agent::start(&setup).await.unwrap()
}

/// A store's connection: the write stream (the agent publishes its rows there) exists, and
/// the last-value stream when `keep` (without it, events are live only).
pub async fn store_side(server: &NatsServer, keep: bool) -> NatsConnection {
    let conn = NatsOptions::for_url(server.url())
        .connect("test-store")
        .await
        .unwrap();
    if keep {
        ensure_state_stream(&conn).await.unwrap();
    }
    ensure_write_stream(&conn, &WriteStreamConfig::default())
        .await
        .unwrap();
    conn
}
