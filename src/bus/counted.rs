//! Counts feedback events by coordinator and level on their way to a handler, for metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{Delivery, FeedbackSubscription};
use crate::event::{BackpressureLevel, FeedbackEvent};
use crate::telemetry::{FEEDBACK_EVENTS_TOTAL, Probe, Readings};

/// Distinct coordinator ids counted before further ones share the label `_other`, so that a
/// misbehaving publisher cannot grow the label set without bound.
pub const MAX_COUNTED_COORDINATORS: usize = 256;

/// The label value that collects coordinators beyond [`MAX_COUNTED_COORDINATORS`].
pub const OTHER_COORDINATORS: &str = "_other";

/// Events seen, per coordinator label and level.
///
/// Keyed by label with one counter per level, so that counting an event is one lookup: with
/// a key per (id, level), whether an id was known and how many ids there were took a scan
/// and a sort of every key, per event, once more coordinators than the label cap reported.
#[derive(Debug, Default)]
pub struct FeedbackCounts {
    counts: Mutex<HashMap<String, [u64; 3]>>,
}

const LEVELS: [BackpressureLevel; 3] = [
    BackpressureLevel::Ok,
    BackpressureLevel::Soft,
    BackpressureLevel::Hard,
];

impl FeedbackCounts {
    /// Counts one event.
    pub fn count(&self, event: &FeedbackEvent) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let level = usize::from(event.level.code());
        if let Some(known) = counts.get_mut(event.coordinator_id.as_str()) {
            known[level] += 1;
            return;
        }
        let label = if counts.len() < MAX_COUNTED_COORDINATORS {
            event.coordinator_id.as_str()
        } else {
            OTHER_COORDINATORS
        };
        counts.entry(label.to_owned()).or_default()[level] += 1;
    }

    /// Every (coordinator id, level, count), sorted.
    pub fn snapshot(&self) -> Vec<(String, BackpressureLevel, u64)> {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<_> = counts
            .iter()
            .flat_map(|(c, n)| {
                LEVELS
                    .iter()
                    .zip(n)
                    .filter(|(_, n)| **n > 0)
                    .map(|(l, n)| (c.clone(), *l, *n))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }
}

impl Probe for FeedbackCounts {
    fn claims(&self) -> Vec<String> {
        vec!["feedback events".into()]
    }

    fn read(&self, out: &mut Readings) {
        for (id, level, n) in self.snapshot() {
            let labels = [("coordinator_id", id.as_str()), ("level", level.as_str())];
            out.set(&FEEDBACK_EVENTS_TOTAL, &labels, n as f64);
        }
    }
}

/// A [`FeedbackSubscription`] that counts every event it passes on, in
/// `backflow_feedback_events_total{coordinator_id, level}` once its
/// [counts](Counted::counts) are registered with the metrics.
pub struct Counted<S> {
    inner: S,
    counts: Arc<FeedbackCounts>,
}

impl<S> Counted<S> {
    /// Counts what `inner` yields.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counts: Arc::default(),
        }
    }

    /// The counts, to register as a probe.
    pub fn counts(&self) -> Arc<FeedbackCounts> {
        self.counts.clone()
    }
}

#[async_trait]
impl<S: FeedbackSubscription> FeedbackSubscription for Counted<S> {
    async fn next(&mut self) -> Option<Delivery> {
        let delivery = self.inner.next().await?;
        self.counts.count(&delivery.event);
        Some(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CoordinatorId, InstanceId};

    fn event(id: &str, level: BackpressureLevel) -> FeedbackEvent {
        FeedbackEvent::new(
            CoordinatorId::new(id).unwrap(),
            InstanceId::new("i").unwrap(),
            1,
            1,
            0,
            level,
            0,
            1,
        )
    }

    #[test]
    fn counts_by_coordinator_and_level_with_a_bounded_label_set() {
        let c = FeedbackCounts::default();
        c.count(&event("a", BackpressureLevel::Hard));
        c.count(&event("a", BackpressureLevel::Hard));
        c.count(&event("b", BackpressureLevel::Ok));
        assert_eq!(
            c.snapshot(),
            vec![
                ("a".into(), BackpressureLevel::Hard, 2),
                ("b".into(), BackpressureLevel::Ok, 1)
            ]
        );
        for i in 0..MAX_COUNTED_COORDINATORS + 10 {
            c.count(&event(&format!("c{i}"), BackpressureLevel::Soft));
        }
        let snap = c.snapshot();
        let ids: std::collections::BTreeSet<&str> =
            snap.iter().map(|(c, _, _)| c.as_str()).collect();
        assert_eq!(ids.len(), MAX_COUNTED_COORDINATORS + 1);
        assert!(ids.contains(OTHER_COORDINATORS));
        // Known coordinators keep their own label.
        c.count(&event("a", BackpressureLevel::Ok));
        assert!(
            c.snapshot()
                .contains(&("a".into(), BackpressureLevel::Ok, 1))
        );
    }
}
