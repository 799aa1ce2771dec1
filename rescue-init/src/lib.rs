//! rescue-init: restores a Kubernetes control plane from an etcd backup.
//!
//! Pure logic (formats, planning, rewriting) lives apart from effects (files, syscalls,
//! network) so that most of it is tested without root or a VM.
#![deny(unsafe_code)]

pub mod archive;
pub mod blockdev;
pub mod cli;
pub mod config;
pub mod discover;
pub mod errors;
pub mod exec;
pub mod formats;
pub mod kmod;
pub mod logger;
pub mod net;
pub mod pem;
pub mod pid1;
pub mod plan;
pub mod progress;
pub mod recover;
pub mod report;
pub mod rewrite;
pub mod snapshot;
pub mod source;
pub mod sys;
