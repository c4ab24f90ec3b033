//! Settings of the HTTP receiver and emitter, with their range checks.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

/// A setting out of range, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid http setting {key}: {reason}")]
pub struct HttpConfigError {
    /// The key, as written in YAML.
    pub key: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl HttpConfigError {
    fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }
}

/// How the agent's `POST /feedback` endpoint listens and what it accepts.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpReceiverConfig {
    /// Address to bind (default `0.0.0.0:8080`); used by
    /// [`HttpReceiver::serve`](super::HttpReceiver::serve) only.
    pub listen: SocketAddr,
    /// When set, requests must carry `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest request body accepted, in bytes (default 16 KiB; an event is about 170).
    pub max_body_bytes: usize,
    /// Events waiting for the handler before requests are refused with 503 (default 1024).
    pub queue: usize,
    /// How long a request waits for the handler's verdict before answering 503, in
    /// milliseconds (default 2000).
    pub reply_timeout_ms: u64,
}

impl Default for HttpReceiverConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
            token: None,
            max_body_bytes: 16 * 1024,
            queue: 1024,
            reply_timeout_ms: 2_000,
        }
    }
}

impl fmt::Debug for HttpReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpReceiverConfig")
            .field("listen", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_body_bytes", &self.max_body_bytes)
            .field("queue", &self.queue)
            .field("reply_timeout_ms", &self.reply_timeout_ms)
            .finish()
    }
}

impl HttpReceiverConfig {
    /// Checks ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        validate_token(self.token.as_deref())?;
        if self.max_body_bytes == 0 {
            return Err(HttpConfigError::new("max_body_bytes", "must be at least 1"));
        }
        if self.queue == 0 {
            return Err(HttpConfigError::new("queue", "must be at least 1"));
        }
        if self.reply_timeout_ms == 0 {
            return Err(HttpConfigError::new(
                "reply_timeout_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// Where a store posts its feedback events.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpEmitterConfig {
    /// Full `http://` or `https://` URLs of the agents' receivers, path included
    /// (e.g. `http://agent-0:8080/feedback`). Every event goes to all of them.
    pub urls: Vec<String>,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// Time allowed for each request, connecting included, in milliseconds (default 2000).
    pub timeout_ms: u64,
}

impl Default for HttpEmitterConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            token: None,
            timeout_ms: 2_000,
        }
    }
}

impl fmt::Debug for HttpEmitterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpEmitterConfig")
            .field("urls", &self.urls)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl HttpEmitterConfig {
    /// Checks that there is at least one URL, that each parses as `http` or `https` with a
    /// host, and ranges, naming the offending key.
    pub fn validate(&self) -> Result<(), HttpConfigError> {
        self.parsed_urls()?;
        validate_token(self.token.as_deref())?;
        if self.timeout_ms == 0 {
            return Err(HttpConfigError::new("timeout_ms", "must be at least 1"));
        }
        Ok(())
    }

    /// The URLs, parsed and checked.
    pub(crate) fn parsed_urls(&self) -> Result<Vec<reqwest::Url>, HttpConfigError> {
        if self.urls.is_empty() {
            return Err(HttpConfigError::new("urls", "must list at least one URL"));
        }
        self.urls
            .iter()
            .map(|raw| {
                let url = reqwest::Url::parse(raw)
                    .map_err(|e| HttpConfigError::new("urls", format!("{raw:?}: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(HttpConfigError::new(
                        "urls",
                        format!("{raw:?}: scheme must be http or https"),
                    ));
                }
                if url.host().is_none() {
                    return Err(HttpConfigError::new("urls", format!("{raw:?}: no host")));
                }
                Ok(url)
            })
            .collect()
    }
}

/// A token must fit an `Authorization` header as one word.
fn validate_token(token: Option<&str>) -> Result<(), HttpConfigError> {
    match token {
        Some("") => Err(HttpConfigError::new("token", "must not be empty")),
        Some(t) if !t.bytes().all(|b| b.is_ascii_graphic()) => Err(HttpConfigError::new(
            "token",
            "must be printable ASCII without spaces",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_tokens_are_redacted() {
        let receiver = HttpReceiverConfig {
            token: Some("s3cret".into()),
            ..HttpReceiverConfig::default()
        };
        assert_eq!(receiver.validate(), Ok(()));
        assert_eq!(receiver.listen.to_string(), "0.0.0.0:8080");
        assert!(!format!("{receiver:?}").contains("s3cret"));
        let emitter = HttpEmitterConfig {
            urls: vec!["http://agent:8080/feedback".into()],
            token: Some("s3cret".into()),
            ..HttpEmitterConfig::default()
        };
        assert_eq!(emitter.validate(), Ok(()));
        assert!(!format!("{emitter:?}").contains("s3cret"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |c: HttpReceiverConfig| c.validate().err().map(|e| e.key);
        let base = HttpReceiverConfig::default;
        for (config, expected) in [
            (
                HttpReceiverConfig {
                    token: Some(String::new()),
                    ..base()
                },
                "token",
            ),
            (
                HttpReceiverConfig {
                    token: Some("a b".into()),
                    ..base()
                },
                "token",
            ),
            (
                HttpReceiverConfig {
                    max_body_bytes: 0,
                    ..base()
                },
                "max_body_bytes",
            ),
            (HttpReceiverConfig { queue: 0, ..base() }, "queue"),
            (
                HttpReceiverConfig {
                    reply_timeout_ms: 0,
                    ..base()
                },
                "reply_timeout_ms",
            ),
        ] {
            assert_eq!(key(config), Some(expected));
        }
        for urls in [
            vec![],
            vec!["ftp://a/b"],
            vec!["not a url"],
            vec!["http://a/", "x"],
        ] {
            let config = HttpEmitterConfig {
                urls: urls.iter().map(|u| u.to_string()).collect(),
                ..HttpEmitterConfig::default()
            };
            assert_eq!(
                config.validate().err().map(|e| e.key),
                Some("urls"),
                "{urls:?}"
            );
        }
        let config = HttpEmitterConfig {
            urls: vec!["https://a:1/feedback".into()],
            timeout_ms: 0,
            ..HttpEmitterConfig::default()
        };
        assert_eq!(config.validate().err().map(|e| e.key), Some("timeout_ms"));
    }
}
