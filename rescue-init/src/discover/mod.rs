//! Read-only discovery of etcd backups on a host root (and extra directories such as boot media).
//!
//! Allowed effects: reads files and lists directories; never writes, never follows a symlink out
//! of the root (absolute link targets are resolved against the root, as in a chroot), and walks
//! with bounded depth and a bounded number of files. Files are recognised by content (bbolt meta
//! page, gzip/zip/tar magic, member names and member content), not by name alone; names only add
//! the layout's meaning and a timestamp.
//!
//! Layouts and where their facts come from:
//! - plain `etcdctl snapshot save` file: size % 512 == 32, SHA-256 trailer (etcdutl
//!   `snapshot/v3_snapshot.go`); a raw `member/snap/db` has no trailer.
//! - whole `/var/lib/etcd` copy: `member/snap/db` + `member/wal/*.wal`.
//! - kubeadm: a copy of `/etc/kubernetes` (a directory, or a tar.gz) beside a snapshot (kubeadm
//!   layout: `manifests/etcd.yaml`, `pki/`, `admin.conf`).
//! - Deckhouse: `kube-backup.tar.gz` = `./etcd-backup.snapshot` + `./kubernetes/` (deckhouse docs,
//!   `modules/040-control-plane-manager/docs/FAQ.md`, "How to manually backup etcd"); the daily job
//!   leaves `/var/lib/etcd/etcd-backup.tar.gz` holding only `etcd-backup.snapshot`
//!   (`modules/040-control-plane-manager/images/etcd-backup/entrypoint.sh`: snapshot save, then
//!   `tar -czvf etcd-backup.tar.gz etcd-backup.snapshot`; the FAQ names the host path).
//! - OpenShift 4: `cluster-backup.sh` writes `snapshot_<%F_%H%M%S>.db` and
//!   `static_kuberesources_<same>.tar.gz` (optionally suffixed `__POSSIBLY_DIRTY__`) into one
//!   directory (openshift/cluster-etcd-operator `bindata/etcd/cluster-backup.sh`); restore needs both, so a lone snapshot is
//!   refused.
//! - Cray CSM: `etcd-backup-<%Y-%m-%d-%H-%M-%S>.tar.gz` holding `<same name>/etcd-dump.bin`; etcd
//!   runs as a systemd service whose settings come from `/etc/kubernetes/kubeadmcfg.yaml`
//!   (Cray-HPE/docs-csm `operations/kubernetes/Restore_Bare-Metal_etcd_Clusters_from_an_S3_Snapshot.md`).
//! - Rancher RKE1: `/opt/rke/etcd-snapshots/<name>` or `<name>.zip` whose members are
//!   `/backup/<name>` and `/etc/kubernetes/<name>.rkestate` (absolute names, written by Go's
//!   archive/zip in rancher/rke-tools `main.go`); certificates in `/etc/kubernetes/ssl`, rebuilt
//!   from the state's certificatesBundle when missing (see [`rke`]).
//! - k3s / RKE2: snapshot files (plain or zip) in `var/lib/rancher/{k3s,rke2}/server/db/snapshots`.

pub mod bbolt;
pub mod client_tls;
pub mod rke;
pub mod stamp;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::archive::{self, ArchiveKind, EntryKind, ExtractOptions, Limits, Listing};
use bbolt::{HashCheck, SnapshotCheck, SnapshotReport};

/// Where a backup comes from and how it is put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// `etcdctl snapshot save` output (with SHA-256 trailer).
    PlainSnapshot,
    /// A bare bbolt db without trailer (e.g. a copied `member/snap/db`).
    RawDb,
    /// A whole etcd data dir: `member/snap/db` and `member/wal/`.
    DataDir,
    /// A snapshot with a copy of `/etc/kubernetes` (directory or archive) beside it.
    Kubeadm,
    /// Deckhouse `kube-backup.tar.gz`: snapshot + `kubernetes/`.
    Deckhouse,
    /// Deckhouse daily `etcd-backup.tar.gz`: snapshot only.
    DeckhouseDaily,
    /// OpenShift 4 `snapshot_<ts>.db` + `static_kuberesources_<ts>.tar.gz`.
    OpenShift,
    /// Cray CSM `etcd-backup-<ts>.tar.gz` with `<dir>/etcd-dump.bin`.
    CrayCsm,
    /// Rancher RKE1 snapshot in `/opt/rke/etcd-snapshots` (zip or plain).
    Rke,
    /// k3s snapshot directory.
    K3s,
    /// RKE2 snapshot directory.
    Rke2,
    /// Some other archive holding a snapshot.
    ArchivedSnapshot,
}

