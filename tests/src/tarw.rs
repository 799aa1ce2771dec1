//! Tar and tar.gz builders for tests, including hostile members the `tar` crate's safe
//! `append_*` helpers would refuse to write (`..`, absolute names, escaping links, devices).

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{EntryType, Header};

/// One member, written exactly as given.
#[derive(Debug, Clone)]
pub struct TarEntry {
    pub name: Vec<u8>,
    pub kind: EntryType,
    pub data: Vec<u8>,
    pub mode: u32,
    pub link: Vec<u8>,
    pub uid: u64,
    pub gid: u64,
    /// Declared size instead of the data length (the data is still written as given).
    pub size: Option<u64>,
}

impl TarEntry {
    pub fn file(name: &str, data: &[u8]) -> Self {
        TarEntry {
            name: name.as_bytes().to_vec(),
            kind: EntryType::Regular,
            data: data.to_vec(),
            mode: 0o644,
            link: Vec::new(),
            uid: 0,
            gid: 0,
            size: None,
        }
    }
    pub fn dir(name: &str) -> Self {
        TarEntry {
            kind: EntryType::Directory,
            mode: 0o755,
            ..TarEntry::file(name, b"")
        }
    }
    pub fn symlink(name: &str, target: &str) -> Self {
        TarEntry {
            kind: EntryType::Symlink,
            link: target.as_bytes().to_vec(),
            mode: 0o777,
            ..TarEntry::file(name, b"")
        }
    }
    pub fn hardlink(name: &str, target: &str) -> Self {
        TarEntry {
            kind: EntryType::Link,
            link: target.as_bytes().to_vec(),
            ..TarEntry::file(name, b"")
        }
    }
    pub fn special(name: &str, kind: EntryType) -> Self {
        TarEntry {
            kind,
            ..TarEntry::file(name, b"")
        }
    }
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }
}

fn io_err(msg: &str) -> std::io::Error {
    std::io::Error::other(msg.to_string())
}

/// Builds an uncompressed tar in memory. Names and link targets must fit the 100-byte fields.
pub fn tar(entries: &[TarEntry]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            let name = old
                .name
                .get_mut(..e.name.len())
                .ok_or_else(|| io_err("name longer than 100 bytes"))?;
            name.copy_from_slice(&e.name);
            let link = old
                .linkname
                .get_mut(..e.link.len())
                .ok_or_else(|| io_err("link longer than 100 bytes"))?;
            link.copy_from_slice(&e.link);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(1_700_000_000);
        h.set_size(e.size.unwrap_or(e.data.len() as u64));
        h.set_cksum();
        b.append(&h, e.data.as_slice())?;
    }
    b.into_inner()
}

/// gzip of `data`.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

/// A tar.gz of a directory tree (modes and symlinks kept), under `prefix` (`""` for none),
/// followed by `extra` files at the archive root.
pub fn tar_gz_dir(src: &Path, prefix: &str, extra: &[(&str, &[u8])]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    b.follow_symlinks(false);
    for (name, data) in extra {
        let mut h = Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data)?;
    }
    if prefix.is_empty() {
        b.append_dir_all(".", src)?;
    } else {
        b.append_dir_all(prefix, src)?;
    }
    b.into_inner()?.finish()
}
