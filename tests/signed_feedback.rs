//! Signed feedback over a real nats-server running `nats/accounts.conf`: agents that trust the
//! store's key apply only events it signed, live and from the last-value stream; a connection
//! with valid NATS credentials but without the key changes nothing; a replayed genuine event
//! is ignored by sequence.

mod common;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::HeaderMap;
use backflow::bus::FeedbackPublisher;
use backflow::bus::nats::{
    KEY_HEADER, NatsConnection, NatsOptions, NatsPublisher, SIGNATURE_HEADER, Secret,
    SigningOptions, ensure_state_stream,
};
use backflow::event::{BackpressureLevel, encode};
use backflow::metrics::Metrics;
use common::agent::{Agent, agent_on};
use common::nats::NatsServer;
use common::{event, within};
use futures_util::StreamExt;

const WAIT: Duration = Duration::from_secs(10);
const SUBJECT: &str = "backflow.feedback.default";

fn options(server: &NatsServer, user: &str, signing: SigningOptions) -> NatsOptions {
    NatsOptions {
        user: Some(user.into()),
        password: Some(Secret::new(format!("{user}-secret"))),
        inbox_prefix: Some(format!("_INBOX_{user}")),
        signing,
        ..NatsOptions::for_url(server.url())
    }
}

/// A store connection signing with a fresh key, and the key's public half.
async fn signing_store(server: &NatsServer) -> (NatsConnection, String) {
    let key = nkeys::KeyPair::new_service();
    let signing = SigningOptions {
        seed: Some(Secret::new(key.seed().unwrap())),
        ..SigningOptions::default()
    };
    let conn = options(server, "store-default", signing)
        .connect("store")
        .await
        .unwrap();
    ensure_state_stream(&conn).await.unwrap();
    (conn, key.public_key())
}

/// An agent (user `agent`) trusting `key` for every coordinator.
async fn trusting_agent(server: &NatsServer, key: &str) -> Agent {
    let signing = SigningOptions {
        trusted_keys: vec![key.to_owned()],
        ..SigningOptions::default()
    };
    let conn = options(server, "agent", signing)
        .connect("agent")
        .await
        .unwrap();
    agent_on(&conn).await
}

/// Admin: valid credentials, allowed to publish feedback, no signing key.
async fn admin(server: &NatsServer) -> async_nats::Client {
    options(server, "admin", SigningOptions::default())
        .connect("admin")
        .await
        .unwrap()
        .client
}

async fn send(store: &NatsConnection, seq: u64, level: BackpressureLevel) {
    NatsPublisher::new(store)
        .publish(&event("default", "store-0", seq, level, 0, 100))
        .await
        .unwrap();
    store.client.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_hard_without_the_signing_key_changes_nothing_and_a_signed_one_applies() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let (store, key) = signing_store(&server).await;
    let agent = trusting_agent(&server, &key).await;
    let forger = admin(&server).await;
    let mut live = forger.subscribe(SUBJECT).await.unwrap();
    forger.flush().await.unwrap();

    send(&store, 1, BackpressureLevel::Soft).await;
    agent.scale_becomes(0.5, "the signed SOFT").await;
    let genuine = within(WAIT, "the genuine event", live.next())
        .await
        .unwrap();
    let genuine_headers = genuine.headers.clone().expect("a signed event has headers");
    assert!(genuine_headers.get(SIGNATURE_HEADER).is_some());

    let hard = encode(&event(
        "default",
        "store-0",
        5,
        BackpressureLevel::Hard,
        99,
        100,
    ));
    // Unsigned.
    forger.publish(SUBJECT, hard.clone().into()).await.unwrap();
    // Signed by a key the agent does not trust.
    let other = nkeys::KeyPair::new_service();
    let mut headers = HeaderMap::new();
    let sig: String = other
        .sign(&hard)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    headers.insert(SIGNATURE_HEADER, sig.as_str());
    headers.insert(KEY_HEADER, other.public_key().as_str());
    forger
        .publish_with_headers(SUBJECT, headers, hard.clone().into())
        .await
        .unwrap();
    // The store's key and a genuine signature, of another payload.
    forger
        .publish_with_headers(SUBJECT, genuine_headers, hard.clone().into())
        .await
        .unwrap();
    forger.flush().await.unwrap();
    agent
        .counted(&agent.stats.unsigned, 1, "the unsigned event")
        .await;
    agent
        .counted(&agent.stats.untrusted_key, 1, "the untrusted key")
        .await;
    agent
        .counted(&agent.stats.bad_signature, 1, "the bad signature")
        .await;
    assert_eq!(agent.rate.scale("p"), Ok(0.5));
    assert_eq!(
        agent.stats.delivered.load(Relaxed),
        1,
        "only the genuine SOFT"
    );
    // Exported with a reason in the existing refusal counter.
    let metrics = Metrics::new().unwrap();
    metrics.register(agent.stats.clone()).unwrap();
    let scrape = metrics.render().unwrap();
    for reason in ["unsigned", "untrusted_key", "bad_signature"] {
        let series =
            format!(r#"backflow_feedback_refused_total{{reason="{reason}",transport="nats"}} 1"#);
        assert!(scrape.contains(&series), "{series} in\n{scrape}");
    }

    send(&store, 2, BackpressureLevel::Hard).await;
    agent.scale_becomes(0.0, "the signed HARD").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_genuine_old_event_is_ignored() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let (store, key) = signing_store(&server).await;
    let agent = trusting_agent(&server, &key).await;
    let replayer = admin(&server).await;
    let mut live = replayer.subscribe(SUBJECT).await.unwrap();
    replayer.flush().await.unwrap();

    send(&store, 1, BackpressureLevel::Hard).await;
    let old = within(WAIT, "the genuine HARD", live.next()).await.unwrap();
    agent.scale_becomes(0.0, "HARD").await;
    send(&store, 2, BackpressureLevel::Ok).await;
    agent.scale_becomes(1.0, "OK").await;

    replayer
        .publish_with_headers(SUBJECT, old.headers.clone().unwrap(), old.payload.clone())
        .await
        .unwrap();
    replayer.flush().await.unwrap();
    agent
        .counted(&agent.handler.out_of_order, 1, "the replay to be judged")
        .await;
    assert_eq!(
        agent.stats.delivered.load(Relaxed),
        3,
        "its signature is valid"
    );
    assert_eq!(agent.rate.scale("p"), Ok(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_from_the_last_value_stream_skips_unsigned_events() {
    let server = NatsServer::with_config("nats/accounts.conf");
    let (store, key) = signing_store(&server).await;
    send(&store, 1, BackpressureLevel::Hard).await;
    // A newer, unsigned OK lands in the last-value stream too.
    let forger = admin(&server).await;
    forger
        .publish(
            SUBJECT,
            encode(&event(
                "default",
                "store-0",
                2,
                BackpressureLevel::Ok,
                0,
                100,
            ))
            .into(),
        )
        .await
        .unwrap();
    forger.flush().await.unwrap();
    let js = async_nats::jetstream::new(forger.clone());
    within(WAIT, "both events kept", async {
        loop {
            let mut stream = js.get_stream("BACKFLOW_FEEDBACK").await.unwrap();
            if stream.info().await.unwrap().state.messages == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    let late = trusting_agent(&server, &key).await;
    late.counted(&late.stats.unsigned, 1, "the kept unsigned event")
        .await;
    late.scale_becomes(0.0, "the kept signed HARD").await;
    assert_eq!(late.stats.delivered.load(Relaxed), 1);
}