/// Where bytes are: a file, or a member of an archive.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Location {
    File { path: PathBuf },
    Member { archive: PathBuf, member: String },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File { path } => write!(f, "{}", path.display()),
            Location::Member { archive, member } => write!(f, "{}!{member}", archive.display()),
        }
    }
}

/// Where the matching `/etc/kubernetes` content is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum KubeSource {
    /// A directory shaped like `/etc/kubernetes`.
    Dir { path: PathBuf },
    /// The members of `archive` below `prefix` (empty: the whole archive) form the tree. Use
    /// [`archive::extract`] with `subtree = prefix`.
    Archive { archive: PathBuf, prefix: String },
    /// OpenShift static pod resources. OpenShift's own `cluster-restore.sh`
    /// (openshift/cluster-etcd-operator `bindata/etcd/cluster-restore.sh`) extracts the
    /// archive's `static-pod-resources` into `/etc/kubernetes` and the member ending in
    /// `etcd-pod.yaml` (stripped of two path components) into `/etc/kubernetes/manifests`.
    OpenShiftResources { archive: PathBuf },
    /// RKE cluster state to rebuild `/etc/kubernetes/ssl` from (see [`rke::certificate_files`]);
    /// `ssl_dir` is the host's existing `/etc/kubernetes/ssl` when there is one.
    RkeState {
        state: Location,
        ssl_dir: Option<PathBuf>,
    },
    /// Only the host's `/etc/kubernetes/ssl` (RKE) — no state to rebuild from.
    RkeSsl { ssl_dir: PathBuf },
}

/// Verdict on a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Chosen,
    /// Usable but not chosen (older, or not checked because a newer one was usable).
    Passed,
    Rejected,
}

/// Where the timestamp came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StampSource {
    Name,
    Mtime,
}

/// One backup found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Candidate {
    pub layout: Layout,
    pub snapshot: Location,
    /// For [`Layout::DataDir`]: the directory holding `member/`.
    pub data_dir: Option<PathBuf>,
    /// This is the host's own etcd data dir (`/var/lib/etcd`), not a copy.
    pub live_data_dir: bool,
    pub kubernetes: Option<KubeSource>,
    /// A file that configures the host's etcd (Cray: `etc/kubernetes/kubeadmcfg.yaml`).
    pub etcd_config: Option<PathBuf>,
    /// Seconds since the epoch (UTC).
    pub timestamp: i64,
    pub timestamp_from: StampSource,
    /// Size of the snapshot bytes (the file or the member), when known.
    pub size: u64,
    pub check: Option<SnapshotReport>,
    pub status: Status,
    pub reason: String,
}

/// Everything discovery found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Inventory {
    pub root: PathBuf,
    /// Directories walked (after resolving symlinks inside the root).
    pub searched: Vec<PathBuf>,
    pub candidates: Vec<Candidate>,
    /// Index into `candidates`.
    pub chosen: Option<usize>,
    /// Whether the host root has its own `/etc/kubernetes` content.
    pub host_has_kubernetes: bool,
    /// Things worth telling the operator (limits hit, unreadable files, hostile archives).
    pub notes: Vec<String>,
}

impl Inventory {
    pub fn chosen(&self) -> Option<&Candidate> {
        self.chosen.and_then(|i| self.candidates.get(i))
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Layout::PlainSnapshot => "snapshot file",
            Layout::RawDb => "raw bbolt db",
            Layout::DataDir => "etcd data dir",
            Layout::Kubeadm => "kubeadm",
            Layout::Deckhouse => "deckhouse kube-backup",
            Layout::DeckhouseDaily => "deckhouse daily etcd-backup",
            Layout::OpenShift => "openshift cluster-backup",
            Layout::CrayCsm => "cray csm etcd-backup",
            Layout::Rke => "rancher rke",
            Layout::K3s => "k3s snapshot",
            Layout::Rke2 => "rke2 snapshot",
            Layout::ArchivedSnapshot => "archived snapshot",
        };
        f.write_str(s)
    }
}

