//! The worker: everything PID 1 delegates to a child process so that a bug here can never
//! kill PID 1. It loads modules, waits for the host disk, mounts the host root read-write
//! (plus a separate /var from the host's fstab), runs the recovery hook, writes the JSON
//! report onto the host disk, syncs and unmounts. All effects go through `Sys`.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::cmdline::BootArgs;
use crate::blockdev::{self, fstab, spec, BlockDevice, DeviceSpec};
use crate::kmod::{self, Coldplug, Index, Loader};
use crate::sys::{MountOpts, Sys, SysError};

/// Error type a recovery hook may return.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// The recovery run on the mounted host root (`recover --root <mountpoint>`), with the
/// mounted boot media (read-only; searched for backups and CA files). Its JSON result goes
/// into the report. Any `Fn(&Path, &[PathBuf]) -> Result<Value, HookError>` is a hook.
pub trait RecoverHook {
    fn recover(&self, root: &Path, media: &[PathBuf]) -> Result<serde_json::Value, HookError>;
}

impl<F> RecoverHook for F
where
    F: Fn(&Path, &[PathBuf]) -> Result<serde_json::Value, HookError>,
{
    fn recover(&self, root: &Path, media: &[PathBuf]) -> Result<serde_json::Value, HookError> {
        self(root, media)
    }
}

/// Errors of the worker; each one ends the run as a failure.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("scan block devices")]
    Scan(#[source] blockdev::BlockdevError),
    #[error("no host disk: {wanted} did not appear within {waited_s} s (devices seen: {seen})")]
    NoHostDisk {
        wanted: String,
        waited_s: u64,
        seen: String,
    },
    #[error("mount host root {device} ({fstype}) on {target}")]
    MountRoot {
        device: String,
        fstype: String,
        target: PathBuf,
        #[source]
        source: Box<SysError>,
    },
    #[error("host fstab entry {spec} for {mountpoint}: {reason}")]
    Fstab {
        spec: String,
        mountpoint: String,
        reason: String,
    },
    #[error("mount {device} on {target}")]
    MountExtra {
        device: String,
        target: PathBuf,
        #[source]
        source: Box<SysError>,
    },
    #[error("recovery on {root} failed")]
    Recover {
        root: PathBuf,
        #[source]
        source: HookError,
    },
    #[error("write report {path}")]
    Report {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unmount host file systems")]
    Umount(#[source] Box<SysError>),
}

/// Where the worker looks and mounts (injectable for tests).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub args: BootArgs,
    pub sys_root: PathBuf,
    pub dev_root: PathBuf,
    /// `/lib/modules/<release>`; a missing index only means no modules are loaded.
    pub modules_dir: PathBuf,
    /// Mount point of the host root.
    pub mountpoint: PathBuf,
    /// Where boot media (iso9660: the rescue CD or USB stick itself) are mounted read-only,
    /// one directory per device.
    pub media_dir: PathBuf,
    /// How long to wait for the host disk.
    pub disk_wait: Duration,
    /// Poll interval while waiting.
    pub poll: Duration,
    /// Kernel release and command line, for the report.
    pub kernel: String,
    pub cmdline: String,
    /// Monotonic time at which PID 1 started (for the report's timings).
    pub init_start: Option<Duration>,
}

impl WorkerConfig {
    /// The settings used inside the rescue image.
    pub fn for_image(args: BootArgs, kernel: String, cmdline: String) -> Self {
        WorkerConfig {
            args,
            sys_root: PathBuf::from("/sys"),
            dev_root: PathBuf::from("/dev"),
            modules_dir: Path::new("/lib/modules").join(&kernel),
            mountpoint: PathBuf::from("/run/rescue-init/host"),
            media_dir: PathBuf::from("/run/rescue-init/media"),
            disk_wait: Duration::from_secs(10),
            poll: Duration::from_millis(50),
            kernel,
            cmdline,
            init_start: None,
        }
    }
}

/// The JSON report written to `<root>/var/log/rescue-init/<timestamp>/report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub status: String,
    pub error: Option<String>,
    pub kernel: String,
    pub cmdline: String,
    pub args: BootArgs,
    /// Seconds since boot (CLOCK_MONOTONIC) at each milestone.
    pub timings: Vec<(String, f64)>,
    pub modules: Vec<(String, kmod::Outcome)>,
    pub devices: Vec<BlockDevice>,
    pub root: Option<RootInfo>,
    pub mounts: Vec<MountInfo>,
    pub recover: Option<serde_json::Value>,
    pub log: Vec<crate::logger::Record>,
}

/// The chosen host root.
#[derive(Debug, Clone, Serialize)]
pub struct RootInfo {
    pub device: String,
    pub fstype: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub chosen_by: String,
}

