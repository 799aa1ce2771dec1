//! bbolt, the B+tree file etcd keeps its data in: page layout, a checking reader and a
//! copy-on-write writer.
//!
//! ```text
//!  page 0: meta (txid even/odd)   page 1: meta      page 2..pgid-1: branch, leaf, freelist pages
//! +--------+------------------+  +--------+-----+  +--------+-------------------+-------------+
//! | header | meta (64 bytes)  |  | header | ... |  | header | elements 16 B each | keys/values |
//! +--------+------------------+  +--------+-----+  +--------+-------------------+-------------+
//!  header = id u64 | flags u16 | count u16 | overflow u32      (all little-endian)
//! ```
//! A node occupies `overflow + 1` consecutive pages. Buckets are trees whose root is a page,
//! or, for small buckets, an inline leaf page stored in the parent's value.
mod page;
mod reader;
mod writer;

pub use page::{
    BucketHeader, Meta, NodeKind, NodeView, PageHeader, BUCKET_LEAF_FLAG, MAGIC, NO_FREELIST,
    PAGE_HEADER_SIZE,
};
pub use reader::{BucketRoot, Db, ReadAhead, ReadAt, Visit, WalkStats};
pub use writer::{build_image, Commit, LeafItem, WriteAt};

use thiserror::Error;

/// Everything that can be wrong with a bbolt file. Each variant names the page involved.
#[derive(Debug, Error)]
pub enum BboltError {
    #[error("file is too small to be a bbolt database ({len} bytes)")]
    TooSmall { len: u64 },
    #[error("no valid meta page: {reason}")]
    NoValidMeta { reason: String },
    #[error("unsupported page size {0} (must be a power of two from 512 to 65536)")]
    BadPageSize(u32),
    #[error("file is truncated: the meta page says {needed} bytes ({pgid} pages of {page_size}), the file has {len}")]
    Truncated {
        needed: u64,
        pgid: u64,
        page_size: u32,
        len: u64,
    },
    #[error("page {pgid}: {what}")]
    Corrupt { pgid: u64, what: String },
    #[error("page {pgid} is referenced twice")]
    DoubleReference { pgid: u64 },
    #[error("bucket tree deeper than {0} levels")]
    TooDeep(usize),
    #[error("key order violated in page {pgid}: {what}")]
    KeyOrder { pgid: u64, what: String },
    #[error("node at page {pgid} is {size} bytes, larger than the supported {limit}")]
    NodeTooLarge { pgid: u64, size: u64, limit: u64 },
    #[error("bucket {0:?} not found")]
    MissingBucket(String),
    #[error("read failed at offset {offset}")]
    Read {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed at offset {offset}")]
    Write {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
}

impl BboltError {
    pub(crate) fn corrupt(pgid: u64, what: impl Into<String>) -> Self {
        BboltError::Corrupt {
            pgid,
            what: what.into(),
        }
    }
}
