//! What one trigger's source answered, with the details the model's [`Reading`] drops: where
//! it was asked, why nothing came back, and how a read failed.

use crate::autoscale::Reading;
use crate::error::BoxError;

/// Most of an error response quoted in a [`ReadError::Status`], in characters.
pub(crate) const MAX_QUOTED_BODY: usize = 300;

/// One trigger's source, read once.
#[derive(Debug)]
pub struct Observation {
    /// What was asked (a URL), when explain got as far as building one.
    pub asked: Option<String>,
    /// The answer.
    pub answer: Answer,
    /// A remark on how the scaler reads this answer (a missing consumer read as the stream's
    /// last sequence, a Prometheus NaN read as no value).
    pub note: Option<String>,
}

/// What the source answered.
#[derive(Debug)]
pub enum Answer {
    /// A number.
    Value(f64),
    /// The source answered with nothing to read: what is missing.
    Empty(String),
    /// The source could not be read, or its answer is one KEDA refuses.
    Failed(ReadError),
}

impl Answer {
    /// The reading the model takes.
    pub fn reading(&self) -> Reading {
        match self {
            Self::Value(v) => Reading::Value(*v),
            Self::Empty(_) => Reading::Empty,
            Self::Failed(_) => Reading::Failed,
        }
    }
}

impl Observation {
    /// `answer` to the question `asked`.
    pub(crate) fn new(asked: impl Into<Option<String>>, answer: Answer) -> Self {
        Self {
            asked: asked.into(),
            answer,
            note: None,
        }
    }

    /// The same, with a remark.
    #[must_use]
    pub(crate) fn noting(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The address is not in the ScaledObject (a TriggerAuthentication supplies it) and no
    /// override was given.
    #[error("no {what} in the ScaledObject (a TriggerAuthentication supplies it): pass {flag}")]
    NoAddress {
        /// What is missing (`natsServerMonitoringEndpoint`).
        what: &'static str,
        /// The command-line option that supplies it.
        flag: &'static str,
    },
    /// The URL does not parse.
    #[error("invalid URL {url:?}")]
    Url {
        /// The URL.
        url: String,
        /// The parser's complaint.
        #[source]
        source: BoxError,
    },
    /// No answer: connection refused, DNS, timeout.
    #[error("cannot reach {url}")]
    Request {
        /// The URL asked.
        url: String,
        /// The client's error.
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than 200 (KEDA's scalers accept nothing else).
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A body that is not JSON.
    #[error("{url} did not answer JSON")]
    Json {
        /// The URL asked.
        url: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// JSON of an unexpected shape.
    #[error("unexpected answer from {url}: {what}")]
    Shape {
        /// The URL asked.
        url: String,
        /// What was expected and not found.
        what: String,
    },
    /// Prometheus refused the query (`"status": "error"`).
    #[error("Prometheus refused the query: {kind}: {message}")]
    Prometheus {
        /// `errorType`.
        kind: String,
        /// `error`.
        message: String,
    },
    /// More than one series: KEDA's Prometheus scaler refuses the answer.
    #[error("the query returned {0} series; KEDA reads exactly one (aggregate it, e.g. max(...))")]
    Series(usize),
    /// A metrics-api `valueLocation` that holds something other than a number.
    #[error("{location} holds {found}, not a number")]
    NotANumber {
        /// The `valueLocation`.
        location: String,
        /// What it holds.
        found: String,
    },
    /// A metrics-api `format` explain does not read.
    #[error("metrics-api format {0:?}: explain reads json only")]
    Format(String),
}

/// The first [`MAX_QUOTED_BODY`] characters of `body`, on one line.
pub(crate) fn quote(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_QUOTED_BODY) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_map_to_the_models_readings_and_bodies_are_quoted_short() {
        assert_eq!(Answer::Value(2.0).reading(), Reading::Value(2.0));
        assert_eq!(Answer::Empty("no series".into()).reading(), Reading::Empty);
        assert_eq!(
            Answer::Failed(ReadError::Series(2)).reading(),
            Reading::Failed
        );
        assert_eq!(quote("a\n  b"), "a b");
        assert_eq!(quote(&"x".repeat(400)).chars().count(), MAX_QUOTED_BODY + 1);
    }
}
