//! `Merge`: the most severe level and the highest utilization among the instances that count,
//! kept up to date as instances come, change and go, so reading it costs nothing per instance.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::Signal;
use crate::event::{BackpressureLevel, FairRates, FeedbackEvent};

/// A utilization ordered totally, to key a multiset.
#[derive(Debug, Clone, Copy)]
struct Utilization(f64);

impl PartialEq for Utilization {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Utilization {}

impl PartialOrd for Utilization {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Utilization {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Counts of the counting instances per level, and a multiset of their utilizations: a max
/// that survives removals (a plain running max could not forget the instance that set it).
#[derive(Debug, Clone, Default)]
pub(super) struct Merge {
    levels: [usize; 3],
    utilizations: BTreeMap<Utilization, usize>,
    /// Counting instances that publish no fair rates.
    fair_missing: usize,
    /// The sum of the others' fair rates.
    fair_sum: FairRates,
}

fn slot(level: BackpressureLevel) -> usize {
    match level {
        BackpressureLevel::Ok => 0,
        BackpressureLevel::Soft => 1,
        BackpressureLevel::Hard => 2,
    }
}

impl Merge {
    /// Counts `event` in.
    pub(super) fn add(&mut self, event: &FeedbackEvent) {
        self.levels[slot(event.level)] += 1;
        let u = event.utilization();
        // A NaN would never win `f64::max`, the merge this replaces; it is left out alike.
        if !u.is_nan() {
            *self.utilizations.entry(Utilization(u)).or_default() += 1;
        }
        match &event.fair_rates {
            Some(r) => self.fair_sum.add(r, 1.0),
            None => self.fair_missing += 1,
        }
    }

    /// Counts `event` out; it must have been counted in.
    pub(super) fn remove(&mut self, event: &FeedbackEvent) {
        let level = &mut self.levels[slot(event.level)];
        *level = level.saturating_sub(1);
        let u = Utilization(event.utilization());
        if let Some(n) = self.utilizations.get_mut(&u) {
            *n -= 1;
            if *n == 0 {
                self.utilizations.remove(&u);
            }
        }
        match &event.fair_rates {
            Some(r) => self.fair_sum.add(r, -1.0),
            None => self.fair_missing = self.fair_missing.saturating_sub(1),
        }
    }

    /// The merged signal under the silence ceiling `cap`.
    pub(super) fn signal(&self, cap: f64) -> Signal {
        const LEVELS: [BackpressureLevel; 3] = [
            BackpressureLevel::Ok,
            BackpressureLevel::Soft,
            BackpressureLevel::Hard,
        ];
        let level = (0..3)
            .rev()
            .find(|&i| self.levels[i] > 0)
            .map_or(BackpressureLevel::Ok, |i| LEVELS[i]);
        let instances = self.levels.iter().sum();
        let fair = (instances > 0 && self.fair_missing == 0).then(|| {
            // Sums of additions and removals may drift a hair below 0.
            let mut r = self.fair_sum;
            for c in crate::event::Class::ALL {
                r.set(c, r.get(c).max(0.0));
            }
            r
        });
        Signal {
            level,
            // The merge starts from a quiet 0.
            utilization: self
                .utilizations
                .last_key_value()
                .map_or(0.0, |(u, _)| u.0.max(0.0)),
            instances,
            cap,
            fair,
        }
    }
}
