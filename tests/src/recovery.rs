//! End-to-end recovery harness: one real snapshot shared by every test of a binary, the
//! `rescue-init recover` runner, a byte-exact picture of a host tree, a parser of the
//! rewritten etcd configuration that is independent of rescue-init's, and an etcd started
//! with exactly the flags that configuration names.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::ctl::ServerState;
use crate::etcd::{EtcdCluster, MemberSpec};
use crate::fixtures;
use crate::hostroot::{self, HostRoot};
use crate::restorer::rescue_init_bin;
use crate::tools::{Tools, Version};
use crate::util::describe;

/// The revision bump `recover` applies by default.
pub const BUMP: i64 = 1_000_000_000;

/// A real snapshot (with trailer), the raw `member/snap/db` of the same server, and what the
/// server held.
#[derive(Debug)]
pub struct Source {
    pub snapshot: Vec<u8>,
    pub raw_db: Vec<u8>,
    pub state: ServerState,
}

/// The shared source, built once per test binary by a real 1-member etcd 3.5 (`None` when etcd
/// is missing and not required: the caller skips).
pub fn source() -> Option<&'static Source> {
    static SRC: OnceLock<Option<Source>> = OnceLock::new();
    SRC.get_or_init(|| {
        let tools = Tools::require()?;
        let dir = crate::util::tempdir("recover-src");
        let (snap, raw) = fixtures::single(&tools, dir.path());
        Some(Source {
            snapshot: fs::read(&snap.file).expect("read snapshot"),
            raw_db: fs::read(&raw.file).expect("read raw db"),
            state: snap.source,
        })
    })
    .as_ref()
}

/// What the old, stale `/var/lib/etcd` of a simulated host holds (not a usable db).
pub const STALE: &[u8] = b"stale member data of the lost cluster\n";

/// Writes a stale `/var/lib/etcd/member/{snap/db,wal/…}` into the root.
pub fn stale_data_dir(root: &HostRoot) {
    let d = root.join("var/lib/etcd/member");
    hostroot::write_file(&d.join("snap/db"), STALE, 0o600).expect("stale db");
    hostroot::write_file(
        &d.join("wal/0000000000000000-0000000000000000.wal"),
        STALE,
        0o600,
    )
    .expect("stale wal");
}

/// Runs `rescue-init recover --root ROOT ARGS…`.
pub fn recover(root: &Path, args: &[&str]) -> Output {
    recover_with_tmpdir(root, args, None)
}

/// [`recover`] with `TMPDIR` set (where a dry run stages).
pub fn recover_with_tmpdir(root: &Path, args: &[&str], tmpdir: Option<&Path>) -> Output {
    let env: Vec<(&str, &str)> = tmpdir
        .and_then(Path::to_str)
        .map(|t| ("TMPDIR", t))
        .into_iter()
        .collect();
    recover_with_env(root, args, &env)
}

/// [`recover`] with more environment variables (S3 keys, `TMPDIR`).
pub fn recover_with_env(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = rescue_init_bin().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(bin);
    cmd.envs(env.iter().copied());
    cmd.arg("recover")
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_LOG", "info")
        .output()
        .expect("run rescue-init recover")
}

/// [`recover`], panicking with its output unless it succeeds.
pub fn recover_ok(root: &Path, args: &[&str]) -> Output {
    let o = recover(root, args);
    assert!(o.status.success(), "recover failed:\n{}", describe(&o));
    o
}

/// Runs recover on `root` and checks: failure, one `error:` line on stderr naming `expect`
/// (case-insensitive), the tree unchanged (byte for byte, hidden entries included). Returns
/// stderr.
pub fn assert_refused(root: &Path, args: &[&str], expect: &str) -> String {
    let before = picture(root);
    let out = recover(root, args);
    let after = picture(root);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !out.status.success(),
        "recover succeeded on bad input:\n{stdout}\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line:\nstderr:\n{stderr}\nstdout:\n{stdout}"
    );
    assert!(
        errors[0].to_lowercase().contains(&expect.to_lowercase()),
        "error line {:?} does not mention {expect:?}\n{stdout}",
        errors[0]
    );
    assert_same_tree(&before, &after, errors[0]);
    crate::tools::note(errors[0]);
    stderr
}

