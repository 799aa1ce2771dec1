//! The etcd configuration of a host root: a thin read-only loader, and pure functions that
//! merge what it found and rewrite it as a whole.
//!
//! The loader reads only; symlinks are followed inside the root (an absolute link target
//! is taken relative to the root, as it would be on the booted host), never out of it.
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use super::{extract, read_text, rewrite, systemd, unified_diff, FileKind, RewriteError};
use super::{EtcdSettings, Rewritten, Target};

/// Where hosts keep etcd and control-plane configuration, relative to the root. Drop-ins
/// of `etcd.service` and the `EnvironmentFile=`s of units are looked up as well.
pub const KNOWN_PATHS: &[&str] = &[
    "etc/kubernetes/manifests/etcd.yaml",
    "etc/kubernetes/manifests/kube-apiserver.yaml",
    "etc/systemd/system/etcd.service",
    "usr/lib/systemd/system/etcd.service",
    "lib/systemd/system/etcd.service",
    "etc/etcd/etcd.conf",
    "etc/etcd/etcd.conf.yml",
    "etc/etcd/etcd.conf.yaml",
    "etc/etcd/etcd.yaml",
    "etc/etcd/etcd.env",
    "etc/default/etcd",
    "etc/sysconfig/etcd",
    "etc/kubernetes/kubeadmcfg.yaml",
    "etc/kubernetes/kubeadm-config.yaml",
    "etc/kubernetes/kubeadm.yaml",
];

/// A configuration file of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigFile {
    /// Path relative to the host root, as found.
    pub path: PathBuf,
    /// The file it names, symlinks resolved inside the root: write here, so links stay.
    pub real_path: PathBuf,
    /// What it is.
    pub kind: FileKind,
    /// Its text.
    #[serde(skip)]
    pub text: String,
}

/// Resolves `rel` under `root`, following symlinks inside the root (at most 16 hops), to a
/// regular file's path relative to the root. `None` if there is none or it would leave
/// the root. (Parent directories that are symlinks are followed by the OS.)
fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut rel = normalize(rel)?;
    for _ in 0..16 {
        let full = root.join(&rel);
        let meta = std::fs::symlink_metadata(&full).ok()?;
        if !meta.file_type().is_symlink() {
            return meta.is_file().then_some(rel);
        }
        let target = std::fs::read_link(&full).ok()?;
        rel = if target.is_absolute() {
            normalize(&target)?
        } else {
            normalize(&rel.parent().unwrap_or(Path::new("")).join(target))?
        };
    }
    None
}

/// Lexically normalises a path to one relative to the root; `None` if `..` climbs above it.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Some(out)
}

/// Reads the host's etcd and control-plane configuration files (read-only). Missing files
/// are skipped; files that hold no etcd settings are left out.
pub fn load_host_config(root: &Path) -> Result<Vec<ConfigFile>, RewriteError> {
    let mut candidates: Vec<PathBuf> = KNOWN_PATHS.iter().map(PathBuf::from).collect();
    let dropins = root.join("etc/systemd/system/etcd.service.d");
    if let Ok(entries) = std::fs::read_dir(&dropins) {
        let mut names: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .filter_map(|p| p.strip_prefix(root).ok().map(Path::to_path_buf))
            .collect();
        names.sort();
        candidates.extend(names);
    }
    let mut out: Vec<ConfigFile> = Vec::new();
    let mut i = 0;
    while i < candidates.len() {
        let rel = candidates[i].clone();
        i += 1;
        let Some(real_path) = resolve_in_root(root, &rel) else {
            continue;
        };
        if out.iter().any(|f| f.real_path == real_path) {
            continue;
        }
        let text = read_text(&root.join(&real_path))?;
        let Some(kind) = FileKind::detect(&rel, &text) else {
            continue;
        };
        if kind == FileKind::SystemdUnit {
            let cfg = extract(kind, &text);
            if let Some(p) = cfg.get("config-file").and_then(|c| normalize(Path::new(c))) {
                candidates.push(p);
            }
            for env in systemd::environment_files(&text) {
                if let Some(p) = normalize(Path::new(&env)) {
                    candidates.push(p);
                }
            }
        }
        out.push(ConfigFile {
            path: rel,
            real_path,
            kind,
            text,
        });
    }
    Ok(out)
}

/// The etcd member settings of the host, merged over its files: a static pod manifest
/// first (that is what kubelet runs), then systemd units, then etcd's config file, then
/// environment files (flags win over the environment, as in etcd), then kubeadm
/// configuration.
pub fn current_settings(files: &[ConfigFile]) -> EtcdSettings {
    let rank = |k: FileKind| match k {
        FileKind::EtcdManifest => 0,
        FileKind::SystemdUnit => 1,
        FileKind::EtcdConfigFile => 2,
        FileKind::EnvFile => 3,
        FileKind::KubeadmConfig => 4,
        FileKind::ApiServerManifest => 5,
    };
    let mut sorted: Vec<&ConfigFile> = files
        .iter()
        .filter(|f| f.kind != FileKind::ApiServerManifest)
        .collect();
    sorted.sort_by_key(|f| rank(f.kind));
    let mut out = EtcdSettings::default();
    for f in sorted {
        let s = extract(f.kind, &f.text);
        out.fill_from(&s);
        out.indirect.extend(s.indirect);
    }
    out.indirect.retain(|k| !out.flags.contains_key(k));
    out.indirect.sort();
    out.indirect.dedup();
    out
}

