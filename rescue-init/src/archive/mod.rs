//! Safe, streaming handling of backup archives: tar, tar.gz and zip.
//!
//! Allowed effects: reads the archive; [`extract`] writes only below the empty staging directory
//! the caller gives it, and refuses (with an [`ArchiveError`] naming the entry) anything that could
//! land outside it or exhaust the disk: absolute names, `..`, symlinks or hardlinks leading out,
//! writing through a symlink, device nodes and fifos, entries or totals over [`Limits`],
//! duplicate names. [`list`] and [`stream_member`] never write to disk, so the snapshot inside a
//! large archive can be checked or copied without extracting the rest.
//!
//! Crates: `tar` (no default features: no xattrs) for the tar format, `flate2` with its pure-Rust
//! `miniz_oxide` backend for gzip and raw deflate, and our own small zip reader (`zip.rs`; see there
//! why not the `zip` crate).

mod name;
mod zip;

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use name::display_name;
use name::NameProblem;

/// Container format, recognised by content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchiveKind {
    Tar,
    TarGz,
    Zip,
}

/// Caps that bound what one archive may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single member, in bytes after decompression.
    pub max_entry_bytes: u64,
    /// Largest sum of all members, in bytes after decompression.
    pub max_total_bytes: u64,
    /// Most members (of any type).
    pub max_entries: u64,
}

impl Limits {
    /// For archives holding an etcd snapshot (etcd's hard quota ceiling is 8 GiB).
    pub const SNAPSHOT: Limits = Limits {
        max_entry_bytes: 16 << 30,
        max_total_bytes: 32 << 30,
        max_entries: 200_000,
    };
    /// For a copy of `/etc/kubernetes`: many small files.
    pub const CONFIG_TREE: Limits = Limits {
        max_entry_bytes: 64 << 20,
        max_total_bytes: 1 << 30,
        max_entries: 50_000,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::SNAPSHOT
    }
}

/// Type of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDevice,
    BlockDevice,
    Fifo,
    /// Anything else (sockets, sparse files, unknown tar types).
    Other,
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            EntryKind::File => "regular file",
            EntryKind::Dir => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::Hardlink => "hardlink",
            EntryKind::CharDevice => "character device",
            EntryKind::BlockDevice => "block device",
            EntryKind::Fifo => "fifo",
            EntryKind::Other => "special file",
        };
        f.write_str(s)
    }
}

/// Number of leading bytes of each regular member that [`list`] keeps (enough for the bbolt meta
/// page header and meta, which end at byte 80).
pub const HEAD_LEN: usize = 96;

/// One member as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The stored name, lossily decoded.
    pub raw_name: String,
    /// [`display_name`] of it: no leading `/` or `./`.
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    pub mode: u32,
    /// Link target for symlinks and hardlinks.
    pub link: Option<String>,
    /// Up to [`HEAD_LEN`] first bytes of regular files.
    pub head: Vec<u8>,
}

/// Result of [`list`].
#[derive(Debug, Clone)]
pub struct Listing {
    pub kind: ArchiveKind,
    pub members: Vec<MemberInfo>,
}

impl Listing {
    /// The first regular member whose [`display_name`] is `name`.
    pub fn find(&self, name: &str) -> Option<&MemberInfo> {
        self.members
            .iter()
            .find(|m| m.kind == EntryKind::File && m.name == name)
    }
}

/// Options for [`extract`].
#[derive(Debug, Clone, Default)]
pub struct ExtractOptions {
    pub limits: Limits,
    /// Extract only members below this clean relative prefix (e.g. `kubernetes`), with the
    /// prefix removed. Every member name is still checked.
    pub subtree: Option<PathBuf>,
    /// Set owners from the archive when running as root (uid 0). Otherwise files belong to us.
    pub keep_owners: bool,
}

/// What [`extract`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractSummary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
}

