//! Carries out a [`Plan`]: the only code that writes to the host disk.
//!
//! Every host change is recorded in an undo log as it happens. When a step fails, the log is
//! replayed backwards (moved-aside data is moved back, installed trees and restored data dirs
//! are moved out of the way into the staging area, rewritten files get their old bytes back), so
//! a failure leaves the host as it was. Staging happens in a directory rescue-init owns.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use crate::discover::{KubeSource, Location};
use crate::plan::{Plan, Step, Trailer};
use crate::progress::Progress;
use crate::snapshot::{self, RestoreOptions, RestoreReport, SnapshotError};

/// Staging of backup contents, provided by the caller (archives and copies in production).
pub trait Stager {
    /// Streams a snapshot (a file or an archive member) into the new file `to`, fsynced.
    fn stage_snapshot(&self, from: &Location, to: &Path) -> Result<u64, StepError>;
    /// Builds the backup's `/etc/kubernetes` content in the new directory `to`, fsynced.
    fn stage_kubernetes(&self, from: &KubeSource, to: &Path) -> Result<u64, StepError>;
}

/// Why one step failed.
#[derive(Debug, Error)]
pub enum StepError {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{0}")]
    Stage(String),
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StepError {
    let path = path.to_path_buf();
    move |source| StepError::Io { op, path, source }
}

/// A failed plan: which step, why, and what the rollback did.
#[derive(Debug, Error)]
#[error("step {index} failed ({step}){}", rollback_note(.rolled_back, .rollback_failures))]
pub struct ExecError {
    pub index: usize,
    pub step: String,
    #[source]
    pub source: Box<StepError>,
    pub rolled_back: Vec<String>,
    pub rollback_failures: Vec<String>,
}

fn rollback_note(done: &[String], failed: &[String]) -> String {
    match (done.len(), failed.len()) {
        (0, 0) => String::new(),
        (n, 0) => format!("; the host was put back as it was ({n} changes undone)"),
        (_, _) => format!(
            "; ROLLBACK INCOMPLETE, repair by hand: {}",
            failed.join("; ")
        ),
    }
}

/// What a step did, for the report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepOutcome {
    pub step: String,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<snapshot::Status>,
}

enum Undo {
    /// Rename `now` back to `was`.
    Rename { now: PathBuf, was: PathBuf },
    /// Move a path we created out of the way, to the hidden sibling `trash`.
    Created { path: PathBuf, trash: PathBuf },
    /// Put the old bytes and mode of a rewritten file back.
    Rewritten {
        path: PathBuf,
        before: Vec<u8>,
        mode: u32,
    },
}

/// Applies `plan`. Rollback moves what the plan created to a hidden sibling named with
/// `tag` (`.NAME.rescue-init-rolled-back-TAG`); nothing is ever deleted from the host.
pub fn apply(
    plan: &Plan,
    stager: &dyn Stager,
    tag: &str,
    progress: &mut Progress,
) -> Result<Vec<StepOutcome>, ExecError> {
    let mut undo: Vec<Undo> = Vec::new();
    let mut outcomes = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let started = Instant::now();
        log::info!("step {}: {step}", i + 1);
        match run_step(step, stager, tag, progress, &mut undo) {
            Ok(mut o) => {
                o.seconds = started.elapsed().as_secs_f64();
                log::info!("step {} done in {:.2}s", i + 1, o.seconds);
                outcomes.push(o);
            }
            Err(source) => {
                log::error!("step {} failed: {}", i + 1, crate::cli::chain(&source));
                let (rolled_back, rollback_failures) = rollback(undo);
                return Err(ExecError {
                    index: i + 1,
                    step: step.to_string(),
                    source: Box::new(source),
                    rolled_back,
                    rollback_failures,
                });
            }
        }
    }
    Ok(outcomes)
}

fn outcome(step: &Step) -> StepOutcome {
    StepOutcome {
        step: step.to_string(),
        seconds: 0.0,
        bytes: None,
        restore: None,
        snapshot: None,
    }
}

