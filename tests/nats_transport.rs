//! Feedback over a real nats-server: fan-out, late joiners, restarts, cluster fail-over,
//! bad input and permissions. Every test starts its own server(s) on random ports.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::{
    NatsConnection, NatsOptions, NatsPublisher, Secret, ensure_state_stream,
};
use backflow::coordinator::{CoordinatorConfig, MemorySink, WriteCoordinator};
use backflow::event::{BackpressureLevel, InstanceId, encode};
use common::agent::{Agent, agent_on};
use common::nats::NatsServer;
use common::probe::Probe;
use common::{event, within};
use tokio::time::sleep;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(urls: &[String], name: &str) -> NatsConnection {
    let o = NatsOptions {
        servers: urls.to_vec(),
        ..NatsOptions::default()
    };
    o.connect(name).await.expect("connects")
}

async fn agent(urls: &[String]) -> Agent {
    agent_on(&connect(urls, "test-agent").await).await
}

async fn store(urls: &[String], heartbeat_ms: u64) -> WriteCoordinator<u64> {
    let conn = connect(urls, "test-store").await;
    ensure_state_stream(&conn).await.unwrap();
    WriteCoordinator::builder(
        CoordinatorConfig {
            capacity: 100,
            heartbeat_interval_ms: heartbeat_ms,
            instance_id: Some(InstanceId::new("store-0").unwrap()),
            ..CoordinatorConfig::default()
        },
        Arc::new(MemorySink::new()),
    )
    .publisher(Arc::new(NatsPublisher::new(&conn)))
    .start()
    .unwrap()
}

