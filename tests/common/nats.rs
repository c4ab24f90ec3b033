//! A `nats-server` guard: spawns a real server on random loopback ports, reads its ports from
//! its log, and kills it and removes its store on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tempfile::TempDir;

/// The nats-server binary every test spawns: `$NATS_SERVER` when set (`./test.sh` sets it to
/// a current server for its second pass), else Debian's.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER") {
        return path.into();
    }
    for candidate in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!(
        "nats-server not found: install it (Debian: `apt-get install nats-server`, or run ./test.sh \
         which does) or set NATS_SERVER to its path"
    );
}

/// The version of [`binary`] as `(major, minor, patch)`, from `nats-server --version`; the
/// first call also prints `nats-server vX.Y.Z (<path>)` on the test binary's stderr (past
/// the test harness's capture), so every test run says which server it ran on.
pub fn version() -> (u64, u64, u64) {
    static VERSION: OnceLock<(u64, u64, u64)> = OnceLock::new();
    *VERSION.get_or_init(|| {
        let path = binary();
        let out = Command::new(&path)
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} --version: {e}", path.display()));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let version = parse_version(&text)
            .unwrap_or_else(|| panic!("{} --version printed {text:?}", path.display()));
        let line = format!(
            "nats-server v{}.{}.{} ({})\n",
            version.0,
            version.1,
            version.2,
            path.display()
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        version
    })
}

/// `(major, minor, patch)` from `nats-server: v2.9.10` (pre-release tails ignored).
fn parse_version(text: &str) -> Option<(u64, u64, u64)> {
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let mut next = || parts.next()?.parse().ok();
    Some((next()?, next()?, next()?))
}

/// Whether the server is at least `major.minor` (for tests of a feature newer servers add).
pub fn at_least(major: u64, minor: u64) -> bool {
    let (a, b, _) = version();
    (a, b) >= (major, minor)
}

/// A port that was free a moment ago (for cluster routes, which cannot use -1).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running (or killed) nats-server.
pub struct NatsServer {
    child: Option<Child>,
    /// Client port.
    pub port: u16,
    /// HTTP monitoring port (`/jsz`, `/varz`).
    pub monitor_port: u16,
    store: TempDir,
    args: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    /// A standalone server with JetStream.
    pub fn start() -> Self {
        Self::launch(vec![], None)
    }

    /// A server loading `config` (relative to the crate root), with its listen addresses
    /// replaced by random loopback ports and its JetStream `store_dir` by a temp dir.
    pub fn with_config(config: &str) -> Self {
        Self::with_config_edited(config, &[])
    }

    /// Like [`with_config`](Self::with_config), with each `(from, to)` text replacement
    /// applied first (e.g. certificate paths). Files it `include`s are copied beside it.
    pub fn with_config_edited(config: &str, edits: &[(&str, String)]) -> Self {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
        let mut text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        for (from, to) in edits {
            text = text.replace(from, to);
        }
        let mut server = Self {
            child: None,
            port: 0,
            monitor_port: 0,
            store: TempDir::new().expect("a temp dir for the JetStream store"),
            args: vec![],
            log: Arc::default(),
        };
        let store_dir = server.store.path().join("js");
        let text: String = text
            .lines()
            .map(|line| match line.find("store_dir:") {
                Some(at) => {
                    let rest = &line[at..];
                    let tail = rest.find('}').map_or("", |i| &rest[i..]);
                    format!(
                        "{}store_dir: \"{}\" {tail}",
                        &line[..at],
                        store_dir.display()
                    )
                }
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        let dir = path.parent().expect("the config's folder");
        for line in text.lines() {
            if let Some(name) = line.trim().strip_prefix("include ") {
                let name = name.trim().trim_matches('"');
                std::fs::copy(dir.join(name), server.store.path().join(name))
                    .unwrap_or_else(|e| panic!("cannot copy included {name}: {e}"));
            }
        }
        let conf = server.store.path().join("server.conf");
        std::fs::write(&conf, text).expect("write the test config");
        server.args = vec!["-c".into(), conf.display().to_string()];
        server.spawn();
        server
    }

    /// A cluster of `n` JetStream servers routed to each other.
    pub fn cluster(n: usize) -> Vec<Self> {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_urls = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        routes
            .iter()
            .enumerate()
            .map(|(i, port)| {
                Self::launch(
                    vec![
                        "--cluster_name".into(),
                        "backflow-test".into(),
                        "--server_name".into(),
                        format!("node-{i}"),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{port}"),
                        "--routes".into(),
                        route_urls.clone(),
                    ],
                    None,
                )
            })
            .collect()
    }

    fn launch(args: Vec<String>, port: Option<u16>) -> Self {
        let mut server = Self {
            child: None,
            port: port.unwrap_or(0),
            monitor_port: 0,
            store: TempDir::new().expect("a temp dir for the JetStream store"),
            args,
            log: Arc::default(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        version();
        let mut command = Command::new(binary());
        command
            .args(&self.args)
            .args(["-a", "127.0.0.1", "-p", &port, "-m", "-1"]);
        if !self.args.iter().any(|a| a == "-c") {
            command.arg("-js").arg("-sd").arg(self.store.path());
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nats-server starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel::<String>();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        self.child = Some(child);
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(15))
                .unwrap_or_else(|_| {
                    panic!("nats-server did not become ready:\n{}", self.log_text())
                });
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                self.port = port_of(rest);
            }
            if let Some(rest) = line.split("Starting http monitor on ").nth(1) {
                self.monitor_port = port_of(rest);
            }
            if line.contains("Server is ready") {
                break;
            }
            if line.contains("[FTL]") {
                panic!("nats-server failed:\n{}", self.log_text());
            }
        }
    }

    /// The server's process id (0 when killed).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), keeping its port and store for a restart.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

fn port_of(addr: &str) -> u16 {
    addr.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in the log line")
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
