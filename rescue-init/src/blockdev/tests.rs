//! Superblock and partition-table parsers against images made here by the real mkfs tools,
//! checked against util-linux's `blkid -p` and `sfdisk` on the same images.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} not runnable ({e}); run scripts/install-vm-deps.sh"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn image(dir: &Path, name: &str, size: &str) -> PathBuf {
    let p = dir.join(name);
    run("truncate", &["-s", size, p.to_str().expect("test step")]);
    p
}

/// `blkid -p -o export` as a map (TYPE, LABEL, UUID, PTTYPE, …).
fn blkid(p: &Path) -> BTreeMap<String, String> {
    run(
        "blkid",
        &["-p", "-o", "export", p.to_str().expect("test step")],
    )
    .lines()
    .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
    .collect()
}

fn probe_file(p: &Path) -> Option<FsInfo> {
    superblock::probe(&read_head(p).expect("test step"))
}

fn assert_like_blkid(p: &Path, fstype: &str, label: Option<&str>) {
    let ours = probe_file(p).unwrap_or_else(|| panic!("{fstype} not recognised"));
    let theirs = blkid(p);
    assert_eq!(ours.fstype, fstype);
    assert_eq!(theirs.get("TYPE").map(String::as_str), Some(fstype));
    assert_eq!(ours.label.as_deref(), label);
    assert_eq!(ours.label.as_ref(), theirs.get("LABEL"));
    assert_eq!(ours.uuid.as_ref(), theirs.get("UUID"), "uuid of {fstype}");
}

#[test]
fn ext4_xfs_vfat_iso9660_match_blkid() {
    let d = tempfile::tempdir().expect("test step");
    let ext4 = image(d.path(), "ext4.img", "8M");
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "hostroot",
            ext4.to_str().expect("test step"),
        ],
    );
    assert_like_blkid(&ext4, "ext4", Some("hostroot"));

    let ext2 = image(d.path(), "ext2.img", "4M");
    run(
        "mkfs.ext2",
        &["-q", "-F", ext2.to_str().expect("test step")],
    );
    assert_like_blkid(&ext2, "ext2", None);

    let xfs = image(d.path(), "xfs.img", "320M");
    run(
        "mkfs.xfs",
        &[
            "-q",
            "-f",
            "-L",
            "etcdvar",
            xfs.to_str().expect("test step"),
        ],
    );
    assert_like_blkid(&xfs, "xfs", Some("etcdvar"));

    let fat16 = image(d.path(), "fat16.img", "16M");
    run(
        "mkfs.vfat",
        &[
            "-n",
            "EFI",
            "-i",
            "12ab34cd",
            fat16.to_str().expect("test step"),
        ],
    );
    assert_like_blkid(&fat16, "vfat", Some("EFI"));
    assert_eq!(
        probe_file(&fat16).expect("test step").uuid.as_deref(),
        Some("12AB-34CD")
    );

    let fat32 = image(d.path(), "fat32.img", "64M");
    run(
        "mkfs.vfat",
        &["-F", "32", fat32.to_str().expect("test step")],
    );
    assert_like_blkid(&fat32, "vfat", None);

    let isodir = d.path().join("isoroot");
    std::fs::create_dir_all(&isodir).expect("test step");
    std::fs::write(isodir.join("f.txt"), "x").expect("test step");
    let iso = d.path().join("x.iso");
    run(
        "xorriso",
        &[
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            "RESCUE",
            "-o",
            iso.to_str().expect("test step"),
            isodir.to_str().expect("test step"),
        ],
    );
    assert_like_blkid(&iso, "iso9660", Some("RESCUE"));
}

