//! The agent side of the NATS transport: live feedback subjects plus the last-value stream,
//! re-read after every reconnection, read in the task of whoever polls them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::HeaderMap;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream, SelectAll, select_all};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::NatsError;
use super::connection::NatsConnection;
use super::signing::Refusal;
use super::state::{Kept, read_state};
use crate::bus::read_refusals;
use crate::bus::{Delivery, FeedbackSubscription, Interest};
use crate::error::Chain;
use crate::event::{FeedbackEvent, decode};
use crate::telemetry::{Probe, Readings};

/// What the subscriber saw, for metrics.
#[derive(Debug, Default)]
pub struct SubscriberStats {
    /// Messages received (live and from the last-value stream).
    pub received: AtomicU64,
    /// Events handed to the handler.
    pub delivered: AtomicU64,
    /// Messages that were not valid feedback events.
    pub decode_errors: AtomicU64,
    /// Events whose subject does not name their coordinator (or is not a feedback subject).
    pub invalid_subject: AtomicU64,
    /// Messages larger than `max_event_bytes`.
    pub oversize: AtomicU64,
    /// Events without a signature while keys are trusted (`nats.signing`).
    pub unsigned: AtomicU64,
    /// Events signed by a key not trusted for their coordinator.
    pub untrusted_key: AtomicU64,
    /// Events whose signature does not match.
    pub bad_signature: AtomicU64,
    /// Reads of the last-value stream.
    pub state_reads: AtomicU64,
    /// Failed reads of the last-value stream.
    pub state_errors: AtomicU64,
}

impl Probe for SubscriberStats {
    fn read(&self, out: &mut Readings) {
        read_refusals(
            out,
            "nats",
            &self.decode_errors,
            &[
                ("invalid_subject", &self.invalid_subject),
                ("oversize", &self.oversize),
                ("unsigned", &self.unsigned),
                ("untrusted_key", &self.untrusted_key),
                ("bad_signature", &self.bad_signature),
            ],
        );
    }
}

