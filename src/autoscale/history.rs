//! The HPA controller's memory of one autoscaler: its past recommendations (for the
//! stabilization windows) and its past scale events (for the behavior policies), kept,
//! compared and recycled exactly as Kubernetes' `horizontal.go` does.
//!
//! Kubernetes compares times strictly: a recommendation counts in a window when it is
//! *after* `now - window`, a scale event in a policy period when it is *after*
//! `now - period`. An event exactly one period old no longer counts.

/// A recommendation (the replicas the metrics asked for, before stabilization) and when.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Recommendation {
    at_s: f64,
    replicas: u32,
}

/// A scale event: how many pods one rescale added (or removed) and when.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScaleEvent {
    pub(crate) at_s: f64,
    pub(crate) change: u32,
    /// Older than the direction's longest policy period when last checked: free for reuse.
    outdated: bool,
}

/// What stabilization did to a recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stabilization {
    /// Nothing: the recommendation stands.
    None,
    /// A lower recommendation within the scale-up window held the count down.
    ScaleUpStabilized,
    /// A higher recommendation within the scale-down window held the count up.
    ScaleDownStabilized,
}

/// Recommendations and scale events of one HPA.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    recommendations: Vec<Recommendation>,
    pub(crate) scale_up_events: Vec<ScaleEvent>,
    pub(crate) scale_down_events: Vec<ScaleEvent>,
}

