//! The PromQL subset over series like the simulator's.

use super::*;

/// What the simulator's stores and bridge export: two store instances and the bridge.
fn fleet() -> Vec<Series> {
    vec![
        Series::new(
            "coordinator_queue_depth",
            &[("coordinator_id", "default"), ("instance", "store-0")],
            1_200.0,
        ),
        Series::new(
            "coordinator_queue_depth",
            &[("coordinator_id", "default"), ("instance", "store-1")],
            1_900.0,
        ),
        Series::new(
            "coordinator_queue_depth",
            &[("coordinator_id", "other"), ("instance", "store-9")],
            7_000.0,
        ),
        Series::new(
            "coordinator_backpressure_hard",
            &[("coordinator_id", "default")],
            0.0,
        ),
        Series::new(
            "coordinator_desired_replicas",
            &[("coordinator_id", "default")],
            3.0,
        ),
    ]
}

fn value(query: &str) -> Reading {
    Query::parse(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .reading(&fleet())
}

#[test]
fn aggregations_over_matched_series() {
    assert_eq!(
        value(r#"max(coordinator_queue_depth{coordinator_id="default"})"#),
        Reading::Value(1_900.0)
    );
    assert_eq!(
        value(r#"min(coordinator_queue_depth{coordinator_id="default"})"#),
        Reading::Value(1_200.0)
    );
    assert_eq!(
        value(r#"sum(coordinator_queue_depth{coordinator_id="default"})"#),
        Reading::Value(3_100.0)
    );
    assert_eq!(
        value(r#"avg(coordinator_queue_depth{coordinator_id="default"})"#),
        Reading::Value(1_550.0)
    );
    assert_eq!(
        value(r#"count(coordinator_queue_depth{coordinator_id!="default"})"#),
        Reading::Value(1.0)
    );
    assert_eq!(
        value("sum(coordinator_queue_depth)"),
        Reading::Value(10_100.0)
    );
    assert_eq!(
        value(r#" max ( coordinator_desired_replicas { coordinator_id = 'default' , } ) "#),
        Reading::Value(3.0)
    );
}

#[test]
fn keda_reads_no_series_as_empty_and_several_as_a_failure() {
    // An aggregation over nothing is an empty result, as in Prometheus.
    assert_eq!(
        value(r#"max(coordinator_queue_depth{coordinator_id="gone"})"#),
        Reading::Empty
    );
    assert_eq!(
        value(r#"coordinator_backpressure_hard{coordinator_id="default"}"#),
        Reading::Value(0.0)
    );
    // A bare selector over two instances: KEDA refuses more than one series.
    assert_eq!(
        value(r#"coordinator_queue_depth{coordinator_id="default"}"#),
        Reading::Failed
    );
}

#[test]
fn bare_selectors_keep_labels_and_name() {
    let q = Query::parse(r#"{__name__="coordinator_desired_replicas"}"#).expect("parses");
    let result = q.eval(&fleet());
    assert_eq!(result.len(), 1);
    assert_eq!(
        result[0].labels.get("__name__").map(String::as_str),
        Some("coordinator_desired_replicas")
    );
    assert_eq!(
        result[0].labels.get("coordinator_id").map(String::as_str),
        Some("default")
    );
    // A missing label matches "" like in Prometheus.
    assert_eq!(
        value(r#"count(coordinator_queue_depth{zone=""})"#),
        Reading::Value(3.0)
    );
    assert_eq!(
        value(r#"count(coordinator_backpressure_hard{instance!="x"})"#),
        Reading::Value(1.0)
    );
}

#[test]
fn everything_else_is_refused_with_what_and_where() {
    let refused = |q: &str| Query::parse(q).expect_err(q);
    let unsupported = |q: &str| match refused(q) {
        QueryError::Unsupported { at, what } => (at, what),
        other => panic!("{q}: {other}"),
    };
    assert_eq!(unsupported("rate(m[5m])"), (0, "function rate()".into()));
    assert_eq!(
        unsupported("sum by (instance) (m)").1,
        "grouping (by/without)"
    );
    assert_eq!(unsupported("sum(m) by (instance)").0, 7);
    assert_eq!(unsupported(r#"m{a=~"x.*"}"#).1, "a regex matcher");
    assert_eq!(unsupported("m[5m]").1, "a range selector");
    assert!(unsupported("max(m) / 2").1.contains('/'));
    assert!(unsupported("m offset 5m").1.contains("offset"));
    assert!(matches!(refused(""), QueryError::Malformed { .. }));
    assert!(matches!(
        refused(r#"{a!="x"}"#),
        QueryError::Malformed { .. }
    ));
    assert!(matches!(
        refused(r#"max(m{a="x)"#),
        QueryError::Malformed { .. }
    ));
    assert!(matches!(refused("max(m"), QueryError::Malformed { .. }));
    let message = refused("rate(m[5m])").to_string();
    assert!(message.contains("max, min, sum, avg or count"), "{message}");
}

#[test]
fn the_deployed_queries_parse() {
    for q in [
        r#"max(coordinator_queue_depth{coordinator_id="default"})"#,
        r#"max(coordinator_backpressure_hard{coordinator_id="default"})"#,
    ] {
        assert!(Query::parse(q).is_ok(), "{q}");
    }
}
