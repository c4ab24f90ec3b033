//! The explanation as text: one line per trigger, the policies, and the result.

use std::fmt::{self, Write as _};

use crate::autoscale::{
    Behavior, MetricType, PolicyType, Proposal, ScalingRules, SelectPolicy, Source,
};
use crate::error::Chain;

use super::answer::Answer;
use super::explanation::{Explanation, TriggerExplanation};

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.replicas;
        writeln!(
            f,
            "{}: {} ({} ready), replicas {}..{}, tolerance {}",
            display_name(&self.object.name),
            plural(r.current, "replica"),
            r.ready,
            self.object.hpa_min_replicas(),
            self.object.max_replica_count,
            band(self.tolerances.scale_down, self.tolerances.scale_up),
        )?;
        for t in &self.triggers {
            writeln!(f, "  {}", self.trigger_line(t))?;
        }
        writeln!(f, "policies: {}", self.policies())?;
        write!(
            f,
            "result: {} -> {}: {}",
            self.decision.current,
            plural(self.decision.desired, "replica"),
            self.decision.why
        )
    }
}

impl Explanation {
    /// One trigger's line: its value, target, ratio, tolerance, proposal, source and, for a
    /// failed read, what the fallback does.
    pub fn trigger_line(&self, t: &TriggerExplanation) -> String {
        let mut line = format!(
            "{} ({}, target {} {}): ",
            t.name,
            t.kind,
            t.target,
            t.metric_type.as_str()
        );
        let _ = match (&t.observation.answer, &t.verdict) {
            (Answer::Failed(e), _) => write!(line, "failed: {}", Chain(e)),
            (Answer::Empty(why), Some(v)) if v.value.is_ok() => write!(line, "{why}, read as 0"),
            (Answer::Empty(why), _) => write!(line, "empty: {why}"),
            (Answer::Value(value), _) => write!(line, "value {value}"),
        };
        match &t.verdict {
            Some(v) => {
                if let (Ok(value), Some(p)) = (&v.value, &v.proposal) {
                    line.push_str(", ");
                    line.push_str(&self.ratio(t.metric_type, *value, t.target, p));
                }
                match v.source {
                    Some(Source::Cached) => line.push_str(" [KEDA's cached value]"),
                    Some(Source::Fallback { replicas }) => {
                        let _ = write!(line, " [fallback: {}]", plural(replicas, "replica"));
                    }
                    Some(Source::Live) | None => {}
                }
                if v.value.is_err() {
                    line.push_str("; ");
                    line.push_str(&self.fallback());
                }
            }
            None => {
                if let Some(active) = t.active {
                    line.push_str(if active { " (active)" } else { " (inactive)" });
                }
            }
        }
        if let Some(note) = &t.observation.note {
            let _ = write!(line, " ({note})");
        }
        line
    }

    /// `ratio 4 / (1 × 1) = 4.00, outside 0.90..1.10 -> ceil(4 / 1) = 4`.
    fn ratio(&self, metric_type: MetricType, value: f64, target: f64, p: &Proposal) -> String {
        let current = self.replicas.current;
        let ratio = match metric_type {
            MetricType::AverageValue => format!("ratio {value} / ({target} × {current})"),
            MetricType::Value => format!("ratio {value} / {target}"),
        };
        let tolerance = band(self.tolerances.scale_down, self.tolerances.scale_up);
        if p.within_tolerance {
            return format!(
                "{ratio} = {:.2}, within {tolerance} -> stays at {}",
                p.ratio,
                plural(p.replicas, "replica")
            );
        }
        let asked = match metric_type {
            MetricType::AverageValue => format!("ceil({value} / {target})"),
            MetricType::Value if current == 0 => format!("ceil({:.2})", p.ratio),
            MetricType::Value => format!("ceil({:.2} × {} ready)", p.ratio, self.replicas.ready),
        };
        format!(
            "{ratio} = {:.2}, outside {tolerance} -> {asked} = {}",
            p.ratio,
            plural(p.replicas, "replica")
        )
    }

    /// What KEDA does about a trigger that gave no value.
    fn fallback(&self) -> String {
        match self.object.fallback {
            Some(f) => format!(
                "after more than {} failures in a row KEDA falls back to {}",
                f.failure_threshold,
                plural(
                    f.behavior.replicas(f.replicas, self.replicas.current),
                    "replica"
                )
            ),
            None => "no fallback: the HPA leaves it out and does not scale down".into(),
        }
    }

