//! The etcd client certificate an `etcd://` source uses when none is configured, found
//! read-only, in this order:
//! 1. the host's kube-apiserver's own etcd client flags (`--etcd-cafile`, `--etcd-certfile`,
//!    `--etcd-keyfile` in its static pod manifest: kubeadm, Deckhouse, Cray CSM, RKE2);
//! 2. the usual files on the host: kubeadm's `apiserver-etcd-client` and
//!    `etcd/healthcheck-client`, RKE's `kube-node`, RKE2's and k3s's `tls/etcd/client`,
//!    OpenShift's kube-apiserver `etcd-client` secret of the newest revision;
//! 3. the same files in the `/etc/kubernetes` of a backup (a directory or an archive), newest
//!    backup first.
//!
//! Every file is read below the host root as in a chroot ([`super::resolve_in_root`]).
use std::path::Path;

use super::{resolve_in_root, KubeSource};
use crate::archive::{self, Limits};
use crate::pem::Pem;

/// A CA, client certificate and key for etcd, and where they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub ca: Pem,
    pub cert: Pem,
    pub key: Pem,
    /// For logs and the report: e.g. `kubeadm apiserver-etcd-client on the host`.
    pub from: String,
}

/// `(what, ca, cert, key)` relative to an `/etc/kubernetes`-shaped directory.
const KUBE_DIR_FILES: &[(&str, &str, &str, &str)] = &[
    (
        "kubeadm apiserver-etcd-client",
        "pki/etcd/ca.crt",
        "pki/apiserver-etcd-client.crt",
        "pki/apiserver-etcd-client.key",
    ),
    (
        "kubeadm etcd healthcheck-client",
        "pki/etcd/ca.crt",
        "pki/etcd/healthcheck-client.crt",
        "pki/etcd/healthcheck-client.key",
    ),
    (
        "rke kube-node",
        "ssl/kube-ca.pem",
        "ssl/kube-node.pem",
        "ssl/kube-node-key.pem",
    ),
];

/// `(what, ca, cert, key)` relative to the host root, outside `/etc/kubernetes`.
const ROOT_FILES: &[(&str, &str, &str, &str)] = &[
    (
        "rke2 etcd client",
        "var/lib/rancher/rke2/server/tls/etcd/server-ca.crt",
        "var/lib/rancher/rke2/server/tls/etcd/client.crt",
        "var/lib/rancher/rke2/server/tls/etcd/client.key",
    ),
    (
        "k3s etcd client",
        "var/lib/rancher/k3s/server/tls/etcd/server-ca.crt",
        "var/lib/rancher/k3s/server/tls/etcd/client.crt",
        "var/lib/rancher/k3s/server/tls/etcd/client.key",
    ),
];

/// Static pod manifests of kube-apiserver, relative to the host root.
const APISERVER_MANIFESTS: &[&str] = &[
    "etc/kubernetes/manifests/kube-apiserver.yaml",
    "var/lib/rancher/rke2/agent/pod-manifests/kube-apiserver.yaml",
];

/// The largest certificate or key file read (they are a few KiB).
const MAX_PEM: u64 = 1 << 20;

/// The apiserver's etcd client files named in a manifest's text: `(ca, cert, key)`.
pub fn apiserver_etcd_flags(text: &str) -> Option<(String, String, String)> {
    let flag = |name: &str| -> Option<String> {
        text.lines().find_map(|l| {
            // `    - --flag=value`, `- "--flag=value"`: no list marker, quotes or dashes.
            let l = l.trim().trim_start_matches(['-', ' ', '"', '\'']);
            let v = l.strip_prefix(name)?.strip_prefix('=')?;
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'');
            (!v.is_empty()).then(|| v.to_owned())
        })
    };
    Some((
        flag("etcd-cafile")?,
        flag("etcd-certfile")?,
        flag("etcd-keyfile")?,
    ))
}

