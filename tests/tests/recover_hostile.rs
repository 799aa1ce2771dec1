//! `rescue-init recover` on hostile and broken input: each run must exit non-zero with one clear
//! `error:` line, and leave the host tree byte-identical (every file's hash and mode, every
//! directory listing, hidden entries included).
//! Skips when etcd is not installed, unless `RESCUE_REQUIRE_ETCD=1`.

use std::path::Path;
use std::process::Command;

use rescue_tests::hostroot::{self, HostRoot, Node};
use rescue_tests::recovery::{self, Source};
use rescue_tests::tarw::{self, TarEntry};
use rescue_tests::tools::{note, skip};

fn source() -> Option<&'static Source> {
    recovery::source()
}

fn refused(root: &Path, args: &[&str], expect: &str) -> String {
    recovery::assert_refused(root, args, expect)
}

/// A kubeadm-style backup dir: a good snapshot and `etc-kubernetes.tar.gz` holding a good tree
/// plus `bad` entries. The host has a stale data dir and no `/etc/kubernetes`.
fn kube_archive_host(src: &Source, bad: Vec<TarEntry>) -> HostRoot {
    kube_archive_host_with(src, bad, |t| tarw::gzip(t).expect("gz"))
}

fn kube_archive_host_with(
    src: &Source,
    bad: Vec<TarEntry>,
    gzip: impl Fn(&[u8]) -> Vec<u8>,
) -> HostRoot {
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    recovery::stale_data_dir(&root);
    let mut entries = vec![
        TarEntry::dir("kubernetes/"),
        TarEntry::dir("kubernetes/manifests/"),
        TarEntry::file(
            "kubernetes/manifests/etcd.yaml",
            hostroot::etcd_manifest(&node).as_bytes(),
        )
        .mode(0o600),
        TarEntry::dir("kubernetes/pki/"),
    ];
    entries.extend(bad);
    let dir = root.join("root/backup-20240102");
    hostroot::write_file(
        &dir.join("etc-kubernetes.tar.gz"),
        &gzip(&tarw::tar(&entries).expect("tar")),
        0o600,
    )
    .expect("archive");
    hostroot::write_file(&dir.join("etcd-snapshot.db"), &src.snapshot, 0o600).expect("snap");
    root
}

#[test]
fn kube_archive_with_parent_dir_entry() {
    let Some(src) = source() else { return };
    let root = kube_archive_host(
        src,
        vec![TarEntry::file("kubernetes/../../../../tmp/evil", b"x")],
    );
    refused(root.path(), &[], "..");
}

#[test]
fn kube_archive_with_absolute_path() {
    let Some(src) = source() else { return };
    let root = kube_archive_host(src, vec![TarEntry::file("/etc/evil", b"x")]);
    refused(root.path(), &[], "absolute");
}

#[test]
fn kube_archive_with_symlink_escape() {
    let Some(src) = source() else { return };
    let root = kube_archive_host(
        src,
        vec![
            TarEntry::symlink("kubernetes/pki/out", "../../../../../etc"),
            TarEntry::file("kubernetes/pki/out/evil", b"x"),
        ],
    );
    refused(root.path(), &[], "symlink");
}

#[test]
fn kube_archive_with_hardlink_escape() {
    let Some(src) = source() else { return };
    let root = kube_archive_host(
        src,
        vec![TarEntry::hardlink("kubernetes/pki/passwd", "/etc/passwd")],
    );
    refused(root.path(), &[], "link");
}

#[test]
fn kube_archive_with_device_node() {
    let Some(src) = source() else { return };
    let root = kube_archive_host(
        src,
        vec![TarEntry::special(
            "kubernetes/pki/sda",
            tar::EntryType::Block,
        )],
    );
    refused(root.path(), &[], "kubernetes/pki/sda");
}

#[test]
fn kube_archive_with_entry_over_the_cap() {
    let Some(src) = source() else { return };
    // 64 MiB + 1 of zeros (the per-entry cap of a configuration tree is 64 MiB), gzipped by the
    // gzip tool (the debug build of the Rust compressor is slow on that much data).
    let big = vec![0u8; (64 << 20) + 1];
    if gzip_tool(b"probe").is_none() {
        skip("the gzip tool is missing: entry-over-cap case not run");
        return;
    }
    let root = kube_archive_host_with(src, vec![TarEntry::file("kubernetes/pki/big", &big)], |t| {
        gzip_tool(t).expect("gzip")
    });
    drop(big);
    refused(root.path(), &[], "big");
}

fn gzip_tool(data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-1c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().ok()?;
    writer.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

#[test]
fn snapshot_failing_its_sha256() {
    let Some(src) = source() else { return };
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node).expect("kube");
    recovery::stale_data_dir(&root);
    let mut bad = src.snapshot.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    hostroot::plain_snapshot(&root, &bad, "root/etcd-20240102-030405.db").expect("snap");
    refused(root.path(), &[], "sha256");
}

