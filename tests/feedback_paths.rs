//! One inbound path: the same events through NATS (live and kept values) and HTTP reach a
//! real agent with the same outcomes; an instance that left stays gone at start and after a
//! reconnect; an agent obeys only the coordinators it follows, over every transport.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use backflow::agent::Agent;
use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::NatsPublisher;
use backflow::event::BackpressureLevel::{Hard, Ok as Fine, Soft};
use backflow::event::{FeedbackEvent, encode};
use backflow::feedback::{FeedbackConfig, HandlerStats, PolicyKind};
use backflow::fleet::Follow;
use backflow::rate::ProviderConfig;
use common::nats::NatsServer;
use common::node::{agent_node, store_side};
use common::{event, within};
use tokio::time::sleep;

const WAIT: Duration = Duration::from_secs(10);

/// A real agent obeying the step policy for provider `p`, writing to coordinator `default`,
/// following `follow` (empty: what it writes to).
async fn agent(server: &NatsServer, follow: Vec<Follow>) -> Agent {
    let feedback = FeedbackConfig {
        coordinators: follow,
        ..FeedbackConfig::with_policy(PolicyKind::Step)
    };
    agent_node(server, feedback, ProviderConfig::new(1, 1.0)).await
}

fn leaving(mut e: FeedbackEvent) -> FeedbackEvent {
    e.leaving = true;
    e
}

/// Events of coordinator `default` (which the agent follows), and what each must become.
fn table() -> Vec<(FeedbackEvent, &'static str)> {
    vec![
        (event("default", "a", 1, Soft, 60, 100), "applied"),
        (event("default", "a", 1, Soft, 60, 100), "duplicate"),
        (event("default", "a", 3, Fine, 10, 100), "applied"),
        (event("default", "a", 2, Hard, 90, 100), "out_of_order"),
        (event("default", "b", 1, Hard, 95, 100), "applied"),
        (leaving(event("default", "b", 2, Fine, 0, 100)), "left"),
        (event("default", "b", 1, Hard, 95, 100), "out_of_order"),
    ]
}

