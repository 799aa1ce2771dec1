//! `rescue-init recover --root ROOT` end to end, one test per backup layout: a simulated host
//! root built from a real etcd 3.5 snapshot, recovered with no configuration at all, then etcd
//! started with exactly the flags of the rewritten configuration (parsed here, independently)
//! must hold one member with the expected name and peer URL, every key with its value, and a
//! revision past the 1e9 bump; the stale data dir must be moved aside, nothing deleted.
//! Skips when etcd is not installed, unless `RESCUE_REQUIRE_ETCD=1`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rescue_tests::hostroot::{self, HostRoot, Node};
use rescue_tests::recovery::{self, Entry, MemberFlags, Source};
use rescue_tests::Tools;

const MANIFEST: &str = "etc/kubernetes/manifests/etcd.yaml";
const APISERVER: &str = "etc/kubernetes/manifests/kube-apiserver.yaml";
const KUBEADMCFG: &str = "etc/kubernetes/kubeadmcfg.yaml";

fn setup() -> Option<(Tools, &'static Source)> {
    let tools = Tools::require()?;
    let src = recovery::source()?;
    Some((tools, src))
}

/// Every file of `before` still exists with its bytes somewhere in `after` (at its place or
/// moved aside), except the configuration files rewritten in place (`rewritten`).
fn check_nothing_deleted(
    before: &std::collections::BTreeMap<PathBuf, Entry>,
    after: &std::collections::BTreeMap<PathBuf, Entry>,
    rewritten: &[&str],
) {
    let hashes: BTreeSet<&String> = after
        .values()
        .filter_map(|e| match e {
            Entry::File { sha256, .. } => Some(sha256),
            _ => None,
        })
        .collect();
    for (p, e) in before {
        if let Entry::File { sha256, .. } = e {
            if rewritten.iter().any(|r| p == Path::new(r)) {
                assert!(after.contains_key(p), "{} was removed", p.display());
                continue;
            }
            assert!(
                hashes.contains(sha256),
                "{} is gone (its bytes are nowhere in the tree)",
                p.display()
            );
        }
    }
}

/// Recovers `root` with `args`, checks the server started from the configuration at `cfg` and
/// the old data moved aside. Returns recover's stdout.
fn recover_and_check(
    tools: &Tools,
    src: &Source,
    root: &HostRoot,
    cfg: &str,
    node: &Node,
    args: &[&str],
) -> String {
    let before = recovery::picture(root.path());
    let out = recovery::recover_ok(root.path(), args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let after = recovery::picture(root.path());
    let flags = MemberFlags::from(root.path(), &recovery::parse_flags(&root.join(cfg)));
    assert_eq!(
        flags.data_dir,
        root.join("var/lib/etcd"),
        "data dir of the configuration"
    );
    recovery::check_server(
        tools,
        &flags,
        &src.state,
        &node.name,
        &node.peer_url(),
        true,
    );
    recovery::check_stale_moved_aside(root);
    check_nothing_deleted(&before, &after, &[MANIFEST, APISERVER, KUBEADMCFG]);
    assert!(
        root.join("var/lib/rescue-init/last-recovery.json")
            .is_file(),
        "recovery marker written"
    );
    let reports: Vec<_> = std::fs::read_dir(root.join("var/log/rescue-init"))
        .expect("report dir")
        .collect();
    assert_eq!(reports.len(), 1, "one report");
    stdout
}

/// A host whose own `/etc/kubernetes` is kubeadm's, a stale `/var/lib/etcd`, and the backup.
fn kubeadm_host(node: &Node) -> HostRoot {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, node).expect("host kube");
    recovery::stale_data_dir(&root);
    root
}

#[test]
fn plain_snapshot_file() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&node);
    hostroot::plain_snapshot(&root, &src.snapshot, "root/backups/etcd-20240102-030405.db")
        .expect("layout");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
}

#[test]
fn raw_member_snap_db() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&node);
    hostroot::raw_db(&root, &src.raw_db, "var/backups/etcd-db").expect("layout");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
}

