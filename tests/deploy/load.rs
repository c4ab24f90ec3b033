//! Reads every manifest under `deploy/` into JSON values, and the KEDA CRD schemas.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One YAML document of one file.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The file, relative to the crate root.
    pub file: String,
    /// Its position in the file.
    pub index: usize,
    pub value: Value,
}

impl Doc {
    pub fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or("")
    }

    pub fn at(&self) -> String {
        format!(
            "{}#{} ({} {})",
            self.file,
            self.index,
            self.kind(),
            self.name()
        )
    }
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn files(dir: &Path, ext: &[&str], out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, ext, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ext.contains(&e))
        {
            out.push(path);
        }
    }
}

/// Every file under `deploy/` with one of the extensions, sorted.
pub fn deploy_files(ext: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(&root().join("deploy"), ext, &mut out);
    out
}

pub fn relative(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Parses every document of a YAML text; `Err` names the document that failed.
pub fn parse_yaml(file: &str, text: &str) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(de).map_err(|e| format!("{file}#{index}: {e}"))?;
        if !value.is_null() {
            docs.push(Doc {
                file: file.to_owned(),
                index,
                value,
            });
        }
    }
    Ok(docs)
}

/// Helm values files: YAML, but not Kubernetes objects.
pub fn is_values_file(file: &str) -> bool {
    file.ends_with("values.yaml")
}

/// Every Kubernetes object under `deploy/`.
pub fn manifests() -> Vec<Doc> {
    deploy_files(&["yaml", "yml"])
        .iter()
        .map(|p| relative(p))
        .filter(|f| !is_values_file(f))
        .flat_map(|f| {
            let text = std::fs::read_to_string(root().join(&f)).unwrap();
            parse_yaml(&f, &text).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect()
}

/// The folder of KEDA's CRDs: `KEDA_CRD_DIR`, else `../shared/keda-crds` beside the crate.
pub fn crd_dir() -> PathBuf {
    let dir = std::env::var_os("KEDA_CRD_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/keda-crds"));
    for file in [
        "keda.sh_scaledobjects.yaml",
        "keda.sh_triggerauthentications.yaml",
    ] {
        if !dir.join(file).is_file() {
            panic!(
                "KEDA CRD schema {file} not found in {}.\n\
                 Get KEDA v2.20.2's CRDs (kedacore/keda, config/crd/bases/{file} at tag v2.20.2, \
                 or `kubectl get crd scaledobjects.keda.sh -o yaml` from a cluster running that \
                 KEDA) into ../shared/keda-crds/ beside the crate, or point KEDA_CRD_DIR at the \
                 folder that holds them.",
                dir.display()
            );
        }
    }
    dir
}

/// The OpenAPI v3 schema of `kind` from its CRD, version `v1alpha1`.
pub fn crd_schema(file: &str) -> Value {
    let path = crd_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let crd = parse_yaml(file, &text).unwrap().remove(0).value;
    crd["spec"]["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .map(|v| v["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("{file} has no v1alpha1 schema"))
}
