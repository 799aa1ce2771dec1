//! Discovery on simulated host roots: one test per layout, plus choice, rejection and safety.
//! Snapshots are the small synthetic bbolt-like files (valid meta pages and trailer); the
//! end-to-end recovery tests feed the same builders a real etcd snapshot.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rescue_init::discover::bbolt::{synthetic, HashCheck};
use rescue_init::discover::{
    self, Inventory, KubeRequirement, KubeSource, Layout, Location, ScanOptions, StampSource,
    Status,
};
use rescue_tests::hostroot::{self, HostRoot, Node};

fn scan(root: &HostRoot) -> Inventory {
    discover::scan(root.path(), &ScanOptions::default()).expect("scan")
}

fn chosen(inv: &Inventory) -> &discover::Candidate {
    inv.chosen()
        .unwrap_or_else(|| panic!("nothing chosen: {:#?}", inv.candidates))
}

fn node() -> Node {
    Node::default()
}

#[test]
fn plain_snapshot_in_root_home_with_host_kubernetes() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let p = hostroot::plain_snapshot(
        &root,
        &synthetic(true, 1),
        "root/backups/etcd-20240102-030405.db",
    )
    .expect("snap");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::PlainSnapshot);
    assert_eq!(c.snapshot, Location::File { path: p });
    assert_eq!(c.timestamp_from, StampSource::Name);
    assert_eq!(
        c.timestamp,
        discover::stamp::unix_seconds(2024, 1, 2, 3, 4, 5)
    );
    assert_eq!(c.check.as_ref().map(|r| r.hash), Some(HashCheck::Matches));
    assert!(inv.host_has_kubernetes);
}

#[test]
fn recognised_by_content_not_name() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    hostroot::plain_snapshot(&root, &synthetic(true, 1), "srv/misc/notes.txt").expect("snap");
    hostroot::plain_snapshot(
        &root,
        b"not a snapshot at all, despite the name",
        "backup/etcd-snapshot.db",
    )
    .expect("decoy");
    let inv = scan(&root);
    assert_eq!(inv.candidates.len(), 1, "{:#?}", inv.candidates);
    assert!(chosen(&inv).snapshot.to_string().ends_with("notes.txt"));
}

#[test]
fn raw_db_without_trailer() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    hostroot::raw_db(&root, &synthetic(true, 1), "backup/etcd-db").expect("db");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::RawDb);
    assert_eq!(c.check.as_ref().map(|r| r.hash), Some(HashCheck::Absent));
}

#[test]
fn whole_data_dir_copy() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let dir =
        hostroot::data_dir(&root, &synthetic(true, 1), "backup/var-lib-etcd").expect("data dir");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::DataDir);
    assert_eq!(c.data_dir.as_deref(), Some(dir.as_path()));
}

#[test]
fn kubeadm_directory_beside_snapshot() {
    let root = HostRoot::new().expect("root");
    let snap = hostroot::kubeadm_dir(&root, &synthetic(true, 1), "backup/2024-01-02", &node())
        .expect("kubeadm");
    let inv = scan(&root);
    assert!(!inv.host_has_kubernetes);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::Kubeadm);
    assert_eq!(c.snapshot, Location::File { path: snap.clone() });
    let dir = snap.parent().expect("dir").join("kubernetes");
    assert_eq!(c.kubernetes, Some(KubeSource::Dir { path: dir }));
}

#[test]
fn kubeadm_targz_beside_snapshot() {
    let root = HostRoot::new().expect("root");
    let snap = hostroot::kubeadm_targz(&root, &synthetic(true, 1), "home/admin/etcd", &node())
        .expect("kubeadm");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::Kubeadm);
    let archive = snap.parent().expect("dir").join("etc-kubernetes.tar.gz");
    assert_eq!(
        c.kubernetes,
        Some(KubeSource::Archive {
            archive,
            prefix: "kubernetes".into()
        })
    );
}

#[test]
fn deckhouse_kube_backup() {
    let root = HostRoot::new().expect("root");
    let a = hostroot::deckhouse_kube_backup(
        &root,
        &synthetic(true, 1),
        "root/kube-backup.tar.gz",
        &node(),
    )
    .expect("deckhouse");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::Deckhouse);
    assert_eq!(
        c.snapshot,
        Location::Member {
            archive: a.clone(),
            member: "etcd-backup.snapshot".into()
        }
    );
    assert_eq!(
        c.kubernetes,
        Some(KubeSource::Archive {
            archive: a,
            prefix: "kubernetes".into()
        })
    );
    assert_eq!(c.check.as_ref().map(|r| r.hash), Some(HashCheck::Matches));
}

