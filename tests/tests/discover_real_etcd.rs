//! Every layout builder fed a real `etcdctl snapshot save` file: discovery must find it, pick
//! the right layout, verify the SHA-256 trailer, and stream back the exact bytes.
//! Skips when etcd is not installed, unless `RESCUE_REQUIRE_ETCD=1`.

use std::path::PathBuf;

use rescue_init::archive::{self, Limits};
use rescue_init::discover::bbolt::HashCheck;
use rescue_init::discover::{self, Layout, Location, ScanOptions};
use rescue_tests::etcdsnap::real_snapshot;
use rescue_tests::hostroot::{self, HostRoot, Node};

#[test]
fn every_layout_with_a_real_snapshot() {
    let Some(snap) = real_snapshot(25).expect("etcd") else {
        // Skipped: etcd is not installed (CI sets RESCUE_REQUIRE_ETCD=1 so this cannot pass silently).
        return;
    };
    assert_eq!(
        snap.len() % 512,
        32,
        "snapshot save output carries a sha256 trailer"
    );
    let node = Node::default();
    type Build = fn(&HostRoot, &[u8], &Node) -> std::io::Result<PathBuf>;
    let layouts: Vec<(Layout, bool, Build)> = vec![
        (Layout::PlainSnapshot, true, |r, s, _| {
            hostroot::plain_snapshot(r, s, "root/etcd-2024-01-01.db")
        }),
        (Layout::RawDb, true, |r, s, _| {
            hostroot::raw_db(r, s, "backup/db-copy")
        }),
        (Layout::DataDir, true, |r, s, _| {
            hostroot::data_dir(r, s, "backup/etcd-dir")
        }),
        (Layout::Kubeadm, false, |r, s, n| {
            hostroot::kubeadm_dir(r, s, "backup/k", n)
        }),
        (Layout::Kubeadm, false, |r, s, n| {
            hostroot::kubeadm_targz(r, s, "backup/k", n)
        }),
        (Layout::Deckhouse, false, |r, s, n| {
            hostroot::deckhouse_kube_backup(r, s, "root/kube-backup.tar.gz", n)
        }),
        (Layout::DeckhouseDaily, true, |r, s, _| {
            hostroot::deckhouse_daily(r, s)
        }),
        (Layout::OpenShift, false, |r, s, _| {
            hostroot::openshift(r, s, "home/core/backup", "2024-01-02_030405", true)
        }),
        (Layout::CrayCsm, false, |r, s, n| {
            hostroot::cray(r, s, "root", "2024-01-02-03-04-05", n)
        }),
        (Layout::Rke, false, |r, s, n| {
            hostroot::rke_zip(r, s, "2024-01-02T03:04:05Z_etcd", n)
        }),
        (Layout::Rke, false, |r, s, n| {
            hostroot::rke_plain(r, s, "2024-01-02T03:04:05Z_etcd", n)
        }),
        (Layout::K3s, true, |r, s, _| {
            hostroot::k3s(r, s, "k3s", "n1", 1_700_000_000)
        }),
    ];
    for (layout, needs_host_kube, build) in layouts {
        let root = HostRoot::new().expect("root");
        if needs_host_kube {
            hostroot::host_kubernetes(&root, &node).expect("host kube");
        }
        build(&root, &snap, &node).expect("build");
        let inv = discover::scan(root.path(), &ScanOptions::default()).expect("scan");
        let c = inv
            .chosen()
            .unwrap_or_else(|| panic!("{layout:?}: nothing chosen: {:#?}", inv.candidates));
        assert_eq!(c.layout, layout, "{:#?}", inv.candidates);
        let check = c.check.as_ref().expect("checked");
        let want_hash = if matches!(layout, Layout::RawDb | Layout::DataDir) {
            HashCheck::Absent
        } else {
            HashCheck::Matches
        };
        assert_eq!(check.hash, want_hash, "{layout:?}");
        assert_eq!(check.meta.map(|m| m.page_size), Ok(4096), "{layout:?}");
        let mut bytes = Vec::new();
        match &c.snapshot {
            Location::File { path } => bytes = std::fs::read(path).expect("read"),
            Location::Member { archive, member } => {
                archive::stream_member(archive, member, &mut bytes, &Limits::SNAPSHOT)
                    .expect("stream");
            }
        }
        assert_eq!(
            bytes,
            if want_hash == HashCheck::Absent {
                hostroot::strip_trailer(&snap)
            } else {
                &snap[..]
            },
            "{layout:?}"
        );
    }
}
