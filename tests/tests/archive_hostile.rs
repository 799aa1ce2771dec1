//! Safe extraction: every hostile archive is refused with a typed error naming the member, and
//! nothing appears outside the staging directory. Archives are built at test time.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rescue_init::archive::{self, ArchiveError, ExtractOptions, Limits};
use rescue_tests::hostroot::{self, Node};
use rescue_tests::tarw::{self, TarEntry};
use rescue_tests::zipw::{self, ZipEntry};
use tar::EntryType;

/// A sandbox: `<tmp>/staging` (empty) plus the archive file beside it.
struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        fs::create_dir(tmp.path().join("staging")).expect("staging");
        Sandbox { tmp }
    }
    fn staging(&self) -> PathBuf {
        self.tmp.path().join("staging")
    }
    fn archive(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::write(&p, bytes).expect("write archive");
        p
    }
    /// Everything in the sandbox outside `staging`, apart from the archives written.
    fn outside(&self, archives: &[&Path]) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(self.tmp.path()).expect("read sandbox") {
            let p = e.expect("entry").path();
            if p != self.staging() && !archives.contains(&p.as_path()) {
                out.push(p);
            }
        }
        out
    }
}

fn small_limits() -> ExtractOptions {
    ExtractOptions {
        limits: Limits {
            max_entry_bytes: 1 << 20,
            max_total_bytes: 3 << 20,
            max_entries: 100,
        },
        subtree: None,
        keep_owners: false,
    }
}

/// Extracts and returns the error; checks nothing escaped and that `validate` (the dry run)
/// refuses the same archive unless `dry_run_sees_it` is false (data-dependent checks).
fn refused(sb: &Sandbox, archive: &Path, dry_run_sees_it: bool) -> ArchiveError {
    let opts = small_limits();
    if dry_run_sees_it {
        assert!(
            archive::validate(archive, &opts).is_err(),
            "validate accepted {}",
            archive.display()
        );
    }
    let err =
        archive::extract(archive, &sb.staging(), &opts).expect_err("hostile archive accepted");
    assert_eq!(
        sb.outside(&[archive]),
        Vec::<PathBuf>::new(),
        "something was written outside staging"
    );
    assert!(!Path::new("/tmp/rescue-init-pwned").exists());
    err
}

fn tgz(entries: &[TarEntry]) -> Vec<u8> {
    tarw::gzip(&tarw::tar(entries).expect("tar")).expect("gzip")
}

#[test]
fn tar_parent_dir_refused() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "a.tar.gz",
        &tgz(&[
            TarEntry::file("ok", b"1"),
            TarEntry::file("../escape", b"x"),
        ]),
    );
    match refused(&sb, &a, true) {
        ArchiveError::ParentDir { entry, .. } => assert_eq!(entry, "../escape"),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn tar_absolute_refused() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "a.tar",
        &tarw::tar(&[TarEntry::file("/tmp/rescue-init-pwned", b"x")]).expect("tar"),
    );
    assert!(matches!(
        refused(&sb, &a, true),
        ArchiveError::AbsolutePath { .. }
    ));
}

#[test]
fn tar_symlink_escapes_refused() {
    for target in ["../../etc", "/etc", "a/../../.."] {
        let sb = Sandbox::new();
        let a = sb.archive(
            "a.tar.gz",
            &tgz(&[
                TarEntry::symlink("link", target),
                TarEntry::file("link/passwd", b"x"),
            ]),
        );
        match refused(&sb, &a, true) {
            ArchiveError::SymlinkEscape {
                entry, target: t, ..
            } => {
                assert_eq!(entry, "link");
                assert_eq!(t, target);
            }
            e => panic!("unexpected {e}"),
        }
    }
}