/// One entry of a tree picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, sha256: String, len: u64 },
    Symlink { target: PathBuf },
    Other { mode: u32 },
}

/// Every entry under `dir` (hidden ones included), by relative path, with mode and content
/// hash: two equal pictures mean a byte-identical tree.
pub fn picture(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    fn go(base: &Path, d: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let mut names: Vec<_> = fs::read_dir(d)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display()))
            .map(|e| e.expect("dir entry").path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(base).expect("under base").to_path_buf();
            let m = fs::symlink_metadata(&p).expect("lstat");
            let mode = m.permissions().mode() & 0o7777;
            let ft = m.file_type();
            if ft.is_symlink() {
                let target = fs::read_link(&p).expect("readlink");
                out.insert(rel, Entry::Symlink { target });
            } else if ft.is_dir() {
                out.insert(rel, Entry::Dir { mode });
                go(base, &p, out);
            } else if ft.is_file() {
                let mut h = Sha256::new();
                let mut f = fs::File::open(&p).expect("open");
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = f.read(&mut buf).expect("read");
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                let sha256 = format!("{:x}", h.finalize());
                out.insert(
                    rel,
                    Entry::File {
                        mode,
                        sha256,
                        len: m.size(),
                    },
                );
            } else {
                out.insert(rel, Entry::Other { mode });
            }
        }
    }
    let mut out = BTreeMap::new();
    let m = fs::symlink_metadata(dir).expect("lstat root");
    out.insert(
        PathBuf::new(),
        Entry::Dir {
            mode: m.permissions().mode() & 0o7777,
        },
    );
    go(dir, dir, &mut out);
    out
}

/// Panics with the differing entries unless the two pictures are equal.
pub fn assert_same_tree(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    what: &str,
) {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("removed {}", k.display())),
            Some(w) if w != v => d.push(format!("changed {}: {v:?} -> {w:?}", k.display())),
            _ => {}
        }
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        d.push(format!("added {}", k.display()));
    }
    assert!(d.is_empty(), "{what}: host tree changed:\n{}", d.join("\n"));
}

/// The etcd flags of a configuration file, read with a parser of our own (not rescue-init's):
/// `- --flag=value` lines of a static pod manifest, `--flag=value` words of a systemd unit's
/// `ExecStart`, `ETCD_FLAG=value` lines of an env file, `key: value` lines under a kubeadm
/// `extraArgs:`.
pub fn parse_flags(path: &Path) -> BTreeMap<String, String> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut out = BTreeMap::new();
    let unquote = |v: &str| v.trim().trim_matches('"').trim_matches('\'').to_string();
    if path.extension().is_some_and(|e| e == "yaml") && text.contains("extraArgs:") {
        let mut indent = None;
        for line in text.lines() {
            let lead = line.len() - line.trim_start().len();
            if line.trim() == "extraArgs:" {
                indent = Some(lead);
                continue;
            }
            match indent {
                Some(i) if lead > i && !line.trim().is_empty() => {
                    if let Some((k, v)) = line.trim().split_once(':') {
                        out.insert(k.trim().to_string(), unquote(v));
                    }
                }
                Some(_) => indent = None,
                None => {}
            }
        }
    } else if path.extension().is_some_and(|e| e == "yaml") {
        for line in text.lines() {
            if let Some(f) = line.trim().strip_prefix("- --") {
                let (k, v) = f.split_once('=').unwrap_or((f, "true"));
                out.insert(k.to_string(), unquote(v));
            }
        }
    } else if name.as_deref().is_some_and(|n| n.ends_with(".service")) {
        for line in text.lines() {
            if let Some(cmd) = line.trim().strip_prefix("ExecStart=") {
                for w in cmd.split_whitespace() {
                    if let Some(f) = w.strip_prefix("--") {
                        let (k, v) = f.split_once('=').unwrap_or((f, "true"));
                        out.insert(k.to_string(), unquote(v));
                    }
                }
            }
        }
    } else {
        for line in text.lines() {
            if let Some((k, v)) = line.trim().split_once('=') {
                if let Some(flag) = k.trim().strip_prefix("ETCD_") {
                    out.insert(flag.to_lowercase().replace('_', "-"), unquote(v));
                }
            }
        }
    }
    out
}

