//! Rancher RKE1 cluster state: rebuilding `/etc/kubernetes/ssl` from a certificatesBundle. Pure.
//!
//! RKE keeps every certificate, key and kubeconfig of the cluster in its state: the
//! `cluster.rkestate` file beside `cluster.yml`, the `full-cluster-state` ConfigMap in
//! `kube-system`, and (rke-tools) `/etc/kubernetes/<snapshot>.rkestate`, which is zipped together
//! with each snapshot as `/etc/kubernetes/<name>.rkestate` beside `/backup/<name>`
//! (rancher/rke-tools `main.go`: `CreateBackup`, `compressFiles`, `AddFileToZip`). Its shape is
//! `{"currentState": {"certificatesBundle": {"<name>": CertificatePKI}}, "desiredState": ...}`
//! where CertificatePKI has `certificatePEM`, `keyPEM`, `config`, `path`, `keyPath`, `configPath`
//! (rancher/rke `pki/pki.go`). Rancher's documented recovery reads it with
//! `jq -r .data."full-cluster-state" | jq -r .currentState.certificatesBundle...` and writes the
//! PEMs to their paths; this does the same without jq.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// One file to write, at its absolute host path (always below `/etc/kubernetes/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RkeFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
}

/// Errors of RKE state parsing.
#[derive(Debug, thiserror::Error)]
pub enum RkeError {
    #[error("rke cluster state is not valid json")]
    Json(#[source] serde_json::Error),
    #[error("rke cluster state has no certificatesBundle")]
    NoBundle,
    #[error("certificate {name:?} in the rke cluster state has an unsafe path {path:?}")]
    UnsafePath { name: String, path: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pki {
    #[serde(default, rename = "certificatePEM")]
    certificate_pem: String,
    #[serde(default, rename = "keyPEM")]
    key_pem: String,
    #[serde(default)]
    config: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    key_path: String,
    #[serde(default)]
    config_path: String,
}

fn bundle_of(v: &serde_json::Value) -> Option<&serde_json::Value> {
    for state in ["currentState", "desiredState"] {
        if let Some(b) = v
            .get(state)
            .and_then(|s| s.get("certificatesBundle"))
            .filter(|b| b.is_object())
        {
            return Some(b);
        }
    }
    v.get("certificatesBundle").filter(|b| b.is_object())
}

/// True when the JSON text looks like an RKE cluster state (for discovery; cheap).
pub fn looks_like_state(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    text.trim_start().starts_with('{')
        && (text.contains("certificatesBundle")
            || text.contains("full-cluster-state")
            || text.contains("currentState"))
}

/// The files that the state's certificatesBundle describes. Accepts the state file, the
/// `full-cluster-state` ConfigMap as JSON, or a bare object with `certificatesBundle`.
pub fn certificate_files(state: &[u8]) -> Result<Vec<RkeFile>, RkeError> {
    let v: serde_json::Value = serde_json::from_slice(state).map_err(RkeError::Json)?;
    // The ConfigMap form holds the state as a JSON string.
    let inner;
    let v = match v
        .get("data")
        .and_then(|d| d.get("full-cluster-state"))
        .and_then(|s| s.as_str())
    {
        Some(text) => {
            inner = serde_json::from_str::<serde_json::Value>(text).map_err(RkeError::Json)?;
            &inner
        }
        None => &v,
    };
    let bundle = bundle_of(v).ok_or(RkeError::NoBundle)?;
    let bundle: BTreeMap<String, Pki> =
        serde_json::from_value(bundle.clone()).map_err(RkeError::Json)?;
    let mut out: BTreeMap<PathBuf, RkeFile> = BTreeMap::new();
    for (name, pki) in &bundle {
        for (path, body, mode) in [
            (&pki.path, &pki.certificate_pem, 0o644),
            (&pki.key_path, &pki.key_pem, 0o600),
            (&pki.config_path, &pki.config, 0o600),
        ] {
            if path.is_empty() || body.is_empty() {
                continue;
            }
            let p = safe_path(path).ok_or_else(|| RkeError::UnsafePath {
                name: name.clone(),
                path: path.clone(),
            })?;
            out.insert(
                p.clone(),
                RkeFile {
                    path: p,
                    contents: body.as_bytes().to_vec(),
                    mode,
                },
            );
        }
    }
    Ok(out.into_values().collect())
}

/// Absolute, below `/etc/kubernetes/`, only normal components.
fn safe_path(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return None;
    }
    if !comps.clone().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    path.starts_with("/etc/kubernetes/")
        .then(|| path.to_path_buf())
        .filter(|p| p.components().count() > 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> String {
        serde_json::json!({
            "desiredState": {"certificatesBundle": {}},
            "currentState": {"certificatesBundle": {
                "kube-ca": {"certificatePEM": "CA", "keyPEM": "CAKEY", "path": "/etc/kubernetes/ssl/kube-ca.pem",
                            "keyPath": "/etc/kubernetes/ssl/kube-ca-key.pem", "config": "", "configPath": ""},
                "kube-admin": {"certificatePEM": "ADM", "keyPEM": "ADMKEY", "path": "/etc/kubernetes/ssl/kube-admin.pem",
                               "keyPath": "/etc/kubernetes/ssl/kube-admin-key.pem", "config": "apiVersion: v1",
                               "configPath": "/etc/kubernetes/ssl/kubecfg-kube-admin.yaml"}
            }}
        })
        .to_string()
    }

    #[test]
    fn files_from_state_and_configmap() {
        let files = certificate_files(state().as_bytes()).expect("state");
        let got: Vec<(String, u32)> = files
            .iter()
            .map(|f| (f.path.display().to_string(), f.mode))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/etc/kubernetes/ssl/kube-admin-key.pem".to_string(), 0o600),
                ("/etc/kubernetes/ssl/kube-admin.pem".to_string(), 0o644),
                ("/etc/kubernetes/ssl/kube-ca-key.pem".to_string(), 0o600),
                ("/etc/kubernetes/ssl/kube-ca.pem".to_string(), 0o644),
                (
                    "/etc/kubernetes/ssl/kubecfg-kube-admin.yaml".to_string(),
                    0o600
                ),
            ]
        );
        assert_eq!(files[3].contents, b"CA");
        let cm = serde_json::json!({"data": {"full-cluster-state": state()}}).to_string();
        assert_eq!(certificate_files(cm.as_bytes()).expect("configmap"), files);
        assert!(looks_like_state(state().as_bytes()));
    }

    #[test]
    fn hostile_paths_refused() {
        for bad in [
            "/etc/kubernetes/../shadow",
            "etc/kubernetes/ssl/x",
            "/root/.ssh/authorized_keys",
            "/etc/kubernetes/",
        ] {
            let s = serde_json::json!({"currentState": {"certificatesBundle": {
                "x": {"certificatePEM": "C", "path": bad}}}})
            .to_string();
            assert!(
                matches!(
                    certificate_files(s.as_bytes()),
                    Err(RkeError::UnsafePath { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(certificate_files(b"{}"), Err(RkeError::NoBundle)));
        assert!(matches!(certificate_files(b"nope"), Err(RkeError::Json(_))));
    }
}