#[test]
fn tar_write_through_inner_symlink_refused() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "a.tar.gz",
        &tgz(&[
            TarEntry::dir("sub/"),
            TarEntry::symlink("alias", "sub"),
            TarEntry::file("alias/x", b"x"),
        ]),
    );
    match refused(&sb, &a, true) {
        ArchiveError::ThroughSymlink { entry, .. } => assert_eq!(entry, "alias/x"),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn tar_hardlink_escape_refused() {
    for target in ["../../etc/shadow", "/etc/shadow", "not-extracted-yet"] {
        let sb = Sandbox::new();
        let a = sb.archive("a.tar.gz", &tgz(&[TarEntry::hardlink("h", target)]));
        match refused(&sb, &a, true) {
            ArchiveError::HardlinkEscape { entry, .. } => assert_eq!(entry, "h"),
            e => panic!("unexpected {e} for {target}"),
        }
    }
}

#[test]
fn tar_devices_and_fifos_refused() {
    for kind in [EntryType::Char, EntryType::Block, EntryType::Fifo] {
        let sb = Sandbox::new();
        let a = sb.archive("a.tar.gz", &tgz(&[TarEntry::special("dev/sda", kind)]));
        match refused(&sb, &a, true) {
            ArchiveError::SpecialFile { entry, .. } => assert_eq!(entry, "dev/sda"),
            e => panic!("unexpected {e}"),
        }
        assert!(!sb.staging().join("dev/sda").exists());
    }
}

#[test]
fn tar_entry_over_cap_refused() {
    let sb = Sandbox::new();
    // 2 MiB of zeros: a few KiB compressed, over the 1 MiB per-entry cap.
    let a = sb.archive(
        "bomb.tar.gz",
        &tgz(&[TarEntry::file("big", &vec![0u8; 2 << 20])]),
    );
    match refused(&sb, &a, true) {
        ArchiveError::EntryTooLarge { entry, limit, .. } => {
            assert_eq!(entry, "big");
            assert_eq!(limit, 1 << 20);
        }
        e => panic!("unexpected {e}"),
    }
    assert!(fs::metadata(&a).expect("archive").len() < 64 << 10);
}

#[test]
fn tar_total_over_cap_refused() {
    let sb = Sandbox::new();
    let chunk = vec![0u8; 900 << 10];
    let entries: Vec<TarEntry> = (0..5)
        .map(|i| TarEntry::file(&format!("f{i}"), &chunk))
        .collect();
    let a = sb.archive("many.tar.gz", &tgz(&entries));
    match refused(&sb, &a, true) {
        ArchiveError::TotalTooLarge { entry, .. } => assert_eq!(entry, "f3"),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn tar_too_many_entries_refused() {
    let sb = Sandbox::new();
    let entries: Vec<TarEntry> = (0..101)
        .map(|i| TarEntry::file(&format!("f{i}"), b"x"))
        .collect();
    let a = sb.archive("many.tar.gz", &tgz(&entries));
    assert!(matches!(
        refused(&sb, &a, true),
        ArchiveError::TooManyEntries { limit: 100, .. }
    ));
}

#[test]
fn tar_duplicate_refused() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "dup.tar.gz",
        &tgz(&[
            TarEntry::file("pki/ca.key", b"one"),
            TarEntry::file("./pki//ca.key", b"two"),
        ]),
    );
    match refused(&sb, &a, true) {
        ArchiveError::Duplicate { entry, .. } => assert_eq!(entry, "pki/ca.key"),
        e => panic!("unexpected {e}"),
    }
    assert_eq!(
        fs::read(sb.staging().join("pki/ca.key")).expect("first copy"),
        b"one"
    );
}

#[test]
fn tar_lying_size_is_a_read_error_not_a_write_outside() {
    let sb = Sandbox::new();
    let mut e = TarEntry::file("short", b"abc");
    e.size = Some(10 << 20);
    let a = sb.archive("short.tar", &tarw::tar(&[e]).expect("tar"));
    let err = refused(&sb, &a, true);
    assert!(
        matches!(
            err,
            ArchiveError::EntryTooLarge { .. }
                | ArchiveError::ReadEntry { .. }
                | ArchiveError::Read { .. }
        ),
        "{err}"
    );
}

#[test]
fn zip_hostile_names_refused() {
    type Expect = fn(&ArchiveError) -> bool;
    let cases: Vec<(Vec<ZipEntry>, Expect)> = vec![
        (vec![ZipEntry::file("../../escape", b"x")], |e| {
            matches!(e, ArchiveError::ParentDir { .. })
        }),
        (vec![ZipEntry::file("/tmp/rescue-init-pwned", b"x")], |e| {
            matches!(e, ArchiveError::AbsolutePath { .. })
        }),
        (
            vec![
                ZipEntry::symlink("l", "/etc"),
                ZipEntry::file("l/passwd", b"x"),
            ],
            |e| matches!(e, ArchiveError::SymlinkEscape { .. }),
        ),
        (
            vec![ZipEntry::symlink("l", "../.."), ZipEntry::file("l/x", b"x")],
            |e| matches!(e, ArchiveError::SymlinkEscape { .. }),
        ),
        (vec![ZipEntry::file("fifo", b"").mode(0o010644)], |e| {
            matches!(e, ArchiveError::SpecialFile { .. })
        }),
        (
            vec![ZipEntry::file("a", b"1"), ZipEntry::file("a", b"2")],
            |e| matches!(e, ArchiveError::Duplicate { .. }),
        ),
    ];
    for (entries, want) in cases {
        let sb = Sandbox::new();
        let a = sb.archive("a.zip", &zipw::build(&entries).expect("zip"));
        let err = refused(&sb, &a, true);
        assert!(want(&err), "unexpected {err}");
    }
}

#[test]
fn zip_bombs_refused() {
    // Honest but too large.
    let sb = Sandbox::new();
    let a = sb.archive(
        "big.zip",
        &zipw::build(&[ZipEntry::file("big", &vec![0u8; 2 << 20])]).expect("zip"),
    );
    assert!(matches!(
        refused(&sb, &a, true),
        ArchiveError::EntryTooLarge { .. }
    ));

    // Declares 10 bytes, inflates to 2 MiB: caught while reading, whatever the header says.
    let sb = Sandbox::new();
    let mut e = ZipEntry::file("liar", &vec![0u8; 2 << 20]);
    e.lie_size = Some(10);
    let a = sb.archive("liar.zip", &zipw::build(&[e]).expect("zip"));
    match refused(&sb, &a, false) {
        ArchiveError::BadMemberData { entry, .. } => assert_eq!(entry, "liar"),
        e => panic!("unexpected {e}"),
    }

    // Overlapping members (several central entries sharing one local file's data).
    let sb = Sandbox::new();
    let mut z = zipw::build(&[
        ZipEntry::file("a", &vec![0u8; 4096]),
        ZipEntry::file("b", &vec![0u8; 4096]),
    ])
    .expect("zip");
    // Point the second central entry's local header offset at the first member (offset 0).
    let cd = find_last(&z, &0x0201_4b50u32.to_le_bytes()).expect("central entry");
    z[cd + 42..cd + 46].copy_from_slice(&0u32.to_le_bytes());
    let a = sb.archive("overlap.zip", &z);
    match refused(&sb, &a, true) {
        ArchiveError::CorruptZip { reason, .. } => assert!(reason.contains("overlap"), "{reason}"),
        e => panic!("unexpected {e}"),
    }
}

#[test]
fn zip_crc_mismatch_refused() {
    let sb = Sandbox::new();
    let mut e = ZipEntry::file("data", b"hello world");
    e.lie_crc = Some(0xdead_beef);
    let a = sb.archive("crc.zip", &zipw::build(&[e]).expect("zip"));
    match refused(&sb, &a, false) {
        ArchiveError::BadMemberData { entry, source, .. } => {
            assert_eq!(entry, "data");
            assert!(source.to_string().contains("crc32"), "{source}");
        }
        e => panic!("unexpected {e}"),
    }
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    (0..=hay.len().saturating_sub(needle.len()))
        .rev()
        .find(|&i| hay.get(i..i + needle.len()) == Some(needle))
}

#[test]
fn staging_must_be_empty() {
    let sb = Sandbox::new();
    fs::write(sb.staging().join("old"), b"x").expect("write");
    let a = sb.archive("a.tar.gz", &tgz(&[TarEntry::file("f", b"1")]));
    assert!(matches!(
        archive::extract(&a, &sb.staging(), &small_limits()),
        Err(ArchiveError::StagingNotEmpty { .. })
    ));
}

#[test]
fn kube_tree_extracts_with_modes_and_links() {
    let tree = tempfile::tempdir().expect("tree");
    hostroot::write_kubernetes_tree(tree.path(), &Node::default()).expect("tree");
    std::os::unix::fs::symlink("pki/ca.crt", tree.path().join("ca-link.crt")).expect("symlink");
    let sb = Sandbox::new();
    let a = sb.archive(
        "k.tar.gz",
        &tarw::tar_gz_dir(
            tree.path(),
            "kubernetes",
            &[("snapshot.db", b"not extracted")],
        )
        .expect("tgz"),
    );
    let opts = ExtractOptions {
        subtree: Some("kubernetes".into()),
        ..ExtractOptions::default()
    };
    let dry = archive::validate(&a, &opts).expect("validate");
    let got = archive::extract(&a, &sb.staging(), &opts).expect("extract");
    assert_eq!(dry.files, got.files);
    assert_eq!(dry.bytes, got.bytes);
    let st = sb.staging();
    assert!(
        !st.join("snapshot.db").exists(),
        "member outside the subtree was extracted"
    );
    let mode = |p: &str| fs::metadata(st.join(p)).expect(p).permissions().mode() & 0o777;
    assert_eq!(mode("pki/ca.key"), 0o600);
    assert_eq!(mode("pki/etcd/peer.key"), 0o600);
    assert_eq!(mode("pki/ca.crt"), 0o644);
    assert_eq!(mode("admin.conf"), 0o600);
    assert_eq!(
        fs::read_link(st.join("ca-link.crt")).expect("link"),
        PathBuf::from("pki/ca.crt")
    );
    assert_eq!(
        fs::read(st.join("manifests/etcd.yaml")).expect("etcd.yaml"),
        fs::read(tree.path().join("manifests/etcd.yaml")).expect("src")
    );
    assert_eq!(sb.outside(&[&a]), Vec::<PathBuf>::new());
}

#[test]
fn private_keys_are_clamped_to_0600() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "k.tar.gz",
        &tgz(&[
            TarEntry::file("pki/ca.key", b"k").mode(0o644),
            TarEntry::file("ssl/kube-ca-key.pem", b"k").mode(0o666),
        ]),
    );
    archive::extract(&a, &sb.staging(), &small_limits()).expect("extract");
    for p in ["pki/ca.key", "ssl/kube-ca-key.pem"] {
        assert_eq!(
            fs::metadata(sb.staging().join(p))
                .expect(p)
                .permissions()
                .mode()
                & 0o777,
            0o600,
            "{p}"
        );
    }
}