#[test]
fn deckhouse_daily_backup_uses_host_kubernetes() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let a = hostroot::deckhouse_daily(&root, &synthetic(true, 1)).expect("daily");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::DeckhouseDaily);
    assert_eq!(
        c.snapshot,
        Location::Member {
            archive: a,
            member: "etcd-backup.snapshot".into()
        }
    );
    assert_eq!(c.kubernetes, None);
}

#[test]
fn openshift_newest_complete_pair_wins_and_lone_snapshot_is_refused() {
    let root = HostRoot::new().expect("root");
    let dir = "home/core/assets/backup";
    let old = hostroot::openshift(&root, &synthetic(true, 1), dir, "2024-01-01_010101", true)
        .expect("old pair");
    let lone = hostroot::openshift(&root, &synthetic(true, 2), dir, "2024-02-02_020202", false)
        .expect("lone");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::OpenShift);
    assert_eq!(c.snapshot, Location::File { path: old.clone() });
    let resources = old
        .parent()
        .expect("dir")
        .join("static_kuberesources_2024-01-01_010101.tar.gz");
    assert_eq!(
        c.kubernetes,
        Some(KubeSource::OpenShiftResources { archive: resources })
    );
    let refused = inv
        .candidates
        .iter()
        .find(|c| c.snapshot == Location::File { path: lone.clone() })
        .expect("lone listed");
    assert_eq!(refused.status, Status::Rejected);
    assert!(
        refused
            .reason
            .contains("static_kuberesources_2024-02-02_020202.tar.gz"),
        "{}",
        refused.reason
    );
}

#[test]
fn cray_csm_backup_and_kubeadmcfg() {
    let root = HostRoot::new().expect("root");
    let a = hostroot::cray(
        &root,
        &synthetic(true, 1),
        "root",
        "2022-09-15-20-34-13",
        &node(),
    )
    .expect("cray");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::CrayCsm);
    assert_eq!(
        c.snapshot,
        Location::Member {
            archive: a,
            member: "etcd-backup-2022-09-15-20-34-13/etcd-dump.bin".into()
        }
    );
    assert_eq!(
        c.timestamp,
        discover::stamp::unix_seconds(2022, 9, 15, 20, 34, 13)
    );
    assert_eq!(
        c.etcd_config,
        Some(root.join("etc/kubernetes/kubeadmcfg.yaml"))
    );
}

#[test]
fn rke_zip_with_state() {
    let root = HostRoot::new().expect("root");
    let name = "2024-01-02T03:04:05Z_etcd";
    let a = hostroot::rke_zip(&root, &synthetic(true, 1), name, &node()).expect("rke zip");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::Rke);
    assert_eq!(
        c.snapshot,
        Location::Member {
            archive: a.clone(),
            member: format!("backup/{name}")
        }
    );
    assert_eq!(
        c.timestamp,
        discover::stamp::unix_seconds(2024, 1, 2, 3, 4, 5)
    );
    let Some(KubeSource::RkeState { state, .. }) = &c.kubernetes else {
        panic!("no rke state: {:?}", c.kubernetes)
    };
    assert_eq!(
        state,
        &Location::Member {
            archive: a,
            member: format!("etc/kubernetes/{name}.rkestate")
        }
    );
}

#[test]
fn rke_plain_with_host_state_and_ssl() {
    let root = HostRoot::new().expect("root");
    let name = "c-abcde-rl-fghij_2024-03-04T05:06:07Z";
    let p = hostroot::rke_plain(&root, &synthetic(true, 1), name, &node()).expect("rke plain");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::Rke);
    assert_eq!(c.snapshot, Location::File { path: p });
    assert_eq!(
        c.kubernetes,
        Some(KubeSource::RkeState {
            state: Location::File {
                path: root.join(&format!("etc/kubernetes/{name}.rkestate"))
            },
            ssl_dir: Some(root.join("etc/kubernetes/ssl")),
        })
    );
    let state = fs::read(root.join(&format!("etc/kubernetes/{name}.rkestate"))).expect("state");
    let files = discover::rke::certificate_files(&state).expect("certs");
    assert!(files
        .iter()
        .any(|f| f.path == Path::new("/etc/kubernetes/ssl/kube-ca-key.pem") && f.mode == 0o600));
}

#[test]
fn k3s_and_rke2_snapshot_dirs() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    hostroot::k3s(&root, &synthetic(true, 1), "k3s", "node-a", 1_700_000_000).expect("k3s");
    hostroot::k3s(&root, &synthetic(true, 2), "rke2", "node-a", 1_700_000_100).expect("rke2");
    let inv = scan(&root);
    assert_eq!(chosen(&inv).layout, Layout::Rke2);
    assert_eq!(chosen(&inv).timestamp, 1_700_000_100);
    assert!(inv
        .candidates
        .iter()
        .any(|c| c.layout == Layout::K3s && c.status == Status::Passed));
}

