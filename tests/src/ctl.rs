//! etcdctl helpers, and the state of a running server as the tests compare it.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::util::{b64decode, describe};

/// etcdctl bound to endpoints (and optionally a `user:password`).
#[derive(Debug, Clone)]
pub struct Ctl {
    bin: PathBuf,
    endpoints: String,
    user: Option<String>,
}

/// A member as `member list -w json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// A role permission: (type, key, range end), as `role get -w json` shows it.
pub type Perm = (String, Vec<u8>, Vec<u8>);

/// A key as `get -w json` shows it (key and value decoded).
#[derive(Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = String::from_utf8_lossy(&self.value);
        let shown: String = v.chars().take(24).collect();
        write!(
            f,
            "{:?}={:?}{} (create {}, mod {}, version {}, lease {:x})",
            String::from_utf8_lossy(&self.key),
            shown,
            if v.chars().count() > 24 {
                format!("…[{} bytes]", self.value.len())
            } else {
                String::new()
            },
            self.create_revision,
            self.mod_revision,
            self.version,
            self.lease
        )
    }
}

/// What a server holds, for comparing two restores (or a restore and its source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub cluster_id: u64,
    /// Sorted by ID.
    pub members: Vec<MemberInfo>,
    /// Every key, in key order.
    pub kvs: Vec<Kv>,
    /// The store revision (`endpoint status`).
    pub revision: i64,
    /// Lease IDs, sorted.
    pub leases: Vec<i64>,
}

impl ServerState {
    /// The first differences from `want`, readably (`None` when equal).
    pub fn diff(&self, want: &ServerState) -> Option<String> {
        let mut d = Vec::new();
        if self.cluster_id != want.cluster_id {
            d.push(format!(
                "cluster id {:x}, want {:x}",
                self.cluster_id, want.cluster_id
            ));
        }
        if self.members != want.members {
            d.push(format!(
                "members {:?}, want {:?}",
                self.members, want.members
            ));
        }
        d.extend(self.data_diff(want));
        if d.is_empty() {
            None
        } else {
            Some(d.join("\n"))
        }
    }

    /// Differences in keys, revision and leases only.
    pub fn data_diff(&self, want: &ServerState) -> Vec<String> {
        let mut d = Vec::new();
        if self.revision != want.revision {
            d.push(format!(
                "revision {}, want {}",
                self.revision, want.revision
            ));
        }
        if self.leases != want.leases {
            d.push(format!(
                "leases {:x?}, want {:x?}",
                self.leases, want.leases
            ));
        }
        if self.kvs.len() != want.kvs.len() {
            d.push(format!("{} keys, want {}", self.kvs.len(), want.kvs.len()));
        }
        let mut shown = 0;
        for i in 0..self.kvs.len().max(want.kvs.len()) {
            let (g, w) = (self.kvs.get(i), want.kvs.get(i));
            if g != w {
                d.push(format!("key #{i}: {g:?}, want {w:?}"));
                shown += 1;
                if shown == 5 {
                    d.push("…".into());
                    break;
                }
            }
        }
        d
    }

    /// Panics with a readable diff unless `self == want`.
    pub fn assert_eq(&self, want: &ServerState, what: &str) {
        if let Some(d) = self.diff(want) {
            panic!("{what}: states differ:\n{d}");
        }
    }

    /// Panics with a readable diff unless keys, revision and leases equal `want`'s.
    pub fn assert_same_data(&self, want: &ServerState, what: &str) {
        let d = self.data_diff(want);
        assert!(d.is_empty(), "{what}: data differs:\n{}", d.join("\n"));
    }

    /// The same data (keys, revision, leases), whatever the membership.
    pub fn same_data(&self, other: &ServerState) -> bool {
        self.kvs == other.kvs && self.revision == other.revision && self.leases == other.leases
    }
}

impl Ctl {
    pub fn new(bin: &Path, endpoints: &str) -> Ctl {
        Ctl {
            bin: bin.to_path_buf(),
            endpoints: endpoints.to_string(),
            user: None,
        }
    }

    /// The same endpoints, authenticated as `user:password`.
    pub fn with_user(&self, user: &str) -> Ctl {
        Ctl {
            user: Some(user.to_string()),
            ..self.clone()
        }
    }

