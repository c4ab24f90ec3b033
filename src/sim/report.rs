//! A scenario's policies side by side: the comparison table, the expected-range check and
//! the CSV of every trace.

use std::fmt::{self, Write as _};

use super::expect::relative;
use super::figures::Figures;
use super::scenario::Scenario;
use super::world::Trace;
use crate::feedback::PolicyKind;

/// Every policy's run of one scenario.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The scenario.
    pub scenario: Scenario,
    /// One trace per policy, in the scenario's order.
    pub traces: Vec<Trace>,
    /// The figures of each trace, same order.
    pub figures: Vec<Figures>,
}

fn seconds(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}")
    } else {
        "never".into()
    }
}

impl Comparison {
    /// The figures of `policy`'s run, if it ran.
    pub fn get(&self, policy: PolicyKind) -> Option<&Figures> {
        self.figures.iter().find(|f| f.policy == policy)
    }

    /// Every figure outside the scenario's expected ranges, all policies.
    pub fn violations(&self) -> Vec<String> {
        let step = self.get(PolicyKind::Step);
        let proportional = self.get(PolicyKind::Proportional);
        self.figures
            .iter()
            .flat_map(|f| match self.scenario.expect.get(&f.policy) {
                Some(expect) => expect.violations(f, step, proportional),
                None => vec![],
            })
            .collect()
    }

    /// The comparison as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let steps: Vec<String> = self
            .figures
            .first()
            .map(|f| {
                f.steps
                    .iter()
                    .map(|s| format!("{:.1}×@{:.0}s", s.to, s.at_s))
                    .collect()
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| policy | sink util. | drops | p50 wait ms | p99 wait ms | flips/min | settle s ({}) | overshoot | fairness | served min | share error | mean scale | p99 vs step | flips vs step |",
            steps.join(", ")
        );
        let _ = writeln!(
            out,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        let step = self.get(PolicyKind::Step);
        for f in &self.figures {
            let rel = step.map(|s| relative(f, s));
            let rel_of = |name: &str| {
                rel.as_ref()
                    .and_then(|r| r.iter().find(|(n, _)| *n == name))
                    .map_or("–".into(), |(_, v)| {
                        if v.is_finite() {
                            format!("{v:.2}")
                        } else {
                            "∞".into()
                        }
                    })
            };
            let settle: Vec<String> = f.steps.iter().map(|s| seconds(s.settle_s)).collect();
            let _ = writeln!(
                out,
                "| {} | {:.1} % | {} | {:.0} | {:.0} | {:.1} | {} | {:.0} % | {:.3} | {:.3} | {:.3} | {:.2} | {} | {} |",
                f.policy,
                f.utilisation * 100.0,
                f.drops,
                f.p50_wait_ms,
                f.p99_wait_ms,
                f.flips_per_min,
                settle.join(" / "),
                f.overshoot_max() * 100.0,
                f.fairness,
                f.served_min,
                f.share_error,
                f.mean_scale,
                rel_of("p99_wait_ratio_to_step"),
                rel_of("flips_ratio_to_step"),
            );
        }
        out
    }

    /// Every sample of every run: one line per policy, time and store.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "policy,t_s,store,depth,utilization,level,scale,offered_total,written_total,dropped_total,capacity_rows_per_s\n",
        );
        let cap = self.scenario.store.capacity as f64;
        for trace in &self.traces {
            for s in &trace.samples {
                for (i, (depth, level)) in s.depth.iter().zip(&s.level).enumerate() {
                    let _ = writeln!(
                        out,
                        "{},{:.3},{i},{depth},{:.4},{},{:.4},{},{},{},{:.0}",
                        trace.policy,
                        s.t,
                        *depth as f64 / cap,
                        level,
                        s.scale,
                        s.offered,
                        s.written,
                        s.dropped,
                        s.capacity_rate
                    );
                }
            }
        }
        out
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scenario;
        writeln!(
            f,
            "scenario {}: {} ({} s, warm-up {} s, {} store(s) × {:.0} rows/s, queue {}, {} agents)",
            s.name,
            s.description.trim(),
            s.duration_s,
            s.warmup_s,
            s.store.count,
            s.sink.rows_per_sec,
            s.store.capacity,
            s.agents.count
        )?;
        f.write_str(&self.table())
    }
}
