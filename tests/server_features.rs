//! The server feature table (`ServerVersion::supports`) checked against the real nats-server
//! under test: each feature works exactly on the versions the table names, and a server that
//! lacks it behaves the way `docs/nats-versions.md` says (ignored silently, or refused).
//! `./test.sh` runs this on Debian's 2.9.10 and on a current server.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use backflow::bus::nats::{NatsConnection, NatsOptions, ServerFeature, ServerVersion};
use common::nats::NatsServer;
use common::within;
use futures_util::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn connect(server: &NatsServer) -> NatsConnection {
    NatsOptions::for_url(server.url())
        .connect("test")
        .await
        .expect("connects")
}

fn announced(conn: &NatsConnection) -> ServerVersion {
    ServerVersion::of(&conn.client).expect("the server announces a version")
}

/// A stream over `t.>` holding one message on each of `t.a`, `t.b` and `t.c`.
async fn three_subjects(js: &jetstream::Context) -> stream::Stream {
    let stream = js
        .create_stream(stream::Config {
            name: "T".into(),
            subjects: vec!["t.>".into()],
            ..Default::default()
        })
        .await
        .expect("stream");
    for subject in ["t.a", "t.b", "t.c"] {
        js.publish(subject, "x".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    stream
}

#[tokio::test]
async fn the_version_announced_to_clients_is_the_binarys() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let (major, minor, patch) = common::nats::version();
    assert_eq!(
        announced(&conn),
        ServerVersion::new(major as u32, minor as u32, patch as u32)
    );
}

#[tokio::test]
async fn multi_filter_consumers_filter_exactly_where_the_table_says() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let js = jetstream::new(conn.client.clone());
    let stream = three_subjects(&js).await;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("two".into()),
            filter_subjects: vec!["t.a".into(), "t.b".into()],
            ..Default::default()
        })
        .await
        .expect("consumer (2.9 accepts the field too)");
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .messages()
        .await
        .expect("fetch");
    let mut subjects = Vec::new();
    while let Some(m) = within(WAIT, "the fetched messages", batch.next()).await {
        subjects.push(m.expect("message").subject.to_string());
    }
    let expected: &[&str] = if announced(&conn).supports(ServerFeature::MultiFilterConsumers) {
        &["t.a", "t.b"]
    } else {
        // Silently ignored: the consumer sees the whole stream.
        &["t.a", "t.b", "t.c"]
    };
    assert_eq!(subjects, expected);
}

#[tokio::test]
async fn kv_buckets_can_be_created_exactly_where_the_table_says() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let js = jetstream::new(conn.client.clone());
    let created = js
        .create_key_value(kv::Config {
            bucket: "probe".into(),
            history: 1,
            ..Default::default()
        })
        .await;
    let supported = announced(&conn).supports(ServerFeature::KeyValueCreate);
    assert_eq!(created.is_ok(), supported, "{:?}", created.err());
    if let Ok(bucket) = created {
        bucket.put("k", "v".into()).await.expect("put");
        let value = bucket.get("k").await.expect("get");
        assert_eq!(value.as_deref(), Some(&b"v"[..]));
    }
}

#[tokio::test]
async fn consumers_pause_exactly_where_the_table_says() {
    let server = NatsServer::start();
    let conn = connect(&server).await;
    let js = jetstream::new(conn.client.clone());
    let stream = three_subjects(&js).await;
    let until = async_nats::datetime::add_std_duration(
        async_nats::datetime::now(),
        Duration::from_secs(3600),
    )
    .expect("an hour from now");
    let mut consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("paused".into()),
            pause_until: Some(until),
            ..Default::default()
        })
        .await
        .expect("consumer (older servers accept the field too)");
    let paused = consumer.info().await.expect("info").paused;
    let supported = announced(&conn).supports(ServerFeature::ConsumerPause);
    assert_eq!(paused, supported);
    let mut batch = consumer
        .fetch()
        .max_messages(10)
        .messages()
        .await
        .expect("fetch");
    let mut delivered = 0;
    while let Some(m) = within(WAIT, "the fetched messages", batch.next()).await {
        if m.is_ok() {
            delivered += 1;
        }
    }
    // A paused consumer delivers nothing; one whose server ignored the pause delivers all.
    assert_eq!(delivered, if supported { 0 } else { 3 });
}