#[test]
fn hardlink_inside_is_kept() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "h.tar.gz",
        &tgz(&[
            TarEntry::file("a/f", b"data"),
            TarEntry::hardlink("g", "a/f"),
        ]),
    );
    let s = archive::extract(&a, &sb.staging(), &small_limits()).expect("extract");
    assert_eq!(s.links, 1);
    assert_eq!(fs::read(sb.staging().join("g")).expect("g"), b"data");
}

#[test]
fn peek_streams_one_member_without_extracting() {
    let snapshot = rescue_init::discover::bbolt::synthetic(true, 3);
    let sb = Sandbox::new();
    // RKE zips carry absolute member names: extraction refuses them, peeking works.
    let z = zipw::build(&[
        ZipEntry::file("/backup/snap", &snapshot),
        ZipEntry::file("/etc/kubernetes/snap.rkestate", b"{}"),
    ])
    .expect("zip");
    let a = sb.archive("snap.zip", &z);
    let listing = archive::list(&a, &Limits::default()).expect("list");
    let names: Vec<&str> = listing.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["backup/snap", "etc/kubernetes/snap.rkestate"]);
    assert!(rescue_init::discover::bbolt::has_magic(
        &listing.members[0].head
    ));
    let mut out = Vec::new();
    let n =
        archive::stream_member(&a, "/backup/snap", &mut out, &Limits::default()).expect("stream");
    assert_eq!(n as usize, snapshot.len());
    assert_eq!(out, snapshot);
    assert!(matches!(
        archive::extract(&a, &sb.staging(), &small_limits()),
        Err(ArchiveError::AbsolutePath { .. })
    ));
    assert!(matches!(
        archive::stream_member(&a, "missing", &mut Vec::new(), &Limits::default()),
        Err(ArchiveError::MemberNotFound { .. })
    ));
    // And from a tar.gz, with a cap smaller than the member.
    let t = sb.archive(
        "d.tar.gz",
        &tgz(&[TarEntry::file("./etcd-backup.snapshot", &snapshot)]),
    );
    let mut out = Vec::new();
    archive::stream_member(&t, "etcd-backup.snapshot", &mut out, &Limits::default())
        .expect("stream tgz");
    assert_eq!(out, snapshot);
    let small = Limits {
        max_entry_bytes: 1000,
        ..Limits::default()
    };
    assert!(matches!(
        archive::stream_member(&t, "etcd-backup.snapshot", &mut Vec::new(), &small),
        Err(ArchiveError::EntryTooLarge { .. })
    ));
    assert_eq!(fs::read_dir(sb.staging()).expect("staging").count(), 0);
}

