//! Batch workers: write with retries behind the circuit breaker, dead-letter what cannot be
//! written.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;

use super::queue::Queue;
use super::retry::RetryConfig;
use super::sink::{DeadLetterReason, DeadLetterSink, Sink, SinkErrorKind};
use super::stats::{CoordinatorStats, DropReason};
use crate::breaker::{CircuitBreaker, Permit};

/// State shared by the handle and the worker tasks.
pub(crate) struct Shared<T> {
    pub(crate) queue: Queue<T>,
    pub(crate) stats: Arc<CoordinatorStats>,
    pub(crate) sink: Arc<dyn Sink<T>>,
    pub(crate) dead_letter: Arc<dyn DeadLetterSink<T>>,
    pub(crate) breaker: Mutex<CircuitBreaker>,
    pub(crate) retry: RetryConfig,
    pub(crate) abort: CancellationToken,
    pub(crate) workers_running: AtomicUsize,
}

impl<T: Send + Sync + 'static> Shared<T> {
    fn breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        self.breaker.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands items to the dead-letter sink; counts them as dead-lettered, or as dropped when
    /// that fails too.
    pub(crate) async fn dead_letter(&self, items: Vec<T>, reason: DeadLetterReason) {
        let n = items.len() as u64;
        if n == 0 {
            return;
        }
        match self.dead_letter.dead_letter(items, reason).await {
            Ok(()) => self.stats.dead_lettered(reason, n),
            Err(error) => {
                tracing::error!(%error, items = n, reason = reason.as_str(), "Dead-letter sink failed; items dropped.");
                self.stats.dropped(DropReason::DeadLetterFailed, n);
            }
        }
    }

    async fn settle_dead(&self, batch: Vec<T>, reason: DeadLetterReason) {
        let n = batch.len() as u64;
        self.dead_letter(batch, reason).await;
        self.stats.in_flight.fetch_sub(n, Relaxed);
    }

    /// Writes one batch: retries transient failures with backoff, waits while the breaker is
    /// open (waiting does not use up attempts), dead-letters on permanent failure, exhausted
    /// retries, or abort. A write already running is never cancelled, so an item cannot be
    /// both committed and dead-lettered.
    async fn write(&self, batch: Vec<T>, rng: &mut fastrand::Rng) {
        let n = batch.len() as u64;
        let mut attempt = 0u32;
        loop {
            let permit = self.breaker().permit(Instant::now());
            if let Permit::RefusedUntil(until) = permit {
                tokio::select! {
                    () = sleep_until(until) => continue,
                    () = self.abort.cancelled() => {
                        return self.settle_dead(batch, DeadLetterReason::Shutdown).await;
                    }
                }
            }
            attempt += 1;
            let started = Instant::now();
            let result = self.sink.write(&batch).await;
            match result {
                Ok(()) => {
                    if self.breaker().on_success() {
                        tracing::info!("Sink circuit breaker closed.");
                    }
                    self.stats.batch_latency.record(started.elapsed());
                    self.stats.written.fetch_add(n, Relaxed);
                    self.stats.batches.fetch_add(1, Relaxed);
                    self.stats.in_flight.fetch_sub(n, Relaxed);
                    return;
                }
                Err(error) if error.kind == SinkErrorKind::Permanent => {
                    self.stats.write_failures.fetch_add(1, Relaxed);
                    tracing::warn!(%error, items = n, "Sink refused a batch permanently.");
                    return self.settle_dead(batch, DeadLetterReason::Rejected).await;
                }
                Err(error) => {
                    self.stats.write_failures.fetch_add(1, Relaxed);
                    if self.breaker().on_failure(Instant::now()) {
                        tracing::warn!(%error, "Sink circuit breaker opened.");
                    }
                    if attempt >= self.retry.max_attempts {
                        tracing::warn!(%error, items = n, attempts = attempt, "Retries exhausted.");
                        return self
                            .settle_dead(batch, DeadLetterReason::RetriesExhausted)
                            .await;
                    }
                    tracing::debug!(%error, attempt, "Batch write failed; retrying.");
                    let delay = self.retry.delay(attempt, rng.f64());
                    tokio::select! {
                        () = sleep(delay) => {}
                        () = self.abort.cancelled() => {
                            return self.settle_dead(batch, DeadLetterReason::Shutdown).await;
                        }
                    }
                }
            }
        }
    }
}

/// One worker: batches until the queue is closed and empty, or until abort.
pub(crate) async fn run<T: Send + Sync + 'static>(shared: Arc<Shared<T>>) {
    let mut rng = fastrand::Rng::new();
    while let Some(batch) = shared.queue.next_batch(&shared.abort, &shared.stats).await {
        shared.write(batch, &mut rng).await;
    }
    shared.workers_running.fetch_sub(1, Ordering::AcqRel);
}
