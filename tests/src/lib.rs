//! Shared harness for integration tests against real etcd servers (no mocks), and builders of
//! simulated host roots and (hostile) archives.
//!
//! - [`tools`]: finds the etcd binaries that `scripts/install-deps.sh` links into a tools dir,
//!   and decides whether a test skips (etcd missing) or fails (`RESCUE_REQUIRE_ETCD=1`).
//! - [`etcd`]: starts clusters of real etcd processes on free loopback ports, in temp dirs,
//!   waits for health and kills every process on drop.
//! - [`ctl`]: etcdctl helpers (writes, leases, compaction, auth, snapshot save) and a
//!   [`ctl::ServerState`] read back from a running server (members, every key, revision).
//! - [`restorer`]: the programs that turn a snapshot into a data dir (`etcdutl` and
//!   `rescue-init`), behind one interface so every test runs with either.
//! - [`fixtures`]: snapshots made at test time by real servers.
//! - [`etcdsnap`]: one quick real snapshot from etcd on PATH (discovery tests).
//! - [`hostroot`], [`tarw`], [`zipw`]: simulated host roots and archives.
//!
//! This is test code: failures panic with the context needed to debug them (etcd logs included).

pub mod ctl;
pub mod etcd;
pub mod etcdsnap;
pub mod fixtures;
pub mod hostroot;
pub mod recovery;
pub mod restorer;
pub mod tarw;
pub mod tools;
pub mod util;
pub mod zipw;

pub use ctl::{Ctl, Kv, MemberInfo, ServerState};
pub use etcd::{EtcdCluster, EtcdOpts, MemberSpec};
pub use restorer::{RestoreArgs, Restorer};
pub use tools::{Tools, Version};

/// Gets the [`Tools`] or returns from the calling test after printing why it is skipped
/// (panics instead when `RESCUE_REQUIRE_ETCD=1`).
#[macro_export]
macro_rules! require_etcd {
    () => {
        match $crate::tools::Tools::require() {
            Some(t) => t,
            None => return,
        }
    };
}
