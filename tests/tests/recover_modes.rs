//! `rescue-init recover` options end to end with real etcd 3.5: `--advertise-address` moving the
//! member to a new IP, `--dry-run` leaving the host byte-identical, a second run on a recovered
//! host, `--no-bump`.
//! Skips when etcd is not installed, unless `RESCUE_REQUIRE_ETCD=1`.

use rescue_tests::hostroot::{self, HostRoot, Node};
use rescue_tests::recovery::{self, MemberFlags, Source};
use rescue_tests::Tools;

const MANIFEST: &str = "etc/kubernetes/manifests/etcd.yaml";
const APISERVER: &str = "etc/kubernetes/manifests/kube-apiserver.yaml";

fn setup() -> Option<(Tools, &'static Source)> {
    let tools = Tools::require()?;
    let src = recovery::source()?;
    Some((tools, src))
}

/// A kubeadm host with a stale data dir and a plain snapshot in root's home.
fn host(src: &Source, node: &Node) -> HostRoot {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, node).expect("host kube");
    recovery::stale_data_dir(&root);
    hostroot::plain_snapshot(&root, &src.snapshot, "root/etcd-20240102-030405.db").expect("snap");
    root
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn advertise_address_moves_the_member_and_the_apiserver() {
    let Some((tools, src)) = setup() else { return };
    let old = Node::loopback("master-0", "127.0.0.3");
    let root = host(src, &old);
    // The apiserver reaches etcd on the node's address (not loopback), so it must follow.
    let api = root.join(APISERVER);
    let text = std::fs::read_to_string(&api).expect("apiserver");
    let text = text.replace(
        &format!("--etcd-servers=http://127.0.0.1:{}", old.client_port),
        &format!("--etcd-servers={}", old.client_url()),
    );
    std::fs::write(&api, text).expect("write apiserver");

    let out = recovery::recover_ok(root.path(), &["--advertise-address", "127.0.0.2"]);
    let new = Node {
        ip: "127.0.0.2".into(),
        ..old.clone()
    };
    let flags = recovery::parse_flags(&root.join(MANIFEST));
    assert_eq!(flags["advertise-client-urls"], new.client_url());
    assert_eq!(flags["listen-peer-urls"], new.peer_url());
    assert_eq!(
        flags["listen-client-urls"],
        new.listen_client_urls(),
        "loopback kept, the node's address moved"
    );
    assert_eq!(
        flags["initial-cluster"],
        format!("master-0={}", new.peer_url())
    );
    let api = recovery::parse_flags(&root.join(APISERVER));
    assert_eq!(api["advertise-address"], "127.0.0.2", "{}", stdout(&out));
    assert_eq!(api["etcd-servers"], new.client_url());
    let mf = MemberFlags::from(root.path(), &flags);
    recovery::check_server(&tools, &mf, &src.state, "master-0", &new.peer_url(), true);
    // etcd answers on the new address too.
    let ctl = rescue_tests::Ctl::new(
        &tools.etcdctl(rescue_tests::Version::V3_5),
        &new.client_url(),
    );
    let server = mf.start(&tools);
    assert_eq!(ctl.kvs().len(), src.state.kvs.len());
    drop(server);
}

#[test]
fn dry_run_changes_nothing_and_shows_every_step_and_diff() {
    let Some((_tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = host(src, &node);
    let before = recovery::picture(root.path());
    let out = recovery::recover_ok(root.path(), &["--dry-run"]);
    let after = recovery::picture(root.path());
    recovery::assert_same_tree(&before, &after, "--dry-run");
    let text = stdout(&out);
    for want in [
        "verify snapshot",
        "mv ",
        "var/lib/etcd.before-rescue-",
        "snapshot restore",
        "--bump-revision 1000000000",
        "rewrite ",
        "--- a/etc/kubernetes/manifests/etcd.yaml",
        "+++ b/etc/kubernetes/manifests/etcd.yaml",
        "-    - --initial-cluster-state=existing",
        "+    - --initial-cluster-state=new",
    ] {
        assert!(
            text.contains(want),
            "dry-run output lacks {want:?}:\n{text}"
        );
    }
}

#[test]
fn second_run_says_already_recovered_and_changes_nothing() {
    let Some((_tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = host(src, &node);
    recovery::recover_ok(root.path(), &[]);
    let before = recovery::picture(root.path());
    let out = recovery::recover_ok(root.path(), &[]);
    let after = recovery::picture(root.path());
    recovery::assert_same_tree(&before, &after, "second run");
    assert!(
        stdout(&out).contains("already recovered"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn no_bump_keeps_the_revision() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = host(src, &node);
    recovery::recover_ok(root.path(), &["--no-bump"]);
    let flags = MemberFlags::from(root.path(), &recovery::parse_flags(&root.join(MANIFEST)));
    recovery::check_server(
        &tools,
        &flags,
        &src.state,
        "master-0",
        &node.peer_url(),
        false,
    );
}

/// A dry run of an archive layout stages outside the root: the host stays byte-identical and
/// no staging directory is left behind in the temp dir.
#[test]
fn dry_run_of_an_archive_layout_changes_nothing() {
    let Some((_tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    recovery::stale_data_dir(&root);
    hostroot::deckhouse_kube_backup(&root, &src.snapshot, "root/kube-backup.tar.gz", &node)
        .expect("layout");
    let before = recovery::picture(root.path());
    let tmp = tempfile::tempdir().expect("tmpdir");
    let out = recovery::recover_with_tmpdir(root.path(), &["--dry-run"], Some(tmp.path()));
    assert!(
        out.status.success(),
        "{}",
        rescue_tests::util::describe(&out)
    );
    recovery::assert_same_tree(&before, &recovery::picture(root.path()), "--dry-run");
    let text = stdout(&out);
    assert!(text.contains("extract"), "staging step shown:\n{text}");
    assert!(
        text.contains("+    - --initial-cluster-state=new"),
        "{text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(leftovers.is_empty(), "dry-run staging left: {leftovers:?}");
}

/// The host lost everything but the backup: no /etc/kubernetes, no etcd data dir.
#[test]
fn bare_host_with_deckhouse_backup() {
    let Some((tools, src)) = setup() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    hostroot::deckhouse_kube_backup(&root, &src.snapshot, "root/kube-backup.tar.gz", &node)
        .expect("layout");
    recovery::recover_ok(root.path(), &[]);
    let flags = MemberFlags::from(root.path(), &recovery::parse_flags(&root.join(MANIFEST)));
    recovery::check_server(
        &tools,
        &flags,
        &src.state,
        "master-0",
        &node.peer_url(),
        true,
    );
    assert!(root.join("etc/kubernetes/pki/ca.key").is_file());
}
