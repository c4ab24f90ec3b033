//! A sink wrapper that limits throughput, adds latency and injects outages, for experiments
//! and tests.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::{Instant, sleep_until};

use super::sink::{Sink, SinkError};

/// A window, relative to the throttle's creation, during which every write fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage {
    /// When the outage starts, after creation.
    pub start: Duration,
    /// How long it lasts.
    pub duration: Duration,
}

/// Longer than any experiment: the service time of a batch at an absurdly low rate.
const NEVER: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

struct State {
    rows_per_sec: f64,
    next_free: Instant,
}

/// Models a sink of finite capacity in front of `inner`: writes are served one after another
/// at `rows_per_sec` (so concurrent workers share the capacity instead of multiplying it),
/// each completes `latency` after its slot, and writes during an [`Outage`] fail transiently.
pub struct Throttle<S> {
    inner: S,
    latency: Duration,
    outages: Vec<Outage>,
    origin: Instant,
    state: Mutex<State>,
}

impl<S> Throttle<S> {
    /// Limits `inner` to `rows_per_sec` (0 or less: unlimited).
    pub fn new(inner: S, rows_per_sec: f64) -> Self {
        let now = Instant::now();
        Self {
            inner,
            latency: Duration::ZERO,
            outages: Vec::new(),
            origin: now,
            state: Mutex::new(State {
                rows_per_sec,
                next_free: now,
            }),
        }
    }

    /// Adds a fixed latency to every write.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Schedules an outage.
    pub fn with_outage(mut self, outage: Outage) -> Self {
        self.outages.push(outage);
        self
    }

    /// Changes the capacity from now on (brownouts, recoveries).
    pub fn set_rows_per_sec(&self, rows_per_sec: f64) {
        self.lock().rows_per_sec = rows_per_sec;
    }

    /// The current capacity.
    pub fn rows_per_sec(&self) -> f64 {
        self.lock().rows_per_sec
    }

    /// The wrapped sink.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn in_outage(&self, now: Instant) -> bool {
        let t = now.saturating_duration_since(self.origin);
        self.outages
            .iter()
            .any(|o| t >= o.start && t < o.start + o.duration)
    }

    /// Reserves the sink's time for `rows` and returns when they are done.
    pub(crate) fn reserve(&self, rows: usize, now: Instant) -> Instant {
        let mut st = self.lock();
        if st.rows_per_sec <= 0.0 {
            return now + self.latency;
        }
        let start = st.next_free.max(now);
        // A rate so low that the batch takes longer than `NEVER` (or than a `Duration` can
        // hold, which panicked) never finishes it; capping keeps the clock from overflowing.
        let busy = Duration::try_from_secs_f64(rows as f64 / st.rows_per_sec)
            .map_or(NEVER, |busy| busy.min(NEVER));
        st.next_free = start + busy;
        st.next_free + self.latency
    }
}

#[async_trait]
impl<T: Sync + 'static, S: Sink<T>> Sink<T> for Throttle<S> {
    async fn write(&self, batch: &[T]) -> Result<(), SinkError> {
        let now = Instant::now();
        if self.in_outage(now) {
            sleep_until(now + self.latency).await;
            return Err(SinkError::transient("scheduled outage"));
        }
        sleep_until(self.reserve(batch.len(), now)).await;
        self.inner.write(batch).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coordinator::NullSink;

    #[test]
    fn an_absurdly_low_rate_never_finishes_instead_of_panicking() {
        // The settings fuzz check: `rows_per_sec: 1e-300` passes validation.
        let t = Throttle::new(NullSink, 1e-300);
        let now = Instant::now();
        assert_eq!(t.reserve(100, now), now + NEVER);
        assert_eq!(t.reserve(usize::MAX, now), now + NEVER + NEVER);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_writes_share_the_capacity() {
        let t = std::sync::Arc::new(Throttle::new(NullSink, 1_000.0));
        let start = Instant::now();
        let a = tokio::spawn({
            let t = t.clone();
            async move { t.write(&[0u8; 500]).await }
        });
        let b = tokio::spawn({
            let t = t.clone();
            async move { t.write(&[0u8; 500]).await }
        });
        a.await.unwrap().unwrap();
        b.await.unwrap().unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn outages_fail_transiently_inside_their_window_only() {
        let t = Throttle::new(NullSink, 0.0).with_outage(Outage {
            start: Duration::from_secs(1),
            duration: Duration::from_secs(2),
        });
        assert!(t.write(&[1u8]).await.is_ok());
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(t.write(&[1u8]).await.is_err());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(t.write(&[1u8]).await.is_ok());
    }
}