#[test]
fn detects_formats_by_content() {
    let sb = Sandbox::new();
    let t = sb.archive(
        "no-extension",
        &tarw::tar(&[TarEntry::file("x", b"1")]).expect("tar"),
    );
    let g = sb.archive("also-none", &tgz(&[TarEntry::file("x", b"1")]));
    let z = sb.archive(
        "misnamed.tar.gz",
        &zipw::build(&[ZipEntry::file("x", b"1")]).expect("zip"),
    );
    let n = sb.archive("plain.tar.gz", b"just text, not an archive at all");
    assert_eq!(
        archive::detect(&t).expect("t"),
        Some(archive::ArchiveKind::Tar)
    );
    assert_eq!(
        archive::detect(&g).expect("g"),
        Some(archive::ArchiveKind::TarGz)
    );
    assert_eq!(
        archive::detect(&z).expect("z"),
        Some(archive::ArchiveKind::Zip)
    );
    assert_eq!(archive::detect(&n).expect("n"), None);
    assert!(matches!(
        archive::list(&n, &Limits::default()),
        Err(ArchiveError::UnknownFormat { .. })
    ));
}

#[test]
fn big_member_outside_the_subtree_does_not_count() {
    let sb = Sandbox::new();
    let a = sb.archive(
        "kube-backup.tar.gz",
        &tgz(&[
            TarEntry::file("etcd-backup.snapshot", &vec![0u8; 2 << 20]),
            TarEntry::file("kubernetes/admin.conf", b"cfg"),
        ]),
    );
    let opts = ExtractOptions {
        limits: Limits {
            max_entry_bytes: 1 << 20,
            max_total_bytes: 1 << 20,
            max_entries: 10,
        },
        subtree: Some("kubernetes".into()),
        keep_owners: false,
    };
    assert_eq!(archive::validate(&a, &opts).expect("validate").files, 1);
    assert_eq!(
        archive::extract(&a, &sb.staging(), &opts)
            .expect("extract")
            .bytes,
        3
    );
    assert_eq!(
        fs::read(sb.staging().join("admin.conf")).expect("admin.conf"),
        b"cfg"
    );
    // Without the subtree the same limits refuse it.
    let sb2 = Sandbox::new();
    let a2 = sb2.archive("k.tar.gz", &fs::read(&a).expect("read"));
    let whole = ExtractOptions {
        subtree: None,
        ..opts
    };
    assert!(matches!(
        refused_with(&sb2, &a2, &whole),
        ArchiveError::EntryTooLarge { .. } | ArchiveError::TotalTooLarge { .. }
    ));
}