#[test]
fn whole_var_lib_etcd_copy() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&node);
    hostroot::data_dir(&root, &src.raw_db, "backup/var-lib-etcd").expect("layout");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
}

#[test]
fn kubeadm_with_kubernetes_dir() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    // The host's own tree is stale (another name); the backup's is the one to restore.
    let root = kubeadm_host(&Node::loopback("stale-host", "127.0.0.1"));
    hostroot::kubeadm_dir(&root, &src.snapshot, "root/backup-20240102", &node).expect("layout");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
    let aside = recovery::moved_aside(&root.join("etc/kubernetes"));
    assert!(
        std::fs::read_to_string(aside.join("manifests/etcd.yaml"))
            .expect("old manifest kept")
            .contains("--name=stale-host"),
        "the host's tree moved aside unchanged"
    );
}

#[test]
fn kubeadm_with_kubernetes_tar_gz() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&Node::loopback("stale-host", "127.0.0.1"));
    hostroot::kubeadm_targz(&root, &src.snapshot, "var/backups/k8s", &node).expect("layout");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
    recovery::moved_aside(&root.join("etc/kubernetes"));
    // Private keys keep 0600 through the archive.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(root.join("etc/kubernetes/pki/ca.key"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "private key mode");
}

#[test]
fn deckhouse_kube_backup() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&Node::loopback("stale-host", "127.0.0.1"));
    hostroot::deckhouse_kube_backup(&root, &src.snapshot, "root/kube-backup.tar.gz", &node)
        .expect("layout");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
}

#[test]
fn deckhouse_daily_backup_in_var_lib_etcd() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&node);
    let archive = hostroot::deckhouse_daily(&root, &src.snapshot).expect("layout");
    let bytes = std::fs::read(&archive).expect("archive");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
    // The daily archive lived in the data dir: it moved aside with it, intact.
    let aside = recovery::moved_aside(&root.join("var/lib/etcd"));
    assert_eq!(
        std::fs::read(aside.join("etcd-backup.tar.gz")).expect("kept"),
        bytes
    );
}

#[test]
fn openshift_snapshot_and_static_kuberesources() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&node);
    hostroot::openshift(
        &root,
        &src.snapshot,
        "home/core/assets/backup",
        "2024-01-02_030405",
        true,
    )
    .expect("layout");
    // The host's own (old) etcd pod, which the backup's replaces.
    let old_pod = b"kind: Pod\nmetadata:\n  name: etcd-old\n";
    hostroot::write_file(
        &root.join("etc/kubernetes/manifests/etcd-pod.yaml"),
        old_pod,
        0o600,
    )
    .expect("old pod");
    recover_and_check(&tools, src, &root, MANIFEST, &node, &[]);
    let manifests = root.join("etc/kubernetes/manifests");
    assert!(
        std::fs::read_to_string(manifests.join("etcd-pod.yaml"))
            .expect("new pod")
            .contains("name: etcd\n"),
        "the backup's etcd pod installed"
    );
    assert!(
        manifests.join("kube-apiserver.yaml").is_file(),
        "other manifests kept"
    );
    // Moved aside hidden, so kubelet does not run it.
    let aside = recovery::moved_aside(&manifests.join(".etcd-pod.yaml"));
    assert_eq!(std::fs::read(aside).expect("old pod kept"), old_pod);
    assert!(root
        .join("etc/kubernetes/static-pod-resources/etcd-pod-3")
        .is_dir());
}

#[test]
fn cray_csm_with_kubeadmcfg_and_systemd_unit() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("ncn-m001", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    recovery::stale_data_dir(&root);
    hostroot::cray(
        &root,
        &src.snapshot,
        "root/etcd-backups",
        "2024-01-02-03-04-05",
        &node,
    )
    .expect("layout");
    let out = recover_and_check(&tools, src, &root, KUBEADMCFG, &node, &[]);
    let cfg = std::fs::read_to_string(root.join(KUBEADMCFG)).expect("cfg");
    assert!(
        !cfg.contains("ncn-m002"),
        "other members dropped from initial-cluster:\n{cfg}\n{out}"
    );
}