/// Logs a repeated warning at most once per period, with the number suppressed.
struct Throttled {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(suppressed since the last log)` when it is time to log again.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Receives feedback from NATS.
pub struct NatsSubscriber {
    conn: NatsConnection,
    stats: Arc<SubscriberStats>,
    bad_input: Throttled,
}

/// Subscribes to the feedback subjects of `interest`; returns the subjects and their
/// subscriptions.
async fn subscribe(
    conn: &NatsConnection,
    interest: &Interest,
) -> Result<(Vec<String>, Vec<async_nats::Subscriber>), NatsError> {
    let subjects = match interest {
        Interest::All => vec![conn.subjects.all_feedback()],
        Interest::Only(ids) => ids.iter().map(|id| conn.subjects.feedback(id)).collect(),
    };
    let subs = subscribe_each(conn, &subjects).await?;
    Ok((subjects, subs))
}

/// One subscription per subject, the first failure naming its subject (feedback and demand).
pub(super) async fn subscribe_each(
    conn: &NatsConnection,
    subjects: &[String],
) -> Result<Vec<async_nats::Subscriber>, NatsError> {
    let mut subs = Vec::with_capacity(subjects.len());
    for s in subjects {
        subs.push(conn.client.subscribe(s.clone()).await.map_err(|source| {
            NatsError::Subscribe {
                subject: s.clone(),
                source,
            }
        })?);
    }
    Ok(subs)
}

impl SubscriberStats {
    /// The counter of a signature refusal (feedback and demand count them alike).
    pub(super) fn refused(&self, refusal: Refusal) -> &AtomicU64 {
        match refusal {
            Refusal::Unsigned => &self.unsigned,
            Refusal::UntrustedKey => &self.untrusted_key,
            Refusal::BadSignature => &self.bad_signature,
        }
    }
}

impl NatsSubscriber {
    /// Subscribes to the coordinators in `interest` and returns the stream of their events:
    /// first the kept events of the last-value stream (as one batch, which the handler takes
    /// in whole before asking its policy), then live events, and the kept events again after
    /// each reconnection. Returns once the server has the subscriptions.
    ///
    /// The stream does its work in the task that polls it (the handler's): no task or channel
    /// of its own stands between the connection and the handler, so each event costs one
    /// wake-up. Only the last-value reads run in a task beside it, which dropping the stream
    /// stops.
    ///
    /// Which events apply is the reader's business ([`Interest`] in the handler): this only
    /// refuses messages that are oversized, undecodable, on a subject that does not name their
    /// coordinator, or wrongly signed.
    pub async fn start(
        conn: &NatsConnection,
        interest: Interest,
    ) -> Result<(NatsSubscription, Arc<SubscriberStats>), NatsError> {
        let (subjects, subs) = subscribe(conn, &interest).await?;
        // Until the server has the subscriptions, events published elsewhere would miss us:
        // a round trip makes `start` return only once they are in force.
        round_trip(&conn.client).await;
        let stats = Arc::new(SubscriberStats::default());
        let mut connected = conn.connected.clone();
        connected.borrow_and_update();
        // One waiter on the connection's watch for the stream's life: a `changed()` made anew
        // in every `next()` would lock the watch's waiter list to register and again to drop.
        let reconnections = stream::unfold(connected, |mut connected| async move {
            connected.changed().await.ok()?;
            Some(((), connected))
        })
        .boxed();
        let (kept_tx, kept_rx) = mpsc::channel(16);
        let me = Self {
            conn: conn.clone(),
            stats: stats.clone(),
            bad_input: Throttled::new(Duration::from_secs(10)),
        };
        let reader = me.read(&subjects, &kept_tx);
        let subscription = NatsSubscription {
            subscriber: me,
            live: Live::of(subs),
            subjects,
            reconnections,
            kept_tx,
            kept_rx,
            reader,
            batch: VecDeque::new(),
        };
        Ok((subscription, stats))
    }

    /// Starts reading the last values of `subjects` into `out`.
    fn read(&self, subjects: &[String], out: &mpsc::Sender<Vec<Kept>>) -> AbortHandle {
        let task = tokio::spawn(read_all(
            self.conn.clone(),
            subjects.to_vec(),
            out.clone(),
            self.stats.clone(),
        ));
        task.abort_handle()
    }

    /// Decodes and checks one message; counts and (rarely) logs what it rejects.
    fn accept(
        &mut self,
        subject: &str,
        payload: &Bytes,
        headers: Option<&HeaderMap>,
    ) -> Option<FeedbackEvent> {
        let outcome = match self.check(subject, payload, headers) {
            Ok(e) => {
                self.stats.delivered.fetch_add(1, Relaxed);
                Some(e)
            }
            Err((counter, reason)) => {
                counter.fetch_add(1, Relaxed);
                if let Some(suppressed) = self.bad_input.due() {
                    tracing::warn!(%subject, %reason, suppressed, "Ignored a feedback message.");
                }
                None
            }
        };
        // Counted after the outcome, so whoever sees `received` grow also sees why.
        self.stats.received.fetch_add(1, Relaxed);
        outcome
    }

    /// The event, or the counter to bump and why: size first (before any parsing), then
    /// decoding, the subject naming the event's coordinator, and its signature.
    fn check(
        &self,
        subject: &str,
        payload: &Bytes,
        headers: Option<&HeaderMap>,
    ) -> Result<FeedbackEvent, (&AtomicU64, String)> {
        let (stats, limit) = (&self.stats, self.conn.options.max_event_bytes);
        if payload.len() > limit {
            let reason = format!("{} bytes (limit {limit})", payload.len());
            return Err((&stats.oversize, reason));
        }
        let e = decode(payload).map_err(|e| (&stats.decode_errors, e.to_string()))?;
        let id = e.coordinator_id.as_str();
        if self.conn.subjects.coordinator_of(subject) != Some(id) {
            let reason = format!("event of coordinator {id} on subject {subject}");
            return Err((&stats.invalid_subject, reason));
        }
        if let Some(verifier) = &self.conn.verifier {
            verifier.check(id, payload, headers).map_err(|refusal| {
                (
                    stats.refused(refusal),
                    format!("event of coordinator {id} refused: {refusal:?}"),
                )
            })?;
        }
        Ok(e)
    }
}

/// Feedback events from NATS, checked, as a [`FeedbackSubscription`]; from
/// [`NatsSubscriber::start`].
pub struct NatsSubscription {
    subscriber: NatsSubscriber,
    live: Live,
    subjects: Vec<String>,
    /// Yields at every reconnection; ends when the connection is gone.
    reconnections: BoxStream<'static, ()>,
    // Last values are read beside the live subscription, never in front of it: a slow or
    // unavailable JetStream must not delay a level change. Events from both paths are
    // ordered per instance by the fleet view.
    kept_tx: mpsc::Sender<Vec<Kept>>,
    kept_rx: mpsc::Receiver<Vec<Kept>>,
    reader: AbortHandle,
    /// The rest of a batch of kept events, handed out one per call.
    batch: VecDeque<Delivery>,
}

#[async_trait]
impl FeedbackSubscription for NatsSubscription {
    // Cancel-safe, as the handler needs (it drops this future when a timer fires): every
    // await is a cancel-safe receive, and nothing received is held across one.
    async fn next(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.batch.pop_front() {
                return Some(delivery);
            }
            tokio::select! {
                msg = self.live.next() => {
                    let msg = msg?;
                    let accepted = self.subscriber.accept(&msg.subject, &msg.payload, msg.headers.as_ref());
                    if let Some(event) = accepted {
                        return Some(Delivery::new(event));
                    }
                }
                Some(kept) = self.kept_rx.recv() => {
                    let events: Vec<FeedbackEvent> = kept
                        .into_iter()
                        .filter_map(|(subject, payload, headers)| {
                            self.subscriber.accept(&subject, &payload, headers.as_ref())
                        })
                        .collect();
                    let last = events.len().saturating_sub(1);
                    self.batch.extend(events.into_iter().enumerate().map(|(i, e)| {
                        if i < last { Delivery::in_batch(e) } else { Delivery::new(e) }
                    }));
                }
                reconnected = self.reconnections.next() => {
                    reconnected?;
                    self.reader.abort();
                    self.reader = self.subscriber.read(&self.subjects, &self.kept_tx);
                }
            }
        }
    }
}

/// The live subscriptions: the one an agent following one coordinator has, polled as it is, or
/// several merged (a `SelectAll` of one costs a task-set's bookkeeping and a wake-up
/// indirection on every event).
enum Live {
    One(async_nats::Subscriber),
    Many(SelectAll<async_nats::Subscriber>),
}

impl Live {
    fn of(mut subs: Vec<async_nats::Subscriber>) -> Self {
        match subs.len() {
            1 => Self::One(subs.remove(0)),
            _ => Self::Many(select_all(subs)),
        }
    }
}

impl futures_util::Stream for Live {
    type Item = async_nats::Message;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.get_mut() {
            Self::One(s) => s.poll_next_unpin(cx),
            Self::Many(s) => s.poll_next_unpin(cx),
        }
    }
}

impl Drop for NatsSubscription {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Reads the kept events of every subject and queues each subject's as one batch.
async fn read_all(
    conn: NatsConnection,
    subjects: Vec<String>,
    out: mpsc::Sender<Vec<Kept>>,
    stats: Arc<SubscriberStats>,
) {
    for s in subjects {
        stats.state_reads.fetch_add(1, Relaxed);
        match read_state(&conn, &s).await {
            Ok(kept) => {
                tracing::debug!(subject = %s, events = kept.len(), "Read last feedback values.");
                if out.send(kept).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                stats.state_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %Chain(&error), "Cannot read last feedback values; waiting for live events.");
            }
        }
    }
}

/// Returns once the server has processed everything this client sent before (it handles a
/// connection's commands in order, so any answer to a request proves the subscriptions sent
/// before it are in force; `Client::flush` only empties the local write buffer). The request
/// is `$JS.API.INFO`, which every role in `nats/accounts.conf` may send and every server
/// answers (an account without JetStream answers "no responders"). If nothing answers within
/// 2 s (a user not allowed to send it), `start` goes on without the guarantee.
async fn round_trip(client: &async_nats::Client) {
    let request = client.request("$JS.API.INFO", Bytes::new());
    if tokio::time::timeout(Duration::from_secs(2), request)
        .await
        .is_err()
    {
        tracing::debug!("No answer to $JS.API.INFO; subscriptions may take a moment to apply.");
    }
}