    /// The scaling rules each way, with their stabilization windows.
    pub fn policies(&self) -> String {
        let (up_s, down_s) = self.windows_s;
        match &self.object.behavior {
            Some(Behavior {
                scale_up,
                scale_down,
            }) => format!(
                "up {}, window {up_s} s; down {}, window {down_s} s",
                rules(scale_up, '+'),
                rules(scale_down, '-')
            ),
            None => format!(
                "no behavior: up to max(2 × current, 4) per sync; down after a {down_s} s window"
            ),
        }
    }
}

/// `max of +100 % / 15 s, +10 pods / 15 s`.
fn rules(rules: &ScalingRules, sign: char) -> String {
    let select = match rules.select_policy {
        SelectPolicy::Disabled => return "disabled".into(),
        SelectPolicy::Max => "max",
        SelectPolicy::Min => "min",
    };
    let policies: Vec<String> = rules
        .policies
        .iter()
        .map(|p| match p.kind {
            PolicyType::Pods => format!("{sign}{} / {} s", plural(p.value, "pod"), p.period_s),
            PolicyType::Percent => format!("{sign}{} % / {} s", p.value, p.period_s),
        })
        .collect();
    format!("{select} of {}", policies.join(", "))
}

/// `0.90..1.10`.
fn band(down: f64, up: f64) -> String {
    format!("{:.2}..{:.2}", 1.0 - down, 1.0 + up)
}

/// `1 replica`, `4 replicas`.
fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("{n} {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn display_name(name: &str) -> &str {
    if name.is_empty() {
        "ScaledObject"
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscale::{ModelParams, Replicas, ScaledObject};
    use crate::explain::{Observation, ReadError};

    fn deployed() -> ScaledObject {
        let file = format!(
            "{}/deploy/keda/scaledobject-coordinator.yaml",
            env!("CARGO_MANIFEST_DIR")
        );
        let yaml = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        ScaledObject::from_yaml(&yaml).unwrap_or_else(|e| panic!("{}", Chain(&e)))
    }

    fn explain(replicas: u32, answers: Vec<Answer>) -> Explanation {
        let observations = answers
            .into_iter()
            .map(|a| Observation::new(None, a))
            .collect();
        Explanation::new(
            &deployed(),
            ModelParams::default(),
            Replicas::from(replicas),
            observations,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn each_trigger_line_shows_ratio_tolerance_and_proposal_and_the_result_the_policies() {
        let e = explain(
            1,
            vec![
                Answer::Value(4.0),
                Answer::Value(0.0),
                Answer::Failed(ReadError::Series(2)),
            ],
        );
        let text = e.to_string();
        assert!(
            text.contains(
                "desired-replicas (prometheus, target 1 AverageValue): value 4, ratio 4 / (1 × 1) \
                 = 4.00, outside 0.90..1.10 -> ceil(4 / 1) = 4 replicas"
            ),
            "{text}"
        );
        assert!(
            text.contains("failed: the query returned 2 series; KEDA reads exactly one"),
            "{text}"
        );
        assert!(
            text.contains("after more than 3 failures in a row KEDA falls back to 4 replicas"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "result: 1 -> 4 replicas: HPA recommends 4, within policies and min/max"
            ),
            "{text}"
        );
        let json = e.to_json();
        assert_eq!(json["desired"], 4);
        assert_eq!(json["triggers"][0]["ratio"], 4.0);
        assert_eq!(json["triggers"][0]["within_tolerance"], false);
        assert_eq!(json["triggers"][2]["proposal"], serde_json::Value::Null);
    }

    #[test]
    fn a_ratio_within_tolerance_stays_and_a_fall_waits_for_the_window() {
        // 4 replicas: 4.2 / (1 × 4) = 1.05 stays at 4; 2 asks for 2, held up by the window.
        let e = explain(
            4,
            vec![Answer::Value(4.2), Answer::Value(0.0), Answer::Value(0.0)],
        );
        assert!(
            e.to_string()
                .contains("ratio 4.2 / (1 × 4) = 1.05, within 0.90..1.10 -> stays at 4 replicas"),
            "{e}"
        );
        let e = explain(
            4,
            vec![Answer::Value(2.0), Answer::Value(0.0), Answer::Value(0.0)],
        );
        assert!(
            e.to_string().ends_with(
                "result: 4 -> 4 replicas: HPA recommends 2, held up by the scale-down window \
                 at 4, within policies and min/max"
            ),
            "{e}"
        );
    }
}