/// The three files below `root` (chroot-style) as a [`ClientTls`] found in `from`, or `None`
/// unless all three exist.
fn files_in(
    root: &Path,
    [ca, cert, key]: [&str; 3],
    from: impl FnOnce() -> String,
) -> Option<ClientTls> {
    let find = |p: &str| resolve_in_root(root, Path::new(p)).filter(|f| f.is_file());
    Some(ClientTls {
        ca: Pem::File(find(ca)?),
        cert: Pem::File(find(cert)?),
        key: Pem::File(find(key)?),
        from: from(),
    })
}

/// The client certificate the host itself has (steps 1 and 2).
pub fn on_host(root: &Path) -> Option<ClientTls> {
    for manifest in APISERVER_MANIFESTS {
        let Some(path) = resolve_in_root(root, Path::new(manifest)) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        if let Some((ca, cert, key)) = apiserver_etcd_flags(&text) {
            let found = files_in(root, [&ca, &cert, &key], || {
                format!("the etcd client files of the host's /{manifest}")
            });
            if found.is_some() {
                return found;
            }
        }
    }
    let kube = Path::new("etc/kubernetes");
    KUBE_DIR_FILES
        .iter()
        .find_map(|(what, ca, cert, key)| {
            let [ca, cert, key] =
                [ca, cert, key].map(|p| kube.join(p).to_string_lossy().into_owned());
            files_in(root, [&ca, &cert, &key], || format!("{what} on the host"))
        })
        .or_else(|| {
            ROOT_FILES.iter().find_map(|(what, ca, cert, key)| {
                files_in(root, [ca, cert, key], || format!("{what} on the host"))
            })
        })
        .or_else(|| openshift_on_host(root))
}

/// OpenShift: `static-pod-resources/kube-apiserver-pod-<N>/` of the highest `N`, with
/// `secrets/etcd-client/tls.{crt,key}` and `configmaps/etcd-serving-ca/ca-bundle.crt`.
fn openshift_on_host(root: &Path) -> Option<ClientTls> {
    let dir = resolve_in_root(root, Path::new("etc/kubernetes/static-pod-resources"))?;
    let newest = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u64 = name.strip_prefix("kube-apiserver-pod-")?.parse().ok()?;
            Some((n, name))
        })
        .max()?;
    let base = format!("etc/kubernetes/static-pod-resources/{}", newest.1);
    files_in(
        root,
        [
            &format!("{base}/configmaps/etcd-serving-ca/ca-bundle.crt"),
            &format!("{base}/secrets/etcd-client/tls.crt"),
            &format!("{base}/secrets/etcd-client/tls.key"),
        ],
        || format!("openshift etcd-client of {} on the host", newest.1),
    )
}