/// One line per candidate, newest first: `chosen|passed|rejected <layout> <location> <time>: <reason>`.
impl std::fmt::Display for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.candidates.is_empty() {
            writeln!(f, "no etcd backup found under {}", self.root.display())?;
        }
        for c in &self.candidates {
            let status = match c.status {
                Status::Chosen => "chosen",
                Status::Passed => "passed",
                Status::Rejected => "rejected",
            };
            let from = match c.timestamp_from {
                StampSource::Name => "name",
                StampSource::Mtime => "mtime",
            };
            writeln!(
                f,
                "{status} [{}] {} (time {} from {from}): {}",
                c.layout, c.snapshot, c.timestamp, c.reason
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// Whether a candidate must bring its own `/etc/kubernetes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KubeRequirement {
    /// Required when the host root has no `/etc/kubernetes` content.
    #[default]
    Auto,
    Required,
    NotRequired,
}

/// Options of [`scan`].
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// More directories to walk as they are (e.g. the mounted boot media), outside the root.
    pub extra_dirs: Vec<PathBuf>,
    /// Deepest level walked below each start directory.
    pub max_depth: usize,
    /// Most files examined in total.
    pub max_files: usize,
    /// Verify the SHA-256 trailer (reads each checked snapshot in full).
    pub verify_hash: bool,
    /// Check every candidate, not only the newest until one is usable.
    pub check_all: bool,
    pub kubernetes: KubeRequirement,
    pub archive_limits: Limits,
    /// Do not use the host's own `/var/lib/etcd` (it is listed, rejected with this reason).
    pub skip_live_data_dir: bool,
    /// Files whose sha256 trailer was checked in the pass that wrote them (a fetched backup
    /// in a directory only rescue-init writes): their check reads the head, not the whole.
    pub trailer_checked: Vec<PathBuf>,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            extra_dirs: Vec::new(),
            max_depth: 6,
            max_files: 50_000,
            verify_hash: true,
            check_all: false,
            kubernetes: KubeRequirement::Auto,
            trailer_checked: Vec::new(),
            archive_limits: Limits::SNAPSHOT,
            skip_live_data_dir: false,
        }
    }
}

/// Directories below the root where operators and tools keep backups, with the depth to walk.
pub const SEARCH_DIRS: &[(&str, usize)] = &[
    ("", 1),
    ("root", 4),
    ("home", 5),
    ("var/backups", 4),
    ("var/backup", 4),
    ("backup", 5),
    ("backups", 5),
    ("srv", 5),
    ("opt", 4),
    ("mnt", 3),
    ("data", 4),
    ("tmp", 2),
    ("var/tmp", 2),
    ("var/lib/etcd", 4),
    ("var/lib/etcd-backup", 4),
    ("var/lib/rancher/k3s/server/db/snapshots", 2),
    ("var/lib/rancher/rke2/server/db/snapshots", 2),
];

/// Errors of discovery: only a root that cannot be read at all is an error; everything else
/// becomes a rejected candidate or a note.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("host root {path} is not a readable directory")]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Resolves `rel` below `root` as a chroot would: `..` stops at the root, absolute symlink
/// targets restart at the root. Returns `None` if the path does not exist or loops.
pub fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut pending: Vec<PathBuf> = rel.components().rev().filter_map(normal).collect();
    let mut cur: Vec<PathBuf> = Vec::new();
    let mut hops = 0;
    while let Some(comp) = pending.pop() {
        if comp.as_os_str() == ".." {
            cur.pop();
            continue;
        }
        let mut full = root.to_path_buf();
        full.extend(&cur);
        full.push(&comp);
        let meta = fs::symlink_metadata(&full).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = fs::read_link(&full).ok()?;
            if target.is_absolute() {
                cur.clear();
            }
            pending.extend(target.components().rev().filter_map(normal));
        } else {
            cur.push(comp);
        }
    }
    let mut full = root.to_path_buf();
    full.extend(&cur);
    Some(full)
}

/// Finds a file or directory the user named: `p` as given when it exists there (a relative path
/// is only ever taken as given), else `p` below the first of `bases` (the host root, the boot
/// media) that has it, resolved as in a chroot.
pub fn locate(p: &Path, bases: &[&Path]) -> Option<PathBuf> {
    if p.exists() {
        return Some(p.to_path_buf());
    }
    if p.is_relative() {
        return None;
    }
    bases.iter().find_map(|b| resolve_in_root(b, p))
}

