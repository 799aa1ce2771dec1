//! `snapshot restore`: a new data dir from a snapshot, as `etcdutl snapshot restore` makes it
//! (same member ID, cluster ID, keys and revisions), but safe: everything is checked before
//! anything is written, the result is built in a temporary directory beside the target and
//! renamed into place only after every file and directory is fsynced, and a failure leaves
//! nothing behind.
//!
//! Steps: check flags → verify sha256 → check the bbolt structure (one streaming walk) → copy
//! the database pages → one copy-on-write commit (members, consistent index, term, bump) →
//! WAL → `.snap` → fsync → rename.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::input::{HashCheck, SnapshotFile};
use super::status::{build_status, Status, Survey};
use super::SnapshotError;
use crate::formats::bbolt::{BucketRoot, Commit, Db, LeafItem, Meta, ReadAhead, BUCKET_LEAF_FLAG};
use crate::formats::etcd::schema::{
    Revision, BUCKET_CLUSTER, BUCKET_KEY, BUCKET_MEMBERS, BUCKET_MEMBERS_REMOVED, BUCKET_META,
    META_CONSISTENT_INDEX, META_SCHEDULED_COMPACT, META_TERM,
};
use crate::formats::etcd::{snapfile, wal, InitialCluster, Member};
use crate::progress::Progress;

/// Inputs of a restore, with etcdutl's flag names and defaults.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    pub initial_cluster: String,
    pub initial_advertise_peer_urls: Vec<String>,
    pub initial_cluster_token: String,
    pub skip_hash_check: bool,
    pub bump_revision: u64,
    pub mark_compacted: bool,
    /// The snapshot is a temporary copy the caller does not need afterwards (a fetched
    /// file): it is moved into the data dir and completed in place instead of copied, when it
    /// is on the same filesystem. It is gone after the restore, whether it succeeds or not.
    pub consume: bool,
    /// The caller checked the sha256 trailer in the pass that wrote this file (a fetch): the
    /// restore does not read the file again for it. Only for a file nobody else writes.
    pub trailer_verified: bool,
}

impl RestoreOptions {
    /// etcdutl's defaults: name `default`, peer URL `http://localhost:2380`, token
    /// `etcd-cluster`, data dir `<name>.etcd`.
    pub fn new(snapshot: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            snapshot: snapshot.into(),
            data_dir: PathBuf::from("default.etcd"),
            name: "default".into(),
            initial_cluster: "default=http://localhost:2380".into(),
            initial_advertise_peer_urls: vec!["http://localhost:2380".into()],
            initial_cluster_token: "etcd-cluster".into(),
            skip_hash_check: false,
            bump_revision: 0,
            mark_compacted: false,
            consume: false,
            trailer_verified: false,
        }
    }
}

/// What a restore did, for logs and reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub data_dir: PathBuf,
    pub member_id: String,
    pub cluster_id: String,
    pub members: Vec<String>,
    pub before: Status,
    pub after: Status,
    pub bumped_to: Option<u64>,
    /// The input became the db in place (`RestoreOptions::consume` on the same filesystem).
    pub consumed: bool,
    pub seconds: f64,
}

/// The checks of [`restore`] that need no snapshot: the flags, as etcdutl checks them, and
/// the target directory. A caller that fetches the snapshot first runs these before the fetch,
/// so that a typo does not cost a download.
pub fn check_options(opts: &RestoreOptions) -> Result<(), SnapshotError> {
    cluster_of(opts).map(|_| ())?;
    check_target(&opts.data_dir)
}

/// The flags, checked; the cluster and this member.
fn cluster_of(opts: &RestoreOptions) -> Result<(InitialCluster, Member), SnapshotError> {
    if opts.bump_revision > 0 && !opts.mark_compacted {
        return Err(SnapshotError::Flags(
            "--mark-compacted is required with --bump-revision (reads of older revisions must fail as compacted)".into(),
        ));
    }
    if opts.mark_compacted && opts.bump_revision == 0 {
        return Err(SnapshotError::Flags(
            "--mark-compacted needs --bump-revision greater than 0".into(),
        ));
    }
    let cluster = InitialCluster::parse(&opts.initial_cluster, &opts.initial_cluster_token)?;
    let local = cluster
        .local(&opts.name, &opts.initial_advertise_peer_urls)?
        .clone();
    Ok((cluster, local))
}

