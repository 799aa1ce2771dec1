//! Simulated host roots, one builder per backup layout, for discovery and end-to-end recovery
//! tests. Every builder takes the bytes of an `etcdctl snapshot save` file (with its SHA-256
//! trailer) — a real one from an etcd run, or `rescue_init::discover::bbolt::synthetic` for
//! discovery-only tests — and lays it out under a host root the way the product does.
//!
//! The `/etc/kubernetes` sample is kubeadm-shaped (manifests, pki with private keys at 0600,
//! kubeconfigs). Certificates and keys are placeholders, not parseable PEM.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::tarw;
use crate::zipw::{self, ZipEntry};

/// Who the member is in the sample configuration.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub ip: String,
    /// `https` (kubeadm's) or `http` (lets a test start etcd without certificates).
    pub scheme: String,
    pub peer_port: u16,
    pub client_port: u16,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            name: "master-0".into(),
            ip: "10.0.0.10".into(),
            scheme: "https".into(),
            peer_port: 2380,
            client_port: 2379,
        }
    }
}

impl Node {
    /// A node on loopback with plain http URLs and free ports, whose etcd can start from its
    /// configuration without certificates.
    pub fn loopback(name: &str, ip: &str) -> Node {
        Node {
            name: name.into(),
            ip: ip.into(),
            scheme: "http".into(),
            peer_port: crate::util::free_port(),
            client_port: crate::util::free_port(),
        }
    }
    /// The member's peer URL.
    pub fn peer_url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.ip, self.peer_port)
    }
    /// The member's client URL.
    pub fn client_url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.ip, self.client_port)
    }
    /// The client URLs etcd listens on: loopback and the node's address (once if the same).
    pub fn listen_client_urls(&self) -> String {
        let lo = format!("{}://127.0.0.1:{}", self.scheme, self.client_port);
        if self.ip == "127.0.0.1" {
            lo
        } else {
            format!("{lo},{}", self.client_url())
        }
    }
}

/// A host root in a temporary directory.
pub struct HostRoot {
    dir: tempfile::TempDir,
}

impl HostRoot {
    pub fn new() -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("hostroot").tempdir()?;
        for d in ["etc", "var/lib", "root", "home", "opt", "tmp"] {
            fs::create_dir_all(dir.path().join(d))?;
        }
        Ok(HostRoot { dir })
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

/// Writes `data` at `path` with `mode`, creating parents.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Sets the modification time of `path` (seconds since the epoch).
pub fn set_mtime(path: &Path, secs: u64) -> io::Result<()> {
    let f = fs::File::options().write(true).open(path)?;
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// The snapshot without its SHA-256 trailer (what a bbolt db file looks like).
pub fn strip_trailer(snapshot: &[u8]) -> &[u8] {
    if snapshot.len() % 512 == 32 {
        snapshot.get(..snapshot.len() - 32).unwrap_or(snapshot)
    } else {
        snapshot
    }
}

fn pem(kind: &str, what: &str) -> Vec<u8> {
    format!("-----BEGIN {kind}-----\nplaceholder for {what}\n-----END {kind}-----\n").into_bytes()
}

/// A kubeadm static pod manifest for etcd, in the shape kubeadm writes it.
pub fn etcd_manifest(node: &Node) -> String {
    let name = &node.name;
    let peer = node.peer_url();
    let client = node.client_url();
    let listen_client = node.listen_client_urls();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: {client}
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls={client}
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls={peer}
    - --initial-cluster={name}={peer},master-1=https://10.0.0.11:2380,master-2=https://10.0.0.12:2380
    - --initial-cluster-state=existing
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls={listen_client}
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls={peer}
    - --name={name}
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.15-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
"
    )
}

/// A kube-apiserver static pod manifest (the flags recovery rewrites).
pub fn apiserver_manifest(node: &Node) -> String {
    let ip = &node.ip;
    let etcd = format!("{}://127.0.0.1:{}", node.scheme, node.client_port);
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address={ip}
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers={etcd}
    - --secure-port=6443
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-account-signing-key-file=/etc/kubernetes/pki/sa.key
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.30.4
    name: kube-apiserver
  hostNetwork: true
"
    )
}

