//! One GET as KEDA's scalers make it: anything but 200 is an error, the body is JSON.

use reqwest::{Client, Url};
use serde_json::Value;

use super::answer::{ReadError, quote};
use crate::error::BoxError;

/// Parses `url`, naming it in the error.
pub(crate) fn parse(url: &str) -> Result<Url, ReadError> {
    Url::parse(url).map_err(|e| ReadError::Url {
        url: url.to_owned(),
        source: BoxError::from(e),
    })
}

/// GETs `url` and reads its body as JSON; a status other than 200 is an error quoting the
/// start of the body.
pub(crate) async fn get_json(client: &Client, url: &Url) -> Result<Value, ReadError> {
    // The query string is the trigger's own metadata; the address is what fails.
    let mut shown = url.clone();
    shown.set_query(None);
    let shown = shown.to_string();
    let request = |source: reqwest::Error| ReadError::Request {
        url: shown.clone(),
        source: source.without_url(),
    };
    let response = client.get(url.clone()).send().await.map_err(request)?;
    let status = response.status();
    let body = response.text().await.map_err(request)?;
    if status != reqwest::StatusCode::OK {
        return Err(ReadError::Status {
            url: shown,
            status: status.as_u16(),
            body: quote(&body),
        });
    }
    serde_json::from_str(&body).map_err(|source| ReadError::Json { url: shown, source })
}