/// The client certificate in a backup's `/etc/kubernetes` (step 3). Archive members are read
/// into memory (capped) and returned inline; nothing is written.
pub fn in_backup(kube: &KubeSource) -> Result<Option<ClientTls>, archive::ArchiveError> {
    match kube {
        KubeSource::Dir { path } => Ok(KUBE_DIR_FILES.iter().find_map(|(what, ca, cert, key)| {
            files_in(path, [ca, cert, key], || {
                format!("{what} of the backup {}", path.display())
            })
        })),
        KubeSource::Archive { archive, prefix } => {
            // `prefix` is the tree's directory in the archive, without a trailing `/`.
            let member = |p: &str| {
                if prefix.is_empty() {
                    p.to_owned()
                } else {
                    format!("{prefix}/{p}")
                }
            };
            let names: Vec<String> = KUBE_DIR_FILES
                .iter()
                .flat_map(|(_, ca, cert, key)| [ca, cert, key])
                .map(|p| member(p))
                .collect();
            let found = archive::read_small_members(archive, &names, MAX_PEM, &Limits::SNAPSHOT)?;
            let text = |p: &str| -> Option<Pem> {
                let bytes = found.get(&archive::display_name(member(p).as_bytes()))?;
                let s = std::str::from_utf8(bytes).ok()?;
                s.parse().ok().filter(|p| matches!(p, Pem::Inline(_)))
            };
            for (what, ca, cert, key) in KUBE_DIR_FILES {
                if let (Some(ca), Some(cert), Some(key)) = (text(ca), text(cert), text(key)) {
                    return Ok(Some(ClientTls {
                        ca,
                        cert,
                        key,
                        from: format!("{what} of the backup {}", archive.display()),
                    }));
                }
            }
            Ok(None)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn put(root: &Path, rel: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, PEM).unwrap();
    }

    #[test]
    fn reads_the_apiserver_flags() {
        let manifest = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt\n    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt\n    - \"--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key\"\n    - --etcd-servers=https://127.0.0.1:2379\n";
        assert_eq!(
            apiserver_etcd_flags(manifest),
            Some((
                "/etc/kubernetes/pki/etcd/ca.crt".into(),
                "/etc/kubernetes/pki/apiserver-etcd-client.crt".into(),
                "/etc/kubernetes/pki/apiserver-etcd-client.key".into()
            ))
        );
        assert_eq!(apiserver_etcd_flags("- --etcd-cafile=/a\n"), None);
    }

    #[test]
    fn finds_the_host_files_in_order() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(on_host(root.path()), None);
        // kubeadm's healthcheck client alone.
        for f in [
            "etc/kubernetes/pki/etcd/ca.crt",
            "etc/kubernetes/pki/etcd/healthcheck-client.crt",
            "etc/kubernetes/pki/etcd/healthcheck-client.key",
        ] {
            put(root.path(), f);
        }
        let t = on_host(root.path()).unwrap();
        assert!(t.from.contains("healthcheck-client"), "{}", t.from);
        assert_eq!(
            t.key.path().unwrap(),
            root.path()
                .join("etc/kubernetes/pki/etcd/healthcheck-client.key")
        );
        // The apiserver's own flags win, even when they name other files.
        put(root.path(), "srv/pki/etcd-client.crt");
        put(root.path(), "srv/pki/etcd-client.key");
        put(root.path(), "etc/kubernetes/manifests/kube-apiserver.yaml");
        std::fs::write(
            root.path().join("etc/kubernetes/manifests/kube-apiserver.yaml"),
            "    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt\n    - --etcd-certfile=/srv/pki/etcd-client.crt\n    - --etcd-keyfile=/srv/pki/etcd-client.key\n",
        )
        .unwrap();
        let t = on_host(root.path()).unwrap();
        assert!(t.from.contains("kube-apiserver.yaml"), "{}", t.from);
        assert_eq!(
            t.cert.path().unwrap(),
            root.path().join("srv/pki/etcd-client.crt")
        );
    }

    #[test]
    fn finds_openshift_of_the_newest_revision() {
        let root = tempfile::tempdir().unwrap();
        for n in [3, 12] {
            let base = format!("etc/kubernetes/static-pod-resources/kube-apiserver-pod-{n}");
            put(
                root.path(),
                &format!("{base}/configmaps/etcd-serving-ca/ca-bundle.crt"),
            );
            put(root.path(), &format!("{base}/secrets/etcd-client/tls.crt"));
            put(root.path(), &format!("{base}/secrets/etcd-client/tls.key"));
        }
        let t = on_host(root.path()).unwrap();
        assert!(t.from.contains("kube-apiserver-pod-12"), "{}", t.from);
    }

    #[test]
    fn finds_a_backup_directory() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "ssl/kube-ca.pem",
            "ssl/kube-node.pem",
            "ssl/kube-node-key.pem",
        ] {
            put(dir.path(), f);
        }
        let kube = KubeSource::Dir {
            path: dir.path().to_path_buf(),
        };
        let t = in_backup(&kube).unwrap().unwrap();
        assert!(
            t.from.starts_with("rke kube-node of the backup"),
            "{}",
            t.from
        );
    }
}
