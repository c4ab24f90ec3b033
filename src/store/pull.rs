//! The store's feeder: pulls at most the queue's free room from the JetStream consumer, and
//! keeps the consumer's pending rows counted in the queue's level.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::consumer::pull::Batch;
use futures_util::StreamExt;
use tokio::time::{sleep, timeout};

use super::config::StoreConfig;
use super::pending::Pending;
use crate::coordinator::WriteCoordinator;
use crate::error::Chain;
use crate::market::Bar;

/// What the feeder took from the consumer.
#[derive(Debug, Default)]
pub(crate) struct PullCounters {
    pub(crate) received: AtomicU64,
    pub(crate) rows: AtomicU64,
    pub(crate) poison: AtomicU64,
}

impl PullCounters {
    /// Average rows per message received so far.
    fn rows_per_message(&self) -> Option<f64> {
        let messages = self
            .received
            .load(Relaxed)
            .saturating_sub(self.poison.load(Relaxed));
        (messages > 0).then(|| self.rows.load(Relaxed) as f64 / messages as f64)
    }
}

/// Pulls from one consumer into one coordinator.
pub(crate) struct Puller<'a> {
    pub(crate) consumer: &'a PullConsumer,
    pub(crate) coordinator: &'a WriteCoordinator<Pending>,
    pub(crate) client: &'a async_nats::Client,
    /// Where undecodable messages go.
    pub(crate) dead_subject: String,
    pub(crate) config: &'a StoreConfig,
    pub(crate) counters: &'a PullCounters,
}

/// Why a batch of messages stopped being read.
enum Taken {
    /// It was read to its end (or ended early): `n` messages.
    Messages(u64),
    /// The coordinator is closed: the store is stopping.
    Closed,
}

impl Puller<'_> {
    /// Pulls at most the queue's free room at a time, until the coordinator closes.
    ///
    /// Messages carry up to `rows_per_message` rows each: a pull asks for what fits, and takes
    /// only what is there (no wait). Long polls (`expires`) are avoided on purpose: nats-server
    /// 2.9 may neither fill nor expire a partly served pull request, which left stores idle for
    /// the client's 5 s safety timer while rows piled up in the stream. An empty stream is
    /// polled again after a pause that doubles from 1 ms up to `idle_poll_ms`.
    pub(crate) async fn run(&self) {
        let idle_ceiling = Duration::from_millis(self.config.idle_poll_ms);
        let mut unanswered = 0u64;
        let mut idle_wait = Duration::ZERO;
        loop {
            let free = self.coordinator.free_capacity() as usize;
            if free == 0 {
                self.coordinator.wait_for_room().await;
                continue;
            }
            let per_message = self.config.rows_per_message.max(1);
            let wanted = (free / per_message).clamp(1, self.config.fetch_batch);
            let Some(batch) = self.request(wanted).await else {
                continue;
            };
            let got = match self.take(batch, &mut unanswered).await {
                Taken::Messages(n) => n,
                Taken::Closed => return,
            };
            idle_wait = if got == 0 {
                (idle_wait * 2).clamp(Duration::from_millis(1), idle_ceiling)
            } else {
                Duration::ZERO
            };
            if !idle_wait.is_zero() {
                sleep(idle_wait).await;
            }
        }
    }

    /// Asks for up to `wanted` messages without waiting for more; `None` to ask again.
    async fn request(&self, wanted: usize) -> Option<Batch> {
        let answer_within = Duration::from_millis(self.config.pull_timeout_ms);
        let fetch = self.consumer.fetch().max_messages(wanted).messages();
        match timeout(answer_within, fetch).await {
            Ok(Ok(batch)) => Some(batch),
            Ok(Err(error)) => {
                tracing::warn!(error = %Chain(&error), "Pull request failed; retrying.");
                sleep(Duration::from_millis(500)).await;
                None
            }
            Err(_) => None,
        }
    }

    /// Submits every row of `batch` to the coordinator.
    async fn take(&self, mut batch: Batch, unanswered: &mut u64) -> Taken {
        let answer_within = Duration::from_millis(self.config.pull_timeout_ms);
        let mut got = 0;
        loop {
            // A request sent just before a disconnect, or while the consumer's leader is being
            // elected, is never answered, and a no-wait fetch has no timer of its own: without
            // this deadline the store would stop pulling for good.
            let message = match timeout(answer_within, batch.next()).await {
                Ok(Some(Ok(m))) => m,
                Ok(None) => return Taken::Messages(got),
                Ok(Some(Err(error))) => {
                    tracing::debug!(error = %Chain(&*error), "Pull batch ended with an error.");
                    return Taken::Messages(got);
                }
                Err(_) => {
                    *unanswered += 1;
                    if unanswered.is_power_of_two() {
                        tracing::warn!(
                            unanswered = *unanswered,
                            "A pull request got no answer; asking again."
                        );
                    }
                    return Taken::Messages(got);
                }
            };
            self.counters.received.fetch_add(1, Relaxed);
            got += 1;
            if !self.submit(message).await {
                return Taken::Closed;
            }
        }
    }

    /// Submits one message's rows; dead-letters a message that holds no rows. False once the
    /// coordinator is closed.
    async fn submit(&self, message: async_nats::jetstream::Message) -> bool {
        let (message, acker) = message.split();
        match Bar::decode_batch(&message.payload) {
            Ok(bars) => {
                self.counters.rows.fetch_add(bars.len() as u64, Relaxed);
                for row in Pending::from_message(bars, acker) {
                    if self.coordinator.submit(row).await.is_err() {
                        return false;
                    }
                }
            }
            Err(error) => {
                self.counters.poison.fetch_add(1, Relaxed);
                tracing::warn!(error = %Chain(&error), subject = %message.subject, "Poison message dead-lettered.");
                let _ = self
                    .client
                    .publish(self.dead_subject.clone(), message.payload.clone())
                    .await;
                let _ = acker.ack_with(AckKind::Term).await;
            }
        }
        true
    }
}

/// Keeps the coordinator's external backlog at the rows waiting in the consumer: its count
/// of undelivered messages times the rows per message seen so far (`rows_per_message` until
/// the first message), so that the level reflects rows waiting in JetStream, in the same unit
/// as the in-memory queue.
pub(crate) async fn poll_backlog(
    mut consumer: PullConsumer,
    coordinator: WriteCoordinator<Pending>,
    counters: std::sync::Arc<PullCounters>,
    rows_per_message: usize,
    every: Duration,
) {
    loop {
        match consumer.info().await {
            Ok(info) => {
                let per_message = counters
                    .rows_per_message()
                    .unwrap_or(rows_per_message as f64);
                let rows = (info.num_pending as f64 * per_message).round() as u64;
                coordinator.set_external_backlog(rows);
            }
            Err(error) => {
                tracing::debug!(error = %Chain(&error), "Cannot read the consumer's pending count.");
            }
        }
        sleep(every).await;
    }
}
