//! The explanation as JSON, for scripts: the same facts as the text, one object per trigger.

use serde::Serialize;

use crate::autoscale::Source;
use crate::error::Chain;

use super::answer::Answer;
use super::explanation::Explanation;

#[derive(Serialize)]
struct Json<'a> {
    scaled_object: &'a str,
    current: u32,
    ready: u32,
    min_replicas: u32,
    max_replicas: u32,
    tolerance: Band,
    triggers: Vec<TriggerJson<'a>>,
    policies: String,
    desired: u32,
    why: String,
}

#[derive(Serialize)]
struct Band {
    scale_down: f64,
    scale_up: f64,
}

#[derive(Serialize)]
struct TriggerJson<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    metric_type: &'a str,
    target: f64,
    /// The URL asked.
    asked: Option<&'a str>,
    /// The source's number.
    value: Option<f64>,
    /// Why the source had nothing.
    empty: Option<&'a str>,
    /// Why the read failed, with its causes.
    error: Option<String>,
    note: Option<&'a str>,
    /// The value the HPA received (milli-rounded, 0 for an empty answer KEDA ignores, the
    /// fallback's value), when it read the metrics.
    hpa_value: Option<f64>,
    ratio: Option<f64>,
    within_tolerance: Option<bool>,
    proposal: Option<u32>,
    /// `live`, `cached` or `fallback`.
    source: Option<&'static str>,
    fallback_replicas: Option<u32>,
    active: Option<bool>,
    /// The text line.
    line: String,
}

impl Explanation {
    /// The explanation as a JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let triggers = self
            .triggers
            .iter()
            .map(|t| {
                let (value, empty, error) = match &t.observation.answer {
                    Answer::Value(v) => (Some(*v), None, None),
                    Answer::Empty(why) => (None, Some(why.as_str()), None),
                    Answer::Failed(e) => (None, None, Some(Chain(e).to_string())),
                };
                let verdict = t.verdict.as_ref();
                let proposal = verdict.and_then(|v| v.proposal);
                let source = verdict.and_then(|v| v.source);
                TriggerJson {
                    name: &t.name,
                    kind: t.kind,
                    metric_type: t.metric_type.as_str(),
                    target: t.target,
                    asked: t.observation.asked.as_deref(),
                    value,
                    empty,
                    error,
                    note: t.observation.note.as_deref(),
                    hpa_value: verdict.and_then(|v| v.value.ok()),
                    ratio: proposal.map(|p| p.ratio),
                    within_tolerance: proposal.map(|p| p.within_tolerance),
                    proposal: proposal.map(|p| p.replicas),
                    source: source.map(|s| match s {
                        Source::Live => "live",
                        Source::Cached => "cached",
                        Source::Fallback { .. } => "fallback",
                    }),
                    fallback_replicas: match source {
                        Some(Source::Fallback { replicas }) => Some(replicas),
                        _ => None,
                    },
                    active: t.active,
                    line: self.trigger_line(t),
                }
            })
            .collect();
        let json = Json {
            scaled_object: &self.object.name,
            current: self.replicas.current,
            ready: self.replicas.ready,
            min_replicas: self.object.hpa_min_replicas(),
            max_replicas: self.object.max_replica_count,
            tolerance: Band {
                scale_down: self.tolerances.scale_down,
                scale_up: self.tolerances.scale_up,
            },
            triggers,
            policies: self.policies(),
            desired: self.decision.desired,
            why: self.decision.why.to_string(),
        };
        // Plain structs of numbers and strings always serialize.
        serde_json::to_value(json).unwrap_or_default()
    }
}
