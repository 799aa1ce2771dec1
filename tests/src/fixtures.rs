//! Snapshots made at test time by real etcd servers (never committed):
//! - `cluster3`: a 3-member 3.5 cluster with history (puts, a many-key transaction,
//!   overwrites, deletes, leases with keys, a compaction), then `snapshot save`;
//! - `raw_db`: that cluster's third member stopped and its `member/snap/db` copied
//!   (no sha256 trailer: restores need `--skip-hash-check`);
//! - `auth`: a 1-member 3.5 server with auth enabled (root, two users, two roles);
//! - `v34`: a snapshot saved by etcdctl 3.4 from an etcd 3.4 server.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::ctl::{Ctl, ServerState};
use crate::etcd::{EtcdCluster, EtcdOpts};
use crate::tools::{Tools, Version};

/// Credentials of the auth fixture's root user.
pub const ROOT: &str = "root:rootpw";

/// One snapshot file and what the server it came from held when it was taken.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub name: &'static str,
    pub file: PathBuf,
    /// A raw db: no sha256 trailer.
    pub skip_hash_check: bool,
    /// The source server's state when the snapshot was taken.
    pub source: ServerState,
    /// For the auth fixture: the users and roles (sorted) and `user:password` of root.
    pub auth: Option<AuthInfo>,
    /// Saved from etcd 3.4.
    pub from_v34: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInfo {
    pub root: String,
    pub users: Vec<String>,
    pub roles: Vec<String>,
}