#[test]
fn newest_wins_by_name_then_mtime() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let named_old =
        hostroot::plain_snapshot(&root, &synthetic(true, 1), "backup/etcd-2023-01-01.db")
            .expect("a");
    let named_new =
        hostroot::plain_snapshot(&root, &synthetic(true, 2), "backup/etcd-2024-06-01.db")
            .expect("b");
    let unnamed =
        hostroot::plain_snapshot(&root, &synthetic(true, 3), "backup/snapshot.db").expect("c");
    // The name beats mtime: make the old-named file the most recently modified.
    hostroot::set_mtime(&named_old, 1_900_000_000).expect("mtime");
    hostroot::set_mtime(
        &unnamed,
        discover::stamp::unix_seconds(2024, 5, 1, 0, 0, 0) as u64,
    )
    .expect("mtime");
    let inv = scan(&root);
    assert_eq!(chosen(&inv).snapshot, Location::File { path: named_new });
    let un = inv
        .candidates
        .iter()
        .find(|c| {
            c.snapshot
                == Location::File {
                    path: unnamed.clone(),
                }
        })
        .expect("unnamed");
    assert_eq!(un.timestamp_from, StampSource::Mtime);
    assert_eq!(inv.candidates.len(), 3);
    assert!(inv
        .candidates
        .iter()
        .filter(|c| c.status != Status::Chosen)
        .all(|c| !c.reason.is_empty()));
}

#[test]
fn corrupt_newest_is_rejected_and_next_is_chosen() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let mut bad = synthetic(true, 9);
    bad[3 * 4096 + 7] ^= 0x55;
    let bad = hostroot::plain_snapshot(&root, &bad, "backup/etcd-2024-06-01.db").expect("bad");
    let good = hostroot::plain_snapshot(&root, &synthetic(true, 1), "backup/etcd-2024-01-01.db")
        .expect("good");
    let inv = scan(&root);
    assert_eq!(chosen(&inv).snapshot, Location::File { path: good });
    let b = inv
        .candidates
        .iter()
        .find(|c| c.snapshot == Location::File { path: bad.clone() })
        .expect("bad listed");
    assert_eq!(b.status, Status::Rejected);
    assert!(b.reason.contains("sha256"), "{}", b.reason);
    let text = inv.to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("chosen [snapshot file]")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("rejected [snapshot file]") && l.contains("sha256")),
        "{text}"
    );
}

#[test]
fn no_backup_at_all() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let inv = scan(&root);
    assert!(inv.chosen.is_none());
    assert!(inv.candidates.is_empty());
}

#[test]
fn backup_without_kubernetes_when_host_has_none() {
    let root = HostRoot::new().expect("root");
    hostroot::plain_snapshot(&root, &synthetic(true, 1), "backup/etcd-2024-01-01.db")
        .expect("snap");
    let inv = scan(&root);
    assert!(inv.chosen.is_none());
    assert_eq!(inv.candidates[0].status, Status::Rejected);
    assert!(
        inv.candidates[0].reason.contains("/etc/kubernetes"),
        "{}",
        inv.candidates[0].reason
    );
    let relaxed = discover::scan(
        root.path(),
        &ScanOptions {
            kubernetes: KubeRequirement::NotRequired,
            ..ScanOptions::default()
        },
    )
    .expect("scan");
    assert!(relaxed.chosen.is_some());
}

#[test]
fn hostile_kubernetes_archive_rejects_its_backup() {
    let root = HostRoot::new().expect("root");
    let snap = rescue_tests::tarw::TarEntry::file("./etcd-backup.snapshot", &synthetic(true, 1));
    let evil = rescue_tests::tarw::TarEntry::symlink("kubernetes/pki", "/etc");
    let marker = rescue_tests::tarw::TarEntry::file("kubernetes/admin.conf", b"x");
    let ca = rescue_tests::tarw::TarEntry::file("kubernetes/manifests/etcd.yaml", b"x");
    let tgz =
        rescue_tests::tarw::gzip(&rescue_tests::tarw::tar(&[snap, marker, ca, evil]).expect("tar"))
            .expect("gz");
    hostroot::write_file(&root.join("root/kube-backup.tar.gz"), &tgz, 0o600).expect("write");
    let inv = scan(&root);
    assert!(inv.chosen.is_none(), "{:#?}", inv.candidates);
    assert!(
        inv.candidates[0].reason.contains("symlink"),
        "{}",
        inv.candidates[0].reason
    );
}

