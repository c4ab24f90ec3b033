//! The agent's `POST /feedback` endpoint: authenticates, decodes and queues events for the
//! feedback handler, and answers with what the handler made of them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::answer::Answer;
use super::auth::bearer_matches;
use super::body::{BodyError, Decoded, Encoding, parse_body};
use super::{HttpError, HttpReceiverConfig, HttpReceiverStats};
use crate::bus::Delivery;
use crate::clock::WallClock;
use crate::event::FeedbackEvent;
use crate::fleet::Observed;

/// The HTTP feedback receiver: a router for `POST /feedback` whose events come out of an
/// `mpsc::Receiver<Delivery>`, which is a [`FeedbackSubscription`](crate::bus::FeedbackSubscription)
/// for [`FeedbackHandler::run`](crate::feedback::FeedbackHandler::run).
///
/// Requests are answered with the handler's verdict: 202 `{"outcome":"applied"}` (or
/// `"left"`); 409 with `"duplicate"`, `"out_of_order"` or `"too_old"`; 401 without the
/// configured bearer token; 413 over the body limit; 415 for a content type other than
/// MessagePack or JSON; 400 `{"error": ...}` for an invalid event; 503 when the handler's
/// queue is full, it has stopped, or it does not answer in time. Only the last case can
/// follow an event that reached the handler; every other refusal happens before it.
///
/// JSON bodies without a `version` field are read as the v0 JSON body
/// (`{coordinator_id, queue_size, capacity, level, ts?, source?, reason?}`). That shape has no
/// sequence number, so the receiver numbers such events from 1 in arrival order, epoch 0, as
/// instance `source` (default `http`): they apply in the order they arrive, and a resent event
/// cannot be told from a new one. The numbering lives as long as this value, which should
/// therefore live as long as the handler it feeds.
#[derive(Debug)]
pub struct HttpReceiver {
    config: HttpReceiverConfig,
    stats: Arc<HttpReceiverStats>,
    v0_seq: Arc<Mutex<u64>>,
    wall: WallClock,
}

impl HttpReceiver {
    /// A receiver with validated `config`.
    pub fn new(config: HttpReceiverConfig) -> Result<Self, HttpError> {
        config.validate()?;
        Ok(Self {
            config,
            stats: Arc::default(),
            v0_seq: Arc::new(Mutex::new(1)),
            wall: WallClock::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &HttpReceiverConfig {
        &self.config
    }

    /// Counters of the answers given, shared by every router of this receiver.
    pub fn stats(&self) -> Arc<HttpReceiverStats> {
        self.stats.clone()
    }

    /// A router serving `POST /feedback`, to mount beside other routes (such as `/metrics`),
    /// and the channel its events come out of: give it to
    /// [`FeedbackHandler::run`](crate::feedback::FeedbackHandler::run).
    pub fn router(&self) -> (Router, mpsc::Receiver<Delivery>) {
        let (tx, rx) = mpsc::channel(self.config.queue);
        let shared = Arc::new(Shared {
            token: self.config.token.clone(),
            max_body_bytes: self.config.max_body_bytes,
            reply_timeout: Duration::from_millis(self.config.reply_timeout_ms),
            tx,
            stats: self.stats.clone(),
            v0_seq: self.v0_seq.clone(),
            wall: self.wall,
        });
        let route = post(feedback).layer(DefaultBodyLimit::max(self.config.max_body_bytes));
        let router = Router::new().route("/feedback", route).with_state(shared);
        (router, rx)
    }

    /// Binds `config.listen` and serves [`router`](Self::router) alone until `shutdown`
    /// completes, then finishes the requests in flight.
    ///
    /// Returns the bound address (useful with port 0), the channel of events, and the
    /// server task.
    pub async fn serve(
        &self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<
        (
            SocketAddr,
            mpsc::Receiver<Delivery>,
            JoinHandle<Result<(), HttpError>>,
        ),
        HttpError,
    > {
        let listen = self.config.listen;
        let bind_error = |source| HttpError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let (router, deliveries) = self.router();
        tracing::info!(%addr, "Feedback HTTP receiver listening.");
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(HttpError::Serve)
        });
        Ok((addr, deliveries, task))
    }
}

/// What every request of one router shares.
struct Shared {
    token: Option<String>,
    max_body_bytes: usize,
    reply_timeout: Duration,
    tx: mpsc::Sender<Delivery>,
    stats: Arc<HttpReceiverStats>,
    /// The next sequence number for a v0 event.
    v0_seq: Arc<Mutex<u64>>,
    wall: WallClock,
}

async fn feedback(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.answer(request).await.respond(&shared.stats)
}

impl Shared {
    async fn answer(&self, request: Request) -> Answer {
        // Cheap checks first: nothing is read from an unauthenticated client.
        let headers = request.headers();
        if let Some(token) = &self.token {
            let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
            if !bearer_matches(given, token) {
                return Answer::Unauthorized;
            }
        }
        // Kept (a cheap clone of shared bytes) because reading the body consumes the request.
        let content_type = headers.get(header::CONTENT_TYPE).cloned();
        let sent = || {
            content_type
                .as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        // Nothing is read for a type `parse_body` would refuse anyway.
        let content_type_bytes = content_type.as_ref().map(|v| v.as_bytes());
        if content_type_bytes
            .and_then(Encoding::from_content_type)
            .is_none()
        {
            return Answer::UnsupportedMediaType(sent());
        }
        let bytes = match Bytes::from_request(request, &()).await {
            Ok(bytes) => bytes,
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Answer::TooLarge(self.max_body_bytes);
            }
            Err(e) => return Answer::Invalid(format!("cannot read the body: {}", e.body_text())),
        };
        let decoded = match parse_body(content_type_bytes, &bytes) {
            Ok(decoded) => decoded,
            Err(BodyError::UnsupportedMediaType) => return Answer::UnsupportedMediaType(sent()),
            Err(BodyError::Invalid(e)) => return Answer::Invalid(e.to_string()),
        };
        let reply = match self.enqueue(decoded) {
            Ok(reply) => reply,
            Err(answer) => return answer,
        };
        match tokio::time::timeout(self.reply_timeout, reply).await {
            Ok(Ok(outcome)) => Answer::from(outcome),
            // The handler dropped the delivery unanswered: it is shutting down.
            Ok(Err(_)) => Answer::HandlerGone,
            Err(_) => Answer::TimedOut(self.reply_timeout),
        }
    }

    /// Hands the event to the handler without waiting for room in its queue.
    fn enqueue(&self, decoded: Decoded) -> Result<oneshot::Receiver<Observed>, Answer> {
        match decoded {
            Decoded::Full(event) => self.send(event),
            Decoded::V0(v0) => {
                // Numbering and queueing under one lock: v0 events reach the handler in the
                // order they were numbered, so none is taken for a late one.
                let mut next = self.v0_seq.lock().unwrap_or_else(PoisonError::into_inner);
                let reply = self.send(v0.into_event(*next, self.wall.now_ms()))?;
                *next += 1;
                Ok(reply)
            }
        }
    }

    fn send(&self, event: FeedbackEvent) -> Result<oneshot::Receiver<Observed>, Answer> {
        let (delivery, reply) = Delivery::with_reply(event);
        match self.tx.try_send(delivery) {
            Ok(()) => Ok(reply),
            Err(TrySendError::Full(_)) => Err(Answer::QueueFull),
            Err(TrySendError::Closed(_)) => Err(Answer::HandlerGone),
        }
    }
}