fn sfdisk(img: &Path, script: &str) {
    use std::io::Write;
    let mut child = Command::new("sfdisk")
        .args(["-q", img.to_str().expect("test step")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sfdisk (package fdisk)");
    child
        .stdin
        .take()
        .expect("test step")
        .write_all(script.as_bytes())
        .expect("test step");
    assert!(child.wait().expect("test step").success());
}

#[test]
fn gpt_and_mbr_partuuids_match_sfdisk() {
    let d = tempfile::tempdir().expect("test step");
    let gpt = image(d.path(), "gpt.img", "16M");
    sfdisk(&gpt, "label: gpt\nsize=4M, type=L, name=boot\ntype=L\n");
    let t = parttable::parse(&read_head(&gpt).expect("test step")).expect("gpt");
    assert_eq!(t.kind, "gpt");
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(t.partitions[0].name.as_deref(), Some("boot"));
    for p in &t.partitions {
        let want = run(
            "sfdisk",
            &[
                "--part-uuid",
                gpt.to_str().expect("test step"),
                &p.number.to_string(),
            ],
        );
        assert!(
            want.trim().eq_ignore_ascii_case(&p.partuuid),
            "{want} vs {}",
            p.partuuid
        );
    }
    assert!(
        run("sfdisk", &["--disk-id", gpt.to_str().expect("test step")])
            .trim()
            .eq_ignore_ascii_case(&t.disk_id)
    );
    // A damaged GPT header fails its CRC and is rejected.
    let mut head = read_head(&gpt).expect("test step");
    head[512 + 60] ^= 0xff;
    assert_eq!(parttable::parse(&head), None);

    let mbr = image(d.path(), "mbr.img", "16M");
    sfdisk(&mbr, "label: dos\nlabel-id: 0xdeadbeef\n,4M,83\n,,83\n");
    let t = parttable::parse(&read_head(&mbr).expect("test step")).expect("mbr");
    assert_eq!(t.kind, "dos");
    let ids: Vec<&str> = t.partitions.iter().map(|p| p.partuuid.as_str()).collect();
    assert_eq!(ids, vec!["deadbeef-01", "deadbeef-02"]);
    assert_eq!(blkid(&mbr).get("PTTYPE").map(String::as_str), Some("dos"));
    // The disk itself is no filesystem.
    assert_eq!(probe_file(&mbr), None);
}

/// A sysfs tree shaped like the kernel's (class/block entries are links into devices/) and a
/// dev directory whose "nodes" are image files.
#[test]
fn scan_lists_disks_partitions_filesystems_and_partuuids() {
    let d = tempfile::tempdir().expect("test step");
    let sys = d.path().join("sys");
    let dev = d.path().join("dev");
    std::fs::create_dir_all(sys.join("class/block")).expect("test step");
    std::fs::create_dir_all(&dev).expect("test step");
    let disk_dir = sys.join("devices/pci0000:00/virtio1/block/vda");
    let part_dir = disk_dir.join("vda1");
    std::fs::create_dir_all(&part_dir).expect("test step");
    let empty_dir = sys.join("devices/virtual/block/loop0");
    std::fs::create_dir_all(&empty_dir).expect("test step");
    for (name, dir, size, part) in [
        ("vda", &disk_dir, "32768", None),
        ("vda1", &part_dir, "16384", Some("1")),
        ("loop0", &empty_dir, "0", None),
    ] {
        std::fs::write(dir.join("size"), format!("{size}\n")).expect("test step");
        if let Some(n) = part {
            std::fs::write(dir.join("partition"), n).expect("test step");
        }
        std::os::unix::fs::symlink(dir, sys.join("class/block").join(name)).expect("test step");
    }
    let disk = image(&dev, "vda", "16M");
    sfdisk(&disk, "label: gpt\n,8M,L\n");
    let part = image(&dev, "vda1", "8M");
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "hostroot",
            part.to_str().expect("test step"),
        ],
    );

    let devs = scan(&sys, &dev).expect("test step");
    let names: Vec<&str> = devs.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, vec!["vda", "vda1"]);
    assert_eq!(devs[0].table.as_deref(), Some("gpt"));
    assert_eq!(devs[0].size_bytes, 32768 * 512);
    assert_eq!(devs[1].parent.as_deref(), Some("vda"));
    assert_eq!(devs[1].fs.as_ref().map(|f| f.fstype.as_str()), Some("ext4"));
    let want = run(
        "sfdisk",
        &["--part-uuid", disk.to_str().expect("test step"), "1"],
    );
    assert!(devs[1]
        .partuuid
        .as_deref()
        .expect("test step")
        .eq_ignore_ascii_case(want.trim()));
    let by_label = spec::find(
        &DeviceSpec::parse("LABEL=hostroot").expect("test step"),
        &devs,
    )
    .expect("test step");
    assert_eq!(by_label.name, "vda1");
    let by_pu = spec::find(
        &DeviceSpec::parse(&format!("PARTUUID={}", want.trim())).expect("test step"),
        &devs,
    );
    assert_eq!(by_pu.map(|x| x.name.as_str()), Some("vda1"));
}
