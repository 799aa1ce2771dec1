//! Real etcd processes on loopback: fresh clusters and servers on restored data dirs.
//! Every process is stopped on drop (SIGTERM, then SIGKILL), so no etcd outlives a test.
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ctl::{Ctl, ServerState};
use crate::tools::{Tools, Version};
use crate::util::{free_port, tail, tempdir};

/// How long a member may take to report healthy.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a member may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Backend quota for test servers (keeps them small; the fixtures are tiny).
const QUOTA_BYTES: u64 = 256 << 20;

/// A member's name and loopback ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub name: String,
    pub peer_port: u16,
    pub client_port: u16,
    /// More peer URLs (ports on 127.0.0.1), advertised after the first, in this order.
    pub extra_peer_ports: Vec<u16>,
}

impl MemberSpec {
    /// A member with two fresh free ports.
    pub fn new(name: &str) -> MemberSpec {
        MemberSpec {
            name: name.to_string(),
            peer_port: free_port(),
            client_port: free_port(),
            extra_peer_ports: Vec::new(),
        }
    }

    /// The first peer URL.
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    /// Every peer URL, the first one first.
    pub fn peer_urls(&self) -> Vec<String> {
        std::iter::once(self.peer_port)
            .chain(self.extra_peer_ports.iter().copied())
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect()
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

/// `a=URL,b=URL,…` for these members (a member with several peer URLs appears once per URL).
pub fn initial_cluster(members: &[MemberSpec]) -> String {
    members
        .iter()
        .flat_map(|m| {
            m.peer_urls()
                .into_iter()
                .map(move |u| format!("{}={u}", m.name))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Options of a new cluster.
#[derive(Debug, Clone)]
pub struct EtcdOpts {
    pub token: String,
    /// Names of the members (default `m0`, `m1`, …).
    pub names: Vec<String>,
}

impl Default for EtcdOpts {
    fn default() -> Self {
        EtcdOpts {
            token: "rescue-test".to_string(),
            names: Vec::new(),
        }
    }
}

/// One etcd process (possibly stopped).
#[derive(Debug)]
pub struct EtcdProcess {
    pub spec: MemberSpec,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    bin: PathBuf,
    args: Vec<OsString>,
    child: Option<Child>,
}

impl EtcdProcess {
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.spec.name);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open etcd log");
        let log2 = log.try_clone().expect("dup etcd log");
        let child = Command::new(&self.bin)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// Polls `/health` until it says true; panics (with the log's tail) on exit or timeout.
    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + HEALTH_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    panic!(
                        "etcd {} exited with {st} before becoming healthy; log tail:\n{}",
                        self.spec.name,
                        tail(&self.log, 40)
                    );
                }
            }
            if health(self.spec.client_port) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "etcd {} not healthy after {HEALTH_TIMEOUT:?}; log tail:\n{}",
                    self.spec.name,
                    tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the process: SIGTERM (etcd commits its backend and exits), SIGKILL after a timeout.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// The OS process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One or more etcd processes forming a cluster, with the temp dir holding logs (and, for a
/// new cluster, the data dirs). Dropping it kills every process.
#[derive(Debug)]
pub struct EtcdCluster {
    pub version: Version,
    pub members: Vec<EtcdProcess>,
    ctl_bin: PathBuf,
    // Declared after `members` so the processes die before their dirs are removed.
    _dir: tempfile::TempDir,
}

impl EtcdCluster {
    /// A new cluster of `n` members of `version`, data dirs in a temp dir, healthy on return.
    pub fn start(tools: &Tools, version: Version, n: usize, opts: &EtcdOpts) -> EtcdCluster {
        let dir = tempdir("etcd");
        let specs: Vec<MemberSpec> = (0..n)
            .map(|i| {
                let name = opts
                    .names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("m{i}"));
                MemberSpec::new(&name)
            })
            .collect();
        let ic = initial_cluster(&specs);
        let members = specs
            .into_iter()
            .map(|spec| {
                let data_dir = dir.path().join(format!("{}.etcd", spec.name));
                let mut args = base_args(version, &spec, &data_dir);
                args.extend(
                    [
                        format!("--initial-cluster={ic}"),
                        "--initial-cluster-state=new".to_string(),
                        format!("--initial-cluster-token={}", opts.token),
                    ]
                    .map(OsString::from),
                );
                EtcdProcess {
                    log: dir.path().join(format!("{}.log", spec.name)),
                    spec,
                    data_dir,
                    bin: tools.etcd(version),
                    args,
                    child: None,
                }
            })
            .collect();
        EtcdCluster::launch(tools, version, members, dir)
    }

    /// Servers on data dirs made by a restore: `members[i]` is the spec the restore used (name
    /// and peer URL) and the data dir. The initial-cluster flags are ignored by etcd for a data
    /// dir that has a WAL; they are passed consistently anyway.
    pub fn start_restored(
        tools: &Tools,
        version: Version,
        members: &[(MemberSpec, PathBuf)],
    ) -> EtcdCluster {
        let dir = tempdir("etcd-restored");
        let specs: Vec<MemberSpec> = members.iter().map(|(s, _)| s.clone()).collect();
        let ic = initial_cluster(&specs);
        let procs = members
            .iter()
            .map(|(spec, data_dir)| {
                let mut args = base_args(version, spec, data_dir);
                args.push(format!("--initial-cluster={ic}").into());
                EtcdProcess {
                    log: dir.path().join(format!("{}.log", spec.name)),
                    spec: spec.clone(),
                    data_dir: data_dir.clone(),
                    bin: tools.etcd(version),
                    args,
                    child: None,
                }
            })
            .collect();
        EtcdCluster::launch(tools, version, procs, dir)
    }

    /// One server started with exactly `args` (e.g. the flags of a rewritten configuration).
    /// `spec` names it and gives the loopback client port its health is polled on.
    pub fn start_with_args(
        tools: &Tools,
        version: Version,
        spec: MemberSpec,
        data_dir: &Path,
        args: Vec<OsString>,
    ) -> EtcdCluster {
        let dir = tempdir("etcd-flags");
        let p = EtcdProcess {
            log: dir.path().join(format!("{}.log", spec.name)),
            spec,
            data_dir: data_dir.to_path_buf(),
            bin: tools.etcd(version),
            args,
            child: None,
        };
        EtcdCluster::launch(tools, version, vec![p], dir)
    }

    fn launch(
        tools: &Tools,
        version: Version,
        members: Vec<EtcdProcess>,
        dir: tempfile::TempDir,
    ) -> EtcdCluster {
        let mut c = EtcdCluster {
            version,
            members,
            ctl_bin: tools.etcdctl(version),
            _dir: dir,
        };
        for m in &mut c.members {
            m.spawn();
        }
        for m in &mut c.members {
            m.wait_healthy();
        }
        c
    }

    /// etcdctl (of this cluster's version) against every running member.
    pub fn ctl(&self) -> Ctl {
        let eps: Vec<String> = self.members.iter().map(|m| m.spec.client_url()).collect();
        Ctl::new(&self.ctl_bin, &eps.join(","))
    }

    /// etcdctl against member `i` only.
    pub fn ctl_member(&self, i: usize) -> Ctl {
        Ctl::new(&self.ctl_bin, &self.members[i].spec.client_url())
    }

    /// Stops member `i` gracefully (its backend is committed; its `member/snap/db` can be copied).
    pub fn stop_member(&mut self, i: usize) {
        self.members[i].stop();
    }

    /// Stops every member, then starts them again and waits for health.
    pub fn restart(&mut self) {
        for m in &mut self.members {
            m.stop();
        }
        for m in &mut self.members {
            m.spawn();
        }
        for m in &mut self.members {
            m.wait_healthy();
        }
    }

    /// Members, every key and the revision, read through member 0 (as `user`, if given).
    pub fn state(&self, user: Option<&str>) -> ServerState {
        let mut ctl = self.ctl_member(0);
        if let Some(u) = user {
            ctl = ctl.with_user(u);
        }
        ctl.state()
    }

    /// The logs of every member, for diagnosis.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("--- {} ---\n{}", m.spec.name, tail(&m.log, 30)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn base_args(version: Version, spec: &MemberSpec, data_dir: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        format!("--name={}", spec.name).into(),
        "--data-dir".into(),
        data_dir.as_os_str().to_owned(),
        format!("--listen-peer-urls={}", spec.peer_urls().join(",")).into(),
        format!(
            "--initial-advertise-peer-urls={}",
            spec.peer_urls().join(",")
        )
        .into(),
        format!("--listen-client-urls={}", spec.client_url()).into(),
        format!("--advertise-client-urls={}", spec.client_url()).into(),
        format!("--quota-backend-bytes={QUOTA_BYTES}").into(),
        // Faster elections than the defaults (100 ms / 1000 ms): everything is on loopback.
        "--heartbeat-interval=50".into(),
        "--election-timeout=500".into(),
    ];
    if version.has_unsafe_no_fsync() {
        a.push("--unsafe-no-fsync".into());
    }
    a
}

/// `GET /health` on a client port answers `"health":"true"`.
fn health(port: u16) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.contains("\"health\":\"true\"")
}