impl History {
    /// At the first sync the controller records the current count as if it had been
    /// recommended, so that a new HPA does not scale down before a whole window has passed.
    pub(crate) fn record_initial(&mut self, now_s: f64, current: u32) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                at_s: now_s,
                replicas: current,
            });
        }
    }

    /// `stabilizeRecommendationWithBehaviors`: the lowest recommendation of the scale-up
    /// window bounds a rise, the highest of the scale-down window bounds a fall; then
    /// `desired` is remembered. Returns the stabilized count and what stabilization did.
    pub(crate) fn stabilize(
        &mut self,
        now_s: f64,
        current: u32,
        desired: u32,
        up_window_s: f64,
        down_window_s: f64,
    ) -> (u32, Stabilization) {
        let up_cutoff = now_s - up_window_s;
        let down_cutoff = now_s - down_window_s;
        let (mut up, mut down) = (desired, desired);
        let mut old = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if rec.at_s > up_cutoff {
                up = up.min(rec.replicas);
            }
            if rec.at_s > down_cutoff {
                down = down.max(rec.replicas);
            }
            if rec.at_s < up_cutoff && rec.at_s < down_cutoff {
                old = Some(i);
            }
        }
        // The count moves towards `desired` only as far as both windows allow.
        let stabilized = current.max(up).min(down);
        self.remember(
            old,
            Recommendation {
                at_s: now_s,
                replicas: desired,
            },
        );
        let why = match stabilized == desired {
            true => Stabilization::None,
            false if desired >= current => Stabilization::ScaleUpStabilized,
            false => Stabilization::ScaleDownStabilized,
        };
        (stabilized, why)
    }

    /// `stabilizeRecommendation`, the path without `behavior`: the highest recommendation of
    /// the last `window_s` (the controller's downscale-stabilization flag), `desired` included.
    pub(crate) fn stabilize_legacy(&mut self, now_s: f64, desired: u32, window_s: f64) -> u32 {
        let cutoff = now_s - window_s;
        let mut highest = desired;
        let mut old = None;
        for (i, rec) in self.recommendations.iter().enumerate() {
            if rec.at_s < cutoff {
                old = Some(i);
            } else {
                highest = highest.max(rec.replicas);
            }
        }
        self.remember(
            old,
            Recommendation {
                at_s: now_s,
                replicas: desired,
            },
        );
        highest
    }

    /// Kubernetes overwrites the last recommendation found too old, else appends.
    fn remember(&mut self, old: Option<usize>, rec: Recommendation) {
        match old.and_then(|i| self.recommendations.get_mut(i)) {
            Some(slot) => *slot = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// `storeScaleEvent`: remembers a rescale from `previous` to `new` at `now_s`, recycling
    /// an event older than `longest_period_s` of its direction when there is one.
    pub(crate) fn store_event(
        &mut self,
        now_s: f64,
        previous: u32,
        new: u32,
        longest_period_s: f64,
    ) {
        let (events, change) = if new > previous {
            (&mut self.scale_up_events, new - previous)
        } else {
            (&mut self.scale_down_events, previous - new)
        };
        let cutoff = now_s - longest_period_s;
        let mut old = None;
        for (i, event) in events.iter_mut().enumerate() {
            if event.at_s < cutoff {
                event.outdated = true;
            }
            if event.outdated {
                old = Some(i);
            }
        }
        let event = ScaleEvent {
            at_s: now_s,
            change,
            outdated: false,
        };
        match old.and_then(|i| events.get_mut(i)) {
            Some(slot) => *slot = event,
            None => events.push(event),
        }
    }
}

/// `getReplicasChangePerPeriod`: the pods added (or removed) by `events` in the last
/// `period_s` before `now_s`.
pub(crate) fn change_in_period(events: &[ScaleEvent], now_s: f64, period_s: f64) -> i64 {
    let cutoff = now_s - period_s;
    events
        .iter()
        .filter(|e| e.at_s > cutoff)
        .map(|e| i64::from(e.change))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_down_waits_for_the_highest_recommendation_to_leave_the_window() {
        let mut h = History::default();
        h.record_initial(0.0, 5);
        // Up window 0, down window 300: a fall to 2 is held at 5 while 5 is in the window.
        assert_eq!(
            h.stabilize(15.0, 5, 2, 0.0, 300.0),
            (5, Stabilization::ScaleDownStabilized)
        );
        assert_eq!(h.stabilize(299.0, 5, 2, 0.0, 300.0).0, 5);
        // At 300 s the initial 5 is exactly one window old: no longer after the cutoff.
        assert_eq!(
            h.stabilize(300.0, 5, 2, 0.0, 300.0),
            (2, Stabilization::None)
        );
    }

    #[test]
    fn scale_up_window_takes_the_lowest_recommendation() {
        let mut h = History::default();
        h.record_initial(0.0, 2);
        assert_eq!(
            h.stabilize(10.0, 2, 8, 60.0, 0.0),
            (2, Stabilization::ScaleUpStabilized)
        );
        assert_eq!(h.stabilize(20.0, 2, 6, 60.0, 0.0).0, 2);
        // At 61 s the initial 2 has left; the lowest within the window is 6.
        assert_eq!(h.stabilize(61.0, 2, 8, 60.0, 0.0).0, 6);
    }

    #[test]
    fn legacy_path_takes_the_highest_recommendation_including_its_cutoff() {
        let mut h = History::default();
        h.record_initial(0.0, 4);
        assert_eq!(h.stabilize_legacy(300.0, 1, 300.0), 4);
        assert_eq!(h.stabilize_legacy(300.5, 1, 300.0), 1);
    }

    #[test]
    fn outdated_events_are_recycled_and_only_recent_ones_count() {
        let mut h = History::default();
        h.store_event(0.0, 1, 3, 60.0);
        h.store_event(30.0, 3, 5, 60.0);
        assert_eq!(change_in_period(&h.scale_up_events, 45.0, 60.0), 4);
        assert_eq!(change_in_period(&h.scale_up_events, 60.0, 60.0), 2);
        // The event at 0 s is older than 60 s at 70 s: its slot is reused.
        h.store_event(70.0, 5, 6, 60.0);
        assert_eq!(h.scale_up_events.len(), 2);
        assert_eq!(change_in_period(&h.scale_up_events, 70.5, 60.0), 3);
        h.store_event(80.0, 6, 4, 60.0);
        assert_eq!(change_in_period(&h.scale_down_events, 80.5, 15.0), 2);
    }
}
