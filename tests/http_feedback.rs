//! The HTTP transport against real sockets: a receiver on 127.0.0.1 feeding a real
//! `FeedbackHandler`, and a `WriteCoordinator` publishing to it through `HttpPublisher`.
//! These tests run in real time; every wait is bounded.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use backflow::bus::FeedbackPublisher;
use backflow::bus::http::{
    HttpEmitterConfig, HttpError, HttpPublisher, HttpReceiver, HttpReceiverConfig,
    HttpReceiverStats,
};
use backflow::clock::WallClock;
use backflow::coordinator::{CoordinatorConfig, WriteCoordinator};
use backflow::event::BackpressureLevel::{Hard, Ok as Fine, Soft};
use backflow::event::{encode, encode_json};
use backflow::feedback::{FeedbackHandler, HandlerStats, StepPolicy};
use backflow::fleet::FleetConfig;
use backflow::rate::{ProviderConfig, RateCoordinator};
use common::{event, within};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "s3cret";
const BEARER: Option<&str> = Some("Bearer s3cret");
const MSGPACK: Option<&str> = Some("application/msgpack");
const JSON: Option<&str> = Some("application/json");
const WAIT: Duration = Duration::from_secs(5);

/// An agent: a rate coordinator scaled by a step-policy handler fed by an HTTP receiver.
struct Agent {
    rate: RateCoordinator,
    handled: Arc<HandlerStats>,
    answered: Arc<HttpReceiverStats>,
    url: String,
    client: reqwest::Client,
    stop: CancellationToken,
    handler: JoinHandle<FeedbackHandler>,
    server: JoinHandle<Result<(), HttpError>>,
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

fn rate() -> RateCoordinator {
    let rate = RateCoordinator::new();
    rate.register_provider("ibkr", ProviderConfig::new(100, 100.0))
        .unwrap();
    rate
}

fn handler(rate: &RateCoordinator) -> FeedbackHandler {
    FeedbackHandler::new(
        rate.clone(),
        ["ibkr"],
        Box::new(StepPolicy::default()),
        FleetConfig::default(),
    )
    .unwrap()
}

/// A receiver on 127.0.0.1:0 that wants [`TOKEN`].
async fn agent() -> Agent {
    agent_with(HttpReceiverConfig {
        token: Some(TOKEN.into()),
        ..HttpReceiverConfig::default()
    })
    .await
}

async fn agent_with(config: HttpReceiverConfig) -> Agent {
    let config = HttpReceiverConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..config
    };
    let rate = rate();
    let handler = handler(&rate);
    let handled = handler.stats();
    let receiver = HttpReceiver::new(config).unwrap();
    let stop = CancellationToken::new();
    let (addr, deliveries, server) = receiver
        .serve(stop.clone().cancelled_owned())
        .await
        .unwrap();
    let handler = tokio::spawn(handler.run(deliveries, stop.clone().cancelled_owned()));
    Agent {
        rate,
        handled,
        answered: receiver.stats(),
        url: format!("http://{addr}/feedback"),
        client: client(),
        stop,
        handler,
        server,
    }
}

