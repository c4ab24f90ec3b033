//! The rig of the end-to-end tests: settings files for the real binaries, the databases they
//! write to, and the checks that the database holds exactly the acknowledged rows.

use std::path::PathBuf;
use std::time::Duration;

use backflow::bus::nats::NatsOptions;
use backflow::market::BarKey;
use backflow::store::sink::{PostgresSink, SqliteSink};
use tempfile::TempDir;

use super::nats::NatsServer;
use super::system::{Proc, http_get};
use super::tls::TlsFiles;

pub const STORE: &str = env!("CARGO_BIN_EXE_backflow-store");
pub const AGENT: &str = env!("CARGO_BIN_EXE_backflow-agent");
pub const BRIDGE: &str = env!("CARGO_BIN_EXE_backflow-bridge");
pub const CLI: &str = env!("CARGO_BIN_EXE_backflow");
pub const LONG: Duration = Duration::from_secs(60);

pub fn postgres_url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

pub enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    pub fn yaml(&self) -> String {
        match self {
            Db::Sqlite(path) => format!("{{kind: sqlite, path: {}}}", path.display()),
            Db::Postgres(table) => format!(
                "{{kind: postgres, url: '{}', table: {table}}}",
                postgres_url()
            ),
        }
    }

    pub async fn keys(&self) -> Vec<BarKey> {
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

/// A temp dir for settings files, logs and databases, and the NATS server the binaries use.
pub struct Rig {
    pub dir: TempDir,
    pub nats: NatsServer,
    /// Set when the server runs `nats/tls.conf`: every binary then connects over TLS as its
    /// own role.
    pub tls: Option<TlsFiles>,
    /// Set by [`Rig::signed`]: (the store's seed file, its public key).
    pub signing: Option<(PathBuf, String)>,
}

impl Rig {
    /// A plain, open JetStream server.
    pub fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
            nats: NatsServer::start(),
            tls: None,
            signing: None,
        }
    }

    /// `nats/tls.conf` on generated certificates; each binary uses its role's user and
    /// client certificate.
    pub fn tls() -> Self {
        let files = TlsFiles::generate();
        Self {
            dir: TempDir::new().unwrap(),
            nats: files.start_server(),
            tls: Some(files),
            signing: None,
        }
    }

    /// Stores sign their feedback with a key made by `backflow nkey`; agents and the bridge
    /// trust only that key.
    pub fn signed(mut self) -> Self {
        let seed = self.path("store.nkey");
        let out = std::process::Command::new(CLI)
            .args(["nkey", "--seed-file"])
            .arg(&seed)
            .output()
            .expect("backflow nkey runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        self.signing = Some((seed, public));
        self
    }

    /// The `nats:` settings block of a binary acting as `role`.
    pub fn nats_yaml(&self, role: &str) -> String {
        let mut yaml = match &self.tls {
            Some(tls) => tls.yaml(&self.nats, role),
            None => format!("nats:\n  servers: ['{}']\n", self.nats.url()),
        };
        match (&self.signing, role.starts_with("store-")) {
            (Some((seed, _)), true) => {
                yaml.push_str(&format!("  signing: {{seed_file: '{}'}}\n", seed.display()));
            }
            (Some((_, public)), false) => {
                yaml.push_str(&format!("  signing: {{trusted_keys: ['{public}']}}\n"));
            }
            (None, _) => {}
        }
        yaml
    }

    /// Options of an observer allowed everything (admin over TLS).
    pub fn observer(&self) -> NatsOptions {
        match &self.tls {
            Some(tls) => tls.options(&self.nats, "admin"),
            None => NatsOptions::for_url(self.nats.url()),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, yaml: String) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    /// A store on coordinator `default` with a throttled sink.
    pub fn store(&self, name: &str, db: &Db, rows_per_sec: u32) -> Proc {
        self.store_sized(name, db, rows_per_sec, 600)
    }

    /// The same with a queue of `capacity` rows.
    pub fn store_sized(&self, name: &str, db: &Db, rows_per_sec: u32, capacity: u64) -> Proc {
        let config = self.write(
            &format!("{name}.yaml"),
            format!(
                "coordinator: {{coordinator_id: default, instance_id: {name}, capacity: {capacity}, batch_size: 100, heartbeat_interval_ms: 200}}
store:
  sink: {}
  throttle: {{rows_per_sec: {rows_per_sec}}}
  ack_wait_ms: 3000
  drain_timeout_ms: 20000
  backlog_poll_ms: 200
{}metrics: {{listen: '127.0.0.1:0'}}
",
                db.yaml(),
                self.nats_yaml("store-default")
            ),
        );
        Proc::start(STORE, name, &config, self.dir.path())
    }

    /// An agent producing `rows` rows at `rate` rows/s, logging its acknowledgements, with the
    /// default policy.
    pub fn agent(&self, name: &str, rate: u32, rows: u64) -> (Proc, PathBuf) {
        self.agent_with(name, rate, rows, "proportional")
    }

    /// The same with the given feedback policy.
    pub fn agent_with(&self, name: &str, rate: u32, rows: u64, policy: &str) -> (Proc, PathBuf) {
        let log = self.path(&format!("{name}.acked"));
        let config = self.write(
            &format!("{name}.yaml"),
            format!(
                "rate_coordinator: {{providers: {{feed: {{capacity: 50, refill_rate: {rate}}}}}}}
feedback: {{provider_name: feed, policy: {policy}, hysteresis: {{dwell_ms: 300, ramp_interval_ms: 100}}}}
agent: {{name: {name}, max_rows: {rows}, ack_log: {}, retry_delay_ms: 100}}
{}metrics: {{listen: '127.0.0.1:0'}}
",
                log.display(),
                self.nats_yaml("agent")
            ),
        );
        (Proc::start(AGENT, name, &config, self.dir.path()), log)
    }

    /// The metrics bridge, on every coordinator, serving `/metrics` on a random port.
    pub fn bridge(&self, name: &str) -> Proc {
        let config = self.write(
            &format!("{name}.yaml"),
            format!(
                "bridge: {{publish_interval_ms: 200, lag_poll_interval_ms: 200}}
{}metrics: {{listen: '127.0.0.1:0'}}
",
                self.nats_yaml("bridge")
            ),
        );
        Proc::start(BRIDGE, name, &config, self.dir.path())
    }

    pub async fn js(&self) -> async_nats::jetstream::Context {
        let conn = self.observer().connect("test-observer").await.unwrap();
        async_nats::jetstream::new(conn.client)
    }

    /// Waits until the write stream exists (the store created it).
    pub async fn stream_ready(&self) {
        let js = self.js().await;
        super::within(LONG, "the write stream", async {
            while js.get_stream("BACKFLOW_WRITES").await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
    }

    /// Waits until the store consumer has nothing pending or unacknowledged.
    pub async fn consumer_drained(&self) {
        let js = self.js().await;
        super::within(LONG, "the write consumer to drain", async {
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

pub fn num(v: &serde_json::Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path:?} missing in {v}"))
}

/// Scrapes the `/metrics` endpoint a process serves.
pub async fn scrape_metrics(p: &Proc) -> String {
    http_get(&p.metrics_addr().await, "/metrics")
        .await
        .unwrap_or_else(|| panic!("{}: /metrics did not answer", p.name))
}

/// Database keys equal the acknowledged keys, each once.
pub async fn assert_exactly_acked(db: &Db, logs: &[PathBuf]) {
    super::system::assert_stored_exactly_acked(&db.keys().await, logs);
}

pub fn pg_table() -> String {
    format!("bars_test_{}", fastrand::u32(..))
}

pub async fn drop_table(table: &str) {
    if let Ok((client, conn)) =
        tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await;
    }
}