fn normal(c: Component<'_>) -> Option<PathBuf> {
    match c {
        Component::Normal(n) => Some(PathBuf::from(n)),
        Component::ParentDir => Some(PathBuf::from("..")),
        _ => None,
    }
}

/// What the walk collected.
#[derive(Default)]
struct Walked {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
    /// Directory identity → deepest remaining depth it was walked with.
    seen_dirs: HashMap<(u64, u64), usize>,
    seen_files: HashSet<(u64, u64)>,
    truncated: bool,
}

fn walk(dir: &Path, depth: usize, max_files: usize, out: &mut Walked) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    // A directory reached again (from another start point) is walked again only if deeper.
    match out.seen_dirs.insert((meta.dev(), meta.ino()), depth) {
        Some(prev) if prev >= depth => {
            out.seen_dirs.insert((meta.dev(), meta.ino()), prev);
            return;
        }
        Some(_) => {}
        None => out.dirs.push(dir.to_path_buf()),
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_symlink() {
            continue; // never followed inside the walk
        }
        if ft.is_dir() {
            if depth > 0 {
                walk(&e.path(), depth - 1, max_files, out);
            }
        } else if ft.is_file() {
            if out.files.len() >= max_files {
                out.truncated = true;
                return;
            }
            let Ok(m) = e.metadata() else { continue };
            if out.seen_files.insert((m.dev(), m.ino())) {
                out.files.push(e.path());
            }
        }
    }
}

