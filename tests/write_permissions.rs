//! The write stream and the last-value stream under `nats/accounts.conf`: each role may do its
//! job and the server refuses, with a permissions violation, everything else a compromised
//! agent, store or bridge could try.

mod common;

use std::time::Duration;

use async_nats::jetstream;
use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::{
    NatsConnection, NatsOptions, NatsPublisher, Secret, ensure_state_stream,
};
use backflow::event::{BackpressureLevel, CoordinatorId, decode, encode};
use backflow::store::{StoreConfig, WriteStreamConfig, ensure_write_consumer, ensure_write_stream};
use common::nats::NatsServer;
use common::probe::Probe;
use common::{event, within};
use futures_util::StreamExt;

const WAIT: Duration = Duration::from_secs(10);

async fn connect_as(server: &NatsServer, user: &str) -> NatsConnection {
    let mut o = NatsOptions::for_url(server.url());
    o.user = Some(user.into());
    o.password = Some(Secret::new(format!("{user}-secret")));
    o.inbox_prefix = Some(format!("_INBOX_{user}"));
    o.connect(user).await.expect("connects")
}

/// The write stream and store-default's consumer, created as store-default, holding one row
/// an agent published.
async fn write_stream_with_a_row(server: &NatsServer) -> jetstream::Context {
    let store = connect_as(server, "store-default").await;
    ensure_write_stream(&store, &WriteStreamConfig::default())
        .await
        .unwrap();
    ensure_write_consumer(&store, &CoordinatorId::default(), &StoreConfig::default())
        .await
        .unwrap();
    let agent = connect_as(server, "agent").await;
    let ack = jetstream::new(agent.client.clone())
        .publish("backflow.writes.default", "row".into())
        .await
        .expect("an agent may publish rows");
    within(WAIT, "the row's ack", ack.into_future())
        .await
        .unwrap();
    jetstream::new(connect_as(server, "admin").await.client)
}

