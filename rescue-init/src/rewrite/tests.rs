use super::*;
use std::collections::BTreeSet;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/rewrite/testdata")
        .join(name);
    read_text(&path).unwrap()
}

/// Compares with `testdata/<name>`, or writes it when `UPDATE_GOLDEN=1`.
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/rewrite/testdata")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden {name}: run with UPDATE_GOLDEN=1"));
    assert_eq!(
        got, want,
        "golden {name} differs (UPDATE_GOLDEN=1 rewrites it)"
    );
}

/// Old line numbers that a diff deletes, and how many lines it adds.
fn diff_lines(old: &str, new: &str) -> (BTreeSet<usize>, usize) {
    let d = unified_diff("f", old, new);
    let mut deleted = BTreeSet::new();
    let mut added = 0;
    let mut old_line = 0;
    for l in d.lines().skip(2) {
        if let Some(h) = l.strip_prefix("@@ -") {
            let start: usize = h.split([',', ' ']).next().unwrap().parse().unwrap();
            old_line = start.max(1);
            continue;
        }
        match l.as_bytes().first() {
            Some(b' ') => old_line += 1,
            Some(b'-') => {
                deleted.insert(old_line);
                old_line += 1;
            }
            Some(b'+') => added += 1,
            _ => {}
        }
    }
    (deleted, added)
}

/// Every line the rewrite did not report is byte-identical, nothing is inserted, and a
/// second rewrite changes nothing.
fn check_minimal_and_idempotent(kind: FileKind, old: &str, target: &Target) -> Rewritten {
    let r = rewrite(kind, old, target);
    let (deleted, added) = diff_lines(old, &r.text);
    let mut allowed: BTreeSet<usize> = r.changes.iter().map(|c| c.line).collect();
    for c in r.changes.iter().filter(|c| c.new.is_none()) {
        // Dropping the last word of a continued ExecStart also drops the `\` before it.
        allowed.insert(c.line - 1);
    }
    assert!(
        deleted.is_subset(&allowed),
        "untouched lines changed: {deleted:?} vs {allowed:?}\n{}",
        unified_diff("f", old, &r.text)
    );
    assert!(added <= deleted.len(), "lines were inserted");
    let again = rewrite(kind, &r.text, target);
    assert!(
        !again.changed(),
        "second rewrite changed: {:?}",
        again.changes
    );
    assert_eq!(again.text, r.text);
    r
}