fn run_step(
    step: &Step,
    stager: &dyn Stager,
    tag: &str,
    progress: &mut Progress,
    undo: &mut Vec<Undo>,
) -> Result<StepOutcome, StepError> {
    let mut o = outcome(step);
    match step {
        Step::StageSnapshot { from, to } => {
            o.bytes = Some(stager.stage_snapshot(from, to)?);
        }
        Step::StageKubernetes { from, to } => {
            o.bytes = Some(stager.stage_kubernetes(from, to)?);
        }
        Step::VerifySnapshot { path, trailer } => {
            let read_hash = *trailer == Trailer::Verify;
            let mut st = snapshot::status(path, !read_hash, progress)?;
            // A plain snapshot must carry its trailer unless the plan says it is a raw db
            // (the status says `Absent` exactly when the file has none).
            if *trailer != Trailer::None && st.hash_trailer == snapshot::HashCheck::Absent {
                return Err(SnapshotError::MissingHash { path: path.clone() }.into());
            }
            if *trailer == Trailer::CheckedWhileFetching {
                st.hash_trailer = snapshot::HashCheck::Verified;
            }
            o.snapshot = Some(st);
        }
        Step::MoveAside { from, to } => {
            fs::rename(from, to).map_err(io_err("moving aside", from))?;
            undo.push(Undo::Rename {
                now: to.clone(),
                was: from.clone(),
            });
            sync_parent(to)?;
        }
        Step::Install { from, to } => {
            fs::rename(from, to).map_err(io_err("installing", to))?;
            undo.push(Undo::Created {
                path: to.clone(),
                trash: trash_path(tag, to),
            });
            sync_parent(to)?;
        }
        Step::RestoreEtcd(r) => {
            let opts = RestoreOptions {
                snapshot: r.snapshot.clone(),
                data_dir: r.data_dir.clone(),
                name: r.name.clone(),
                initial_cluster: r.initial_cluster.clone(),
                initial_advertise_peer_urls: r.peer_urls.clone(),
                initial_cluster_token: r.token.clone(),
                skip_hash_check: r.skip_hash_check,
                bump_revision: r.bump_revision,
                mark_compacted: r.bump_revision > 0,
                consume: r.consume,
                trailer_verified: false,
            };
            let existed = r.data_dir.exists();
            let report = snapshot::restore(&opts, progress)?;
            if !existed {
                undo.push(Undo::Created {
                    path: r.data_dir.clone(),
                    trash: trash_path(tag, &r.data_dir),
                });
            }
            o.restore = Some(report);
        }
        Step::Rewrite {
            path,
            before,
            after,
        } => {
            let old = fs::read(path).map_err(io_err("reading", path))?;
            if old != before.as_bytes() {
                return Err(StepError::Stage(format!(
                    "{} changed since it was planned; run again",
                    path.display()
                )));
            }
            let mode = fs::metadata(path)
                .map_err(io_err("inspecting", path))?
                .mode();
            write_replace(path, after.as_bytes(), mode)?;
            undo.push(Undo::Rewritten {
                path: path.clone(),
                before: old,
                mode,
            });
        }
        Step::Cleanup { path } => {
            if path.exists() {
                fs::remove_dir_all(path).map_err(io_err("removing staging directory", path))?;
            }
        }
        Step::Sync => rustix::fs::sync(),
    }
    Ok(o)
}

fn trash_path(tag: &str, p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    p.with_file_name(format!(".{name}.rescue-init-rolled-back-{tag}"))
}

fn rollback(undo: Vec<Undo>) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for u in undo.into_iter().rev() {
        let (what, r) = match u {
            Undo::Rename { now, was } => (
                format!("mv {} {}", now.display(), was.display()),
                fs::rename(&now, &was).and_then(|_| sync_parent_io(&was)),
            ),
            Undo::Created { path, trash } => (
                format!("mv {} {}", path.display(), trash.display()),
                fs::rename(&path, &trash).and_then(|_| sync_parent_io(&path)),
            ),
            Undo::Rewritten { path, before, mode } => (
                format!("restore old contents of {}", path.display()),
                write_replace(&path, &before, mode)
                    .map_err(|e| std::io::Error::other(crate::cli::chain(&e))),
            ),
        };
        match r {
            Ok(()) => {
                log::warn!("rolled back: {what}");
                done.push(what);
            }
            Err(e) => {
                log::error!("rollback failed: {what}: {e}");
                failed.push(format!("{what}: {e}"));
            }
        }
    }
    (done, failed)
}

fn sync_parent_io(p: &Path) -> std::io::Result<()> {
    let parent = p
        .parent()
        .filter(|x| !x.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

fn sync_parent(p: &Path) -> Result<(), StepError> {
    sync_parent_io(p).map_err(io_err("syncing the directory of", p))
}

/// Creates the new file `path` with `data` and `mode`, fsynced with its directory.
pub(crate) fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), StepError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err("creating", path))?;
    f.write_all(data).map_err(io_err("writing", path))?;
    f.sync_all().map_err(io_err("syncing", path))?;
    sync_parent(path)
}

