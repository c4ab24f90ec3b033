//! A nats-jetstream trigger's lag, read from the NATS monitoring endpoint's `/jsz` as KEDA's
//! nats-jetstream scaler reads it (KEDA v2.20 `pkg/scalers/nats_jetstream_scaler.go`):
//! `num_pending + num_ack_pending` of the consumer; the stream's last sequence when the
//! consumer is missing; an error when the stream is.
//!
//! Unlike KEDA, explain asks only the endpoint given and does not look for the consumer's
//! leader in a cluster: point `--nats-monitor` at a server that has the stream.

use reqwest::Url;
use serde_json::Value;

use super::answer::{Answer, ReadError};
use super::http::parse;

/// `<endpoint>/jsz?acc=<account>&consumers=true&config=true`; an endpoint without a scheme
/// (`host:port`, as KEDA's metadata has it) is read over `http`.
pub(crate) fn url(endpoint: &str, account: &str) -> Result<Url, ReadError> {
    let endpoint = endpoint.trim_end_matches('/');
    let base = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let mut url = parse(&format!("{base}/jsz"))?;
    url.query_pairs_mut()
        .append_pair("acc", account)
        .append_pair("consumers", "true")
        .append_pair("config", "true");
    Ok(url)
}

/// The consumer's lag in `jsz`, and a remark when KEDA's reading is surprising.
pub(crate) fn lag(
    jsz: &Value,
    account: &str,
    stream: &str,
    consumer: &str,
) -> (Answer, Option<String>) {
    let named = |list: &Value, name: &str| {
        list.as_array()
            .and_then(|items| items.iter().find(|item| item["name"] == name))
            .cloned()
    };
    let Some(found) =
        named(&jsz["account_details"], account).and_then(|a| named(&a["stream_detail"], stream))
    else {
        return (
            Answer::Empty(format!("no stream {stream} in account {account}")),
            None,
        );
    };
    match named(&found["consumer_detail"], consumer) {
        Some(c) => {
            let count = |key: &str| c[key].as_u64().unwrap_or(0);
            let (pending, ack_pending) = (count("num_pending"), count("num_ack_pending"));
            (
                Answer::Value((pending + ack_pending) as f64),
                Some(format!(
                    "{pending} pending + {ack_pending} delivered unacknowledged"
                )),
            )
        }
        None => {
            let last = found["state"]["last_seq"].as_u64().unwrap_or(0);
            (
                Answer::Value(last as f64),
                Some(format!(
                    "no consumer {consumer} on {stream}: KEDA reads the stream's last sequence"
                )),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_without_a_scheme_are_http_and_the_account_is_escaped() {
        let u = url("nats.svc:8222", "$G")
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e.to_string());
        assert_eq!(
            u,
            "http://nats.svc:8222/jsz?acc=%24G&consumers=true&config=true"
        );
        let u = url("https://n:8222/", "A")
            .map(|u| u.to_string())
            .unwrap_or_else(|e| e.to_string());
        assert!(u.starts_with("https://n:8222/jsz?acc=A&"), "{u}");
    }

    #[test]
    fn lag_is_pending_plus_ack_pending_and_a_missing_consumer_reads_the_last_sequence() {
        let jsz = json!({"account_details": [{"name": "B", "stream_detail": [{
            "name": "W", "state": {"last_seq": 900},
            "consumer_detail": [{"name": "c", "num_pending": 100, "num_ack_pending": 20}]
        }]}]});
        let value = |(a, _): (Answer, Option<String>)| match a {
            Answer::Value(v) => Some(v),
            _ => None,
        };
        assert_eq!(value(lag(&jsz, "B", "W", "c")), Some(120.0));
        assert_eq!(value(lag(&jsz, "B", "W", "other")), Some(900.0));
        assert!(matches!(lag(&jsz, "B", "X", "c").0, Answer::Empty(_)));
        assert!(matches!(lag(&jsz, "Z", "W", "c").0, Answer::Empty(_)));
    }
}
