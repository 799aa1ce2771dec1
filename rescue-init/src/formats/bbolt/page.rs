//! Page, meta and node layouts of bbolt, as pure functions over byte slices.
//!
//! All integers are little-endian (bbolt writes native endianness; big-endian files are out of
//! scope). Every accessor checks bounds and returns [`BboltError`] rather than panicking.
use super::BboltError;

/// Magic number in every meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only file format version bbolt has written.
pub const VERSION: u32 = 2;
/// Size of the header at the start of every page and inline page.
pub const PAGE_HEADER_SIZE: usize = 16;
/// Size of one branch or leaf element.
pub const ELEMENT_SIZE: usize = 16;
/// Meta value of `freelist` meaning "no freelist stored; rebuild it by scanning".
pub const NO_FREELIST: u64 = u64::MAX;
/// Leaf element flag: the value is a bucket.
pub const BUCKET_LEAF_FLAG: u32 = 0x01;
/// Size of the bucket header (`root`, `sequence`) at the start of a bucket value.
pub const BUCKET_HEADER_SIZE: usize = 16;

pub(crate) const FLAG_BRANCH: u16 = 0x01;
pub(crate) const FLAG_LEAF: u16 = 0x02;
pub(crate) const FLAG_META: u16 = 0x04;
pub(crate) const FLAG_FREELIST: u16 = 0x10;

/// Offset of the meta structure inside a meta page, and its encoded size.
const META_OFFSET: usize = PAGE_HEADER_SIZE;
const META_SIZE: usize = 64;

pub(crate) fn le_u16(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}
pub(crate) fn le_u32(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}
pub(crate) fn le_u64(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The 16-byte header of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    pub id: u64,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
}

impl PageHeader {
    /// Parses the header at the start of `b`.
    pub fn parse(b: &[u8], pgid: u64) -> Result<Self, BboltError> {
        let short = || BboltError::corrupt(pgid, "page header is truncated");
        Ok(PageHeader {
            id: le_u64(b, 0).ok_or_else(short)?,
            flags: le_u16(b, 8).ok_or_else(short)?,
            count: le_u16(b, 10).ok_or_else(short)?,
            overflow: le_u32(b, 12).ok_or_else(short)?,
        })
    }

    /// Encodes the header into the first 16 bytes of `out`.
    pub fn write(&self, out: &mut [u8]) {
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..10].copy_from_slice(&self.flags.to_le_bytes());
        out[10..12].copy_from_slice(&self.count.to_le_bytes());
        out[12..16].copy_from_slice(&self.overflow.to_le_bytes());
    }
}

/// A bucket header: the root page of the bucket's tree (0 for an inline bucket) and its
/// sequence counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BucketHeader {
    pub root: u64,
    pub sequence: u64,
}

impl BucketHeader {
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(BucketHeader {
            root: le_u64(b, 0)?,
            sequence: le_u64(b, 8)?,
        })
    }

    pub fn to_bytes(self) -> [u8; BUCKET_HEADER_SIZE] {
        let mut out = [0u8; BUCKET_HEADER_SIZE];
        out[..8].copy_from_slice(&self.root.to_le_bytes());
        out[8..].copy_from_slice(&self.sequence.to_le_bytes());
        out
    }
}

/// The meta structure stored in pages 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    pub root: BucketHeader,
    pub freelist: u64,
    pub pgid: u64,
    pub txid: u64,
    pub checksum: u64,
}

/// FNV-1a, 64 bit, as bbolt uses for the meta checksum.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl Meta {
    /// Parses the meta in a meta page (`page` starts at the page header).
    pub fn parse(page: &[u8]) -> Option<Self> {
        let m = page.get(META_OFFSET..META_OFFSET + META_SIZE)?;
        Some(Meta {
            magic: le_u32(m, 0)?,
            version: le_u32(m, 4)?,
            page_size: le_u32(m, 8)?,
            flags: le_u32(m, 12)?,
            root: BucketHeader::parse(m.get(16..32)?)?,
            freelist: le_u64(m, 32)?,
            pgid: le_u64(m, 40)?,
            txid: le_u64(m, 48)?,
            checksum: le_u64(m, 56)?,
        })
    }

    fn encode_body(&self) -> [u8; META_SIZE] {
        let mut m = [0u8; META_SIZE];
        m[0..4].copy_from_slice(&self.magic.to_le_bytes());
        m[4..8].copy_from_slice(&self.version.to_le_bytes());
        m[8..12].copy_from_slice(&self.page_size.to_le_bytes());
        m[12..16].copy_from_slice(&self.flags.to_le_bytes());
        m[16..32].copy_from_slice(&self.root.to_bytes());
        m[32..40].copy_from_slice(&self.freelist.to_le_bytes());
        m[40..48].copy_from_slice(&self.pgid.to_le_bytes());
        m[48..56].copy_from_slice(&self.txid.to_le_bytes());
        m[56..64].copy_from_slice(&self.checksum.to_le_bytes());
        m
    }

    /// The checksum bbolt expects: FNV-1a over the 56 bytes before the checksum field.
    pub fn compute_checksum(&self) -> u64 {
        fnv1a64(&self.encode_body()[..56])
    }

    /// Checks magic, version and checksum, as bbolt's `meta.validate` does.
    pub fn validate(&self) -> Result<(), String> {
        if self.magic != MAGIC {
            return Err(format!("bad magic {:#010x}", self.magic));
        }
        if self.version != VERSION {
            return Err(format!("unsupported version {}", self.version));
        }
        if self.checksum != self.compute_checksum() {
            return Err("checksum mismatch".to_string());
        }
        Ok(())
    }

    /// Encodes a complete meta page of `page_size` bytes for page id `pgid`, checksum included.
    pub fn encode_page(&self, pgid: u64) -> Vec<u8> {
        let mut m = *self;
        m.checksum = m.compute_checksum();
        let mut page = vec![0u8; self.page_size as usize];
        PageHeader {
            id: pgid,
            flags: FLAG_META,
            count: 0,
            overflow: 0,
        }
        .write(&mut page);
        page[META_OFFSET..META_OFFSET + META_SIZE].copy_from_slice(&m.encode_body());
        page
    }
}

