//! Kernel module loading without kmod: depmod's text indexes, dependency and softdep
//! resolution, loading through `Sys::finit_module`, coldplug by modalias from /sys, and a
//! `modprobe` mode for the kernel's own `request_module()` calls (crc32c, nls_*, fs-*).
//!
//! Parsing is pure (`parse.rs`); only `Loader` has effects, and only through `Sys`.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::sys::{Sys, SysError};

pub mod modprobe;
pub mod parse;

pub use parse::{glob_match, module_name};

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
/// Guard against cycles and absurd softdep chains.
const MAX_DEPTH: usize = 16;

/// Errors of module resolution and loading.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("read module index {path}")]
    ReadIndex {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("module or alias {name} not found in {dir}")]
    NotFound { name: String, dir: PathBuf },
    #[error("dependency chain of {name} is too deep (cycle?)")]
    TooDeep { name: String },
    #[error("load module {name}")]
    Load {
        name: String,
        #[source]
        source: SysError,
    },
}

/// The parsed indexes of one `/lib/modules/<version>` directory.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub dir: PathBuf,
    pub dep: BTreeMap<String, parse::DepEntry>,
    pub alias: Vec<(String, String)>,
    pub softdep: BTreeMap<String, parse::SoftDep>,
    pub builtin: BTreeSet<String>,
}

fn read_opt(path: &Path) -> Result<String, KmodError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(KmodError::ReadIndex {
            path: path.to_owned(),
            source,
        }),
    }
}

impl Index {
    /// Read modules.dep (required) and modules.alias/softdep/builtin (optional) from `dir`.
    pub fn load(dir: &Path) -> Result<Index, KmodError> {
        let dep_path = dir.join("modules.dep");
        let dep = std::fs::read_to_string(&dep_path).map_err(|source| KmodError::ReadIndex {
            path: dep_path,
            source,
        })?;
        Ok(Index::from_texts(
            dir,
            &dep,
            &read_opt(&dir.join("modules.alias"))?,
            &read_opt(&dir.join("modules.softdep"))?,
            &read_opt(&dir.join("modules.builtin"))?,
        ))
    }

    /// Build an index from the file contents (pure).
    pub fn from_texts(dir: &Path, dep: &str, alias: &str, softdep: &str, builtin: &str) -> Self {
        Index {
            dir: dir.to_owned(),
            dep: parse::parse_dep(dep),
            alias: parse::parse_alias(alias),
            softdep: parse::parse_softdep(softdep),
            builtin: parse::parse_builtin(builtin),
        }
    }

    /// Module names a request stands for: the module itself, nothing when it is built in, or
    /// every module whose alias pattern matches (modprobe loads all of them).
    pub fn resolve(&self, request: &str) -> Result<Vec<String>, KmodError> {
        let canon = module_name(request);
        if self.dep.contains_key(&canon) {
            return Ok(vec![canon]);
        }
        if self.builtin.contains(&canon) {
            return Ok(Vec::new());
        }
        let under = request.replace('-', "_");
        let mut out: Vec<String> = Vec::new();
        for (pat, module) in &self.alias {
            let hit = glob_match(pat, request)
                || (!pat.contains('[') && glob_match(&pat.replace('-', "_"), &under));
            if hit && !out.contains(module) {
                out.push(module.clone());
            }
        }
        if out.is_empty() {
            return Err(KmodError::NotFound {
                name: request.to_owned(),
                dir: self.dir.clone(),
            });
        }
        // An alias may point at a built-in module: nothing to load for those.
        out.retain(|m| !self.builtin.contains(m));
        Ok(out)
    }

    /// Load order for one module: softdep `pre` (best effort), hard dependencies (deepest
    /// first), the module, softdep `post`. Each step is (module name, required?).
    pub fn load_order(&self, name: &str) -> Result<Vec<(String, bool)>, KmodError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        self.order_into(name, true, 0, &mut out, &mut seen)?;
        Ok(out)
    }

    fn order_into(
        &self,
        name: &str,
        required: bool,
        depth: usize,
        out: &mut Vec<(String, bool)>,
        seen: &mut BTreeSet<String>,
    ) -> Result<(), KmodError> {
        if depth > MAX_DEPTH {
            return Err(KmodError::TooDeep {
                name: name.to_owned(),
            });
        }
        if !seen.insert(name.to_owned()) {
            return Ok(());
        }
        let soft = self.softdep.get(name).cloned().unwrap_or_default();
        for pre in &soft.pre {
            // A missing soft dependency is not an error (modprobe ignores it too).
            for m in self.resolve(pre).unwrap_or_default() {
                self.order_into(&m, false, depth + 1, out, seen)?;
            }
        }
        if let Some(entry) = self.dep.get(name) {
            for dep in entry.deps.iter().rev() {
                self.order_into(&module_name(dep), required, depth + 1, out, seen)?;
            }
            out.push((name.to_owned(), required));
        }
        for post in &soft.post {
            for m in self.resolve(post).unwrap_or_default() {
                self.order_into(&m, false, depth + 1, out, seen)?;
            }
        }
        Ok(())
    }
}

