//! A checking bbolt reader that streams: it reads one node at a time with positional reads, so
//! memory stays bounded by the tree depth times the node size, whatever the file size.
//!
//! [`Db::walk`] visits every bucket and item in key order and checks what bbolt's `tx.Check`
//! checks: page ids in bounds and equal to the header id, page kinds, every page referenced
//! once, keys strictly increasing, and branch keys bounding their subtrees.
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::page::{
    BucketHeader, Meta, NodeKind, NodeView, PageHeader, BUCKET_HEADER_SIZE, BUCKET_LEAF_FLAG,
    FLAG_FREELIST, NO_FREELIST, PAGE_HEADER_SIZE,
};
use super::BboltError;

/// Largest node (a page and its overflow pages) read into memory. etcd values are limited by
/// `--max-request-bytes` (1.5 MiB by default), so real nodes stay far below this.
pub const MAX_NODE_BYTES: u64 = 32 << 20;
/// Deepest bucket tree accepted. bbolt trees of terabytes stay under 10 levels.
pub const MAX_DEPTH: usize = 32;

/// Positional reads from a file or a byte buffer.
pub trait ReadAt {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.as_slice().read_exact_at(buf, offset)
    }
}

/// A read-ahead window over another [`ReadAt`]: a walk of an etcd database reads pages mostly in
/// ascending order, so serving them from a window of `WINDOW` bytes turns hundreds of thousands of
/// page-sized reads into a few thousand large ones. Random reads bypass the window.
pub struct ReadAhead<R> {
    inner: R,
    len: u64,
    window: std::cell::RefCell<(u64, Vec<u8>)>,
}

const WINDOW: usize = 1 << 20;

impl<R: ReadAt> ReadAhead<R> {
    /// Wraps `inner`, whose readable length is `len`.
    pub fn new(inner: R, len: u64) -> Self {
        ReadAhead {
            inner,
            len,
            window: std::cell::RefCell::new((0, Vec::new())),
        }
    }
}

impl<R: ReadAt> ReadAt for ReadAhead<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut w = self.window.borrow_mut();
        let (start, data) = &mut *w;
        let end = *start + data.len() as u64;
        let want_end = offset.saturating_add(buf.len() as u64);
        if offset >= *start && want_end <= end {
            let from = (offset - *start) as usize;
            buf.copy_from_slice(&data[from..from + buf.len()]);
            return Ok(());
        }
        // Refill when the read continues at or just past the window (a sequential pass); read
        // anything else directly and remember where it ended, to detect a new sequence.
        if buf.len() > WINDOW / 2 || offset < *start || offset >= end.saturating_add(WINDOW as u64)
        {
            *start = want_end;
            data.clear();
            return self.inner.read_exact_at(buf, offset);
        }
        let n = (WINDOW as u64).min(self.len.saturating_sub(offset)) as usize;
        if n < buf.len() {
            return self.inner.read_exact_at(buf, offset);
        }
        data.resize(n, 0);
        self.inner.read_exact_at(data, offset)?;
        *start = offset;
        buf.copy_from_slice(&data[..buf.len()]);
        Ok(())
    }
}

/// Where a bucket's tree lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRoot {
    /// A tree rooted at this page.
    Paged { root: u64, sequence: u64 },
    /// A single inline leaf page (the bytes after the bucket header).
    Inline { page: Vec<u8>, sequence: u64 },
}

impl BucketRoot {
    /// Parses a bucket value (bucket header, then an inline page when the root is 0).
    pub fn parse(value: &[u8], pgid: u64) -> Result<Self, BboltError> {
        let h = BucketHeader::parse(value)
            .ok_or_else(|| BboltError::corrupt(pgid, "bucket value shorter than its header"))?;
        if h.root == 0 {
            let page = value[BUCKET_HEADER_SIZE..].to_vec();
            if page.len() < PAGE_HEADER_SIZE {
                return Err(BboltError::corrupt(
                    pgid,
                    "inline bucket shorter than a page header",
                ));
            }
            Ok(BucketRoot::Inline {
                page,
                sequence: h.sequence,
            })
        } else {
            Ok(BucketRoot::Paged {
                root: h.root,
                sequence: h.sequence,
            })
        }
    }