/// The rewritten file, read back, describes exactly the target member.
fn check_single_member(kind: FileKind, text: &str, t: &Target) {
    let s = extract(kind, text);
    assert_eq!(s.name(), Some(t.name.as_str()));
    assert_eq!(s.get("initial-cluster"), Some(t.initial_cluster().as_str()));
    assert_eq!(s.list("initial-advertise-peer-urls"), t.peer_urls);
    assert_eq!(s.list("advertise-client-urls"), t.client_urls);
    if let Some(state) = s.get("initial-cluster-state") {
        assert_eq!(state, "new");
    }
    assert_eq!(s.get("force-new-cluster"), None);
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn kubeadm_etcd_manifest() {
    let old = fixture("kubeadm-etcd.yaml");
    let kind = FileKind::detect(Path::new("etc/kubernetes/manifests/etcd.yaml"), &old);
    assert_eq!(kind, Some(FileKind::EtcdManifest));
    let cur = extract(FileKind::EtcdManifest, &old);
    assert_eq!(cur.name(), Some("cp-2"));
    assert_eq!(cur.data_dir(), Some("/var/lib/etcd"));
    assert_eq!(
        cur.get("cert-file"),
        Some("/etc/kubernetes/pki/etcd/server.crt")
    );
    assert_eq!(
        cur.get("peer-trusted-ca-file"),
        Some("/etc/kubernetes/pki/etcd/ca.crt")
    );
    assert_eq!(cur.initial_cluster().len(), 3);

    // In place: same name and address.
    let t = Target::plan(&cur, None, None).unwrap();
    assert_eq!(t.peer_urls, vec!["https://192.168.56.12:2380"]);
    assert_eq!(t.initial_cluster(), "cp-2=https://192.168.56.12:2380");
    let r = check_minimal_and_idempotent(FileKind::EtcdManifest, &old, &t);
    let settings: Vec<&str> = r.changes.iter().map(|c| c.setting.as_str()).collect();
    assert_eq!(settings, vec!["initial-cluster", "initial-cluster-state"]);
    check_single_member(FileKind::EtcdManifest, &r.text, &t);
    golden("kubeadm-etcd.yaml.inplace.golden", &r.text);

    // Moved to a new IP with a new name.
    let t = Target::plan(&cur, Some("rescued"), Some(ip("192.168.56.50"))).unwrap();
    assert_eq!(t.client_urls, vec!["https://192.168.56.50:2379"]);
    let r = check_minimal_and_idempotent(FileKind::EtcdManifest, &old, &t);
    check_single_member(FileKind::EtcdManifest, &r.text, &t);
    let s = extract(FileKind::EtcdManifest, &r.text);
    assert_eq!(
        s.get("listen-client-urls"),
        Some("https://127.0.0.1:2379,https://192.168.56.50:2379")
    );
    assert_eq!(s.get("listen-metrics-urls"), Some("http://127.0.0.1:2381"));
    assert!(r.text.contains(
        "kubeadm.kubernetes.io/etcd.advertise-client-urls: https://192.168.56.50:2379\n"
    ));
    assert!(
        r.text.contains("        host: 127.0.0.1\n"),
        "loopback probe host kept"
    );
    golden("kubeadm-etcd.yaml.moved.golden", &r.text);
}

#[test]
fn force_new_cluster_is_dropped_from_manifests() {
    let old = fixture("kubeadm-etcd.yaml").replace(
        "    - --name=cp-2\n",
        "    - --name=cp-2\n    - --force-new-cluster\n",
    );
    let t = Target::plan(&extract(FileKind::EtcdManifest, &old), None, None).unwrap();
    let r = check_minimal_and_idempotent(FileKind::EtcdManifest, &old, &t);
    assert!(!r.text.contains("force-new-cluster"));
    assert!(r
        .changes
        .iter()
        .any(|c| c.setting == "force-new-cluster" && c.new.is_none()));
}

#[test]
fn kube_apiserver_manifest_follows_the_move() {
    let etcd = extract(FileKind::EtcdManifest, &fixture("kubeadm-etcd.yaml"));
    let old = fixture("kubeadm-kube-apiserver.yaml");
    assert_eq!(
        FileKind::detect(Path::new("kube-apiserver.yaml"), &old),
        Some(FileKind::ApiServerManifest)
    );
    let stay = Target::plan(&etcd, None, None).unwrap();
    let r = rewrite(FileKind::ApiServerManifest, &old, &stay);
    assert!(!r.changed(), "no move, nothing to do: {:?}", r.changes);
    assert_eq!(r.text, old);

    let t = Target::plan(&etcd, None, Some(ip("192.168.56.50"))).unwrap();
    let r = check_minimal_and_idempotent(FileKind::ApiServerManifest, &old, &t);
    let s = extract(FileKind::ApiServerManifest, &r.text);
    assert_eq!(s.get("advertise-address"), Some("192.168.56.50"));
    assert_eq!(s.get("etcd-servers"), Some("https://127.0.0.1:2379"));
    assert!(r
        .text
        .contains("advertise-address.endpoint: 192.168.56.50:6443\n"));
    assert_eq!(r.text.matches("host: 192.168.56.50\n").count(), 3);
    assert_eq!(r.changes.len(), 5);
    golden("kubeadm-kube-apiserver.yaml.moved.golden", &r.text);
}

#[test]
fn csm_kubeadm_config_map_form() {
    let old = fixture("csm-kubeadmcfg.yaml");
    assert_eq!(
        FileKind::detect(Path::new("/etc/kubernetes/kubeadmcfg.yaml"), &old),
        Some(FileKind::KubeadmConfig)
    );
    let cur = extract(FileKind::KubeadmConfig, &old);
    assert_eq!(cur.name(), Some("ncn-m002"));
    assert_eq!(cur.data_dir(), Some("/var/lib/etcd"));
    assert_eq!(
        cur.list("listen-client-urls"),
        vec!["https://10.252.1.9:2379", "https://127.0.0.1:2379"]
    );
    assert_eq!(cur.get("force-new-cluster"), Some("true"));
    let t = Target::plan(&cur, None, Some(ip("10.252.1.20"))).unwrap();
    assert_eq!(
        t.client_urls,
        vec!["https://10.252.1.20:2379", "https://127.0.0.1:2379"]
    );
    let r = check_minimal_and_idempotent(FileKind::KubeadmConfig, &old, &t);
    check_single_member(FileKind::KubeadmConfig, &r.text, &t);
    assert!(r.text.contains("  advertiseAddress: 10.252.1.20\n"));
    assert!(r
        .text
        .contains("listen-client-urls: \"https://10.252.1.20:2379,https://127.0.0.1:2379\"\n"));
    assert!(
        r.text.contains("https://127.0.0.1:2379  # also local\n"),
        "comment kept"
    );
    assert!(
        r.text.contains("      - \"10.252.1.9\"\n"),
        "cert SANs are not ours to edit"
    );
    golden("csm-kubeadmcfg.yaml.moved.golden", &r.text);
}

#[test]
fn kubeadm_config_v1beta4_list_form() {
    let old = fixture("kubeadm-v1beta4.yaml");
    let cur = extract(FileKind::KubeadmConfig, &old);
    assert_eq!(cur.name(), Some("ncn-m002"));
    assert_eq!(cur.get("initial-cluster-state"), Some("existing"));
    assert_eq!(cur.get("quota-backend-bytes"), Some("4294967296"));
    let t = Target::plan(&cur, Some("ncn-m001"), Some(ip("10.252.1.20"))).unwrap();
    let r = check_minimal_and_idempotent(FileKind::KubeadmConfig, &old, &t);
    check_single_member(FileKind::KubeadmConfig, &r.text, &t);
    assert!(!r.text.contains("force-new-cluster"));
    assert!(r
        .text
        .contains("      value: 'https://10.252.1.20:2379,https://127.0.0.1:2379'\n"));
    assert!(r.text.contains("  advertiseAddress: 10.252.1.20\n"));
    golden("kubeadm-v1beta4.yaml.moved.golden", &r.text);
}

#[test]
fn systemd_unit() {
    let old = fixture("etcd.service");
    assert_eq!(
        FileKind::detect(Path::new("/etc/systemd/system/etcd.service"), &old),
        Some(FileKind::SystemdUnit)
    );
    let cur = extract(FileKind::SystemdUnit, &old);
    assert_eq!(cur.name(), Some("ncn-m002"));
    assert_eq!(cur.get("peer-client-cert-auth"), Some("true"));
    assert_eq!(cur.get("initial-cluster-token"), Some("tkn"));
    assert_eq!(cur.get("quota-backend-bytes"), Some("4294967296"));
    assert_eq!(
        cur.get("listen-client-urls"),
        Some("https://10.252.1.9:2379,https://127.0.0.1:2379")
    );
    let t = Target::plan(&cur, None, None).unwrap();
    let r = check_minimal_and_idempotent(FileKind::SystemdUnit, &old, &t);
    check_single_member(FileKind::SystemdUnit, &r.text, &t);
    assert!(r
        .text
        .contains("  --initial-cluster-state new\nRestart=on-failure\n"));
    golden("etcd.service.inplace.golden", &r.text);

    let t = Target::plan(&cur, None, Some(ip("10.252.1.20"))).unwrap();
    let r = check_minimal_and_idempotent(FileKind::SystemdUnit, &old, &t);
    check_single_member(FileKind::SystemdUnit, &r.text, &t);
    assert!(r.text.contains(
        "  --listen-client-urls \"https://10.252.1.20:2379,https://127.0.0.1:2379\" \\\n"
    ));
    golden("etcd.service.moved.golden", &r.text);
}

#[test]
fn systemd_forms() {
    let t = Target {
        name: "m1".into(),
        peer_urls: vec!["https://10.0.0.1:2380".into()],
        client_urls: vec!["https://10.0.0.1:2379".into()],
        moved: None,
    };
    let cases: &[(&str, &str)] = &[
        (
            "[Service]\nExecStart=/usr/bin/etcd --name=old --initial-cluster old=https://10.0.0.1:2380\n",
            "[Service]\nExecStart=/usr/bin/etcd --name=m1 --initial-cluster m1=https://10.0.0.1:2380\n",
        ),
        (
            "[Service]\nExecStart=-/usr/bin/etcd \"--name=old\" -name='x' --force-new-cluster --debug\n",
            "[Service]\nExecStart=-/usr/bin/etcd \"--name=m1\" -name='m1' --debug\n",
        ),
        (
            "[Service]\nExecStart=/usr/bin/etcd \\\n# a comment\n  --name=\"old\" \\\n  --force-new-cluster \\\n  --debug\n",
            "[Service]\nExecStart=/usr/bin/etcd \\\n# a comment\n  --name=\"m1\" \\\n  --debug\n",
        ),
        (
            "[Service]\nExecStart=/usr/bin/etcd --name ${NAME}\n",
            "[Service]\nExecStart=/usr/bin/etcd --name ${NAME}\n",
        ),
        (
            "[Service]\nExecStartPre=/usr/bin/etcd --name old\nExecStart=/usr/bin/docker run etcd --name old\n",
            "[Service]\nExecStartPre=/usr/bin/etcd --name old\nExecStart=/usr/bin/docker run etcd --name old\n",
        ),
        (
            "[Unit]\nExecStart=/usr/bin/etcd --name old\n",
            "[Unit]\nExecStart=/usr/bin/etcd --name old\n",
        ),
        (
            "[Service]\nEnvironment=ETCD_NAME=old\nEnvironment=\"ETCD_NAME=old\" X=1\n",
            "[Service]\nEnvironment=ETCD_NAME=m1\nEnvironment=\"ETCD_NAME=m1\" X=1\n",
        ),
    ];
    for (old, want) in cases {
        let r = rewrite(FileKind::SystemdUnit, old, &t);
        assert_eq!(&r.text, want, "from {old:?}");
        assert!(!rewrite(FileKind::SystemdUnit, &r.text, &t).changed());
    }
    let r = rewrite(FileKind::SystemdUnit, cases[3].0, &t);
    assert_eq!(r.indirect, vec!["name"]);
    assert_eq!(
        extract(FileKind::SystemdUnit, cases[3].0).indirect,
        vec!["name"]
    );
}

#[test]
fn env_file() {
    let old = fixture("etcd.conf");
    assert_eq!(
        FileKind::detect(Path::new("/etc/etcd/etcd.conf"), &old),
        Some(FileKind::EnvFile)
    );
    let cur = extract(FileKind::EnvFile, &old);
    assert_eq!(cur.name(), Some("etcd2"));
    assert_eq!(cur.get("initial-cluster-token"), Some("etcd-cluster"));
    assert_eq!(
        cur.get("cors"),
        None,
        "commented-out settings are not settings"
    );
    let t = Target::plan(&cur, None, Some(ip("192.168.56.50"))).unwrap();
    let r = check_minimal_and_idempotent(FileKind::EnvFile, &old, &t);
    check_single_member(FileKind::EnvFile, &r.text, &t);
    assert!(r.text.contains("ETCD_INITIAL_CLUSTER_STATE=new\n"));
    assert!(r.text.contains("ETCD_NAME=\"etcd2\"\n"));
    assert!(
        r.text.contains("#ETCD_INITIAL_CLUSTER_STATE")
            || !old.contains("#ETCD_INITIAL_CLUSTER_STATE")
    );
    golden("etcd.conf.moved.golden", &r.text);
}

#[test]
fn unit_plus_env_file_extraction() {
    let unit = "[Service]\nEnvironmentFile=/etc/etcd/etcd.conf\nExecStart=/usr/bin/etcd --name ${ETCD_NAME} --data-dir=/d\n";
    let env = "ETCD_NAME=m7\nETCD_DATA_DIR=/ignored\n";
    let mut s = extract(FileKind::SystemdUnit, unit);
    assert_eq!(s.name(), None);
    s.fill_from(&extract(FileKind::EnvFile, env));
    assert_eq!(s.name(), Some("m7"));
    assert_eq!(s.data_dir(), Some("/d"), "flags win over the environment");
}

#[test]
fn target_errors_and_ipv6() {
    let empty = EtcdSettings::default();
    assert!(matches!(
        Target::plan(&empty, None, None),
        Err(RewriteError::MissingSetting { setting: "--name" })
    ));
    let mut s = EtcdSettings::default();
    s.flags.insert("name".into(), "a".into());
    s.flags.insert(
        "initial-cluster".into(),
        "a=https://[fd00::1]:2380,b=https://[fd00::2]:2380".into(),
    );
    s.flags.insert(
        "advertise-client-urls".into(),
        "https://[fd00::1]:2379".into(),
    );
    let t = Target::plan(&s, None, Some(ip("fd00::9"))).unwrap();
    assert_eq!(t.peer_urls, vec!["https://[fd00::9]:2380"]);
    assert_eq!(t.client_urls, vec!["https://[fd00::9]:2379"]);
    let m = t.moved.unwrap();
    assert_eq!(m.endpoint("[fd00::1]:6443"), "[fd00::9]:6443");
    assert_eq!(m.host("fd00::1"), "fd00::9");
    assert_eq!(m.url("https://[fd00::3]:2379"), "https://[fd00::3]:2379");
    assert_eq!(url_host("https://user@h.example:1/x"), Some("h.example"));
    assert_eq!(url_host("unix:///x"), None);
}

#[test]
fn detect_ignores_unrelated_files() {
    assert_eq!(
        FileKind::detect(
            Path::new("kube-scheduler.yaml"),
            "kind: Pod\ncomponent: kube-scheduler\n"
        ),
        None
    );
    assert_eq!(
        FileKind::detect(Path::new("hosts"), "127.0.0.1 localhost\n"),
        None
    );
}

#[test]
fn diffs_of_fixture_rewrites_apply_with_patch() {
    let old = fixture("csm-kubeadmcfg.yaml");
    let t = Target::plan(
        &extract(FileKind::KubeadmConfig, &old),
        None,
        Some(ip("10.252.1.20")),
    )
    .unwrap();
    let r = rewrite(FileKind::KubeadmConfig, &old, &t);
    let d = unified_diff("/etc/kubernetes/kubeadmcfg.yaml", &old, &r.text);
    assert!(d.starts_with(
        "--- a/etc/kubernetes/kubeadmcfg.yaml\n+++ b/etc/kubernetes/kubeadmcfg.yaml\n@@ "
    ));
    let dir = tempfile::tempdir().unwrap();
    let (o, p, n) = (
        dir.path().join("old"),
        dir.path().join("d"),
        dir.path().join("new"),
    );
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&p, &d).unwrap();
    let st = std::process::Command::new("patch")
        .arg("-s")
        .arg("-o")
        .arg(&n)
        .arg(&o)
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read_to_string(&n).unwrap(), r.text);
}

