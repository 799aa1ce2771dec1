//! The etcd backend schema a restore touches: bucket and key names, revision keys.

pub const BUCKET_KEY: &[u8] = b"key";
pub const BUCKET_META: &[u8] = b"meta";
pub const BUCKET_MEMBERS: &[u8] = b"members";
pub const BUCKET_MEMBERS_REMOVED: &[u8] = b"members_removed";
pub const BUCKET_CLUSTER: &[u8] = b"cluster";

pub const META_CONSISTENT_INDEX: &[u8] = b"consistent_index";
pub const META_TERM: &[u8] = b"term";
pub const META_SCHEDULED_COMPACT: &[u8] = b"scheduledCompactRev";
pub const META_STORAGE_VERSION: &[u8] = b"storageVersion";
pub const CLUSTER_VERSION: &[u8] = b"clusterVersion";

/// A revision: `main` is the etcd revision, `sub` the index inside its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Revision {
    pub main: u64,
    pub sub: u64,
}

impl Revision {
    /// Decodes a `key` bucket key: `BE8(main) '_' BE8(sub)`, plus `'t'` for a tombstone.
    pub fn from_key(k: &[u8]) -> Option<(Self, bool)> {
        if !(k.len() == 17 || (k.len() == 18 && k[17] == b't')) || k[8] != b'_' {
            return None;
        }
        let main = u64::from_be_bytes(k[0..8].try_into().ok()?);
        let sub = u64::from_be_bytes(k[9..17].try_into().ok()?);
        Some((Revision { main, sub }, k.len() == 18))
    }

    /// Encodes the 17-byte key form.
    pub fn to_key(self) -> Vec<u8> {
        let mut k = Vec::with_capacity(17);
        k.extend_from_slice(&self.main.to_be_bytes());
        k.push(b'_');
        k.extend_from_slice(&self.sub.to_be_bytes());
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revision_keys() {
        let r = Revision { main: 6, sub: 1 };
        let k = r.to_key();
        assert_eq!(Revision::from_key(&k), Some((r, false)));
        let mut t = k.clone();
        t.push(b't');
        assert_eq!(Revision::from_key(&t), Some((r, true)));
        assert_eq!(Revision::from_key(b"short"), None);
        assert!(Revision { main: 1, sub: 9 }.to_key() < Revision { main: 2, sub: 0 }.to_key());
    }
}
