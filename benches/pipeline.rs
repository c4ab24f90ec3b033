//! End-to-end rows/s agent → NATS JetStream → store → PostgreSQL, measured in the same run
//! as the same rows loaded straight into PostgreSQL by the fastest idempotent load written
//! for it (the anchor) and by the store's own sink, with the store's CPU seconds.
//!
//! `cargo bench --bench pipeline` (ROWS=<n>, AGENTS=<n>, CAPACITY=<store queue>,
//! HEARTBEAT_MS=<store heartbeat>, BATCH=<store batch>, WORKERS=<store writers>,
//! MODE=<copy|insert>, POLICY=<agents' feedback policy>,
//! BEST_BATCH=<anchor batch>, BEST_CONNECTIONS=<anchor connections to try, e.g. 2,4>, ONLY_DIRECT=1 to skip
//! the pipeline; PostgreSQL from BACKFLOW_TEST_POSTGRES, default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`, used with `sslmode=disable` unless
//! it names one: the anchor is plain TCP, so the rows compare like with like).

#[path = "support/best_load.rs"]
mod best_load;
#[path = "support/cpu.rs"]
mod cpu;
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
use backflow::store::sink::{PostgresMode, PostgresOptions, PostgresSink, SinkConfig, SqliteSink};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use cpu::CpuMeter;

/// The agents' feedback policy: `POLICY`, else the default.
fn policy() -> backflow::feedback::PolicyKind {
    std::env::var("POLICY")
        .ok()
        .map(|p| p.parse().expect("POLICY: a policy name"))
        .unwrap_or_default()
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batch() -> usize {
    env("BATCH", 5_000) as usize
}

/// Rows per agent message, and what the store expects per message.
fn batch_rows() -> usize {
    env("BATCH_ROWS", 100) as usize
}

fn best_batch() -> usize {
    env("BEST_BATCH", 5_000) as usize
}

fn workers() -> usize {
    env("WORKERS", 4) as usize
}

fn url() -> String {
    let url = std::env::var("BACKFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into());
    if url.contains("sslmode") {
        url
    } else if url.starts_with("postgres") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}sslmode=disable")
    } else {
        format!("{url} sslmode=disable")
    }
}

async fn drop_table(table: &str) {
    if let Ok((c, conn)) = tokio_postgres::connect(&url(), tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = c
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await;
    }
}

fn bars(rows: u64) -> Vec<Bar> {
    let symbols: Vec<String> = ["AAPL", "MSFT", "NVDA", "ESZ6", "EURUSD"]
        .map(String::from)
        .to_vec();
    let mut source = SyntheticSource::new("direct:bench", &symbols, 0, 60_000, 1);
    (0..rows).filter_map(|_| source.next_bar()).collect()
}

/// The anchor: the fastest of the idempotent loads, by method and number of connections
/// (BEST_CONNECTIONS, a list, default 4: on two cores 4 beat 2 and 8 added only contention),
/// (rows/s, which).
async fn best_direct(rows: u64) -> (f64, String) {
    let counts: Vec<usize> = match std::env::var("BEST_CONNECTIONS") {
        Ok(n) => n.split(',').filter_map(|c| c.trim().parse().ok()).collect(),
        Err(_) => vec![4],
    };
    let mut best = (0.0, String::new());
    for connections in counts {
        for copy in [true, false] {
            let rate = best_load_by(rows, copy, connections).await;
            if rate > best.0 {
                let how = if copy { "COPY" } else { "UNNEST" };
                best = (rate, format!("{how} × {connections}"));
            }
        }
    }
    best
}

async fn best_load_by(rows: u64, copy: bool, connections: usize) -> f64 {
    let table = format!("bench_best_{}", fastrand::u32(..));
    drop_table(&table).await;
    best_load::create(&url(), &table).await;
    let bars = bars(rows);
    let batch = best_batch();
    let start = Instant::now();
    if copy {
        best_load::copy(&url(), &table, bars, batch, connections).await;
    } else {
        best_load::unnest(&url(), &table, bars, batch, connections).await;
    }
    let rate = rows as f64 / start.elapsed().as_secs_f64();
    let check = PostgresSink::connect(&url(), &table)
        .await
        .expect("postgres");
    assert_eq!(check.count().await.expect("count"), rows);
    drop_table(&table).await;
    rate
}