/// Whether a node holds leaf items or branch pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Branch,
    Leaf,
}

/// A checked view of a branch or leaf node: the page header plus the bytes of the node
/// (all its pages, or an inline page).
#[derive(Debug, Clone, Copy)]
pub struct NodeView<'a> {
    pub pgid: u64,
    pub kind: NodeKind,
    pub count: usize,
    bytes: &'a [u8],
}

/// One leaf element: flags, key, value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeafElem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// One branch element: the smallest key of the child subtree and the child's page id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BranchElem<'a> {
    pub key: &'a [u8],
    pub child: u64,
}

impl<'a> NodeView<'a> {
    /// Wraps node bytes (starting at the page header). `pgid` is used in error messages only.
    pub fn new(bytes: &'a [u8], pgid: u64) -> Result<Self, BboltError> {
        let h = PageHeader::parse(bytes, pgid)?;
        let kind = match h.flags {
            FLAG_BRANCH => NodeKind::Branch,
            FLAG_LEAF => NodeKind::Leaf,
            f => {
                return Err(BboltError::corrupt(
                    pgid,
                    format!("expected a branch or leaf page, found flags {f:#06x}"),
                ))
            }
        };
        let count = usize::from(h.count);
        if PAGE_HEADER_SIZE + count * ELEMENT_SIZE > bytes.len() {
            return Err(BboltError::corrupt(
                pgid,
                format!("{count} elements do not fit in {} bytes", bytes.len()),
            ));
        }
        Ok(NodeView {
            pgid,
            kind,
            count,
            bytes,
        })
    }

    fn elem_off(&self, i: usize) -> usize {
        PAGE_HEADER_SIZE + i * ELEMENT_SIZE
    }

    fn slice(&self, start: usize, len: usize, i: usize) -> Result<&'a [u8], BboltError> {
        start
            .checked_add(len)
            .and_then(|end| self.bytes.get(start..end))
            .ok_or_else(|| {
                BboltError::corrupt(self.pgid, format!("element {i} points outside the page"))
            })
    }

    /// The i-th leaf element. `i` must be below `count` and the node a leaf.
    pub fn leaf(&self, i: usize) -> Result<LeafElem<'a>, BboltError> {
        let off = self.elem_off(i);
        let e = self.slice(off, ELEMENT_SIZE, i)?;
        let (flags, pos, ksize, vsize) = (
            le_u32(e, 0).unwrap_or(0),
            le_u32(e, 4).unwrap_or(0) as usize,
            le_u32(e, 8).unwrap_or(0) as usize,
            le_u32(e, 12).unwrap_or(0) as usize,
        );
        let kstart = off + pos;
        let key = self.slice(kstart, ksize, i)?;
        let value = self.slice(kstart + ksize, vsize, i)?;
        Ok(LeafElem { flags, key, value })
    }

    /// The i-th branch element. `i` must be below `count` and the node a branch.
    pub fn branch(&self, i: usize) -> Result<BranchElem<'a>, BboltError> {
        let off = self.elem_off(i);
        let e = self.slice(off, ELEMENT_SIZE, i)?;
        let (pos, ksize) = (
            le_u32(e, 0).unwrap_or(0) as usize,
            le_u32(e, 4).unwrap_or(0) as usize,
        );
        let child = le_u64(e, 8).unwrap_or(0);
        let key = self.slice(off + pos, ksize, i)?;
        Ok(BranchElem { key, child })
    }
}

