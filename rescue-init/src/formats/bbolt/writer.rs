//! A copy-on-write commit, as bbolt's own commit does it: new nodes are appended after the
//! high-water mark, old pages are abandoned (the freelist sentinel makes bbolt rebuild the
//! freelist by scanning), and a new meta with txid + 1 is written last, to page
//! `(txid + 1) % 2`.
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::page::{
    encode_node, node_size, BucketHeader, Meta, NodeKind, NodeView, NO_FREELIST, PAGE_HEADER_SIZE,
};
use super::reader::{BucketRoot, Db, ReadAt};
use super::BboltError;

/// Positional writes.
pub trait WriteAt {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

impl<T: WriteAt + ?Sized> WriteAt for &T {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        (**self).write_all_at(buf, offset)
    }
}

impl WriteAt for File {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(self, buf, offset)
    }
}

impl WriteAt for std::cell::RefCell<Vec<u8>> {
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut v = self.borrow_mut();
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start + buf.len();
        if v.len() < end {
            v.resize(end, 0);
        }
        v[start..end].copy_from_slice(buf);
        Ok(())
    }
}

/// One key/value of a leaf (flags is [`super::BUCKET_LEAF_FLAG`] for a sub-bucket value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafItem {
    pub flags: u32,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl LeafItem {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        LeafItem {
            flags: 0,
            key: key.into(),
            value: value.into(),
        }
    }
}

/// A commit in progress on top of `db`, writing new pages into `out` (which already holds a
/// copy of the database's pages).
pub struct Commit<'a, R: ReadAt + ?Sized, W: WriteAt> {
    db: &'a Db<R>,
    out: &'a W,
    next: u64,
    ps: usize,
}

type Item<'b> = (u32, &'b [u8], &'b [u8]);

impl<'a, R: ReadAt + ?Sized, W: WriteAt> Commit<'a, R, W> {
    pub fn new(db: &'a Db<R>, out: &'a W) -> Self {
        Commit {
            db,
            out,
            next: db.meta().pgid,
            ps: db.page_size() as usize,
        }
    }

