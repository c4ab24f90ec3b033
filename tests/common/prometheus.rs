//! A `prometheus` server guard: starts a real Prometheus on a random loopback port with a
//! generated scrape config and a temporary store, kills it on drop; plus a reader of the text
//! exposition format and a client for the query API.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;
use tokio::time::{Instant, sleep};

use super::nats::free_port;

/// How often the generated config scrapes every target.
pub const SCRAPE_INTERVAL: Duration = Duration::from_millis(500);

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("PROMETHEUS") {
        return path.into();
    }
    for candidate in [
        "/usr/bin/prometheus",
        "/usr/local/bin/prometheus",
        "/usr/sbin/prometheus",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "prometheus not found: install it (Debian: `apt-get install prometheus`, or run ./test.sh \
         which does) or set PROMETHEUS to its path"
    );
}

/// A running Prometheus scraping fixed targets.
pub struct PrometheusServer {
    child: Option<Child>,
    /// HTTP port (query API, `/-/ready`).
    pub port: u16,
    dir: TempDir,
    log: Arc<Mutex<Vec<String>>>,
}

impl PrometheusServer {
    /// Starts Prometheus scraping `targets` (job name, address of a `/metrics` endpoint)
    /// every [`SCRAPE_INTERVAL`], and waits until it reports ready.
    pub async fn start(targets: &[(&str, SocketAddr)]) -> Self {
        Self::start_discovering(targets, &[]).await
    }

    /// As [`start`](Self::start), plus one job per name in `discovered` whose targets come
    /// from a file the test rewrites with [`discover`](Self::discover), as Kubernetes service
    /// discovery follows pods that come and go.
    pub async fn start_discovering(targets: &[(&str, SocketAddr)], discovered: &[&str]) -> Self {
        let dir = TempDir::new().expect("a temp dir for prometheus");
        let interval = format!("{}ms", SCRAPE_INTERVAL.as_millis());
        let mut config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  \
             evaluation_interval: {interval}\nscrape_configs:\n"
        );
        for (job, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    metrics_path: /metrics\n    static_configs:\n      \
                 - targets: [\"{addr}\"]\n"
            ));
        }
        for job in discovered {
            let file = dir.path().join(format!("{job}.json"));
            std::fs::write(&file, "[]").expect("write the target file");
            config.push_str(&format!(
                "  - job_name: {job}\n    metrics_path: /metrics\n    file_sd_configs:\n      \
                 - files: [\"{}\"]\n        refresh_interval: 1s\n",
                file.display()
            ));
        }
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write the config");
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            log: Arc::default(),
        };
        // A port picked free can be taken before Prometheus binds it: try a few.
        for _ in 0..3 {
            server.port = free_port();
            server.spawn();
            if server.wait_ready().await {
                return server;
            }
            server.kill();
        }
        panic!("prometheus did not become ready:\n{}", server.log_text());
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let mut child = Command::new(binary())
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--log.level=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        });
        self.child = Some(child);
    }

    /// Polls `/-/ready` until it answers 200 (true) or the process exits or 30 s pass (false).
    async fn wait_ready(&mut self) -> bool {
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return false;
                }
            }
            let ready = client
                .get(format!("{}/-/ready", self.url()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return true;
            }
            sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Sets the targets of the discovered `job` (written whole, then renamed into place, so
    /// Prometheus never reads half a file).
    pub fn discover(&self, job: &str, addrs: &[String]) {
        let json = serde_json::json!([{ "targets": addrs }]).to_string();
        let tmp = self.dir.path().join(format!(".{job}.json.tmp"));
        std::fs::write(&tmp, json).expect("write the target file");
        std::fs::rename(&tmp, self.dir.path().join(format!("{job}.json")))
            .expect("move the target file into place");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Runs an instant query; panics unless Prometheus answers `success` with a vector.
    pub async fn query(&self, promql: &str) -> Vec<Series> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/query", self.url())).unwrap();
        url.query_pairs_mut().append_pair("query", promql);
        let body = client()
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("query {promql}: {e}"))
            .text()
            .await
            .unwrap();
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "success", "query {promql}: {body}");
        assert_eq!(
            json["data"]["resultType"], "vector",
            "query {promql}: {body}"
        );
        json["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Series {
                labels: r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect(),
                value: r["value"][1].as_str().unwrap().parse().unwrap(),
            })
            .collect()
    }

    /// Polls `promql` until it returns exactly one series whose value is `expected`, within
    /// `limit`; panics at once if a poll returns more than one series, and with the last
    /// answer when time runs out. Returns the series.
    pub async fn expect_single(&self, promql: &str, expected: f64, limit: Duration) -> Series {
        let deadline = Instant::now() + limit;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(promql).await;
            assert!(
                last.len() <= 1,
                "{promql} returned {} series (KEDA refuses more than one): {last:?}",
                last.len()
            );
            if let [series] = last.as_slice() {
                if series.value == expected {
                    return series.clone();
                }
            }
            sleep(SCRAPE_INTERVAL / 2).await;
        }
        panic!("{promql} did not return one series = {expected} within {limit:?}; last: {last:?}");
    }

    /// Polls `promql` until it returns exactly one series whose value satisfies `ok`, within
    /// `limit`; returns the value.
    pub async fn expect_single_where(
        &self,
        promql: &str,
        ok: impl Fn(f64) -> bool,
        limit: Duration,
    ) -> f64 {
        let deadline = Instant::now() + limit;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(promql).await;
            if let [series] = last.as_slice() {
                if ok(series.value) {
                    return series.value;
                }
            }
            sleep(SCRAPE_INTERVAL / 2).await;
        }
        panic!("{promql} did not return one acceptable series within {limit:?}; last: {last:?}");
    }

    /// Kills the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One series of a query result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// An HTTP client for tests (plain HTTP; the rustls provider is installed for reqwest).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One sample of a text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name (with `_bucket`/`_sum`/`_count` for histograms).
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// A parsed text exposition: `# TYPE` of every family and every sample.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type.
    pub types: BTreeMap<String, String>,
    /// Family name → help.
    pub help: BTreeMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// Parses Prometheus' text format (version 0.0.4).
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                out.types.insert(name.to_owned(), kind.to_owned());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
                out.help.insert(name.to_owned(), help.to_owned());
            } else if !line.starts_with('#') {
                out.samples.push(parse_sample(line));
            }
        }
        out
    }

    /// Samples named `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The value of the single sample matching; panics if there is not exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        match self.find(name, labels).as_slice() {
            [one] => one.value,
            other => panic!("{name}{labels:?}: expected one sample, found {other:?}"),
        }
    }
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect("a sample line");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    let Some((name, rest)) = series.split_once('{') else {
        return Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let body = rest.strip_suffix('}').expect("closing brace");
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "label {key} in {line:?}");
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Sample {
        name: name.to_owned(),
        labels,
        value,
    }
}
