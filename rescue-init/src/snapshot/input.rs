//! Opening a snapshot file: the sha256 trailer `etcdctl snapshot save` appends, detected as
//! etcdutl does (file size % 512 == 32), and verified in one streaming pass.
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::status::Survey;
use super::SnapshotError;
use crate::formats::bbolt::{Db, ReadAhead};
use crate::progress::Progress;

/// What the sha256 trailer check found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashCheck {
    /// Trailer present and equal to the sha256 of the database bytes.
    Verified,
    /// Trailer present, not checked (`--skip-hash-check`).
    Skipped,
    /// No trailer (a raw `member/snap/db`).
    Absent,
}

/// An open snapshot: the database part and the optional trailer.
pub struct SnapshotFile {
    pub path: PathBuf,
    pub file: File,
    pub len: u64,
    /// Length of the database part (the file without the trailer).
    pub db_len: u64,
    pub trailer: Option<[u8; 32]>,
}

const TRAILER: u64 = 32;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl SnapshotFile {
    pub fn open(path: &Path) -> Result<Self, SnapshotError> {
        let open_err = |source| SnapshotError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(open_err(std::io::Error::other("not a regular file")));
        }
        let len = meta.len();
        let mut trailer = None;
        let mut db_len = len;
        if len % 512 == TRAILER && len > TRAILER {
            let mut t = [0u8; 32];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut t, len - TRAILER)
                .map_err(open_err)?;
            trailer = Some(t);
            db_len = len - TRAILER;
        }
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            file,
            len,
            db_len,
            trailer,
        })
    }

    /// Verifies the trailer (streaming) unless `skip`; a missing trailer is an error unless
    /// `skip` or `allow_absent`.
    pub fn check_hash(
        &self,
        skip: bool,
        allow_absent: bool,
        progress: &mut Progress,
    ) -> Result<HashCheck, SnapshotError> {
        let Some(expected) = self.trailer else {
            if skip || allow_absent {
                return Ok(HashCheck::Absent);
            }
            return Err(SnapshotError::MissingHash {
                path: self.path.clone(),
            });
        };
        if skip {
            return Ok(HashCheck::Skipped);
        }
        let mut h = Sha256::new();
        let mut f = (&self.file).take(self.db_len);
        let mut buf = vec![0u8; 1 << 20];
        progress.start("verifying sha256", self.db_len);
        let mut done = 0u64;
        loop {
            let n = std::io::Read::read(&mut f, &mut buf)
                .map_err(SnapshotError::io("reading", &self.path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            done += n as u64;
            progress.set(done);
        }
        progress.finish();
        let actual = h.finalize();
        if actual.as_slice() != expected {
            return Err(SnapshotError::HashMismatch {
                path: self.path.clone(),
                expected: hex(&expected),
                actual: hex(&actual),
            });
        }
        Ok(HashCheck::Verified)
    }

    /// Verifies the trailer and checks the database structure at the same time (two cores),
    /// returning the survey of the database. The hash error wins when both fail.
    pub(crate) fn verify(
        &self,
        skip_hash: bool,
        allow_absent: bool,
        progress: &mut Progress,
    ) -> Result<(HashCheck, Db<ReadAhead<&File>>, Survey), SnapshotError> {
        if self.trailer.is_none() && !skip_hash && !allow_absent {
            return Err(SnapshotError::MissingHash {
                path: self.path.clone(),
            });
        }
        let (hash, walked) = std::thread::scope(|s| {
            let hasher = s.spawn(|| self.check_hash(skip_hash, allow_absent, progress));
            let walked = self.db().and_then(|db| {
                let survey = Survey::run(&db, &mut Progress::hidden()).map_err(|source| {
                    SnapshotError::Corrupt {
                        path: self.path.clone(),
                        source,
                    }
                })?;
                Ok((db, survey))
            });
            (hasher.join(), walked)
        });
        let hash = hash.map_err(|_| {
            SnapshotError::io("hashing", &self.path)(std::io::Error::other("hash thread failed"))
        })??;
        let (db, survey) = walked?;
        Ok((hash, db, survey))
    }

    /// Opens the database part.
    pub fn db(&self) -> Result<Db<ReadAhead<&File>>, SnapshotError> {
        Db::open(ReadAhead::new(&self.file, self.db_len), self.db_len).map_err(|source| {
            SnapshotError::Corrupt {
                path: self.path.clone(),
                source,
            }
        })
    }
}
