//! Publishes rows to the write stream in batches, with a window of outstanding
//! acknowledgements, retrying every failure with the same message id so the stream stores
//! each batch once.

use std::fs::File;
use std::future::Future;
use std::io::{BufWriter, Write};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use crate::market::Bar;

type Outcome = (Vec<Bar>, Result<(), String>);

/// Counters of the publisher, in rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PublishStats {
    pub(crate) acked: u64,
    pub(crate) messages: u64,
    pub(crate) retries: u64,
    pub(crate) unacked: u64,
}

/// How batches are formed and sent.
pub(crate) struct PublishPlan {
    pub(crate) subject: String,
    pub(crate) ack_timeout: Duration,
    pub(crate) retry_delay: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) batch_rows: usize,
    pub(crate) linger: Duration,
    pub(crate) drain_timeout: Duration,
}

pub(crate) struct RowPublisher {
    js: jetstream::Context,
    plan: PublishPlan,
    current: Vec<Bar>,
    linger_until: Option<Instant>,
    inflight: FuturesUnordered<BoxFuture<'static, Outcome>>,
    log: Option<BufWriter<File>>,
    stats: PublishStats,
}

impl RowPublisher {
    pub(crate) fn new(js: jetstream::Context, plan: PublishPlan, log: Option<File>) -> Self {
        Self {
            js,
            current: Vec::with_capacity(plan.batch_rows),
            plan,
            linger_until: None,
            inflight: FuturesUnordered::new(),
            log: log.map(BufWriter::new),
            stats: PublishStats::default(),
        }
    }

    fn send(&self, batch: Vec<Bar>, after: Option<Duration>) -> BoxFuture<'static, Outcome> {
        let (js, subject, limit) = (
            self.js.clone(),
            self.plan.subject.clone(),
            self.plan.ack_timeout,
        );
        Box::pin(async move {
            if let Some(delay) = after {
                sleep(delay).await;
            }
            let id = match batch.first() {
                Some(first) => format!("{}|{}", first.msg_id(), batch.len()),
                None => String::new(),
            };
            let message = PublishMessage::build()
                .payload(Bar::encode_batch(&batch).into())
                .message_id(id);
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
            (batch, result)
        })
    }

    fn add(&mut self, bar: Bar) {
        if self.current.is_empty() {
            self.linger_until = Some(Instant::now() + self.plan.linger);
        }
        self.current.push(bar);
        if self.current.len() >= self.plan.batch_rows {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.linger_until = None;
        if self.current.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.current, Vec::with_capacity(self.plan.batch_rows));
        self.stats.messages += 1;
        let f = self.send(batch, None);
        self.inflight.push(f);
    }

    /// Acknowledged rows are logged; failed batches go back out after the retry delay.
    fn settle(&mut self, (batch, result): Outcome) {
        match result {
            Ok(()) => {
                self.stats.acked += batch.len() as u64;
                if let Some(log) = &mut self.log {
                    for bar in &batch {
                        let _ = writeln!(log, "{},{},{}", bar.source, bar.symbol, bar.ts_ms);
                    }
                }
            }
            Err(error) => {
                self.stats.retries += 1;
                if self.stats.retries.is_power_of_two() {
                    tracing::warn!(%error, retries = self.stats.retries, "Publish failed; retrying.");
                }
                let f = self.send(batch, Some(self.plan.retry_delay));
                self.inflight.push(f);
            }
        }
    }

    /// Publishes rows from `rows` until it closes or `shutdown`; then stops the producers
    /// (`stop`), publishes what they already made, and waits up to the drain timeout for
    /// every acknowledgement.
    pub(crate) async fn run(
        mut self,
        mut rows: mpsc::Receiver<Bar>,
        shutdown: impl Future<Output = ()>,
        stop: CancellationToken,
    ) -> PublishStats {
        tokio::pin!(shutdown);
        loop {
            let room = self.inflight.len() < self.plan.max_in_flight;
            let linger = self.linger_until;
            tokio::select! {
                biased;
                Some(outcome) = self.inflight.next(), if !self.inflight.is_empty() => self.settle(outcome),
                () = sleep_until(linger.unwrap_or_else(Instant::now)), if room && linger.is_some() => self.flush(),
                bar = rows.recv(), if room => match bar {
                    Some(bar) => self.add(bar),
                    None => break,
                },
                () = &mut shutdown => {
                    tracing::info!("Agent stopping: publishing what was produced.");
                    break;
                }
            }
        }
        stop.cancel();
        let deadline = Instant::now() + self.plan.drain_timeout;
        while let Some(bar) = rows.recv().await {
            self.add(bar);
        }
        self.flush();
        while !self.inflight.is_empty() {
            match tokio::time::timeout_at(deadline, self.inflight.next()).await {
                Ok(Some(outcome)) => self.settle(outcome),
                Ok(None) | Err(_) => break,
            }
        }
        self.stats.unacked = self.inflight.len() as u64;
        if let Some(log) = &mut self.log {
            if let Err(error) = log.flush() {
                tracing::error!(%error, "Cannot flush the ack log.");
            }
        }
        self.stats
    }
}
