//! An agent in the test process: a NATS subscriber feeding a feedback handler (step policy)
//! that scales provider `p` of a rate coordinator.

use std::sync::Arc;

use backflow::bus::Interest;
use backflow::bus::nats::{NatsConnection, NatsSubscriber, SubscriberStats};
use backflow::feedback::HandlerStats;
use backflow::rate::RateCoordinator;
use tokio_util::sync::CancellationToken;

pub struct Agent {
    pub rate: RateCoordinator,
    pub stats: Arc<SubscriberStats>,
    pub handler: Arc<HandlerStats>,
    _stop: tokio_util::sync::DropGuard,
}

pub async fn agent_on(conn: &NatsConnection) -> Agent {
    let (rate, handler) = super::step_agent("p", 10);
    let (sub, stats) = NatsSubscriber::start(conn, Interest::All).await.unwrap();
    let handler_stats = handler.stats();
    let stop = CancellationToken::new();
    tokio::spawn(handler.run(sub, stop.clone().cancelled_owned()));
    Agent {
        rate,
        stats,
        handler: handler_stats,
        _stop: stop.drop_guard(),
    }
}

impl Agent {
    /// Waits until provider `p` runs at `scale`.
    pub async fn scale_becomes(&self, scale: f64, what: &str) {
        super::within(std::time::Duration::from_secs(10), what, async {
            while self.rate.scale("p") != Ok(scale) {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    /// Waits until `counter` (of [`SubscriberStats`] or [`HandlerStats`]) reaches `n`.
    pub async fn counted(&self, counter: &std::sync::atomic::AtomicU64, n: u64, what: &str) {
        super::within(std::time::Duration::from_secs(10), what, async {
            while counter.load(std::sync::atomic::Ordering::Relaxed) < n {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}