    /// Runs etcdctl with these arguments; returns its output whatever the exit status.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(&self.bin);
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--command-timeout=15s")
            .arg("--dial-timeout=5s");
        if let Some(u) = &self.user {
            c.arg(format!("--user={u}"));
        }
        c.args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()))
    }

    /// `txn` with its script (compares, blank line, success ops, blank line, failure ops) on
    /// stdin; returns stdout.
    pub fn txn(&self, script: &str) -> String {
        use std::io::Write;
        let mut c = Command::new(&self.bin);
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints))
            .arg("--command-timeout=15s");
        if let Some(u) = &self.user {
            c.arg(format!("--user={u}"));
        }
        let mut child = c
            .arg("txn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.bin.display()));
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(script.as_bytes())
                .expect("write txn script");
        }
        let o = child.wait_with_output().expect("wait etcdctl txn");
        assert!(o.status.success(), "etcdctl txn failed: {}", describe(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs etcdctl and panics unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "etcdctl {args:?} failed: {}",
            describe(&o)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs etcdctl with `-w json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-w", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcdctl {a:?}: bad json {e}: {out}"))
    }

    /// `put k v`; returns the revision of the write.
    pub fn put(&self, key: &str, value: &str) -> i64 {
        let v = self.json(&["put", key, value]);
        as_i64(&v["header"]["revision"])
    }

    /// `put k v --lease=<hex id>`.
    pub fn put_lease(&self, key: &str, value: &str, lease: i64) -> i64 {
        let l = format!("--lease={lease:x}");
        let v = self.json(&["put", key, value, &l]);
        as_i64(&v["header"]["revision"])
    }

    /// `del k`; returns the number of keys deleted.
    pub fn del(&self, key: &str) -> i64 {
        let v = self.json(&["del", key]);
        v.get("deleted").map_or(0, as_i64)
    }

    /// `lease grant ttl`; returns the lease ID.
    pub fn lease_grant(&self, ttl_secs: u64) -> i64 {
        let v = self.json(&["lease", "grant", &ttl_secs.to_string()]);
        as_i64(&v["ID"])
    }

    /// `compaction rev --physical`.
    pub fn compact(&self, rev: i64) {
        self.ok(&["compaction", &rev.to_string(), "--physical"]);
    }

    /// `snapshot save path`.
    pub fn snapshot_save(&self, path: &Path) {
        let p = path.to_str().expect("utf-8 path");
        self.ok(&["snapshot", "save", p]);
    }

    /// `member list -w json`: (cluster ID, members sorted by ID).
    pub fn members(&self) -> (u64, Vec<MemberInfo>) {
        let v = self.json(&["member", "list"]);
        let cluster_id = as_u64(&v["header"]["cluster_id"]);
        let mut members: Vec<MemberInfo> = v["members"]
            .as_array()
            .unwrap_or_else(|| panic!("member list without members: {v}"))
            .iter()
            .map(|m| MemberInfo {
                id: as_u64(&m["ID"]),
                name: m["name"].as_str().unwrap_or_default().to_string(),
                peer_urls: strings(&m["peerURLs"]),
            })
            .collect();
        members.sort();
        (cluster_id, members)
    }

    /// Every key (`get "" --from-key -w json`), decoded.
    pub fn kvs(&self) -> Vec<Kv> {
        let v = self.json(&["get", "", "--from-key"]);
        v.get("kvs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|kv| Kv {
                        key: b64decode(kv["key"].as_str().unwrap_or_default()),
                        value: b64decode(kv.get("value").and_then(Value::as_str).unwrap_or("")),
                        create_revision: kv.get("create_revision").map_or(0, as_i64),
                        mod_revision: kv.get("mod_revision").map_or(0, as_i64),
                        version: kv.get("version").map_or(0, as_i64),
                        lease: kv.get("lease").map_or(0, as_i64),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The store revision of the first endpoint (`endpoint status -w json`).
    pub fn revision(&self) -> i64 {
        let v = self.json(&["endpoint", "status"]);
        as_i64(&v[0]["Status"]["header"]["revision"])
    }

    /// Lease IDs, sorted.
    pub fn leases(&self) -> Vec<i64> {
        let v = self.json(&["lease", "list"]);
        let mut ids: Vec<i64> = v
            .get("leases")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|l| as_i64(&l["id"])).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// `user list` (needs root when auth is on).
    pub fn users(&self) -> Vec<String> {
        let mut u = strings(&self.json(&["user", "list"])["users"]);
        u.sort();
        u
    }

    /// `role list` (needs root when auth is on).
    pub fn roles(&self) -> Vec<String> {
        let mut r = strings(&self.json(&["role", "list"])["roles"]);
        r.sort();
        r
    }

    /// The roles granted to a user.
    pub fn user_roles(&self, user: &str) -> Vec<String> {
        let mut r = strings(&self.json(&["user", "get", user])["roles"]);
        r.sort();
        r
    }

    /// A role's permissions as (type, key, range_end), decoded.
    pub fn role_perms(&self, role: &str) -> Vec<Perm> {
        let v = self.json(&["role", "get", role]);
        v.get("perm")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p.get("permType").map(|t| t.to_string()).unwrap_or_default(),
                            b64decode(p["key"].as_str().unwrap_or_default()),
                            b64decode(p.get("range_end").and_then(Value::as_str).unwrap_or("")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Members, every key, the revision and the leases.
    pub fn state(&self) -> ServerState {
        let (cluster_id, members) = self.members();
        ServerState {
            cluster_id,
            members,
            kvs: self.kvs(),
            revision: self.revision(),
            leases: self.leases(),
        }
    }
}

/// A JSON number as i64 (etcdctl prints int64 fields as numbers).
pub fn as_i64(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an int64: {v}"))
}

/// A JSON number as u64 (IDs are uint64).
pub fn as_u64(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a uint64: {v}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}