    /// Writes one node at the next free page id and returns that id.
    fn write_node(&mut self, kind: NodeKind, items: &[Item<'_>]) -> Result<u64, BboltError> {
        let size = node_size(kind, items);
        let pages = size.div_ceil(self.ps).max(1);
        let pgid = self.next;
        let overflow = u32::try_from(pages - 1)
            .map_err(|_| BboltError::corrupt(pgid, "node too large to write"))?;
        let bytes = encode_node(kind, pgid, items, pages * self.ps, overflow);
        let off = pgid * self.ps as u64;
        self.out
            .write_all_at(&bytes, off)
            .map_err(|source| BboltError::Write {
                offset: off,
                source,
            })?;
        self.next += pages as u64;
        Ok(pgid)
    }

    /// Splits `items` into nodes of at most one page each (a single oversized item gets a node
    /// of its own with overflow pages), writes them, and returns (first key, pgid) per node.
    fn write_level(
        &mut self,
        kind: NodeKind,
        items: &[Item<'_>],
    ) -> Result<Vec<(Vec<u8>, u64)>, BboltError> {
        let mut out = Vec::new();
        let mut start = 0;
        while start < items.len() || (start == 0 && items.is_empty()) {
            let mut end = start;
            let mut size = PAGE_HEADER_SIZE;
            while end < items.len() && end - start < 0xFFFE {
                let s = node_size(kind, &items[end..=end]) - PAGE_HEADER_SIZE;
                if end > start && size + s > self.ps {
                    break;
                }
                size += s;
                end += 1;
            }
            let pgid = self.write_node(kind, &items[start..end])?;
            out.push((
                items.get(start).map(|i| i.1.to_vec()).unwrap_or_default(),
                pgid,
            ));
            if items.is_empty() {
                break;
            }
            start = end;
        }
        Ok(out)
    }

    /// Builds branch levels over `children` until one root remains; returns the root pgid.
    fn write_branches(&mut self, mut children: Vec<(Vec<u8>, u64)>) -> Result<u64, BboltError> {
        while children.len() > 1 {
            let ids: Vec<[u8; 8]> = children.iter().map(|(_, p)| p.to_le_bytes()).collect();
            let items: Vec<Item<'_>> = children
                .iter()
                .zip(&ids)
                .map(|((k, _), id)| (0, k.as_slice(), &id[..]))
                .collect();
            children = self.write_level(NodeKind::Branch, &items)?;
        }
        children
            .first()
            .map(|(_, p)| *p)
            .ok_or_else(|| BboltError::corrupt(self.next, "no node written"))
    }

    /// Writes a whole tree for sorted `items` and returns its root page id.
    pub fn write_tree(&mut self, items: &[LeafItem]) -> Result<u64, BboltError> {
        let refs: Vec<Item<'_>> = items
            .iter()
            .map(|i| (i.flags, i.key.as_slice(), i.value.as_slice()))
            .collect();
        let leaves = self.write_level(NodeKind::Leaf, &refs)?;
        self.write_branches(leaves)
    }

    /// The value of a bucket holding sorted `items`: inline when it fits in a quarter page (as
    /// bbolt decides), else a header pointing at a newly written tree.
    pub fn bucket_value(
        &mut self,
        items: &[LeafItem],
        sequence: u64,
    ) -> Result<Vec<u8>, BboltError> {
        let refs: Vec<Item<'_>> = items
            .iter()
            .map(|i| (i.flags, i.key.as_slice(), i.value.as_slice()))
            .collect();
        let size = node_size(NodeKind::Leaf, &refs);
        if size <= self.ps / 4 && items.iter().all(|i| i.flags == 0) {
            let mut v = BucketHeader { root: 0, sequence }.to_bytes().to_vec();
            v.extend_from_slice(&encode_node(NodeKind::Leaf, 0, &refs, size, 0));
            return Ok(v);
        }
        let root = self.write_tree(items)?;
        Ok(BucketHeader { root, sequence }.to_bytes().to_vec())
    }

    /// Appends `item`, whose key is above every key of the bucket, by copying the path to the
    /// bucket's last leaf; returns the new bucket value.
    pub fn append_to_bucket(
        &mut self,
        root: &BucketRoot,
        item: LeafItem,
    ) -> Result<Vec<u8>, BboltError> {
        let (root_pgid, sequence) = match root {
            BucketRoot::Inline { .. } => {
                let mut items = Vec::new();
                self.db.for_each(root, &mut |k, v| {
                    items.push(LeafItem::new(k, v));
                    Ok(())
                })?;
                items.push(item);
                return self.bucket_value(&items, root.sequence());
            }
            BucketRoot::Paged { root, sequence } => (*root, *sequence),
        };
        let path = self.db.last_path(root_pgid)?;
        let mut replacement: Option<Vec<(Vec<u8>, u64)>> = None;
        for (depth, buf) in path.iter().enumerate().rev() {
            let pgid = if depth == 0 { root_pgid } else { 0 };
            let node = NodeView::new(buf, pgid)?;
            match replacement.take() {
                None => {
                    let mut owned = Vec::with_capacity(node.count + 1);
                    for i in 0..node.count {
                        let e = node.leaf(i)?;
                        owned.push((e.flags, e.key, e.value));
                    }
                    if owned.last().is_some_and(|l| l.1 >= item.key.as_slice()) {
                        return Err(BboltError::KeyOrder {
                            pgid,
                            what: "appended key is not above the last key".to_string(),
                        });
                    }
                    owned.push((item.flags, &item.key, &item.value));
                    replacement = Some(self.write_level(NodeKind::Leaf, &owned)?);
                }
                Some(children) => {
                    let mut keys = Vec::with_capacity(node.count + children.len());
                    for i in 0..node.count.saturating_sub(1) {
                        let e = node.branch(i)?;
                        keys.push((e.key.to_vec(), e.child));
                    }
                    keys.extend(children);
                    let ids: Vec<[u8; 8]> = keys.iter().map(|(_, p)| p.to_le_bytes()).collect();
                    let items: Vec<Item<'_>> = keys
                        .iter()
                        .zip(&ids)
                        .map(|((k, _), id)| (0, k.as_slice(), &id[..]))
                        .collect();
                    replacement = Some(self.write_level(NodeKind::Branch, &items)?);
                }
            }
        }
        let new_root = self.write_branches(replacement.unwrap_or_default())?;
        Ok(BucketHeader {
            root: new_root,
            sequence,
        }
        .to_bytes()
        .to_vec())
    }

    /// Writes the root bucket tree holding `buckets` (sorted by name, values from
    /// [`Self::bucket_value`] or copied), then the new meta, and returns it. The caller syncs
    /// the data pages before, and the meta page after, as bbolt does.
    pub fn finish(mut self, buckets: &[LeafItem]) -> Result<Meta, BboltError> {
        let root = self.write_tree(buckets)?;
        let old = self.db.meta();
        let meta = Meta {
            root: BucketHeader {
                root,
                sequence: old.root.sequence,
            },
            freelist: NO_FREELIST,
            pgid: self.next,
            txid: old.txid + 1,
            ..*old
        };
        Ok(meta)
    }

    /// Writes the meta page for `meta` (after the data pages are durable).
    pub fn write_meta(out: &W, meta: &Meta) -> Result<(), BboltError> {
        let pgid = meta.txid % 2;
        let page = meta.encode_page(pgid);
        let off = pgid * u64::from(meta.page_size);
        out.write_all_at(&page, off)
            .map_err(|source| BboltError::Write {
                offset: off,
                source,
            })
    }
}

/// Builds, in memory, a new database holding `buckets` (name, sorted items): the four-page
/// layout of a fresh bbolt file plus one commit. For tests and fuzzing seeds.
pub fn build_image(ps: u32, buckets: &[(&str, Vec<LeafItem>)]) -> Result<Vec<u8>, BboltError> {
    let meta = Meta {
        magic: super::MAGIC,
        version: 2,
        page_size: ps,
        flags: 0,
        root: BucketHeader {
            root: 3,
            sequence: 0,
        },
        freelist: NO_FREELIST,
        pgid: 4,
        txid: 1,
        checksum: 0,
    };
    let p = ps as usize;
    let mut img = vec![0u8; 4 * p];
    img[..p].copy_from_slice(&Meta { txid: 0, ..meta }.encode_page(0));
    img[p..2 * p].copy_from_slice(&meta.encode_page(1));
    img[3 * p..].copy_from_slice(&encode_node(NodeKind::Leaf, 3, &[], p, 0));
    let db = Db::open(img.clone(), img.len() as u64)?;
    let out = std::cell::RefCell::new(img.clone());
    let mut c = Commit::new(&db, &out);
    let mut values = Vec::new();
    for (name, items) in buckets {
        let value = c.bucket_value(items, 0)?;
        values.push(LeafItem {
            flags: super::BUCKET_LEAF_FLAG,
            key: name.as_bytes().to_vec(),
            value,
        });
    }
    values.sort_by(|a, b| a.key.cmp(&b.key));
    let meta = c.finish(&values)?;
    Commit::<Vec<u8>, _>::write_meta(&out, &meta)?;
    Ok(out.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::bbolt::{Visit, BUCKET_LEAF_FLAG};

    #[derive(Default)]
    struct Collect(Vec<(String, Vec<u8>, Vec<u8>)>);
    impl Visit for Collect {
        fn bucket(&mut self, _: &[u8], _: &BucketRoot) {}
        fn item(&mut self, b: &[u8], k: &[u8], v: &[u8]) {
            self.0.push((
                String::from_utf8_lossy(b).into_owned(),
                k.to_vec(),
                v.to_vec(),
            ));
        }
    }

    fn items(n: usize, vlen: usize) -> Vec<LeafItem> {
        (0..n)
            .map(|i| LeafItem::new(format!("k{i:08}"), vec![b'v'; vlen + i % 7]))
            .collect()
    }

    #[test]
    fn written_trees_read_back_and_pass_the_checks() {
        for ps in [512u32, 4096, 16384] {
            let big = items(3000, 100);
            let huge = vec![
                LeafItem::new("a", vec![1u8; 3 * ps as usize + 5]),
                LeafItem::new("b", "x"),
            ];
            let img = build_image(
                ps,
                &[
                    ("big", big.clone()),
                    ("huge", huge.clone()),
                    ("small", items(2, 3)),
                ],
            )
            .expect("build");
            let db = Db::open(img.clone(), img.len() as u64).expect("open");
            let mut c = Collect::default();
            let stats = db.walk(&mut c).expect("walk");
            assert_eq!(stats.buckets, 3);
            assert_eq!(c.0.len(), 3000 + 2 + 2);
            let got_big: Vec<_> =
                c.0.iter()
                    .filter(|x| x.0 == "big")
                    .map(|x| x.1.clone())
                    .collect();
            assert_eq!(
                got_big,
                big.iter().map(|i| i.key.clone()).collect::<Vec<_>>()
            );
            assert!(stats.max_depth >= 2, "3000 items must need a branch level");
        }
    }

    #[test]
    fn append_to_paged_and_inline_buckets() {
        let ps = 512;
        let img =
            build_image(ps, &[("key", items(500, 20)), ("tiny", items(1, 1))]).expect("build");
        let db = Db::open(img.clone(), img.len() as u64).expect("open");
        let out = std::cell::RefCell::new(img.clone());
        let mut c = Commit::new(&db, &out);
        let mut values = Vec::new();
        for (name, root) in db.buckets().expect("buckets") {
            let v = c
                .append_to_bucket(&root, LeafItem::new("z-last", "end"))
                .expect("append");
            values.push(LeafItem {
                flags: BUCKET_LEAF_FLAG,
                key: name,
                value: v,
            });
        }
        let meta = c.finish(&values).expect("finish");
        Commit::<Vec<u8>, _>::write_meta(&out, &meta).expect("meta");
        let img2 = out.into_inner();
        let db2 = Db::open(img2.clone(), img2.len() as u64).expect("reopen");
        assert_eq!(db2.meta().txid, db.meta().txid + 1);
        let mut col = Collect::default();
        db2.walk(&mut col).expect("walk after append");
        let keys: Vec<_> = col
            .0
            .iter()
            .filter(|x| x.0 == "key")
            .map(|x| x.1.clone())
            .collect();
        assert_eq!(keys.len(), 501);
        assert_eq!(keys.last().map(Vec::as_slice), Some(&b"z-last"[..]));
        assert_eq!(col.0.iter().filter(|x| x.0 == "tiny").count(), 2);
    }

    #[test]
    fn corruption_is_detected() {
        let img = build_image(512, &[("key", items(200, 20))]).expect("build");
        let db = Db::open(img.clone(), img.len() as u64).expect("open");
        let last_page = db.meta().pgid - 1;
        // Truncated file.
        let short = img[..img.len() - 512].to_vec();
        assert!(matches!(
            Db::open(short.clone(), short.len() as u64),
            Err(BboltError::Truncated { .. })
        ));
        // Every single-byte flip in the data pages is either harmless padding or detected;
        // never a panic.
        let mut detected = 0;
        for off in (2 * 512..img.len()).step_by(37) {
            let mut bad = img.clone();
            bad[off] ^= 0x40;
            if let Ok(db) = Db::open(bad.clone(), bad.len() as u64) {
                if db.walk(&mut Collect::default()).is_err() {
                    detected += 1;
                }
            } else {
                detected += 1;
            }
        }
        assert!(detected > 0);
        // A page id pointing at itself twice.
        let mut twice = img.clone();
        let p = (last_page * 512) as usize;
        twice[p..p + 8].copy_from_slice(&0u64.to_le_bytes());
        let db = Db::open(twice.clone(), twice.len() as u64).expect("meta still valid");
        assert!(db.walk(&mut Collect::default()).is_err());
    }
}
