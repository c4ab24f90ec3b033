//! The 3-node cluster of `nats/cluster/`, started from its configs on free loopback ports.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Instant, sleep, timeout};

use crate::nats::{NatsServer, free_port};

const NODES: [&str; 3] = [
    "nats/cluster/node-a.conf",
    "nats/cluster/node-b.conf",
    "nats/cluster/node-c.conf",
];

/// The address a config's `cluster { listen: ... }` names.
fn route_listen(config: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut in_cluster = false;
    for line in text.lines().map(str::trim) {
        in_cluster |= line.starts_with("cluster");
        if let Some(addr) = line.strip_prefix("listen:").filter(|_| in_cluster) {
            return addr.trim().trim_matches('"').to_owned();
        }
    }
    panic!("{config} has no `listen:` inside `cluster {{ }}`")
}

/// Starts the three nodes. Client and monitoring ports are random (the test guard passes
/// `-p -1 -m -1`); the route addresses in the configs are rewritten to free loopback ports
/// so that a run never collides with a cluster someone started by hand on 6222–6224.
pub fn start() -> Vec<NatsServer> {
    let edits: Vec<(String, String)> = NODES
        .iter()
        .map(|c| (route_listen(c), format!("127.0.0.1:{}", free_port())))
        .collect();
    let edits: Vec<(&str, String)> = edits.iter().map(|(f, t)| (f.as_str(), t.clone())).collect();
    NODES
        .iter()
        .map(|c| NatsServer::with_config_edited(c, &edits))
        .collect()
}

/// Waits until a message published on the first node reaches a subscriber on every node and
/// JetStream answers `$JS.API.INFO` without an error (agents ask it while they start, and
/// each unanswered ask would cost them 2 s).
pub async fn ready(urls: &[String], within: Duration) {
    let deadline = Instant::now() + within;
    let clients = futures_util::future::join_all(
        urls.iter()
            .map(|u| async move { async_nats::connect(u.as_str()).await }),
    )
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .unwrap_or_else(|e| panic!("cannot connect to a cluster node: {e}"));
    let mut subs = Vec::new();
    for c in &clients {
        subs.push(
            c.subscribe("bench.routes")
                .await
                .unwrap_or_else(|e| panic!("cannot subscribe on a cluster node: {e}")),
        );
    }
    for (node, sub) in subs.iter_mut().enumerate() {
        loop {
            assert!(
                Instant::now() < deadline,
                "the cluster did not route to node {node} within {within:?}"
            );
            let _ = clients[0].publish("bench.routes", Bytes::new()).await;
            if let Ok(Some(_)) = timeout(Duration::from_millis(200), sub.next()).await {
                break;
            }
        }
    }
    loop {
        assert!(
            Instant::now() < deadline,
            "JetStream of the cluster was not ready within {within:?}"
        );
        let answer = timeout(
            Duration::from_secs(1),
            clients[0].request("$JS.API.INFO", Bytes::new()),
        )
        .await;
        if let Ok(Ok(msg)) = answer {
            let reply: serde_json::Value = serde_json::from_slice(&msg.payload).unwrap_or_default();
            if reply.get("error").is_none() && reply.is_object() {
                return;
            }
        }
        sleep(Duration::from_millis(200)).await;
    }
}
