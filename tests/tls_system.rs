//! TLS end to end: `nats/tls.conf` on certificates generated at test time, the real store,
//! agents and bridge each connecting as its own role with its own client certificate, and the
//! server refusing plain TCP, clients without a certificate and certificates of another CA.

mod common;

use std::process::Command;
use std::time::Duration;

use common::nats::NatsServer;
use common::rig::{Db, LONG, Rig, assert_exactly_acked, num};
use common::system::{http_get, sample};
use common::tls::{TlsFiles, url};
use common::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLI: &str = env!("CARGO_BIN_EXE_backflow");
const WAIT: Duration = Duration::from_secs(10);

/// A child process killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(connection name, authorized user, TLS version)` of every client, from the server's
/// `/connz`.
async fn connections(server: &NatsServer) -> Vec<(String, String, String)> {
    let addr = format!("127.0.0.1:{}", server.monitor_port);
    let body = http_get(&addr, "/connz?auth=true&limit=1000")
        .await
        .unwrap_or_default();
    let connz: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("authorized_user"), s("tls_version"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_binary_over_tls_as_its_role_writes_exactly_the_acked_rows_and_agents_obey() {
    // The store also signs its feedback; agents and the bridge accept only its key.
    let rig = Rig::tls().signed();
    let db = Db::Sqlite(rig.path("bars.db"));
    let store = rig.store("store-a", &db, 1_000);
    rig.stream_ready().await;
    let bridge = rig.bridge("bridge");
    let (a1, log1) = rig.agent("a1", 1_000, 2_000);
    let (a2, log2) = rig.agent("a2", 1_000, 2_000);

    // Each binary is connected over TLS as its own role.
    let want = [
        ("backflow-store", "store-default"),
        ("backflow-agent", "agent"),
        ("backflow-bridge", "bridge"),
    ];
    within(LONG, "every binary on the server over TLS", async {
        loop {
            let conns = connections(&rig.nats).await;
            let found = want.iter().all(|(name, user)| {
                conns
                    .iter()
                    .any(|(n, u, tls)| n == name && u == user && tls.starts_with("1."))
            });
            if found {
                // Only clients that authenticated: /connz also lists a connection whose TLS
                // handshake and CONNECT are still under way, with no name, user or TLS
                // version yet (nats-server 2.15 showed one beside the three binaries).
                assert!(
                    conns
                        .iter()
                        .filter(|(_, user, _)| !user.is_empty())
                        .all(|(_, _, tls)| tls.starts_with("1.")),
                    "an authenticated client without TLS: {conns:?}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // Signed feedback reached the agents (they slowed down) and the bridge (it exports the
    // store); they accept nothing unsigned.
    let (r1, r2) = tokio::join!(a1.report(LONG), a2.report(LONG));
    for r in [&r1, &r2] {
        assert_eq!(num(r, &["acked"]), 2_000.0, "{r}");
        assert!(
            num(r, &["min_scale"]) < 1.0,
            "the agent never slowed down: {r}"
        );
    }
    let bridge_addr = bridge.metrics_addr().await;
    let (_, public_key) = rig.signing.as_ref().unwrap();
    assert!(
        store.log().contains(public_key.as_str()),
        "the store signs: {}",
        store.log()
    );
    within(LONG, "the bridge to export the store's depth", async {
        loop {
            let scrape = http_get(&bridge_addr, "/metrics").await.unwrap_or_default();
            if sample(
                &scrape,
                "coordinator_queue_depth{coordinator_id=\"default\"}",
            )
            .is_some()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    rig.consumer_drained().await;
    let report = store.terminate(LONG).await;
    assert_eq!(report["drained"], true, "{report}");
    bridge.stop(LONG).await;
    assert_exactly_acked(&db, &[log1, log2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_certificate_or_with_another_cas_certificate_are_refused() {
    let files = TlsFiles::generate();
    let server = files.start_server();
    for (what, cert) in [("no certificate", None), ("another CA", Some("rogue"))] {
        let mut options = files.options(&server, "admin");
        options.tls = files.client(cert);
        match within(WAIT, what, options.connect("intruder")).await {
            Ok(_) => panic!("{what}: connected"),
            Err(e) => eprintln!("{what}: refused: {e}"),
        }
    }
    // The same user with its certificate gets in.
    let admin = within(
        WAIT,
        "a valid client",
        files.options(&server, "admin").connect("admin"),
    )
    .await
    .expect("a client with a certificate of the CA connects");
    admin.client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tcp_client_is_refused() {
    let files = TlsFiles::generate();
    let server = files.start_server();
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"\r\n") {
        let n = within(WAIT, "the server's INFO", tcp.read(&mut buf))
            .await
            .unwrap();
        assert!(n > 0, "closed before INFO");
        seen.extend_from_slice(&buf[..n]);
    }
    let info = String::from_utf8_lossy(&seen).to_string();
    assert!(info.contains("\"tls_required\":true"), "{info}");
    tcp.write_all(
        b"CONNECT {\"user\":\"admin\",\"pass\":\"admin-secret\",\"verbose\":false}\r\nPING\r\n",
    )
    .await
    .unwrap();
    // The server closes the connection without ever answering PONG.
    let mut after = Vec::new();
    within(WAIT, "the server to close the connection", async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => after.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let after = String::from_utf8_lossy(&after);
    assert!(
        !after.contains("PONG"),
        "a plain client was served: {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publish_and_watch_clis_take_tls_and_credentials_from_their_settings() {
    let files = TlsFiles::generate();
    let server = files.start_server();
    let store = files
        .options(&server, "store-default")
        .connect("store")
        .await
        .unwrap();
    backflow::bus::nats::ensure_state_stream(&store)
        .await
        .unwrap();
    let admin = files.dir().join("admin.yaml");
    std::fs::write(&admin, files.yaml(&server, "admin")).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(CLI)
            .args(["publish", "--level", "soft", "--depth", "7", "--config"])
            .arg(&admin)
            .output()
            .unwrap()
    });
    let out = within(WAIT, "backflow publish", out).await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `watch` as the agent role learns the event from the last-value stream.
    let agent = files.dir().join("agent.yaml");
    std::fs::write(&agent, files.yaml(&server, "agent")).unwrap();
    let mut watch = Killed(
        Command::new(CLI)
            .args(["watch", "--config"])
            .arg(&agent)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = watch.0.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).map(|_| line)
    });
    let line = within(WAIT, "a line from backflow watch", first)
        .await
        .unwrap()
        .unwrap();
    assert!(
        line.starts_with("default/cli-") && line.contains("SOFT depth 7/"),
        "{line}"
    );
    assert!(url(&server).starts_with("tls://"));
}