/// One mount made on the host.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MountInfo {
    pub device: String,
    pub target: PathBuf,
    pub fstype: String,
}

/// What the worker hands back.
#[derive(Debug, Clone)]
pub struct WorkerSummary {
    pub root_device: String,
    pub report_path: PathBuf,
}

/// Kube state that marks a host root.
pub const HOST_MARKERS: [&str; 2] = ["etc/kubernetes", "var/lib/etcd"];

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

struct Run<'a> {
    cfg: &'a WorkerConfig,
    sys: &'a dyn Sys,
    loader: Option<Loader<'a>>,
    coldplug: Coldplug,
    report: Report,
    mounted: Vec<PathBuf>,
}

impl Run<'_> {
    fn mark(&mut self, what: &str) {
        let t = secs(self.sys.uptime());
        log::info!("worker: {what} at {t:.3} s");
        self.report.timings.push((what.to_owned(), t));
    }

    /// Load the driver of `fstype` ourselves: cheaper than the kernel's request_module round
    /// trip through /sbin/modprobe, and its outcome lands in the report.
    fn load_fs_driver(&mut self, fstype: &str) {
        if let Some(l) = self.loader.as_mut() {
            if let Err(e) = l.request(&format!("fs-{fstype}")) {
                log::debug!("worker: fs-{fstype}: {e}");
            }
            self.report.modules = l.outcomes();
        }
    }

    fn mount_fs(
        &mut self,
        dev: &BlockDevice,
        target: &Path,
        opts: MountOpts,
    ) -> Result<(), SysError> {
        let fstype = dev
            .fs
            .as_ref()
            .map(|f| f.fstype.clone())
            .unwrap_or_default();
        self.load_fs_driver(&fstype);
        self.sys.mkdir_all(target)?;
        self.sys
            .mount(&dev.dev_path.to_string_lossy(), target, &fstype, opts, "")
    }

    /// Wait for the host root: by spec, or the first filesystem (in name order) holding
    /// etc/kubernetes or var/lib/etcd. Coldplug runs again on every round, so drivers for
    /// devices that appear late are loaded too.
    fn find_root(&mut self) -> Result<BlockDevice, WorkerError> {
        let deadline = self.sys.uptime() + self.cfg.disk_wait;
        let mut probed: Vec<String> = Vec::new();
        let wanted = match &self.cfg.args.root {
            Some(s) => s.to_string(),
            None => format!(
                "a file system with /{} or /{}",
                HOST_MARKERS[0], HOST_MARKERS[1]
            ),
        };
        loop {
            if let Some(l) = self.loader.as_mut() {
                self.coldplug.scan(l);
            }
            let devs = blockdev::scan(&self.cfg.sys_root, &self.cfg.dev_root)
                .map_err(WorkerError::Scan)?;
            let found = match &self.cfg.args.root {
                Some(s) => spec::find(s, &devs).filter(|d| d.fs.is_some()).cloned(),
                None => self.search_markers(&devs, &mut probed),
            };
            if let Some(dev) = found {
                self.report.devices = devs;
                return Ok(dev);
            }
            if self.sys.uptime() >= deadline {
                let seen = devs
                    .iter()
                    .map(|d| match &d.fs {
                        Some(f) => format!("{} ({})", d.name, f.fstype),
                        None => d.name.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                self.report.devices = devs;
                return Err(WorkerError::NoHostDisk {
                    wanted,
                    waited_s: self.cfg.disk_wait.as_secs(),
                    seen: if seen.is_empty() {
                        "none".to_owned()
                    } else {
                        seen
                    },
                });
            }
            self.sys.sleep(self.cfg.poll);
        }
    }

    fn search_markers(
        &mut self,
        devs: &[BlockDevice],
        probed: &mut Vec<String>,
    ) -> Option<BlockDevice> {
        for dev in devs {
            let Some(fs) = &dev.fs else { continue };
            // The boot medium (iso9660) is never the host.
            if fs.fstype == "iso9660" || probed.contains(&dev.name) {
                continue;
            }
            probed.push(dev.name.clone());
            let mp = self.cfg.mountpoint.clone();
            if let Err(e) = self.mount_fs(dev, &mp, MountOpts::RO) {
                log::warn!("worker: probe {}: {e}", dev.name);
                continue;
            }
            let hit = HOST_MARKERS.iter().find(|m| mp.join(m).is_dir());
            if let Err(e) = self.sys.umount(&mp) {
                log::warn!("worker: unmount probe of {}: {e}", dev.name);
            }
            if let Some(m) = hit {
                log::info!("worker: {} holds /{m}", dev.name);
                return Some(dev.clone());
            }
            log::info!(
                "worker: {} ({}) holds no Kubernetes state",
                dev.name,
                fs.fstype
            );
        }
        None
    }

    /// A device named by `spec` with a file system: from the last scan, or rescanned until the
    /// disk wait runs out (a second disk may show up later than the first).
    fn wait_for(&mut self, spec: &DeviceSpec) -> Result<Option<BlockDevice>, WorkerError> {
        let deadline = self.sys.uptime() + self.cfg.disk_wait;
        loop {
            if let Some(d) = spec::find(spec, &self.report.devices).filter(|d| d.fs.is_some()) {
                return Ok(Some(d.clone()));
            }
            if self.sys.uptime() >= deadline {
                return Ok(None);
            }
            self.sys.sleep(self.cfg.poll);
            if let Some(l) = self.loader.as_mut() {
                self.coldplug.scan(l);
            }
            self.report.devices = blockdev::scan(&self.cfg.sys_root, &self.cfg.dev_root)
                .map_err(WorkerError::Scan)?;
        }
    }

    /// Mounts every iso9660 file system (the rescue CD, or the hybrid ISO written to a USB
    /// stick) read-only below `media_dir`, for backups and CA bundles put on the boot media.
    /// A medium that does not mount is logged and skipped: it is optional.
    fn mount_media(&mut self) -> Vec<PathBuf> {
        let media: Vec<BlockDevice> = self
            .report
            .devices
            .iter()
            .filter(|d| d.fs.as_ref().is_some_and(|f| f.fstype == "iso9660"))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for dev in media {
            let target = self.cfg.media_dir.join(&dev.name);
            if let Err(e) = self.mount_fs(&dev, &target, MountOpts::RO) {
                log::warn!("worker: boot medium {} not mounted: {e}", dev.name);
                continue;
            }
            log::info!(
                "worker: boot medium {} mounted read-only on {}",
                dev.name,
                target.display()
            );
            self.mounted.push(target.clone());
            self.report.mounts.push(MountInfo {
                device: dev.name.clone(),
                target: target.clone(),
                fstype: "iso9660".to_owned(),
            });
            out.push(target);
        }
        out
    }

    fn mount_extras(&mut self, root: &Path) -> Result<(), WorkerError> {
        let text = match std::fs::read_to_string(root.join("etc/fstab")) {
            Ok(t) => t,
            Err(_) => return Ok(()),
        };
        for (entry, parsed) in fstab::extra_mounts(&fstab::parse(&text)) {
            let fail = |reason: String| WorkerError::Fstab {
                spec: entry.spec.clone(),
                mountpoint: entry.mountpoint.clone(),
                reason,
            };
            let spec: DeviceSpec =
                parsed.ok_or_else(|| fail("unsupported device spec".to_owned()))?;
            let dev = self.wait_for(&spec)?.ok_or_else(|| {
                fail(format!(
                    "no such device within {} s",
                    self.cfg.disk_wait.as_secs()
                ))
            })?;
            let target = root.join(entry.mountpoint.trim_start_matches('/'));
            self.mount_fs(&dev, &target, MountOpts::RW)
                .map_err(|source| WorkerError::MountExtra {
                    device: dev.name.clone(),
                    target: target.clone(),
                    source: Box::new(source),
                })?;
            log::info!(
                "worker: mounted {} on {} (host fstab)",
                dev.name,
                target.display()
            );
            self.mounted.push(target.clone());
            self.report.mounts.push(MountInfo {
                device: dev.name.clone(),
                target,
                fstype: dev
                    .fs
                    .as_ref()
                    .map(|f| f.fstype.clone())
                    .unwrap_or_default(),
            });
        }
        Ok(())
    }

    fn umount_all(&mut self) -> Result<(), SysError> {
        self.sys.sync();
        let mut first_err = None;
        while let Some(t) = self.mounted.pop() {
            if let Err(e) = self.sys.umount(&t) {
                log::error!("worker: {e}");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Write the report to `<root>/var/log/rescue-init/<ts>/report.json`, fsync the file and its
/// directory. Returns the path.
pub fn write_report(root: &Path, report: &Report, ts: &str) -> Result<PathBuf, WorkerError> {
    let base = root.join("var/log/rescue-init");
    let mut dir = base.join(ts);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = base.join(format!("{ts}-{n}"));
    }
    let path = dir.join("report.json");
    let io = |source| WorkerError::Report {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let body = serde_json::to_vec_pretty(report).map_err(|e| io(std::io::Error::other(e)))?;
    std::fs::write(&path, body).map_err(io)?;
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    for d in [&dir, &base] {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
    }
    Ok(path)
}

/// UTC `YYYYMMDDTHHMMSSZ` for seconds since the epoch (civil-from-days, proleptic Gregorian).
pub fn timestamp(epoch_secs: u64) -> String {
    let days = i64::try_from(epoch_secs / 86_400).unwrap_or(0);
    let rem = epoch_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn now_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    timestamp(secs)
}

/// Run the worker's job. `recover` is called with the mounted host root; None leaves the
/// recovery out (the report then says so). The report is written even when the recovery
/// fails, as long as the host root could be mounted.
pub fn run_worker(
    cfg: &WorkerConfig,
    sys: &dyn Sys,
    recover: Option<&dyn RecoverHook>,
) -> Result<WorkerSummary, WorkerError> {
    // Modules: explicit ones first, then whatever the hardware asks for.
    let index = match Index::load(&cfg.modules_dir) {
        Ok(i) => Some(i),
        Err(e) => {
            log::warn!("worker: no module index, loading no modules: {e}");
            None
        }
    };
    let mut run = Run {
        cfg,
        sys,
        loader: index.as_ref().map(|i| Loader::new(i, sys)),
        coldplug: Coldplug::new(&cfg.sys_root),
        report: Report {
            schema: "rescue-init/boot-report/v1",
            status: "running".to_owned(),
            error: None,
            kernel: cfg.kernel.clone(),
            cmdline: cfg.cmdline.clone(),
            args: cfg.args.clone(),
            timings: Vec::new(),
            modules: Vec::new(),
            devices: Vec::new(),
            root: None,
            mounts: Vec::new(),
            recover: None,
            log: Vec::new(),
        },
        mounted: Vec::new(),
    };
    if let Some(t) = cfg.init_start {
        run.report.timings.push(("init_start".to_owned(), secs(t)));
    }
    run.mark("worker_start");
    if let Some(l) = run.loader.as_mut() {
        for m in &cfg.args.modules {
            if let Err(e) = l.request(m) {
                log::warn!("worker: rescue.modules {m}: {e}");
            }
        }
        run.coldplug.settle(l, 8);
        run.report.modules = l.outcomes();
    }
    run.mark("modules_loaded");

    let dev = run.find_root()?;
    let fs = dev.fs.clone().unwrap_or(blockdev::FsInfo {
        fstype: String::new(),
        label: None,
        uuid: None,
    });
    run.report.root = Some(RootInfo {
        device: dev.name.clone(),
        fstype: fs.fstype.clone(),
        label: fs.label.clone(),
        uuid: fs.uuid.clone(),
        chosen_by: cfg.args.root.as_ref().map_or_else(
            || "search for etc/kubernetes, var/lib/etcd".to_owned(),
            |s| s.to_string(),
        ),
    });
    run.mark("root_found");

    let root = cfg.mountpoint.clone();
    run.mount_fs(&dev, &root, MountOpts::RW)
        .map_err(|source| WorkerError::MountRoot {
            device: dev.name.clone(),
            fstype: fs.fstype.clone(),
            target: root.clone(),
            source: Box::new(source),
        })?;
    run.mounted.push(root.clone());
    run.report.mounts.push(MountInfo {
        device: dev.name.clone(),
        target: root.clone(),
        fstype: fs.fstype.clone(),
    });
    log::info!(
        "worker: host root {} ({}) mounted read-write on {}",
        dev.name,
        fs.fstype,
        root.display()
    );

    let mut failure: Option<WorkerError> = run.mount_extras(&root).err();
    let media = run.mount_media();
    if failure.is_none() {
        run.mark("recover_start");
        match recover {
            Some(hook) => match hook.recover(&root, &media) {
                Ok(v) => run.report.recover = Some(v),
                Err(source) => {
                    // A failed recovery still has a report: keep it in the boot report.
                    if let Some(e) = source.downcast_ref::<crate::recover::BootRecoverError>() {
                        run.report.recover = Some(e.report.clone());
                    }
                    failure = Some(WorkerError::Recover {
                        root: root.clone(),
                        source,
                    })
                }
            },
            None => {
                log::warn!("worker: no recovery hook in this build; only the report is written")
            }
        }
        run.mark("recover_end");
    }
    run.report.status = if failure.is_some() { "failed" } else { "ok" }.to_owned();
    run.report.error = failure.as_ref().map(|e| error_chain(e));
    run.mark("report_write");
    run.report.log = crate::logger::records().0;
    let written = write_report(&root, &run.report, &now_stamp());
    if let Ok(p) = &written {
        log::info!("worker: report written to {}", p.display());
    }
    run.umount_all()
        .map_err(|e| WorkerError::Umount(Box::new(e)))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let report_path = written?;
    Ok(WorkerSummary {
        root_device: dev.name,
        report_path,
    })
}

/// `error: cause: cause` for any error, walking `source()`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    crate::errors::chain(e)
}

#[cfg(test)]
mod tests;