fn kubeconfig(user: &str, ip: &str) -> String {
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: cGxhY2Vob2xkZXI=
    server: https://{ip}:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: {user}
  name: {user}@kubernetes
current-context: {user}@kubernetes
kind: Config
users:
- name: {user}
  user:
    client-certificate-data: cGxhY2Vob2xkZXI=
    client-key-data: cGxhY2Vob2xkZXI=
"
    )
}

/// Writes a kubeadm-shaped `/etc/kubernetes` into `dir`. Private keys and kubeconfigs get 0600.
pub fn write_kubernetes_tree(dir: &Path, node: &Node) -> io::Result<()> {
    let m = |p: &str| dir.join(p);
    write_file(
        &m("manifests/etcd.yaml"),
        etcd_manifest(node).as_bytes(),
        0o600,
    )?;
    write_file(
        &m("manifests/kube-apiserver.yaml"),
        apiserver_manifest(node).as_bytes(),
        0o600,
    )?;
    for c in ["kube-controller-manager", "kube-scheduler"] {
        let body = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {c}\n  namespace: kube-system\n"
        );
        write_file(&m(&format!("manifests/{c}.yaml")), body.as_bytes(), 0o600)?;
    }
    for (file, user) in [
        ("admin.conf", "kubernetes-admin"),
        ("super-admin.conf", "kubernetes-super-admin"),
        ("controller-manager.conf", "system:kube-controller-manager"),
        ("scheduler.conf", "system:kube-scheduler"),
        ("kubelet.conf", "system:node"),
    ] {
        write_file(&m(file), kubeconfig(user, &node.ip).as_bytes(), 0o600)?;
    }
    for pair in [
        "pki/ca",
        "pki/apiserver",
        "pki/apiserver-kubelet-client",
        "pki/apiserver-etcd-client",
        "pki/front-proxy-ca",
        "pki/front-proxy-client",
        "pki/etcd/ca",
        "pki/etcd/server",
        "pki/etcd/peer",
        "pki/etcd/healthcheck-client",
    ] {
        write_file(&m(&format!("{pair}.crt")), &pem("CERTIFICATE", pair), 0o644)?;
        write_file(
            &m(&format!("{pair}.key")),
            &pem("RSA PRIVATE KEY", pair),
            0o600,
        )?;
    }
    write_file(&m("pki/sa.key"), &pem("RSA PRIVATE KEY", "sa"), 0o600)?;
    write_file(&m("pki/sa.pub"), &pem("PUBLIC KEY", "sa"), 0o644)?;
    Ok(())
}

/// The host's own, live `/etc/kubernetes` (for layouts where only etcd data is backed up).
pub fn host_kubernetes(root: &HostRoot, node: &Node) -> io::Result<PathBuf> {
    let dir = root.join("etc/kubernetes");
    write_kubernetes_tree(&dir, node)?;
    Ok(dir)
}

/// A plain `etcdctl snapshot save` file at `rel` (e.g. `root/backups/etcd-20240102-030405.db`).
pub fn plain_snapshot(root: &HostRoot, snapshot: &[u8], rel: &str) -> io::Result<PathBuf> {
    let p = root.join(rel);
    write_file(&p, snapshot, 0o600)?;
    Ok(p)
}

/// A raw `member/snap/db` copy (no trailer, no WAL) under `rel_dir` (e.g. `backup/etcd-db`).
pub fn raw_db(root: &HostRoot, snapshot: &[u8], rel_dir: &str) -> io::Result<PathBuf> {
    let p = root.join(rel_dir).join("member/snap/db");
    write_file(&p, strip_trailer(snapshot), 0o600)?;
    Ok(p)
}