/// The handler's counters, by outcome.
fn outcomes(stats: &HandlerStats) -> [(&'static str, u64); 5] {
    [
        ("applied", stats.applied.load(Relaxed)),
        ("duplicate", stats.duplicates.load(Relaxed)),
        ("out_of_order", stats.out_of_order.load(Relaxed)),
        ("left", stats.left.load(Relaxed)),
        ("unfollowed", stats.unfollowed.load(Relaxed)),
    ]
}

fn expected(rows: &[(FeedbackEvent, &'static str)]) -> [(&'static str, u64); 5] {
    let n = |o: &str| rows.iter().filter(|(_, x)| *x == o).count() as u64;
    [
        ("applied", n("applied")),
        ("duplicate", n("duplicate")),
        ("out_of_order", n("out_of_order")),
        ("left", n("left")),
        ("unfollowed", n("unfollowed")),
    ]
}

/// Waits until `n` events have an outcome (`received` is counted before the outcome is).
async fn received(stats: &HandlerStats, n: u64, what: &str) {
    within(WAIT, what, async {
        loop {
            let settled: u64 =
                outcomes(stats).iter().map(|(_, c)| c).sum::<u64>() + stats.too_old.load(Relaxed);
            if settled >= n {
                return;
            }
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Waits until provider `p` runs at `want`.
async fn scale_becomes(agent: &Agent, want: f64) {
    within(WAIT, "the scale", async {
        while scale(agent) != want {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// POSTs `e` as MessagePack; returns the status and the `outcome` field.
async fn post(agent: &Agent, e: &FeedbackEvent) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let url = format!("http://{}/feedback", agent.feedback_addr().unwrap());
    let response = within(
        WAIT,
        "the POST",
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/msgpack")
            .body(encode(e))
            .send(),
    )
    .await
    .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    (
        status,
        body["outcome"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The scale of provider `p` now.
fn scale(agent: &Agent) -> f64 {
    agent.handler_stats().unwrap().scale()
}

#[tokio::test]
async fn the_same_events_have_the_same_outcomes_over_nats_live_kept_values_and_http() {
    let rows = table();
    let want = expected(&rows);

    // NATS, live: the agent is up before the events are published (and nothing keeps them,
    // so that no read of last values can see them too).
    let server = NatsServer::start();
    let store = store_side(&server, false).await;
    let live = agent(&server, vec![]).await;
    let publisher = NatsPublisher::new(&store);
    for (e, _) in &rows {
        publisher.publish(e).await.unwrap();
    }
    let stats = live.handler_stats().unwrap();
    received(&stats, rows.len() as u64, "every live event").await;
    assert_eq!(outcomes(&stats), want, "NATS live");
    scale_becomes(&live, 1.0).await;
    let live_scale = scale(&live);
    live.stop().await;

    // NATS, kept values: published before the agent starts, read from the last-value stream.
    let server = NatsServer::start();
    let store = store_side(&server, true).await;
    let publisher = NatsPublisher::new(&store);
    for (e, _) in &rows {
        publisher.publish(e).await.unwrap();
    }
    store.client.flush().await.unwrap();
    let kept = agent(&server, vec![]).await;
    let stats = kept.handler_stats().unwrap();
    received(&stats, rows.len() as u64, "every kept event").await;
    assert_eq!(outcomes(&stats), want, "NATS kept values");
    assert_eq!(scale(&kept), live_scale);
    kept.stop().await;

    // HTTP: each POST is answered with its outcome.
    let server = NatsServer::start();
    let _store = store_side(&server, false).await;
    let http = agent(&server, vec![]).await;
    for (e, outcome) in &rows {
        let (status, answered) = post(&http, e).await;
        let expected_status = if matches!(*outcome, "applied" | "left") {
            202
        } else {
            409
        };
        assert_eq!(
            (status, answered.as_str()),
            (expected_status, *outcome),
            "{e:?}"
        );
    }
    assert_eq!(outcomes(&http.handler_stats().unwrap()), want, "HTTP");
    assert_eq!(scale(&http), live_scale);
    http.stop().await;
}

#[tokio::test]
async fn agents_obey_only_the_coordinators_they_follow_whatever_the_transport() {
    let server = NatsServer::start();
    let store = store_side(&server, false).await;
    let writes_default = agent(&server, vec![]).await;
    // A HARD of a coordinator the agent does not write to: 409 over HTTP, nothing applied.
    let ghost = event("ghost", "x", 1, Hard, 99, 100);
    assert_eq!(
        post(&writes_default, &ghost).await,
        (409, "unfollowed".to_owned())
    );
    // Over NATS it is not even delivered: the agent subscribes to what it follows.
    NatsPublisher::new(&store).publish(&ghost).await.unwrap();
    let own = event("default", "a", 1, Soft, 60, 100);
    NatsPublisher::new(&store).publish(&own).await.unwrap();
    let stats = writes_default.handler_stats().unwrap();
    received(&stats, 2, "the HTTP ghost and the NATS event").await;
    assert_eq!(stats.unfollowed.load(Relaxed), 1);
    scale_becomes(&writes_default, 0.5).await;
    writes_default.stop().await;

    // `feedback.coordinators: ["*"]` widens it to every coordinator, on both transports.
    let everyone = agent(&server, vec![Follow::Any]).await;
    assert_eq!(post(&everyone, &ghost).await, (202, "applied".to_owned()));
    scale_becomes(&everyone, 0.0).await;
    let ghost_ok = event("ghost", "x", 2, Fine, 0, 100);
    NatsPublisher::new(&store).publish(&ghost_ok).await.unwrap();
    scale_becomes(&everyone, 1.0).await;
    everyone.stop().await;
}

#[tokio::test]
async fn an_instance_that_left_stays_gone_at_start_and_after_a_reconnect() {
    let mut server = NatsServer::start();
    let store = store_side(&server, true).await;
    let publisher = NatsPublisher::new(&store);
    // Instance `gone` went HARD, then stopped cleanly; `live` is OK.
    publisher
        .publish(&event("default", "gone", 1, Hard, 95, 100))
        .await
        .unwrap();
    publisher
        .publish(&leaving(event("default", "gone", 2, Fine, 0, 100)))
        .await
        .unwrap();
    publisher
        .publish(&event("default", "live", 1, Fine, 5, 100))
        .await
        .unwrap();
    store.client.flush().await.unwrap();

    let late = agent(&server, vec![]).await;
    let stats = late.handler_stats().unwrap();
    received(&stats, 3, "the kept events").await;
    // Taken in as one batch: the HARD it left is never applied.
    assert_eq!(stats.adjustments.load(Relaxed), 0, "the scale never moved");
    assert_eq!(scale(&late), 1.0);

    // A broker restart makes the agent read the kept values again: the old HARD is older
    // than the goodbye it remembers, and is refused.
    server.restart();
    received(&stats, 6, "the kept events again after the reconnect").await;
    assert_eq!(stats.adjustments.load(Relaxed), 0, "the scale never moved");
    assert!(
        stats.out_of_order.load(Relaxed) >= 2,
        "the replayed HARD was refused"
    );
    // And over HTTP the same replay is refused too.
    let replay = event("default", "gone", 1, Hard, 95, 100);
    assert_eq!(post(&late, &replay).await, (409, "out_of_order".to_owned()));
    assert_eq!(scale(&late), 1.0);
    late.stop().await;
}
