//! What a registry reads when it is scraped, and the consistent copy each scrape works from.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::catalog::{
    ACQUIRE_WAIT_SECONDS, BATCH_WRITE_SECONDS, FEEDBACK_LATENCY_SECONDS, QUEUE_WAIT_SECONDS,
};
use super::counts::FeedbackCounts;
use super::histograms::{HistogramSample, HistogramSnapshot};
use crate::bridge::{BridgeStats, CoordinatorView};
use crate::bus::http::HttpReceiverStats;
use crate::bus::nats::SubscriberStats;
use crate::coordinator::{Health, WriteCoordinator};
use crate::event::BackpressureLevel;
use crate::feedback::HandlerStats;
use crate::rate::{ProviderSnapshot, RateCoordinator};

/// A write coordinator, whatever its item type.
pub(crate) trait StoreProbe: Send + Sync {
    fn health(&self) -> Health;
    fn batch_latency(&self) -> HistogramSnapshot;
    fn queue_wait(&self) -> HistogramSnapshot;
}

impl<T: Send + Sync + 'static> StoreProbe for WriteCoordinator<T> {
    fn health(&self) -> Health {
        WriteCoordinator::health(self)
    }

    fn batch_latency(&self) -> HistogramSnapshot {
        HistogramSnapshot::of(WriteCoordinator::batch_latency(self))
    }

    fn queue_wait(&self) -> HistogramSnapshot {
        HistogramSnapshot::of(WriteCoordinator::queue_wait(self))
    }
}

/// A rate coordinator and the providers to export.
pub(crate) struct RateSource {
    pub(crate) rate: RateCoordinator,
    pub(crate) providers: Vec<String>,
}

/// The bridge's fleet view and counters.
pub(crate) struct BridgeSource {
    pub(crate) stats: Arc<BridgeStats>,
    pub(crate) view: Box<dyn Fn() -> Vec<CoordinatorView> + Send + Sync>,
}

/// Everything registered with one [`Metrics`](super::Metrics).
#[derive(Default)]
pub(crate) struct Sources {
    pub(crate) stores: RwLock<Vec<Arc<dyn StoreProbe>>>,
    pub(crate) rates: RwLock<Vec<RateSource>>,
    pub(crate) handler: RwLock<Option<Arc<HandlerStats>>>,
    pub(crate) nats: RwLock<Vec<Arc<SubscriberStats>>>,
    pub(crate) http: RwLock<Vec<Arc<HttpReceiverStats>>>,
    pub(crate) events: Arc<FeedbackCounts>,
    pub(crate) bridge: RwLock<Option<BridgeSource>>,
    current: Mutex<Scrape>,
}

/// One scrape's copy of every value, so that related series agree (a coordinator is never
/// both ok and hard in one scrape) and each source is read once.
#[derive(Default)]
pub(crate) struct Scrape {
    pub(crate) stores: Vec<Health>,
    pub(crate) providers: Vec<ProviderSnapshot>,
    pub(crate) handler: Option<Arc<HandlerStats>>,
    pub(crate) nats: Vec<Arc<SubscriberStats>>,
    pub(crate) http: Vec<Arc<HttpReceiverStats>>,
    pub(crate) events: Vec<(String, BackpressureLevel, u64)>,
    pub(crate) fleet: Vec<CoordinatorView>,
    pub(crate) bridge: Option<Arc<BridgeStats>>,
    pub(crate) histograms: Vec<HistogramSample>,
}

/// Reads a lock even if a panicking thread poisoned it: metrics must not take a process down.
pub(crate) fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Writes a lock even if poisoned.
pub(crate) fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Sources {
    /// The copy the current scrape works from.
    pub(crate) fn current(&self) -> MutexGuard<'_, Scrape> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every source and makes it the current scrape.
    pub(crate) fn refresh(&self) {
        let scrape = self.read_all();
        *self.current() = scrape;
    }

    fn read_all(&self) -> Scrape {
        let mut s = Scrape::default();
        for store in read(&self.stores).iter() {
            let health = store.health();
            let labels = vec![("coordinator_id", health.coordinator_id.to_string())];
            s.histograms.push(HistogramSample {
                info: &BATCH_WRITE_SECONDS,
                labels: labels.clone(),
                snapshot: store.batch_latency(),
            });
            s.histograms.push(HistogramSample {
                info: &QUEUE_WAIT_SECONDS,
                labels,
                snapshot: store.queue_wait(),
            });
            s.stores.push(health);
        }
        for source in read(&self.rates).iter() {
            for name in &source.providers {
                // Providers are never removed once registered, so these reads succeed.
                if let Ok(snapshot) = source.rate.snapshot(name) {
                    s.providers.push(snapshot);
                }
                if let Ok(snapshot) = source.rate.with_acquire_wait(name, HistogramSnapshot::of) {
                    s.histograms.push(HistogramSample {
                        info: &ACQUIRE_WAIT_SECONDS,
                        labels: vec![("provider", name.clone())],
                        snapshot,
                    });
                }
            }
        }
        s.handler = read(&self.handler).clone();
        if let Some(handler) = &s.handler {
            s.histograms.push(HistogramSample {
                info: &FEEDBACK_LATENCY_SECONDS,
                labels: vec![],
                snapshot: HistogramSnapshot::of(&handler.latency),
            });
        }
        s.nats = read(&self.nats).clone();
        s.http = read(&self.http).clone();
        s.events = self.events.snapshot();
        if let Some(bridge) = read(&self.bridge).as_ref() {
            s.fleet = (bridge.view)();
            s.bridge = Some(bridge.stats.clone());
        }
        s
    }
}
