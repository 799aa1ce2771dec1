//! Pure parsers and encoders of the on-disk formats rescue-init reads and writes.
//!
//! Nothing here opens files by path or makes syscalls other than positional reads through the
//! [`bbolt::ReadAt`] trait, so every format is tested on bytes made in memory.
pub mod bbolt;
pub mod etcd;
