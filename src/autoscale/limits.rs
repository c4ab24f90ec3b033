//! How far one HPA sync may move the replica count: the `behavior` policies over the scale
//! events of their periods (Kubernetes `calculateScaleUpLimitWithScalingRules`,
//! `calculateScaleDownLimitWithBehaviors`), and the older fixed limit used without
//! `behavior` (`calculateScaleUpLimit`).

use super::behavior_spec::{PolicyType, ScalingRules, SelectPolicy};
use super::history::{ScaleEvent, change_in_period};

/// Past scale events of both directions, as the policies see them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Events<'a> {
    pub(crate) up: &'a [ScaleEvent],
    pub(crate) down: &'a [ScaleEvent],
}

impl Events<'_> {
    /// The count at the start of a `period_s` window: the current one minus what was added
    /// and plus what was removed within it.
    fn period_start(&self, current: u32, now_s: f64, period_s: f64) -> i64 {
        i64::from(current) - change_in_period(self.up, now_s, period_s)
            + change_in_period(self.down, now_s, period_s)
    }
}

/// The most replicas `rules` allow now (may be below `current` while recent scale-ups use up
/// the period; the caller then holds at `current`).
pub(crate) fn scale_up_limit(
    current: u32,
    events: Events<'_>,
    rules: &ScalingRules,
    now_s: f64,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        // The smallest change up is the smallest count.
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let proposals = rules.policies.iter().map(|policy| {
        let start = events.period_start(current, now_s, f64::from(policy.period_s));
        match policy.kind {
            PolicyType::Pods => start + i64::from(policy.value),
            // Rounded up so that a small percentage still adds a pod.
            PolicyType::Percent => {
                (start as f64 * (1.0 + f64::from(policy.value) / 100.0)).ceil() as i64
            }
        }
    });
    proposals.reduce(pick).unwrap_or(i64::from(current))
}

/// The fewest replicas `rules` allow now (may be above `current` while recent scale-downs use
/// up the period; the caller then holds at `current`).
pub(crate) fn scale_down_limit(
    current: u32,
    events: Events<'_>,
    rules: &ScalingRules,
    now_s: f64,
) -> i64 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return i64::from(current),
        // The smallest change down is the largest count.
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    let proposals = rules.policies.iter().map(|policy| {
        let start = events.period_start(current, now_s, f64::from(policy.period_s));
        match policy.kind {
            PolicyType::Pods => start - i64::from(policy.value),
            // Go's int32 conversion truncates towards zero; so does `as`.
            PolicyType::Percent => (start as f64 * (1.0 - f64::from(policy.value) / 100.0)) as i64,
        }
    });
    proposals.reduce(pick).unwrap_or(i64::from(current))
}

/// Without `behavior`, one sync may at most double the count or reach 4, whichever is more.
pub(crate) fn legacy_scale_up_limit(current: u32) -> u32 {
    current.saturating_mul(2).max(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::behavior_spec::ScalingPolicy;
    use crate::autoscale::history::History;

    fn rules(select: SelectPolicy, policies: &[(PolicyType, u32, u32)]) -> ScalingRules {
        ScalingRules {
            stabilization_window_s: Some(0),
            select_policy: select,
            policies: policies
                .iter()
                .map(|&(kind, value, period_s)| ScalingPolicy {
                    kind,
                    value,
                    period_s,
                })
                .collect(),
            tolerance: None,
        }
    }

    const NONE: Events<'static> = Events { up: &[], down: &[] };

    #[test]
    fn default_scale_up_allows_the_larger_of_four_pods_and_doubling() {
        let up = ScalingRules::default_scale_up();
        assert_eq!(scale_up_limit(1, NONE, &up, 0.0), 5);
        assert_eq!(scale_up_limit(3, NONE, &up, 0.0), 7);
        assert_eq!(scale_up_limit(10, NONE, &up, 0.0), 20);
    }

    #[test]
    fn kubernetes_docs_scale_down_example_removes_eight_of_eighty_then_eight_of_seventy_two() {
        // Pods 4 / 60 s and Percent 10 / 60 s, selectPolicy Max (the default).
        let down = rules(
            SelectPolicy::Max,
            &[(PolicyType::Pods, 4, 60), (PolicyType::Percent, 10, 60)],
        );
        assert_eq!(scale_down_limit(80, NONE, &down, 0.0), 72);
        let mut h = History::default();
        h.store_event(0.0, 80, 72, 60.0);
        let events = Events {
            up: &h.scale_up_events,
            down: &h.scale_down_events,
        };
        // Within the minute the 8 already removed use the whole allowance.
        assert_eq!(scale_down_limit(72, events, &down, 30.0), 72);
        // A minute later: 10 % of 72 is 7.2, and the count 64.8 truncates to 64 (8 removed).
        assert_eq!(scale_down_limit(72, events, &down, 60.0), 64);
        // Below 40 replicas the Pods policy allows more: 4 at a time (30 -> 26, not 27).
        assert_eq!(scale_down_limit(30, NONE, &down, 0.0), 26);
    }

    #[test]
    fn select_min_picks_the_smallest_change_and_disabled_none() {
        let up = rules(
            SelectPolicy::Min,
            &[(PolicyType::Pods, 4, 15), (PolicyType::Percent, 100, 15)],
        );
        assert_eq!(scale_up_limit(10, NONE, &up, 0.0), 14);
        let off = rules(SelectPolicy::Disabled, &[(PolicyType::Pods, 4, 15)]);
        assert_eq!(scale_up_limit(10, NONE, &off, 0.0), 10);
        assert_eq!(scale_down_limit(10, NONE, &off, 0.0), 10);
    }

    #[test]
    fn a_scale_down_in_the_period_raises_the_start_of_a_scale_up() {
        // 6 -> 4 at t=0, then at t=10 a 100 % policy doubles from the period start 6, not 4.
        let mut h = History::default();
        h.store_event(0.0, 6, 4, 15.0);
        let events = Events {
            up: &h.scale_up_events,
            down: &h.scale_down_events,
        };
        let up = rules(SelectPolicy::Max, &[(PolicyType::Percent, 100, 15)]);
        assert_eq!(scale_up_limit(4, events, &up, 10.0), 12);
    }

    #[test]
    fn legacy_limit_is_double_or_four() {
        assert_eq!(legacy_scale_up_limit(1), 4);
        assert_eq!(legacy_scale_up_limit(3), 6);
    }
}
