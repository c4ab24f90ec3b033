//! The store side over HTTP: each event POSTed as MessagePack to every agent's receiver.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Client, StatusCode, Url};
use tokio::task::JoinSet;

use super::{HttpEmitterConfig, HttpError};
use crate::bus::{BusError, FeedbackPublisher};
use crate::error::Chain;
use crate::event::{FeedbackEvent, encode};
use crate::invalid::InvalidSetting;

/// Most of an error response read to explain it, in bytes.
const MAX_ERROR_BODY: usize = 4 * 1024;

/// A [`FeedbackPublisher`] that POSTs each event to a list of receiver URLs at once.
///
/// A publish succeeds when every URL answered 2xx, or 409 (the receiver already had the
/// event, or a newer one: nothing left to deliver). Anything else, a transport error or a
/// timeout, fails the publish with a [`BusError`] naming each failed URL and why; the
/// URLs that succeeded still got the event. Redirects are not followed.
#[derive(Debug, Clone)]
pub struct HttpPublisher {
    client: Client,
    urls: Vec<Url>,
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl HttpPublisher {
    /// A publisher for validated `config`.
    ///
    /// Installs rustls' `ring` crypto provider as the process default if none is installed,
    /// as the HTTP client needs one for `https` URLs.
    pub fn new(config: &HttpEmitterConfig) -> Result<Self, HttpError> {
        config.validate()?;
        let urls = config.parsed_urls()?;
        let auth = match &config.token {
            Some(token) => {
                // Checked by `validate`: printable ASCII, so always a valid header value.
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| InvalidSetting::new("token", e.to_string()))?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        // Fails only when another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(HttpError::Client)?;
        Ok(Self {
            client,
            urls,
            auth,
            timeout,
        })
    }

    /// The receiver URLs.
    pub fn urls(&self) -> &[Url] {
        &self.urls
    }
}

#[async_trait]
impl FeedbackPublisher for HttpPublisher {
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError> {
        let body = encode(event);
        let mut posts = JoinSet::new();
        for (i, url) in self.urls.iter().enumerate() {
            let mut request = self
                .client
                .post(url.clone())
                .header(CONTENT_TYPE, "application/msgpack")
                .body(body.clone());
            if let Some(auth) = &self.auth {
                request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
            }
            let timeout = self.timeout;
            posts.spawn(async move { (i, post(request, timeout).await) });
        }
        let mut failures = Vec::new();
        while let Some(joined) = posts.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((i, Err(reason))) => failures.push((i, reason)),
                Err(e) => failures.push((usize::MAX, PostError::Task(e))),
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        failures.sort_by_key(|(i, _)| *i);
        let failures = failures
            .into_iter()
            .map(|(i, error)| (self.urls.get(i).map(Url::to_string), error))
            .collect();
        Err(BusError::new("http", PostFailures(failures)))
    }
}

/// Why one POST did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// No answer in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The request could not be sent.
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// The receiver refused it.
    #[error("HTTP {status}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    Refused {
        /// The status.
        status: StatusCode,
        /// The receiver's `error` field, when it sent one.
        reason: Option<String>,
    },
    /// The task sending it failed.
    #[error("a POST task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Every failed POST of one publish, with its URL.
#[derive(Debug, thiserror::Error)]
pub struct PostFailures(pub Vec<(Option<String>, PostError)>);

impl std::fmt::Display for PostFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (url, error)) in self.0.iter().enumerate() {
            let separator = if i == 0 { "" } else { "; " };
            match url {
                Some(url) => write!(f, "{separator}POST {url}: {}", Chain(error))?,
                None => write!(f, "{separator}{}", Chain(error))?,
            }
        }
        Ok(())
    }
}

/// Sends one request; `Err` says why it did not deliver.
async fn post(request: reqwest::RequestBuilder, timeout: Duration) -> Result<(), PostError> {
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Err(PostError::Timeout(timeout)),
        Err(e) => return Err(PostError::Request(e.without_url())),
    };
    let status = response.status();
    // Reading the (small) body lets the connection be reused.
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    if status.is_success() || status == StatusCode::CONFLICT {
        return Ok(());
    }
    let reason = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error")?.as_str().map(str::to_owned));
    Err(PostError::Refused { status, reason })
}
