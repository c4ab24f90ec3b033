//! The PostgreSQL sink against real servers: both write modes keep every key once with its
//! last values under concurrent redelivery, a bad batch commits nothing, each pooled
//! connection reconnects on its own, and `sslmode` means what libpq means (checked on the
//! server's side in `pg_stat_ssl`, against the local server and a private TLS server).

#[path = "common/postgres_server.rs"]
mod postgres_server;

use std::sync::Arc;
use std::time::Duration;

use backflow::coordinator::{Sink, SinkErrorKind};
use backflow::market::Bar;
use backflow::store::sink::{PostgresMode, PostgresOptions, PostgresSink, SinkSetupError};
use postgres_server::PrivatePostgres;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio_postgres::{Client, NoTls};

const MODES: [PostgresMode; 2] = [PostgresMode::Copy, PostgresMode::Insert];

fn local_url() -> String {
    std::env::var("BACKFLOW_TEST_POSTGRES")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".into())
}

/// `local_url()` for one test: plain TCP and a name to find its sessions by.
fn local_as(app: &str, sslmode: &str) -> String {
    format!("{} sslmode={sslmode} application_name={app}", local_url())
}

async fn admin(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {url:?}: {e} (set BACKFLOW_TEST_POSTGRES)"));
    tokio::spawn(conn);
    client
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", fastrand::u32(..))
}

fn bar(i: i64, close: f64) -> Bar {
    Bar {
        source: "test:sink".into(),
        symbol: format!("S{}", i % 7),
        ts_ms: i,
        open: 1.0,
        high: 2.0,
        low: 0.5,
        close,
        volume: 10.0,
    }
}