    pub fn sequence(&self) -> u64 {
        match self {
            BucketRoot::Paged { sequence, .. } | BucketRoot::Inline { sequence, .. } => *sequence,
        }
    }
}

/// Receives the contents of a database in order.
pub trait Visit {
    /// A top-level bucket begins.
    fn bucket(&mut self, name: &[u8], root: &BucketRoot);
    /// An item of the current bucket, in key order.
    fn item(&mut self, bucket: &[u8], key: &[u8], value: &[u8]);
}

/// Counters gathered by a walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    pub buckets: u64,
    pub items: u64,
    pub pages: u64,
    pub max_depth: usize,
}

/// An open bbolt database over any [`ReadAt`].
pub struct Db<R: ?Sized> {
    page_size: u32,
    meta: Meta,
    data_len: u64,
    src: R,
}

fn valid_page_size(ps: u32) -> bool {
    ps.is_power_of_two() && (512..=65536).contains(&ps)
}

impl<R: ReadAt> Db<R> {
    /// Opens a database whose bytes are the first `data_len` bytes of `src` (a snapshot
    /// file's trailing sha256 is excluded by the caller). Picks the valid meta with the
    /// highest txid, as bbolt does, and checks the file holds every page the meta claims.
    pub fn open(src: R, data_len: u64) -> Result<Self, BboltError> {
        if data_len < 1024 {
            return Err(BboltError::TooSmall { len: data_len });
        }
        let read = |buf: &mut [u8], off: u64| {
            src.read_exact_at(buf, off)
                .map_err(|source| BboltError::Read {
                    offset: off,
                    source,
                })
        };
        // Page size: from meta 0 if it is valid, else search for meta 1 (bbolt getPageSize).
        let mut first = vec![0u8; 4096.min(data_len as usize)];
        read(&mut first, 0)?;
        let mut page_size = Meta::parse(&first)
            .filter(|m| m.validate().is_ok() && valid_page_size(m.page_size))
            .map(|m| m.page_size);
        if page_size.is_none() {
            for i in 0..15u32 {
                let off = 1024u64 << i;
                if off + 128 > data_len {
                    break;
                }
                let mut buf = [0u8; 128];
                read(&mut buf, off)?;
                if let Some(m) = Meta::parse(&buf) {
                    if m.validate().is_ok() && u64::from(m.page_size) == off {
                        page_size = Some(m.page_size);
                        break;
                    }
                }
            }
        }
        let page_size = page_size.ok_or_else(|| BboltError::NoValidMeta {
            reason: "neither meta page has the bbolt magic, version 2 and a valid checksum"
                .to_string(),
        })?;
        let ps = u64::from(page_size);
        let mut metas = Vec::new();
        let mut reasons = Vec::new();
        for pgid in 0..2u64 {
            if (pgid + 1) * ps > data_len {
                reasons.push(format!("meta {pgid}: beyond end of file"));
                continue;
            }
            let mut buf = vec![0u8; 128];
            read(&mut buf, pgid * ps)?;
            match Meta::parse(&buf)
                .ok_or_else(|| "unreadable".to_string())
                .and_then(|m| {
                    m.validate()?;
                    if m.page_size != page_size {
                        return Err(format!("page size {} differs", m.page_size));
                    }
                    Ok(m)
                }) {
                Ok(m) => metas.push(m),
                Err(e) => reasons.push(format!("meta {pgid}: {e}")),
            }
        }
        let meta =
            metas
                .into_iter()
                .max_by_key(|m| m.txid)
                .ok_or_else(|| BboltError::NoValidMeta {
                    reason: reasons.join("; "),
                })?;
        let needed = meta.pgid.saturating_mul(ps);
        if needed > data_len {
            return Err(BboltError::Truncated {
                needed,
                pgid: meta.pgid,
                page_size,
                len: data_len,
            });
        }
        if meta.pgid < 3 || meta.root.root < 2 || meta.root.root >= meta.pgid {
            return Err(BboltError::corrupt(
                meta.root.root,
                format!(
                    "root bucket page out of range (high-water mark {})",
                    meta.pgid
                ),
            ));
        }
        Ok(Db {
            page_size,
            meta,
            data_len,
            src,
        })
    }
}