/// Errors of this module. Each names the archive and, when one is at fault, the member.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot open archive {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a tar, tar.gz or zip archive")]
    UnknownFormat { path: PathBuf },
    #[error("cannot read archive {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read member {entry:?} of {path}")]
    ReadEntry {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("corrupt zip archive {path}: {reason}")]
    CorruptZip { path: PathBuf, reason: String },
    #[error("zip archive {path} uses an unsupported feature: {feature}")]
    UnsupportedZip { path: PathBuf, feature: String },
    #[error("member {entry:?} of {path} fails its integrity check")]
    BadMemberData {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("member {entry:?} of {path} has an absolute path")]
    AbsolutePath { path: PathBuf, entry: String },
    #[error("member {entry:?} of {path} has a '..' component")]
    ParentDir { path: PathBuf, entry: String },
    #[error("member {entry:?} of {path} has an invalid name")]
    BadName { path: PathBuf, entry: String },
    #[error("symlink {entry:?} in {path} points outside the destination (to {target:?})")]
    SymlinkEscape {
        path: PathBuf,
        entry: String,
        target: String,
    },
    #[error("hardlink {entry:?} in {path} points to {target:?}, which is not a file extracted before it")]
    HardlinkEscape {
        path: PathBuf,
        entry: String,
        target: String,
    },
    #[error("member {entry:?} of {path} would be written through the symlink {through}")]
    ThroughSymlink {
        path: PathBuf,
        entry: String,
        through: PathBuf,
    },
    #[error("member {entry:?} of {path} is a {kind}; special files are refused")]
    SpecialFile {
        path: PathBuf,
        entry: String,
        kind: EntryKind,
    },
    #[error("member {entry:?} of {path} is larger than the limit of {limit} bytes per member")]
    EntryTooLarge {
        path: PathBuf,
        entry: String,
        limit: u64,
    },
    #[error("archive {path} expands to more than {limit} bytes (reached at member {entry:?})")]
    TotalTooLarge {
        path: PathBuf,
        entry: String,
        limit: u64,
    },
    #[error("archive {path} has more than {limit} members")]
    TooManyEntries { path: PathBuf, limit: u64 },
    #[error("member {entry:?} appears more than once in {path}")]
    Duplicate { path: PathBuf, entry: String },
    #[error("member {entry:?} not found in {path}")]
    MemberNotFound { path: PathBuf, entry: String },
    #[error("staging directory {path} must be an existing empty directory")]
    StagingNotEmpty { path: PathBuf },
    #[error("cannot use staging directory {path}")]
    Staging {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {target} for member {entry:?} of {path}")]
    Write {
        path: PathBuf,
        entry: String,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot pass member {entry:?} of {path} to its consumer")]
    Sink {
        path: PathBuf,
        entry: String,
        #[source]
        source: io::Error,
    },
}

/// Recognises the container format from the first bytes of `path`.
pub fn detect(path: &Path) -> Result<Option<ArchiveKind>, ArchiveError> {
    let mut f = File::open(path).map_err(|source| ArchiveError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = [0u8; 512];
    let n = read_up_to(&mut f, &mut head).map_err(|source| ArchiveError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(detect_bytes(head.get(..n).unwrap_or_default()))
}

/// Recognises the container format from its first (up to 512) bytes.
pub fn detect_bytes(head: &[u8]) -> Option<ArchiveKind> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(ArchiveKind::TarGz);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Some(ArchiveKind::Zip);
    }
    if head.len() >= 512 && (head.get(257..262) == Some(b"ustar") || tar_checksum_ok(head)) {
        return Some(ArchiveKind::Tar);
    }
    None
}

/// A v7 tar header has no magic: its checksum field (octal, bytes 148..156) equals the byte sum
/// of the header with that field counted as spaces.
fn tar_checksum_ok(h: &[u8]) -> bool {
    let Some(field) = h.get(148..156) else {
        return false;
    };
    let digits: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| char::from(*b))
        .collect();
    let digits = digits.trim();
    let Ok(want) = u32::from_str_radix(digits, 8) else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .take(512)
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    !digits.is_empty() && sum == want && h.iter().take(100).any(|b| *b != 0)
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A member header as the walker sees it.
struct RawEntry {
    name: Vec<u8>,
    kind: EntryKind,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<Vec<u8>>,
}

enum Flow {
    Continue,
    Stop,
}

type Visitor<'v> = dyn FnMut(&RawEntry, &mut dyn Read) -> Result<Flow, ArchiveError> + 'v;

/// Marker carried in `io::Error` when the decompressed stream passes its cap.
#[derive(Debug, thiserror::Error)]
#[error("decompressed stream exceeds its cap")]
struct StreamCap;

/// A reader that fails once more than `left` bytes have been read through it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(io::Error::other(StreamCap));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn is_stream_cap(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<StreamCap>())
}

