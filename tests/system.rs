//! The deployables end to end: real nats-server, `backflow-store` and `backflow-agent` as child
//! processes, SQLite and PostgreSQL. The database must end up holding exactly the rows the
//! agents got publish acknowledgements for.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use backflow::bus::nats::NatsOptions;
use backflow::store::sink::SqliteSink;
use common::rig::{Db, LONG, Rig, assert_exactly_acked, drop_table, num, pg_table, scrape_metrics};
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
    common::within(LONG, "events from both store instances", async {
        while instances.len() < 2 {
            if let Some(m) = feedback.next().await {
                if let Ok(e) = backflow::event::decode(&m.payload) {
                    instances.insert(e.instance_id.to_string());
                }
            }
        }
    })
    .await;
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