/// POSTs `body` to `url` with the given headers; the status and the JSON body.
async fn post_to(
    client: &reqwest::Client,
    url: &str,
    content_type: Option<&str>,
    authorization: Option<&str>,
    body: impl Into<Vec<u8>>,
) -> (u16, Value) {
    let mut request = client.post(url).body(body.into());
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    if let Some(auth) = authorization {
        request = request.header("authorization", auth);
    }
    let response = within(WAIT, "the response", request.send()).await.unwrap();
    let status = response.status().as_u16();
    let bytes = within(WAIT, "the response body", response.bytes())
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

impl Agent {
    async fn post(
        &self,
        content_type: Option<&str>,
        authorization: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> (u16, Value) {
        post_to(&self.client, &self.url, content_type, authorization, body).await
    }

    /// The provider's scale and the events the handler applied.
    fn state(&self) -> (f64, u64) {
        (
            self.rate.scale("ibkr").unwrap(),
            self.handled.applied.load(Relaxed),
        )
    }

    /// Stops the server and the handler; the handler, to inspect.
    async fn shutdown(self) -> FeedbackHandler {
        self.stop.cancel();
        within(WAIT, "the server to stop", self.server)
            .await
            .unwrap()
            .unwrap();
        within(WAIT, "the handler to stop", self.handler)
            .await
            .unwrap()
    }
}

/// Asserts that a rejected request reached neither the handler nor the rate coordinator.
fn assert_unchanged(agent: &Agent, before: (f64, u64), what: &str) {
    assert_eq!(agent.state(), before, "{what} must change nothing");
}

fn seed(level: &str, source: Option<&str>, ts: Option<f64>) -> Vec<u8> {
    let mut body = json!({
        "coordinator_id": "default", "queue_size": 800, "capacity": 1000, "level": level,
    });
    if let Some(source) = source {
        body["source"] = json!(source);
    }
    if let Some(ts) = ts {
        body["ts"] = json!(ts);
    }
    body.to_string().into_bytes()
}

fn now_secs() -> f64 {
    WallClock::new().now_ms() as f64 / 1000.0
}

#[tokio::test]
async fn msgpack_events_are_applied_and_answered_202() {
    let a = agent().await;
    let (status, body) = a
        .post(
            MSGPACK,
            BEARER,
            encode(&event("default", "a", 1, Soft, 800, 1000)),
        )
        .await;
    assert_eq!((status, body), (202, json!({"outcome": "applied"})));
    assert_eq!(a.state(), (0.5, 1));
    let (status, _) = a
        .post(
            Some("application/x-msgpack"),
            Some("bearer s3cret"),
            encode(&event("default", "a", 2, Hard, 900, 1000)),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(a.state(), (0.0, 2));
    assert_eq!(a.answered.accepted.load(Relaxed), 2);
    a.shutdown().await;
}

#[tokio::test]
async fn full_json_events_are_applied() {
    let a = agent().await;
    let (status, body) = a
        .post(
            Some("application/json; charset=utf-8"),
            BEARER,
            encode_json(&event("default", "a", 1, Hard, 900, 1000)),
        )
        .await;
    assert_eq!((status, body), (202, json!({"outcome": "applied"})));
    assert_eq!(a.state(), (0.0, 1));
    let mut bye = event("default", "a", 2, Fine, 0, 1000);
    bye.leaving = true;
    let (status, body) = a.post(JSON, BEARER, encode_json(&bye)).await;
    assert_eq!((status, body), (202, json!({"outcome": "left"})));
    assert_eq!(a.state().0, 1.0);
    a.shutdown().await;
}

#[tokio::test]
async fn seed_json_events_apply_in_arrival_order() {
    let a = agent().await;
    let (status, body) = a
        .post(
            JSON,
            BEARER,
            seed("SOFT", Some("store-py"), Some(now_secs())),
        )
        .await;
    assert_eq!((status, body), (202, json!({"outcome": "applied"})));
    assert_eq!(a.state(), (0.5, 1));
    // No ts: stamped on arrival. Numbered after the first, so it wins.
    let (status, _) = a
        .post(JSON, BEARER, seed("Ok", Some("store-py"), None))
        .await;
    assert_eq!(status, 202);
    assert_eq!(a.state(), (1.0, 2));
    // The seed's shape has no sequence number: a resent event is a new event.
    let (status, _) = a
        .post(JSON, BEARER, seed("Ok", Some("store-py"), None))
        .await;
    assert_eq!(status, 202);
    // Without a source the instance is `http`, a second instance of `default`.
    let (status, _) = a.post(JSON, BEARER, seed("hard", None, None)).await;
    assert_eq!(status, 202);
    assert_eq!(a.state(), (0.0, 4));
    let handler = a.shutdown().await;
    assert_eq!(handler.signal().instances, 2);
}

#[tokio::test]
async fn missing_or_wrong_token_is_401_and_applies_nothing() {
    let a = agent().await;
    let before = a.state();
    let body = encode(&event("default", "a", 1, Hard, 900, 1000));
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cre"),
        Some("Bearer s3cret0"),
        Some("Basic s3cret"),
        Some("s3cret"),
    ] {
        let (status, reply) = a.post(MSGPACK, auth, body.clone()).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(reply["error"], "missing or invalid bearer token");
        assert_unchanged(&a, before, "a request without the token");
    }
    assert_eq!(a.answered.unauthorized.load(Relaxed), 6);
    // The same body with the token is fine.
    assert_eq!(a.post(MSGPACK, BEARER, body).await.0, 202);
    a.shutdown().await;
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let a = agent().await;
    let before = a.state();
    let limit = HttpReceiverConfig::default().max_body_bytes;
    let mut exact = encode_json(&event("default", "a", 1, Soft, 800, 1000)).into_bytes();
    exact.resize(limit, b' ');
    let mut over = exact.clone();
    over.push(b' ');
    let (status, reply) = a.post(JSON, BEARER, over).await;
    assert_eq!(status, 413);
    assert_eq!(reply["error"], format!("body larger than {limit} bytes"));
    assert_unchanged(&a, before, "an oversize body");
    assert_eq!(a.answered.too_large.load(Relaxed), 1);
    // Exactly at the limit is accepted.
    assert_eq!(a.post(JSON, BEARER, exact).await.0, 202);
    assert_eq!(a.state(), (0.5, 1));
    a.shutdown().await;
}

#[tokio::test]
async fn malformed_or_invalid_bodies_are_400_with_a_reason() {
    let a = agent().await;
    let before = a.state();
    let good = serde_json::to_value(event("default", "a", 1, Soft, 800, 1000)).unwrap();
    let full_with = |key: &str, value: Value| {
        let mut v = good.clone();
        v[key] = value;
        v
    };
    let cases: Vec<(Option<&str>, Vec<u8>, &str)> = vec![
        (MSGPACK, b"\xc1garbage".to_vec(), "malformed"),
        (MSGPACK, Vec::new(), "malformed"),
        (
            MSGPACK,
            encode_json(&event("default", "a", 1, Soft, 1, 2)).into_bytes(),
            "malformed",
        ),
        (JSON, b"{not json".to_vec(), "malformed"),
        (JSON, b"[1, 2]".to_vec(), "malformed"),
        (
            JSON,
            br#"{"coordinator_id":"default","level":"SOFT"}"#.to_vec(),
            "malformed",
        ),
        (
            JSON,
            full_with("version", json!(2)).to_string().into_bytes(),
            "version 2",
        ),
        (
            JSON,
            full_with("seq", json!(0)).to_string().into_bytes(),
            "invalid seq",
        ),
        (
            JSON,
            full_with("coordinator_id", json!("a.b"))
                .to_string()
                .into_bytes(),
            "invalid coordinator_id",
        ),
        (
            MSGPACK,
            rmp_serde::to_vec_named(&full_with("instance_id", json!("pod 1"))).unwrap(),
            "invalid instance_id",
        ),
        (JSON, seed("SOFT", Some("a*"), None), "invalid source"),
        (JSON, seed("SOFT", None, Some(-5.0)), "invalid ts"),
    ];
    for (content_type, body, reason) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let (status, reply) = a.post(content_type, BEARER, body).await;
        assert_eq!(status, 400, "{shown}");
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(reason),
            "{shown}: {error:?} lacks {reason:?}"
        );
        assert_unchanged(&a, before, "an invalid body");
    }
    assert_eq!(a.answered.invalid.load(Relaxed), 12);
    assert_eq!(a.handled.received.load(Relaxed), 0);
    a.shutdown().await;
}