/// The store's sink on its own runtime, as the store's workers drive it: (rows/s, CPU s).
fn sink_direct(rows: u64, mode: PostgresMode) -> (f64, f64) {
    let (runtime, meter) = CpuMeter::runtime("sink", 2);
    let table = format!("bench_sink_{}", fastrand::u32(..));
    let bars = bars(rows);
    let (rate, cpu) = runtime.block_on(async {
        drop_table(&table).await;
        let options = PostgresOptions {
            mode,
            connections: workers(),
        };
        let sink = Arc::new(
            PostgresSink::connect_with(&url(), &table, options)
                .await
                .expect("postgres"),
        );
        let cpu_before = meter.seconds();
        let rate = rows as f64 / write_all(sink.clone(), &bars).await.as_secs_f64();
        let cpu = meter.seconds() - cpu_before;
        assert_eq!(sink.count().await.expect("count"), rows);
        drop_table(&table).await;
        (rate, cpu)
    });
    drop(runtime);
    (rate, cpu)
}

/// Writes `bars` into `sink` in batches of `batch()` rows from `workers()` concurrent
/// writers, as the store's workers do; returns how long that took.
async fn write_all<S: Sink<Bar> + 'static>(sink: Arc<S>, bars: &[Bar]) -> Duration {
    let chunks: Vec<Vec<Bar>> = bars.chunks(batch()).map(<[Bar]>::to_vec).collect();
    let queue = Arc::new(std::sync::Mutex::new(chunks));
    let start = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..workers() {
        let (sink, queue) = (sink.clone(), queue.clone());
        writers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(batch) = next else { break };
                sink.write(&batch).await.expect("write");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    start.elapsed()
}

/// The embedded default, SQLite in a temp dir, driven the same way: (rows/s, CPU s).
fn sqlite_direct(rows: u64) -> (f64, f64) {
    let (runtime, meter) = CpuMeter::runtime("sqlite", 2);
    let dir = tempfile::TempDir::new().expect("temp dir");
    let sink = Arc::new(SqliteSink::open(&dir.path().join("bench.db"), "bars").expect("sqlite"));
    let bars = bars(rows);
    let result = runtime.block_on(async {
        let cpu_before = meter.seconds();
        let rate = rows as f64 / write_all(sink.clone(), &bars).await.as_secs_f64();
        (rate, meter.seconds() - cpu_before)
    });
    assert_eq!(sink.count().expect("count"), rows);
    result
}