async fn scale_becomes(agent: &Agent, scale: f64, what: &str) {
    within(WAIT, what, async {
        while agent.rate.scale("p") != Ok(scale) {
            sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}

/// Levels for backlogs 60 / 85 / 70 / 10 out of 100 (watermarks 50% / 80%).
const STEPS: [(u64, f64); 4] = [(60, 0.5), (85, 0.0), (70, 0.5), (10, 1.0)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_agent_on_its_own_connection_applies_each_level_change() {
    let server = NatsServer::start();
    let urls = [server.url()];
    let mut agents = Vec::new();
    for _ in 0..8 {
        agents.push(agent(&urls).await);
    }
    let store = store(&urls, 60_000).await;
    for (backlog, scale) in STEPS {
        store.set_external_backlog(backlog);
        for a in &agents {
            scale_becomes(a, scale, "each agent to follow the store").await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_after_the_store_went_hard_is_hard_at_once() {
    let server = NatsServer::start();
    let urls = [server.url()];
    // Heartbeats only every minute: the late agent cannot learn the level from one.
    let store = store(&urls, 60_000).await;
    store.set_external_backlog(90);
    let early = agent(&urls).await;
    scale_becomes(&early, 0.0, "the early agent to see HARD live").await;
    sleep(Duration::from_millis(200)).await;
    let late = agent(&urls).await;
    within(
        Duration::from_secs(2),
        "the late agent to read the last values",
        async {
            while late.rate.scale("p") != Ok(0.0) {
                sleep(Duration::from_millis(2)).await;
            }
        },
    )
    .await;
    assert!(late.stats.state_reads.load(Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_recover_the_current_level_after_a_server_restart() {
    let mut server = NatsServer::start();
    let urls = [server.url()];
    let store = store(&urls, 500).await;
    let agent = agent(&urls).await;
    store.set_external_backlog(90);
    scale_becomes(&agent, 0.0, "HARD before the outage").await;

    server.kill();
    // The store eases while the server is down; its events queue in the client.
    store.set_external_backlog(60);
    store.set_external_backlog(10);
    sleep(Duration::from_millis(300)).await;
    server.restart();
    scale_becomes(&agent, 1.0, "the current level (OK) after the restart").await;

    // A replayed HARD from before the outage does not win over the newer state.
    let raw = connect(&urls, "replayer").await;
    let mut stale = event("default", "store-0", 1, BackpressureLevel::Hard, 90, 100);
    stale.epoch = 0; // an older incarnation's numbering
    raw.client
        .publish("backflow.feedback.default", encode(&stale).into())
        .await
        .unwrap();
    raw.client.flush().await.unwrap();
    within(WAIT, "the replay to be judged", async {
        while agent.handler.out_of_order.load(Relaxed) == 0 {
            sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(agent.rate.scale("p"), Ok(1.0));
    assert!(
        agent.stats.state_reads.load(Relaxed) >= 2,
        "re-read after reconnecting"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_fails_over_to_another_cluster_node_and_keeps_receiving() {
    let mut nodes = NatsServer::cluster(3);
    let a = [nodes[0].url()];
    let b = [nodes[1].url()];
    // The agent knows only node A; the cluster tells its client about B and C.
    let agent_conn = connect(&a, "agent-on-a").await;
    let agent = agent_on(&agent_conn).await;
    let publisher_conn = connect(&b, "store-on-b").await;
    let publisher = NatsPublisher::new(&publisher_conn);
    let mut seq = 0;
    let mut send = |level| {
        seq += 1;
        let e = event("default", "store-b", seq, level, 0, 100);
        let p = publisher.clone();
        async move { p.publish(&e).await.unwrap() }
    };
    // Routes may take a moment to form: repeat until the agent hears node B.
    within(WAIT, "the cluster to route", async {
        while agent.rate.scale("p") != Ok(0.5) {
            send(BackpressureLevel::Soft).await;
            sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    nodes[0].kill();
    within(WAIT, "the agent to fail over", async {
        while agent.rate.scale("p") != Ok(0.0) {
            send(BackpressureLevel::Hard).await;
            sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_ne!(agent_conn.client.server_info().port, nodes[0].port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_wrong_subjects_and_oversize_messages_are_counted_and_change_nothing() {
    let server = NatsServer::start();
    let urls = [server.url()];
    let agent = agent(&urls).await;
    let raw = connect(&urls, "garbage").await;
    let publish = |subject: &'static str, payload: Vec<u8>| {
        let c = raw.client.clone();
        async move { c.publish(subject, payload.into()).await.unwrap() }
    };
    publish("backflow.feedback.default", b"\xc1not msgpack".to_vec()).await;
    // A valid event of another coordinator on this coordinator's subject.
    publish(
        "backflow.feedback.default",
        encode(&event("other", "x", 1, BackpressureLevel::Hard, 9, 10)),
    )
    .await;
    publish("backflow.feedback.default", vec![0x80; 5_000]).await;
    let mut unknown = encode(&event("default", "x", 1, BackpressureLevel::Hard, 9, 10));
    let at = unknown.windows(4).position(|w| w == b"hard").unwrap();
    unknown[at..at + 4].copy_from_slice(b"huge");
    publish("backflow.feedback.default", unknown).await;
    raw.client.flush().await.unwrap();
    let s = &agent.stats;
    let rejected = || {
        s.decode_errors.load(Relaxed) + s.invalid_subject.load(Relaxed) + s.oversize.load(Relaxed)
    };
    within(WAIT, "four rejections", async {
        while rejected() < 4 {
            sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(agent.stats.decode_errors.load(Relaxed), 2);
    assert_eq!(agent.stats.invalid_subject.load(Relaxed), 1);
    assert_eq!(agent.stats.oversize.load(Relaxed), 1);
    assert_eq!(agent.handler.received.load(Relaxed), 0);
    assert_eq!(agent.rate.scale("p"), Ok(1.0));
    // The subscription still works.
    publish(
        "backflow.feedback.default",
        encode(&event("default", "x", 1, BackpressureLevel::Soft, 6, 10)),
    )
    .await;
    scale_becomes(&agent, 0.5, "a valid event after the garbage").await;
}

async fn connect_as(server: &NatsServer, user: &str) -> NatsConnection {
    let mut o = NatsOptions::for_url(server.url());
    o.user = Some(user.into());
    o.password = Some(Secret::new(format!("{user}-secret")));
    o.inbox_prefix = Some(format!("_INBOX_{user}"));
    o.connect(user)
        .await
        .expect("connects with its credentials")
}

/// Publishes a HARD event on `subject` as `user` and returns the server's error.
async fn violation_of(server: &NatsServer, user: &str, subject: &'static str) -> String {
    let forged = encode(&event(
        "default",
        "forged",
        1,
        BackpressureLevel::Hard,
        99,
        100,
    ));
    Probe::connect(server, user)
        .await
        .refused(subject, forged)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_cannot_publish_feedback_and_stores_only_their_own_subject() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let admin = connect_as(&server, "admin").await;
    let mut watch = admin.client.subscribe("backflow.feedback.>").await.unwrap();
    admin.client.flush().await.unwrap();

    let refused = violation_of(&server, "agent", "backflow.feedback.default").await;
    assert!(
        refused.to_lowercase().contains("permissions violation"),
        "{refused}"
    );
    let refused = violation_of(&server, "store-default", "backflow.feedback.other").await;
    assert!(
        refused.to_lowercase().contains("permissions violation"),
        "{refused}"
    );

    // The store's own subject works, end to end, through the last-value stream as well.
    let store_conn = connect_as(&server, "store-default").await;
    ensure_state_stream(&store_conn).await.unwrap();
    NatsPublisher::new(&store_conn)
        .publish(&event(
            "default",
            "store-0",
            1,
            BackpressureLevel::Soft,
            60,
            100,
        ))
        .await
        .unwrap();
    let first = within(
        WAIT,
        "the store's event",
        futures_util::StreamExt::next(&mut watch),
    )
    .await
    .unwrap();
    assert_eq!(first.subject.as_str(), "backflow.feedback.default");
    let decoded = backflow::event::decode(&first.payload).unwrap();
    assert_eq!(
        decoded.instance_id.as_str(),
        "store-0",
        "no forged event got through first"
    );

    // An agent with agent credentials reads the last values and follows.
    let agent_conn = connect_as(&server, "agent").await;
    let agent = agent_on(&agent_conn).await;
    scale_becomes(&agent, 0.5, "the agent to read the kept SOFT").await;
}
