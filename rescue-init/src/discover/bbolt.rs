//! Recognising an etcd snapshot (a bbolt file) by content, and a streaming check of one.
//!
//! Only what discovery needs: the meta page and the optional SHA-256 trailer that
//! `etcdctl snapshot save` appends. The restore engine does the full structural check.
//!
//! ```text
//! page 0 (and page 1, at offset page_size):
//!  0        8       10      12        16                                     80
//!  | id u64 | flags | count | overflow | meta (64 B)                           |
//!            0x0004 = meta page
//! meta:  0 magic u32 = 0xED0CDAED | 4 version u32 = 2 | 8 page_size u32 | 12 flags u32
//!       16 root bucket (root pgid u64, sequence u64) | 32 freelist pgid u64 | 40 high-water pgid u64
//!       48 txid u64 | 56 checksum u64 = FNV-1a-64 of meta[0..56]
//! snapshot-save file: <bbolt bytes> <sha256 of them, 32 B>, so its size % 512 == 32
//! ```
//! Source: etcd-restore-format.md §5 and bbolt `internal/common/meta.go`; the trailer rule is
//! etcdutl `snapshot/v3_snapshot.go` (`hasChecksum := size%512 == sha256.Size`).

use sha2::{Digest, Sha256};

const MAGIC: u32 = 0xED0C_DAED;
const VERSION: u32 = 2;
const META_FLAG: u16 = 0x04;
/// Bytes of page 0 needed to check the meta: page header (16) + meta (64).
pub const META_END: usize = 80;

/// The fields of a valid meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MetaInfo {
    pub page_size: u32,
    pub txid: u64,
    pub high_water: u64,
}

/// Why bytes are not a valid bbolt meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BboltError {
    #[error("shorter than a meta page")]
    TooShort,
    #[error("no bbolt magic")]
    NoMagic,
    #[error("page is not flagged as a meta page")]
    NotMeta,
    #[error("unsupported bbolt version {0}")]
    Version(u32),
    #[error("implausible page size {0}")]
    PageSize(u32),
    #[error("meta checksum mismatch")]
    Checksum,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .unwrap_or(0)
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// FNV-1a, 64 bit.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// True when the bytes carry the bbolt magic and version where page 0 keeps them: enough to
/// call the file a bbolt file (maybe a damaged one).
pub fn has_magic(head: &[u8]) -> bool {
    head.len() >= 24 && u32_at(head, 16) == MAGIC && u32_at(head, 20) == VERSION
}

/// Checks a meta page given from its page header on.
pub fn parse_meta(page: &[u8]) -> Result<MetaInfo, BboltError> {
    if page.len() < META_END {
        return Err(BboltError::TooShort);
    }
    let meta = page.get(16..META_END).ok_or(BboltError::TooShort)?;
    if u32_at(meta, 0) != MAGIC {
        return Err(BboltError::NoMagic);
    }
    if u16_at(page, 8) & META_FLAG == 0 {
        return Err(BboltError::NotMeta);
    }
    let version = u32_at(meta, 4);
    if version != VERSION {
        return Err(BboltError::Version(version));
    }
    let page_size = u32_at(meta, 8);
    if !(512..=(1 << 20)).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(BboltError::PageSize(page_size));
    }
    if fnv1a64(meta.get(..56).unwrap_or_default()) != u64_at(meta, 56) {
        return Err(BboltError::Checksum);
    }
    Ok(MetaInfo {
        page_size,
        txid: u64_at(meta, 48),
        high_water: u64_at(meta, 40),
    })
}

/// Outcome of the SHA-256 trailer check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashCheck {
    /// Size % 512 != 32: a raw db without trailer; restoring it needs skip-hash-check.
    Absent,
    Matches,
    Mismatch,
    /// Not computed (the data was not read in full).
    NotChecked,
}

/// Result of streaming a snapshot through [`SnapshotCheck`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotReport {
    pub size: u64,
    /// The meta of page 0, or of page 1 when page 0 is damaged.
    pub meta: Result<MetaInfo, BboltError>,
    pub hash: HashCheck,
}

impl SnapshotReport {
    /// Why this snapshot cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        match (&self.meta, self.hash) {
            (Err(p), _) => Some(format!("not a valid bbolt file: {p}")),
            (_, HashCheck::Mismatch) => Some("sha256 trailer does not match the data".into()),
            _ => None,
        }
    }
}

/// Capture enough of the start to reach page 1's meta for page sizes up to 64 KiB.
const CAPTURE: usize = (64 << 10) + META_END;

/// A `Write` sink that checks a snapshot as it streams by: meta pages, size, and the SHA-256
/// trailer (hash of everything but the last 32 bytes, compared with those bytes).
pub struct SnapshotCheck {
    head: Vec<u8>,
    hasher: Option<Sha256>,
    tail: Vec<u8>,
    size: u64,
}

impl SnapshotCheck {
    /// `hash`: compute the trailer check (costs one SHA-256 pass over the data).
    pub fn new(hash: bool) -> Self {
        SnapshotCheck {
            head: Vec::new(),
            hasher: hash.then(Sha256::new),
            tail: Vec::new(),
            size: 0,
        }
    }

