//! A recording `Sys` for tests: every call is appended to a log, results are scripted, and
//! time is virtual (sleep advances the clock), so timeouts are tested without waiting.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::{MountOpts, PowerAction, Sys, SysError};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
        opts: MountOpts,
        data: String,
    },
    Umount(PathBuf),
    FinitModule(PathBuf),
    MkdirAll(PathBuf),
    Sync,
    Reboot(PowerAction),
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    module_errno: BTreeMap<PathBuf, i32>,
    mount_errno: BTreeMap<PathBuf, i32>,
    existing: BTreeSet<PathBuf>,
    /// Paths that start to exist once the virtual clock reaches the given time.
    appear_at: BTreeMap<PathBuf, Duration>,
    now: Duration,
}

/// Recording implementation of `Sys`.
#[derive(Debug, Default)]
pub struct FakeSys {
    state: Mutex<State>,
}

impl FakeSys {
    /// A fake with no scripted failures and an empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock only means another test thread panicked; the data is still usable.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Make `finit_module(path)` fail with `errno`.
    pub fn fail_module(&self, path: impl Into<PathBuf>, errno: i32) {
        self.with(|s| s.module_errno.insert(path.into(), errno));
    }

    /// Make `mount(.., target, ..)` fail with `errno`.
    pub fn fail_mount(&self, target: impl Into<PathBuf>, errno: i32) {
        self.with(|s| s.mount_errno.insert(target.into(), errno));
    }

    /// Make `path` exist from now on.
    pub fn add_path(&self, path: impl Into<PathBuf>) {
        self.with(|s| s.existing.insert(path.into()));
    }

    /// Make `path` exist once the virtual clock reaches `at`.
    pub fn add_path_at(&self, path: impl Into<PathBuf>, at: Duration) {
        self.with(|s| s.appear_at.insert(path.into(), at));
    }

    /// All calls so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }
}

fn os_err(errno: i32) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno)
}

impl Sys for FakeSys {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        opts: MountOpts,
        data: &str,
    ) -> Result<(), SysError> {
        self.with(|s| {
            s.calls.push(Call::Mount {
                source: source.to_owned(),
                target: target.to_owned(),
                fstype: fstype.to_owned(),
                opts,
                data: data.to_owned(),
            });
            match s.mount_errno.get(target) {
                Some(&e) => Err(SysError::Mount {
                    source_spec: source.to_owned(),
                    target: target.to_owned(),
                    fstype: fstype.to_owned(),
                    source: os_err(e),
                }),
                None => Ok(()),
            }
        })
    }

    fn umount(&self, target: &Path) -> Result<(), SysError> {
        self.with(|s| s.calls.push(Call::Umount(target.to_owned())));
        Ok(())
    }

    fn finit_module(&self, path: &Path, _params: &str) -> Result<(), SysError> {
        self.with(|s| {
            s.calls.push(Call::FinitModule(path.to_owned()));
            match s.module_errno.get(path) {
                Some(&e) => Err(SysError::FinitModule {
                    path: path.to_owned(),
                    source: os_err(e),
                }),
                None => Ok(()),
            }
        })
    }

    fn mkdir_all(&self, path: &Path) -> Result<(), SysError> {
        self.with(|s| {
            s.calls.push(Call::MkdirAll(path.to_owned()));
            s.existing.insert(path.to_owned());
        });
        Ok(())
    }

    fn sync(&self) {
        self.with(|s| s.calls.push(Call::Sync));
    }

    fn reboot(&self, action: PowerAction) -> Result<(), SysError> {
        self.with(|s| s.calls.push(Call::Reboot(action)));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        self.with(|s| {
            s.existing.contains(path) || s.appear_at.get(path).is_some_and(|&at| s.now >= at)
        })
    }

    fn uptime(&self) -> Duration {
        self.with(|s| s.now)
    }

    fn sleep(&self, d: Duration) {
        self.with(|s| s.now += d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::wait_for_path;

    #[test]
    fn wait_for_path_sees_a_late_device_and_times_out_on_a_missing_one() {
        let sys = FakeSys::new();
        sys.add_path_at("/dev/vda", Duration::from_millis(350));
        let step = Duration::from_millis(100);
        assert!(wait_for_path(
            &sys,
            Path::new("/dev/vda"),
            Duration::from_secs(1),
            step
        ));
        assert_eq!(sys.uptime(), Duration::from_millis(400));
        assert!(!wait_for_path(
            &sys,
            Path::new("/dev/vdb"),
            Duration::from_secs(1),
            step
        ));
        assert!(sys.uptime() >= Duration::from_millis(1400));
    }

    #[test]
    fn scripted_module_failure_carries_the_errno() {
        let sys = FakeSys::new();
        sys.fail_module("/m/a.ko", 19);
        let err = sys.finit_module(Path::new("/m/a.ko"), "");
        assert_eq!(err.err().and_then(|e| e.raw_os_error()), Some(19));
        assert!(sys.finit_module(Path::new("/m/b.ko"), "").is_ok());
        assert_eq!(
            sys.calls(),
            vec![
                Call::FinitModule("/m/a.ko".into()),
                Call::FinitModule("/m/b.ko".into())
            ]
        );
    }
}
