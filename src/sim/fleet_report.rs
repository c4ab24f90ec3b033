//! A fleet scenario's trigger sets side by side: the comparison table, the expected-range
//! check, the CSV of every sample and a plot of demand, capacity and replicas.

use std::fmt::{self, Write as _};

use super::autoscaling::FleetTrace;
use super::fleet_figures::FleetFigures;
use super::scenario::Scenario;

/// Every trigger set's run (per policy) of one fleet scenario.
#[derive(Debug, Clone)]
pub struct FleetComparison {
    /// The scenario.
    pub scenario: Scenario,
    /// One trace per trigger set and policy.
    pub traces: Vec<FleetTrace>,
    /// The figures of each trace, same order.
    pub figures: Vec<FleetFigures>,
}

fn seconds(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "never".into()
    }
}

impl FleetComparison {
    /// The figures of `trigger_set`'s first run.
    pub fn get(&self, trigger_set: &str) -> Option<&FleetFigures> {
        self.figures.iter().find(|f| f.trigger_set == trigger_set)
    }

    /// Every figure outside the scenario's expected ranges.
    pub fn violations(&self) -> Vec<String> {
        let Some(spec) = &self.scenario.autoscale else {
            return Vec::new();
        };
        self.figures
            .iter()
            .flat_map(|f| match spec.expect.get(&f.trigger_set) {
                Some(expect) => expect.violations(f),
                None => Vec::new(),
            })
            .collect()
    }

    /// The comparison as a Markdown table.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| triggers | policy | reach s (max) | reversals/h | changes | peak replicas | replica-s / ideal | mean scale once scaled | mean scale | first down s | down settled s | drops | p99 wait ms |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for f in &self.figures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} | {} | {:.2} | {} | {:.3} | {} | {} | {} | {:.0} |",
                f.trigger_set,
                f.policy,
                seconds(f.reach_max_s),
                f.reversals_per_hour,
                f.changes,
                f.peak_replicas,
                f.replica_seconds_ratio,
                if f.mean_scale_scaled.is_nan() {
                    "never".to_owned()
                } else {
                    format!("{:.3}", f.mean_scale_scaled)
                },
                f.mean_scale,
                seconds(f.first_down_s),
                seconds(f.down_settle_s),
                f.drops,
                f.p99_wait_ms,
            );
        }
        out
    }

    /// Every sample of every run, one line each.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "triggers,policy,t_s,replicas,ready,needed,desired,replica_capacity,demand_reported,demand_true,capacity_rows_per_s,scale,depth,written_total\n",
        );
        for trace in &self.traces {
            for s in &trace.samples {
                let desired = s.desired.map_or(String::new(), |d| d.to_string());
                let per_replica = s
                    .replica_capacity
                    .map_or(String::new(), |c| format!("{c:.0}"));
                let _ = writeln!(
                    out,
                    "{},{},{:.3},{},{},{},{desired},{per_replica},{:.1},{:.1},{:.0},{:.4},{},{}",
                    trace.trigger_set,
                    trace.policy,
                    s.t,
                    s.replicas,
                    s.ready,
                    s.needed,
                    s.demand,
                    s.true_demand,
                    s.capacity,
                    s.scale,
                    s.depth,
                    s.written,
                );
            }
        }
        out
    }
}

impl fmt::Display for FleetComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.scenario;
        let spec = s.autoscale.clone().unwrap_or_default();
        writeln!(
            f,
            "scenario {}: {} ({} s, replicas of {:.0} rows/s starting {} s after a scale-up, from {}, {} agents)",
            s.name,
            s.description.trim(),
            s.duration_s,
            s.sink.rows_per_sec,
            spec.pod_start_s,
            spec.initial_replicas,
            s.agents.count
        )?;
        f.write_str(&self.table())
    }
}
