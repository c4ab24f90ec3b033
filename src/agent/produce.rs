//! The agent's producers: one task per provider, pacing its source by the rate coordinator
//! and handing each bar to the publisher.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::AgentError;
use super::config::AgentConfig;
use super::demand::{Producer, ProducerCounts};
use crate::clock::WallClock;
use crate::market::Bar;
use crate::rate::RateCoordinator;

/// Starts one producer per provider of `rate`; each stops at `stop`, when its source is
/// exhausted, or after `agent.max_rows` rows. Returns the channel of bars, which closes once
/// every producer has stopped, and each producer's counts for the demand it reports.
pub(super) fn start(
    config: &AgentConfig,
    name: &str,
    rate: &RateCoordinator,
    produced: &Arc<AtomicU64>,
    stop: &CancellationToken,
    producers: &mut JoinSet<()>,
) -> Result<(mpsc::Receiver<Bar>, Vec<Producer>), AgentError> {
    let (tx, rx) = mpsc::channel(config.batch_rows.max(64) * 2);
    let now_ms = WallClock::new().now_ms() as i64;
    let limit = config.max_rows.unwrap_or(u64::MAX);
    let mut meters = Vec::new();
    for (i, provider) in rate.provider_names().into_iter().enumerate() {
        let counts = Arc::new(ProducerCounts::default());
        meters.push(Producer {
            counts: counts.clone(),
            base_rate: rate.snapshot(&provider).map_or(0.0, |s| s.base_rate),
        });
        let source_config = config.sources.get(&provider).cloned().unwrap_or_default();
        let seed = fastrand::u64(..) ^ i as u64;
        let mut source = source_config.open(&format!("{provider}:{name}"), now_ms, seed)?;
        let (rate, tx, stop, produced) = (rate.clone(), tx.clone(), stop.clone(), produced.clone());
        producers.spawn(async move {
            let mut n = 0;
            while n < limit {
                match stop.run_until_cancelled(rate.acquire(&provider, 1)).await {
                    Some(Ok(())) => {}
                    Some(Err(error)) => {
                        tracing::error!(%error, provider, "Cannot acquire.");
                        break;
                    }
                    None => break,
                }
                let asked = Instant::now();
                let Some(bar) = source.next_bar() else { break };
                counts.row(asked.elapsed());
                if tx.send(bar).await.is_err() {
                    break;
                }
                n += 1;
                produced.fetch_add(1, Relaxed);
            }
            // Exhausted (or stopped): it offers nothing more.
            counts.done.store(true, Relaxed);
        });
    }
    Ok((rx, meters))
}
