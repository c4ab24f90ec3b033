//! Runs the real binaries as child processes with generated settings files.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use backflow::market::BarKey;

/// A running binary whose stdout (the final JSON report) is collected.
pub struct Proc {
    pub name: String,
    child: Child,
    stderr: PathBuf,
}

impl Proc {
    /// Starts `bin` with `--config <config>`; stderr goes to `<dir>/<name>.log`.
    pub fn start(bin: &str, name: &str, config: &Path, dir: &Path) -> Self {
        let config = [("--config".to_owned(), config.display().to_string())];
        Self::launch(bin, name, &config, &[], dir)
    }

    /// Starts `bin` with no argument and `env` added to the test's environment.
    pub fn start_with_env(bin: &str, name: &str, env: &[(String, String)], dir: &Path) -> Self {
        Self::launch(bin, name, &[], env, dir)
    }

    fn launch(
        bin: &str,
        name: &str,
        args: &[(String, String)],
        env: &[(String, String)],
        dir: &Path,
    ) -> Self {
        let stderr = dir.join(format!("{name}.log"));
        let child = Command::new(bin)
            .args(args.iter().flat_map(|(k, v)| [k, v]))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        Self {
            name: name.into(),
            child,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// The process's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The address the process serves `/metrics` on (from its log).
    pub async fn metrics_addr(&self) -> String {
        let mut addr = String::new();
        wait_until(
            Duration::from_secs(30),
            "the metrics address in the log",
            || {
                addr = self
                    .log()
                    .split("Metrics listening. addr=")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap_or_default()
                    .to_owned();
                !addr.is_empty()
            },
        )
        .await;
        addr
    }

    /// Waits for the process to exit by itself and returns its JSON report.
    pub async fn report(self, limit: Duration) -> serde_json::Value {
        let name = self.name.clone();
        let log = self.stderr.clone();
        let (status, out) = self.exit(limit).await;
        let log = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "{name} exited with {status}:\n{}", log());
        let last = out.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("{name}: report {last:?} is not JSON ({e}):\n{}", log()))
    }

    /// Waits for the process to exit by itself; its status and what it printed on stdout.
    /// Kills it and panics after `limit`.
    pub async fn exit(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    let mut out = String::new();
                    if let Some(mut stdout) = self.child.stdout.take() {
                        let _ = stdout.read_to_string(&mut out);
                    }
                    return (status, out);
                }
                Ok(None) if Instant::now() < deadline => {
                    sleep(Duration::from_millis(20)).await;
                }
                _ => {
                    let _ = self.child.kill();
                    panic!(
                        "{} did not exit within {limit:?}:\n{}",
                        self.name,
                        self.log()
                    );
                }
            }
        }
    }

    /// SIGTERM, without waiting.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// SIGTERM, then the report.
    pub async fn terminate(self, limit: Duration) -> serde_json::Value {
        self.signal("-TERM");
        self.report(limit).await
    }

    /// SIGTERM, then waits for a clean exit (for processes that print no report).
    pub async fn stop(mut self, limit: Duration) {
        self.signal("-TERM");
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    assert!(
                        status.success(),
                        "{} exited with {status}:\n{}",
                        self.name,
                        self.log()
                    );
                    return;
                }
                Ok(None) if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
                _ => panic!(
                    "{} did not stop within {limit:?}:\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// SIGKILL: no drain, no report.
    pub fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 20 ms until it returns true, or panics with `what` after `limit`.
pub async fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Every key in the agents' ack logs, and how many acknowledgements they recorded.
pub fn acked_keys(logs: &[PathBuf]) -> (BTreeSet<BarKey>, usize) {
    let mut keys = BTreeSet::new();
    let mut lines = 0;
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        for line in text.lines() {
            lines += 1;
            let mut parts = line.rsplitn(3, ',');
            let ts_ms = parts.next().and_then(|t| t.parse().ok()).expect("ts");
            let symbol = parts.next().expect("symbol").to_owned();
            let source = parts.next().expect("source").to_owned();
            keys.insert(BarKey {
                source,
                symbol,
                ts_ms,
            });
        }
    }
    (keys, lines)
}

/// GETs `http://<addr><path>` as text.
pub async fn http_get(addr: &str, path: &str) -> Option<String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::get(format!("http://{addr}{path}")).await.ok()?;
    response.text().await.ok()
}

/// The value of the first sample of `series` (full name with labels) in a scrape.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `stored` (the database's keys) equals the acknowledged keys in `logs`, each once; returns
/// how many rows that is.
pub fn assert_stored_exactly_acked(stored: &[BarKey], logs: &[PathBuf]) -> usize {
    let (acked, _) = acked_keys(logs);
    let unique: BTreeSet<BarKey> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "duplicate keys in the database");
    assert_eq!(
        stored.len(),
        acked.len(),
        "row count differs from acknowledged rows"
    );
    assert!(unique == acked, "stored keys differ from acknowledged keys");
    acked.len()
}