/// RKE1 keeps etcd's flags in the cluster state, not in a file on the host: the operator gives
/// `--name` and `--advertise-address` (the documented fallback). There is no configuration to
/// parse, so etcd is started with the member's name and the data dir, on test ports.
fn rke_case(zip: bool) {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("etcd-127-0-0-1", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    recovery::stale_data_dir(&root);
    if zip {
        hostroot::rke_zip(&root, &src.snapshot, "2024-01-02T03:04:05Z_etcd", &node)
    } else {
        hostroot::rke_plain(&root, &src.snapshot, "2024-01-02T03:04:05Z_etcd", &node)
    }
    .expect("layout");
    let none = recovery::recover(root.path(), &[]);
    assert!(
        !none.status.success(),
        "without an etcd configuration, recover must ask for --name/--advertise-address"
    );
    let err = String::from_utf8_lossy(&none.stderr);
    let line = err.lines().find(|l| l.starts_with("error:")).unwrap_or("");
    assert!(
        line.contains("--name") && line.contains("--advertise-address"),
        "the error says what to pass: {err}"
    );
    rescue_tests::tools::note(&format!("RKE without flags: {line}"));
    let out = recovery::recover_ok(
        root.path(),
        &["--name", &node.name, "--advertise-address", "127.0.0.1"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The fallback member: https on the standard ports of the given address.
    let peer = "https://127.0.0.1:2380";
    let (pp, cp) = (
        rescue_tests::util::free_port(),
        rescue_tests::util::free_port(),
    );
    let flags = MemberFlags {
        name: node.name.clone(),
        data_dir: root.join("var/lib/etcd"),
        initial_advertise_peer_urls: format!("http://127.0.0.1:{pp}"),
        listen_peer_urls: format!("http://127.0.0.1:{pp}"),
        listen_client_urls: format!("http://127.0.0.1:{cp}"),
        advertise_client_urls: format!("http://127.0.0.1:{cp}"),
        initial_cluster: None,
        initial_cluster_state: None,
        force_new_cluster: false,
    };
    let server = flags.start(&tools);
    let (_, members) = server.ctl().members();
    assert_eq!(members.len(), 1, "{members:?}\n{stdout}");
    assert_eq!(members[0].name, node.name);
    assert_eq!(members[0].peer_urls, vec![peer.to_string()]);
    let rev = server.ctl().revision();
    assert!(rev >= src.state.revision + recovery::BUMP, "revision {rev}");
    assert_eq!(server.ctl().kvs().len(), src.state.kvs.len());
    drop(server);
    recovery::check_stale_moved_aside(&root);
    // The certificates rebuilt from the cluster state's certificatesBundle.
    let ssl = root.join("etc/kubernetes/ssl");
    for f in [
        "kube-ca.pem",
        "kube-apiserver.pem",
        "kube-apiserver-key.pem",
    ] {
        assert!(ssl.join(f).is_file(), "{f} rebuilt:\n{stdout}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(ssl.join("kube-apiserver-key.pem"))
            .expect("key")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "private key mode");
}

#[test]
fn rke1_zip_with_name_and_address() {
    rke_case(true);
}

#[test]
fn rke1_plain_with_rkestate_with_name_and_address() {
    rke_case(false);
}

/// A kubespray-style host: etcd is a systemd service configured by an env file or by flags on
/// `ExecStart`, `/etc/kubernetes` holds no etcd manifest; the backup is a plain snapshot.
fn systemd_case(env_file: bool) {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("etcd1", "127.0.0.1");
    let root = kubeadm_host(&node);
    std::fs::remove_file(root.join(MANIFEST)).expect("no etcd manifest");
    let settings = [
        ("name", node.name.clone()),
        ("data-dir", "/var/lib/etcd".to_string()),
        ("initial-advertise-peer-urls", node.peer_url()),
        ("listen-peer-urls", node.peer_url()),
        ("listen-client-urls", node.listen_client_urls()),
        ("advertise-client-urls", node.client_url()),
        (
            "initial-cluster",
            format!(
                "{}={},etcd2=https://10.0.0.12:2380,etcd3=https://10.0.0.13:2380",
                node.name,
                node.peer_url()
            ),
        ),
        ("initial-cluster-state", "existing".to_string()),
    ];
    let cfg = if env_file {
        let env: String = settings
            .iter()
            .map(|(k, v)| format!("ETCD_{}={v}\n", k.to_uppercase().replace('-', "_")))
            .collect();
        hostroot::write_file(&root.join("etc/etcd.env"), env.as_bytes(), 0o640).expect("env");
        let unit = "[Unit]\nDescription=etcd\nAfter=network.target\n\n[Service]\nType=notify\nEnvironmentFile=/etc/etcd.env\nExecStart=/usr/local/bin/etcd\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n";
        hostroot::write_file(
            &root.join("etc/systemd/system/etcd.service"),
            unit.as_bytes(),
            0o644,
        )
        .expect("unit");
        "etc/etcd.env"
    } else {
        let flags: String = settings
            .iter()
            .map(|(k, v)| format!(" --{k}={v}"))
            .collect();
        let unit = format!("[Unit]\nDescription=etcd\n\n[Service]\nExecStart=/usr/local/bin/etcd{flags}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n");
        hostroot::write_file(
            &root.join("etc/systemd/system/etcd.service"),
            unit.as_bytes(),
            0o644,
        )
        .expect("unit");
        "etc/systemd/system/etcd.service"
    };
    hostroot::plain_snapshot(&root, &src.snapshot, "var/backups/etcd-2024-01-02.db").expect("snap");
    let before = recovery::picture(root.path());
    let out = recovery::recover_ok(root.path(), &[]);
    let after = recovery::picture(root.path());
    let parsed = recovery::parse_flags(&root.join(cfg));
    assert_eq!(
        parsed.get("initial-cluster"),
        Some(&format!("{}={}", node.name, node.peer_url())),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        parsed.get("initial-cluster-state").map(String::as_str),
        Some("new")
    );
    let flags = MemberFlags::from(root.path(), &parsed);
    recovery::check_server(
        &tools,
        &flags,
        &src.state,
        &node.name,
        &node.peer_url(),
        true,
    );
    recovery::check_stale_moved_aside(&root);
    check_nothing_deleted(&before, &after, &[cfg]);
}

#[test]
fn systemd_unit_with_env_file() {
    systemd_case(true);
}

#[test]
fn systemd_unit_with_flags_on_execstart() {
    systemd_case(false);
}

/// A snapshot served over plain HTTP by a real server on loopback, pinned with `--sha256`:
/// fetched into a directory of rescue-init's own, detected like a local backup, restored, and
/// the fetched copy removed afterwards.
#[test]
fn snapshot_fetched_over_http_with_a_pin() {
    use sha2::{Digest, Sha256};
    use std::process::{Command, Stdio};
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = kubeadm_host(&node);
    let www = tempfile::tempdir().expect("www");
    std::fs::write(www.path().join("etcd-20240102-030405.db"), &src.snapshot).expect("serve");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut server = Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(www.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 http.server");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "http server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let sha: String = Sha256::digest(&src.snapshot)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let url = format!("http://127.0.0.1:{port}/etcd-20240102-030405.db");
    let stdout = recover_and_check(
        &tools,
        src,
        &root,
        MANIFEST,
        &node,
        &["--source", &url, "--sha256", &sha],
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(stdout.contains("RESCUE RESULT: OK"), "{stdout}");
    let leftovers: Vec<_> = std::fs::read_dir(root.join("var/lib"))
        .expect("var/lib")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".rescue-init"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "fetched copy left behind: {leftovers:?}"
    );
    // A wrong pin: refused, host unchanged.
    let root2 = kubeadm_host(&node);
    let before = recovery::picture(root2.path());
    let mut bad = sha.clone().into_bytes();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).expect("hex");
    let out = recovery::recover(root2.path(), &["--source", &url, "--sha256", &bad]);
    assert!(!out.status.success());
    assert_eq!(
        recovery::picture(root2.path()),
        before,
        "host unchanged after a wrong pin"
    );
}
