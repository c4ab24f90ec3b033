//! Settings of the HTTP receiver and emitter, with their range checks.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;

use crate::invalid::{InvalidSetting, at_least_one};

/// The HTTP transport (`http:`): the agent's receiver and the store's emitter.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// The agent's `POST /feedback` receiver.
    pub receiver: HttpReceiverConfig,
    /// The store's emitter (used when `urls` is not empty).
    pub emitter: HttpEmitterConfig,
}

impl HttpConfig {
    /// Checks the receiver, and the emitter when it has URLs, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.receiver.validate().map_err(|e| e.under("receiver"))?;
        if self.emitter.is_enabled() {
            self.emitter.validate().map_err(|e| e.under("emitter"))?;
        }
        Ok(())
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
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        validate_token(self.token.as_deref())?;
        at_least_one(&[
            ("max_body_bytes", self.max_body_bytes as u64),
            ("queue", self.queue as u64),
            ("reply_timeout_ms", self.reply_timeout_ms),
        ])
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
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        self.parsed_urls()?;
        validate_token(self.token.as_deref())?;
        at_least_one(&[("timeout_ms", self.timeout_ms)])
    }

    /// Whether events are posted at all (some URL is configured).
    pub fn is_enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    /// The URLs, parsed and checked.
    pub(crate) fn parsed_urls(&self) -> Result<Vec<reqwest::Url>, InvalidSetting> {
        if self.urls.is_empty() {
            return Err(InvalidSetting::new("urls", "must list at least one URL"));
        }
        self.urls
            .iter()
            .map(|raw| {
                let url = reqwest::Url::parse(raw)
                    .map_err(|e| InvalidSetting::new("urls", format!("{raw:?}: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(InvalidSetting::new(
                        "urls",
                        format!("{raw:?}: scheme must be http or https"),
                    ));
                }
                if url.host().is_none() {
                    return Err(InvalidSetting::new("urls", format!("{raw:?}: no host")));
                }
                Ok(url)
            })
            .collect()
    }
}

/// A token must fit an `Authorization` header as one word.
fn validate_token(token: Option<&str>) -> Result<(), InvalidSetting> {
    match token {
        Some("") => Err(InvalidSetting::new("token", "must not be empty")),
        Some(t) if !t.bytes().all(|b| b.is_ascii_graphic()) => Err(InvalidSetting::new(
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
            assert_eq!(key(config).as_deref(), Some(expected));
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
                config.validate().err().map(|e| e.key).as_deref(),
                Some("urls"),
                "{urls:?}"
            );
        }
        let config = HttpEmitterConfig {
            urls: vec!["https://a:1/feedback".into()],
            timeout_ms: 0,
            ..HttpEmitterConfig::default()
        };
        assert_eq!(
            config.validate().err().map(|e| e.key).as_deref(),
            Some("timeout_ms")
        );
    }
}
