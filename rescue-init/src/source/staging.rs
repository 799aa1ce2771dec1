//! The staging file a source streams into: written, hashed and counted in one pass. The hash
//! always covers exactly the bytes on disk (it is updated only after a write succeeds), so a
//! resumed download continues from `len()` with the hash still right. Dropped unfinished, or
//! finished with a wrong pin, the file is removed.
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::{hex, Sha256Pin, SourceError};
use crate::progress::Progress;

/// Chunk size for copies: bounded memory whatever the snapshot's size.
pub(crate) const CHUNK: usize = 1 << 20;

/// A file being fetched.
pub struct Staging {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
    done: bool,
}

pub(crate) enum CopyError {
    Read(std::io::Error),
    Write(SourceError),
}

impl Staging {
    /// Creates `dir/.rescue-fetch-<pid>-<nanos>.part` (mode 0600, must not exist).
    pub fn create(dir: &Path) -> Result<Self, SourceError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dir.join(format!(".rescue-fetch-{}-{nanos}.part", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(SourceError::staging("creating", &path))?;
        Ok(Staging {
            path,
            file,
            hasher: Sha256::new(),
            len: 0,
            done: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far (and hashed).
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `buf`, then hashes it.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), SourceError> {
        self.file
            .write_all(buf)
            .map_err(SourceError::staging("writing", &self.path))?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Drops everything written so far (the server restarted from byte 0, or another member
    /// is tried).
    pub fn restart(&mut self) -> Result<(), SourceError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .map_err(SourceError::staging("truncating", &self.path))?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    /// Copies `r` to the end, reporting progress as the running length.
    pub(crate) fn copy_from(
        &mut self,
        r: &mut dyn Read,
        progress: &mut Progress,
    ) -> Result<(), CopyError> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(CopyError::Read(e)),
            };
            self.write(&buf[..n]).map_err(CopyError::Write)?;
            progress.set(self.len);
        }
    }

    /// fsyncs, checks `pin`, and hands the file over. On a mismatch the file is removed.
    pub fn finish(mut self, shown: &str, pin: Option<&Sha256Pin>) -> Result<Fetched, SourceError> {
        self.file
            .sync_all()
            .map_err(SourceError::staging("syncing", &self.path))?;
        let sha256: [u8; 32] = std::mem::take(&mut self.hasher).finalize().into();
        if let Some(pin) = pin {
            if pin.0 != sha256 {
                // Drop removes the file.
                return Err(SourceError::Sha256Mismatch {
                    url: shown.to_string(),
                    expected: pin.to_string(),
                    actual: hex(&sha256),
                });
            }
        }
        self.done = true;
        Ok(Fetched {
            path: self.path.clone(),
            len: self.len,
            sha256,
            temporary: true,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A fetched snapshot ready to restore. A temporary (staged) file is removed when this is
/// dropped unless [`Fetched::keep`] is called.
#[derive(Debug)]
pub struct Fetched {
    pub path: PathBuf,
    pub len: u64,
    /// sha256 of the whole file, when it was computed (always for a fetched file; for a local
    /// file only when pinned).
    pub sha256: [u8; 32],
    /// The file is a staging copy (removed on drop), not the user's own file.
    pub temporary: bool,
}

impl Fetched {
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }

    /// Keeps the file on disk and returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.temporary = false;
        std::mem::take(&mut self.path)
    }
}

impl Drop for Fetched {
    fn drop(&mut self) {
        if self.temporary && !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A local snapshot used in place: hashed only when pinned.
pub(crate) fn check_local(
    path: &Path,
    pin: Option<&Sha256Pin>,
    progress: &mut Progress,
) -> Result<Fetched, SourceError> {
    let local = |source| SourceError::Local {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(local)?;
    let len = f.metadata().map_err(local)?.len();
    let mut sha256 = [0u8; 32];
    if let Some(pin) = pin {
        let mut h = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        progress.start("hashing snapshot", len);
        loop {
            let n = f.read(&mut buf).map_err(local)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            done += n as u64;
            progress.set(done);
        }
        progress.finish();
        sha256 = h.finalize().into();
        if pin.0 != sha256 {
            return Err(SourceError::Sha256Mismatch {
                url: path.display().to_string(),
                expected: pin.to_string(),
                actual: hex(&sha256),
            });
        }
    }
    Ok(Fetched {
        path: path.to_path_buf(),
        len,
        sha256,
        temporary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_follows_the_file_and_mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().expect("ok");
        let mut s = Staging::create(dir.path()).expect("ok");
        s.write(b"garbage from a server that restarted")
            .expect("ok");
        s.restart().expect("ok");
        s.write(b"hello ").expect("ok");
        s.write(b"world").expect("ok");
        let want: [u8; 32] = Sha256::digest(b"hello world").into();
        let path = s.path().to_path_buf();
        let f = s.finish("test", Some(&Sha256Pin(want))).expect("ok");
        assert_eq!(std::fs::read(&f.path).expect("ok"), b"hello world");
        assert_eq!(f.sha256, want);
        drop(f);
        assert!(!path.exists(), "a temporary fetch is removed on drop");

        let mut s = Staging::create(dir.path()).expect("ok");
        s.write(b"other").expect("ok");
        let e = s
            .finish("test", Some(&Sha256Pin(want)))
            .expect_err("should fail");
        assert!(matches!(e, SourceError::Sha256Mismatch { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ok").count(), 0);
    }
}