    /// The report; `complete` says whether the whole stream was written.
    pub fn finish(self, complete: bool) -> SnapshotReport {
        let meta = match parse_meta(&self.head) {
            Ok(m) => Ok(m),
            Err(first) => {
                // bbolt falls back to page 1 when page 0 is bad.
                let ps = usize::try_from(u32_at(&self.head, 24)).unwrap_or(0);
                match self.head.get(ps..).filter(|_| ps >= 512).map(parse_meta) {
                    Some(Ok(m)) => Ok(m),
                    _ => Err(first),
                }
            }
        };
        let hash = if !complete {
            HashCheck::NotChecked
        } else if self.size % 512 != 32 {
            HashCheck::Absent
        } else if let Some(h) = self.hasher {
            if h.finalize().as_slice() == self.tail.as_slice() {
                HashCheck::Matches
            } else {
                HashCheck::Mismatch
            }
        } else {
            HashCheck::NotChecked
        };
        SnapshotReport {
            size: self.size,
            meta,
            hash,
        }
    }
}

impl std::io::Write for SnapshotCheck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.size += buf.len() as u64;
        if self.head.len() < CAPTURE {
            let take = (CAPTURE - self.head.len()).min(buf.len());
            self.head
                .extend_from_slice(buf.get(..take).unwrap_or_default());
        }
        if let Some(h) = self.hasher.as_mut() {
            // Keep the last 32 bytes out of the hash until we know they are the last.
            if buf.len() >= 32 {
                h.update(&self.tail);
                let (body, last) = buf.split_at(buf.len() - 32);
                h.update(body);
                self.tail.clear();
                self.tail.extend_from_slice(last);
            } else {
                self.tail.extend_from_slice(buf);
                if self.tail.len() > 32 {
                    let extra = self.tail.len() - 32;
                    h.update(self.tail.get(..extra).unwrap_or_default());
                    self.tail.drain(..extra);
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds a small bbolt-like file for discovery tests: two valid meta pages (txid 0 and 1),
/// a freelist page and an empty leaf, `page_size` 4096, plus the SHA-256 trailer if asked.
/// It passes [`parse_meta`]; it is not a db the restore engine can open.
pub fn synthetic(with_trailer: bool, salt: u64) -> Vec<u8> {
    const PS: usize = 4096;
    let mut out = vec![0u8; PS * 4];
    for (pgid, txid) in [(0usize, salt * 2), (1usize, salt * 2 + 1)] {
        let page = out
            .get_mut(pgid * PS..pgid * PS + META_END)
            .unwrap_or_default();
        page[..8].copy_from_slice(&(pgid as u64).to_le_bytes());
        page[8..10].copy_from_slice(&META_FLAG.to_le_bytes());
        let meta = &mut page[16..];
        meta[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        meta[4..8].copy_from_slice(&VERSION.to_le_bytes());
        meta[8..12].copy_from_slice(&(PS as u32).to_le_bytes());
        meta[16..24].copy_from_slice(&3u64.to_le_bytes()); // root bucket page
        meta[32..40].copy_from_slice(&2u64.to_le_bytes()); // freelist page
        meta[40..48].copy_from_slice(&4u64.to_le_bytes()); // high-water mark
        meta[48..56].copy_from_slice(&txid.to_le_bytes());
        let sum = fnv1a64(&meta[..56]);
        meta[56..64].copy_from_slice(&sum.to_le_bytes());
    }
    out[2 * PS..2 * PS + 8].copy_from_slice(&2u64.to_le_bytes());
    out[2 * PS + 8..2 * PS + 10].copy_from_slice(&0x10u16.to_le_bytes()); // freelist page
    out[3 * PS..3 * PS + 8].copy_from_slice(&3u64.to_le_bytes());
    out[3 * PS + 8..3 * PS + 10].copy_from_slice(&0x02u16.to_le_bytes()); // leaf page
    if with_trailer {
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn check(data: &[u8], chunk: usize) -> SnapshotReport {
        let mut c = SnapshotCheck::new(true);
        for part in data.chunks(chunk.max(1)) {
            c.write_all(part).expect("write");
        }
        c.finish(true)
    }

    #[test]
    fn synthetic_passes_and_trailer_checks_in_any_chunking() {
        let data = synthetic(true, 7);
        assert_eq!(data.len() % 512, 32);
        for chunk in [1, 7, 31, 32, 33, 4096, 1 << 20] {
            let r = check(&data, chunk);
            assert_eq!(r.hash, HashCheck::Matches, "chunk {chunk}");
            assert_eq!(r.meta.map(|m| (m.page_size, m.txid)), Ok((4096, 14)));
        }
    }

    #[test]
    fn raw_db_has_no_trailer() {
        let r = check(&synthetic(false, 1), 1000);
        assert_eq!(r.hash, HashCheck::Absent);
        assert!(r.problem().is_none());
    }

    #[test]
    fn flipped_byte_fails_hash() {
        let mut data = synthetic(true, 1);
        data[3 * 4096 + 100] ^= 1;
        let r = check(&data, 4096);
        assert_eq!(r.hash, HashCheck::Mismatch);
        assert!(r.problem().is_some_and(|p| p.contains("sha256")));
    }

    #[test]
    fn damaged_page0_falls_back_to_page1() {
        let mut data = synthetic(false, 1);
        data[16 + 48] ^= 0xff; // txid of page 0: checksum no longer matches
        assert_eq!(parse_meta(&data), Err(BboltError::Checksum));
        let r = check(&data, 4096);
        assert_eq!(r.meta.map(|m| m.txid), Ok(3));
    }

    #[test]
    fn not_bbolt() {
        assert_eq!(parse_meta(&[0u8; 100]), Err(BboltError::NoMagic));
        assert_eq!(parse_meta(&[0u8; 10]), Err(BboltError::TooShort));
        let mut data = synthetic(false, 1);
        data[20] = 3;
        assert_eq!(parse_meta(&data), Err(BboltError::Version(3)));
        assert!(!has_magic(b"hello"));
    }
}