/// A whole etcd data dir copy (`member/snap/db` + a WAL file) at `rel_dir`
/// (`var/lib/etcd` for the host's own). The WAL file is a placeholder of the preallocated size
/// class, not a replayable log.
pub fn data_dir(root: &HostRoot, snapshot: &[u8], rel_dir: &str) -> io::Result<PathBuf> {
    let dir = root.join(rel_dir);
    write_file(&dir.join("member/snap/db"), strip_trailer(snapshot), 0o600)?;
    write_file(
        &dir.join("member/wal/0000000000000000-0000000000000000.wal"),
        &[0u8; 4096],
        0o600,
    )?;
    fs::set_permissions(dir.join("member"), fs::Permissions::from_mode(0o700))?;
    Ok(dir)
}

/// kubeadm: a snapshot and a copy of `/etc/kubernetes` as a directory beside it, in `rel_dir`.
pub fn kubeadm_dir(
    root: &HostRoot,
    snapshot: &[u8],
    rel_dir: &str,
    node: &Node,
) -> io::Result<PathBuf> {
    let dir = root.join(rel_dir);
    write_kubernetes_tree(&dir.join("kubernetes"), node)?;
    let snap = dir.join("etcd-snapshot.db");
    write_file(&snap, snapshot, 0o600)?;
    Ok(snap)
}

/// kubeadm: a snapshot and `etc-kubernetes.tar.gz` (members `kubernetes/...`) beside it.
pub fn kubeadm_targz(
    root: &HostRoot,
    snapshot: &[u8],
    rel_dir: &str,
    node: &Node,
) -> io::Result<PathBuf> {
    let dir = root.join(rel_dir);
    let tree = tempfile::tempdir()?;
    write_kubernetes_tree(tree.path(), node)?;
    write_file(
        &dir.join("etc-kubernetes.tar.gz"),
        &tarw::tar_gz_dir(tree.path(), "kubernetes", &[])?,
        0o600,
    )?;
    let snap = dir.join("etcd-snapshot.db");
    write_file(&snap, snapshot, 0o600)?;
    Ok(snap)
}

/// Deckhouse manual backup: `kube-backup.tar.gz` = `./etcd-backup.snapshot` + `./kubernetes/`
/// (deckhouse `modules/040-control-plane-manager/docs/FAQ.md`), at `rel` (e.g. `root/kube-backup.tar.gz`).
pub fn deckhouse_kube_backup(
    root: &HostRoot,
    snapshot: &[u8],
    rel: &str,
    node: &Node,
) -> io::Result<PathBuf> {
    let tree = tempfile::tempdir()?;
    write_kubernetes_tree(tree.path(), node)?;
    let p = root.join(rel);
    write_file(
        &p,
        &tarw::tar_gz_dir(
            tree.path(),
            "./kubernetes",
            &[("./etcd-backup.snapshot", snapshot)],
        )?,
        0o600,
    )?;
    Ok(p)
}

/// Deckhouse daily backup: `/var/lib/etcd/etcd-backup.tar.gz` holding `etcd-backup.snapshot`
/// (deckhouse `images/etcd-backup/entrypoint.sh`).
pub fn deckhouse_daily(root: &HostRoot, snapshot: &[u8]) -> io::Result<PathBuf> {
    let p = root.join("var/lib/etcd/etcd-backup.tar.gz");
    let tar = tarw::tar(&[tarw::TarEntry::file("etcd-backup.snapshot", snapshot).mode(0o600)])?;
    write_file(&p, &tarw::gzip(&tar)?, 0o600)?;
    Ok(p)
}