/// Calls `visit` for each member in order, with a reader over its data.
fn walk(
    path: &Path,
    limits: &Limits,
    visit: &mut Visitor<'_>,
) -> Result<ArchiveKind, ArchiveError> {
    let kind = detect(path)?.ok_or_else(|| ArchiveError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let file = File::open(path).map_err(|source| ArchiveError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // Headers, padding and GNU/PAX name records come on top of member data.
    let stream_cap = limits
        .max_total_bytes
        .saturating_add(limits.max_entries.saturating_mul(3 * 512))
        .saturating_add(1 << 20);
    match kind {
        ArchiveKind::Tar => walk_tar(
            path,
            Capped {
                inner: BufReader::new(file),
                left: stream_cap,
            },
            limits,
            visit,
        )?,
        ArchiveKind::TarGz => {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(file));
            walk_tar(
                path,
                Capped {
                    inner: gz,
                    left: stream_cap,
                },
                limits,
                visit,
            )?;
        }
        ArchiveKind::Zip => walk_zip(path, file, limits, visit)?,
    }
    Ok(kind)
}

fn tar_kind(t: tar::EntryType) -> Option<EntryKind> {
    use tar::EntryType as T;
    Some(match t {
        T::Regular | T::Continuous => EntryKind::File,
        T::Directory => EntryKind::Dir,
        T::Symlink => EntryKind::Symlink,
        T::Link => EntryKind::Hardlink,
        T::Char => EntryKind::CharDevice,
        T::Block => EntryKind::BlockDevice,
        T::Fifo => EntryKind::Fifo,
        // Metadata records the tar crate hands out as entries: not members.
        T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => return None,
        _ => EntryKind::Other,
    })
}

fn walk_tar<R: Read>(
    path: &Path,
    r: R,
    limits: &Limits,
    visit: &mut Visitor<'_>,
) -> Result<(), ArchiveError> {
    let read_err = |source: io::Error| {
        if is_stream_cap(&source) {
            ArchiveError::TotalTooLarge {
                path: path.to_path_buf(),
                entry: String::new(),
                limit: limits.max_total_bytes,
            }
        } else {
            ArchiveError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut archive = tar::Archive::new(r);
    let mut count = 0u64;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let Some(kind) = tar_kind(entry.header().entry_type()) else {
            continue;
        };
        count += 1;
        if count > limits.max_entries {
            return Err(ArchiveError::TooManyEntries {
                path: path.to_path_buf(),
                limit: limits.max_entries,
            });
        }
        let header = entry.header();
        let raw = RawEntry {
            name: entry.path_bytes().into_owned(),
            kind,
            size: entry.size(),
            mode: header.mode().unwrap_or(0o644),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            mtime: header.mtime().unwrap_or(0),
            link: entry.link_name_bytes().map(|l| l.into_owned()),
        };
        if let Flow::Stop = visit(&raw, &mut entry)? {
            break;
        }
    }
    Ok(())
}

fn zip_problem(path: &Path, p: zip::ZipProblem) -> ArchiveError {
    match p {
        zip::ZipProblem::Io(source) => ArchiveError::Read {
            path: path.to_path_buf(),
            source,
        },
        zip::ZipProblem::Corrupt(reason) => ArchiveError::CorruptZip {
            path: path.to_path_buf(),
            reason,
        },
        zip::ZipProblem::Unsupported(feature) => {
            if feature.starts_with("too many entries") {
                return ArchiveError::TooManyEntries {
                    path: path.to_path_buf(),
                    limit: u64::MAX,
                };
            }
            ArchiveError::UnsupportedZip {
                path: path.to_path_buf(),
                feature,
            }
        }
    }
}

fn zip_kind(m: &zip::ZipMember) -> EntryKind {
    if m.name.last() == Some(&b'/') {
        return EntryKind::Dir;
    }
    match m.unix_mode.map(|mode| mode & 0o170000) {
        Some(0o120000) => EntryKind::Symlink,
        Some(0o040000) => EntryKind::Dir,
        Some(0o010000) => EntryKind::Fifo,
        Some(0o020000) => EntryKind::CharDevice,
        Some(0o060000) => EntryKind::BlockDevice,
        Some(0o100000) | Some(0) | None => EntryKind::File,
        Some(_) => EntryKind::Other,
    }
}

fn walk_zip(
    path: &Path,
    mut file: File,
    limits: &Limits,
    visit: &mut Visitor<'_>,
) -> Result<(), ArchiveError> {
    let members =
        zip::read_directory(&mut file, limits.max_entries).map_err(|p| {
            match zip_problem(path, p) {
                ArchiveError::TooManyEntries { path, .. } => ArchiveError::TooManyEntries {
                    path,
                    limit: limits.max_entries,
                },
                other => other,
            }
        })?;
    for m in &members {
        let kind = zip_kind(m);
        let entry_name = display_name(&m.name);
        let mut link = None;
        if kind == EntryKind::Symlink {
            // A zip symlink stores its target as the member data.
            let mut target = Vec::new();
            let mut r = zip::open_member(&mut file, m).map_err(|p| zip_problem(path, p))?;
            r.by_ref()
                .take(4096)
                .read_to_end(&mut target)
                .map_err(|source| member_read_error(path, &entry_name, source))?;
            link = Some(target);
        }
        let raw = RawEntry {
            name: m.name.clone(),
            kind,
            size: if kind == EntryKind::File { m.size } else { 0 },
            mode: m
                .unix_mode
                .map(|mode| mode & 0o7777)
                .unwrap_or(if kind == EntryKind::Dir { 0o755 } else { 0o644 }),
            uid: 0,
            gid: 0,
            mtime: 0,
            link,
        };
        let flow = if kind == EntryKind::File {
            let mut r = zip::open_member(&mut file, m).map_err(|p| zip_problem(path, p))?;
            visit(&raw, &mut r)?
        } else {
            visit(&raw, &mut io::empty())?
        };
        if let Flow::Stop = flow {
            break;
        }
    }
    Ok(())
}

fn member_read_error(path: &Path, entry: &str, source: io::Error) -> ArchiveError {
    if source
        .get_ref()
        .is_some_and(|i| i.is::<zip::ZipDataError>())
    {
        ArchiveError::BadMemberData {
            path: path.to_path_buf(),
            entry: entry.to_string(),
            source,
        }
    } else if is_stream_cap(&source) {
        ArchiveError::TotalTooLarge {
            path: path.to_path_buf(),
            entry: entry.to_string(),
            limit: 0,
        }
    } else {
        ArchiveError::ReadEntry {
            path: path.to_path_buf(),
            entry: entry.to_string(),
            source,
        }
    }
}

/// Lists the members of an archive, with the first [`HEAD_LEN`] bytes of each regular file.
pub fn list(path: &Path, limits: &Limits) -> Result<Listing, ArchiveError> {
    let mut members = Vec::new();
    let kind = walk(path, limits, &mut |e, data| {
        let name = display_name(&e.name);
        let mut head = Vec::new();
        if e.kind == EntryKind::File {
            data.take(HEAD_LEN as u64)
                .read_to_end(&mut head)
                .map_err(|s| member_read_error(path, &name, s))?;
        }
        members.push(MemberInfo {
            raw_name: String::from_utf8_lossy(&e.name).into_owned(),
            name,
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            link: e
                .link
                .as_ref()
                .map(|l| String::from_utf8_lossy(l).into_owned()),
            head,
        });
        Ok(Flow::Continue)
    })?;
    Ok(Listing { kind, members })
}

/// Copies the data of the regular member whose [`display_name`] is `member` into `out`, without
/// writing anything else anywhere. Returns the number of bytes copied. For zip members the size
/// and CRC-32 are checked before this returns.
pub fn stream_member(
    path: &Path,
    member: &str,
    out: &mut dyn Write,
    limits: &Limits,
) -> Result<u64, ArchiveError> {
    let wanted = display_name(member.as_bytes());
    let mut copied = None;
    walk(path, limits, &mut |e, data| {
        if e.kind != EntryKind::File || display_name(&e.name) != wanted {
            return Ok(Flow::Continue);
        }
        copied = Some(copy_capped(
            path,
            &wanted,
            data,
            out,
            limits.max_entry_bytes,
        )?);
        Ok(Flow::Stop)
    })?;
    copied.ok_or_else(|| ArchiveError::MemberNotFound {
        path: path.to_path_buf(),
        entry: wanted,
    })
}

/// Reads the regular members named in `wanted` (by [`display_name`]) into memory in one pass
/// over the archive, each capped at `cap` bytes (small files: certificates, keys). Members not
/// in the archive are absent from the result; the walk stops once all were found.
pub fn read_small_members(
    path: &Path,
    wanted: &[String],
    cap: u64,
    limits: &Limits,
) -> Result<HashMap<String, Vec<u8>>, ArchiveError> {
    let wanted: Vec<String> = wanted.iter().map(|w| display_name(w.as_bytes())).collect();
    let mut found = HashMap::new();
    walk(path, limits, &mut |e, data| {
        let name = display_name(&e.name);
        if e.kind == EntryKind::File && wanted.contains(&name) && !found.contains_key(&name) {
            let mut buf = Vec::new();
            copy_capped(path, &name, data, &mut buf, cap)?;
            found.insert(name, buf);
            if found.len() == wanted.len() {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    })?;
    Ok(found)
}

/// A `Read` over one member, for consumers that pull (e.g. a restore engine reading a
/// snapshot). A thread runs [`stream_member`] into a pipe; its error, if any, is returned by
/// the read that would otherwise report the end of the data, so a short or corrupt member never
/// looks like a clean EOF.
pub struct MemberReader {
    pipe: io::PipeReader,
    worker: Option<std::thread::JoinHandle<Result<u64, ArchiveError>>>,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(worker) = self.worker.take() {
                match worker.join() {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Err(io::Error::other(e)),
                    Err(_) => return Err(io::Error::other("archive reader thread panicked")),
                }
            }
        }
        Ok(n)
    }
}

/// Opens one member as a reader (see [`MemberReader`]).
pub fn open_member(
    path: &Path,
    member: &str,
    limits: &Limits,
) -> Result<MemberReader, ArchiveError> {
    let (reader, mut writer) = io::pipe().map_err(|source| ArchiveError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let (path, member, limits) = (path.to_path_buf(), member.to_string(), *limits);
    let worker = std::thread::Builder::new()
        .name("archive-member".into())
        .spawn(move || stream_member(&path, &member, &mut writer, &limits))
        .map_err(|source| ArchiveError::Open {
            path: PathBuf::new(),
            source,
        })?;
    Ok(MemberReader {
        pipe: reader,
        worker: Some(worker),
    })
}

/// Copies at most `cap` bytes; one more byte available means the member is too large.
fn copy_capped(
    path: &Path,
    entry: &str,
    data: &mut dyn Read,
    out: &mut dyn Write,
    cap: u64,
) -> Result<u64, ArchiveError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(member_read_error(path, entry, e)),
        };
        total += n as u64;
        if total > cap {
            return Err(ArchiveError::EntryTooLarge {
                path: path.to_path_buf(),
                entry: entry.to_string(),
                limit: cap,
            });
        }
        out.write_all(buf.get(..n).unwrap_or_default())
            .map_err(|source| ArchiveError::Sink {
                path: path.to_path_buf(),
                entry: entry.to_string(),
                source,
            })?;
    }
}