fn refused_with(sb: &Sandbox, archive: &Path, opts: &ExtractOptions) -> ArchiveError {
    let err = archive::extract(archive, &sb.staging(), opts).expect_err("accepted");
    assert_eq!(sb.outside(&[archive]), Vec::<PathBuf>::new());
    err
}

#[test]
fn owners_kept_when_root() {
    use std::os::unix::fs::MetadataExt;
    let sb = Sandbox::new();
    let mut f = TarEntry::file("etcd/server.key", b"k").mode(0o600);
    f.uid = 1234;
    f.gid = 2345;
    let mut d = TarEntry::dir("etcd/");
    d.uid = 1234;
    d.gid = 2345;
    let a = sb.archive("o.tar.gz", &tgz(&[d, f]));
    let opts = ExtractOptions {
        keep_owners: true,
        ..small_limits()
    };
    archive::extract(&a, &sb.staging(), &opts).expect("extract");
    let m = fs::metadata(sb.staging().join("etcd/server.key")).expect("key");
    if rustix::process::geteuid().is_root() {
        assert_eq!((m.uid(), m.gid()), (1234, 2345));
        let d = fs::metadata(sb.staging().join("etcd")).expect("dir");
        assert_eq!((d.uid(), d.gid()), (1234, 2345));
    } else {
        // Not root: files belong to whoever extracts.
        assert_eq!(m.uid(), rustix::process::geteuid().as_raw());
    }
    assert_eq!(m.permissions().mode() & 0o777, 0o600);
}

