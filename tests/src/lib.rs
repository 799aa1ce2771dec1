//! Shared harness for integration tests (real etcd servers).
