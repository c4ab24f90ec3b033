//! Every YAML under `deploy/` parses, and every ScaledObject and TriggerAuthentication
//! validates against KEDA v2.20's CRD schema, with unknown fields refused as the API server's
//! strict field validation refuses them.

use serde_json::{Value, json};

use crate::load::{Doc, deploy_files, is_values_file, manifests, parse_yaml, relative, root};

/// Refuses fields a schema does not declare (Kubernetes prunes them silently, so a typo such as
/// `pollingIntervall` would otherwise be lost without a word), except where the CRD says
/// `x-kubernetes-preserve-unknown-fields`.
fn strict(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            if map.contains_key("properties")
                && !map.contains_key("additionalProperties")
                && !preserve
            {
                map.insert("additionalProperties".into(), json!(false));
            }
            for v in map.values_mut() {
                strict(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict),
        _ => {}
    }
}

fn validator(crd_file: &str) -> jsonschema::Validator {
    let mut schema = crate::load::crd_schema(crd_file);
    strict(&mut schema);
    jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("the schema of {crd_file} does not compile: {e}"))
}

fn errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| format!("{e} (at {})", e.instance_path()))
        .collect()
}

fn of_kind(docs: &[Doc], kind: &str) -> Vec<Doc> {
    docs.iter().filter(|d| d.kind() == kind).cloned().collect()
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    let yaml = deploy_files(&["yaml", "yml"]);
    assert!(yaml.len() >= 10, "deploy/ looks empty: {yaml:?}");
    let mut problems = Vec::new();
    for path in &yaml {
        let file = relative(path);
        let text = std::fs::read_to_string(path).unwrap();
        match parse_yaml(&file, &text) {
            Err(e) => problems.push(e),
            Ok(docs) if docs.is_empty() => problems.push(format!("{file}: no document")),
            Ok(docs) if is_values_file(&file) => {
                if !docs.iter().all(|d| d.value.is_object()) {
                    problems.push(format!("{file}: a values file must be a mapping"));
                }
            }
            Ok(docs) => {
                for d in docs {
                    for key in ["apiVersion", "kind"] {
                        if !d.value[key].is_string() {
                            problems.push(format!("{}: no {key}", d.at()));
                        }
                    }
                    if d.kind() != "Kustomization" && d.name().is_empty() {
                        problems.push(format!("{}: no metadata.name", d.at()));
                    }
                }
            }
        }
    }
    for path in deploy_files(&["json"]) {
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = serde_json::from_str::<Value>(&text) {
            problems.push(format!("{}: {e}", relative(&path)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Every manifest named in the kustomization exists.
    let kustomization = std::fs::read_to_string(root().join("deploy/kustomization.yaml")).unwrap();
    let k = &parse_yaml("kustomization", &kustomization).unwrap()[0].value;
    for r in k["resources"].as_array().unwrap() {
        let path = root().join("deploy").join(r.as_str().unwrap());
        assert!(
            path.is_file(),
            "kustomization lists missing {}",
            path.display()
        );
    }
}

#[test]
fn keda_objects_validate_against_the_v2_20_crds() {
    let docs = manifests();
    let mut problems = Vec::new();
    for (kind, crd) in [
        ("ScaledObject", "keda.sh_scaledobjects.yaml"),
        (
            "TriggerAuthentication",
            "keda.sh_triggerauthentications.yaml",
        ),
    ] {
        let v = validator(crd);
        let objects = of_kind(&docs, kind);
        assert!(!objects.is_empty(), "no {kind} under deploy/");
        for d in objects {
            assert_eq!(d.value["apiVersion"], "keda.sh/v1alpha1", "{}", d.at());
            for e in errors(&v, &d.value) {
                problems.push(format!("{}: {e}", d.at()));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_schema_check_catches_typical_mistakes() {
    let v = validator("keda.sh_scaledobjects.yaml");
    let good = manifests()
        .into_iter()
        .find(|d| d.file == "deploy/keda/scaledobject-coordinator.yaml")
        .expect("the coordinator's ScaledObject")
        .value;
    assert!(errors(&v, &good).is_empty());
    type Mistake = (&'static str, fn(&mut Value));
    let mistakes: [Mistake; 6] = [
        ("a threshold that is not a string", |s| {
            s["spec"]["triggers"][0]["metadata"]["threshold"] = json!(2000)
        }),
        ("a misspelt field", |s| {
            s["spec"]["pollingIntervall"] = json!(15)
        }),
        ("a fallback without replicas", |s| {
            s["spec"]["fallback"]
                .as_object_mut()
                .unwrap()
                .remove("replicas");
        }),
        ("an unknown fallback behaviour", |s| {
            s["spec"]["fallback"]["behavior"] = json!("keepCurrent")
        }),
        ("a trigger without a type", |s| {
            s["spec"]["triggers"][0]
                .as_object_mut()
                .unwrap()
                .remove("type");
        }),
        ("no scale target", |s| {
            s["spec"].as_object_mut().unwrap().remove("scaleTargetRef");
        }),
    ];
    for (what, mutate) in mistakes {
        let mut bad = good.clone();
        mutate(&mut bad);
        assert!(
            !errors(&v, &bad).is_empty(),
            "{what} passed the schema check"
        );
    }
}
