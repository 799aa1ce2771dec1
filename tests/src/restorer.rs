//! The programs that restore a snapshot into a data dir: `etcdutl` (the oracle) and
//! `rescue-init` (the subject), driven through the same flags.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::tools::Tools;
use crate::util::describe;

/// Path of the rescue-init binary under test (overrides the build dir lookup).
pub const ENV_BIN: &str = "RESCUE_INIT_BIN";
/// `etcdutl` makes the subject restorer etcdutl itself: proves the harness without the engine.
pub const ENV_RESTORER: &str = "RESCUE_RESTORER";

/// A restore program.
#[derive(Debug, Clone)]
pub enum Restorer {
    Etcdutl(PathBuf),
    RescueInit(PathBuf),
}

/// The flags of one restore (etcdutl's names and meaning).
#[derive(Debug, Clone)]
pub struct RestoreArgs {
    pub snapshot: PathBuf,
    pub data_dir: PathBuf,
    pub name: String,
    /// `a=URL,b=URL`.
    pub initial_cluster: String,
    /// `URL[,URL]`.
    pub peer_urls: String,
    pub token: String,
    pub skip_hash_check: bool,
    pub bump_revision: Option<u64>,
    pub mark_compacted: bool,
}

impl RestoreArgs {
    /// A single-member restore as `spec` (name and every peer URL).
    pub fn for_member(snapshot: &Path, data_dir: &Path, spec: &crate::MemberSpec) -> RestoreArgs {
        RestoreArgs {
            initial_cluster: crate::etcd::initial_cluster(std::slice::from_ref(spec)),
            peer_urls: spec.peer_urls().join(","),
            ..RestoreArgs::single(snapshot, data_dir, &spec.name, &spec.peer_url())
        }
    }

    /// A single-member restore of `snapshot` into `data_dir` as `name` with this peer URL.
    pub fn single(snapshot: &Path, data_dir: &Path, name: &str, peer_url: &str) -> RestoreArgs {
        RestoreArgs {
            snapshot: snapshot.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            name: name.to_string(),
            initial_cluster: format!("{name}={peer_url}"),
            peer_urls: peer_url.to_string(),
            token: "rescue-restored".to_string(),
            skip_hash_check: false,
            bump_revision: None,
            mark_compacted: false,
        }
    }
}

impl Restorer {
    /// The restorer under test: rescue-init, or etcdutl when `RESCUE_RESTORER=etcdutl`.
    pub fn subject(tools: &Tools) -> Restorer {
        if std::env::var(ENV_RESTORER).is_ok_and(|v| v == "etcdutl") {
            return Restorer::Etcdutl(tools.etcdutl());
        }
        match rescue_init_bin() {
            Ok(p) => Restorer::RescueInit(p),
            Err(why) => panic!("{why}"),
        }
    }

    pub fn oracle(tools: &Tools) -> Restorer {
        Restorer::Etcdutl(tools.etcdutl())
    }

    pub fn is_rescue_init(&self) -> bool {
        matches!(self, Restorer::RescueInit(_))
    }

    pub fn label(&self) -> &'static str {
        match self {
            Restorer::Etcdutl(_) => "etcdutl",
            Restorer::RescueInit(_) => "rescue-init",
        }
    }

    fn bin(&self) -> &Path {
        match self {
            Restorer::Etcdutl(p) | Restorer::RescueInit(p) => p,
        }
    }

    /// The `snapshot restore` command line for these arguments.
    pub fn restore_command(&self, a: &RestoreArgs) -> Command {
        let mut c = Command::new(self.bin());
        c.args(["snapshot", "restore"])
            .arg(&a.snapshot)
            .arg("--data-dir")
            .arg(&a.data_dir)
            .arg(format!("--name={}", a.name))
            .arg(format!("--initial-cluster={}", a.initial_cluster))
            .arg(format!("--initial-advertise-peer-urls={}", a.peer_urls))
            .arg(format!("--initial-cluster-token={}", a.token));
        if a.skip_hash_check {
            c.arg("--skip-hash-check");
        }
        if let Some(b) = a.bump_revision {
            c.arg(format!("--bump-revision={b}"));
        }
        if a.mark_compacted {
            c.arg("--mark-compacted");
        }
        c
    }

    /// Runs a restore; returns its output whatever the exit status.
    pub fn restore(&self, a: &RestoreArgs) -> Output {
        self.restore_command(a)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin().display()))
    }

    /// Runs a restore and panics unless it succeeds.
    pub fn restore_ok(&self, a: &RestoreArgs) {
        let o = self.restore(a);
        assert!(
            o.status.success(),
            "{} snapshot restore {} failed: {}",
            self.label(),
            a.snapshot.display(),
            describe(&o)
        );
    }

    /// `snapshot status FILE -w json`. etcdutl has no `--skip-hash-check` for status (it
    /// never checks the hash); rescue-init needs it for a file without a trailer.
    pub fn status_output(&self, file: &Path, skip_hash_check: bool) -> Output {
        let mut c = Command::new(self.bin());
        c.args(["snapshot", "status"])
            .arg(file)
            .args(["-w", "json"]);
        if skip_hash_check && self.is_rescue_init() {
            c.arg("--skip-hash-check");
        }
        c.output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin().display()))
    }

    /// [`Restorer::status_output`], parsed; panics unless it succeeds.
    pub fn status(&self, file: &Path, skip_hash_check: bool) -> Value {
        let o = self.status_output(file, skip_hash_check);
        assert!(
            o.status.success(),
            "{} snapshot status {} failed: {}",
            self.label(),
            file.display(),
            describe(&o)
        );
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{} status: bad json {e}: {}", self.label(), describe(&o)))
    }
}

/// The rescue-init binary: `$RESCUE_INIT_BIN`, else `rescue-init` in the cargo profile dir of
/// the running test (`target/<profile>/deps/<test>` → `target/<profile>/rescue-init`).
pub fn rescue_init_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(ENV_BIN).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{ENV_BIN}={} does not exist", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut dir = exe.parent();
    while let Some(d) = dir {
        let cand = d.join("rescue-init");
        if cand.is_file() {
            return Ok(cand);
        }
        if d.file_name().is_some_and(|n| n != "deps") {
            break;
        }
        dir = d.parent();
    }
    Err(format!(
        "rescue-init binary not found next to {} (run `cargo build -p rescue-init` or set {ENV_BIN})",
        exe.display()
    ))
}