/// The rewrite of one host file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileRewrite {
    /// Path relative to the host root.
    pub path: PathBuf,
    /// The result.
    pub rewritten: Rewritten,
    /// Unified diff (`a/PATH`, `b/PATH`); empty when unchanged.
    pub diff: String,
}

/// Rewrites every file towards the target (pure: the caller writes the changed ones).
pub fn rewrite_files(files: &[ConfigFile], target: &Target) -> Vec<FileRewrite> {
    files
        .iter()
        .map(|f| {
            let rewritten = rewrite(f.kind, &f.text, target);
            let diff = unified_diff(&f.path.to_string_lossy(), &f.text, &rewritten.text);
            FileRewrite {
                path: f.path.clone(),
                rewritten,
                diff,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("src/rewrite/testdata")
                .join(name),
        )
        .unwrap()
    }

    fn put(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn kubeadm_host_zero_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        put(
            root,
            "etc/kubernetes/manifests/etcd.yaml",
            &fixture("kubeadm-etcd.yaml"),
        );
        put(
            root,
            "etc/kubernetes/manifests/kube-apiserver.yaml",
            &fixture("kubeadm-kube-apiserver.yaml"),
        );
        put(
            root,
            "etc/kubernetes/manifests/kube-scheduler.yaml",
            "kind: Pod\n",
        );
        let files = load_host_config(root).unwrap();
        let kinds: Vec<FileKind> = files.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![FileKind::EtcdManifest, FileKind::ApiServerManifest]
        );
        let cur = current_settings(&files);
        assert_eq!(cur.name(), Some("cp-2"));
        let t = Target::plan(&cur, None, Some("192.168.56.50".parse().unwrap())).unwrap();
        let rw = rewrite_files(&files, &t);
        assert!(rw.iter().all(|r| r.rewritten.changed()));
        assert!(rw[1]
            .diff
            .starts_with("--- a/etc/kubernetes/manifests/kube-apiserver.yaml\n"));
        // Nothing was written by any of this.
        assert_eq!(
            std::fs::read_to_string(root.join("etc/kubernetes/manifests/etcd.yaml")).unwrap(),
            fixture("kubeadm-etcd.yaml")
        );
    }

    #[test]
    fn systemd_host_with_env_file_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let unit = "[Service]\nEnvironmentFile=-/etc/etcd/etcd.env\nExecStart=/usr/bin/etcd --name ${ETCD_NAME} --data-dir=/var/lib/etcd\n";
        put(root, "usr/lib/systemd/system/etcd.service", unit);
        // The usual absolute symlink: it must resolve inside the root.
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        std::os::unix::fs::symlink(
            "/usr/lib/systemd/system/etcd.service",
            root.join("etc/systemd/system/etcd.service"),
        )
        .unwrap();
        put(
            root,
            "etc/etcd/etcd.env",
            "ETCD_NAME=m5\nETCD_INITIAL_ADVERTISE_PEER_URLS=https://10.0.0.5:2380\nETCD_ADVERTISE_CLIENT_URLS=https://10.0.0.5:2379\n",
        );
        put(
            root,
            "etc/kubernetes/kubeadmcfg.yaml",
            &fixture("csm-kubeadmcfg.yaml"),
        );
        // A link out of the root is not followed.
        std::fs::create_dir_all(root.join("etc/default")).unwrap();
        std::os::unix::fs::symlink(
            "../../../../../../etc/passwd",
            root.join("etc/default/etcd"),
        )
        .unwrap();
        let files = load_host_config(root).unwrap();
        let paths: Vec<String> = files.iter().map(|f| f.path.display().to_string()).collect();
        assert_eq!(
            paths,
            vec![
                "etc/systemd/system/etcd.service",
                "etc/etcd/etcd.env",
                "etc/kubernetes/kubeadmcfg.yaml",
            ]
        );
        assert_eq!(
            files[0].real_path,
            Path::new("usr/lib/systemd/system/etcd.service")
        );
        let cur = current_settings(&files);
        assert_eq!(
            cur.name(),
            Some("m5"),
            "the unit's ${{ETCD_NAME}} comes from its env file"
        );
        assert_eq!(
            cur.get("initial-advertise-peer-urls"),
            Some("https://10.0.0.5:2380")
        );
        assert!(cur.indirect.is_empty());
        let t = Target::plan(&cur, None, None).unwrap();
        let rw = rewrite_files(&files, &t);
        assert_eq!(rw[0].rewritten.indirect, vec!["name"]);
        assert!(
            !rw[0].rewritten.changed(),
            "the unit holds only the indirect name"
        );
        assert!(
            !rw[1].rewritten.changed(),
            "the env file already says m5 and its URLs"
        );
        assert!(rw[2].rewritten.changed());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod limits {
    use super::*;

    #[test]
    fn oversized_and_binary_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("etc/etcd/etcd.conf");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![b'#'; (super::super::MAX_CONFIG_SIZE + 1) as usize]).unwrap();
        assert!(matches!(
            load_host_config(dir.path()),
            Err(RewriteError::TooLarge { .. })
        ));
        std::fs::write(&p, b"ETCD_NAME=\xff\xfe\n").unwrap();
        assert!(matches!(
            load_host_config(dir.path()),
            Err(RewriteError::NotText { .. })
        ));
    }
}
