//! Computes the figures of one run from its trace: utilisation, drops, queue wait, level
//! flips, settling and overshoot per load step, and fairness between agents.

use super::figures::{Figures, SETTLE_BAND, StepFigures, jain};
use super::scenario::Scenario;
use super::world::{Sample, Trace};
use crate::fleet::{Claim, allocate};

/// The depth is averaged over this long before settling is judged, seconds (batching makes
/// the raw depth a saw-tooth).
const SETTLE_SMOOTHING_S: f64 = 1.0;

/// The highest utilization over the stores of a sample.
fn utilization(sample: &Sample, capacity: f64) -> f64 {
    sample.depth.iter().copied().max().unwrap_or(0) as f64 / capacity
}

fn step_figures(
    scenario: &Scenario,
    samples: &[Sample],
    at_s: f64,
    end_s: f64,
    from: f64,
    to: f64,
) -> StepFigures {
    let cap = scenario.store.capacity as f64;
    let phase: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= at_s && s.t < end_s)
        .collect();
    let raw: Vec<f64> = phase.iter().map(|s| utilization(s, cap)).collect();
    let window = ((SETTLE_SMOOTHING_S * 1_000.0 / scenario.sample_ms as f64).round() as usize)
        .clamp(1, raw.len().max(1));
    let smooth: Vec<f64> = (0..raw.len())
        .map(|i| {
            let lo = (i + 1).saturating_sub(window);
            raw[lo..=i].iter().sum::<f64>() / (i + 1 - lo) as f64
        })
        .collect();
    let tail = &smooth[smooth.len() * 3 / 4..];
    let last = if tail.is_empty() {
        0.0
    } else {
        tail.iter().sum::<f64>() / tail.len() as f64
    };
    let settled_from = smooth
        .iter()
        .rposition(|u| (u - last).abs() > SETTLE_BAND)
        .map_or(Some(0), |i| (i + 1 < smooth.len()).then_some(i + 1));
    let settle_s = match settled_from {
        Some(i) => phase.get(i).map_or(f64::INFINITY, |s| s.t - at_s),
        None => f64::INFINITY,
    };
    let peak = raw.iter().copied().fold(0.0, f64::max);
    StepFigures {
        at_s,
        from,
        to,
        settle_s,
        // After a drop the queue starts high by definition; only rises can overshoot.
        overshoot: if to > from {
            (peak - last).max(0.0)
        } else {
            0.0
        },
    }
}

/// How the loop reacted to each change of load, the start first.
fn every_step(scenario: &Scenario, samples: &[Sample]) -> Vec<StepFigures> {
    let mut changes = vec![(0.0, 0.0, scenario.agents.factor_at(0.0))];
    changes.extend(scenario.load_steps());
    changes
        .iter()
        .enumerate()
        .map(|(i, &(at_s, from, to))| {
            let end_s = changes
                .get(i + 1)
                .map_or(scenario.duration_s + 1e-9, |c| c.0);
            step_figures(scenario, samples, at_s, end_s, from, to)
        })
        .collect()
}

/// How the agents' throughput over the window (`rows` each, over `seconds`) compares with
/// the max-min fair allocation of the sinks' mean capacity by class and weight: (the least
/// fraction of its demand an agent whose allocation is its whole demand got, the largest
/// relative distance of another's throughput from its allocation).
fn against_allocation(
    scenario: &Scenario,
    window: &[&Sample],
    rows: &[f64],
    seconds: f64,
) -> (f64, f64) {
    let agents = &scenario.agents;
    if seconds <= 0.0 || window.is_empty() {
        return (1.0, 0.0);
    }
    let n = window.len() as f64;
    let capacity = window.iter().map(|s| s.capacity_rate).sum::<f64>() / n;
    let equal = scenario.total_capacity() / agents.count as f64;
    let claims: Vec<Claim> = (0..agents.count)
        .map(|i| Claim {
            class: agents.class_of(i),
            weight: agents.weight_of(i),
            demand: window
                .iter()
                .filter(|s| agents.present(i, s.t))
                .map(|s| agents.factor_at(s.t))
                .sum::<f64>()
                / n
                * equal
                * agents.share_of(i),
        })
        .collect();
    let rates = allocate(capacity, &claims);
    let (mut served_min, mut error) = (1.0f64, 0.0f64);
    for (c, got) in claims.iter().zip(rows) {
        let got = got / seconds;
        let allocated = c.demand.min(c.weight * rates.get(c.class));
        if c.demand <= 0.0 {
            continue;
        }
        if allocated >= c.demand * (1.0 - 1e-9) {
            served_min = served_min.min(got / c.demand);
        } else if allocated > 0.0 {
            error = error.max((got / allocated - 1.0).abs());
        }
    }
    (served_min, error)
}

/// Computes the figures of `trace`.
pub fn figures(scenario: &Scenario, trace: &Trace) -> Figures {
    let samples = &trace.samples;
    let in_window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= scenario.warmup_s)
        .collect();
    let (first, last) = match (in_window.first(), in_window.last()) {
        (Some(f), Some(l)) => (*f, *l),
        _ => {
            return Figures::empty(trace.policy);
        }
    };
    let dt = scenario.sample_ms as f64 / 1_000.0;
    // Capacity offered in each sample interval, counted at its start.
    let possible: f64 = in_window
        .iter()
        .take(in_window.len().saturating_sub(1))
        .map(|s| s.capacity_rate * dt)
        .sum();
    let minutes = (last.t - first.t) / 60.0;
    let per_agent: Vec<f64> = trace
        .offered_at_end
        .iter()
        .zip(&trace.offered_at_warmup)
        .map(|(end, start)| end.saturating_sub(*start) as f64)
        .collect();
    let shares = against_allocation(scenario, &in_window, &per_agent, last.t - first.t);
    let steps = every_step(scenario, samples);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1_000.0;
    Figures {
        policy: trace.policy,
        utilisation: if possible > 0.0 {
            (last.written - first.written) as f64 / possible
        } else {
            0.0
        },
        drops: samples.last().map_or(0, |s| s.dropped),
        p50_wait_ms: trace
            .stores
            .iter()
            .map(|s| ms(s.wait_p50))
            .fold(0.0, f64::max),
        p99_wait_ms: trace
            .stores
            .iter()
            .map(|s| ms(s.wait_p99))
            .fold(0.0, f64::max),
        flips_per_min: if minutes > 0.0 {
            (last.flips - first.flips) as f64 / minutes
        } else {
            0.0
        },
        fairness: jain(&per_agent),
        mean_scale: in_window.iter().map(|s| s.scale).sum::<f64>() / in_window.len() as f64,
        served_min: shares.0,
        share_error: shares.1,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_is_one_when_equal_and_one_over_n_when_one_takes_all() {
        assert_eq!(jain(&[5.0, 5.0, 5.0, 5.0]), 1.0);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain(&[0.0, 0.0]), 1.0);
    }
}