/// The flags a recovered etcd is started with, from the host's configuration.
#[derive(Debug, Clone)]
pub struct MemberFlags {
    pub name: String,
    /// Mapped into the root.
    pub data_dir: PathBuf,
    pub initial_advertise_peer_urls: String,
    pub listen_peer_urls: String,
    pub listen_client_urls: String,
    pub advertise_client_urls: String,
    pub initial_cluster: Option<String>,
    pub initial_cluster_state: Option<String>,
    pub force_new_cluster: bool,
}

impl MemberFlags {
    /// Reads them from `flags`; a missing data dir is etcd's kubeadm default `/var/lib/etcd`.
    pub fn from(root: &Path, flags: &BTreeMap<String, String>) -> MemberFlags {
        let get = |k: &str| {
            flags
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("--{k} missing from {flags:?}"))
        };
        let dd = flags
            .get("data-dir")
            .cloned()
            .unwrap_or_else(|| "/var/lib/etcd".into());
        MemberFlags {
            name: get("name"),
            data_dir: root.join(dd.trim_start_matches('/')),
            initial_advertise_peer_urls: get("initial-advertise-peer-urls"),
            listen_peer_urls: get("listen-peer-urls"),
            listen_client_urls: get("listen-client-urls"),
            advertise_client_urls: get("advertise-client-urls"),
            initial_cluster: flags.get("initial-cluster").cloned(),
            initial_cluster_state: flags.get("initial-cluster-state").cloned(),
            force_new_cluster: flags.contains_key("force-new-cluster"),
        }
    }

    /// The port of the first loopback client URL (where health is polled).
    fn loopback_client_port(&self) -> u16 {
        self.listen_client_urls
            .split(',')
            .find_map(|u| u.strip_prefix("http://127.0.0.1:"))
            .or_else(|| {
                self.listen_client_urls
                    .split(',')
                    .find_map(|u| u.rsplit_once(':').map(|(_, p)| p))
            })
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no client port in {}", self.listen_client_urls))
    }

    /// Starts etcd 3.5 with exactly these flags.
    pub fn start(&self, tools: &Tools) -> EtcdCluster {
        let mut args: Vec<OsString> = vec![
            format!("--name={}", self.name).into(),
            format!("--data-dir={}", self.data_dir.display()).into(),
            format!(
                "--initial-advertise-peer-urls={}",
                self.initial_advertise_peer_urls
            )
            .into(),
            format!("--listen-peer-urls={}", self.listen_peer_urls).into(),
            format!("--listen-client-urls={}", self.listen_client_urls).into(),
            format!("--advertise-client-urls={}", self.advertise_client_urls).into(),
        ];
        if let Some(ic) = &self.initial_cluster {
            args.push(format!("--initial-cluster={ic}").into());
        }
        if let Some(s) = &self.initial_cluster_state {
            args.push(format!("--initial-cluster-state={s}").into());
        }
        let spec = MemberSpec {
            name: self.name.clone(),
            peer_port: 0,
            client_port: self.loopback_client_port(),
            extra_peer_ports: Vec::new(),
        };
        EtcdCluster::start_with_args(tools, Version::V3_5, spec, &self.data_dir, args)
    }
}