/// Restores `opts.snapshot` into `opts.data_dir`.
pub fn restore(
    opts: &RestoreOptions,
    progress: &mut Progress,
) -> Result<RestoreReport, SnapshotError> {
    let started = Instant::now();
    // 1. Flags, as etcdutl checks them.
    let (cluster, local) = cluster_of(opts)?;
    check_target(&opts.data_dir)?;

    // 2. Open the input; the meta pages are checked here, the rest below.
    let snap = SnapshotFile::open(&opts.snapshot)?;
    if snap.trailer.is_none() && !opts.skip_hash_check {
        return Err(SnapshotError::MissingHash {
            path: opts.snapshot.clone(),
        });
    }
    let db = snap.db()?;
    let ps = u64::from(db.page_size());
    let wal_bytes = wal::encode(&cluster, local.id);
    let needed = db.size() + wal::SEGMENT_SIZE + 16 * ps + (1 << 20);
    check_space(&opts.data_dir, needed)?;

    // 3. Build the data dir beside its final place, then rename.
    let parent = parent_of(&opts.data_dir);
    fs::create_dir_all(&parent).map_err(SnapshotError::io("creating", &parent))?;
    let tmp = temp_sibling(&opts.data_dir);
    let guard = TempDir {
        path: tmp.clone(),
        keep: false,
    };
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(SnapshotError::io("creating", &tmp))?;
    let member = tmp.join("member");
    let snap_dir = member.join("snap");
    let wal_dir = member.join("wal");
    for d in [&member, &snap_dir, &wal_dir] {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(d)
            .map_err(SnapshotError::io("creating", d))?;
    }
    let db_path = snap_dir.join("db");
    // A consumed input becomes the db itself: its pages are already where they belong, the
    // commit appends after them (over the trailer, which was read at open), and the hash is
    // read from the same inode before the rename into place.
    let consumed =
        opts.consume && snap.db_len == db.size() && fs::rename(&opts.snapshot, &db_path).is_ok();
    let out = if consumed {
        let f = OpenOptions::new()
            .write(true)
            .read(true)
            .open(&db_path)
            .map_err(SnapshotError::io("opening", &db_path))?;
        f.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(SnapshotError::io("setting the mode of", &db_path))?;
        f
    } else {
        OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(0o600)
            .open(&db_path)
            .map_err(SnapshotError::io("creating", &db_path))?
    };
    // 3. Copy the pages while the structure is walked and the sha256 computed on other
    //    threads. The commit needs the walk; only the final rename needs the hash, so the
    //    hash runs on while the rest is written and synced. Nothing leaves the temporary
    //    directory unless everything succeeds.
    let (before, after, bumped_to) = std::thread::scope(|s| {
        let hasher = s.spawn(|| {
            if opts.trailer_verified && snap.trailer.is_some() && !opts.skip_hash_check {
                return Ok(HashCheck::Verified);
            }
            snap.check_hash(opts.skip_hash_check, false, &mut Progress::hidden())
        });
        let hash_result =
            |h: std::thread::ScopedJoinHandle<'_, Result<HashCheck, SnapshotError>>| {
                h.join().unwrap_or_else(|_| {
                    Err(SnapshotError::io("hashing", &opts.snapshot)(
                        std::io::Error::other("hash thread failed"),
                    ))
                })
            };
        let copy_len = if consumed { 0 } else { db.size() };
        let walked = copy_and_walk(&snap, &out, copy_len, &db_path, progress);
        let survey = match walked {
            Ok(s) => s,
            // A damaged file usually fails both checks; the hash names it best.
            Err(e) => return Err(hash_result(hasher).err().unwrap_or(e)),
        };
        let rest = (|| {
            for bucket in [BUCKET_META, BUCKET_KEY] {
                if !survey.has_bucket(bucket) {
                    return Err(SnapshotError::NotEtcd {
                        path: opts.snapshot.clone(),
                        bucket: if bucket == BUCKET_META { "meta" } else { "key" },
                    });
                }
            }
            if opts.bump_revision > 0 && survey.malformed_revision_keys > 0 {
                return Err(SnapshotError::Flags(format!(
                    "cannot bump the revision: {} keys of bucket \"key\" are not revisions",
                    survey.malformed_revision_keys
                )));
            }
            // 4. One copy-on-write commit; then the data pages are synced while the result is
            //    walked again (a check of our own writer), and the meta page goes last.
            let (new_meta, bumped_to) =
                commit(&db, &out, &survey, &cluster, opts).map_err(|source| {
                    SnapshotError::Write {
                        path: db_path.clone(),
                        source,
                    }
                })?;
            let (out_ref, path_ref) = (&out, &db_path);
            let checker = s.spawn(move || -> Result<Status, SnapshotError> {
                let (out, db_path) = (out_ref, path_ref);
                let len = new_meta.pgid * ps;
                let reread = Db::open_with_meta(ReadAhead::new(&out, len), len, new_meta).map_err(
                    |source| SnapshotError::Write {
                        path: db_path.clone(),
                        source,
                    },
                )?;
                let st = Survey::run(&reread, &mut Progress::hidden()).map_err(|source| {
                    SnapshotError::Write {
                        path: db_path.clone(),
                        source,
                    }
                })?;
                Ok(build_status(&reread, &st, HashCheck::Absent))
            });
            let synced = out
                .sync_data()
                .map_err(SnapshotError::io("syncing", &db_path))
                .and_then(|_| {
                    Commit::<ReadAhead<&File>, File>::write_meta(&out, &new_meta).map_err(
                        |source| SnapshotError::Write {
                            path: db_path.clone(),
                            source,
                        },
                    )
                })
                .and_then(|_| {
                    out.sync_all()
                        .map_err(SnapshotError::io("syncing", &db_path))
                });
            let after = checker.join().unwrap_or_else(|_| {
                Err(SnapshotError::io("checking", &db_path)(
                    std::io::Error::other("checker thread failed"),
                ))
            });
            synced?;
            let after = after?;
            // The WAL, preallocated as etcd does, and the .snap file.
            let wal_path = wal_dir.join(wal::FIRST_SEGMENT);
            write_file(&wal_path, &wal_bytes, 0o600, Some(wal::SEGMENT_SIZE))?;
            let snap_path = snap_dir.join(snapfile::file_name(cluster.members.len() as u64));
            write_file(&snap_path, &snapfile::encode(&cluster), 0o666, None)?;
            // 5. Make the directory tree durable.
            for d in [&snap_dir, &wal_dir, &member, &tmp] {
                sync_dir(d)?;
            }
            Ok((after, bumped_to))
        })();
        let hash = hash_result(hasher);
        let (after, bumped_to) = match (hash.as_ref(), rest) {
            (Err(_), _) => {
                return Err(hash
                    .err()
                    .unwrap_or_else(|| unreachable_error(&opts.snapshot)))
            }
            (Ok(_), Err(e)) => return Err(e),
            (Ok(_), Ok(r)) => r,
        };
        let hash = hash?;
        Ok((build_status(&db, &survey, hash), after, bumped_to))
    })?;

    // 6. Visible.
    if opts.data_dir.exists() {
        // An empty directory: rename(2) replaces it atomically.
        check_target(&opts.data_dir)?;
    }
    fs::rename(&tmp, &opts.data_dir)
        .map_err(SnapshotError::io("renaming into place", &opts.data_dir))?;
    guard.disarm();
    sync_dir(&parent)?;
    Ok(RestoreReport {
        data_dir: opts.data_dir.clone(),
        member_id: local.hex_id(),
        cluster_id: format!("{:x}", cluster.cluster_id),
        members: cluster
            .members
            .iter()
            .map(|m| format!("{}={}", m.name, m.hex_id()))
            .collect(),
        before,
        after,
        bumped_to,
        consumed,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The copy-on-write commit: new membership, consistent index and term, optional bump.
fn commit<R: crate::formats::bbolt::ReadAt + ?Sized>(
    db: &Db<R>,
    out: &File,
    survey: &Survey,
    cluster: &InitialCluster,
    opts: &RestoreOptions,
) -> Result<(Meta, Option<u64>), crate::formats::bbolt::BboltError> {
    let n = cluster.members.len() as u64;
    let mut c = Commit::new(db, out);
    let mut bumped_to = None;
    let mut meta: Vec<LeafItem> = survey
        .meta
        .iter()
        .map(|(k, v)| LeafItem::new(k.clone(), v.clone()))
        .collect();
    let mut set_meta =
        |key: &[u8], value: Vec<u8>| match meta.binary_search_by(|i| i.key.as_slice().cmp(key)) {
            Ok(i) => meta[i].value = value,
            Err(i) => meta.insert(i, LeafItem::new(key, value)),
        };
    set_meta(META_CONSISTENT_INDEX, n.to_be_bytes().to_vec());
    set_meta(META_TERM, 1u64.to_be_bytes().to_vec());
    let mut key_value = None;
    if opts.bump_revision > 0 {
        let latest = survey.latest.unwrap_or_default();
        let main = latest.main.saturating_add(opts.bump_revision);
        let rev = Revision { main, sub: 0 }.to_key();
        set_meta(META_SCHEDULED_COMPACT, rev.clone());
        let root = survey
            .buckets
            .iter()
            .find(|(n, _)| n == BUCKET_KEY)
            .map(|(_, r)| r.clone())
            .unwrap_or(BucketRoot::Inline {
                page: Vec::new(),
                sequence: 0,
            });
        key_value = Some(c.append_to_bucket(&root, LeafItem::new(rev, Vec::new()))?);
        bumped_to = Some(main);
    }
    let mut members: Vec<LeafItem> = cluster
        .members
        .iter()
        .map(|m| LeafItem::new(m.hex_id(), m.json()))
        .collect();
    members.sort_by(|a, b| a.key.cmp(&b.key));
    let mut roots: Vec<LeafItem> = Vec::new();
    let mut put_root = |name: &[u8], value: Vec<u8>| {
        roots.retain(|i| i.key != name);
        roots.push(LeafItem {
            flags: BUCKET_LEAF_FLAG,
            key: name.to_vec(),
            value,
        });
    };
    for (name, root) in &survey.buckets {
        put_root(name, bucket_value_bytes(root));
    }
    put_root(
        BUCKET_META,
        c.bucket_value(&meta, sequence_of(survey, BUCKET_META))?,
    );
    put_root(
        BUCKET_MEMBERS,
        c.bucket_value(&members, sequence_of(survey, BUCKET_MEMBERS))?,
    );
    put_root(
        BUCKET_MEMBERS_REMOVED,
        c.bucket_value(&[], sequence_of(survey, BUCKET_MEMBERS_REMOVED))?,
    );
    if !survey.has_bucket(BUCKET_CLUSTER) {
        put_root(BUCKET_CLUSTER, c.bucket_value(&[], 0)?);
    }
    if let Some(v) = key_value {
        put_root(BUCKET_KEY, v);
    }
    roots.sort_by(|a, b| a.key.cmp(&b.key));
    let new_meta = c.finish(&roots)?;
    Ok((new_meta, bumped_to))
}

fn sequence_of(s: &Survey, name: &[u8]) -> u64 {
    s.buckets
        .iter()
        .find(|(n, _)| n == name)
        .map_or(0, |(_, r)| r.sequence())
}

/// The bucket value bytes for an unchanged bucket.
fn bucket_value_bytes(root: &BucketRoot) -> Vec<u8> {
    use crate::formats::bbolt::BucketHeader;
    match root {
        BucketRoot::Paged { root, sequence } => BucketHeader {
            root: *root,
            sequence: *sequence,
        }
        .to_bytes()
        .to_vec(),
        BucketRoot::Inline { page, sequence } => {
            let mut v = BucketHeader {
                root: 0,
                sequence: *sequence,
            }
            .to_bytes()
            .to_vec();
            v.extend_from_slice(page);
            v
        }
    }
}

/// Copies the first `len` bytes of the snapshot into `dst` (in the kernel where it can) while
/// another thread walks the bbolt structure; the walk's error wins over a copy error.
fn copy_and_walk(
    snap: &SnapshotFile,
    dst: &File,
    len: u64,
    dst_path: &Path,
    progress: &mut Progress,
) -> Result<Survey, SnapshotError> {
    std::thread::scope(|s| {
        let walker = s.spawn(|| {
            let db = snap.db()?;
            Survey::run(&db, &mut Progress::hidden()).map_err(|source| SnapshotError::Corrupt {
                path: snap.path.clone(),
                source,
            })
        });
        let copied = copy_pages(&snap.file, dst, len, dst_path, progress);
        let survey = walker.join().unwrap_or_else(|_| {
            Err(SnapshotError::io("checking", &snap.path)(
                std::io::Error::other("structure check thread failed"),
            ))
        })?;
        copied?;
        Ok(survey)
    })
}

/// An error for a state the code above rules out, rather than a panic in PID 1.
fn unreachable_error(path: &Path) -> SnapshotError {
    SnapshotError::io("checking", path)(std::io::Error::other("internal error: hash state lost"))
}

/// Copies the first `len` bytes of `src` into `dst`, in the kernel where it can.
fn copy_pages(
    src: &File,
    dst: &File,
    len: u64,
    dst_path: &Path,
    progress: &mut Progress,
) -> Result<(), SnapshotError> {
    progress.start("restoring database", len);
    let mut done = 0u64;
    let mut use_kernel = true;
    let mut buf = Vec::new();
    while done < len {
        let chunk = (len - done).min(16 << 20);
        if use_kernel {
            let mut off_in = done;
            let mut off_out = done;
            match rustix::fs::copy_file_range(
                src,
                Some(&mut off_in),
                dst,
                Some(&mut off_out),
                chunk as usize,
            ) {
                Ok(0) => {
                    return Err(SnapshotError::io("copying into", dst_path)(
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    ))
                }
                Ok(n) => {
                    done += n as u64;
                    progress.set(done);
                    continue;
                }
                Err(e) if e == rustix::io::Errno::NOSPC => {
                    return Err(SnapshotError::io("copying into", dst_path)(e.into()))
                }
                Err(_) => use_kernel = false,
            }
        }
        let n = chunk.min(8 << 20) as usize;
        buf.resize(n, 0);
        std::os::unix::fs::FileExt::read_exact_at(src, &mut buf, done)
            .map_err(SnapshotError::io("reading", dst_path))?;
        std::os::unix::fs::FileExt::write_all_at(dst, &buf, done)
            .map_err(SnapshotError::io("writing", dst_path))?;
        done += n as u64;
        progress.set(done);
    }
    progress.finish();
    Ok(())
}

fn write_file(
    path: &Path,
    data: &[u8],
    mode: u32,
    prealloc: Option<u64>,
) -> Result<(), SnapshotError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(SnapshotError::io("creating", path))?;
    if let Some(size) = prealloc {
        if rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, size).is_err() {
            f.set_len(size)
                .map_err(SnapshotError::io("preallocating", path))?;
        }
    }
    f.write_all(data)
        .map_err(SnapshotError::io("writing", path))?;
    f.sync_all().map_err(SnapshotError::io("syncing", path))
}

