//! Stops with the broker gone: each binary, told to stop before, at the same time as, or after
//! its nats-server goes away, exits 0 within its documented stop bound with its final report,
//! and no acknowledged row is missing once the broker is back and a store runs again.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use backflow::settings::Settings;
use common::rig::{AGENT, BRIDGE, Db, LONG, Rig, STORE, num, scrape_metrics};
use common::system::{Proc, acked_keys, sample, wait_until};
use tokio::time::Instant;

/// When the broker goes away, relative to SIGTERM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outage {
    /// Gone (and noticed) before the signal.
    Before,
    /// Killed just before the signal, with no time to notice.
    Together,
    /// Killed while the process is stopping.
    After,
}

/// Beyond a stop's bound: process start-up of the signal and teardown of the runtime.
const EXIT_SLACK: Duration = Duration::from_millis(500);

/// The stop bound a binary documents for the settings in `config`.
fn bound(config: &Path, binary: &str) -> Duration {
    let settings = Settings::load(Some(config)).expect("the test settings load");
    match binary {
        "store" => settings.store.stop_plan().total(),
        "agent" => settings.agent.stop_plan().total(),
        _ => settings.bridge.stop_plan().total(),
    }
}

/// A store whose sink writes `rows_per_sec`, with a short drain and ack wait.
fn store(rig: &Rig, name: &str, db: &Db, rows_per_sec: u32) -> (Proc, PathBuf) {
    let config = rig.write(
        &format!("{name}.yaml"),
        format!(
            "coordinator: {{coordinator_id: default, instance_id: {name}, capacity: 600, batch_size: 100, heartbeat_interval_ms: 200}}
store:
  sink: {}
  throttle: {{rows_per_sec: {rows_per_sec}}}
  ack_wait_ms: 3000
  drain_timeout_ms: 5000
  backlog_poll_ms: 200
{}metrics: {{listen: '127.0.0.1:0'}}
",
            db.yaml(),
            rig.nats_yaml("store-default")
        ),
    );
    (Proc::start(STORE, name, &config, rig.dir.path()), config)
}

/// An agent publishing up to `rows` rows at `rate` rows/s with no feedback (its pace must not
/// depend on the store's), logging its acknowledgements, with a short drain.
fn agent(rig: &Rig, name: &str, rate: u32, rows: u64) -> (Proc, PathBuf, PathBuf) {
    let log = rig.path(&format!("{name}.acked"));
    let config = rig.write(
        &format!("{name}.yaml"),
        format!(
            "rate_coordinator: {{providers: {{feed: {{capacity: 50, refill_rate: {rate}}}}}}}
feedback: {{enable_feedback: false, provider_name: feed}}
agent: {{name: {name}, max_rows: {rows}, ack_log: {}, retry_delay_ms: 100, drain_timeout_ms: 2000}}
{}metrics: {{listen: '127.0.0.1:0'}}
",
            log.display(),
            rig.nats_yaml("agent")
        ),
    );
    (
        Proc::start(AGENT, name, &config, rig.dir.path()),
        config,
        log,
    )
}

fn bridge(rig: &Rig) -> (Proc, PathBuf) {
    let config = rig.write(
        "bridge.yaml",
        format!(
            "bridge: {{publish_interval_ms: 200, lag_poll_interval_ms: 200}}
{}metrics: {{listen: '127.0.0.1:0'}}
",
            rig.nats_yaml("bridge")
        ),
    );
    (
        Proc::start(BRIDGE, "bridge", &config, rig.dir.path()),
        config,
    )
}

/// Takes the broker away around a SIGTERM to `p`, as `outage` says; returns when the signal
/// was sent. `stopping` is the line `p` logs once its stop has begun.
async fn signal_around_outage(rig: &mut Rig, p: &Proc, outage: Outage, stopping: &str) -> Instant {
    match outage {
        Outage::Before => {
            rig.nats.kill();
            wait_until(LONG, "the process to notice the outage", || {
                p.log().contains("NATS disconnected")
            })
            .await;
            p.sigterm();
            Instant::now()
        }
        Outage::Together => {
            rig.nats.kill();
            p.sigterm();
            Instant::now()
        }
        Outage::After => {
            p.sigterm();
            let signalled = Instant::now();
            wait_until(LONG, "the stop to begin", || p.log().contains(stopping)).await;
            rig.nats.kill();
            signalled
        }
    }
}

/// Whether the write consumer has nothing left to deliver and nothing unacknowledged.
/// (Neither `Rig::consumer_drained`, which wants an empty stream, nor the consumer's delivered
/// sequence: a broker killed with SIGKILL may come back with acknowledged messages still in
/// its work-queue stream, and with a consumer state older than the stream's.)
async fn consumer_settled(js: &async_nats::jetstream::Context) -> Result<bool, String> {
    let stream = js
        .get_stream("BACKFLOW_WRITES")
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("store-default")
        .await
        .map_err(|e| e.to_string())?;
    let info = consumer.info().await.map_err(|e| e.to_string())?;
    Ok(info.num_pending == 0 && info.num_ack_pending == 0)
}