/// Checks a recovered host: etcd started from `flags` has one member named `name` with peer
/// URL `peer_url`, every key of the source with its value, and a revision past
/// `source + BUMP` (or equal to the source's with `bumped == false`). Returns the server's
/// revision.
pub fn check_server(
    tools: &Tools,
    flags: &MemberFlags,
    src: &ServerState,
    name: &str,
    peer_url: &str,
    bumped: bool,
) -> i64 {
    assert!(
        !flags.force_new_cluster,
        "--force-new-cluster left in the configuration"
    );
    assert_eq!(flags.name, name, "member name in the configuration");
    assert_eq!(
        flags.initial_advertise_peer_urls, peer_url,
        "peer URL in the configuration"
    );
    let server = flags.start(tools);
    let ctl = server.ctl();
    let (_, members) = ctl.members();
    assert_eq!(members.len(), 1, "one member: {members:?}");
    assert_eq!(members[0].name, name, "{members:?}");
    assert_eq!(members[0].peer_urls, vec![peer_url.to_string()]);
    let got: BTreeMap<Vec<u8>, Vec<u8>> =
        ctl.kvs().into_iter().map(|kv| (kv.key, kv.value)).collect();
    for kv in &src.kvs {
        assert_eq!(
            got.get(&kv.key),
            Some(&kv.value),
            "key {:?} after recovery",
            String::from_utf8_lossy(&kv.key)
        );
    }
    assert_eq!(got.len(), src.kvs.len(), "no key more, no key less");
    let rev = ctl.revision();
    if bumped {
        assert!(
            rev >= src.revision + BUMP,
            "revision {rev} below {} + {BUMP}",
            src.revision
        );
    } else {
        assert_eq!(rev, src.revision, "revision kept with --no-bump");
    }
    rev
}

/// The one `<dir>.before-rescue-*` sibling of `dir`.
pub fn moved_aside(dir: &Path) -> PathBuf {
    let parent = dir.parent().expect("parent");
    let prefix = format!(
        "{}.before-rescue-",
        dir.file_name().expect("name").to_string_lossy()
    );
    let found: Vec<PathBuf> = fs::read_dir(parent)
        .expect("read parent")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {prefix}* beside {}: {found:?}",
        dir.display()
    );
    found.into_iter().next().expect("one")
}

/// The stale data dir was moved aside with its bytes, not deleted.
pub fn check_stale_moved_aside(root: &HostRoot) {
    let aside = moved_aside(&root.join("var/lib/etcd"));
    for f in [
        "member/snap/db",
        "member/wal/0000000000000000-0000000000000000.wal",
    ] {
        assert_eq!(
            fs::read(aside.join(f)).expect("old file kept"),
            STALE,
            "{f} moved aside intact"
        );
    }
}

/// Every file of `before` under `prefix` is found, with its bytes, under `moved` (a tree moved
/// aside keeps everything).
pub fn check_kept(
    before: &BTreeMap<PathBuf, Entry>,
    after: &BTreeMap<PathBuf, Entry>,
    prefix: &str,
    moved: &Path,
) {
    for (k, v) in before.iter().filter(|(k, _)| k.starts_with(prefix)) {
        let rest = k.strip_prefix(prefix).expect("prefix");
        let new = moved.join(rest);
        if let Entry::File { sha256, .. } = v {
            match after.get(&new) {
                Some(Entry::File { sha256: s2, .. }) if s2 == sha256 => {}
                other => panic!("{} not kept as {}: {other:?}", k.display(), new.display()),
            }
        }
    }
}

/// A kubeadm host recovered from `src` as `node`: see [`check_recovered_host`].
pub fn check_recovered_kubeadm(
    tools: &Tools,
    root: &HostRoot,
    src: &Source,
    node: &hostroot::Node,
) {
    check_recovered_host(tools, root, src, node, "etc/kubernetes/manifests/etcd.yaml");
}

/// A host recovered from `src` as `node`: etcd started with the flags of the rewritten etcd
/// configuration `config` (a static pod manifest, kubeadmcfg.yaml, a unit or env file) serves
/// one member and every key (see [`check_server`]), and the stale data dir was moved aside.
pub fn check_recovered_host(
    tools: &Tools,
    root: &HostRoot,
    src: &Source,
    node: &hostroot::Node,
    config: &str,
) {
    let flags = MemberFlags::from(root.path(), &parse_flags(&root.join(config)));
    check_server(
        tools,
        &flags,
        &src.state,
        &node.name,
        &node.peer_url(),
        true,
    );
    check_stale_moved_aside(root);
}

/// The `report.json` of the one recovery run on `root`.
pub fn report_json(root: &HostRoot) -> serde_json::Value {
    let dir = fs::read_dir(root.join("var/log/rescue-init"))
        .expect("report dir")
        .next()
        .expect("one report")
        .expect("report dir entry")
        .path();
    serde_json::from_slice(&fs::read(dir.join("report.json")).expect("report.json"))
        .expect("report json")
}

/// stdout and stderr of a run, one after the other.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
