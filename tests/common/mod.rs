//! Helpers shared by the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use backflow::clock::WallClock;
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId};

/// Every receive in the tests goes through this, so a bug fails instead of hanging.
pub async fn within<T>(limit: Duration, what: &str, f: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// An event from `coordinator`/`instance` with a current timestamp.
pub fn event(
    coordinator: &str,
    instance: &str,
    seq: u64,
    level: BackpressureLevel,
    depth: u64,
    capacity: u64,
) -> FeedbackEvent {
    FeedbackEvent::new(
        CoordinatorId::new(coordinator).unwrap(),
        InstanceId::new(instance).unwrap(),
        1,
        seq,
        WallClock::new().now_ms(),
        level,
        depth,
        capacity,
    )
}

/// A rate coordinator with one provider (burst and refill of `per_sec`) and a handler with
/// the step policy and default fleet settings that scales it: an agent minus its transport.
pub fn step_agent(
    provider: &str,
    per_sec: u32,
) -> (
    backflow::rate::RateCoordinator,
    backflow::feedback::FeedbackHandler,
) {
    let (rate, handler) = backflow::agent::LocalAgent::parts(
        provider,
        backflow::rate::ProviderConfig::new(per_sec, f64::from(per_sec)),
        &backflow::feedback::FeedbackConfig {
            coordinators: vec![backflow::fleet::Follow::Any],
            ..backflow::feedback::FeedbackConfig::with_policy(backflow::feedback::PolicyKind::Step)
        },
        &[],
        0,
    )
    .unwrap();
    (rate, handler.expect("the step policy gives a handler"))
}

/// A sink the test steers: it records what it commits, can be held shut, and can be told
/// how the next calls end.
pub mod sink {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use async_trait::async_trait;
    use backflow::coordinator::{Sink, SinkError};
    use tokio::sync::watch;

    pub struct TestSink {
        written: Mutex<Vec<u64>>,
        batches: Mutex<Vec<usize>>,
        calls: AtomicU64,
        script: Mutex<VecDeque<Result<(), SinkError>>>,
        otherwise: Mutex<Result<(), SinkError>>,
        open: watch::Sender<bool>,
    }

    impl Default for TestSink {
        fn default() -> Self {
            Self {
                written: Mutex::default(),
                batches: Mutex::default(),
                calls: AtomicU64::new(0),
                script: Mutex::default(),
                otherwise: Mutex::new(Ok(())),
                open: watch::Sender::new(true),
            }
        }
    }

    impl TestSink {
        /// Writes wait until [`TestSink::release`].
        pub fn hold(&self) {
            self.open.send_replace(false);
        }
        pub fn release(&self) {
            self.open.send_replace(true);
        }
        /// The next calls end like this, in order.
        pub fn script(&self, outcomes: impl IntoIterator<Item = Result<(), SinkError>>) {
            self.script.lock().unwrap().extend(outcomes);
        }
        /// Calls after the script end like this.
        pub fn otherwise(&self, outcome: Result<(), SinkError>) {
            *self.otherwise.lock().unwrap() = outcome;
        }
        pub fn written(&self) -> Vec<u64> {
            self.written.lock().unwrap().clone()
        }
        pub fn batches(&self) -> Vec<usize> {
            self.batches.lock().unwrap().clone()
        }
        pub fn calls(&self) -> u64 {
            self.calls.load(Relaxed)
        }
    }

    #[async_trait]
    impl Sink<u64> for TestSink {
        async fn write(&self, batch: &[u64]) -> Result<(), SinkError> {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|o| *o).await;
            self.calls.fetch_add(1, Relaxed);
            let outcome = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| self.otherwise.lock().unwrap().clone());
            if outcome.is_ok() {
                self.written.lock().unwrap().extend_from_slice(batch);
                self.batches.lock().unwrap().push(batch.len());
            }
            outcome
        }
    }
}

pub mod agent;
pub mod nats;
pub mod node;

pub mod probe;
pub mod prometheus;
pub mod rig;
pub mod system;
pub mod tls;