/// Waits until `store` has taken and acknowledged every message; on failure shows its log.
async fn drained_by(rig: &Rig, store: &Proc) {
    let js = rig.js().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let state = consumer_settled(&js).await;
        if state == Ok(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the write consumer did not settle ({state:?}); {} logged:\n{}",
            store.name,
            store.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Exit 0 within the bound, with the report that says so.
fn assert_within(what: &str, took: Duration, bound: Duration, report: &serde_json::Value) {
    eprintln!("{what}: exited {took:?} after SIGTERM (bound {bound:?}): {report}");
    assert!(
        took <= bound + EXIT_SLACK,
        "{what} took {took:?}, over its bound {bound:?}: {report}"
    );
    assert_eq!(
        num(report, &["stop", "bound_ms"]),
        bound.as_millis() as f64,
        "{report}"
    );
}

/// The store stops within its bound while its queue still holds rows, and every row the
/// agent got acknowledged is in the database once another store has taken the redeliveries.
async fn store_stops_within_its_bound(outage: Outage) {
    let mut rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    // Slower than the agent: rows wait in the queue (and in the stream) when the stop comes.
    let (store_a, config) = store(&rig, "store-a", &db, 500);
    rig.stream_ready().await;
    let (agent, _, log) = agent(&rig, "a1", 2_000, 2_000);
    let produced = agent.report(LONG).await;
    assert_eq!(num(&produced, &["acked"]), 2_000.0, "{produced}");
    let depth = "coordinator_queue_depth{coordinator_id=\"default\"}";
    common::within(LONG, "rows queued in the store", async {
        while sample(&scrape_metrics(&store_a).await, depth).unwrap_or(0.0) < 100.0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let limit = bound(&config, "store");
    let signalled = signal_around_outage(&mut rig, &store_a, outage, "Store stopping").await;
    let report = store_a.report(limit + EXIT_SLACK).await;
    assert_within(
        &format!("store, outage {outage:?}"),
        signalled.elapsed(),
        limit,
        &report,
    );
    assert_eq!(report["drained"], true, "{report}");
    if outage != Outage::After {
        // Rows written with the broker gone: committed, their acknowledgements not sent.
        assert!(num(&report, &["acks_unsent"]) > 0.0, "{report}");
        assert_eq!(report["leaving_event_sent"], false, "{report}");
    }
    // The broker returns; another store takes what was left and what is redelivered.
    rig.nats.restart();
    let (store_b, _) = store(&rig, "store-b", &db, 5_000);
    drained_by(&rig, &store_b).await;
    let after = store_b.terminate(LONG).await;
    assert_eq!(after["leaving_event_sent"], true, "{after}");
    common::rig::assert_exactly_acked(&db, &[log]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stopped_after_its_broker_went_exits_within_its_bound() {
    store_stops_within_its_bound(Outage::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_stopped_as_its_broker_goes_exits_within_its_bound() {
    store_stops_within_its_bound(Outage::Together).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_broker_goes_while_it_drains_exits_within_its_bound() {
    store_stops_within_its_bound(Outage::After).await;
}

/// The agent stops within its bound while publishing, and every row it got acknowledged is
/// in the database once the broker is back (rows the stream stored whose acknowledgement was
/// lost may be there too: they were never counted as acknowledged).
async fn agent_stops_within_its_bound(outage: Outage) {
    let mut rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    let (store, _) = store(&rig, "store-a", &db, 5_000);
    rig.stream_ready().await;
    let (agent, config, log) = agent(&rig, "a1", 1_000, 1_000_000);
    wait_until(LONG, "acknowledged rows", || {
        acked_keys(std::slice::from_ref(&log)).1 >= 200
    })
    .await;
    let limit = bound(&config, "agent");
    let signalled = signal_around_outage(&mut rig, &agent, outage, "Agent stopping").await;
    let report = agent.report(limit + EXIT_SLACK).await;
    assert_within(
        &format!("agent, outage {outage:?}"),
        signalled.elapsed(),
        limit,
        &report,
    );
    assert!(report["leaving_event_sent"].is_boolean(), "{report}");
    rig.nats.restart();
    drained_by(&rig, &store).await;
    store.terminate(LONG).await;
    let (acked, lines) = acked_keys(&[log]);
    assert_eq!(acked.len(), lines, "a row was acknowledged twice");
    let stored = db.keys().await;
    let unique: std::collections::BTreeSet<_> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "duplicate keys in the database");
    let missing = acked.difference(&unique).count();
    assert_eq!(
        missing, 0,
        "{missing} acknowledged rows are not in the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_stopped_after_its_broker_went_exits_within_its_bound() {
    agent_stops_within_its_bound(Outage::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_stopped_as_its_broker_goes_exits_within_its_bound() {
    agent_stops_within_its_bound(Outage::Together).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_broker_goes_while_it_drains_exits_within_its_bound() {
    agent_stops_within_its_bound(Outage::After).await;
}

async fn bridge_stops_within_its_bound(outage: Outage) {
    let mut rig = Rig::new();
    let (bridge, config) = bridge(&rig);
    bridge.metrics_addr().await;
    let limit = bound(&config, "bridge");
    // The bridge logs nothing when its stop begins: "after" is right after the signal.
    let signalled = match outage {
        Outage::After => {
            bridge.sigterm();
            let at = Instant::now();
            rig.nats.kill();
            at
        }
        _ => signal_around_outage(&mut rig, &bridge, outage, "").await,
    };
    let report = bridge.report(limit + EXIT_SLACK).await;
    assert_within(
        &format!("bridge, outage {outage:?}"),
        signalled.elapsed(),
        limit,
        &report,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_stopped_after_its_broker_went_exits_within_its_bound() {
    bridge_stops_within_its_bound(Outage::Before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_stopped_as_its_broker_goes_exits_within_its_bound() {
    bridge_stops_within_its_bound(Outage::Together).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_whose_broker_goes_while_it_stops_exits_within_its_bound() {
    bridge_stops_within_its_bound(Outage::After).await;
}

/// A second SIGTERM ends a stop at once, saying what it abandons; the rows it did not write
/// are still in the stream for the next store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_ends_a_store_at_once_saying_what_it_abandons() {
    let mut rig = Rig::new();
    let db = Db::Sqlite(rig.path("bars.db"));
    // 100 rows/s: a full queue takes six seconds to drain.
    let (store_a, _) = store(&rig, "store-a", &db, 100);
    rig.stream_ready().await;
    let (agent, _, log) = agent(&rig, "a1", 2_000, 1_000);
    agent.report(LONG).await;
    rig.nats.kill();
    store_a.sigterm();
    wait_until(LONG, "the drain to begin", || {
        store_a.log().contains("Store stopping")
    })
    .await;
    store_a.sigterm();
    let second = Instant::now();
    let stderr = rig.path(&format!("{}.log", store_a.name));
    let (status, out) = store_a.exit(Duration::from_secs(2)).await;
    let took = second.elapsed();
    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
    eprintln!("store, second SIGTERM: exited {took:?} after it with {status}");
    assert_eq!(status.code(), Some(143), "{text}");
    assert!(took < Duration::from_secs(1), "took {took:?}:\n{text}");
    assert!(
        out.trim().is_empty(),
        "no report after a second signal: {out}"
    );
    assert!(text.contains("Second signal: exiting at once."), "{text}");
    let abandoned = text
        .split("abandoned=")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_default();
    // The drain, running or about to, and every network step after it.
    assert!(abandoned.contains("drain"), "{text}");
    assert!(abandoned.ends_with("then metrics server"), "{text}");
    // Nothing acknowledged is lost: the next store writes what was left.
    rig.nats.restart();
    let (store_b, _) = store(&rig, "store-b", &db, 5_000);
    drained_by(&rig, &store_b).await;
    store_b.terminate(LONG).await;
    common::rig::assert_exactly_acked(&db, &[log]).await;
}

/// A signal while the store still sets up JetStream (here: connected as a role that may not
/// create the write stream, so it would retry for 30 s) ends the start at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_while_a_store_is_still_starting_ends_the_start() {
    let rig = Rig::tls();
    let db = Db::Sqlite(rig.path("bars.db"));
    let config = rig.write(
        "starting.yaml",
        format!(
            "coordinator: {{coordinator_id: default, instance_id: starting}}
store: {{sink: {}}}
{}metrics: {{listen: '127.0.0.1:0'}}
",
            db.yaml(),
            rig.nats_yaml("agent")
        ),
    );
    let store = Proc::start(STORE, "starting", &config, rig.dir.path());
    // Connected, its setup requests unanswered (each waits for a timeout before a retry).
    wait_until(LONG, "the store to connect", || {
        store.log().contains("NATS connected.")
    })
    .await;
    store.sigterm();
    let signalled = Instant::now();
    let stderr = rig.path("starting.log");
    let (status, out) = store.exit(Duration::from_secs(2)).await;
    let took = signalled.elapsed();
    let text = std::fs::read_to_string(&stderr).unwrap_or_default();
    eprintln!("store, SIGTERM while starting: exited {took:?} after it with {status}");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(took < Duration::from_secs(1), "took {took:?}:\n{text}");
    assert!(out.trim().is_empty(), "no report: {out}");
    assert!(text.contains("stopped before it had started"), "{text}");
}
