//! The real `Sys`, on rustix's safe wrappers (no `unsafe` is needed for any of these calls).
use std::ffi::CString;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use rustix::mount::{MountFlags, UnmountFlags};
use rustix::system::RebootCommand;
use rustix::time::{clock_gettime, ClockId};

use super::{MountOpts, PowerAction, Sys, SysError};

/// `Sys` on the running Linux kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSys;

fn flags(opts: MountOpts) -> MountFlags {
    let mut f = MountFlags::empty();
    if opts.read_only {
        f |= MountFlags::RDONLY;
    }
    if opts.nosuid {
        f |= MountFlags::NOSUID;
    }
    if opts.nodev {
        f |= MountFlags::NODEV;
    }
    if opts.noexec {
        f |= MountFlags::NOEXEC;
    }
    f
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what} holds a NUL byte"),
    )
}

impl Sys for LinuxSys {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        opts: MountOpts,
        data: &str,
    ) -> Result<(), SysError> {
        let err = |source_err: std::io::Error| SysError::Mount {
            source_spec: source.to_owned(),
            target: target.to_owned(),
            fstype: fstype.to_owned(),
            source: source_err,
        };
        let data_c = CString::new(data).map_err(|_| err(invalid("mount data")))?;
        let data_opt = if data.is_empty() {
            None
        } else {
            Some(data_c.as_c_str())
        };
        rustix::mount::mount(source, target, fstype, flags(opts), data_opt)
            .map_err(|e| err(e.into()))
    }

    fn umount(&self, target: &Path) -> Result<(), SysError> {
        rustix::mount::unmount(target, UnmountFlags::empty()).map_err(|e| SysError::Unmount {
            target: target.to_owned(),
            source: e.into(),
        })
    }

    fn finit_module(&self, path: &Path, params: &str) -> Result<(), SysError> {
        let file = File::open(path).map_err(|source| SysError::OpenModule {
            path: path.to_owned(),
            source,
        })?;
        let params_c = CString::new(params).map_err(|_| SysError::FinitModule {
            path: path.to_owned(),
            source: invalid("module parameters"),
        })?;
        rustix::system::finit_module(&file, &params_c, 0).map_err(|e| SysError::FinitModule {
            path: path.to_owned(),
            source: e.into(),
        })
    }

    fn mkdir_all(&self, path: &Path) -> Result<(), SysError> {
        std::fs::create_dir_all(path).map_err(|source| SysError::Mkdir {
            path: path.to_owned(),
            source,
        })
    }

    fn sync(&self) {
        rustix::fs::sync();
    }

    fn reboot(&self, action: PowerAction) -> Result<(), SysError> {
        let cmd = match action {
            PowerAction::Reboot => RebootCommand::Restart,
            PowerAction::PowerOff => RebootCommand::PowerOff,
        };
        rustix::system::reboot(cmd).map_err(|e| SysError::Reboot {
            action,
            source: e.into(),
        })
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn uptime(&self) -> Duration {
        let ts = clock_gettime(ClockId::Monotonic);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
        Duration::new(secs, nanos)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}