/// What happened to one module.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Loaded,
    AlreadyLoaded,
    /// ENODEV: no hardware for it (e.g. crc32c-intel without SSE4.2).
    NoDevice,
    /// A best-effort soft dependency failed.
    SoftFailed(String),
}

/// Loads modules with their dependencies through `Sys`, remembering what it did.
pub struct Loader<'a> {
    index: &'a Index,
    sys: &'a dyn Sys,
    done: BTreeMap<String, Outcome>,
    order: Vec<String>,
}

impl<'a> Loader<'a> {
    pub fn new(index: &'a Index, sys: &'a dyn Sys) -> Self {
        Loader {
            index,
            sys,
            done: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    /// Load a module or alias with its dependencies. Built-in targets succeed with nothing
    /// to do; EEXIST counts as success; ENODEV is logged and skipped.
    pub fn request(&mut self, request: &str) -> Result<(), KmodError> {
        for module in self.index.resolve(request)? {
            self.load_module(&module)?;
        }
        Ok(())
    }

    fn load_module(&mut self, name: &str) -> Result<(), KmodError> {
        for (m, required) in self.index.load_order(name)? {
            if self.done.contains_key(&m) {
                continue;
            }
            let Some(entry) = self.index.dep.get(&m) else {
                continue;
            };
            let path = self.index.dir.join(&entry.path);
            let outcome = match self.sys.finit_module(&path, "") {
                Ok(()) => {
                    log::debug!("kmod: loaded {m}");
                    Outcome::Loaded
                }
                Err(e) if e.raw_os_error() == Some(EEXIST) => Outcome::AlreadyLoaded,
                Err(e) if e.raw_os_error() == Some(ENODEV) => {
                    log::info!("kmod: {m}: no such device, skipped");
                    Outcome::NoDevice
                }
                Err(e) if !required => {
                    log::warn!("kmod: soft dependency {m} failed: {e}");
                    Outcome::SoftFailed(e.to_string())
                }
                Err(source) => return Err(KmodError::Load { name: m, source }),
            };
            self.order.push(m.clone());
            self.done.insert(m, outcome);
        }
        Ok(())
    }

    /// Modules touched, in load order, with their outcome.
    pub fn outcomes(&self) -> Vec<(String, Outcome)> {
        self.order
            .iter()
            .filter_map(|m| self.done.get(m).map(|o| (m.clone(), o.clone())))
            .collect()
    }
}

/// Coldplug: loads drivers for the modaliases the kernel exposes under `<sys>/bus/*/devices/*`.
/// Call `scan` repeatedly: loading a bus driver creates new devices (virtio_pci → virtio
/// devices), and only modaliases not seen before are looked at.
#[derive(Debug)]
pub struct Coldplug {
    sys_root: PathBuf,
    seen: BTreeSet<String>,
}

impl Coldplug {
    pub fn new(sys_root: impl Into<PathBuf>) -> Self {
        Coldplug {
            sys_root: sys_root.into(),
            seen: BTreeSet::new(),
        }
    }

    /// All modaliases currently exposed (sorted, deduplicated).
    pub fn modaliases(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let Ok(buses) = std::fs::read_dir(self.sys_root.join("bus")) else {
            return out;
        };
        for bus in buses.flatten() {
            let Ok(devices) = std::fs::read_dir(bus.path().join("devices")) else {
                continue;
            };
            for dev in devices.flatten() {
                if let Ok(alias) = std::fs::read_to_string(dev.path().join("modalias")) {
                    let alias = alias.trim();
                    if !alias.is_empty() {
                        out.insert(alias.to_owned());
                    }
                }
            }
        }
        out
    }

    /// Load drivers for new modaliases; returns how many new modaliases were seen. Failures
    /// of single drivers are logged, not fatal (other hardware may still be enough).
    pub fn scan(&mut self, loader: &mut Loader<'_>) -> usize {
        let new: Vec<String> = self
            .modaliases()
            .into_iter()
            .filter(|a| !self.seen.contains(a))
            .collect();
        for alias in &new {
            self.seen.insert(alias.clone());
            match loader.request(alias) {
                Ok(()) => {}
                Err(KmodError::NotFound { .. }) => log::debug!("kmod: no driver for {alias}"),
                Err(e) => log::warn!("kmod: coldplug {alias}: {e}"),
            }
        }
        new.len()
    }

    /// Scan until nothing new appears (at most `rounds` times).
    pub fn settle(&mut self, loader: &mut Loader<'_>, rounds: usize) {
        for _ in 0..rounds {
            if self.scan(loader) == 0 {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake::{Call, FakeSys};

    fn index() -> Index {
        Index::from_texts(
            Path::new("/lib/modules/k"),
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
             kernel/lib/crc16.ko:\nkernel/fs/mbcache.ko:\nkernel/fs/jbd2/jbd2.ko:\n\
             kernel/crypto/crc32c_generic.ko:\nkernel/arch/x86/crypto/crc32c-intel.ko:\n\
             kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko\n\
             kernel/drivers/virtio/virtio.ko:\n",
            "alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c_intel\nalias crc32c crc32c_generic\nalias crc32c crc32c_intel\n\
             alias fs-ext4 ext4\nalias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias net-pf-17 af_packet\n",
            "softdep ext4 pre: crc32c\n",
            "kernel/net/packet/af_packet.ko\n",
        )
    }

    fn loaded(sys: &FakeSys) -> Vec<String> {
        sys.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::FinitModule(p) => Some(module_name(&p.to_string_lossy())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn ext4_loads_softdeps_then_deps_deepest_first() {
        let idx = index();
        let sys = FakeSys::new();
        let mut l = Loader::new(&idx, &sys);
        l.request("fs-ext4").expect("test step");
        assert_eq!(
            loaded(&sys),
            vec![
                "crc32c_generic",
                "crc32c_intel",
                "jbd2",
                "mbcache",
                "crc16",
                "ext4"
            ]
        );
        // A second request is a no-op.
        l.request("ext4").expect("test step");
        assert_eq!(loaded(&sys).len(), 6);
    }

    #[test]
    fn enodev_is_skipped_eexist_is_ok_and_other_errors_fail() {
        let idx = index();
        let sys = FakeSys::new();
        sys.fail_module(
            "/lib/modules/k/kernel/arch/x86/crypto/crc32c-intel.ko",
            ENODEV,
        );
        sys.fail_module("/lib/modules/k/kernel/lib/crc16.ko", EEXIST);
        let mut l = Loader::new(&idx, &sys);
        l.request("ext4").expect("test step");
        let out = l.outcomes();
        assert!(out.contains(&("crc32c_intel".to_owned(), Outcome::NoDevice)));
        assert!(out.contains(&("crc16".to_owned(), Outcome::AlreadyLoaded)));
        assert!(out.contains(&("ext4".to_owned(), Outcome::Loaded)));

        let sys2 = FakeSys::new();
        sys2.fail_module("/lib/modules/k/kernel/fs/jbd2/jbd2.ko", 22);
        let mut l2 = Loader::new(&idx, &sys2);
        let err = l2.request("ext4").expect_err("must fail");
        assert!(matches!(err, KmodError::Load { ref name, .. } if name == "jbd2"));
        assert!(!loaded(&sys2).contains(&"ext4".to_owned()));
    }

    #[test]
    fn builtin_and_unknown_requests() {
        let idx = index();
        assert_eq!(
            idx.resolve("af_packet").expect("test step"),
            Vec::<String>::new()
        );
        assert_eq!(
            idx.resolve("net-pf-17").expect("test step"),
            Vec::<String>::new()
        );
        assert!(matches!(
            idx.resolve("nosuch"),
            Err(KmodError::NotFound { .. })
        ));
        assert_eq!(
            idx.resolve("crc32c-intel").expect("test step"),
            vec!["crc32c_intel"]
        );
    }

    #[test]
    fn coldplug_reads_modaliases_from_an_injected_sysfs() {
        let dir = tempfile::tempdir().expect("test step");
        let dev = dir.path().join("bus/pci/devices/0000:00:04.0");
        std::fs::create_dir_all(&dev).expect("test step");
        std::fs::write(
            dev.join("modalias"),
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
        )
        .expect("test step");
        let other = dir.path().join("bus/pci/devices/0000:00:01.0");
        std::fs::create_dir_all(&other).expect("test step");
        std::fs::write(
            other.join("modalias"),
            "pci:v00008086d00007000sv00000000sd00000000bc06sc01i00\n",
        )
        .expect("test step");
        let idx = index();
        let sys = FakeSys::new();
        let mut l = Loader::new(&idx, &sys);
        let mut cp = Coldplug::new(dir.path());
        assert_eq!(cp.scan(&mut l), 2);
        assert_eq!(loaded(&sys), vec!["virtio", "virtio_pci"]);
        assert_eq!(cp.scan(&mut l), 0);
    }
}
