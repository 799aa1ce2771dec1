//! The chokepoint for every system call with a side effect on the machine (mounts, module
//! loading, power, sync) and for the few clock and polling helpers the boot code needs.
//!
//! `linux.rs` is the real implementation; `fake.rs` records calls for tests. Code above this
//! layer never calls rustix/libc directly for these effects.
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod fake;
pub mod linux;

pub use fake::FakeSys;
pub use linux::LinuxSys;

/// Errors of the `Sys` layer: one variant per call, carrying the path it was about.
#[derive(Debug, thiserror::Error)]
pub enum SysError {
    #[error("mount {source_spec} on {target} (type {fstype})")]
    Mount {
        source_spec: String,
        target: PathBuf,
        fstype: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("open module {path}")]
    OpenModule {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("finit_module {path}")]
    FinitModule {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reboot({action:?})")]
    Reboot {
        action: PowerAction,
        #[source]
        source: std::io::Error,
    },
    #[error("create directory {path}")]
    Mkdir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SysError {
    /// The errno behind this error, when there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            SysError::Mount { source, .. }
            | SysError::Unmount { source, .. }
            | SysError::OpenModule { source, .. }
            | SysError::FinitModule { source, .. }
            | SysError::Reboot { source, .. }
            | SysError::Mkdir { source, .. } => source.raw_os_error(),
        }
    }
}

/// What to do with the machine at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Reboot,
    PowerOff,
}

/// Mount options that the boot code uses (a closed set, mapped to MS_* flags in `linux.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MountOpts {
    pub read_only: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
}

impl MountOpts {
    /// Read-write, no restrictions.
    pub const RW: MountOpts = MountOpts {
        read_only: false,
        nosuid: false,
        nodev: false,
        noexec: false,
    };
    /// Read-only.
    pub const RO: MountOpts = MountOpts {
        read_only: true,
        nosuid: false,
        nodev: false,
        noexec: false,
    };
    /// nosuid,nodev,noexec: for proc and sysfs.
    pub const PSEUDO: MountOpts = MountOpts {
        read_only: false,
        nosuid: true,
        nodev: true,
        noexec: true,
    };
}

/// Side-effecting system calls used by the boot side (PID 1, worker, module loader).
pub trait Sys {
    /// mount(2). `data` is the fs-specific option string ("" for none).
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        opts: MountOpts,
        data: &str,
    ) -> Result<(), SysError>;
    /// umount2(2) without flags.
    fn umount(&self, target: &Path) -> Result<(), SysError>;
    /// Open `path` and load it with finit_module(2).
    fn finit_module(&self, path: &Path, params: &str) -> Result<(), SysError>;
    /// mkdir -p.
    fn mkdir_all(&self, path: &Path) -> Result<(), SysError>;
    /// sync(2).
    fn sync(&self);
    /// reboot(2). Returns only on error.
    fn reboot(&self, action: PowerAction) -> Result<(), SysError>;
    /// Whether `path` exists now (device nodes appear in devtmpfs without mknod).
    fn exists(&self, path: &Path) -> bool;
    /// Monotonic time since boot.
    fn uptime(&self) -> Duration;
    /// Sleep (a no-op clock advance in the fake).
    fn sleep(&self, d: Duration);
}

/// Poll until `path` exists or `timeout` passes; true when it appeared.
pub fn wait_for_path(sys: &dyn Sys, path: &Path, timeout: Duration, step: Duration) -> bool {
    let deadline = sys.uptime() + timeout;
    loop {
        if sys.exists(path) {
            return true;
        }
        if sys.uptime() >= deadline {
            return false;
        }
        sys.sleep(step);
    }
}
