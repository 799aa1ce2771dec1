//! The recovery plan: a list of steps that describe themselves. Pure: building, validating and
//! printing a plan touches nothing; [`crate::exec`] is the only code that carries it out.
//!
//! Order, enforced by [`Plan::validate`]: everything that reads or stages comes first (nothing
//! outside the staging directory changes until every input is verified), then the old data is
//! moved aside, then new data is put in place, then configuration is rewritten.
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use thiserror::Error;

use crate::discover::{KubeSource, Location};

/// One step of a recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    /// Copy a snapshot (a file, or a member of an archive) into the staging directory.
    StageSnapshot { from: Location, to: PathBuf },
    /// Build the backup's `/etc/kubernetes` content in the staging directory.
    StageKubernetes { from: KubeSource, to: PathBuf },
    /// Check a snapshot's sha256 trailer and bbolt structure.
    VerifySnapshot { path: PathBuf, trailer: Trailer },
    /// Rename a host path to a timestamped sibling on the same filesystem, then fsync.
    MoveAside { from: PathBuf, to: PathBuf },
    /// Rename a staged tree into its final place.
    Install { from: PathBuf, to: PathBuf },
    /// Restore the etcd data dir natively.
    RestoreEtcd(RestoreEtcd),
    /// Replace a file's contents with a minimal edit (diff kept for the report).
    Rewrite {
        path: PathBuf,
        before: String,
        after: String,
    },
    /// Remove the staging directory (only what rescue-init created).
    Cleanup { path: PathBuf },
    /// Flush everything to disk.
    Sync,
}

/// How a snapshot's sha256 trailer is checked by [`Step::VerifySnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Trailer {
    /// Read the file and compare: the snapshot must carry a trailer.
    Verify,
    /// A raw db (or a data dir's db) has none: structure only.
    None,
    /// Checked in the pass that fetched the file into a directory only rescue-init writes:
    /// structure only, the file is not read for the hash again.
    CheckedWhileFetching,
}

/// Parameters of the native restore, as `etcdutl snapshot restore` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreEtcd {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: String,
    pub peer_urls: Vec<String>,
    pub token: String,
    /// Restore without checking the sha256 trailer: a raw db has none, and in a recovery an
    /// earlier `VerifySnapshot` step has already checked it.
    pub skip_hash_check: bool,
    /// Revision bump with mark-compacted; 0 for none.
    pub bump_revision: u64,
    /// The snapshot is rescue-init's own temporary copy (fetched or extracted): it becomes the
    /// new db in place instead of being copied (see `RestoreOptions::consume`).
    pub consume: bool,
}

impl Step {
    /// Whether the step changes anything outside the staging directory.
    pub fn touches_host(&self) -> bool {
        matches!(
            self,
            Step::MoveAside { .. }
                | Step::Install { .. }
                | Step::RestoreEtcd(_)
                | Step::Rewrite { .. }
        )
    }

    /// The host path this step creates or replaces, if any.
    pub fn target(&self) -> Option<&Path> {
        match self {
            Step::Install { to, .. } => Some(to),
            Step::RestoreEtcd(r) => Some(&r.data_dir),
            Step::Rewrite { path, .. } => Some(path),
            _ => None,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::StageSnapshot { from, to } => write!(f, "copy {from} to {}", to.display()),
            Step::StageKubernetes { from, to } => {
                let what = match from {
                    KubeSource::Dir { path } => format!("copy {}", path.display()),
                    KubeSource::Archive { archive, prefix } if prefix.is_empty() => {
                        format!("extract {}", archive.display())
                    }
                    KubeSource::Archive { archive, prefix } => {
                        format!("extract {prefix} of {}", archive.display())
                    }
                    KubeSource::OpenShiftResources { archive } => format!(
                        "extract static-pod-resources and the etcd pod of {}",
                        archive.display()
                    ),
                    KubeSource::RkeState { state, .. } => {
                        format!("rebuild ssl/ from the certificatesBundle of {state}")
                    }
                    KubeSource::RkeSsl { ssl_dir } => format!("keep {}", ssl_dir.display()),
                };
                write!(f, "{what} to {}", to.display())
            }
            Step::VerifySnapshot { path, trailer } => write!(
                f,
                "verify snapshot {}{}",
                path.display(),
                match trailer {
                    Trailer::Verify => "",
                    Trailer::None => " (structure only: no sha256 trailer)",
                    Trailer::CheckedWhileFetching => {
                        " (structure; sha256 trailer checked while fetching)"
                    }
                }
            ),
            Step::MoveAside { from, to } => {
                write!(f, "mv {} {} && fsync", from.display(), to.display())
            }
            Step::Install { from, to } => write!(f, "mv {} {}", from.display(), to.display()),
            Step::RestoreEtcd(r) => write!(
                f,
                "rescue-init snapshot restore {} --data-dir {} --name {} --initial-cluster {} --initial-advertise-peer-urls {} --initial-cluster-token {}{}{}",
                r.snapshot.display(),
                r.data_dir.display(),
                r.name,
                r.initial_cluster,
                r.peer_urls.join(","),
                r.token,
                if r.skip_hash_check { " --skip-hash-check" } else { "" },
                if r.bump_revision > 0 {
                    format!(" --bump-revision {} --mark-compacted", r.bump_revision)
                } else {
                    String::new()
                }
            ),
            Step::Rewrite { path, .. } => write!(f, "rewrite {}", path.display()),
            Step::Cleanup { path } => write!(f, "rm -r {}", path.display()),
            Step::Sync => write!(f, "sync"),
        }
    }
}

