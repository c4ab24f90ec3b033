//! The simulated database: finite capacity shared by all writers, latency with jitter,
//! brownouts and outages, all on tokio's clock.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::{Instant, sleep_until};

use super::spec::SinkSpec;
use crate::coordinator::{Sink, SinkError};

struct State {
    next_free: Instant,
    rng: fastrand::Rng,
}

/// Writes are served one after another at the capacity of the moment (so concurrent
/// workers share it instead of multiplying it), each taking its rows / capacity ± `jitter`,
/// and each completes a latency ± `jitter` after its slot. That is the latency knee: response time stays flat while the offered rows fit the
/// capacity and grows with the sink's own backlog beyond it. Writes during an outage fail
/// transiently after one latency.
pub struct SimSink {
    spec: SinkSpec,
    origin: Instant,
    state: Mutex<State>,
}

impl SimSink {
    /// A sink following `spec`, with time measured from now.
    pub fn new(spec: SinkSpec, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            spec,
            origin: now,
            state: Mutex::new(State {
                next_free: now,
                rng: fastrand::Rng::with_seed(seed),
            }),
        }
    }

    /// `base × (1 ± jitter)`, uniformly: the mean stays `base`.
    fn jittered(&self, base: f64, rng: &mut fastrand::Rng) -> f64 {
        (base * (1.0 + self.spec.jitter * (2.0 * rng.f64() - 1.0))).max(0.0)
    }
}

#[async_trait]
impl Sink<u64> for SimSink {
    async fn write(&self, batch: &[u64]) -> Result<(), SinkError> {
        let now = Instant::now();
        let t = now.saturating_duration_since(self.origin).as_secs_f64();
        let capacity = self.spec.capacity_at(t);
        let done = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let latency = self.jittered(self.spec.latency_ms / 1_000.0, &mut st.rng);
            let latency = Duration::from_secs_f64(latency);
            if capacity <= 0.0 {
                Err(now + latency)
            } else {
                let service = self.jittered(batch.len() as f64 / capacity, &mut st.rng);
                let start = st.next_free.max(now);
                st.next_free = start + Duration::from_secs_f64(service);
                Ok(st.next_free + latency)
            }
        };
        match done {
            Ok(at) => {
                sleep_until(at).await;
                Ok(())
            }
            Err(at) => {
                sleep_until(at).await;
                Err(SinkError::transient("simulated outage"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::spec::Window;

    #[tokio::test(start_paused = true)]
    async fn writers_share_the_capacity_and_outages_fail() {
        let spec = SinkSpec {
            rows_per_sec: 1_000.0,
            latency_ms: 0.0,
            jitter: 0.0,
            brownouts: vec![],
            outages: vec![Window {
                at_s: 2.0,
                duration_s: 1.0,
            }],
        };
        let sink = std::sync::Arc::new(SimSink::new(spec, 1));
        let start = Instant::now();
        let (a, b) = tokio::join!(sink.write(&[0; 500]), sink.write(&[0; 500]));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        assert!(sink.write(&[0; 10]).await.is_err());
    }
}
