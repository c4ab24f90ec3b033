//! End-to-end rows/s agent → NATS JetStream → store → PostgreSQL, measured in the same run as
//! the same rows written straight into PostgreSQL with the same sink and batch size (the
//! sink's own limit).
//!
//! `cargo bench --bench pipeline` (ROWS=<n>, AGENTS=<n>, CAPACITY=<store queue>,
//! HEARTBEAT_MS=<store heartbeat>; PostgreSQL from
//! BACKFLOW_TEST_POSTGRES, default `host=127.0.0.1 port=5432 user=postgres dbname=test`).

#[path = "../tests/common/nats.rs"]
#[allow(dead_code, unreachable_pub)]
mod nats;

use std::sync::Arc;
use std::time::Duration;

use backflow::bus::nats::NatsOptions;
use backflow::coordinator::Sink;
use backflow::market::{Bar, BarSource, SyntheticSource};
use backflow::rate::ProviderConfig;
use backflow::settings::Settings;
use backflow::store::sink::{PostgresSink, SinkConfig};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

const BATCH: usize = 500;
const WORKERS: usize = 2;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

async fn drop_table(table: &str) {
    if let Ok((c, conn)) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = c
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await;
    }
}

/// The same rows, the same sink, the same batch size and number of concurrent writers.
async fn direct(rows: u64) -> f64 {
    let table = format!("bench_direct_{}", std::process::id());
    drop_table(&table).await;
    let sink = Arc::new(
        PostgresSink::connect(&url(), &table)
            .await
            .expect("postgres"),
    );
    let symbols: Vec<String> = ["AAPL", "MSFT", "NVDA", "ESZ6", "EURUSD"]
        .map(String::from)
        .to_vec();
    let mut source = SyntheticSource::new("direct:bench", &symbols, 0, 60_000, 1);
    let bars: Vec<Bar> = (0..rows).filter_map(|_| source.next_bar()).collect();
    let chunks: Vec<Vec<Bar>> = bars.chunks(BATCH).map(<[Bar]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(chunks));
    let start = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..WORKERS {
        let (sink, queue) = (sink.clone(), queue.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(batch) = next else { break };
                Sink::<Bar>::write(&*sink, &batch).await.expect("write");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    assert_eq!(sink.count().await.expect("count"), rows);
    drop_table(&table).await;
    rate
}

async fn end_to_end(server: &str, rows_per_agent: u64, agents: u64, feedback: bool) -> f64 {
    // Fresh names per run: the stream de-duplicates by row key for two minutes.
    let run = fastrand::u32(..);
    let table = format!("bench_e2e_{run}");
    drop_table(&table).await;
    let mut base = Settings {
        nats: NatsOptions::for_url(server),
        ..Settings::default()
    };
    base.metrics.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    base.coordinator.capacity = env("CAPACITY", 200_000);
    base.coordinator.heartbeat_interval_ms = env("HEARTBEAT_MS", 250);
    base.coordinator.batch_size = BATCH;
    base.coordinator.workers = WORKERS;
    let mut store = base.clone();
    store.store.sink = SinkConfig::Postgres {
        url: url(),
        table: table.clone(),
    };
    let stop_store = CancellationToken::new();
    let store_task = tokio::spawn(backflow::store::run(
        store.store_setup(),
        stop_store.clone().cancelled_owned(),
    ));
    let check = PostgresSink::connect(&url(), &table)
        .await
        .expect("postgres");
    sleep(Duration::from_millis(500)).await; // stream and consumer exist
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..agents {
        let mut s = base.clone();
        s.rate_coordinator
            .providers
            .insert("bench".into(), ProviderConfig::new(10_000, 1_000_000.0));
        s.feedback.provider_name = "bench".into();
        s.feedback.enable_feedback = feedback;
        s.agent.name = Some(format!("bench-{run}-{i}"));
        s.agent.max_rows = Some(rows_per_agent);
        s.agent.max_in_flight = 1_024;
        if let Some(rows) = std::env::var("BATCH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            s.agent.batch_rows = rows;
        }
        tasks.push(tokio::spawn(backflow::agent::run(
            s.agent_setup(),
            std::future::pending(),
        )));
    }
    let total = rows_per_agent * agents;
    let give_up = Instant::now() + Duration::from_secs(300);
    // COUNT(*) scans the table: polled every 20 ms it took a database core from the writes
    // it measures. Poll slowly until 90 % are in, then closely for the end.
    loop {
        let stored = check.count().await.unwrap_or(0);
        if stored >= total {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the pipeline did not deliver {total} rows"
        );
        let pause = if stored * 10 < total * 9 { 500 } else { 20 };
        sleep(Duration::from_millis(pause)).await;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    for t in tasks {
        let report = t.await.expect("agent task").expect("agent");
        assert_eq!(report.acked, rows_per_agent);
    }
    stop_store.cancel();
    let _ = store_task.await;
    drop_table(&table).await;
    rate
}

/// Agents alone into the stream (no store): the publish side's own limit.
async fn agents_only(server: &str, rows_per_agent: u64, agents: u64) -> f64 {
    let settings = Settings {
        nats: NatsOptions {
            prefix: "agentsonly".into(),
            ..NatsOptions::for_url(server)
        },
        metrics: backflow::metrics::MetricsConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        },
        ..Settings::default()
    };
    let conn = settings.nats.connect("bench").await.expect("nats");
    backflow::store::ensure_write_stream(&conn, &Default::default())
        .await
        .expect("stream");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..agents {
        let mut s = settings.clone();
        s.rate_coordinator
            .providers
            .insert("bench".into(), ProviderConfig::new(10_000, 1_000_000.0));
        s.feedback.provider_name = "bench".into();
        s.agent.name = Some(format!("only-{}-{i}", fastrand::u32(..)));
        s.agent.max_rows = Some(rows_per_agent);
        tasks.push(tokio::spawn(backflow::agent::run(
            s.agent_setup(),
            std::future::pending(),
        )));
    }
    for t in tasks {
        t.await.expect("agent task").expect("agent");
    }
    (rows_per_agent * agents) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rows = env("ROWS", 1_000_000);
    let agents = env("AGENTS", 2);
    let server = nats::NatsServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let direct_rate = direct(rows).await;
        let e2e_rate = end_to_end(&server.url(), rows / agents, agents, true).await;
        let e2e_open = end_to_end(&server.url(), rows / agents, agents, false).await;
        let direct_again = direct(rows).await;
        let publish_only = agents_only(&server.url(), rows / agents, agents).await;
        let baseline = (direct_rate + direct_again) / 2.0;
        println!("pipeline throughput, {rows} rows, batches of {BATCH}, {WORKERS} writers, {agents} agents");
        println!("| path | rows/s | ratio |");
        println!("|---|---|---|");
        println!("| straight into PostgreSQL (before) | {direct_rate:.0} | |");
        println!("| straight into PostgreSQL (after) | {direct_again:.0} | |");
        println!("| agents → NATS → store → PostgreSQL | {e2e_rate:.0} | {:.2} |", e2e_rate / baseline);
        println!("| same, feedback disabled | {e2e_open:.0} | {:.2} |", e2e_open / baseline);
        println!("| agents → NATS only (no store) | {publish_only:.0} | |");
    });
}