#[tokio::test]
async fn unknown_level_is_400_in_every_encoding() {
    let a = agent().await;
    let before = a.state();
    let mut full = serde_json::to_value(event("default", "a", 1, Soft, 800, 1000)).unwrap();
    full["level"] = json!("medium");
    for (content_type, body) in [
        (MSGPACK, rmp_serde::to_vec_named(&full).unwrap()),
        (JSON, full.to_string().into_bytes()),
        (JSON, seed("MEDIUM", None, None)),
    ] {
        let (status, reply) = a.post(content_type, BEARER, body).await;
        assert_eq!(status, 400);
        let error = reply["error"].as_str().unwrap_or_default();
        assert!(error.contains("unknown backpressure level"), "{error}");
        assert_unchanged(&a, before, "an unknown level");
    }
    a.shutdown().await;
}

#[tokio::test]
async fn other_content_types_are_415() {
    let a = agent().await;
    let before = a.state();
    let body = encode(&event("default", "a", 1, Hard, 900, 1000));
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/xml"),
        Some("msgpack"),
    ] {
        let (status, reply) = a.post(content_type, BEARER, body.clone()).await;
        assert_eq!(status, 415, "{content_type:?}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap()
                .contains("unsupported content type")
        );
        assert_unchanged(&a, before, "an unsupported content type");
    }
    assert_eq!(a.answered.unsupported_media_type.load(Relaxed), 4);
    a.shutdown().await;
}

