//! `deploy/`: every manifest parses, KEDA's objects validate against its CRD schemas, and the
//! manifests agree with each other and with the code.

mod load;
mod manifests;
mod schemas;

use serde_json::Value;

/// Every `expr` of a Grafana dashboard's panels.
pub fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push(e.to_owned());
            }
        }
    }
    out
}