fn read_head(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let mut f = fs::File::open(path)?;
    let mut buf = Vec::with_capacity(n);
    f.by_ref().take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn mtime(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .unwrap_or(0)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// True if `dir` looks like a copy of `/etc/kubernetes` (kubeadm shape).
pub fn is_kube_dir(dir: &Path) -> bool {
    let has = |p: &str| fs::symlink_metadata(dir.join(p)).is_ok();
    (has("manifests") && (has("pki") || has("admin.conf")))
        || (has("pki/ca.crt") && has("admin.conf"))
}

/// The prefix under which an archive holds a `/etc/kubernetes` tree, if it holds one.
fn kube_prefix(listing: &Listing) -> Option<String> {
    const MARKERS: &[&str] = &[
        "manifests/etcd.yaml",
        "manifests/kube-apiserver.yaml",
        "pki/ca.crt",
        "admin.conf",
    ];
    let mut best: Option<String> = None;
    for m in &listing.members {
        for marker in MARKERS {
            let Some(prefix) = m.name.strip_suffix(marker) else {
                continue;
            };
            if !(prefix.is_empty() || prefix.ends_with('/')) {
                continue;
            }
            let prefix = prefix.trim_end_matches('/').to_string();
            // Prefer the shortest prefix (the tree root).
            if best.as_ref().is_none_or(|b| prefix.len() < b.len()) {
                best = Some(prefix);
            }
        }
    }
    best
}

/// Regular members whose first bytes carry the bbolt magic.
fn bbolt_members(listing: &Listing) -> Vec<&archive::MemberInfo> {
    listing
        .members
        .iter()
        .filter(|m| m.kind == EntryKind::File && bbolt::has_magic(&m.head))
        .collect()
}

/// A scanned archive, kept for pairing with snapshots.
struct ArchiveSeen {
    path: PathBuf,
    listing: Listing,
}

/// Splits an OpenShift name `snapshot_<ts>.db` into its `<ts>` (without `__POSSIBLY_DIRTY__`).
fn openshift_stamp(name: &str) -> Option<&str> {
    let ts = name.strip_prefix("snapshot_")?.strip_suffix(".db")?;
    Some(ts.strip_suffix("__POSSIBLY_DIRTY__").unwrap_or(ts))
}

fn rel_to(root: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(root)
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

fn is_under(root: &Path, p: &Path, rel: &str) -> bool {
    rel_to(root, p).starts_with(rel)
}

/// Scans `root` (a mounted host root, read-only) and `opts.extra_dirs` for etcd backups.
pub fn scan(root: &Path, opts: &ScanOptions) -> Result<Inventory, DiscoverError> {
    fs::read_dir(root).map_err(|source| DiscoverError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let mut walked = Walked::default();
    let mut searched = Vec::new();
    for (rel, depth) in SEARCH_DIRS {
        if let Some(dir) = resolve_in_root(root, Path::new(rel)) {
            if dir.is_dir() {
                searched.push(dir.clone());
                walk(
                    &dir,
                    (*depth).min(opts.max_depth),
                    opts.max_files,
                    &mut walked,
                );
            }
        }
    }
    for dir in &opts.extra_dirs {
        searched.push(dir.clone());
        walk(dir, opts.max_depth, opts.max_files, &mut walked);
    }
    let mut notes = Vec::new();
    if walked.truncated {
        notes.push(format!(
            "stopped after {} files; some backups may not have been seen",
            opts.max_files
        ));
    }
    let host_kube = resolve_in_root(root, Path::new("etc/kubernetes"));
    let host_has_kubernetes = host_kube.as_deref().is_some_and(|k| {
        ["manifests", "pki", "ssl", "kubeadmcfg.yaml", "admin.conf"]
            .iter()
            .any(|p| k.join(p).exists())
    });
    let need_kube = match opts.kubernetes {
        KubeRequirement::Auto => !host_has_kubernetes,
        KubeRequirement::Required => true,
        KubeRequirement::NotRequired => false,
    };
    let host_cray_cfg = host_kube
        .as_ref()
        .map(|k| k.join("kubeadmcfg.yaml"))
        .filter(|p| p.is_file());
    let host_ssl = host_kube
        .as_ref()
        .map(|k| k.join("ssl"))
        .filter(|p| p.is_dir());

    let live_etcd = resolve_in_root(root, Path::new("var/lib/etcd"));
    let mut candidates = Vec::new();
    let mut archives: Vec<ArchiveSeen> = Vec::new();
    let mut bbolt_files: Vec<(PathBuf, u64)> = Vec::new();
    let mut rke_states: Vec<PathBuf> = Vec::new();

    for path in &walked.files {
        let head = match read_head(path, 512) {
            Ok(h) => h,
            Err(e) => {
                notes.push(format!("cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if bbolt::has_magic(&head) {
            bbolt_files.push((path.clone(), size));
        } else if let Some(kind) = archive::detect_bytes(&head) {
            // Archives are listed in full (member data is decompressed but not kept).
            let listed = if kind == ArchiveKind::Zip
                || kind == ArchiveKind::TarGz
                || kind == ArchiveKind::Tar
            {
                archive::list(path, &opts.archive_limits)
            } else {
                continue;
            };
            match listed {
                Ok(listing) => archives.push(ArchiveSeen {
                    path: path.clone(),
                    listing,
                }),
                Err(e) => notes.push(format!("skipped archive: {}", error_chain(&e))),
            }
        } else if size < (16 << 20) && rke::looks_like_state(&head) {
            rke_states.push(path.clone());
        }
    }

    // Snapshot files on disk.
    for (path, size) in &bbolt_files {
        let name = file_name(path);
        let (ts, from) = stamp_of(&[&name], path);
        let mut c = Candidate {
            layout: if size % 512 == 32 {
                Layout::PlainSnapshot
            } else {
                Layout::RawDb
            },
            snapshot: Location::File { path: path.clone() },
            data_dir: None,
            live_data_dir: false,
            kubernetes: None,
            etcd_config: None,
            timestamp: ts,
            timestamp_from: from,
            size: *size,
            check: None,
            status: Status::Passed,
            reason: String::new(),
        };
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if path.ends_with("member/snap/db") {
            let data_dir = dir
                .parent()
                .and_then(Path::parent)
                .unwrap_or(&dir)
                .to_path_buf();
            let wal = data_dir.join("member/wal");
            let wal_files: Vec<PathBuf> = fs::read_dir(&wal)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
                        .collect()
                })
                .unwrap_or_default();
            if !wal_files.is_empty() {
                c.layout = Layout::DataDir;
                c.timestamp = wal_files
                    .iter()
                    .map(|p| mtime(p))
                    .chain([c.timestamp])
                    .max()
                    .unwrap_or(c.timestamp);
                c.live_data_dir = live_etcd.as_deref() == Some(data_dir.as_path());
                if c.live_data_dir && opts.skip_live_data_dir {
                    c.status = Status::Rejected;
                    c.reason = "the host's own etcd data dir; skipped as asked".into();
                }
                c.data_dir = Some(data_dir);
            } else {
                c.layout = Layout::RawDb;
            }
        } else if let Some(ts_text) = openshift_stamp(&name) {
            c.layout = Layout::OpenShift;
            let resources = archives.iter().find(|a| {
                a.path.parent() == Some(dir.as_path())
                    && file_name(&a.path)
                        .strip_prefix("static_kuberesources_")
                        .and_then(|r| r.strip_suffix(".tar.gz"))
                        .map(|r| r.strip_suffix("__POSSIBLY_DIRTY__").unwrap_or(r))
                        == Some(ts_text)
            });
            match resources {
                Some(a) => {
                    c.kubernetes = Some(KubeSource::OpenShiftResources {
                        archive: a.path.clone(),
                    })
                }
                None => {
                    c.status = Status::Rejected;
                    c.reason = format!(
                        "openshift snapshot without its static_kuberesources_{ts_text}.tar.gz beside it; cluster-backup.sh writes both and restore needs both"
                    );
                }
            }
        } else if is_under(root, path, "opt/rke/etcd-snapshots") {
            c.layout = Layout::Rke;
            c.kubernetes = rke_kube(root, &name, &rke_states, host_ssl.as_deref());
        } else if is_under(root, path, "var/lib/rancher/k3s") {
            c.layout = Layout::K3s;
        } else if is_under(root, path, "var/lib/rancher/rke2") {
            c.layout = Layout::Rke2;
        }
        if c.kubernetes.is_none() && c.status != Status::Rejected && c.layout != Layout::DataDir {
            if let Some(k) = kube_beside(&dir, path, &archives) {
                c.layout = Layout::Kubeadm;
                c.kubernetes = Some(k);
            }
        }
        candidates.push(c);
    }

    // Snapshots inside archives.
    for a in &archives {
        let members = bbolt_members(&a.listing);
        let name = file_name(&a.path);
        let kube_prefix = kube_prefix(&a.listing);
        let dir = a.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        for m in members {
            let (ts, from) = stamp_of(&[&name, &m.name], &a.path);
            let mut c = Candidate {
                layout: Layout::ArchivedSnapshot,
                snapshot: Location::Member {
                    archive: a.path.clone(),
                    member: m.name.clone(),
                },
                data_dir: None,
                live_data_dir: false,
                kubernetes: None,
                etcd_config: None,
                timestamp: ts,
                timestamp_from: from,
                size: m.size,
                check: None,
                status: Status::Passed,
                reason: String::new(),
            };
            let base = m.name.rsplit('/').next().unwrap_or(&m.name);
            if base == "etcd-dump.bin" && m.name.matches('/').count() == 1 {
                c.layout = Layout::CrayCsm;
                c.etcd_config = host_cray_cfg.clone();
            } else if m.name == "etcd-backup.snapshot" {
                c.layout = if kube_prefix.is_some() {
                    Layout::Deckhouse
                } else {
                    Layout::DeckhouseDaily
                };
            } else if is_under(root, &a.path, "opt/rke/etcd-snapshots")
                || a.listing
                    .members
                    .iter()
                    .any(|x| x.name.ends_with(".rkestate"))
            {
                c.layout = Layout::Rke;
                let state = a
                    .listing
                    .members
                    .iter()
                    .find(|x| x.kind == EntryKind::File && x.name.ends_with(".rkestate"))
                    .map(|x| Location::Member {
                        archive: a.path.clone(),
                        member: x.name.clone(),
                    });
                c.kubernetes = match state {
                    Some(state) => Some(KubeSource::RkeState {
                        state,
                        ssl_dir: host_ssl.clone(),
                    }),
                    None => rke_kube(root, base, &rke_states, host_ssl.as_deref()),
                };
            } else if is_under(root, &a.path, "var/lib/rancher/k3s") {
                c.layout = Layout::K3s;
            } else if is_under(root, &a.path, "var/lib/rancher/rke2") {
                c.layout = Layout::Rke2;
            }
            if c.kubernetes.is_none() {
                if let Some(prefix) = &kube_prefix {
                    c.kubernetes = Some(KubeSource::Archive {
                        archive: a.path.clone(),
                        prefix: prefix.clone(),
                    });
                    if c.layout == Layout::ArchivedSnapshot {
                        c.layout = Layout::Kubeadm;
                    }
                } else if let Some(k) = kube_beside(&dir, &a.path, &archives) {
                    c.kubernetes = Some(k);
                    if c.layout == Layout::ArchivedSnapshot {
                        c.layout = Layout::Kubeadm;
                    }
                }
            }
            candidates.push(c);
        }
    }

    // Requirements that need no reading of the snapshot.
    for c in candidates
        .iter_mut()
        .filter(|c| c.status != Status::Rejected)
    {
        if need_kube && c.kubernetes.is_none() {
            c.status = Status::Rejected;
            c.reason =
                "this backup has no /etc/kubernetes copy and the host has none either".into();
            continue;
        }
        if let Some(reason) = kube_problem(c.kubernetes.as_ref()) {
            c.status = Status::Rejected;
            c.reason = reason;
        }
    }

    // Newest first; ties: with kubernetes first, then by location for a stable order.
    candidates.sort_by(|a, b| {
        b.timestamp
            .cmp(&a.timestamp)
            .then(b.kubernetes.is_some().cmp(&a.kubernetes.is_some()))
            .then(a.snapshot.to_string().cmp(&b.snapshot.to_string()))
    });

    let mut chosen = None;
    for (i, c) in candidates.iter_mut().enumerate() {
        if c.status == Status::Rejected {
            continue;
        }
        if chosen.is_some() && !opts.check_all {
            c.reason = "older than the chosen backup; not checked".into();
            continue;
        }
        let report = check_snapshot(&c.snapshot, opts);
        match report {
            Ok(r) => {
                c.size = r.size;
                if let Some(p) = r.problem() {
                    c.status = Status::Rejected;
                    c.reason = p;
                } else if chosen.is_none() {
                    c.status = Status::Chosen;
                    c.reason = match r.hash {
                        HashCheck::Matches => {
                            "newest usable backup; sha256 trailer verified".into()
                        }
                        HashCheck::Absent => {
                            "newest usable backup; raw db without sha256 trailer".into()
                        }
                        _ => "newest usable backup; sha256 not verified".into(),
                    };
                    chosen = Some(i);
                } else {
                    c.reason = "usable, but older than the chosen backup".into();
                }
                c.check = Some(r);
            }
            Err(e) => {
                c.status = Status::Rejected;
                c.reason = error_chain(&e);
            }
        }
    }
    Ok(Inventory {
        root: root.to_path_buf(),
        searched,
        candidates,
        chosen,
        host_has_kubernetes,
        notes,
    })
}

/// `(timestamp, source)`: the first name that carries a timestamp, else the file's mtime.
fn stamp_of(names: &[&str], path: &Path) -> (i64, StampSource) {
    names
        .iter()
        .find_map(|n| stamp::from_name(n))
        .map(|t| (t, StampSource::Name))
        .unwrap_or_else(|| (mtime(path), StampSource::Mtime))
}

/// A `/etc/kubernetes` copy next to a snapshot: a sibling directory shaped like one, or an
/// archive in the same directory that holds one (and no snapshot of its own).
fn kube_beside(dir: &Path, snapshot: &Path, archives: &[ArchiveSeen]) -> Option<KubeSource> {
    if let Ok(rd) = fs::read_dir(dir) {
        let mut subdirs: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        subdirs.sort();
        if let Some(d) = subdirs.into_iter().find(|d| is_kube_dir(d)) {
            return Some(KubeSource::Dir { path: d });
        }
    }
    archives
        .iter()
        .filter(|a| {
            a.path.parent() == Some(dir)
                && a.path != snapshot
                && bbolt_members(&a.listing).is_empty()
        })
        .find_map(|a| {
            kube_prefix(&a.listing).map(|prefix| KubeSource::Archive {
                archive: a.path.clone(),
                prefix,
            })
        })
}

/// RKE: a state file for this snapshot on the host (`etc/kubernetes/<name>.rkestate`, as
/// rke-tools leaves it), else any RKE state found, else just the host's ssl directory.
fn rke_kube(
    root: &Path,
    snapshot_name: &str,
    states: &[PathBuf],
    ssl: Option<&Path>,
) -> Option<KubeSource> {
    let base = snapshot_name.strip_suffix(".zip").unwrap_or(snapshot_name);
    let own = resolve_in_root(
        root,
        &Path::new("etc/kubernetes").join(format!("{base}.rkestate")),
    )
    .filter(|p| p.is_file());
    let any = || {
        states
            .iter()
            .find(|p| rke_state_ok(&Location::File { path: (*p).clone() }))
            .cloned()
    };
    match own.or_else(any) {
        Some(path) => Some(KubeSource::RkeState {
            state: Location::File { path },
            ssl_dir: ssl.map(Path::to_path_buf),
        }),
        None => ssl.map(|s| KubeSource::RkeSsl {
            ssl_dir: s.to_path_buf(),
        }),
    }
}

fn read_location(loc: &Location, cap: u64) -> Result<Vec<u8>, String> {
    match loc {
        Location::File { path } => {
            let mut buf = Vec::new();
            fs::File::open(path)
                .and_then(|f| f.take(cap).read_to_end(&mut buf))
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(buf)
        }
        Location::Member { archive, member } => {
            let mut buf = Vec::new();
            let limits = Limits {
                max_entry_bytes: cap,
                ..Limits::SNAPSHOT
            };
            archive::stream_member(archive, member, &mut buf, &limits)
                .map_err(|e| error_chain(&e))?;
            Ok(buf)
        }
    }
}

fn rke_state_ok(loc: &Location) -> bool {
    read_location(loc, 16 << 20).is_ok_and(|b| rke::certificate_files(&b).is_ok())
}

/// Why the `/etc/kubernetes` source cannot be used, if it cannot: archives must pass every
/// extraction check, RKE states must parse to safe certificate paths.
fn kube_problem(k: Option<&KubeSource>) -> Option<String> {
    let opts = ExtractOptions {
        limits: Limits::CONFIG_TREE,
        subtree: None,
        keep_owners: true,
    };
    match k? {
        KubeSource::Archive { archive, prefix } => {
            let opts = ExtractOptions {
                subtree: (!prefix.is_empty()).then(|| PathBuf::from(prefix)),
                ..opts
            };
            archive::validate(archive, &opts)
                .err()
                .map(|e| format!("its kubernetes archive is unsafe: {}", error_chain(&e)))
        }
        KubeSource::OpenShiftResources { archive } => {
            archive::validate(archive, &opts).err().map(|e| {
                format!(
                    "its static_kuberesources archive is unsafe: {}",
                    error_chain(&e)
                )
            })
        }
        KubeSource::RkeState { state, .. } => match read_location(state, 16 << 20) {
            Err(e) => Some(format!("its rke cluster state cannot be read: {e}")),
            Ok(b) => rke::certificate_files(&b)
                .err()
                .map(|e| format!("its rke cluster state is unusable: {}", error_chain(&e))),
        },
        KubeSource::Dir { .. } | KubeSource::RkeSsl { .. } => None,
    }
}

/// Streams the snapshot through a [`SnapshotCheck`].
pub fn check_snapshot(
    loc: &Location,
    opts: &ScanOptions,
) -> Result<SnapshotReport, archive::ArchiveError> {
    match loc {
        Location::File { path } => {
            // A file whose trailer was checked while it was written is read for its head only.
            let checked = opts.trailer_checked.contains(path);
            let complete = opts.verify_hash && !checked;
            let mut check = SnapshotCheck::new(complete);
            let mut f = fs::File::open(path).map_err(|source| archive::ArchiveError::Open {
                path: path.clone(),
                source,
            })?;
            let read = |source| archive::ArchiveError::Read {
                path: path.clone(),
                source,
            };
            if complete {
                io::copy(&mut f, &mut check).map_err(read)?;
            } else {
                let mut head = Vec::new();
                f.by_ref()
                    .take(70 << 10)
                    .read_to_end(&mut head)
                    .map_err(read)?;
                io::Write::write_all(&mut check, &head).map_err(read)?;
            }
            let mut r = check.finish(complete);
            if !complete {
                r.size = fs::metadata(path).map(|m| m.len()).unwrap_or(r.size);
            }
            if checked {
                r.hash = HashCheck::Matches;
            }
            Ok(r)
        }
        Location::Member { archive, member } => {
            let mut check = SnapshotCheck::new(opts.verify_hash);
            archive::stream_member(archive, member, &mut check, &opts.archive_limits)?;
            Ok(check.finish(true))
        }
    }
}

/// `error: cause: cause` on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    crate::errors::chain(e)
}
