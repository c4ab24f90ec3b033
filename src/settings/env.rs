//! Environment overrides: `MDP_FB_*`, `MDP_RATE_<PROVIDER>_*`, `MDS_*` and
//! `BACKFLOW_<SECTION>__<KEY>` written into the settings tree before it is typed.
//!
//! Only names that map to a settings section are read: other `BACKFLOW_*` variables
//! (`BACKFLOW_CONFIG`, `BACKFLOW_HTTP_TOKEN`, `BACKFLOW_TEST_POSTGRES`, ...) belong to the
//! binaries and tests and are left alone, while an unknown key under a known section is
//! refused by name.

use serde_yaml_ng::{Mapping, Value};

/// Provider fields settable as `MDP_RATE_<PROVIDER>_<FIELD>`.
const PROVIDER_FIELDS: [&str; 5] = [
    "CAPACITY",
    "REFILL_RATE",
    "COOLDOWN_SEC",
    "BREAKER_THRESHOLD",
    "BREAKER_TIMEOUT_SEC",
];

/// An environment variable that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {var}: {reason}")]
pub struct EnvError {
    /// The variable.
    pub var: String,
    /// What is wrong.
    pub reason: String,
}

fn err(var: &str, reason: impl Into<String>) -> EnvError {
    EnvError {
        var: var.to_owned(),
        reason: reason.into(),
    }
}

/// `HYSTERESIS__DWELL_MS` → `["hysteresis", "dwell_ms"]`.
fn nested(rest: &str) -> Vec<String> {
    rest.split("__").map(str::to_ascii_lowercase).collect()
}

/// The top-level sections of the settings file, which `BACKFLOW_<SECTION>__<KEY>` names.
pub(super) const SECTIONS: [&str; 9] = [
    "feedback",
    "rate_coordinator",
    "coordinator",
    "nats",
    "http",
    "metrics",
    "bridge",
    "store",
    "agent",
];

/// Maps one variable to a key path, or `None` if it is not ours.
fn path_of(var: &str, tree: &Value) -> Result<Option<Vec<String>>, EnvError> {
    if let Some(rest) = var.strip_prefix("BACKFLOW_") {
        let path = nested(rest);
        let known = path.len() > 1 && SECTIONS.contains(&path[0].as_str());
        return Ok(known.then_some(path));
    }
    if let Some(rest) = var.strip_prefix("MDS_") {
        let mut path = vec!["coordinator".to_owned()];
        path.extend(nested(rest));
        return Ok(Some(path));
    }
    if let Some(rest) = var.strip_prefix("MDP_FB_") {
        let mut path = vec!["feedback".to_owned()];
        path.extend(nested(rest));
        return Ok(Some(path));
    }
    if let Some(rest) = var.strip_prefix("MDP_RATE_") {
        let (provider, field) = PROVIDER_FIELDS
            .iter()
            .find_map(|f| {
                rest.strip_suffix(f)
                    .and_then(|p| p.strip_suffix('_'))
                    .filter(|p| !p.is_empty())
                    .map(|p| (p, f))
            })
            .ok_or_else(|| {
                err(
                    var,
                    format!(
                        "expected MDP_RATE_<PROVIDER>_<FIELD> with FIELD one of {}",
                        PROVIDER_FIELDS.join(", ")
                    ),
                )
            })?;
        // Match a provider already in the file whatever its case; otherwise use lowercase.
        let existing = tree
            .get("rate_coordinator")
            .and_then(|r| r.get("providers"))
            .and_then(Value::as_mapping)
            .and_then(|m| {
                m.keys()
                    .filter_map(Value::as_str)
                    .find(|k| k.eq_ignore_ascii_case(provider))
                    .map(str::to_owned)
            });
        let provider = existing.unwrap_or_else(|| provider.to_ascii_lowercase());
        return Ok(Some(vec![
            "rate_coordinator".into(),
            "providers".into(),
            provider,
            field.to_ascii_lowercase(),
        ]));
    }
    if var.starts_with("MDP_") {
        return Err(err(
            var,
            "unknown variable (expected MDP_FB_* or MDP_RATE_<PROVIDER>_*)",
        ));
    }
    Ok(None)
}

fn set(tree: &mut Value, path: &[String], value: Value, var: &str) -> Result<(), EnvError> {
    let mut node = tree;
    for (i, key) in path.iter().enumerate() {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        let Some(map) = node.as_mapping_mut() else {
            return Err(err(
                var,
                format!(
                    "{} is not a mapping in the settings file",
                    path[..i].join(".")
                ),
            ));
        };
        let key = Value::String(key.clone());
        if i + 1 == path.len() {
            map.insert(key, value);
            return Ok(());
        }
        node = map.entry(key).or_insert(Value::Null);
    }
    Ok(())
}

/// Applies every `MDP_*` / `MDS_*` variable; returns (dotted path, variable) of each.
///
/// Values are read as YAML, so `true`, `100`, `0.8`, `hold_last`, `{scale: 0.5}` and
/// `[a, b]` all mean what they would in the file.
pub(super) fn apply(
    tree: &mut Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut vars: Vec<(String, String)> = vars.into_iter().collect();
    vars.sort();
    let mut sources = Vec::new();
    for (var, raw) in vars {
        let Some(path) = path_of(&var, tree)? else {
            continue;
        };
        let value: Value = serde_yaml_ng::from_str(&raw)
            .map_err(|e| err(&var, format!("value {raw:?} is not valid YAML: {e}")))?;
        set(tree, &path, value, &var)?;
        sources.push((path.join("."), var));
    }
    Ok(sources)
}