/// Damaged input never panics: every fixture cut at many points, with awkward bytes
/// spliced in, goes through every parser.
#[test]
fn damaged_input_never_panics() {
    let t = Target {
        name: "m".into(),
        peer_urls: vec!["https://10.0.0.1:2380".into()],
        client_urls: vec!["https://10.0.0.1:2379".into()],
        moved: Some(Move {
            from: vec!["10.252.1.9".into()],
            to: ip("fd00::1"),
        }),
    };
    let kinds = [
        FileKind::EtcdManifest,
        FileKind::ApiServerManifest,
        FileKind::SystemdUnit,
        FileKind::EnvFile,
        FileKind::KubeadmConfig,
        FileKind::EtcdConfigFile,
    ];
    let splices = [
        "", "ü", "\\", "\"", "'", "\\ü", "\"ü", "- ", ": ", "#", "\r\n", "\\\n",
    ];
    for name in [
        "kubeadm-etcd.yaml",
        "kubeadm-kube-apiserver.yaml",
        "csm-kubeadmcfg.yaml",
        "kubeadm-v1beta4.yaml",
        "etcd.service",
        "etcd.conf",
        "etcd.conf.yml",
    ] {
        let text = fixture(name);
        let mut n = 0;
        for cut in (0..=text.len()).step_by(23) {
            if !text.is_char_boundary(cut) {
                continue;
            }
            let splice = splices[n % splices.len()];
            n += 1;
            let damaged = format!("{}{splice}{}", &text[..cut], &text[cut..]);
            for text in [&text[..cut], damaged.as_str()] {
                for kind in kinds {
                    let _ = extract(kind, text);
                    let r = rewrite(kind, text, &t);
                    let _ = unified_diff("x", text, &r.text);
                }
            }
        }
    }
}