#[tokio::test]
async fn duplicate_late_and_stale_events_are_409_and_change_nothing() {
    let a = agent().await;
    let soft = encode(&event("default", "a", 2, Soft, 800, 1000));
    assert_eq!(a.post(MSGPACK, BEARER, soft.clone()).await.0, 202);
    let before = a.state();
    assert_eq!(before, (0.5, 1));
    let mut stale = event("default", "a", 3, Hard, 900, 1000);
    stale.timestamp_ms -= 60_000;
    for (body, outcome) in [
        (soft, "duplicate"),
        (
            encode(&event("default", "a", 1, Hard, 900, 1000)),
            "out_of_order",
        ),
        (encode(&stale), "too_old"),
    ] {
        let (status, reply) = a.post(MSGPACK, BEARER, body).await;
        assert_eq!(status, 409, "{outcome}");
        assert_eq!(reply["outcome"], outcome);
        assert_eq!(reply["error"], format!("event ignored: {outcome}"));
        assert_unchanged(&a, before, outcome);
    }
    assert_eq!(a.answered.ignored.load(Relaxed), 3);
    a.shutdown().await;
}

#[tokio::test]
async fn no_token_configured_accepts_any_request() {
    let a = agent_with(HttpReceiverConfig::default()).await;
    let body = encode(&event("default", "a", 1, Soft, 800, 1000));
    assert_eq!(a.post(MSGPACK, None, body).await.0, 202);
    assert_eq!(a.state(), (0.5, 1));
    a.shutdown().await;
}

