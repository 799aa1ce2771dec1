//! rescue-init: restores a Kubernetes control plane from an etcd backup.
//!
//! Pure logic (formats, planning, rewriting) lives apart from effects (files, syscalls,
//! network) so that most of it is tested without root or a VM.
#![deny(unsafe_code)]

pub mod blockdev;
pub mod cli;
pub mod kmod;
pub mod logger;
pub mod pid1;
pub mod sys;
