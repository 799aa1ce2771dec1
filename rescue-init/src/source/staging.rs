//! The staging file a source streams into: written, hashed and counted in one pass. The hash
//! always covers exactly the bytes on disk (it is updated only after a write succeeds), so a
//! resumed download continues from `len()` with the hash still right. Dropped unfinished, or
//! finished with a wrong pin, the file is removed.
//!
//! One SHA-256 pass gives two answers: the hasher runs 32 bytes behind the writer, so at the end
//! it holds the hash of everything but the last 32 bytes (which an `etcdctl snapshot save` file
//! must equal: its trailer), and a clone of it fed those 32 bytes gives the whole file's hash
//! (the pin). The restore then need not read the file again to check the trailer.
//!
//! Writeback to the disk starts while the download goes on (a flusher thread syncs the data
//! written so far every [`FLUSH_EVERY`] bytes), so the sync of what is made of the file finds
//! little left to write.
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

/// How much is written between two background syncs.
const FLUSH_EVERY: u64 = 32 << 20;

/// Length of the sha256 trailer of an `etcdctl snapshot save` file.
const TRAILER: usize = 32;

/// A file being fetched.
pub struct Staging {
    path: PathBuf,
    file: File,
    /// sha256 of all bytes but the last `tail_len` (at most 32), which wait in `tail`.
    body: Sha256,
    tail: [u8; TRAILER],
    tail_len: usize,
    len: u64,
    done: bool,
    flusher: Flusher,
}

/// Syncs the staging file's data in the background: every [`FLUSH_EVERY`] bytes written ask
/// for a sync (coalesced while one runs), so writeback overlaps the download instead of all
/// waiting for the end. Its errors are not reported here: the sync of whatever is made of the
/// file (the restored data dir) reports any.
struct Flusher {
    tx: Option<std::sync::mpsc::SyncSender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    unflushed: u64,
}

impl Flusher {
    fn new(file: &File) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = file.try_clone().ok().and_then(|f| {
            std::thread::Builder::new()
                .name("staging-flush".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        let _ = rustix::fs::fdatasync(&f);
                    }
                })
                .ok()
        });
        Flusher {
            tx: thread.as_ref().map(|_| tx),
            thread,
            unflushed: 0,
        }
    }

    fn wrote(&mut self, n: u64) {
        self.unflushed += n;
        if self.unflushed >= FLUSH_EVERY {
            if let Some(tx) = &self.tx {
                // Full: a sync is pending already, which will cover these bytes too.
                let _ = tx.try_send(());
            }
            self.unflushed = 0;
        }
    }

    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
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
            flusher: Flusher::new(&file),
            path,
            file,
            body: Sha256::new(),
            tail: [0; TRAILER],
            tail_len: 0,
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
        self.hash(buf);
        self.len += buf.len() as u64;
        self.flusher.wrote(buf.len() as u64);
        Ok(())
    }

    /// Feeds `buf` to the hasher, keeping the last 32 bytes seen back in `tail`.
    fn hash(&mut self, buf: &[u8]) {
        if buf.len() >= TRAILER {
            let (head, last) = buf.split_at(buf.len() - TRAILER);
            self.body.update(&self.tail[..self.tail_len]);
            self.body.update(head);
            self.tail.copy_from_slice(last);
            self.tail_len = TRAILER;
            return;
        }
        let mut joined = [0u8; 2 * TRAILER];
        let total = self.tail_len + buf.len();
        joined[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        joined[self.tail_len..total].copy_from_slice(buf);
        let keep = total.min(TRAILER);
        self.body.update(&joined[..total - keep]);
        self.tail[..keep].copy_from_slice(&joined[total - keep..total]);
        self.tail_len = keep;
    }

    /// Drops everything written so far (the server restarted from byte 0, or another member
    /// is tried).
    pub fn restart(&mut self) -> Result<(), SourceError> {
        self.file
            .set_len(0)
            .and_then(|()| self.file.rewind())
            .map_err(SourceError::staging("truncating", &self.path))?;
        self.body = Sha256::new();
        self.tail_len = 0;
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

    /// Checks `pin` and hands the file over. On a mismatch the file is removed.
    pub fn finish(mut self, shown: &str, pin: Option<&Sha256Pin>) -> Result<Fetched, SourceError> {
        // No fsync here: the staged file is a temporary, worthless after a crash. What is made
        // of it is synced by its maker (the restore syncs the data dir it builds, the inode of
        // a consumed staging file included), so the rest of the writeback overlaps the
        // restore's walk instead of being waited for.
        self.flusher.stop();
        let body = std::mem::take(&mut self.body);
        let tail = &self.tail[..self.tail_len];
        let mut whole = body.clone();
        whole.update(tail);
        let sha256: [u8; 32] = whole.finalize().into();
        let trailer_ok = self.tail_len == TRAILER && body.finalize().as_slice() == tail;
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
            trailer_ok,
            temporary: true,
        })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        self.flusher.stop();
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
    /// The last 32 bytes are the sha256 of the rest, as in an `etcdctl snapshot save` file
    /// (checked in the fetch's own pass; always false for a local file used in place, which
    /// is not read for it).
    pub trailer_ok: bool,
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
        trailer_ok: false,
        temporary: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pin hash and the trailer check from one lagging pass equal a direct computation,
    /// whatever the write sizes (single bytes, sizes around 32, large chunks).
    #[test]
    fn one_pass_gives_the_whole_hash_and_the_trailer_check() {
        let dir = tempfile::tempdir().expect("ok");
        let body: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut snapshot = body.clone();
        snapshot.extend_from_slice(&Sha256::digest(&body));
        let mut corrupt = snapshot.clone();
        corrupt[100] ^= 1;
        for (data, want_ok) in [(&snapshot, true), (&corrupt, false), (&body, false)] {
            for sizes in [&[1usize][..], &[31, 33, 2], &[32], &[4096, 17], &[100_000]] {
                let mut s = Staging::create(dir.path()).expect("ok");
                let mut at = 0;
                let mut i = 0;
                while at < data.len() {
                    let n = sizes[i % sizes.len()].min(data.len() - at);
                    s.write(&data[at..at + n]).expect("ok");
                    at += n;
                    i += 1;
                }
                let f = s.finish("test", None).expect("ok");
                let want: [u8; 32] = Sha256::digest(data).into();
                assert_eq!(f.sha256, want, "sizes {sizes:?}");
                assert_eq!(f.trailer_ok, want_ok, "sizes {sizes:?}");
            }
        }
        let s = Staging::create(dir.path()).expect("ok");
        let f = s.finish("test", None).expect("empty");
        assert!(!f.trailer_ok);
        assert_eq!(f.sha256, <[u8; 32]>::from(Sha256::digest(b"")));
    }

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
