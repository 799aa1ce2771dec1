//! `snapshot status`: the figures `etcdutl snapshot status` prints (hash, revision, totalKey,
//! totalSize, computed the same way) plus what it does not show: the hash trailer, page size,
//! members, storage and cluster versions, consistent index and term.
use serde::Serialize;

use super::input::{HashCheck, SnapshotFile};
use super::SnapshotError;
use crate::formats::bbolt::{BucketRoot, Db, ReadAt, Visit, WalkStats};
use crate::formats::etcd::cluster::cluster_id;
use crate::formats::etcd::schema::{
    Revision, BUCKET_CLUSTER, BUCKET_KEY, BUCKET_MEMBERS, BUCKET_META, CLUSTER_VERSION,
    META_CONSISTENT_INDEX, META_STORAGE_VERSION, META_TERM,
};
use crate::progress::Progress;

/// A member as recorded in the `members` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusMember {
    pub id: String,
    pub name: String,
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    pub client_urls: Vec<String>,
    pub is_learner: bool,
}

/// The status of a snapshot or a data dir's db. The first four fields match etcdutl's JSON.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub hash: u32,
    pub revision: u64,
    pub total_key: u64,
    pub total_size: u64,
    pub hash_trailer: HashCheck,
    pub page_size: u32,
    pub txid: u64,
    pub buckets: u64,
    pub latest_revision_key: Option<String>,
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
    pub storage_version: Option<String>,
    pub cluster_version: Option<String>,
    pub members: Vec<StatusMember>,
    /// The cluster ID a cluster of exactly these members was created with (etcd does not
    /// store the ID itself; after membership changes the running cluster keeps its first ID).
    pub cluster_id_from_members: Option<String>,
}

/// Walks a database, computing etcdutl's figures and remembering what a restore needs.
#[derive(Default)]
pub(crate) struct Survey {
    pub crc: u32,
    pub total_key: u64,
    pub revision: u64,
    /// Largest revision over all keys of `key` (tombstones included).
    pub latest: Option<Revision>,
    pub malformed_revision_keys: u64,
    pub meta: Vec<(Vec<u8>, Vec<u8>)>,
    pub members: Vec<(Vec<u8>, Vec<u8>)>,
    pub cluster: Vec<(Vec<u8>, Vec<u8>)>,
    pub buckets: Vec<(Vec<u8>, BucketRoot)>,
    pub stats: WalkStats,
}

impl Visit for Survey {
    fn bucket(&mut self, name: &[u8], root: &BucketRoot) {
        self.crc = crc32c::crc32c_append(self.crc, name);
        self.buckets.push((name.to_vec(), root.clone()));
    }

    fn item(&mut self, bucket: &[u8], key: &[u8], value: &[u8]) {
        self.crc = crc32c::crc32c_append(self.crc, key);
        self.crc = crc32c::crc32c_append(self.crc, value);
        self.total_key += 1;
        match bucket {
            BUCKET_KEY => match Revision::from_key(key) {
                Some((rev, _)) => {
                    self.revision = rev.main;
                    self.latest = Some(self.latest.map_or(rev, |l| l.max(rev)));
                }
                None => self.malformed_revision_keys += 1,
            },
            BUCKET_META => self.meta.push((key.to_vec(), value.to_vec())),
            BUCKET_MEMBERS => self.members.push((key.to_vec(), value.to_vec())),
            BUCKET_CLUSTER => self.cluster.push((key.to_vec(), value.to_vec())),
            _ => {}
        }
    }
}

impl Survey {
    /// Checks and walks the whole database.
    pub fn run<R: ReadAt + ?Sized>(
        db: &Db<R>,
        progress: &mut Progress,
    ) -> Result<Self, crate::formats::bbolt::BboltError> {
        let mut s = Survey::default();
        progress.start("checking database structure", db.size());
        s.stats = db.walk(&mut s)?;
        progress.finish();
        Ok(s)
    }

    pub fn meta_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    pub fn has_bucket(&self, name: &[u8]) -> bool {
        self.buckets.iter().any(|(n, _)| n == name)
    }
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

#[derive(serde::Deserialize)]
struct MemberRecord {
    id: u64,
    #[serde(rename = "peerURLs", default)]
    peer_urls: Vec<String>,
    #[serde(default)]
    name: String,
    #[serde(rename = "clientURLs", default)]
    client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    is_learner: bool,
}

pub(crate) fn build_status<R: ReadAt + ?Sized>(db: &Db<R>, s: &Survey, hash: HashCheck) -> Status {
    let members: Vec<StatusMember> = s
        .members
        .iter()
        .filter_map(|(_, v)| serde_json::from_slice::<MemberRecord>(v).ok())
        .map(|m| StatusMember {
            id: format!("{:x}", m.id),
            name: m.name,
            peer_urls: m.peer_urls,
            client_urls: m.client_urls,
            is_learner: m.is_learner,
        })
        .collect();
    let ids: Vec<u64> = members
        .iter()
        .filter_map(|m| u64::from_str_radix(&m.id, 16).ok())
        .collect();
    let text = |v: Option<&[u8]>| v.map(|b| String::from_utf8_lossy(b).into_owned());
    Status {
        hash: s.crc,
        revision: s.revision,
        total_key: s.total_key,
        total_size: db.size(),
        hash_trailer: hash,
        page_size: db.page_size(),
        txid: db.meta().txid,
        buckets: s.stats.buckets,
        latest_revision_key: s.latest.map(|r| format!("{}_{}", r.main, r.sub)),
        consistent_index: s.meta_value(META_CONSISTENT_INDEX).and_then(be_u64),
        term: s.meta_value(META_TERM).and_then(be_u64),
        storage_version: text(s.meta_value(META_STORAGE_VERSION)),
        cluster_version: text(
            s.cluster
                .iter()
                .find(|(k, _)| k == CLUSTER_VERSION)
                .map(|(_, v)| v.as_slice()),
        ),
        cluster_id_from_members: (!ids.is_empty()).then(|| format!("{:x}", cluster_id(&ids))),
        members,
    }
}

/// Reads and checks a snapshot file (or a raw db) and reports its status.
pub fn status(
    path: &std::path::Path,
    skip_hash_check: bool,
    progress: &mut Progress,
) -> Result<Status, SnapshotError> {
    let snap = SnapshotFile::open(path)?;
    let (hash, db, survey) = snap.verify(skip_hash_check, true, progress)?;
    Ok(build_status(&db, &survey, hash))
}
