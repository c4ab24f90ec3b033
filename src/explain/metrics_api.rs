//! A metrics-api trigger's document, fetched and read at its `valueLocation` as KEDA's
//! metrics-api scaler reads JSON (KEDA v2.20 `pkg/scalers/metrics_api_scaler.go`: a GJSON
//! path to a number, or to a string holding a Kubernetes quantity).

use reqwest::Url;
use serde_json::Value;

use super::answer::{Answer, ReadError};
use super::http::parse;

/// The trigger's `url`, its scheme, host and port replaced by `base` when given (`base`'s own
/// path goes in front of the trigger's, so that a `kubectl proxy` service path works).
pub(crate) fn url(trigger_url: &str, base: Option<&str>) -> Result<Url, ReadError> {
    let parsed = parse(trigger_url)?;
    let Some(base) = base else {
        return Ok(parsed);
    };
    let mut tail = parsed.path().to_owned();
    if let Some(query) = parsed.query() {
        tail.push('?');
        tail.push_str(query);
    }
    parse(&format!("{}{tail}", base.trim_end_matches('/')))
}

/// The number at `location` in `json`. Reads the GJSON paths KEDA users write: keys
/// separated by dots, array indexes as numbers (`coordinators.default.queue_depth`,
/// `items.0.value`); `\.` escapes a dot in a key.
pub(crate) fn value_at(json: &Value, location: &str) -> Answer {
    let mut at = json;
    for key in keys(location) {
        let next = match at {
            Value::Object(map) => map.get(&key),
            Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(v) => at = v,
            None => return Answer::Empty(format!("nothing at {location}")),
        }
    }
    let not_a_number = |found: String| {
        Answer::Failed(ReadError::NotANumber {
            location: location.to_owned(),
            found,
        })
    };
    match at {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| not_a_number(n.to_string()), Answer::Value),
        Value::String(s) => {
            quantity(s).map_or_else(|| not_a_number(format!("{s:?}")), Answer::Value)
        }
        Value::Null => Answer::Empty(format!("null at {location}")),
        other => not_a_number(other.to_string()),
    }
}

/// `location` split at unescaped dots.
fn keys(location: &str) -> Vec<String> {
    let mut keys = vec![String::new()];
    let mut chars = location.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(key)) = (chars.next(), keys.last_mut()) {
                    key.push(next);
                }
            }
            '.' => keys.push(String::new()),
            c => {
                if let Some(key) = keys.last_mut() {
                    key.push(c);
                }
            }
        }
    }
    keys
}

/// A Kubernetes quantity (`"1.5"`, `"250m"`, `"2k"`, `"1Gi"`, `"1e3"`) as a number.
fn quantity(text: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 13] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    let text = text.trim();
    if let Ok(v) = text.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    SUFFIXES.iter().find_map(|(suffix, factor)| {
        let number: f64 = text.strip_suffix(suffix)?.parse().ok()?;
        number.is_finite().then_some(number * factor)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn value(answer: Answer) -> Option<f64> {
        match answer {
            Answer::Value(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn a_base_replaces_the_origin_and_keeps_the_path() {
        let trigger = "http://backflow-bridge.svc:9464/api/v1/coordinators/default?x=1";
        let show = |base| {
            url(trigger, base)
                .map(|u| u.to_string())
                .unwrap_or_else(|e| e.to_string())
        };
        assert_eq!(show(None), trigger);
        assert_eq!(
            show(Some("http://127.0.0.1:1234/")),
            "http://127.0.0.1:1234/api/v1/coordinators/default?x=1"
        );
        assert_eq!(
            show(Some(
                "http://localhost:8001/api/v1/namespaces/m/services/b:9464/proxy"
            )),
            "http://localhost:8001/api/v1/namespaces/m/services/b:9464/proxy/api/v1/coordinators/default?x=1"
        );
        assert!(show(Some("not a url")).starts_with("invalid URL"));
    }

    #[test]
    fn dotted_paths_reach_numbers_and_quantities() {
        let doc = json!({
            "desired_replicas": 4,
            "coordinators": {"default": {"queue_depth": 2500.5}},
            "items": [{"v": "250m"}, {"v": "2k"}],
            "a.b": 7,
            "level": "ok",
            "gone": null,
        });
        assert_eq!(value(value_at(&doc, "desired_replicas")), Some(4.0));
        assert_eq!(
            value(value_at(&doc, "coordinators.default.queue_depth")),
            Some(2500.5)
        );
        assert_eq!(value(value_at(&doc, "items.0.v")), Some(0.25));
        assert_eq!(value(value_at(&doc, "items.1.v")), Some(2000.0));
        assert_eq!(value(value_at(&doc, r"a\.b")), Some(7.0));
        assert!(matches!(value_at(&doc, "nope.deeper"), Answer::Empty(_)));
        assert!(matches!(value_at(&doc, "gone"), Answer::Empty(_)));
        assert!(matches!(
            value_at(&doc, "level"),
            Answer::Failed(ReadError::NotANumber { .. })
        ));
        assert!(matches!(value_at(&doc, "coordinators"), Answer::Failed(_)));
        assert_eq!(quantity("1Gi"), Some(1_073_741_824.0));
        assert_eq!(quantity("NaN"), None);
    }
}
