//! Shared harness for integration tests (real etcd servers), and builders of simulated host
//! roots and (hostile) archives.

pub mod etcdsnap;
pub mod hostroot;
pub mod tarw;
pub mod zipw;