/// OpenShift 4 `cluster-backup.sh` output in `rel_dir`: `snapshot_<ts>.db` and, if
/// `with_resources`, `static_kuberesources_<ts>.tar.gz` (`ts` like `2024-01-02_030405`).
pub fn openshift(
    root: &HostRoot,
    snapshot: &[u8],
    rel_dir: &str,
    ts: &str,
    with_resources: bool,
) -> io::Result<PathBuf> {
    let dir = root.join(rel_dir);
    let snap = dir.join(format!("snapshot_{ts}.db"));
    write_file(&snap, snapshot, 0o600)?;
    if with_resources {
        let tree = tempfile::tempdir()?;
        for pod in [
            "kube-apiserver-pod-7",
            "kube-controller-manager-pod-5",
            "kube-scheduler-pod-4",
            "etcd-pod-3",
        ] {
            let base = tree.path().join("static-pod-resources").join(pod);
            let component = pod.rsplit_once("-pod-").map(|(c, _)| c).unwrap_or(pod);
            write_file(
                &base.join(format!("{component}-pod.yaml")),
                format!("kind: Pod\nmetadata:\n  name: {component}\n").as_bytes(),
                0o644,
            )?;
            write_file(
                &base.join("secrets/serving-cert/tls.key"),
                &pem("RSA PRIVATE KEY", pod),
                0o600,
            )?;
        }
        write_file(
            &dir.join(format!("static_kuberesources_{ts}.tar.gz")),
            &tarw::tar_gz_dir(tree.path(), "", &[])?,
            0o600,
        )?;
    }
    Ok(snap)
}

/// Cray CSM: `etcd-backup-<ts>.tar.gz` holding `etcd-backup-<ts>/etcd-dump.bin` at `rel_dir`, and
/// a host whose etcd is a systemd service configured from `/etc/kubernetes/kubeadmcfg.yaml`
/// (`ts` like `2024-01-02-03-04-05`).
pub fn cray(
    root: &HostRoot,
    snapshot: &[u8],
    rel_dir: &str,
    ts: &str,
    node: &Node,
) -> io::Result<PathBuf> {
    let name = format!("etcd-backup-{ts}");
    let tar = tarw::tar(&[
        tarw::TarEntry::dir(&format!("{name}/")),
        tarw::TarEntry::file(&format!("{name}/etcd-dump.bin"), snapshot).mode(0o600),
    ])?;
    let p = root.join(rel_dir).join(format!("{name}.tar.gz"));
    write_file(&p, &tarw::gzip(&tar)?, 0o600)?;
    let (n, ip) = (&node.name, &node.ip);
    let (peer, client, listen_client) = (
        node.peer_url(),
        node.client_url(),
        node.listen_client_urls(),
    );
    let cfg = format!(
        "apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
etcd:
  local:
    serverCertSANs:
    - \"{ip}\"
    peerCertSANs:
    - \"{ip}\"
    extraArgs:
      initial-cluster: {n}={peer},ncn-m002=https://10.252.1.8:2380,ncn-m003=https://10.252.1.9:2380
      initial-cluster-state: new
      name: {n}
      listen-peer-urls: {peer}
      listen-client-urls: {listen_client}
      advertise-client-urls: {client}
      initial-advertise-peer-urls: {peer}
"
    );
    write_file(
        &root.join("etc/kubernetes/kubeadmcfg.yaml"),
        cfg.as_bytes(),
        0o600,
    )?;
    let unit = "[Unit]\nDescription=etcd\n\n[Service]\nEnvironmentFile=-/etc/sysconfig/etcd\nExecStart=/usr/bin/etcd $ETCD_ARGS\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n";
    write_file(
        &root.join("etc/systemd/system/etcd.service"),
        unit.as_bytes(),
        0o644,
    )?;
    for pair in ["pki/etcd/ca", "pki/etcd/server", "pki/etcd/peer"] {
        write_file(
            &root.join("etc/kubernetes").join(format!("{pair}.crt")),
            &pem("CERTIFICATE", pair),
            0o644,
        )?;
        write_file(
            &root.join("etc/kubernetes").join(format!("{pair}.key")),
            &pem("RSA PRIVATE KEY", pair),
            0o600,
        )?;
    }
    Ok(p)
}