async fn closes(client: &Client, table: &str) -> Vec<(i64, f64)> {
    client
        .query(&format!("SELECT ts, close FROM {table} ORDER BY ts"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn both_modes_keep_each_key_once_with_its_last_values_under_concurrent_redelivery() {
    let admin = admin(&local_url()).await;
    for mode in MODES {
        let table = unique("sink_redelivery");
        let options = PostgresOptions {
            mode,
            connections: 4,
        };
        let sink = Arc::new(
            PostgresSink::connect_with(&local_as("sink_redelivery", "disable"), &table, options)
                .await
                .unwrap(),
        );
        // The same batch delivered four times at once, over four connections.
        let first: Vec<Bar> = (0..1_000).map(|i| bar(i, 1.0)).collect();
        let writes: Vec<_> = (0..4)
            .map(|_| {
                let (sink, batch) = (sink.clone(), first.clone());
                tokio::spawn(async move { Sink::<Bar>::write(&*sink, &batch).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        // An overlapping batch that holds one key twice: the later copy wins.
        let mut second: Vec<Bar> = (500..1_500).map(|i| bar(i, 2.0)).collect();
        second.push(bar(1_499, 3.0));
        Sink::<Bar>::write(&*sink, &second).await.unwrap();

        let stored = closes(&admin, &table).await;
        assert_eq!(stored.len(), 1_500, "{mode:?}");
        for (ts, close) in stored {
            let expected = match ts {
                ..500 => 1.0,
                1_499 => 3.0,
                _ => 2.0,
            };
            assert_eq!(close, expected, "{mode:?} ts {ts}");
        }
        assert_eq!(sink.count().await.unwrap(), 1_500);
        admin
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_batch_with_a_bad_row_commits_none_of_it_and_the_connection_goes_on() {
    let admin = admin(&local_url()).await;
    for mode in MODES {
        let table = unique("sink_atomic");
        let options = PostgresOptions {
            mode,
            connections: 1,
        };
        let sink = PostgresSink::connect_with(&local_as("sink_atomic", "disable"), &table, options)
            .await
            .unwrap();
        let mut batch: Vec<Bar> = (0..100).map(|i| bar(i, 1.0)).collect();
        // PostgreSQL text cannot hold NUL: the server refuses the row as bad data.
        batch[60].symbol = "BAD\0".into();
        let err = Sink::<Bar>::write(&sink, &batch).await.unwrap_err();
        assert_eq!(err.kind, SinkErrorKind::Permanent, "{mode:?}: {err}");
        assert_eq!(
            sink.count().await.unwrap(),
            0,
            "{mode:?}: part of a failed batch"
        );
        batch[60].symbol = "GOOD".into();
        Sink::<Bar>::write(&sink, &batch).await.unwrap();
        assert_eq!(sink.count().await.unwrap(), 100, "{mode:?}");
        admin
            .batch_execute(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    }
}

async fn backends(admin: &Client, app: &str) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 ORDER BY pid",
            &[&app],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_lost_connection_reconnects_on_its_own_and_the_others_stay() {
    let admin = admin(&local_url()).await;
    let table = unique("sink_reconnect");
    let app = unique("sink_reconnect");
    let options = PostgresOptions {
        mode: PostgresMode::Copy,
        connections: 2,
    };
    let sink = PostgresSink::connect_with(&local_as(&app, "disable"), &table, options)
        .await
        .unwrap();
    // Sequential writes take the connections in turn, so both open.
    for i in 0..4 {
        Sink::<Bar>::write(&sink, &[bar(i, 1.0)]).await.unwrap();
    }
    let before = backends(&admin, &app).await;
    assert_eq!(before.len(), 2, "one backend per pooled connection");
    admin
        .execute("SELECT pg_terminate_backend($1)", &[&before[0]])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 4..10 {
        Sink::<Bar>::write(&sink, &[bar(i, 1.0)])
            .await
            .unwrap_or_else(|e| panic!("write {i} after one connection was lost: {e}"));
    }
    let after = backends(&admin, &app).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.contains(&before[1]), "the untouched connection stays");
    assert!(!after.contains(&before[0]), "the lost one was replaced");
    assert_eq!(sink.count().await.unwrap(), 10);
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

/// Whether every session named `app` is encrypted (and how many there are).
async fn sessions_over_tls(admin: &Client, app: &str) -> (usize, bool) {
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    (rows.len(), rows.iter().all(|r| r.get::<_, bool>(0)))
}

#[tokio::test]
async fn require_encrypts_every_session_with_the_local_server() {
    let admin = admin(&local_url()).await;
    let ssl: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl != "on" {
        eprintln!(
            "SKIPPED: the local server at {:?} has ssl=off; the private-server test covers TLS",
            local_url()
        );
        return;
    }
    let table = unique("sink_tls_local");
    let app = unique("sink_tls_local");
    let options = PostgresOptions {
        mode: PostgresMode::Copy,
        connections: 2,
    };
    let sink = PostgresSink::connect_with(&local_as(&app, "require"), &table, options)
        .await
        .unwrap();
    Sink::<Bar>::write(&sink, &[bar(1, 1.0)]).await.unwrap();
    assert_eq!(sessions_over_tls(&admin, &app).await, (1, true));
    let plain = unique("sink_plain_local");
    let _plain_sink = PostgresSink::connect(&local_as(&plain, "disable"), &table)
        .await
        .unwrap();
    assert_eq!(sessions_over_tls(&admin, &plain).await, (1, false));
    admin
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
}

/// A CA and a server certificate naming only `localhost` (not 127.0.0.1), and another CA.
struct Certs {
    ca: String,
    server: String,
    server_key: String,
    rogue_ca: String,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn certs() -> Certs {
    let ca = new_ca("backflow test CA");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    Certs {
        ca: ca.pem(),
        server: cert.pem(),
        server_key: key.serialize_pem(),
        rogue_ca: new_ca("another CA").pem(),
    }
}

#[tokio::test]
async fn sslmodes_against_a_private_tls_server_verify_what_libpq_verifies() {
    let certs = certs();
    let Some(server) = PrivatePostgres::start_tls(&certs.server, &certs.server_key) else {
        return;
    };
    let dir = tempfile::TempDir::new().unwrap();
    let ca = dir.path().join("ca.pem");
    let rogue = dir.path().join("rogue.pem");
    std::fs::write(&ca, &certs.ca).unwrap();
    std::fs::write(&rogue, &certs.rogue_ca).unwrap();
    let admin = admin(&server.socket_url()).await;
    let port = server.port;
    // `localhost` names the certificate; hostaddr keeps the address to the one listened on.
    let by_name =
        format!("host=localhost hostaddr=127.0.0.1 port={port} user=postgres dbname=postgres");
    let by_ip = format!("host=127.0.0.1 port={port} user=postgres dbname=postgres");
    let root = |path: &std::path::Path| format!("sslrootcert='{}'", path.display());

    // Accepted: each writes a row, and the server sees its session encrypted.
    let accepted = [
        (
            "full",
            format!("{by_name} sslmode=verify-full {}", root(&ca)),
        ),
        ("ca", format!("{by_ip} sslmode=verify-ca {}", root(&ca))),
        ("require", format!("{by_ip} sslmode=require")),
        ("prefer", by_ip.clone()),
        (
            "url",
            format!(
                "postgres://postgres@localhost:{port}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
                ca.display()
            ),
        ),
    ];
    for (i, (name, url)) in accepted.iter().enumerate() {
        let app = format!("tls_{name}");
        let url = if url.starts_with("postgres://") {
            format!("{url}&application_name={app}")
        } else {
            format!("{url} application_name={app}")
        };
        let sink = PostgresSink::connect(&url, "bars")
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        Sink::<Bar>::write(&sink, &[bar(i as i64, 1.0)])
            .await
            .unwrap();
        assert_eq!(sessions_over_tls(&admin, &app).await, (1, true), "{name}");
    }

    // Refused: a certificate from another CA, a name the certificate does not hold, and
    // plain TCP where the server takes TLS only.
    let refused = [
        (
            "wrong CA",
            format!("{by_name} sslmode=verify-full {}", root(&rogue)),
            "UnknownIssuer",
        ),
        (
            "wrong CA, verify-ca",
            format!("{by_ip} sslmode=verify-ca {}", root(&rogue)),
            "UnknownIssuer",
        ),
        (
            "wrong name",
            format!("{by_ip} sslmode=verify-full {}", root(&ca)),
            "not valid for name",
        ),
        (
            "plain",
            format!("{by_ip} sslmode=disable"),
            "no pg_hba.conf entry",
        ),
    ];
    for (name, url, reason) in refused {
        match PostgresSink::connect(&url, "bars").await {
            Err(SinkSetupError::Database(e)) => assert!(e.contains(reason), "{name}: {e}"),
            Err(e) => panic!("{name}: refused for the wrong reason: {e}"),
            Ok(_) => panic!("{name}: connected"),
        }
    }
    let count: i64 = admin
        .query_one("SELECT COUNT(*) FROM bars", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, accepted.len() as i64);

    // Bad settings are named before any connection.
    match PostgresSink::connect(&format!("{by_ip} sslmode=sometimes"), "bars").await {
        Err(SinkSetupError::Config(e)) => assert!(e.contains("unknown sslmode"), "{e}"),
        other => panic!("sslmode=sometimes: {:?}", other.err()),
    }
    match PostgresSink::connect(&format!("{by_ip} sslmode=verify-full"), "bars").await {
        Err(SinkSetupError::Config(e)) => assert!(e.contains("sslrootcert"), "{e}"),
        other => panic!("verify-full without a CA: {:?}", other.err()),
    }
}