/// The router mounted beside another route, with nobody or a slow handler behind it.
#[tokio::test]
async fn unanswered_events_are_503() {
    let receiver = HttpReceiver::new(HttpReceiverConfig {
        queue: 1,
        reply_timeout_ms: 200,
        ..HttpReceiverConfig::default()
    })
    .unwrap();
    let (feedback, held) = receiver.router();
    let router = feedback.route("/metrics", axum::routing::get(|| async { "metrics" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );
    let client = client();
    let url = format!("http://{addr}/feedback");
    let metrics = within(
        WAIT,
        "metrics",
        client.get(format!("http://{addr}/metrics")).send(),
    )
    .await
    .unwrap();
    assert_eq!(metrics.text().await.unwrap(), "metrics");

    // Nobody reads the channel: the first event waits out the reply timeout in the queue...
    let body = |seq| encode(&event("default", "a", seq, Soft, 800, 1000));
    let (status, reply) = post_to(&client, &url, MSGPACK, None, body(1)).await;
    assert_eq!(status, 503);
    assert_eq!(
        reply["error"],
        "feedback handler did not answer within 200 ms"
    );
    // ...and fills it, so the next is refused at once.
    let (status, reply) = post_to(&client, &url, MSGPACK, None, body(2)).await;
    assert_eq!(
        (status, reply),
        (503, json!({"error": "feedback queue is full"}))
    );
    // Once the handler is gone, events are refused without waiting.
    drop(held);
    let (status, reply) = post_to(&client, &url, MSGPACK, None, body(3)).await;
    assert_eq!(
        (status, reply),
        (503, json!({"error": "feedback handler is not running"}))
    );

    let stats = receiver.stats();
    assert_eq!(stats.unanswered.load(Relaxed), 2);
    assert_eq!(stats.queue_full.load(Relaxed), 1);
    stop.cancel();
    within(WAIT, "the server to stop", server)
        .await
        .unwrap()
        .unwrap();
}

/// The whole loop over HTTP: a store whose level moves drives the agent's scale.
#[tokio::test]
async fn write_coordinator_drives_the_agent_scale_over_http() {
    let a = agent().await;
    let publisher = HttpPublisher::new(&HttpEmitterConfig {
        urls: vec![a.url.clone()],
        token: Some(TOKEN.into()),
        timeout_ms: 1_000,
    })
    .unwrap();
    let sink = Arc::new(common::sink::TestSink::default());
    sink.hold();
    let store: WriteCoordinator<u64> = WriteCoordinator::builder(
        CoordinatorConfig {
            capacity: 100,
            workers: 1,
            batch_size: 200,
            flush_interval_ms: 10_000,
            ..CoordinatorConfig::default()
        },
        sink,
    )
    .publisher(Arc::new(publisher))
    .start()
    .unwrap();
    for (backlog, scale) in [(60u64, 0.5), (85, 0.0), (70, 0.5), (10, 1.0), (85, 0.0)] {
        store.set_external_backlog(backlog);
        within(WAIT, "the agent's scale to follow the store", async {
            while a.rate.scale("ibkr") != Ok(scale) {
                sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
    // A clean stop says goodbye: the agent forgets the store and runs at full rate again.
    store.stop(false, Duration::from_secs(1)).await;
    within(WAIT, "the goodbye", async {
        while a.handled.left.load(Relaxed) == 0 {
            sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(a.rate.scale("ibkr"), Ok(1.0));
    let stats = store.stats();
    assert_eq!(stats.publish_errors, 0);
    assert!(stats.events_published >= 7, "{stats:?}");
    assert_eq!(a.answered.rejected(), 0);
    a.shutdown().await;
}

#[tokio::test]
async fn publisher_errors_name_the_url_and_status() {
    let a = agent().await;
    // A port nobody listens on.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        format!("http://{}/feedback", listener.local_addr().unwrap())
    };
    let publisher = |urls: Vec<String>, token: Option<&str>| {
        HttpPublisher::new(&HttpEmitterConfig {
            urls,
            token: token.map(str::to_owned),
            timeout_ms: 1_000,
        })
        .unwrap()
    };

    let e = event("default", "a", 1, Soft, 800, 1000);
    let wrong = publisher(vec![a.url.clone()], Some("wrong"));
    let err = within(WAIT, "publish", wrong.publish(&e))
        .await
        .unwrap_err();
    assert!(err.source.to_string().contains(&a.url), "{err}");
    assert!(err.source.to_string().contains("401"), "{err}");
    assert!(
        err.source
            .to_string()
            .contains("missing or invalid bearer token"),
        "{err}"
    );
    assert_eq!(a.state(), (1.0, 0));

    // One receiver up, one down: the live one gets the event, the error names the other.
    let both = publisher(vec![closed.clone(), a.url.clone()], Some(TOKEN));
    let err = within(WAIT, "publish", both.publish(&e)).await.unwrap_err();
    assert!(err.source.to_string().contains(&closed), "{err}");
    assert!(!err.source.to_string().contains(&a.url), "{err}");
    assert_eq!(a.state(), (0.5, 1));

    // A receiver that already has the event answers 409: delivered, not an error.
    let good = publisher(vec![a.url.clone()], Some(TOKEN));
    within(WAIT, "publish", good.publish(&e)).await.unwrap();
    assert_eq!(a.answered.ignored.load(Relaxed), 1);
    assert_eq!(a.state(), (0.5, 1));
    a.shutdown().await;
}

#[tokio::test]
async fn publisher_gives_up_on_a_silent_receiver_after_its_timeout() {
    // Connections are accepted by the kernel, but nobody ever answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/feedback", silent.local_addr().unwrap());
    let publisher = HttpPublisher::new(&HttpEmitterConfig {
        urls: vec![url.clone()],
        token: None,
        timeout_ms: 200,
    })
    .unwrap();
    let e = event("default", "a", 1, Soft, 800, 1000);
    let err = within(WAIT, "publish", publisher.publish(&e))
        .await
        .unwrap_err();
    assert_eq!(
        err.source.to_string(),
        format!("POST {url}: timed out after 200ms")
    );
}

#[tokio::test]
async fn publisher_fans_out_to_every_url() {
    let (a, b) = (agent().await, agent().await);
    let publisher = HttpPublisher::new(&HttpEmitterConfig {
        urls: vec![a.url.clone(), b.url.clone()],
        token: Some(TOKEN.into()),
        timeout_ms: 1_000,
    })
    .unwrap();
    assert_eq!(publisher.urls().len(), 2);
    let e = event("default", "a", 1, Hard, 900, 1000);
    within(WAIT, "publish", publisher.publish(&e))
        .await
        .unwrap();
    assert_eq!(a.state(), (0.0, 1));
    assert_eq!(b.state(), (0.0, 1));
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn configs_read_with_defaults_and_reject_unknown_keys() {
    let receiver: HttpReceiverConfig =
        serde_json::from_value(json!({"listen": "127.0.0.1:9000", "token": "t"})).unwrap();
    assert_eq!(receiver.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(receiver.max_body_bytes, 16 * 1024);
    assert!(receiver.validate().is_ok());
    let err = serde_json::from_value::<HttpReceiverConfig>(json!({"tokn": "t"})).unwrap_err();
    assert!(err.to_string().contains("tokn"), "{err}");

    let emitter: HttpEmitterConfig =
        serde_json::from_value(json!({"urls": ["https://agent:8443/feedback"]})).unwrap();
    assert_eq!(emitter.timeout_ms, 2_000);
    assert!(HttpPublisher::new(&emitter).is_ok());
    for urls in [
        json!([]),
        json!(["ftp://agent/feedback"]),
        json!(["agent:8080"]),
    ] {
        let bad: HttpEmitterConfig = serde_json::from_value(json!({ "urls": urls })).unwrap();
        let err = HttpPublisher::new(&bad).unwrap_err();
        assert!(
            matches!(err, HttpError::Config(ref e) if e.key == "urls"),
            "{err}"
        );
    }
    assert!(serde_json::from_value::<HttpEmitterConfig>(json!({"url": []})).is_err());
}