/// Agents on the caller's runtime, the store on `store_rt` (whose threads `meter` counts):
/// (rows/s, store CPU s).
async fn end_to_end(
    server: &str,
    rows_per_agent: u64,
    agents: u64,
    feedback: bool,
    (store_rt, meter): (&tokio::runtime::Handle, &CpuMeter),
) -> (f64, f64) {
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
    base.coordinator.batch_size = batch();
    base.coordinator.workers = workers();
    let mut store = base.clone();
    store.store.rows_per_message = batch_rows();
    store.store.sink = SinkConfig::Postgres {
        url: url(),
        table: table.clone(),
        mode: mode(),
        connections: None,
    };
    let stop_store = CancellationToken::new();
    let store_task = store_rt.spawn(backflow::store::run(
        store.store_setup(),
        stop_store.clone().cancelled_owned(),
    ));
    let check = PostgresSink::connect(&url(), &table)
        .await
        .expect("postgres");
    sleep(Duration::from_millis(500)).await; // stream and consumer exist
    let cpu_before = meter.seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..agents {
        let mut s = base.clone();
        s.rate_coordinator
            .providers
            .insert("bench".into(), ProviderConfig::new(10_000, 1_000_000.0));
        s.feedback.provider_name = "bench".into();
        s.feedback.enable_feedback = feedback;
        s.feedback.policy = policy();
        s.agent.name = Some(format!("bench-{run}-{i}"));
        s.agent.max_rows = Some(rows_per_agent);
        s.agent.max_in_flight = 1_024;
        s.agent.batch_rows = batch_rows();
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
    let cpu = meter.seconds() - cpu_before;
    for t in tasks {
        let report = t.await.expect("agent task").expect("agent");
        assert_eq!(report.acked, rows_per_agent);
    }
    stop_store.cancel();
    let _ = store_task.await;
    drop_table(&table).await;
    (rate, cpu)
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

fn mode() -> PostgresMode {
    match std::env::var("MODE").as_deref() {
        Ok("insert") => PostgresMode::Insert,
        Ok("copy") => PostgresMode::Copy,
        _ => PostgresMode::default(),
    }
}

fn main() {
    let rows = env("ROWS", 1_000_000);
    let agents = env("AGENTS", 2);
    let server = nats::NatsServer::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (store_rt, meter) = CpuMeter::runtime("store", 2);
    let (batch, workers, mode) = (batch(), workers(), mode());
    let other = match mode {
        PostgresMode::Copy => PostgresMode::Insert,
        PostgresMode::Insert => PostgresMode::Copy,
    };
    // Below one clock tick (10 ms) the CPU time reads 0: no rate can be told.
    let per_cpu = |cpu: f64| {
        if cpu < 0.01 {
            "–".to_owned()
        } else {
            format!("{:.0}", rows as f64 / cpu)
        }
    };
    // The machine is shared: the anchor and the store's sink are each measured before and
    // after the pipeline, and compared by their means.
    let (best, best_how) = runtime.block_on(best_direct(rows));
    let (sink, sink_cpu) = sink_direct(rows, mode);
    if std::env::var("ONLY_DIRECT").is_ok() {
        let (sink_other, other_cpu) = sink_direct(rows, other);
        println!(
            "best {best:.0} ({best_how}); sink {mode:?} {sink:.0} ({:.2}×, {} rows/CPU-s); \
             sink {other:?} {sink_other:.0} ({:.2}×, {} rows/CPU-s)",
            sink / best,
            per_cpu(sink_cpu),
            sink_other / best,
            per_cpu(other_cpu)
        );
        return;
    }
    let store = (store_rt.handle(), &meter);
    let nats_url = server.url();
    let e2e = |feedback| end_to_end(&nats_url, rows / agents, agents, feedback, store);
    let (closed, closed_cpu) = runtime.block_on(e2e(true));
    let (open, open_cpu) = runtime.block_on(e2e(false));
    let (best_again, best_again_how) = runtime.block_on(best_direct(rows));
    let (sink_again, sink_again_cpu) = sink_direct(rows, mode);
    let (sink_other, other_cpu) = sink_direct(rows, other);
    let (sqlite, sqlite_cpu) = sqlite_direct(rows);
    let publish_only = runtime.block_on(agents_only(&server.url(), rows / agents, agents));
    let anchor = (best + best_again) / 2.0;
    println!(
        "pipeline throughput, {rows} rows, {agents} agents; store: batches of {batch}, \
         {workers} writers, mode {mode:?}; best load: batches of {}",
        best_batch()
    );
    println!("| path | rows/s | × best load | rows per store CPU-second |");
    println!("|---|---|---|---|");
    println!("| best direct load, {best_how} (before) | {best:.0} | | |");
    println!("| best direct load, {best_again_how} (after) | {best_again:.0} | | |");
    let row = |name: &str, rate: f64, cpu: Option<f64>| {
        let per = cpu.map_or(String::new(), per_cpu);
        println!("| {name} | {rate:.0} | {:.2} | {per} |", rate / anchor);
    };
    row(
        "store's sink direct (mean of before and after)",
        (sink + sink_again) / 2.0,
        Some((sink_cpu + sink_again_cpu) / 2.0),
    );
    row(
        "agents → NATS → store → PostgreSQL, loop closed",
        closed,
        Some(closed_cpu),
    );
    row("same, feedback disabled", open, Some(open_cpu));
    row(
        &format!("store's sink direct, mode {other:?}"),
        sink_other,
        Some(other_cpu),
    );
    row(
        "SQLite sink direct (embedded default)",
        sqlite,
        Some(sqlite_cpu),
    );
    row("agents → NATS only (no store)", publish_only, None);
}
