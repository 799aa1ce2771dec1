//! The WAL a restore writes: one segment `0000000000000000-0000000000000000.wal` holding a CRC
//! record, the metadata (member and cluster ID), an empty snapshot marker, one ConfChange entry
//! per member, the hard state, and the snapshot marker at index N.
//!
//! ```text
//! frame: u64 LE length (top byte 0x80|pad when padded) | walpb.Record | zero pad to 8
//! walpb.Record{type=1, crc=2 (CRC-32C chained over all record data), data=3}
//! ```
use super::cluster::InitialCluster;
use super::proto::{conf_change_add, conf_state, entry, field_bytes, field_varint, hard_state};

/// Size etcd preallocates for a WAL segment.
pub const SEGMENT_SIZE: u64 = 64 * 1000 * 1000;
/// Name of the first segment.
pub const FIRST_SEGMENT: &str = "0000000000000000-0000000000000000.wal";

const TYPE_METADATA: u64 = 1;
const TYPE_ENTRY: u64 = 2;
const TYPE_STATE: u64 = 3;
const TYPE_CRC: u64 = 4;
const TYPE_SNAPSHOT: u64 = 5;
const ENTRY_CONF_CHANGE: u64 = 1;

struct Encoder {
    out: Vec<u8>,
    crc: u32,
}

impl Encoder {
    fn record(&mut self, kind: u64, data: Option<&[u8]>) {
        let mut rec = Vec::new();
        field_varint(&mut rec, 1, kind);
        if let Some(d) = data {
            self.crc = crc32c::crc32c_append(self.crc, d);
        }
        field_varint(&mut rec, 2, u64::from(self.crc));
        if let Some(d) = data {
            field_bytes(&mut rec, 3, d);
        }
        let n = rec.len() as u64;
        let pad = (8 - n % 8) % 8;
        let len_field = if pad > 0 { n | ((0x80 | pad) << 56) } else { n };
        self.out.extend_from_slice(&len_field.to_le_bytes());
        self.out.extend_from_slice(&rec);
        self.out.resize(self.out.len() + pad as usize, 0);
    }
}

/// walpb.Snapshot{index, term, conf_state?}.
fn wal_snapshot(index: u64, term: u64, voters: Option<&[u64]>) -> Vec<u8> {
    let mut out = Vec::new();
    field_varint(&mut out, 1, index);
    field_varint(&mut out, 2, term);
    if let Some(v) = voters {
        field_bytes(&mut out, 3, &conf_state(v));
    }
    out
}

/// The used part of the WAL for a restore of `cluster` where `local` is this member's ID.
pub fn encode(cluster: &InitialCluster, local: u64) -> Vec<u8> {
    let mut e = Encoder {
        out: Vec::new(),
        crc: 0,
    };
    e.record(TYPE_CRC, None);
    let mut meta = Vec::new();
    field_varint(&mut meta, 1, local);
    field_varint(&mut meta, 2, cluster.cluster_id);
    e.record(TYPE_METADATA, Some(&meta));
    e.record(TYPE_SNAPSHOT, Some(&wal_snapshot(0, 0, None)));
    for (i, m) in cluster.members.iter().enumerate() {
        let cc = conf_change_add(m.id, m.json().as_bytes());
        e.record(
            TYPE_ENTRY,
            Some(&entry(ENTRY_CONF_CHANGE, 1, i as u64 + 1, &cc)),
        );
    }
    let n = cluster.members.len() as u64;
    let ids: Vec<u64> = cluster.members.iter().map(|m| m.id).collect();
    let vote = ids.iter().copied().min().unwrap_or(0);
    e.record(TYPE_STATE, Some(&hard_state(1, vote, n)));
    e.record(TYPE_SNAPSHOT, Some(&wal_snapshot(n, 1, Some(&ids))));
    e.out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WAL `etcdutl snapshot restore` 3.5.1 writes for `newm=http://127.0.0.1:23480`.
    const ETCDUTL_ONE_MEMBER: &str = concat!(
        "04000000000000840804100000000000200000000000000008011097f796d3061a1608da97b9a589",
        "9e9eb6d40110a6fb8ac7dfacbab0aa010e00000000000082080510f4e3b1e0031a04080010000000",
        "720000000000008608021088ea9cc10c1a6808011001180122600800100018da97b9a5899e9eb6d4",
        "01224f7b226964223a31353330363734323230383230373430383039302c227065657255524c7322",
        "3a5b22687474703a2f2f3132372e302e302e313a3233343830225d2c226e616d65223a226e65776d",
        "227d00000000000018000000000000000803109087fc151a0f080110da97b9a5899e9eb6d4011801",
        "1d00000000000083080510c7d0e0d60d1a13080110011a0d08da97b9a5899e9eb6d4012800000000",
    );

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn byte_identical_to_etcdutl() {
        let c =
            InitialCluster::parse("newm=http://127.0.0.1:23480", "etcd-cluster").expect("parse");
        let w = encode(&c, c.members[0].id);
        assert_eq!(w.len(), 280);
        assert_eq!(hex(&w), ETCDUTL_ONE_MEMBER);
    }
}