#[test]
fn snapshot_without_kubernetes_where_the_host_has_none() {
    let Some(src) = source() else { return };
    let root = HostRoot::new().expect("root");
    recovery::stale_data_dir(&root);
    hostroot::plain_snapshot(&root, &src.snapshot, "root/etcd-20240102-030405.db").expect("snap");
    refused(root.path(), &[], "no /etc/kubernetes");
}

#[test]
fn no_backup_at_all() {
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    hostroot::host_kubernetes(&root, &node).expect("kube");
    recovery::stale_data_dir(&root);
    refused(root.path(), &[], "no usable etcd backup");
}

/// The host root on a small tmpfs (needs root; skipped otherwise): too small for the restored
/// data dir. The run may stop at the free-space check or fail while applying and roll back;
/// either way the tree must be as it was.
#[test]
fn full_disk() {
    let Some(src) = source() else { return };
    if !rustix::process::geteuid().is_root() {
        skip("full-disk case needs root to mount a tmpfs");
        return;
    }
    let mnt = tempfile::tempdir().expect("mountpoint");
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=24m",
            "rescue-full",
            &mnt.path().to_string_lossy(),
        ])
        .status();
    if !st.is_ok_and(|s| s.success()) {
        skip("cannot mount a tmpfs here: full-disk case not run");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.path().to_path_buf());
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = mnt.path();
    hostroot::write_kubernetes_tree(&root.join("etc/kubernetes"), &node).expect("kube");
    let stale = root.join("var/lib/etcd/member");
    hostroot::write_file(&stale.join("snap/db"), recovery::STALE, 0o600).expect("stale");
    hostroot::write_file(
        &root.join("root/etcd-20240102-030405.db"),
        &src.snapshot,
        0o600,
    )
    .expect("snap");
    refused(root, &[], "space");
}

/// `/etc` on a 1 MiB tmpfs (needs root), the backup's `/etc/kubernetes` larger than that: the
/// data dir's free-space check passes, staging the tree runs out of space. The staging
/// directory must be removed again and the host left as it was.
#[test]
fn full_etc_while_staging_the_kubernetes_tree() {
    let Some(src) = source() else { return };
    if !rustix::process::geteuid().is_root() {
        skip("full-disk case needs root to mount a tmpfs");
        return;
    }
    let blob: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
    let root = kube_archive_host(src, vec![TarEntry::file("kubernetes/pki/blob", &blob)]);
    let etc = root.join("etc");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "rescue-full-etc"])
        .arg(&etc)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        skip("cannot mount a tmpfs here: full-/etc case not run");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(etc);
    refused(root.path(), &[], "space");
}

/// `/etc` on a 1 MiB tmpfs filled to the last byte (needs root): staging and the restore pass,
/// rewriting the etcd manifest runs out of space, and the applied steps are rolled back. Every
/// entry of the host is back as it was; the only additions are the rolled-back data dir kept
/// as a hidden sibling (never deleted) and the report.
#[test]
fn full_etc_while_rewriting_rolls_back() {
    use std::io::Write;
    let Some(src) = source() else { return };
    if !rustix::process::geteuid().is_root() {
        skip("full-disk case needs root to mount a tmpfs");
        return;
    }
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new().expect("root");
    recovery::stale_data_dir(&root);
    hostroot::plain_snapshot(&root, &src.snapshot, "root/etcd-20240102-030405.db").expect("snap");
    let etc = root.join("etc");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "rescue-full-etc"])
        .arg(&etc)
        .status();
    if !st.is_ok_and(|s| s.success()) {
        skip("cannot mount a tmpfs here: full-/etc rollback case not run");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(etc.clone());
    hostroot::host_kubernetes(&root, &node).expect("kube");
    // Fill /etc to the last byte.
    let mut f = std::fs::File::create(etc.join("filler")).expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
    drop(f);
    let before = recovery::picture(root.path());
    let out = recovery::recover(root.path(), &[]);
    let after = recovery::picture(root.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "recovered on a full /etc?\n{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    note(errors[0]);
    for (k, v) in &before {
        assert_eq!(
            after.get(k),
            Some(v),
            "{} not back as it was\n{stdout}",
            k.display()
        );
    }
    for k in after.keys().filter(|k| !before.contains_key(*k)) {
        let s = k.to_string_lossy();
        assert!(
            s.contains(".rescue-init-rolled-back-")
                || s == "var/log"
                || s.starts_with("var/log/rescue-init"),
            "unexpected new entry {s}\n{stdout}"
        );
    }
}