impl<R: ReadAt> Db<R> {
    /// Opens a database with a meta the caller holds (one it is about to write), checked for
    /// magic, version, page size and bounds like one read from the file.
    pub fn open_with_meta(src: R, data_len: u64, meta: Meta) -> Result<Self, BboltError> {
        let mut meta = meta;
        meta.checksum = meta.compute_checksum();
        meta.validate()
            .map_err(|reason| BboltError::NoValidMeta { reason })?;
        if !valid_page_size(meta.page_size) {
            return Err(BboltError::BadPageSize(meta.page_size));
        }
        let needed = meta.pgid.saturating_mul(u64::from(meta.page_size));
        if needed > data_len {
            return Err(BboltError::Truncated {
                needed,
                pgid: meta.pgid,
                page_size: meta.page_size,
                len: data_len,
            });
        }
        Ok(Db {
            page_size: meta.page_size,
            meta,
            data_len,
            src,
        })
    }
}

impl<R: ReadAt + ?Sized> Db<R> {
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The meta in use (highest valid txid).
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Bytes covered by the meta's high-water mark: `pgid * page_size` (etcd's `totalSize`).
    pub fn size(&self) -> u64 {
        self.meta.pgid * u64::from(self.page_size)
    }

    /// Length of the data the database was opened on.
    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    pub fn source(&self) -> &R {
        &self.src
    }

    /// Reads the node at `pgid` (with its overflow pages) into `buf`, checking that it lies
    /// below the high-water mark and that its header names the same page id.
    pub fn read_node(&self, pgid: u64, buf: &mut Vec<u8>) -> Result<PageHeader, BboltError> {
        if pgid < 2 || pgid >= self.meta.pgid {
            return Err(BboltError::corrupt(
                pgid,
                format!("page id out of range (high-water mark {})", self.meta.pgid),
            ));
        }
        let ps = u64::from(self.page_size);
        buf.resize(self.page_size as usize, 0);
        let off = pgid * ps;
        self.src
            .read_exact_at(buf, off)
            .map_err(|source| BboltError::Read {
                offset: off,
                source,
            })?;
        let h = PageHeader::parse(buf, pgid)?;
        if h.id != pgid {
            return Err(BboltError::corrupt(
                pgid,
                format!("header says page id {}", h.id),
            ));
        }
        if h.overflow > 0 {
            let pages = u64::from(h.overflow) + 1;
            if pgid + pages > self.meta.pgid {
                return Err(BboltError::corrupt(
                    pgid,
                    format!("{} overflow pages run past the high-water mark", h.overflow),
                ));
            }
            let size = pages * ps;
            if size > MAX_NODE_BYTES {
                return Err(BboltError::NodeTooLarge {
                    pgid,
                    size,
                    limit: MAX_NODE_BYTES,
                });
            }
            buf.resize(size as usize, 0);
            let rest = off + ps;
            self.src
                .read_exact_at(&mut buf[self.page_size as usize..], rest)
                .map_err(|source| BboltError::Read {
                    offset: rest,
                    source,
                })?;
        }
        Ok(h)
    }

    /// The top-level buckets, in order: (name, root).
    pub fn buckets(&self) -> Result<Vec<(Vec<u8>, BucketRoot)>, BboltError> {
        let mut out = Vec::new();
        let mut walker = Walker::new(self, false);
        walker.tree(
            self.meta.root.root,
            0,
            None,
            None,
            &mut |_, flags, key, value, pgid| {
                if flags & BUCKET_LEAF_FLAG == 0 {
                    return Err(BboltError::corrupt(
                        pgid,
                        "the root bucket holds a plain key",
                    ));
                }
                out.push((key.to_vec(), BucketRoot::parse(value, pgid)?));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Reads every item of one bucket tree in order (no page accounting).
    pub fn for_each(&self, root: &BucketRoot, f: &mut KeyValueFn<'_>) -> Result<(), BboltError> {
        let mut walker = Walker::new(self, false);
        walker.bucket(root, &mut |_, flags, key, value, pgid| {
            if flags & BUCKET_LEAF_FLAG != 0 {
                return Err(BboltError::corrupt(
                    pgid,
                    "nested buckets are not supported",
                ));
            }
            f(key, value)
        })
    }

    /// Checks the whole database and visits every bucket and item in key order.
    pub fn walk(&self, visit: &mut dyn Visit) -> Result<WalkStats, BboltError> {
        let mut walker = Walker::new(self, true);
        // Meta pages and a stored freelist are referenced by the meta, not by the tree.
        walker.mark(0, 0)?;
        walker.mark(1, 0)?;
        if self.meta.freelist != NO_FREELIST {
            let mut buf = Vec::new();
            let fl = self.meta.freelist;
            if fl < 2 || fl >= self.meta.pgid {
                return Err(BboltError::corrupt(fl, "freelist page out of range"));
            }
            let ps = u64::from(self.page_size);
            buf.resize(PAGE_HEADER_SIZE, 0);
            self.src
                .read_exact_at(&mut buf, fl * ps)
                .map_err(|source| BboltError::Read {
                    offset: fl * ps,
                    source,
                })?;
            let h = PageHeader::parse(&buf, fl)?;
            if h.flags != FLAG_FREELIST || h.id != fl {
                return Err(BboltError::corrupt(
                    fl,
                    "meta points at a page that is not a freelist",
                ));
            }
            walker.mark(fl, h.overflow)?;
        }
        let buckets = {
            let mut names = Vec::new();
            let root = self.meta.root.root;
            walker.tree(root, 0, None, None, &mut |_, flags, key, value, pgid| {
                if flags & BUCKET_LEAF_FLAG == 0 {
                    return Err(BboltError::corrupt(
                        pgid,
                        "the root bucket holds a plain key",
                    ));
                }
                names.push((key.to_vec(), BucketRoot::parse(value, pgid)?));
                Ok(())
            })?;
            names
        };
        for (name, root) in &buckets {
            walker.stats.buckets += 1;
            visit.bucket(name, root);
            walker.bucket(root, &mut |_, flags, key, value, pgid| {
                if flags & BUCKET_LEAF_FLAG != 0 {
                    return Err(BboltError::corrupt(
                        pgid,
                        "nested buckets are not supported",
                    ));
                }
                visit.item(name, key, value);
                Ok(())
            })?;
        }
        Ok(walker.stats)
    }

    /// The last key of a bucket and the page path to it (root first), for appending.
    pub fn last_path(&self, root: u64) -> Result<Vec<Vec<u8>>, BboltError> {
        let mut path = Vec::new();
        let mut pgid = root;
        for _ in 0..MAX_DEPTH {
            let mut buf = Vec::new();
            self.read_node(pgid, &mut buf)?;
            let node = NodeView::new(&buf, pgid)?;
            let next = match node.kind {
                NodeKind::Leaf => None,
                NodeKind::Branch if node.count == 0 => {
                    return Err(BboltError::corrupt(pgid, "empty branch page"))
                }
                NodeKind::Branch => Some(node.branch(node.count - 1)?.child),
            };
            path.push(buf);
            match next {
                None => return Ok(path),
                Some(child) => pgid = child,
            }
        }
        Err(BboltError::TooDeep(MAX_DEPTH))
    }
}

/// Receives (key, value) of one bucket.
pub type KeyValueFn<'f> = dyn FnMut(&[u8], &[u8]) -> Result<(), BboltError> + 'f;

type ItemFn<'f> = dyn FnMut(usize, u32, &[u8], &[u8], u64) -> Result<(), BboltError> + 'f;

/// Depth-first, in-order traversal with the structural checks.
struct Walker<'d, R: ?Sized> {
    db: &'d Db<R>,
    /// One bit per page below the high-water mark, when page accounting is on.
    seen: Option<Vec<u64>>,
    prev: Vec<u8>,
    have_prev: bool,
    stats: WalkStats,
}

impl<'d, R: ReadAt + ?Sized> Walker<'d, R> {
    fn new(db: &'d Db<R>, account: bool) -> Self {
        let words = (db.meta.pgid as usize).div_ceil(64);
        Walker {
            db,
            seen: account.then(|| vec![0u64; words]),
            prev: Vec::new(),
            have_prev: false,
            stats: WalkStats::default(),
        }
    }

    fn mark(&mut self, pgid: u64, overflow: u32) -> Result<(), BboltError> {
        self.stats.pages += u64::from(overflow) + 1;
        if let Some(seen) = &mut self.seen {
            for p in pgid..=pgid + u64::from(overflow) {
                let (w, b) = ((p / 64) as usize, p % 64);
                let word = seen
                    .get_mut(w)
                    .ok_or_else(|| BboltError::corrupt(p, "page id beyond the high-water mark"))?;
                if *word & (1 << b) != 0 {
                    return Err(BboltError::DoubleReference { pgid: p });
                }
                *word |= 1 << b;
            }
        }
        Ok(())
    }

    fn bucket(&mut self, root: &BucketRoot, f: &mut ItemFn<'_>) -> Result<(), BboltError> {
        self.have_prev = false;
        match root {
            BucketRoot::Paged { root, .. } => self.tree(*root, 0, None, None, f),
            BucketRoot::Inline { page, .. } => {
                let node = NodeView::new(page, 0)?;
                if node.kind != NodeKind::Leaf {
                    return Err(BboltError::corrupt(0, "inline bucket is not a leaf"));
                }
                self.leaf(&node, 0, None, None, f)
            }
        }
    }

    fn tree(
        &mut self,
        pgid: u64,
        depth: usize,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        f: &mut ItemFn<'_>,
    ) -> Result<(), BboltError> {
        if depth >= MAX_DEPTH {
            return Err(BboltError::TooDeep(MAX_DEPTH));
        }
        self.stats.max_depth = self.stats.max_depth.max(depth + 1);
        let mut buf = Vec::new();
        let h = self.db.read_node(pgid, &mut buf)?;
        self.mark(pgid, h.overflow)?;
        let node = NodeView::new(&buf, pgid)?;
        match node.kind {
            NodeKind::Leaf => self.leaf(&node, depth, lower, upper, f),
            NodeKind::Branch => {
                if node.count == 0 {
                    return Err(BboltError::corrupt(pgid, "empty branch page"));
                }
                for i in 0..node.count {
                    let e = node.branch(i)?;
                    if i > 0 && e.key <= node.branch(i - 1)?.key {
                        return Err(BboltError::KeyOrder {
                            pgid,
                            what: format!("branch key {i} is not above key {}", i - 1),
                        });
                    }
                    if lower.is_some_and(|lo| e.key < lo) || upper.is_some_and(|up| e.key >= up) {
                        return Err(BboltError::KeyOrder {
                            pgid,
                            what: format!("branch key {i} lies outside its parent's range"),
                        });
                    }
                    let next = if i + 1 < node.count {
                        Some(node.branch(i + 1)?.key)
                    } else {
                        upper
                    };
                    self.tree(e.child, depth + 1, Some(e.key), next, f)?;
                }
                Ok(())
            }
        }
    }

    fn leaf(
        &mut self,
        node: &NodeView<'_>,
        depth: usize,
        lower: Option<&[u8]>,
        upper: Option<&[u8]>,
        f: &mut ItemFn<'_>,
    ) -> Result<(), BboltError> {
        let pgid = node.pgid;
        for i in 0..node.count {
            let e = node.leaf(i)?;
            if e.key.is_empty() {
                return Err(BboltError::corrupt(
                    pgid,
                    format!("element {i} has an empty key"),
                ));
            }
            if self.have_prev && e.key <= self.prev.as_slice() {
                return Err(BboltError::KeyOrder {
                    pgid,
                    what: format!("key {i} is not above the previous key"),
                });
            }
            if lower.is_some_and(|lo| e.key < lo) || upper.is_some_and(|up| e.key >= up) {
                return Err(BboltError::KeyOrder {
                    pgid,
                    what: format!("key {i} lies outside the range its branch key gives"),
                });
            }
            self.prev.clear();
            self.prev.extend_from_slice(e.key);
            self.have_prev = true;
            self.stats.items += 1;
            f(depth, e.flags, e.key, e.value, pgid)?;
        }
        Ok(())
    }
}