/// A plan that breaks the never-lose-data rules.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("step {index} ({step}) would replace {path} without moving it aside first")]
    OverwriteWithoutMoveAside {
        index: usize,
        step: String,
        path: PathBuf,
    },
    #[error("step {index} ({step}) changes the host before every input is verified")]
    ChangeBeforeVerify { index: usize, step: String },
    #[error("step {index} ({step}) moves {path} aside onto an existing path")]
    MoveAsideOntoExisting {
        index: usize,
        step: String,
        path: PathBuf,
    },
}

/// An ordered list of steps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    /// Checks the plan against the rules, given which host paths exist now (`exists`).
    /// - no step changes the host before the last verification or staging step;
    /// - a path that exists is moved aside before anything replaces it (rewrites edit in
    ///   place and are allowed: the old file is already safe in the moved-aside copy, or is
    ///   kept as a `.rescue-init.bak` sibling by the executor);
    /// - move-aside targets do not exist.
    pub fn validate(&self, exists: &dyn Fn(&Path) -> bool) -> Result<(), PlanError> {
        let last_check = self.steps.iter().rposition(|s| {
            matches!(
                s,
                Step::VerifySnapshot { .. }
                    | Step::StageSnapshot { .. }
                    | Step::StageKubernetes { .. }
            )
        });
        let mut moved: Vec<&Path> = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            if step.touches_host() && last_check.is_some_and(|l| index < l) {
                return Err(PlanError::ChangeBeforeVerify {
                    index,
                    step: step.to_string(),
                });
            }
            if let Step::MoveAside { from, to } = step {
                if exists(to) {
                    return Err(PlanError::MoveAsideOntoExisting {
                        index,
                        step: step.to_string(),
                        path: to.clone(),
                    });
                }
                moved.push(from);
            }
            if let (Some(path), false) = (step.target(), matches!(step, Step::Rewrite { .. })) {
                if exists(path)
                    && !moved
                        .iter()
                        .any(|m| path.starts_with(m) || m.starts_with(path))
                {
                    return Err(PlanError::OverwriteWithoutMoveAside {
                        index,
                        step: step.to_string(),
                        path: path.to_path_buf(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "{:>2}. {s}", i + 1)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restore(dir: &str) -> Step {
        Step::RestoreEtcd(RestoreEtcd {
            snapshot: "/s/snap.db".into(),
            data_dir: dir.into(),
            name: "m".into(),
            initial_cluster: "m=https://10.0.0.5:2380".into(),
            peer_urls: vec!["https://10.0.0.5:2380".into()],
            token: "etcd-cluster".into(),
            skip_hash_check: false,
            bump_revision: 1_000_000_000,
            consume: false,
        })
    }

    #[test]
    fn valid_plan_and_display() {
        let p = Plan {
            steps: vec![
                Step::VerifySnapshot {
                    path: "/s/snap.db".into(),
                    trailer: Trailer::Verify,
                },
                Step::MoveAside {
                    from: "/r/var/lib/etcd".into(),
                    to: "/r/var/lib/etcd.before-rescue-1".into(),
                },
                restore("/r/var/lib/etcd"),
                Step::Sync,
            ],
        };
        let exists = |p: &Path| p == Path::new("/r/var/lib/etcd");
        assert_eq!(p.validate(&exists), Ok(()));
        let text = p.to_string();
        assert!(text.contains(
            " 3. rescue-init snapshot restore /s/snap.db --data-dir /r/var/lib/etcd --name m"
        ));
        assert!(text.contains("--bump-revision 1000000000 --mark-compacted"));
    }

    #[test]
    fn rejects_overwrite_and_early_changes() {
        let exists = |p: &Path| p == Path::new("/r/var/lib/etcd");
        let p = Plan {
            steps: vec![restore("/r/var/lib/etcd")],
        };
        assert!(matches!(
            p.validate(&exists),
            Err(PlanError::OverwriteWithoutMoveAside { .. })
        ));
        let p = Plan {
            steps: vec![
                Step::MoveAside {
                    from: "/r/var/lib/etcd".into(),
                    to: "/r/x".into(),
                },
                Step::VerifySnapshot {
                    path: "/s".into(),
                    trailer: Trailer::Verify,
                },
            ],
        };
        assert!(matches!(
            p.validate(&exists),
            Err(PlanError::ChangeBeforeVerify { .. })
        ));
        let p = Plan {
            steps: vec![Step::MoveAside {
                from: "/r/a".into(),
                to: "/r/var/lib/etcd".into(),
            }],
        };
        assert!(matches!(
            p.validate(&exists),
            Err(PlanError::MoveAsideOntoExisting { .. })
        ));
    }
}