/// Encodes a node (branch or leaf) into `total_len` bytes for page id `pgid`, spanning
/// `overflow + 1` pages. `items` are (flags, key, value) for leaves and (0, key, child pgid as
/// 8 LE bytes) for branches. The caller sizes `total_len` with [`node_size`] and keeps the
/// item count below 0xFFFF.
pub(crate) fn encode_node(
    kind: NodeKind,
    pgid: u64,
    items: &[(u32, &[u8], &[u8])],
    total_len: usize,
    overflow: u32,
) -> Vec<u8> {
    let mut out = vec![0u8; total_len];
    let count = items.len();
    let mut data = PAGE_HEADER_SIZE + count * ELEMENT_SIZE;
    for (i, (flags, key, value)) in items.iter().enumerate() {
        let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        let pos = (data - off) as u32;
        match kind {
            NodeKind::Leaf => {
                out[off..off + 4].copy_from_slice(&flags.to_le_bytes());
                out[off + 4..off + 8].copy_from_slice(&pos.to_le_bytes());
                out[off + 8..off + 12].copy_from_slice(&(key.len() as u32).to_le_bytes());
                out[off + 12..off + 16].copy_from_slice(&(value.len() as u32).to_le_bytes());
                out[data..data + key.len()].copy_from_slice(key);
                data += key.len();
                out[data..data + value.len()].copy_from_slice(value);
                data += value.len();
            }
            NodeKind::Branch => {
                out[off..off + 4].copy_from_slice(&pos.to_le_bytes());
                out[off + 4..off + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
                out[off + 8..off + 16].copy_from_slice(value);
                out[data..data + key.len()].copy_from_slice(key);
                data += key.len();
            }
        }
    }
    let flags = match kind {
        NodeKind::Branch => FLAG_BRANCH,
        NodeKind::Leaf => FLAG_LEAF,
    };
    let count = u16::try_from(count).unwrap_or(u16::MAX);
    PageHeader {
        id: pgid,
        flags,
        count,
        overflow,
    }
    .write(&mut out);
    out
}

/// Encoded size of a node holding `items` (header, elements, keys and values).
pub(crate) fn node_size(kind: NodeKind, items: &[(u32, &[u8], &[u8])]) -> usize {
    PAGE_HEADER_SIZE
        + items
            .iter()
            .map(|(_, k, v)| {
                ELEMENT_SIZE
                    + k.len()
                    + match kind {
                        NodeKind::Leaf => v.len(),
                        NodeKind::Branch => 0,
                    }
            })
            .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn meta_round_trip_and_validation() {
        let m = Meta {
            magic: MAGIC,
            version: VERSION,
            page_size: 4096,
            flags: 0,
            root: BucketHeader {
                root: 3,
                sequence: 0,
            },
            freelist: NO_FREELIST,
            pgid: 4,
            txid: 7,
            checksum: 0,
        };
        let page = m.encode_page(1);
        assert_eq!(page.len(), 4096);
        let h = PageHeader::parse(&page, 1).expect("header");
        assert_eq!((h.id, h.flags), (1, FLAG_META));
        let back = Meta::parse(&page).expect("meta");
        assert!(back.validate().is_ok());
        assert_eq!(back.pgid, 4);
        let mut bad = page.clone();
        bad[60] ^= 1; // inside pgid
        assert!(Meta::parse(&bad).expect("meta").validate().is_err());
    }

    #[test]
    fn leaf_encode_parse() {
        let items: Vec<(u32, &[u8], &[u8])> =
            vec![(0, b"a", b"1"), (0, b"bb", b""), (1, b"c", b"xyz")];
        let size = node_size(NodeKind::Leaf, &items);
        assert_eq!(size, 16 + 3 * 16 + 2 + 2 + 4);
        let bytes = encode_node(NodeKind::Leaf, 9, &items, 4096, 0);
        let n = NodeView::new(&bytes, 9).expect("node");
        assert_eq!((n.kind, n.count), (NodeKind::Leaf, 3));
        let e = n.leaf(2).expect("elem");
        assert_eq!((e.flags, e.key, e.value), (1, &b"c"[..], &b"xyz"[..]));
        assert_eq!(n.leaf(1).expect("elem").value, b"");
    }

    #[test]
    fn hostile_element_is_an_error_not_a_panic() {
        let items: Vec<(u32, &[u8], &[u8])> = vec![(0, b"a", b"1")];
        let mut bytes = encode_node(NodeKind::Leaf, 2, &items, 64, 0);
        bytes[16 + 8..16 + 12].copy_from_slice(&u32::MAX.to_le_bytes()); // ksize
        let n = NodeView::new(&bytes, 2).expect("node");
        assert!(n.leaf(0).is_err());
        let mut many = encode_node(NodeKind::Leaf, 2, &items, 64, 0);
        many[10..12].copy_from_slice(&500u16.to_le_bytes());
        assert!(NodeView::new(&many, 2).is_err());
    }
}