/// Unmounts on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_filesystem_is_a_write_error_naming_the_member() {
    let sb = Sandbox::new();
    let ok = rustix::process::geteuid().is_root()
        && std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(sb.staging())
            .status()
            .is_ok_and(|s| s.success());
    if !ok {
        return; // needs root and mount(8); the error path is the same std::io one
    }
    let _guard = Mounted(sb.staging());
    let data: Vec<u8> = (0..(900u32 << 10))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let a = sb.archive(
        "k.tar.gz",
        &tgz(&[
            TarEntry::file("pki/ca.crt", b"c"),
            TarEntry::file("pki/big.bin", &data),
        ]),
    );
    match archive::extract(&a, &sb.staging(), &small_limits()) {
        Err(ArchiveError::Write { entry, source, .. }) => {
            assert_eq!(entry, "pki/big.bin");
            assert_eq!(source.raw_os_error(), Some(28), "{source}"); // ENOSPC
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(sb.outside(&[&a]), Vec::<PathBuf>::new());
}

#[test]
fn zip64_directory_is_read() {
    let snapshot = rescue_init::discover::bbolt::synthetic(true, 5);
    let sb = Sandbox::new();
    let z = zipw::build_with(
        &[
            ZipEntry::file("a/one", b"first"),
            ZipEntry::file("snap", &snapshot),
        ],
        true,
    )
    .expect("zip64");
    let a = sb.archive("z64.zip", &z);
    let listing = archive::list(&a, &Limits::default()).expect("list");
    assert_eq!(listing.members.len(), 2);
    assert_eq!(listing.members[1].size, snapshot.len() as u64);
    let mut out = Vec::new();
    archive::stream_member(&a, "snap", &mut out, &Limits::default()).expect("stream");
    assert_eq!(out, snapshot);
    archive::extract(&a, &sb.staging(), &ExtractOptions::default()).expect("extract");
    assert_eq!(fs::read(sb.staging().join("a/one")).expect("one"), b"first");
}

/// Archives written by Python's zipfile/tarfile (other writers than ours): read back, and a
/// hostile one refused. Skipped without python3.
#[test]
fn python_written_archives() {
    let sb = Sandbox::new();
    let script = r#"
import io, sys, tarfile, zipfile
d = sys.argv[1]
with zipfile.ZipFile(d + "/py.zip", "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("kubernetes/admin.conf", "cfg" * 1000)
    info = zipfile.ZipInfo("kubernetes/pki/ca.key")
    info.external_attr = 0o100600 << 16
    info.create_system = 3
    z.writestr(info, "key")
with tarfile.open(d + "/py.tar.gz", "w:gz", format=tarfile.PAX_FORMAT) as t:
    long = "kubernetes/" + "x" * 150 + "/deep.yaml"
    data = b"long name member"
    ti = tarfile.TarInfo(long); ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
with tarfile.open(d + "/evil.tar.gz", "w:gz") as t:
    ti = tarfile.TarInfo("../../evil"); ti.size = 1
    t.addfile(ti, io.BytesIO(b"x"))
"#;
    let ran = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(sb.tmp.path())
        .status();
    if !ran.is_ok_and(|s| s.success()) {
        return;
    }
    let z = sb.tmp.path().join("py.zip");
    let t = sb.tmp.path().join("py.tar.gz");
    let e = sb.tmp.path().join("evil.tar.gz");
    let st = sb.staging();
    fs::create_dir(st.join("z")).expect("z");
    fs::create_dir(st.join("t")).expect("t");
    archive::extract(&z, &st.join("z"), &ExtractOptions::default()).expect("zip");
    assert_eq!(
        fs::read(st.join("z/kubernetes/admin.conf"))
            .expect("admin")
            .len(),
        3000
    );
    assert_eq!(
        fs::metadata(st.join("z/kubernetes/pki/ca.key"))
            .expect("key")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    archive::extract(&t, &st.join("t"), &ExtractOptions::default()).expect("tar.gz");
    let long = format!("t/kubernetes/{}/deep.yaml", "x".repeat(150));
    assert_eq!(fs::read(st.join(long)).expect("long"), b"long name member");
    let sb2 = Sandbox::new();
    let e2 = sb2.archive("evil.tar.gz", &fs::read(&e).expect("evil"));
    assert!(matches!(
        refused(&sb2, &e2, true),
        ArchiveError::ParentDir { .. }
    ));
}

#[test]
fn member_reader_pulls_data_and_surfaces_errors_at_eof() {
    use std::io::Read;
    let snapshot = rescue_init::discover::bbolt::synthetic(true, 6);
    let sb = Sandbox::new();
    let a = sb.archive(
        "d.tar.gz",
        &tgz(&[TarEntry::file("etcd-backup.snapshot", &snapshot)]),
    );
    let mut r = archive::open_member(&a, "etcd-backup.snapshot", &Limits::default()).expect("open");
    let mut got = Vec::new();
    r.read_to_end(&mut got).expect("read");
    assert_eq!(got, snapshot);
    let mut missing = archive::open_member(&a, "nope", &Limits::default()).expect("open");
    let err = missing
        .read_to_end(&mut Vec::new())
        .expect_err("missing member must not look like EOF");
    assert!(err.to_string().contains("not found"), "{err}");
    let mut e = ZipEntry::file("s", &snapshot);
    e.lie_crc = Some(1);
    let z = sb.archive("bad.zip", &zipw::build(&[e]).expect("zip"));
    let mut bad = archive::open_member(&z, "s", &Limits::default()).expect("open");
    assert!(bad.read_to_end(&mut Vec::new()).is_err());
}
