//! The deployables end to end: real nats-server, `backflow-store` and `backflow-agent` as child
//! processes, SQLite and PostgreSQL. The database must end up holding exactly the rows the
//! agents got publish acknowledgements for.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use backflow::bus::nats::NatsOptions;
use backflow::market::BarKey;
use backflow::store::sink::{PostgresSink, SqliteSink};
use common::nats::NatsServer;
use common::system::{Proc, acked_keys, wait_until};
use futures_util::StreamExt;
use tempfile::TempDir;

const STORE: &str = env!("CARGO_BIN_EXE_backflow-store");
const AGENT: &str = env!("CARGO_BIN_EXE_backflow-agent");
const LONG: Duration = Duration::from_secs(60);

fn postgres_url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    fn yaml(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("{{kind: sqlite, path: {}}}", path.display()),
            Db::Postgres(table) => format!(
                "{{kind: postgres, url: '{}', table: {table}}}",
                postgres_url()
            ),
        }
    }

    async fn keys(&self) -> Vec<BarKey> {
        match self {
            Db::Sqlite(path) => SqliteSink::open(path, "bars").unwrap().keys().unwrap(),
            Db::Postgres(table) => PostgresSink::connect(&postgres_url(), table)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL at {:?}: {e} (set BACKFLOW_TEST_POSTGRES)",
                        postgres_url()
                    )
                })
                .keys()
                .await
                .unwrap(),
        }
    }
}

struct Rig {
    dir: TempDir,
    nats: NatsServer,
}

impl Rig {
    fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
            nats: NatsServer::start(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, yaml: String) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// A store on coordinator `default` with a throttled sink.
    fn store(&self, name: &str, db: &Db, rows_per_sec: u32) -> Proc {
        let config = self.write(
            &format!("{name}.yaml"),
            format!(
                "coordinator: {{coordinator_id: default, instance_id: {name}, capacity: 600, batch_size: 100, heartbeat_interval_ms: 200}}
store:
  sink: {}
  throttle: {{rows_per_sec: {rows_per_sec}}}
  ack_wait_ms: 3000
  drain_timeout_ms: 20000
  backlog_poll_ms: 200
nats: {{servers: ['{}']}}
metrics: {{listen: '127.0.0.1:0'}}
",
                db.yaml(),
                self.nats.url()
            ),
        );
        Proc::start(STORE, name, &config, self.dir.path())
    }

    /// An agent producing `rows` rows at `rate` rows/s, logging its acknowledgements, with the
    /// default policy.
    fn agent(&self, name: &str, rate: u32, rows: u64) -> (Proc, PathBuf) {
        self.agent_with(name, rate, rows, "proportional")
    }

    /// The same with the given feedback policy.
    fn agent_with(&self, name: &str, rate: u32, rows: u64, policy: &str) -> (Proc, PathBuf) {
        let log = self.path(&format!("{name}.acked"));
        let config = self.write(
            &format!("{name}.yaml"),
            format!(
                "rate_coordinator: {{providers: {{feed: {{capacity: 50, refill_rate: {rate}}}}}}}
feedback: {{provider_name: feed, policy: {policy}, hysteresis: {{dwell_ms: 300, ramp_interval_ms: 100}}}}
agent: {{name: {name}, max_rows: {rows}, ack_log: {}, retry_delay_ms: 100}}
nats: {{servers: ['{}']}}
metrics: {{listen: '127.0.0.1:0'}}
",
                log.display(),
                self.nats.url()
            ),
        );
        (Proc::start(AGENT, name, &config, self.dir.path()), log)
    }

    async fn js(&self) -> async_nats::jetstream::Context {
        let conn = NatsOptions::for_url(self.nats.url())
            .connect("test-observer")
            .await
            .unwrap();
        async_nats::jetstream::new(conn.client)
    }

    /// Waits until the write stream exists (the store created it).
    async fn stream_ready(&self) {
        let js = self.js().await;
        common::within(LONG, "the write stream", async {
            while js.get_stream("BACKFLOW_WRITES").await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Waits until the store consumer has nothing pending or unacknowledged.
    async fn consumer_drained(&self) {
        let js = self.js().await;
        common::within(LONG, "the write consumer to drain", async {
            loop {
                if let Ok(mut stream) = js.get_stream("BACKFLOW_WRITES").await {
                    if let Ok(mut c) = stream
                        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                            "store-default",
                        )
                        .await
                    {
                        if let Ok(info) = c.info().await {
                            let messages =
                                stream.info().await.map(|i| i.state.messages).unwrap_or(1);
                            if info.num_pending == 0 && info.num_ack_pending == 0 && messages == 0 {
                                return;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
    }
}

fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// Scrapes the `/metrics` endpoint a process logged (`metrics=<addr>`).
async fn scrape_metrics(p: &Proc) -> String {
    let mut addr = String::new();
    wait_until(LONG, "the metrics address in the log", || {
        addr = p
            .log()
            .split("metrics=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default()
            .to_owned();
        !addr.is_empty()
    })
    .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Database keys equal the acknowledged keys, each once.
async fn assert_exactly_acked(db: &Db, logs: &[PathBuf]) {
    let (acked, _) = acked_keys(logs);
    let stored = db.keys().await;
    let unique: BTreeSet<BarKey> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "duplicate keys in the database");
    assert_eq!(
        stored.len(),
        acked.len(),
        "row count differs from acknowledged rows"
    );
    assert!(unique == acked, "stored keys differ from acknowledged keys");
}

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

fn pg_table() -> String {
    format!("bars_test_{}", fastrand::u32(..))
}

async fn drop_table(table: &str) {
    if let Ok((client, conn)) =
        tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await;
    }
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
