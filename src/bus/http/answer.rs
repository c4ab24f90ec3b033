//! What the receiver answers: every outcome of a request as a value, with its status, JSON
//! body and counter.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::HttpReceiverStats;
use crate::fleet::Observed;

/// The outcome of one `POST /feedback`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// The handler took the event (`Applied` or `Left`): 202.
    Accepted(Observed),
    /// The handler ignored the event (`Duplicate`, `OutOfOrder`, `TooOld`): 409.
    Ignored(Observed),
    /// Missing or wrong bearer token: 401.
    Unauthorized,
    /// The body exceeds this many bytes: 413.
    TooLarge(usize),
    /// A content type we do not decode (as sent, if any): 415.
    UnsupportedMediaType(Option<String>),
    /// The body is not a valid event, for this reason: 400.
    Invalid(String),
    /// The handler's queue is full: 503.
    QueueFull,
    /// The handler has stopped: 503.
    HandlerGone,
    /// The handler did not answer within this time: 503 (the event may still be applied).
    TimedOut(Duration),
}

impl From<Observed> for Answer {
    fn from(outcome: Observed) -> Self {
        match outcome {
            Observed::Applied | Observed::Left => Self::Accepted(outcome),
            Observed::Duplicate
            | Observed::OutOfOrder
            | Observed::TooOld
            | Observed::Unfollowed => Self::Ignored(outcome),
        }
    }
}

impl Answer {
    /// The HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Accepted(_) => StatusCode::ACCEPTED,
            Self::Ignored(_) => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::QueueFull | Self::HandlerGone | Self::TimedOut(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The JSON body: `{"outcome": ...}` when accepted, otherwise `{"error": ...}` (plus the
    /// `outcome` when the handler ignored the event).
    pub(crate) fn body(&self) -> serde_json::Value {
        let error = match self {
            Self::Accepted(outcome) => return json!({ "outcome": outcome.as_str() }),
            Self::Ignored(outcome) => {
                return json!({
                    "error": format!("event ignored: {}", outcome.as_str()),
                    "outcome": outcome.as_str(),
                });
            }
            Self::Unauthorized => "missing or invalid bearer token".to_owned(),
            Self::TooLarge(limit) => format!("body larger than {limit} bytes"),
            Self::UnsupportedMediaType(sent) => format!(
                "unsupported content type {}; expected application/msgpack, \
                 application/x-msgpack or application/json",
                sent.as_deref()
                    .map_or("(none)".to_owned(), |s| format!("{s:?}"))
            ),
            Self::Invalid(reason) => reason.clone(),
            Self::QueueFull => "feedback queue is full".to_owned(),
            Self::HandlerGone => "feedback handler is not running".to_owned(),
            Self::TimedOut(after) => {
                format!(
                    "feedback handler did not answer within {} ms",
                    after.as_millis()
                )
            }
        };
        json!({ "error": error })
    }

    fn counter<'a>(&self, stats: &'a HttpReceiverStats) -> &'a AtomicU64 {
        match self {
            Self::Accepted(_) => &stats.accepted,
            Self::Ignored(_) => &stats.ignored,
            Self::Unauthorized => &stats.unauthorized,
            Self::TooLarge(_) => &stats.too_large,
            Self::UnsupportedMediaType(_) => &stats.unsupported_media_type,
            Self::Invalid(_) => &stats.invalid,
            Self::QueueFull => &stats.queue_full,
            Self::HandlerGone | Self::TimedOut(_) => &stats.unanswered,
        }
    }

    /// Counts the answer and turns it into a response.
    pub(crate) fn respond(self, stats: &HttpReceiverStats) -> Response {
        self.counter(stats).fetch_add(1, Relaxed);
        let status = self.status();
        let body = self.body();
        tracing::debug!(status = status.as_u16(), %body, "Feedback request answered.");
        let mut response = (status, Json(body)).into_response();
        if self == Self::Unauthorized {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_outcomes_map_to_202_and_409() {
        for (outcome, status) in [
            (Observed::Applied, 202),
            (Observed::Left, 202),
            (Observed::Duplicate, 409),
            (Observed::OutOfOrder, 409),
            (Observed::TooOld, 409),
            (Observed::Unfollowed, 409),
        ] {
            let answer = Answer::from(outcome);
            assert_eq!(answer.status().as_u16(), status);
            assert_eq!(answer.body()["outcome"], outcome.as_str());
        }
        assert_eq!(
            Answer::from(Observed::Applied).body(),
            json!({"outcome": "applied"})
        );
    }

    #[test]
    fn each_answer_counts_once_in_its_own_counter() {
        let stats = HttpReceiverStats::default();
        for answer in [
            Answer::Unauthorized,
            Answer::TooLarge(1),
            Answer::UnsupportedMediaType(None),
            Answer::Invalid("x".into()),
            Answer::QueueFull,
        ] {
            let status = answer.status();
            assert_eq!(answer.respond(&stats).status(), status);
        }
        assert_eq!(stats.rejected(), 5);
        assert_eq!(stats.accepted.load(Relaxed), 0);
        let response = Answer::Unauthorized.respond(&stats);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