/// An RKE cluster state (`cluster.rkestate` shape) with a few certificate bundle entries.
pub fn rke_state(node: &Node) -> String {
    let ip = &node.ip;
    let entry = |name: &str, cfg: bool| {
        serde_json::json!({
            "certificatePEM": String::from_utf8_lossy(&pem("CERTIFICATE", name)),
            "keyPEM": String::from_utf8_lossy(&pem("RSA PRIVATE KEY", name)),
            "config": if cfg { kubeconfig(name, ip) } else { String::new() },
            "name": name,
            "path": format!("/etc/kubernetes/ssl/{name}.pem"),
            "keyPath": format!("/etc/kubernetes/ssl/{name}-key.pem"),
            "configPath": if cfg { format!("/etc/kubernetes/ssl/kubecfg-{name}.yaml") } else { String::new() },
        })
    };
    let etcd_name = format!("kube-etcd-{}", ip.replace('.', "-"));
    let bundle = serde_json::json!({
        "kube-ca": entry("kube-ca", false),
        "kube-apiserver": entry("kube-apiserver", false),
        "kube-admin": entry("kube-admin", true),
        "kube-node": entry("kube-node", true),
        etcd_name.clone(): entry(&etcd_name, false),
    });
    serde_json::json!({
        "desiredState": {"rkeConfig": {"nodes": [{"address": ip, "role": ["controlplane", "etcd", "worker"]}]}, "certificatesBundle": bundle},
        "currentState": {"rkeConfig": {"nodes": [{"address": ip, "role": ["controlplane", "etcd", "worker"]}]}, "certificatesBundle": bundle},
    })
    .to_string()
}

/// RKE1 zipped snapshot `/opt/rke/etcd-snapshots/<name>.zip` with members `/backup/<name>` and
/// `/etc/kubernetes/<name>.rkestate`, exactly as rke-tools names them (rancher/rke-tools `main.go`).
pub fn rke_zip(root: &HostRoot, snapshot: &[u8], name: &str, node: &Node) -> io::Result<PathBuf> {
    let zip = zipw::build(&[
        ZipEntry::file(&format!("/backup/{name}"), snapshot).mode(0o100600),
        ZipEntry::file(
            &format!("/etc/kubernetes/{name}.rkestate"),
            rke_state(node).as_bytes(),
        )
        .mode(0o100600),
    ])?;
    let p = root.join(&format!("opt/rke/etcd-snapshots/{name}.zip"));
    write_file(&p, &zip, 0o600)?;
    Ok(p)
}

/// RKE1 plain snapshot `/opt/rke/etcd-snapshots/<name>`, with `/etc/kubernetes/<name>.rkestate`
/// and `/etc/kubernetes/ssl` on the host.
pub fn rke_plain(root: &HostRoot, snapshot: &[u8], name: &str, node: &Node) -> io::Result<PathBuf> {
    let p = root.join(&format!("opt/rke/etcd-snapshots/{name}"));
    write_file(&p, snapshot, 0o600)?;
    write_file(
        &root.join(&format!("etc/kubernetes/{name}.rkestate")),
        rke_state(node).as_bytes(),
        0o600,
    )?;
    write_file(
        &root.join("etc/kubernetes/ssl/kube-ca.pem"),
        &pem("CERTIFICATE", "kube-ca"),
        0o644,
    )?;
    Ok(p)
}

/// k3s or RKE2 snapshot `etcd-snapshot-<node>-<unix>` in its snapshot directory.
pub fn k3s(
    root: &HostRoot,
    snapshot: &[u8],
    distro: &str,
    node: &str,
    unix: u64,
) -> io::Result<PathBuf> {
    let p = root.join(&format!(
        "var/lib/rancher/{distro}/server/db/snapshots/etcd-snapshot-{node}-{unix}"
    ));
    write_file(&p, snapshot, 0o600)?;
    Ok(p)
}