fn sync_dir(path: &Path) -> Result<(), SnapshotError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(SnapshotError::io("syncing directory", path))
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_sibling(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    parent_of(p).join(format!(".{name}.rescue-init-{}.tmp", std::process::id()))
}

/// The data dir must be absent or an empty directory.
fn check_target(p: &Path) -> Result<(), SnapshotError> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SnapshotError::io("inspecting", p)(e)),
        Ok(m) if m.is_dir() => {
            let mut entries = fs::read_dir(p).map_err(SnapshotError::io("reading", p))?;
            if entries.next().is_some() {
                Err(SnapshotError::DataDirNotEmpty {
                    path: p.to_path_buf(),
                })
            } else {
                Ok(())
            }
        }
        Ok(_) => Err(SnapshotError::DataDirNotEmpty {
            path: p.to_path_buf(),
        }),
    }
}

/// Fails early when the filesystem that will hold the data dir lacks `needed` bytes.
fn check_space(data_dir: &Path, needed: u64) -> Result<(), SnapshotError> {
    let mut probe = parent_of(data_dir);
    while !probe.exists() {
        probe = parent_of(&probe);
    }
    let st = rustix::fs::statvfs(&probe)
        .map_err(|e| SnapshotError::io("inspecting", &probe)(e.into()))?;
    let available = st.f_bavail.saturating_mul(st.f_frsize);
    if available < needed {
        return Err(SnapshotError::NoSpace {
            path: data_dir.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// Removes the temporary directory unless disarmed.
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    fn disarm(mut self) {
        self.keep = true;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::formats::bbolt::build_image;

    /// An etcd-shaped snapshot (`snapshot save` layout: db then sha256) with `keys` revisions.
    fn synthetic(keys: u64) -> Vec<u8> {
        let revs: Vec<LeafItem> = (1..=keys)
            .map(|i| {
                LeafItem::new(
                    Revision {
                        main: i + 1,
                        sub: 0,
                    }
                    .to_key(),
                    vec![b'x'; 40],
                )
            })
            .collect();
        let meta = vec![
            LeafItem::new("consistent_index", 99u64.to_be_bytes().to_vec()),
            LeafItem::new("term", 7u64.to_be_bytes().to_vec()),
        ];
        let members = vec![LeafItem::new(
            "abc",
            r#"{"id":2748,"peerURLs":["http://old:2380"],"name":"old"}"#,
        )];
        let removed = vec![LeafItem::new("123", "removed")];
        let mut img = build_image(
            4096,
            &[
                ("key", revs),
                ("meta", meta),
                ("members", members),
                ("members_removed", removed),
            ],
        )
        .expect("build");
        let sum = Sha256::digest(&img);
        img.extend_from_slice(&sum);
        assert_eq!(img.len() % 512, 32);
        img
    }

    fn opts(dir: &Path, snap: &Path) -> RestoreOptions {
        let mut o = RestoreOptions::new(snap);
        o.data_dir = dir.join("data");
        o.name = "m1".into();
        o.initial_cluster = "m1=http://10.1.2.3:2380".into();
        o.initial_advertise_peer_urls = vec!["http://10.1.2.3:2380".into()];
        o
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn restores_membership_index_term_and_bump() {
        let t = tempfile::tempdir().expect("tempdir");
        let snap = t.path().join("s.db");
        fs::write(&snap, synthetic(3000)).expect("write");
        let mut o = opts(t.path(), &snap);
        o.bump_revision = 1000;
        o.mark_compacted = true;
        let r = restore(&o, &mut Progress::hidden()).expect("restore");
        assert_eq!(r.before.revision, 3001);
        assert_eq!(r.bumped_to, Some(4001));
        assert_eq!(r.after.revision, 4001);
        assert_eq!(r.after.consistent_index, Some(1));
        assert_eq!(r.after.term, Some(1));
        assert_eq!(r.after.members.len(), 1);
        assert_eq!(r.after.members[0].name, "m1");
        assert_eq!(r.after.members[0].id, r.member_id);
        // 3000 keys + bump key, meta (index, term, scheduledCompactRev), one member.
        assert_eq!(r.after.total_key, 3001 + 3 + 1);
        assert_eq!(entries(t.path()), ["data", "s.db"]);
        assert_eq!(entries(&o.data_dir.join("member")), ["snap", "wal"]);
        let wal =
            fs::metadata(o.data_dir.join("member/wal").join(wal::FIRST_SEGMENT)).expect("wal");
        assert_eq!(wal.len(), wal::SEGMENT_SIZE);
    }

    #[test]
    fn consumed_input_gives_the_same_result_as_a_copy() {
        let t = tempfile::tempdir().expect("tempdir");
        let bytes = synthetic(2000);
        let copy_src = t.path().join("copy.db");
        fs::write(&copy_src, &bytes).expect("write");
        let mut o = opts(t.path(), &copy_src);
        o.bump_revision = 10;
        o.mark_compacted = true;
        let copied = restore(&o, &mut Progress::hidden()).expect("copy restore");
        let consume_src = t.path().join("fetched.db");
        fs::write(&consume_src, &bytes).expect("write");
        let mut c = o.clone();
        c.snapshot = consume_src.clone();
        c.data_dir = t.path().join("data2");
        c.consume = true;
        let consumed = restore(&c, &mut Progress::hidden()).expect("consume restore");
        assert!(!consume_src.exists(), "the consumed input became the db");
        assert!(copy_src.exists(), "a copied input stays");
        assert_eq!(copied.after.hash, consumed.after.hash);
        assert_eq!(copied.after.revision, consumed.after.revision);
        assert_eq!(copied.after.total_key, consumed.after.total_key);
        let mode = fs::metadata(c.data_dir.join("member/snap/db"))
            .expect("db")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A consumed input that fails its hash: refused, nothing left beside the target.
        let mut bad = bytes.clone();
        bad[3 * 4096 + 7] ^= 1;
        let bad_src = t.path().join("bad.db");
        fs::write(&bad_src, &bad).expect("write");
        let mut b = c.clone();
        b.snapshot = bad_src;
        b.data_dir = t.path().join("data3");
        let err = restore(&b, &mut Progress::hidden()).expect_err("bad hash");
        assert!(matches!(err, SnapshotError::HashMismatch { .. }), "{err}");
        assert_eq!(entries(t.path()), ["copy.db", "data", "data2"]);
    }

    #[test]
    fn bad_inputs_leave_nothing_behind() {
        let good = synthetic(500);
        let mut flipped = good.clone();
        flipped[3 * 4096 + 100] ^= 1;
        let truncated = good[..good.len() - 4096].to_vec();
        let mut wrong_hash = good.clone();
        let last = wrong_hash.len() - 1;
        wrong_hash[last] ^= 1;
        let raw = good[..good.len() - 32].to_vec();
        let random: Vec<u8> = (0..65536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
            ("flipped bit", flipped, false, "sha256"),
            (
                "flipped bit, unchecked",
                {
                    // The last page is the root bucket's: break its page id.
                    let mut f = good[..good.len() - 32].to_vec();
                    let last_page = f.len() - 4096;
                    f[last_page] ^= 0xff;
                    f
                },
                true,
                "damaged",
            ),
            ("truncated", truncated, true, "damaged"),
            ("wrong trailer", wrong_hash, false, "sha256"),
            ("raw db without skip", raw, false, "--skip-hash-check"),
            ("random bytes", random, true, "damaged"),
            ("empty", Vec::new(), true, "damaged"),
        ];
        for (what, bytes, skip, needle) in cases {
            let t = tempfile::tempdir().expect("tempdir");
            let snap = t.path().join("s.db");
            fs::write(&snap, &bytes).expect("write");
            let mut o = opts(t.path(), &snap);
            o.skip_hash_check = skip;
            let err = restore(&o, &mut Progress::hidden()).expect_err(what);
            let msg = crate::cli::chain(&err);
            assert!(msg.contains(needle), "{what}: {msg}");
            assert_eq!(entries(t.path()), ["s.db"], "{what}: left files behind");
        }
    }

    #[test]
    fn refuses_non_empty_data_dir_and_bad_flags() {
        let t = tempfile::tempdir().expect("tempdir");
        let snap = t.path().join("s.db");
        fs::write(&snap, synthetic(10)).expect("write");
        let o = opts(t.path(), &snap);
        fs::create_dir(&o.data_dir).expect("mkdir");
        fs::write(o.data_dir.join("keep"), "old").expect("write");
        let err = restore(&o, &mut Progress::hidden()).expect_err("non-empty");
        assert!(matches!(err, SnapshotError::DataDirNotEmpty { .. }));
        assert_eq!(
            fs::read_to_string(o.data_dir.join("keep")).expect("kept"),
            "old"
        );
        assert_eq!(entries(t.path()), ["data", "s.db"]);
        // An empty data dir is fine and gets replaced.
        fs::remove_file(o.data_dir.join("keep")).expect("rm");
        restore(&o, &mut Progress::hidden()).expect("empty dir is accepted");
        let mut bad = opts(t.path(), &snap);
        bad.data_dir = t.path().join("other");
        bad.bump_revision = 5;
        assert!(matches!(
            restore(&bad, &mut Progress::hidden()),
            Err(SnapshotError::Flags(_))
        ));
        bad.mark_compacted = true;
        bad.initial_advertise_peer_urls = vec!["http://10.9.9.9:2380".into()];
        assert!(matches!(
            restore(&bad, &mut Progress::hidden()),
            Err(SnapshotError::Cluster(_))
        ));
        assert!(!bad.data_dir.exists());
    }
}