impl Fixture {
    /// `user:password` to read the restored server with (root for the auth fixture).
    pub fn user(&self) -> Option<&str> {
        self.auth.as_ref().map(|a| a.root.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Fixtures {
    pub dir: PathBuf,
    pub cluster3: Fixture,
    pub raw_db: Fixture,
    pub auth: Fixture,
    pub v34: Fixture,
}

impl Fixtures {
    pub fn all(&self) -> [&Fixture; 4] {
        [&self.cluster3, &self.raw_db, &self.auth, &self.v34]
    }
}

/// Builds every fixture under `base/etcd-fixtures-<pid>` (stale dirs of dead processes are
/// removed). The source servers are stopped before this returns.
pub fn build(tools: &Tools, base: &Path) -> Fixtures {
    let dir = base.join(format!("etcd-fixtures-{}", std::process::id()));
    remove_stale(base);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create fixtures dir");
    let started = Instant::now();
    let (cluster3, raw_db, auth, v34) = std::thread::scope(|s| {
        let a = s.spawn(|| cluster3_and_raw(tools, &dir));
        let b = s.spawn(|| auth(tools, &dir));
        let c = s.spawn(|| v34(tools, &dir));
        let (c3, raw) = a.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let au = b.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        let v = c.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (c3, raw, au, v)
    });
    crate::tools::note(&format!(
        "fixtures built in {:.1}s under {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    ));
    Fixtures {
        dir,
        cluster3,
        raw_db,
        auth,
        v34,
    }
}

fn remove_stale(base: &Path) {
    let Ok(rd) = std::fs::read_dir(base) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("etcd-fixtures-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Writes a history with every kind of change a restore must carry over.
fn write_history(ctl: &Ctl, prefix: &str) {
    for i in 0..12 {
        ctl.put(&format!("{prefix}/pods/p{i:02}"), &format!("pod-{i}"));
    }
    // Many keys per revision (sub-revisions; etcd allows 128 operations per txn), enough for
    // the key bucket to need several pages.
    for chunk in 0..2 {
        let mut txn = String::from("\n");
        for i in chunk * 100..chunk * 100 + 100 {
            txn.push_str(&format!(
                "put {prefix}/configmaps/cm{i:03} \"{}\"\n",
                format!("data-{i}-").repeat(8)
            ));
        }
        txn.push_str("\n\n");
        txn_stdin(ctl, &txn);
    }
    // Overwrites (versions 2, 3) and deletes (tombstones).
    for i in 0..4 {
        ctl.put(&format!("{prefix}/pods/p{i:02}"), &format!("pod-{i}-v2"));
    }
    ctl.put(&format!("{prefix}/pods/p00"), "pod-0-v3");
    for i in 8..10 {
        assert_eq!(ctl.del(&format!("{prefix}/pods/p{i:02}")), 1);
    }
    // Leases: two with keys, one without.
    let l1 = ctl.lease_grant(3600);
    let l2 = ctl.lease_grant(7200);
    ctl.lease_grant(5400);
    ctl.put_lease(&format!("{prefix}/leases/a"), "held-by-l1", l1);
    ctl.put_lease(&format!("{prefix}/leases/b"), "held-by-l1", l1);
    ctl.put_lease(&format!("{prefix}/leases/c"), "held-by-l2", l2);
    // A value larger than a page (overflow pages).
    ctl.put(&format!("{prefix}/big"), &"x".repeat(9000));
    // Compact away part of the history, then keep writing.
    let rev = ctl.revision();
    ctl.compact(rev - 3);
    ctl.put(&format!("{prefix}/pods/p01"), "pod-1-after-compaction");
    assert_eq!(ctl.del(&format!("{prefix}/pods/p02")), 1);
    ctl.put(&format!("{prefix}/z-last"), "last");
}

/// `etcdctl txn` with its script on stdin.
fn txn_stdin(ctl: &Ctl, script: &str) {
    let out = ctl.txn(script);
    assert!(out.contains("SUCCESS"), "txn did not succeed: {out}");
}

fn cluster3_and_raw(tools: &Tools, dir: &Path) -> (Fixture, Fixture) {
    let opts = EtcdOpts {
        token: "fixture-3".into(),
        names: vec!["alpha".into(), "beta".into(), "gamma".into()],
    };
    let mut c = EtcdCluster::start(tools, Version::V3_5, 3, &opts);
    let ctl = c.ctl();
    write_history(&ctl, "/registry");
    let source = c.state(None);
    let file = dir.join("cluster3.snapshot");
    c.ctl_member(0).snapshot_save(&file);
    // The third member must have applied everything before it stops.
    wait_revision(&c.ctl_member(2), source.revision);
    c.stop_member(2);
    let raw = dir.join("gamma-member-snap.db");
    std::fs::copy(c.members[2].data_dir.join("member/snap/db"), &raw).expect("copy raw db");
    drop(c);
    let cluster3 = Fixture {
        name: "cluster3",
        file,
        skip_hash_check: false,
        source: source.clone(),
        auth: None,
        from_v34: false,
    };
    let raw_db = Fixture {
        name: "raw_db",
        file: raw,
        skip_hash_check: true,
        source,
        auth: None,
        from_v34: false,
    };
    (cluster3, raw_db)
}

/// A 1-member 3.5 server with the same history as `cluster3` (under `/registry`): its
/// `snapshot save` file, and its `member/snap/db` copied after a graceful stop (raw, no trailer).
/// Quicker than [`build`] when one snapshot is enough (recovery tests).
pub fn single(tools: &Tools, dir: &Path) -> (Fixture, Fixture) {
    let mut c = EtcdCluster::start(tools, Version::V3_5, 1, &EtcdOpts::default());
    write_history(&c.ctl(), "/registry");
    let source = c.state(None);
    let file = dir.join("single.snapshot");
    c.ctl_member(0).snapshot_save(&file);
    c.stop_member(0);
    let raw = dir.join("single-member-snap.db");
    std::fs::copy(c.members[0].data_dir.join("member/snap/db"), &raw).expect("copy raw db");
    drop(c);
    let snap = Fixture {
        name: "single",
        file,
        skip_hash_check: false,
        source: source.clone(),
        auth: None,
        from_v34: false,
    };
    let raw_db = Fixture {
        name: "single_raw_db",
        file: raw,
        skip_hash_check: true,
        source,
        auth: None,
        from_v34: false,
    };
    (snap, raw_db)
}

fn auth(tools: &Tools, dir: &Path) -> Fixture {
    let c = EtcdCluster::start(tools, Version::V3_5, 1, &EtcdOpts::default());
    let ctl = c.ctl();
    ctl.put("/app/a", "1");
    ctl.put("/app/b", "2");
    ctl.put("/secret/x", "s");
    ctl.ok(&["user", "add", ROOT]);
    ctl.ok(&["role", "add", "root"]);
    ctl.ok(&["user", "grant-role", "root", "root"]);
    ctl.ok(&["user", "add", "alice:alicepw"]);
    ctl.ok(&["user", "add", "bob:bobpw"]);
    ctl.ok(&["role", "add", "reader"]);
    ctl.ok(&["role", "add", "writer"]);
    ctl.ok(&[
        "role",
        "grant-permission",
        "reader",
        "read",
        "/app/",
        "--prefix=true",
    ]);
    ctl.ok(&[
        "role",
        "grant-permission",
        "writer",
        "readwrite",
        "/secret/x",
    ]);
    ctl.ok(&["user", "grant-role", "alice", "reader"]);
    ctl.ok(&["user", "grant-role", "bob", "writer"]);
    ctl.ok(&["auth", "enable"]);
    let root = ctl.with_user(ROOT);
    root.put("/app/c", "3");
    let source = c.state(Some(ROOT));
    let info = AuthInfo {
        root: ROOT.into(),
        users: root.users(),
        roles: root.roles(),
    };
    let file = dir.join("auth.snapshot");
    root.snapshot_save(&file);
    Fixture {
        name: "auth",
        file,
        skip_hash_check: false,
        source,
        auth: Some(info),
        from_v34: false,
    }
}

fn v34(tools: &Tools, dir: &Path) -> Fixture {
    let c = EtcdCluster::start(tools, Version::V3_4, 1, &EtcdOpts::default());
    let ctl = c.ctl();
    write_history(&ctl, "/v34");
    let source = c.state(None);
    let file = dir.join("v34.snapshot");
    ctl.snapshot_save(&file);
    Fixture {
        name: "v34",
        file,
        skip_hash_check: false,
        source,
        auth: None,
        from_v34: true,
    }
}

fn wait_revision(ctl: &Ctl, rev: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctl.revision() < rev {
        assert!(
            Instant::now() < deadline,
            "member did not reach revision {rev}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
