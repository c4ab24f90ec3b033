//! Why did (didn't) KEDA scale: each trigger of a ScaledObject read once from its live
//! source, and the [`autoscale`](crate::autoscale) model's verdict on those readings
//! (`backflow explain`).
//!
//! [`Reader`] asks each source what KEDA's scaler would (a Prometheus instant query, the
//! bridge's JSON at a `valueLocation`, a consumer's lag on the NATS monitoring endpoint),
//! at the ScaledObject's addresses or the [`Sources`] overrides; every failure becomes that
//! trigger's answer, never the whole command's. [`Explanation::new`] runs a fresh model once
//! on the answers; it prints as text (one line per trigger, then the policies and the
//! result) or [`to_json`](Explanation::to_json).
//!
//! One look sees no history: the HPA's past recommendations (its stabilization windows),
//! past scale events (its policies' periods) and KEDA's failure counts are what a fresh
//! HPA would have, i.e. the current count recommended just now and nothing else.

mod answer;
mod explanation;
mod http;
mod jetstream;
mod json;
mod metrics_api;
mod prometheus;
mod sources;
mod text;

pub use answer::{Answer, Observation, ReadError};
pub use explanation::{Explanation, TriggerExplanation};
pub use sources::{DEFAULT_TIMEOUT, Reader, Sources};

use crate::autoscale::{ModelParams, Replicas, ScaledObject};
use crate::invalid::InvalidSetting;

/// Why no explanation could be made at all (a trigger's failed read is not one: it is part
/// of the explanation).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The ScaledObject uses what the model does not cover.
    #[error("cannot model the ScaledObject")]
    Model(#[source] InvalidSetting),
}

/// Reads every trigger of `object` from `sources` and explains the model's decision with the
/// target at `replicas`, under the HPA controller's default parameters.
pub async fn explain(
    object: &ScaledObject,
    sources: Sources,
    replicas: Replicas,
) -> Result<Explanation, ExplainError> {
    let reader = Reader::new(sources).map_err(ExplainError::Client)?;
    let observations = reader.read_all(object).await;
    Explanation::new(object, ModelParams::default(), replicas, observations)
        .map_err(ExplainError::Model)
}
