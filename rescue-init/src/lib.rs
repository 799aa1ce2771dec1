//! rescue-init: restores a Kubernetes control plane from an etcd backup.
//!
//! Pure logic (formats, planning, rewriting) lives apart from effects (files, syscalls,
//! network) so that most of it is tested without root or a VM.
#![deny(unsafe_code)]

pub mod cli;
pub mod formats;
pub mod progress;
pub mod snapshot;
pub mod source;
