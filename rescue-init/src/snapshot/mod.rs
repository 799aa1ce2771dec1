//! etcd snapshots: open and verify a backup file, report its status, and restore it into a
//! new data directory natively (what `etcdutl snapshot status|restore` do).
//!
//! `status` only reads. `restore` writes only inside a temporary directory beside the target
//! and renames it into place after everything is fsynced; on failure it removes what it made.
mod input;
mod restore;
mod status;

pub use input::{HashCheck, SnapshotFile};
pub use restore::{check_options, restore, RestoreOptions, RestoreReport};
pub use status::{status, Status, StatusMember};

use std::path::PathBuf;

use thiserror::Error;

use crate::formats::bbolt::BboltError;
use crate::formats::etcd::ClusterError;

/// Why a snapshot could not be read, verified or restored. Messages name the file and, where
/// there is one, the fix.
#[derive(Debug, Error)]
pub enum SnapshotError {
    #[error("cannot open snapshot {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {path} has no sha256 trailer (a raw member/snap/db?); pass --skip-hash-check to restore it unverified")]
    MissingHash { path: PathBuf },
    #[error("snapshot {path} fails its sha256 check (trailer {expected}, content {actual}): the file is corrupt or truncated; use an intact backup")]
    HashMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("snapshot {path} is damaged or not an etcd database (restore from an intact backup)")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: BboltError,
    },
    #[error("snapshot {path} is not an etcd backend: bucket {bucket:?} is missing")]
    NotEtcd { path: PathBuf, bucket: &'static str },
    #[error("invalid cluster flags")]
    Cluster(#[from] ClusterError),
    #[error("invalid flags: {0}")]
    Flags(String),
    #[error("data dir {path} exists and is not empty; restore needs a new or empty directory (move the old one aside first)")]
    DataDirNotEmpty { path: PathBuf },
    #[error("not enough space for {path}: {needed} bytes needed, {available} available; free space or pick another --data-dir")]
    NoSpace {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error(
        "no space left on the device while writing {path}; free space or pick another --data-dir"
    )]
    DiskFull { path: PathBuf },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the restored database {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: BboltError,
    },
}

impl SnapshotError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| {
            if crate::errors::is_disk_full(&source) {
                return SnapshotError::DiskFull { path };
            }
            SnapshotError::Io { op, path, source }
        }
    }
}
