//! A prometheus trigger's query, asked of Prometheus' HTTP API and read as KEDA's Prometheus
//! scaler reads it (KEDA v2.20 `pkg/scalers/prometheus_scaler.go`): an instant vector of
//! at most one series.

use reqwest::Url;
use serde_json::Value;

use super::answer::{Answer, ReadError};
use super::http::parse;

/// `<server>/api/v1/query?query=<query>` (KEDA appends the path to `serverAddress` as is).
pub(crate) fn url(server: &str, query: &str) -> Result<Url, ReadError> {
    let mut url = parse(&format!("{}/api/v1/query", server.trim_end_matches('/')))?;
    url.query_pairs_mut().append_pair("query", query);
    Ok(url)
}

/// What the scaler makes of the API's `body`: no series is an empty answer (the model then
/// applies `ignoreNullValues`), one its value, more than one an error.
pub(crate) fn answer(url: &Url, body: &Value) -> Answer {
    let shape = |what: &str| {
        Answer::Failed(ReadError::Shape {
            url: url.to_string(),
            what: what.to_owned(),
        })
    };
    if body["status"] != "success" {
        let text = |key: &str| body[key].as_str().unwrap_or("(none)").to_owned();
        return Answer::Failed(ReadError::Prometheus {
            kind: text("errorType"),
            message: text("error"),
        });
    }
    if body["data"]["resultType"] != "vector" {
        return shape(&format!(
            "resultType {}, KEDA reads an instant vector",
            body["data"]["resultType"]
        ));
    }
    let Some(result) = body["data"]["result"].as_array() else {
        return shape("no data.result array");
    };
    match result.as_slice() {
        [] => Answer::Empty("the query returned no series".into()),
        [one] => match one["value"][1].as_str().and_then(number) {
            Some(v) => Answer::Value(v),
            None => shape(&format!("a sample value {}", one["value"])),
        },
        more => Answer::Failed(ReadError::Series(more.len())),
    }
}

/// A sample value as Prometheus writes it (`"4"`, `"0.5"`, `"NaN"`, `"+Inf"`, `"-Inf"`).
fn number(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(body: Value) -> Answer {
        let url = url("http://prometheus:9090/", "max(up)").unwrap_or_else(|e| panic!("{e}"));
        answer(&url, &body)
    }

    #[test]
    fn the_query_goes_in_the_query_string_after_the_server_address() {
        let u = url("http://p:9090/prefix/", r#"max(x{a="b"})"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(u.path(), "/prefix/api/v1/query");
        assert_eq!(
            u.query_pairs()
                .next()
                .map(|(k, v)| (k.into_owned(), v.into_owned())),
            Some(("query".into(), r#"max(x{a="b"})"#.into()))
        );
    }

    #[test]
    fn one_series_is_its_value_none_is_empty_and_more_fail() {
        let vector = |result: Value| json!({"status": "success", "data": {"resultType": "vector", "result": result}});
        let sample = |v: &str| json!({"metric": {}, "value": [1.0, v]});
        assert!(matches!(read(vector(json!([sample("4")]))), Answer::Value(v) if v == 4.0));
        assert!(
            matches!(read(vector(json!([sample("+Inf")]))), Answer::Value(v) if v.is_infinite())
        );
        assert!(matches!(read(vector(json!([]))), Answer::Empty(_)));
        assert!(matches!(
            read(vector(json!([sample("1"), sample("2")]))),
            Answer::Failed(ReadError::Series(2))
        ));
        assert!(matches!(
            read(
                json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2"]}})
            ),
            Answer::Failed(ReadError::Shape { .. })
        ));
        let refused =
            read(json!({"status": "error", "errorType": "bad_data", "error": "parse error"}));
        match refused {
            Answer::Failed(e) => assert_eq!(
                e.to_string(),
                "Prometheus refused the query: bad_data: parse error"
            ),
            other => panic!("{other:?}"),
        }
    }
}