#[test]
fn etcd_config_file() {
    let old = fixture("etcd.conf.yml");
    assert_eq!(
        FileKind::detect(Path::new("/etc/etcd/etcd.conf.yml"), &old),
        Some(FileKind::EtcdConfigFile)
    );
    let cur = extract(FileKind::EtcdConfigFile, &old);
    assert_eq!(cur.name(), Some("infra2"));
    assert_eq!(cur.get("cert-file"), Some("/etc/etcd/pki/server.crt"));
    assert_eq!(cur.get("peer-cert-file"), Some("/etc/etcd/pki/peer.crt"));
    assert_eq!(
        cur.get("peer-trusted-ca-file"),
        Some("/etc/etcd/pki/ca.crt")
    );
    let t = Target::plan(&cur, None, Some(ip("10.0.1.50"))).unwrap();
    let r = check_minimal_and_idempotent(FileKind::EtcdConfigFile, &old, &t);
    check_single_member(FileKind::EtcdConfigFile, &r.text, &t);
    assert!(r.text.contains("name: 'infra2'\n"));
    assert!(r.text.contains("initial-cluster-state: 'new'\n"));
    assert!(!r.text.contains("force-new-cluster"));
    golden("etcd.conf.yml.moved.golden", &r.text);
}

#[test]
fn kubeadm_list_form_indented_and_crlf_kept() {
    let t = Target {
        name: "m1".into(),
        peer_urls: vec!["https://10.0.0.1:2380".into()],
        client_urls: vec!["https://10.0.0.1:2379".into()],
        moved: None,
    };
    let old = "kind: ClusterConfiguration\r\netcd:\r\n  local:\r\n    extraArgs:\r\n      - name: name\r\n        value: old\r\n      - name: force-new-cluster\r\n        value: \"true\"\r\n      - name: snapshot-count\r\n        value: \"10000\"\r\nnetworking: {}\r\n";
    let want = "kind: ClusterConfiguration\r\netcd:\r\n  local:\r\n    extraArgs:\r\n      - name: name\r\n        value: m1\r\n      - name: snapshot-count\r\n        value: \"10000\"\r\nnetworking: {}\r\n";
    let r = rewrite(FileKind::KubeadmConfig, old, &t);
    assert_eq!(r.text, want);
    let manifest = "kind: Pod\r\nspec:\r\n  containers:\r\n  - command:\r\n    - etcd\r\n    - --name=old\r\n    - \"--initial-cluster-state=existing\"\r\n";
    let r = rewrite(FileKind::EtcdManifest, manifest, &t);
    assert_eq!(
        r.text,
        "kind: Pod\r\nspec:\r\n  containers:\r\n  - command:\r\n    - etcd\r\n    - --name=m1\r\n    - \"--initial-cluster-state=new\"\r\n"
    );
}