#[test]
fn symlinks_never_lead_out_of_the_root() {
    let outside = tempfile::tempdir().expect("outside");
    fs::write(
        outside.path().join("etcd-2030-01-01.db"),
        synthetic(true, 5),
    )
    .expect("outside snap");
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    // /backup -> <outside> (absolute: resolved inside the root, where it does not exist);
    // /srv/link.db -> <outside>/etcd-...db (symlinks are not followed in the walk).
    std::os::unix::fs::symlink(outside.path(), root.join("backup")).expect("symlink dir");
    fs::create_dir_all(root.join("srv")).expect("srv");
    std::os::unix::fs::symlink(
        outside.path().join("etcd-2030-01-01.db"),
        root.join("srv/link.db"),
    )
    .expect("symlink file");
    // A symlink inside the root that stays inside is resolved: /backups -> /data/bk.
    let inside = hostroot::plain_snapshot(&root, &synthetic(true, 1), "data/bk/etcd-2020-01-01.db")
        .expect("inside");
    std::os::unix::fs::symlink("/data/bk", root.join("backups")).expect("inner symlink");
    let inv = scan(&root);
    assert_eq!(inv.candidates.len(), 1, "{:#?}", inv.candidates);
    assert_eq!(chosen(&inv).snapshot, Location::File { path: inside });
    assert_eq!(
        discover::resolve_in_root(root.path(), Path::new("backups/../../../backups")),
        Some(root.join("data/bk"))
    );
}

#[test]
fn extra_dirs_such_as_boot_media() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let media = tempfile::tempdir().expect("media");
    fs::write(media.path().join("etcd-2025-01-01.db"), synthetic(true, 4)).expect("media snap");
    hostroot::plain_snapshot(&root, &synthetic(true, 1), "backup/etcd-2024-01-01.db")
        .expect("host snap");
    let opts = ScanOptions {
        extra_dirs: vec![media.path().to_path_buf()],
        ..ScanOptions::default()
    };
    let inv = discover::scan(root.path(), &opts).expect("scan");
    assert_eq!(
        chosen(&inv).snapshot,
        Location::File {
            path: media.path().join("etcd-2025-01-01.db")
        }
    );
}

/// Path → (size, mode, mtime, content hash) of every file and link under `dir`.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u64, u32, i64, Vec<u8>)> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let m = fs::symlink_metadata(&p).expect("meta");
            let content = if m.is_file() {
                Sha256::digest(fs::read(&p).expect("read")).to_vec()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p, (m.len(), m.mode(), m.mtime(), content));
        }
    }
    out
}

#[test]
fn scan_is_read_only() {
    let root = HostRoot::new().expect("root");
    let n = node();
    hostroot::deckhouse_kube_backup(&root, &synthetic(true, 1), "root/kube-backup.tar.gz", &n)
        .expect("a");
    hostroot::openshift(
        &root,
        &synthetic(true, 2),
        "home/core/backup",
        "2024-01-01_010101",
        true,
    )
    .expect("b");
    hostroot::rke_zip(&root, &synthetic(true, 3), "2024-01-02T03:04:05Z_etcd", &n).expect("c");
    hostroot::data_dir(&root, &synthetic(true, 4), "var/lib/etcd").expect("d");
    let before = fingerprint(root.path());
    let opts = ScanOptions {
        check_all: true,
        kubernetes: KubeRequirement::NotRequired,
        ..ScanOptions::default()
    };
    let inv = discover::scan(root.path(), &opts).expect("scan");
    assert_eq!(inv.candidates.len(), 4, "{:#?}", inv.candidates);
    assert!(
        inv.candidates.iter().all(|c| c.status != Status::Rejected),
        "{:#?}",
        inv.candidates
    );
    assert_eq!(fingerprint(root.path()), before);
    // The inventory serialises for the report.
    let json = serde_json::to_string(&inv).expect("json");
    assert!(json.contains("\"layout\":\"deckhouse\""), "{json}");
}

#[test]
fn host_live_data_dir_is_a_candidate_and_can_be_skipped() {
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node()).expect("host kube");
    let live = hostroot::data_dir(&root, &synthetic(true, 1), "var/lib/etcd").expect("live");
    hostroot::plain_snapshot(&root, &synthetic(true, 2), "backup/etcd-2020-01-01.db")
        .expect("old backup");
    let inv = scan(&root);
    let c = chosen(&inv);
    assert_eq!(c.layout, Layout::DataDir);
    assert!(c.live_data_dir);
    assert_eq!(c.data_dir.as_deref(), Some(live.as_path()));
    let opts = ScanOptions {
        skip_live_data_dir: true,
        ..ScanOptions::default()
    };
    let inv = discover::scan(root.path(), &opts).expect("scan");
    assert_eq!(chosen(&inv).layout, Layout::PlainSnapshot);
    assert!(inv
        .candidates
        .iter()
        .any(|c| c.live_data_dir && c.status == Status::Rejected));
}
