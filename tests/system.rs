//! The deployables end to end: real nats-server, `backflow-store` and `backflow-agent` as child
//! processes, SQLite and PostgreSQL. The database must end up holding exactly the rows the
//! agents got publish acknowledgements for.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use backflow::bus::nats::NatsOptions;
use backflow::store::sink::SqliteSink;
use common::rig::{
    AGENT, BRIDGE, Db, LONG, Rig, STORE, assert_exactly_acked, drop_table, num, pg_table,
    scrape_metrics,
};
use common::system::Proc;
use common::system::wait_until;
use futures_util::StreamExt;
use tempfile::TempDir;

/// Two agents at 2× the sink's capacity: the store's depth (and with the level-driven
/// `hysteresis` policy, its level) rises, agents slow down, nothing is lost or duplicated.
async fn overload_end_to_end(db: Db, policy: &str) {
    let rig = Rig::new();
    let store = rig.store("store-a", &db, 1_500);
    rig.stream_ready().await;
    let (a1, log1) = rig.agent_with("a1", 1_500, 3_000, policy);
    let (a2, log2) = rig.agent_with("a2", 1_500, 3_000, policy);
    // The store's /metrics carries the series KEDA queries.
    let scrape = scrape_metrics(&store).await;
    assert!(
        scrape.contains("coordinator_queue_depth{coordinator_id=\"default\"}"),
        "{scrape}"
    );
    assert!(
        scrape.contains("coordinator_backpressure_hard{coordinator_id=\"default\"}"),
        "{scrape}"
    );
    let (r1, r2) = tokio::join!(a1.report(LONG), a2.report(LONG));
    for r in [&r1, &r2] {
        assert_eq!(num(r, &["acked"]), 3_000.0, "{r}");
        assert!(
            num(r, &["min_scale"]) < 1.0,
            "the agent never slowed down: {r}"
        );
    }
    rig.consumer_drained().await;
    let report = store.terminate(LONG).await;
    if policy == "hysteresis" {
        // Level-driven: the queue must have crossed the watermarks for agents to react.
        assert!(num(&report, &["stats", "level_changes"]) >= 2.0, "{report}");
    }
    assert_eq!(report["drained"], true, "{report}");
    assert_eq!(
        num(&report, &["stats", "dropped_overflow"]),
        0.0,
        "{report}"
    );
    assert_exactly_acked(&db, &[log1, log2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_to_store_to_sqlite_exactly_the_acked_rows() {
    let dir = TempDir::new().unwrap();
    let db = Db::Sqlite(dir.path().join("bars.db"));
    overload_end_to_end(db, "hysteresis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_to_store_to_postgres_exactly_the_acked_rows() {
    let table = pg_table();
    overload_end_to_end(Db::Postgres(table.clone()), "proportional").await;
    drop_table(&table).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_killed_mid_run_and_restarted_still_writes_each_row_once() {
    let rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    let store = rig.store("store-a", &db, 2_000);
    rig.stream_ready().await;
    let (a1, log1) = rig.agent("a1", 1_500, 4_000);
    let (a2, log2) = rig.agent("a2", 1_500, 4_000);
    let db_path = rig.path("bars.db");
    wait_until(LONG, "rows in the database before the kill", || {
        SqliteSink::open(&db_path, "bars")
            .and_then(|s| {
                s.count()
                    .map_err(|e| backflow::store::sink::SinkSetupError::Database(e.message))
            })
            .is_ok_and(|n| n > 1_000)
    })
    .await;
    store.kill();
    let store = rig.store("store-b", &db, 2_000);
    let (r1, r2) = tokio::join!(a1.report(LONG), a2.report(LONG));
    for r in [r1, r2] {
        assert_eq!(num(&r, &["acked"]), 4_000.0, "{r}");
    }
    rig.consumer_drained().await;
    let report = store.terminate(LONG).await;
    assert_eq!(report["drained"], true, "{report}");
    assert_exactly_acked(&db, &[log1, log2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_everything_the_store_took() {
    let rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    // A slow sink: the queue is full when SIGTERM arrives.
    let store = rig.store("store-a", &db, 500);
    rig.stream_ready().await;
    let (agent, log) = rig.agent("a1", 3_000, 3_000);
    let agent = tokio::spawn(agent.report(LONG));
    let db_path = rig.path("bars.db");
    wait_until(LONG, "the store to be busy", || {
        SqliteSink::open(&db_path, "bars").is_ok_and(|s| s.count().is_ok_and(|n| n > 200))
    })
    .await;
    let report = store.terminate(LONG).await;
    assert_eq!(report["drained"], true, "{report}");
    let messages = num(&report, &["received"]);
    let rows = num(&report, &["rows"]);
    let written = num(&report, &["stats", "written"]);
    assert!(messages > 0.0, "{report}");
    assert_eq!(
        written, rows,
        "every row taken was written before exit: {report}"
    );
    assert_eq!(
        num(&report, &["acked"]),
        messages,
        "every message taken was acked: {report}"
    );
    assert_eq!(num(&report, &["redelivered"]), 0.0, "{report}");
    // A second store finishes the rest; still exactly once.
    let store = rig.store("store-b", &db, 5_000);
    assert_eq!(num(&agent.await.unwrap(), &["acked"]), 3_000.0);
    rig.consumer_drained().await;
    store.terminate(LONG).await;
    assert_exactly_acked(&db, &[log]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_coordinator_share_the_consumer_and_agents_hear_both() {
    let rig = Rig::new();
    let table = pg_table();
    let db = Db::Postgres(table.clone());
    let conn = NatsOptions::for_url(rig.nats.url())
        .connect("test-listener")
        .await
        .unwrap();
    let mut feedback = conn
        .client
        .subscribe("backflow.feedback.default")
        .await
        .unwrap();
    let s1 = rig.store("store-a", &db, 800);
    let s2 = rig.store("store-b", &db, 800);
    rig.stream_ready().await;
    let (a1, log1) = rig.agent("a1", 1_500, 3_000);
    let (a2, log2) = rig.agent("a2", 1_500, 3_000);
    let mut instances = BTreeSet::new();
    let heard = tokio::time::timeout(LONG, async {
        while instances.len() < 2 {
            if let Some(m) = feedback.next().await {
                if let Ok(e) = backflow::event::decode(&m.payload) {
                    instances.insert(e.instance_id.to_string());
                }
            }
        }
    })
    .await;
    assert!(
        heard.is_ok(),
        "events from both store instances: heard {instances:?} in {LONG:?}; server log:\n{}",
        rig.nats.log_text()
    );
    let (r1, r2) = tokio::join!(a1.report(LONG), a2.report(LONG));
    for r in [r1, r2] {
        assert_eq!(num(&r, &["acked"]), 3_000.0, "{r}");
        assert!(num(&r, &["min_scale"]) < 1.0, "{r}");
    }
    rig.consumer_drained().await;
    let (rep1, rep2) = tokio::join!(s1.terminate(LONG), s2.terminate(LONG));
    assert!(
        num(&rep1, &["received"]) > 0.0 && num(&rep2, &["received"]) > 0.0,
        "both stores pulled: {rep1} {rep2}"
    );
    assert_exactly_acked(&db, &[log1, log2]).await;
    drop_table(&table).await;
    let _: &Path = rig.dir.path();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_environment_variable_at_once_starts_each_binary() {
    let rig = Rig::new();
    let db = rig.path("env.db");
    // One file for the three binaries, named only by BACKFLOW_CONFIG; the rest comes from
    // the variables the docs list, every kind at once.
    let config = rig.write(
        "everything.yaml",
        "rate_coordinator: {providers: {feed: {capacity: 10, refill_rate: 1}}}\n".into(),
    );
    let var = |k: &str, v: &str| (k.to_owned(), v.to_owned());
    let env = vec![
        var("BACKFLOW_CONFIG", &config.display().to_string()),
        var("BACKFLOW_HTTP_TOKEN", "s3cret"),
        var(
            "BACKFLOW_TEST_POSTGRES",
            "host=127.0.0.1 user=postgres dbname=test",
        ),
        var("BACKFLOW_NATS__SERVERS", &format!("['{}']", rig.nats.url())),
        var("BACKFLOW_METRICS__LISTEN", "127.0.0.1:0"),
        var(
            "BACKFLOW_STORE__SINK",
            &format!("{{kind: sqlite, path: '{}'}}", db.display()),
        ),
        var("BACKFLOW_AGENT__MAX_ROWS", "200"),
        var("BACKFLOW_BRIDGE__PUBLISH_INTERVAL_MS", "200"),
        var("MDS_CAPACITY", "600"),
        var("MDS_HEARTBEAT_INTERVAL_MS", "200"),
        var("MDS_SOJOURN_TARGET_MS", "30"),
        var("MDP_FB_PROVIDER_NAME", "feed"),
        var("MDP_FB_POLICY", "fair_share"),
        var("MDP_FB_FAIR_SHARE__CLASS", "bulk"),
        var("MDP_FB_FAIR_SHARE__WEIGHT", "2.5"),
        var("MDP_RATE_FEED_REFILL_RATE", "400"),
    ];
    let store = Proc::start_with_env(STORE, "store", &env, rig.dir.path());
    rig.stream_ready().await;
    let agent = Proc::start_with_env(AGENT, "agent", &env, rig.dir.path());
    let bridge = Proc::start_with_env(BRIDGE, "bridge", &env, rig.dir.path());
    // MDS_CAPACITY reached the store.
    let scrape = scrape_metrics(&store).await;
    assert!(
        scrape.contains("backflow_store_queue_capacity{coordinator_id=\"default\"} 600"),
        "{scrape}"
    );
    // MDP_RATE_* and BACKFLOW_AGENT__MAX_ROWS reached the agent: it stops after its rows.
    let report = agent.report(LONG).await;
    assert_eq!(num(&report, &["acked"]), 200.0, "{report}");
    // The bridge sees the store (BACKFLOW_NATS__SERVERS) and serves its view.
    let scrape = scrape_metrics(&bridge).await;
    assert!(
        scrape.contains("coordinator_instances{coordinator_id=\"default\"} 1"),
        "{scrape}"
    );
    bridge.terminate(LONG).await;
    let report = store.terminate(LONG).await;
    assert_eq!(report["drained"], true, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_is_logged_at_its_start_and_end_not_per_reconnect_attempt() {
    let mut rig = Rig::new();
    let (agent, _) = rig.agent("a1", 100, 1_000_000);
    agent.metrics_addr().await;
    rig.nats.kill();
    // Three seconds of outage is about thirty reconnect attempts at the default 100 ms.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    rig.nats.restart();
    wait_until(LONG, "the agent to log the end of the outage", || {
        agent.log().contains("NATS reconnected.")
    })
    .await;
    let log = agent.log();
    let nats_warnings = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("NATS"))
        .count();
    assert_eq!(
        log.matches("NATS disconnected; reconnecting.").count(),
        1,
        "{log}"
    );
    assert!(nats_warnings <= 2, "{nats_warnings} warnings:\n{log}");
    let ended = log
        .lines()
        .find(|l| l.contains("NATS reconnected."))
        .unwrap_or_default();
    assert!(ended.contains("attempts="), "{ended}");
    agent.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_count_only_once_the_server_confirmed_them_so_a_killed_store_leaves_none_behind() {
    let rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    let store = rig.store("store-a", &db, 3_000);
    rig.stream_ready().await;
    let (agent, _) = rig.agent("a1", 2_000, 1_000_000);
    // Under load, as soon as the store says it has acknowledged some messages: kill it.
    let series = "backflow_store_messages_acked_total{coordinator_id=\"default\"}";
    let acked = common::within(LONG, "the store to acknowledge messages", async {
        loop {
            let scrape = scrape_metrics(&store).await;
            let acked = common::system::sample(&scrape, series).unwrap_or(0.0);
            if acked >= 5.0 {
                return acked;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    store.kill();
    agent.kill();
    let js = rig.js().await;
    let info = js
        .get_stream("BACKFLOW_WRITES")
        .await
        .unwrap()
        .consumer_info("store-default")
        .await
        .unwrap();
    // Every acknowledgement it counted had reached the server: what is still pending was
    // delivered and never acknowledged, never acknowledged and lost with the process.
    let delivered = info.delivered.consumer_sequence;
    assert!(
        info.num_ack_pending as u64 + acked as u64 <= delivered,
        "pending {} + acked {acked} > delivered {delivered}",
        info.num_ack_pending
    );
}
