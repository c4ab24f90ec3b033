//! Fair shares through real parts: a fair rate reaches a real agent the same way over NATS
//! (live and kept values) and HTTP, and a real store node divides its sink among the agents
//! whose demand it hears over NATS.

mod common;

use std::time::Duration;

use backflow::agent::Agent;
use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::NatsPublisher;
use backflow::demo::{DemoConfig, run_nats};
use backflow::event::BackpressureLevel::Ok as Fine;
use backflow::event::{Class, FairRates, FeedbackEvent, encode_json};
use backflow::feedback::{FairShareConfig, FeedbackConfig, PolicyKind};
use backflow::rate::ProviderConfig;
use common::nats::NatsServer;
use common::node::{agent_node, store_side};
use common::{event, within};
use tokio::time::sleep;

const WAIT: Duration = Duration::from_secs(10);

/// A real agent on the fair-share policy, class `standard` and weight 2, whose one provider
/// has a base rate of 100 rows per second.
async fn agent(server: &NatsServer) -> Agent {
    let feedback = FeedbackConfig {
        fair_share: FairShareConfig {
            class: Class::Standard,
            weight: 2.0,
        },
        ..FeedbackConfig::with_policy(PolicyKind::FairShare)
    };
    agent_node(server, feedback, ProviderConfig::new(10, 100.0)).await
}

/// An OK event of coordinator `default` with an empty queue granting `standard` rows per
/// second per unit of weight.
fn granting(standard: f64) -> FeedbackEvent {
    FeedbackEvent {
        fair_rates: Some(FairRates {
            critical: 1_000.0,
            standard,
            bulk: 0.0,
        }),
        ..event("default", "a", 1, Fine, 0, 100)
    }
}

/// Waits until the agent runs at `want`.
async fn scale_becomes(agent: &Agent, want: f64, what: &str) {
    let stats = agent.handler_stats().unwrap();
    within(WAIT, what, async {
        while (stats.scale() - want).abs() > 1e-9 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_fair_rate_is_obeyed_the_same_over_nats_live_kept_values_and_http() {
    // 2 (weight) × 20 rows/s of 100 rows/s: 0.4, although the queue is empty (the depth
    // map alone would say 1).
    let want = 0.4;

    let server = NatsServer::start();
    let store = store_side(&server, false).await;
    let live = agent(&server).await;
    NatsPublisher::new(&store)
        .publish(&granting(20.0))
        .await
        .unwrap();
    scale_becomes(&live, want, "the fair scale over NATS").await;
    live.stop().await;

    let server = NatsServer::start();
    let store = store_side(&server, true).await;
    NatsPublisher::new(&store)
        .publish(&granting(20.0))
        .await
        .unwrap();
    store.client.flush().await.unwrap();
    let kept = agent(&server).await;
    scale_becomes(&kept, want, "the fair scale from kept values").await;
    kept.stop().await;

    let server = NatsServer::start();
    let _store = store_side(&server, false).await;
    let http = agent(&server).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{}/feedback", http.feedback_addr().unwrap());
    let response = within(
        WAIT,
        "the POST",
        reqwest::Client::new()
            .post(url.clone())
            .header("content-type", "application/json")
            .body(encode_json(&granting(20.0)))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    scale_becomes(&http, want, "the fair scale over HTTP").await;
    // A negative rate is refused and changes nothing.
    let mut bad: serde_json::Value = serde_json::from_str(&encode_json(&granting(20.0))).unwrap();
    bad["seq"] = 2.into();
    bad["fair_rates"]["standard"] = (-1.0).into();
    let response = within(
        WAIT,
        "the bad POST",
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(bad.to_string())
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let text = response.text().await.unwrap_or_default();
    assert!(text.contains("fair_rates"), "{text}");
    assert!((http.handler_stats().unwrap().scale() - want).abs() < 1e-9);
    http.stop().await;
}

#[tokio::test]
async fn a_store_node_divides_its_sink_among_the_agents_it_hears_over_nats() {
    // The real store and agent code paths: agents publish their demand, the store hears it
    // on its coordinator's demand subject and grants fair rates; 2 agents × 4,000 rows/s
    // into a sink of 2,000 rows/s.
    let server = NatsServer::start();
    let config = DemoConfig {
        agents: 2,
        agent_rate: 4_000.0,
        sink_rate: 2_000.0,
        capacity: 20_000,
        duration: Duration::from_secs(8),
        policy: PolicyKind::FairShare,
        ..DemoConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut granted = Vec::new();
    let report = within(
        Duration::from_secs(120),
        "the NATS demo",
        run_nats(&config, &server.url(), &dir.path().join("bars.db"), |e| {
            if let Some(r) = e.fair_rates {
                granted.push(r.standard);
            }
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}\nserver log:\n{}", server.log_text()));
    assert!(
        granted.len() >= 3,
        "the store granted fair rates in {} events",
        granted.len()
    );
    // Each of the two agents is granted about half the sink (the budget moves with the
    // queue, so only its order of magnitude is asserted, not a timing).
    let last = granted.last().copied().unwrap_or_default();
    assert!((250.0..4_000.0).contains(&last), "last fair rate {last}");
    for a in &report.agents {
        assert!(a.min_scale < 0.8, "{} was never throttled: {a:?}", a.name);
        assert_eq!(a.produced, a.acked, "{a:?}");
    }
    assert!(report.store.drained);
    assert_eq!(report.store.stats.dropped(), 0);
}