/// Replaces `path` atomically with `data`: a temporary sibling with the same mode and owner,
/// fsynced, renamed over the original, then the directory fsynced.
pub(crate) fn write_replace(path: &Path, data: &[u8], mode: u32) -> Result<(), StepError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.rescue-init.tmp"));
    let meta = fs::metadata(path).ok();
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode & 0o7777)
        .open(&tmp)
        .map_err(io_err("creating", &tmp))?;
    let result = (|| {
        f.write_all(data).map_err(io_err("writing", &tmp))?;
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(io_err("setting mode of", &tmp))?;
        if let Some(m) = &meta {
            // Keep the owner; only root can, and only root needs to.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
        }
        f.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("replacing", path))?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RestoreEtcd;

    struct CopyStager;
    impl Stager for CopyStager {
        fn stage_snapshot(&self, _: &Location, to: &Path) -> Result<u64, StepError> {
            fs::write(to, "x").map_err(io_err("writing", to))?;
            Ok(1)
        }
        fn stage_kubernetes(&self, _: &KubeSource, to: &Path) -> Result<u64, StepError> {
            fs::create_dir(to).map_err(io_err("creating", to))?;
            Ok(0)
        }
    }

    #[test]
    fn failure_rolls_everything_back() {
        let t = tempfile::tempdir().expect("tempdir");
        let root = t.path();
        let etcd = root.join("var/lib/etcd");
        let kube = root.join("etc/kubernetes");
        fs::create_dir_all(etcd.join("member")).expect("mkdir");
        fs::create_dir_all(kube.join("manifests")).expect("mkdir");
        fs::write(etcd.join("member/old"), "old data").expect("write");
        let manifest = kube.join("manifests/etcd.yaml");
        fs::write(&manifest, "name: old\n").expect("write");
        let staged = root.join("stage/kubernetes");
        fs::create_dir_all(&staged).expect("mkdir");
        let plan = Plan {
            steps: vec![
                Step::MoveAside {
                    from: etcd.clone(),
                    to: root.join("var/lib/etcd.aside"),
                },
                Step::Rewrite {
                    path: manifest.clone(),
                    before: "name: old\n".into(),
                    after: "name: new\n".into(),
                },
                Step::MoveAside {
                    from: kube.clone(),
                    to: root.join("etc/kubernetes.aside"),
                },
                Step::Install {
                    from: staged.clone(),
                    to: kube.clone(),
                },
                // Fails: the snapshot does not exist.
                Step::RestoreEtcd(RestoreEtcd {
                    snapshot: root.join("missing.db"),
                    data_dir: etcd.clone(),
                    name: "m".into(),
                    initial_cluster: "m=http://127.0.0.1:2380".into(),
                    peer_urls: vec!["http://127.0.0.1:2380".into()],
                    token: "etcd-cluster".into(),
                    skip_hash_check: false,
                    bump_revision: 0,
                    consume: false,
                }),
            ],
        };
        let err = apply(&plan, &CopyStager, "T1", &mut Progress::hidden()).expect_err("must fail");
        assert_eq!(err.index, 5);
        assert!(
            err.rollback_failures.is_empty(),
            "{:?}",
            err.rollback_failures
        );
        assert_eq!(err.rolled_back.len(), 4);
        assert_eq!(
            fs::read_to_string(etcd.join("member/old")).expect("etcd back"),
            "old data"
        );
        assert_eq!(
            fs::read_to_string(&manifest).expect("manifest back"),
            "name: old\n"
        );
        assert!(!root.join("var/lib/etcd.aside").exists());
        assert!(!root.join("etc/kubernetes.aside").exists());
        assert!(root
            .join("etc/.kubernetes.rescue-init-rolled-back-T1")
            .is_dir());
        assert!(crate::cli::chain(&err).contains("put back as it was"));
    }

    #[test]
    fn rewrite_keeps_mode_and_refuses_a_changed_file() {
        let t = tempfile::tempdir().expect("tempdir");
        let f = t.path().join("etcd.yaml");
        fs::write(&f, "a\n").expect("write");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).expect("chmod");
        let plan = Plan {
            steps: vec![Step::Rewrite {
                path: f.clone(),
                before: "a\n".into(),
                after: "b\n".into(),
            }],
        };
        apply(&plan, &CopyStager, "T2", &mut Progress::hidden()).expect("apply");
        assert_eq!(fs::read_to_string(&f).expect("read"), "b\n");
        assert_eq!(fs::metadata(&f).expect("meta").mode() & 0o777, 0o600);
        let err = apply(&plan, &CopyStager, "T2", &mut Progress::hidden()).expect_err("stale");
        assert!(crate::cli::chain(&err).contains("changed since it was planned"));
        assert_eq!(
            t.path().read_dir().expect("dir").count(),
            1,
            "no temporary file left"
        );
    }
}