/// Names ending like private keys get at most mode 0600, whatever the archive says.
fn is_private_key_name(p: &Path) -> bool {
    let n = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    n.ends_with(".key") || n.ends_with("-key.pem") || n.ends_with("_key.pem")
}

struct Extractor<'a> {
    archive: &'a Path,
    dest: &'a Path,
    opts: &'a ExtractOptions,
    as_root: bool,
    dry_run: bool,
    seen: HashMap<PathBuf, EntryKind>,
    files: HashSet<PathBuf>,
    symlinks: HashSet<PathBuf>,
    dir_modes: Vec<(PathBuf, u32, u64, u64)>,
    summary: ExtractSummary,
}

impl Extractor<'_> {
    fn name_error(&self, entry: &str, p: NameProblem) -> ArchiveError {
        let (path, entry) = (self.archive.to_path_buf(), entry.to_string());
        match p {
            NameProblem::Absolute => ArchiveError::AbsolutePath { path, entry },
            NameProblem::ParentDir => ArchiveError::ParentDir { path, entry },
            NameProblem::Invalid => ArchiveError::BadName { path, entry },
        }
    }

    fn write_error(&self, entry: &str, target: &Path, source: io::Error) -> ArchiveError {
        ArchiveError::Write {
            path: self.archive.to_path_buf(),
            entry: entry.to_string(),
            target: target.to_path_buf(),
            source,
        }
    }

    /// Creates the directories leading to `rel` (not `rel` itself), refusing to pass a symlink.
    fn make_parents(&mut self, entry: &str, rel: &Path) -> Result<(), ArchiveError> {
        for up in rel.ancestors().skip(1) {
            if self.symlinks.contains(up) {
                return Err(ArchiveError::ThroughSymlink {
                    path: self.archive.to_path_buf(),
                    entry: entry.to_string(),
                    through: up.to_path_buf(),
                });
            }
        }
        if self.dry_run {
            return Ok(());
        }
        let mut cur = self.dest.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(());
        };
        for comp in parent.components() {
            cur.push(comp);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ArchiveError::ThroughSymlink {
                        path: self.archive.to_path_buf(),
                        entry: entry.to_string(),
                        through: cur.strip_prefix(self.dest).unwrap_or(&cur).to_path_buf(),
                    })
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.write_error(
                        entry,
                        &cur,
                        io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
                    ))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&cur)
                        .map_err(|e| self.write_error(entry, &cur, e))?;
                }
                Err(e) => return Err(self.write_error(entry, &cur, e)),
            }
        }
        Ok(())
    }

    /// The checks of `entry` that need no disk: sizes from the headers, hardlink sources.
    fn check_only(
        &mut self,
        e: &RawEntry,
        entry: String,
        rel: PathBuf,
        out_rel: PathBuf,
    ) -> Result<Flow, ArchiveError> {
        let path = self.archive.to_path_buf();
        match e.kind {
            EntryKind::Dir => self.summary.dirs += 1,
            EntryKind::File => {
                if e.size > self.opts.limits.max_entry_bytes {
                    return Err(ArchiveError::EntryTooLarge {
                        path,
                        entry,
                        limit: self.opts.limits.max_entry_bytes,
                    });
                }
                self.summary.bytes = self.summary.bytes.saturating_add(e.size);
                if self.summary.bytes > self.opts.limits.max_total_bytes {
                    return Err(ArchiveError::TotalTooLarge {
                        path,
                        entry,
                        limit: self.opts.limits.max_total_bytes,
                    });
                }
                self.files.insert(rel);
                self.summary.files += 1;
            }
            EntryKind::Symlink => {
                self.symlinks.insert(out_rel);
                self.summary.links += 1;
            }
            EntryKind::Hardlink => {
                let link = e.link.clone().unwrap_or_default();
                if !self
                    .files
                    .contains(&name::relative_path(&link).unwrap_or_default())
                {
                    return Err(ArchiveError::HardlinkEscape {
                        path,
                        entry,
                        target: String::from_utf8_lossy(&link).into_owned(),
                    });
                }
                self.summary.links += 1;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn chown(&self, entry: &str, target: &Path, uid: u64, gid: u64) -> Result<(), ArchiveError> {
        if !(self.as_root && self.opts.keep_owners) {
            return Ok(());
        }
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Ok(());
        };
        std::os::unix::fs::lchown(target, Some(uid), Some(gid))
            .map_err(|e| self.write_error(entry, target, e))
    }

    fn entry(&mut self, e: &RawEntry, data: &mut dyn Read) -> Result<Flow, ArchiveError> {
        let entry = display_name(&e.name);
        let rel = name::relative_path(&e.name).map_err(|p| self.name_error(&entry, p))?;
        // Link targets are checked for every member, selected or not.
        if e.kind == EntryKind::Hardlink {
            let target = e.link.clone().unwrap_or_default();
            name::relative_path(&target).map_err(|_| ArchiveError::HardlinkEscape {
                path: self.archive.to_path_buf(),
                entry: entry.clone(),
                target: String::from_utf8_lossy(&target).into_owned(),
            })?;
        }
        if e.kind == EntryKind::Symlink {
            let target = e.link.clone().unwrap_or_default();
            if !name::symlink_stays_inside(&rel, &target) {
                return Err(ArchiveError::SymlinkEscape {
                    path: self.archive.to_path_buf(),
                    entry,
                    target: String::from_utf8_lossy(&target).into_owned(),
                });
            }
        }
        if matches!(
            e.kind,
            EntryKind::CharDevice | EntryKind::BlockDevice | EntryKind::Fifo | EntryKind::Other
        ) {
            return Err(ArchiveError::SpecialFile {
                path: self.archive.to_path_buf(),
                entry,
                kind: e.kind,
            });
        }
        if rel.as_os_str().is_empty() {
            if e.kind == EntryKind::Dir {
                return Ok(Flow::Continue); // the "./" entry
            }
            return Err(ArchiveError::BadName {
                path: self.archive.to_path_buf(),
                entry,
            });
        }
        if let Some(prev) = self.seen.insert(rel.clone(), e.kind) {
            if !(prev == EntryKind::Dir && e.kind == EntryKind::Dir) {
                return Err(ArchiveError::Duplicate {
                    path: self.archive.to_path_buf(),
                    entry,
                });
            }
        }
        let out_rel = match &self.opts.subtree {
            None => rel.clone(),
            Some(prefix) => match rel.strip_prefix(prefix) {
                Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
                _ => return Ok(Flow::Continue),
            },
        };
        let target = self.dest.join(&out_rel);
        self.make_parents(&entry, &out_rel)?;
        let mode = if is_private_key_name(&out_rel) {
            e.mode & 0o600
        } else {
            e.mode & 0o777
        };
        if self.dry_run {
            return self.check_only(e, entry, rel, out_rel);
        }
        match e.kind {
            EntryKind::Dir => {
                match fs::symlink_metadata(&target) {
                    Ok(m) if m.is_dir() && !m.file_type().is_symlink() => {}
                    Ok(_) => {
                        return Err(ArchiveError::ThroughSymlink {
                            path: self.archive.to_path_buf(),
                            entry,
                            through: out_rel,
                        })
                    }
                    Err(_) => {
                        fs::DirBuilder::new()
                            .mode(0o700)
                            .create(&target)
                            .map_err(|x| self.write_error(&entry, &target, x))?;
                        self.summary.dirs += 1;
                    }
                }
                self.dir_modes.push((target, mode, e.uid, e.gid));
            }
            EntryKind::File => {
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(&target)
                    .map_err(|x| self.write_error(&entry, &target, x))?;
                let room = self
                    .opts
                    .limits
                    .max_total_bytes
                    .saturating_sub(self.summary.bytes);
                let cap = self.opts.limits.max_entry_bytes.min(room);
                let n =
                    copy_capped(self.archive, &entry, data, &mut f, cap).map_err(
                        |err| match err {
                            ArchiveError::EntryTooLarge { path, entry, .. }
                                if room < self.opts.limits.max_entry_bytes =>
                            {
                                ArchiveError::TotalTooLarge {
                                    path,
                                    entry,
                                    limit: self.opts.limits.max_total_bytes,
                                }
                            }
                            ArchiveError::EntryTooLarge { path, entry, .. } => {
                                ArchiveError::EntryTooLarge {
                                    path,
                                    entry,
                                    limit: self.opts.limits.max_entry_bytes,
                                }
                            }
                            ArchiveError::Sink {
                                path,
                                entry,
                                source,
                            } => ArchiveError::Write {
                                path,
                                entry,
                                target: target.clone(),
                                source,
                            },
                            other => other,
                        },
                    )?;
                self.summary.bytes += n;
                f.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|x| self.write_error(&entry, &target, x))?;
                if e.mtime > 0 {
                    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.mtime);
                    f.set_modified(t)
                        .map_err(|x| self.write_error(&entry, &target, x))?;
                }
                f.sync_all()
                    .map_err(|x| self.write_error(&entry, &target, x))?;
                drop(f);
                self.chown(&entry, &target, e.uid, e.gid)?;
                self.files.insert(rel);
                self.summary.files += 1;
            }
            EntryKind::Symlink => {
                let link = e.link.clone().unwrap_or_default();
                use std::os::unix::ffi::OsStrExt;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &target)
                    .map_err(|x| self.write_error(&entry, &target, x))?;
                self.chown(&entry, &target, e.uid, e.gid)?;
                self.symlinks.insert(out_rel);
                self.summary.links += 1;
            }
            EntryKind::Hardlink => {
                let link = e.link.clone().unwrap_or_default();
                let link_rel = name::relative_path(&link).unwrap_or_default();
                let source_rel = match &self.opts.subtree {
                    None => Some(link_rel.clone()),
                    Some(prefix) => link_rel.strip_prefix(prefix).ok().map(Path::to_path_buf),
                };
                let (true, Some(source_rel)) = (self.files.contains(&link_rel), source_rel) else {
                    return Err(ArchiveError::HardlinkEscape {
                        path: self.archive.to_path_buf(),
                        entry,
                        target: String::from_utf8_lossy(&link).into_owned(),
                    });
                };
                fs::hard_link(self.dest.join(source_rel), &target)
                    .map_err(|x| self.write_error(&entry, &target, x))?;
                self.summary.links += 1;
            }
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

/// Extracts `archive` into `dest`, which must be an existing, empty directory (the staging area).
/// On error, whatever was written stays below `dest` for the caller to remove.
pub fn extract(
    archive: &Path,
    dest: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractSummary, ArchiveError> {
    run_extract(archive, dest, opts, false)
}

/// Runs every check of [`extract`] that needs no disk (names, link targets, special files,
/// duplicates, declared sizes against the limits) and writes nothing. Member data is not read,
/// so a tar.gz is still decompressed once to reach its headers.
pub fn validate(archive: &Path, opts: &ExtractOptions) -> Result<ExtractSummary, ArchiveError> {
    run_extract(archive, Path::new(""), opts, true)
}

fn run_extract(
    archive: &Path,
    dest: &Path,
    opts: &ExtractOptions,
    dry_run: bool,
) -> Result<ExtractSummary, ArchiveError> {
    if !dry_run {
        let mut dir = fs::read_dir(dest).map_err(|source| ArchiveError::Staging {
            path: dest.to_path_buf(),
            source,
        })?;
        if dir.next().is_some() {
            return Err(ArchiveError::StagingNotEmpty {
                path: dest.to_path_buf(),
            });
        }
    }
    let mut ex = Extractor {
        archive,
        dest,
        opts,
        as_root: rustix::process::geteuid().is_root(),
        dry_run,
        seen: HashMap::new(),
        files: HashSet::new(),
        symlinks: HashSet::new(),
        dir_modes: Vec::new(),
        summary: ExtractSummary::default(),
    };
    // With a subtree, members outside it are skipped unread but still stream by (a Deckhouse
    // kube-backup.tar.gz carries a multi-GiB snapshot beside `kubernetes/`): bound the stream by
    // the snapshot limits, and what is extracted by `opts.limits`.
    let walk_limits = match opts.subtree {
        Some(_) => Limits {
            max_total_bytes: opts
                .limits
                .max_total_bytes
                .max(Limits::SNAPSHOT.max_total_bytes),
            ..opts.limits
        },
        None => opts.limits,
    };
    walk(archive, &walk_limits, &mut |e, data| ex.entry(e, data))?;
    // Directory modes last (deepest first), so read-only directories do not block their content.
    ex.dir_modes
        .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (dir, mode, uid, gid) in std::mem::take(&mut ex.dir_modes) {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))
            .map_err(|e| ex.write_error("", &dir, e))?;
        ex.chown("", &dir, uid, gid)?;
    }
    Ok(ex.summary)
}
