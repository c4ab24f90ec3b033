//! Publishes rows to the write stream with a window of outstanding acknowledgements,
//! retrying every failure with the same message id so the stream stores each row once.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::time::{Instant, sleep, timeout};

use crate::market::Bar;

type Outcome = (Bar, Result<(), String>);

/// Counters of the publisher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PublishStats {
    pub(crate) acked: u64,
    pub(crate) retries: u64,
    pub(crate) unacked: u64,
}

pub(crate) struct RowPublisher {
    js: jetstream::Context,
    subject: String,
    ack_timeout: Duration,
    retry_delay: Duration,
    max_in_flight: usize,
    inflight: FuturesUnordered<BoxFuture<'static, Outcome>>,
    log: Option<BufWriter<File>>,
    pub(crate) stats: PublishStats,
}

impl RowPublisher {
    pub(crate) fn new(
        js: jetstream::Context,
        subject: String,
        ack_timeout: Duration,
        retry_delay: Duration,
        max_in_flight: usize,
        log: Option<File>,
    ) -> Self {
        Self {
            js,
            subject,
            ack_timeout,
            retry_delay,
            max_in_flight,
            inflight: FuturesUnordered::new(),
            log: log.map(BufWriter::new),
            stats: PublishStats::default(),
        }
    }

    fn send(&self, bar: Bar, after: Option<Duration>) -> BoxFuture<'static, Outcome> {
        let (js, subject, limit) = (self.js.clone(), self.subject.clone(), self.ack_timeout);
        Box::pin(async move {
            if let Some(delay) = after {
                sleep(delay).await;
            }
            let message = PublishMessage::build()
                .payload(bar.encode().into())
                .message_id(bar.msg_id());
            let attempt = async {
                let ack = js
                    .send_publish(subject, message)
                    .await
                    .map_err(|e| e.to_string())?;
                ack.await.map(|_| ()).map_err(|e| e.to_string())
            };
            let result = match timeout(limit, attempt).await {
                Ok(r) => r,
                Err(_) => Err(format!("no acknowledgement within {limit:?}")),
            };
            (bar, result)
        })
    }

    /// Queues `bar`, first waiting for room in the window.
    pub(crate) async fn push(&mut self, bar: Bar) {
        while self.inflight.len() >= self.max_in_flight {
            self.settle_one().await;
        }
        let f = self.send(bar, None);
        self.inflight.push(f);
    }

    /// Waits for one outstanding publish to settle: acknowledged rows are logged, failed ones
    /// go back into the window after the retry delay.
    async fn settle_one(&mut self) {
        let Some((bar, result)) = self.inflight.next().await else {
            return;
        };
        match result {
            Ok(()) => {
                self.stats.acked += 1;
                if let Some(log) = &mut self.log {
                    let _ = writeln!(log, "{},{},{}", bar.source, bar.symbol, bar.ts_ms);
                }
            }
            Err(error) => {
                self.stats.retries += 1;
                if self.stats.retries.is_power_of_two() {
                    tracing::warn!(%error, retries = self.stats.retries, "Publish failed; retrying.");
                }
                let f = self.send(bar, Some(self.retry_delay));
                self.inflight.push(f);
            }
        }
    }

    /// Settles everything outstanding until `deadline`; what is left is counted as unacked.
    pub(crate) async fn drain(&mut self, deadline: Instant) {
        while !self.inflight.is_empty() {
            if tokio::time::timeout_at(deadline, self.settle_one())
                .await
                .is_err()
            {
                break;
            }
        }
        self.stats.unacked = self.inflight.len() as u64;
        if let Some(log) = &mut self.log {
            if let Err(error) = log.flush() {
                tracing::error!(%error, "Cannot flush the ack log.");
            }
        }
    }
}
