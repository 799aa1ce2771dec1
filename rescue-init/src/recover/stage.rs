//! Staging of backup contents into directories rescue-init owns: snapshots out of archives,
//! `/etc/kubernetes` trees out of directories and archives, OpenShift static pod resources,
//! RKE certificates rebuilt from the cluster state.
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::archive::{self, ExtractOptions, Limits};
use crate::discover::{rke, KubeSource, Location};
use crate::exec::{io_err, Stager, StepError};

/// The production [`Stager`].
pub struct BackupStager;

fn stage_err(e: impl std::error::Error) -> StepError {
    StepError::Stage(crate::cli::chain(&e))
}

impl Stager for BackupStager {
    fn stage_snapshot(&self, from: &Location, to: &Path) -> Result<u64, StepError> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(io_err("creating", to))?;
        let n = match from {
            Location::File { path } => {
                let mut f = File::open(path).map_err(io_err("opening", path))?;
                std::io::copy(&mut f, &mut out).map_err(io_err("copying", path))?
            }
            Location::Member { archive, member } => {
                let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut out);
                let n = archive::stream_member(archive, member, &mut w, &Limits::SNAPSHOT)
                    .map_err(stage_err)?;
                w.flush().map_err(io_err("writing", to))?;
                n
            }
        };
        out.sync_all().map_err(io_err("syncing", to))?;
        Ok(n)
    }

    fn stage_kubernetes(&self, from: &KubeSource, to: &Path) -> Result<u64, StepError> {
        let keep_owners = rustix::process::geteuid().is_root();
        match from {
            KubeSource::Dir { path } => {
                fs::create_dir(to).map_err(io_err("creating", to))?;
                copy_tree(path, to)
            }
            KubeSource::Archive { archive, prefix } => {
                fs::create_dir(to).map_err(io_err("creating", to))?;
                let opts = ExtractOptions {
                    limits: Limits::CONFIG_TREE,
                    subtree: (!prefix.is_empty()).then(|| prefix.into()),
                    keep_owners,
                };
                archive::validate(archive, &opts).map_err(stage_err)?;
                Ok(archive::extract(archive, to, &opts)
                    .map_err(stage_err)?
                    .bytes)
            }
            KubeSource::OpenShiftResources { archive } => {
                // As OpenShift's cluster-restore.sh does: static-pod-resources/ goes to
                // /etc/kubernetes/static-pod-resources, the etcd pod manifest to manifests/.
                let all = to.with_file_name("openshift-resources");
                fs::create_dir(&all).map_err(io_err("creating", &all))?;
                let opts = ExtractOptions {
                    limits: Limits::CONFIG_TREE,
                    subtree: None,
                    keep_owners,
                };
                archive::validate(archive, &opts).map_err(stage_err)?;
                let sum = archive::extract(archive, &all, &opts).map_err(stage_err)?;
                fs::create_dir(to).map_err(io_err("creating", to))?;
                let resources = find(&all, &|p| {
                    p.file_name().is_some_and(|n| n == "static-pod-resources") && p.is_dir()
                })
                .ok_or_else(|| {
                    StepError::Stage(format!(
                        "{} holds no static-pod-resources directory",
                        archive.display()
                    ))
                })?;
                fs::rename(&resources, to.join("static-pod-resources"))
                    .map_err(io_err("moving", &resources))?;
                if let Some(pod) = find(to, &|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().ends_with("etcd-pod.yaml"))
                }) {
                    let manifests = to.join("manifests");
                    fs::create_dir(&manifests).map_err(io_err("creating", &manifests))?;
                    fs::copy(&pod, manifests.join("etcd-pod.yaml"))
                        .map_err(io_err("copying", &pod))?;
                }
                let _ = fs::remove_dir_all(&all);
                sync_tree(to)?;
                Ok(sum.bytes)
            }
            KubeSource::RkeState { state, .. } => {
                let bytes = read_location(state)?;
                let files = rke::certificate_files(&bytes).map_err(stage_err)?;
                fs::create_dir(to).map_err(io_err("creating", to))?;
                let mut total = 0;
                for f in files {
                    let rel = f.path.strip_prefix("/etc/kubernetes").map_err(|_| {
                        StepError::Stage(format!(
                            "certificate path {} is outside /etc/kubernetes",
                            f.path.display()
                        ))
                    })?;
                    let dest = to.join(rel);
                    if let Some(parent) = dest.parent() {
                        fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
                    }
                    let mut out = OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(f.mode)
                        .open(&dest)
                        .map_err(io_err("creating", &dest))?;
                    out.write_all(&f.contents)
                        .map_err(io_err("writing", &dest))?;
                    out.sync_all().map_err(io_err("syncing", &dest))?;
                    total += f.contents.len() as u64;
                }
                sync_tree(to)?;
                Ok(total)
            }
            KubeSource::RkeSsl { .. } => Ok(0),
        }
    }
}

fn read_location(loc: &Location) -> Result<Vec<u8>, StepError> {
    match loc {
        Location::File { path } => {
            let mut v = Vec::new();
            File::open(path)
                .and_then(|f| f.take(64 << 20).read_to_end(&mut v))
                .map_err(io_err("reading", path))?;
            Ok(v)
        }
        Location::Member { archive, member } => {
            let mut v = Vec::new();
            archive::stream_member(archive, member, &mut v, &Limits::CONFIG_TREE)
                .map_err(stage_err)?;
            Ok(v)
        }
    }
}

fn find(dir: &Path, pred: &dyn Fn(&Path) -> bool) -> Option<std::path::PathBuf> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in &entries {
        if pred(p) {
            return Some(p.clone());
        }
    }
    entries
        .iter()
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .find_map(|p| find(p, pred))
}

/// Copies a directory tree (files, directories, symlinks kept as links), keeping modes and,
/// as root, owners; fsyncs every file and directory.
fn copy_tree(from: &Path, to: &Path) -> Result<u64, StepError> {
    let mut total = 0;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(io_err("reading", from))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let src = e.path();
        let dst = to.join(e.file_name());
        let meta = fs::symlink_metadata(&src).map_err(io_err("inspecting", &src))?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(&src).map_err(io_err("reading link", &src))?;
            std::os::unix::fs::symlink(&target, &dst).map_err(io_err("linking", &dst))?;
            continue;
        } else if ft.is_dir() {
            fs::create_dir(&dst).map_err(io_err("creating", &dst))?;
            total += copy_tree(&src, &dst)?;
        } else if ft.is_file() {
            let mut i = File::open(&src).map_err(io_err("opening", &src))?;
            let mut o = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(meta.mode() & 0o777)
                .open(&dst)
                .map_err(io_err("creating", &dst))?;
            total += std::io::copy(&mut i, &mut o).map_err(io_err("copying", &src))?;
            o.sync_all().map_err(io_err("syncing", &dst))?;
        } else {
            return Err(StepError::Stage(format!(
                "{} is not a file, directory or symlink; refusing to copy it",
                src.display()
            )));
        }
        fs::set_permissions(&dst, fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(io_err("setting mode of", &dst))?;
        if rustix::process::geteuid().is_root() {
            let _ = std::os::unix::fs::lchown(&dst, Some(meta.uid()), Some(meta.gid()));
        }
    }
    File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", to))?;
    Ok(total)
}

fn sync_tree(dir: &Path) -> Result<(), StepError> {
    for e in fs::read_dir(dir)
        .map_err(io_err("reading", dir))?
        .filter_map(Result::ok)
    {
        let p = e.path();
        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            sync_tree(&p)?;
        }
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing", dir))
}
