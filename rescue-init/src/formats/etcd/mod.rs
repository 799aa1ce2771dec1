//! etcd's on-disk formats around a restore: member and cluster IDs, the member records in the
//! backend, the WAL and the `.snap` file. Pure: bytes in, bytes out.
pub mod cluster;
pub mod gojson;
pub mod proto;
pub mod schema;
pub mod snapfile;
pub mod wal;

pub use cluster::{ClusterError, InitialCluster, Member};