/// The row is still there, undelivered, and the consumer intact.
async fn row_untouched(admin: &jetstream::Context) {
    let mut stream = admin.get_stream("BACKFLOW_WRITES").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    let mut consumer = stream
        .get_consumer::<jetstream::consumer::pull::Config>("store-default")
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!((info.num_pending, info.num_ack_pending), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_publishes_rows_but_cannot_consume_ack_delete_or_purge_them() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let admin = write_stream_with_a_row(&server).await;
    let mut agent = Probe::connect(&server, "agent").await;
    let pull = br#"{"batch":1,"expires":1000000000}"#.to_vec();
    for (subject, body) in [
        (
            "$JS.API.CONSUMER.MSG.NEXT.BACKFLOW_WRITES.store-default",
            pull,
        ),
        (
            "$JS.ACK.BACKFLOW_WRITES.store-default.1.1.1.1.0",
            b"+ACK".to_vec(),
        ),
        ("$JS.API.CONSUMER.CREATE.BACKFLOW_WRITES", b"{}".to_vec()),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.BACKFLOW_WRITES.thief",
            b"{}".to_vec(),
        ),
        (
            "$JS.API.CONSUMER.DELETE.BACKFLOW_WRITES.store-default",
            vec![],
        ),
        ("$JS.API.STREAM.PURGE.BACKFLOW_WRITES", vec![]),
        ("$JS.API.STREAM.DELETE.BACKFLOW_WRITES", vec![]),
        (
            "$JS.API.STREAM.MSG.DELETE.BACKFLOW_WRITES",
            br#"{"seq":1}"#.to_vec(),
        ),
        (
            "$JS.API.STREAM.MSG.GET.BACKFLOW_WRITES",
            br#"{"seq":1}"#.to_vec(),
        ),
        ("$JS.API.STREAM.UPDATE.BACKFLOW_WRITES", b"{}".to_vec()),
    ] {
        agent.refused(subject, body).await;
    }
    row_untouched(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_cannot_take_another_coordinators_rows_or_speak_for_it() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let admin = write_stream_with_a_row(&server).await;
    let mut store = Probe::connect(&server, "store-default").await;
    let pull = br#"{"batch":1,"expires":1000000000}"#.to_vec();
    for (subject, body) in [
        (
            "$JS.API.CONSUMER.MSG.NEXT.BACKFLOW_WRITES.store-other",
            pull,
        ),
        (
            "$JS.ACK.BACKFLOW_WRITES.store-other.1.1.1.1.0",
            b"+ACK".to_vec(),
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.BACKFLOW_WRITES.store-other",
            b"{}".to_vec(),
        ),
        (
            "$JS.API.CONSUMER.DELETE.BACKFLOW_WRITES.store-default",
            vec![],
        ),
        ("$JS.API.STREAM.PURGE.BACKFLOW_WRITES", vec![]),
        ("$JS.API.STREAM.DELETE.BACKFLOW_WRITES", vec![]),
        ("$JS.API.STREAM.DELETE.BACKFLOW_FEEDBACK", vec![]),
        ("$JS.API.STREAM.PURGE.BACKFLOW_FEEDBACK", vec![]),
        (
            "backflow.feedback.other",
            encode(&event("other", "forged", 1, BackpressureLevel::Hard, 9, 10)),
        ),
        ("backflow.deadletter.other", b"x".to_vec()),
    ] {
        store.refused(subject, body).await;
    }
    row_untouched(&admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_cannot_publish_feedback_or_touch_the_write_stream() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let admin = write_stream_with_a_row(&server).await;
    let mut bridge = Probe::connect(&server, "bridge").await;
    for (subject, body) in [
        (
            "backflow.feedback.default",
            encode(&event(
                "default",
                "forged",
                1,
                BackpressureLevel::Hard,
                9,
                10,
            )),
        ),
        ("backflow.writes.default", b"row".to_vec()),
        (
            "$JS.API.CONSUMER.MSG.NEXT.BACKFLOW_WRITES.store-default",
            b"{}".to_vec(),
        ),
        ("$JS.API.STREAM.PURGE.BACKFLOW_WRITES", vec![]),
        ("$JS.API.STREAM.PURGE.BACKFLOW_FEEDBACK", vec![]),
    ] {
        bridge.refused(subject, body).await;
    }
    row_untouched(&admin).await;
}

/// A consumer on the last-value stream with a `deliver_subject` makes the server itself
/// publish the kept events there, around the creator's publish permissions. nats-server
/// refuses a deliver subject inside the stream's own subjects ("forms a cycle"), but not
/// another one: an agent could have had old feedback pushed onto `backflow.metrics.<id>`,
/// which it may not publish. Readers therefore may not create consumers on that stream at all;
/// they read the kept events with STREAM.MSG.GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_cannot_have_the_server_push_kept_feedback_onto_other_subjects() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let store_conn = connect_as(&server, "store-default").await;
    ensure_state_stream(&store_conn).await.unwrap();
    let store = NatsPublisher::new(&store_conn);
    store
        .publish(&event(
            "default",
            "store-0",
            1,
            BackpressureLevel::Hard,
            99,
            100,
        ))
        .await
        .unwrap();
    store_conn.client.flush().await.unwrap();
    let admin = connect_as(&server, "admin").await;
    let mut feedback = admin
        .client
        .subscribe("backflow.feedback.default")
        .await
        .unwrap();
    let mut metrics = admin
        .client
        .subscribe("backflow.metrics.default")
        .await
        .unwrap();
    admin.client.flush().await.unwrap();

    for user in ["agent", "bridge"] {
        let mut probe = Probe::connect(&server, user).await;
        for target in ["backflow.metrics.default", "backflow.feedback.default"] {
            let request = serde_json::json!({
                "stream_name": "BACKFLOW_FEEDBACK",
                "config": {"deliver_subject": target, "deliver_policy": "all", "ack_policy": "none"}
            })
            .to_string();
            let inbox = probe.client.new_inbox();
            let mut answers = probe.client.subscribe(inbox.clone()).await.unwrap();
            let subject = "$JS.API.CONSUMER.CREATE.BACKFLOW_FEEDBACK";
            probe
                .client
                .publish_with_reply(subject, inbox, request.into())
                .await
                .unwrap();
            probe.client.flush().await.unwrap();
            tokio::select! {
                answer = answers.next() => {
                    let answer = answer.map(|m| String::from_utf8_lossy(&m.payload).into_owned());
                    panic!("{user} asked for a consumer delivering to {target}; the server answered {answer:?}")
                }
                _ = probe.next_violation(subject) => {}
            }
        }
    }

    // Nothing was pushed: the next message on each subject is a new one.
    store
        .publish(&event(
            "default",
            "store-0",
            2,
            BackpressureLevel::Ok,
            0,
            100,
        ))
        .await
        .unwrap();
    admin
        .client
        .publish("backflow.metrics.default", "sentinel".into())
        .await
        .unwrap();
    let first = within(WAIT, "the store's next event", feedback.next())
        .await
        .unwrap();
    let e = decode(&first.payload).unwrap();
    assert_eq!(
        (e.seq, e.level),
        (2, BackpressureLevel::Ok),
        "a replay: {e:?}"
    );
    let first = within(WAIT, "the sentinel", metrics.next()).await.unwrap();
    assert_eq!(
        &first.payload[..],
        b"sentinel",
        "feedback pushed onto metrics"
    );
}

/// Pulled rows, publish acks and JetStream answers travel on reply subjects: each role may
/// read only its own (`_INBOX_<role>`), never the shared `_INBOX.>` or another role's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_can_read_another_roles_replies() {
    let server = NatsServer::with_config("nats/accounts.conf");
    for (user, other) in [
        ("agent", "store-default"),
        ("bridge", "store-default"),
        ("store-default", "agent"),
        ("agent", "bridge"),
    ] {
        let mut probe = Probe::connect(&server, user).await;
        probe.refused_subscription("_INBOX.>").await;
        probe
            .refused_subscription(&format!("_INBOX_{other}.>"))
            .await;
        probe.refused_subscription(">").await;
    }
}