#[test]
fn other_kinds_and_other_docs_are_left_alone() {
    let t = Target {
        name: "m1".into(),
        peer_urls: vec!["https://10.0.0.1:2380".into()],
        client_urls: vec!["https://10.0.0.1:2379".into()],
        moved: None,
    };
    // extraArgs of the apiserver, and of an etcd in a document of another kind.
    let text = "kind: ClusterConfiguration\napiServer:\n  extraArgs:\n    name: keep\netcd:\n  external:\n    endpoints:\n    - https://10.0.0.2:2379\n---\nkind: KubeletConfiguration\netcd:\n  local:\n    extraArgs:\n      name: keep\n";
    let r = rewrite(FileKind::KubeadmConfig, text, &t);
    assert!(!r.changed(), "{:?}", r.changes);
    assert!(extract(FileKind::KubeadmConfig, text).flags.is_empty());
}

#[test]
fn hostname_peer_urls_move_with_extra_hosts() {
    let mut cur = EtcdSettings::default();
    cur.flags.insert("name".into(), "m1".into());
    cur.flags.insert(
        "initial-advertise-peer-urls".into(),
        "https://m1.example:2380".into(),
    );
    cur.flags.insert(
        "advertise-client-urls".into(),
        "https://m1.example:2379".into(),
    );
    let mut t = Target::plan(&cur, None, Some(ip("10.0.0.50"))).unwrap();
    assert_eq!(t.peer_urls, vec!["https://10.0.0.50:2380"]);
    let api = fixture("kubeadm-kube-apiserver.yaml");
    assert!(!rewrite(FileKind::ApiServerManifest, &api, &t).changed());
    let old_ip = extract(FileKind::ApiServerManifest, &api)
        .get("advertise-address")
        .unwrap()
        .to_owned();
    t.also_move(&old_ip);
    t.also_move(&old_ip);
    assert_eq!(
        t.moved.as_ref().unwrap().from,
        vec!["m1.example", "192.168.56.12"]
    );
    let r = check_minimal_and_idempotent(FileKind::ApiServerManifest, &api, &t);
    assert_eq!(
        extract(FileKind::ApiServerManifest, &r.text).get("advertise-address"),
        Some("10.0.0.50")
    );
}
