//! VM smoke tests of the boot side: the real image (kernel from Debian, static rescue-init as
//! /init) booted under QEMU TCG, judged by serial lines, QEMU's exit code (isa-debug-exit:
//! 1 = OK, 3 = FAIL) and the report the guest wrote, read back from the disk image with debugfs.
//!
//! Gated: runs only with `RESCUE_VM_TESTS=1` (root, packages from scripts/install-vm-deps.sh).
//! Set `RESCUE_INIT_BIN` to a prebuilt static binary to skip the nested cargo build.
//!
//! Disks, all built at test time with `mkfs.ext4 -d` from a seed directory:
//! - `host`: 64 MiB ext4, label `hostroot`, with etc/kubernetes and var/lib/etcd (the host root)
//! - `split`: `hostroot` without var/ plus `hostvar` holding var/lib/etcd, wired by etc/fstab
//! - none: the failure case (no host disk at all)
#![allow(
    clippy::print_stderr,
    reason = "the test reports skips and timings on stderr"
)]

use std::path::{Path, PathBuf};

use rescue_tests::hostroot::{etcd_manifest, Node};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Every QEMU run is bounded by this (a firmware fallback may never end on its own).
const QEMU_TIMEOUT_S: u64 = 150;
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";

fn enabled(test: &str) -> bool {
    if std::env::var("RESCUE_VM_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skip {test}: set RESCUE_VM_TESTS=1 to boot the image in QEMU (needs root and scripts/install-vm-deps.sh)");
    false
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

fn sh(cmd: &mut Command) -> String {
    let out = cmd.stderr(Stdio::inherit()).output().expect("spawn");
    assert!(out.status.success(), "{cmd:?} failed: {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn last_line(s: &str) -> PathBuf {
    PathBuf::from(
        s.lines()
            .last()
            .expect("script printed its output path")
            .trim(),
    )
}

/// Everything built once per test run.
struct Image {
    dir: tempfile::TempDir,
    vmlinuz: PathBuf,
    vmlinux: PathBuf,
    kernel_release: String,
    initrd: PathBuf,
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let img = repo().join("image");
        let kdir = last_line(&sh(&mut Command::new(img.join("fetch-kernel.sh"))));
        let manifest = std::fs::read_to_string(kdir.join("manifest.txt")).expect("manifest");
        let kernel_release = manifest
            .lines()
            .find_map(|l| l.strip_prefix("kernel_release="))
            .expect("kernel_release in manifest")
            .to_owned();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Command::new(img.join("build-initramfs.sh"));
        c.arg("--kernel-dir")
            .arg(&kdir)
            .arg("--out")
            .arg(dir.path().join("initrd.gz"));
        if let Some(bin) = std::env::var_os("RESCUE_INIT_BIN") {
            c.arg("--init").arg(bin);
        }
        let initrd = last_line(&sh(&mut c));
        Image {
            vmlinuz: kdir.join(format!("kroot/boot/vmlinuz-{kernel_release}")),
            vmlinux: kdir.join("vmlinux"),
            kernel_release,
            initrd,
            dir,
        }
    })
}

fn iso(append: &str, name: &str) -> PathBuf {
    let im = image();
    let out = im.dir.path().join(name);
    let mut c = Command::new(repo().join("image/build-iso.sh"));
    c.arg("--kernel")
        .arg(&im.vmlinuz)
        .arg("--initrd")
        .arg(&im.initrd)
        .arg("--out")
        .arg(&out)
        .arg("--append")
        .arg(append);
    last_line(&sh(&mut c))
}

fn pxe_dir(append: &str, name: &str) -> PathBuf {
    let im = image();
    let out = im.dir.path().join(name);
    let mut c = Command::new(repo().join("image/build-pxe.sh"));
    c.arg("--kernel")
        .arg(&im.vmlinuz)
        .arg("--initrd")
        .arg(&im.initrd)
        .arg("--out")
        .arg(&out)
        .arg("--append")
        .arg(append);
    last_line(&sh(&mut c))
}

fn mkfs(dir: &Path, name: &str, label: &str, seed: &Path) -> PathBuf {
    let img = dir.join(name);
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-E", "root_owner=0:0", "-d"])
        .arg(seed)
        .arg(&img)
        // Room for the recovered data dir (its WAL file is preallocated to 64 MiB).
        .arg("256M"));
    img
}

/// A small real `etcdctl snapshot save` file from etcd 3.5.1, made once: the backup the
/// recovery restores.
fn backup() -> &'static [u8] {
    static SNAP: OnceLock<Vec<u8>> = OnceLock::new();
    SNAP.get_or_init(|| {
        let tools =
            rescue_tests::Tools::find().unwrap_or_else(|e| panic!("the VM tests need etcd: {e}"));
        let c = rescue_tests::EtcdCluster::start(
            &tools,
            rescue_tests::Version::V3_5,
            1,
            &rescue_tests::EtcdOpts::default(),
        );
        let ctl = c.ctl();
        for i in 0..10 {
            ctl.put(&format!("/registry/test/{i}"), "v");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("snap.db");
        ctl.snapshot_save(&p);
        std::fs::read(&p).expect("snapshot")
    })
}

fn write_backup(p: &Path) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, backup()).expect("write");
}

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// The usual host root: kubeadm-style /etc/kubernetes, a stale /var/lib/etcd and a backup.
fn host_disk(dir: &Path) -> PathBuf {
    let seed = dir.join("seed-host");
    write_backup(&seed.join("var/backups/etcd-snapshot.db"));
    write(
        &seed.join("etc/kubernetes/manifests/etcd.yaml"),
        &etcd_manifest(&Node::default()),
    );
    write(
        &seed.join("etc/kubernetes/admin.conf"),
        "apiVersion: v1\nkind: Config\n",
    );
    write(
        &seed.join("var/lib/etcd/member/snap/db"),
        "stale etcd data\n",
    );
    write(
        &seed.join("etc/fstab"),
        "LABEL=hostroot / ext4 errors=remount-ro 0 1\n",
    );
    mkfs(dir, "host.img", "hostroot", &seed)
}

struct Boot {
    serial: String,
    code: Option<i32>,
    wall: Duration,
}

/// One VM at a time: two TCG guests on two shared cores slow each other down.
fn vm_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn qemu_base(serial: &Path) -> Command {
    let mut c = Command::new("timeout");
    c.args([
        "--kill-after=5",
        &QEMU_TIMEOUT_S.to_string(),
        "qemu-system-x86_64",
    ])
    .args([
        "-accel", "tcg", "-m", "512", "-smp", "1", "-display", "none", "-monitor", "none",
    ])
    .arg("-serial")
    .arg(format!("file:{}", serial.display()))
    .args([
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::inherit());
    c
}

fn drive(c: &mut Command, img: &Path) {
    c.arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", img.display()));
}

fn boot(mut c: Command, serial: &Path, label: &str) -> Boot {
    let _g = vm_lock();
    let t = Instant::now();
    let status = c.status().expect("run qemu");
    let wall = t.elapsed();
    let serial = std::fs::read_to_string(serial).unwrap_or_default();
    report_timing(label, wall, &serial);
    Boot {
        serial,
        code: status.code(),
        wall,
    }
}

/// Guest time (kernel printk stamp) of the first serial line containing `needle`.
fn guest_time(serial: &str, needle: &str) -> Option<f64> {
    let line = serial.lines().find(|l| l.contains(needle))?;
    let open = line.find('[')?;
    let close = line[open..].find(']')? + open;
    line[open + 1..close].trim().parse().ok()
}

fn report_timing(label: &str, wall: Duration, serial: &str) {
    let init = guest_time(serial, "pid1: rescue-init");
    let worker = guest_time(serial, "pid1: worker started");
    let result = guest_time(serial, "RESCUE RESULT");
    eprintln!(
        "timing {label}: wall {:.2} s, guest init {:?} s, worker start {:?} s, result {:?} s, init overhead {:?} ms",
        wall.as_secs_f64(),
        init,
        worker,
        result,
        init.zip(worker).map(|(a, b)| ((b - a) * 1000.0).round())
    );
}

fn debugfs(img: &Path, req: &str) -> String {
    sh(Command::new("debugfs").arg("-R").arg(req).arg(img))
}

/// The one report.json under /var/log/rescue-init (or `base` on a separate /var disk).
fn read_report(img: &Path, base: &str) -> serde_json::Value {
    let listing = debugfs(img, &format!("ls -p {base}"));
    let dirs: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .collect();
    assert_eq!(dirs.len(), 1, "one report directory in {base}: {listing}");
    let text = debugfs(img, &format!("cat {base}/{}/report.json", dirs[0]));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("report.json: {e}\n{text}"))
}

fn fsck_clean(img: &Path) {
    let st = Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .stdout(Stdio::null())
        .status()
        .expect("e2fsck");
    assert!(
        st.success(),
        "{} is not clean after the guest unmounted it",
        img.display()
    );
}

fn assert_ok(b: &Boot, img: &Path, expect_code: i32) -> serde_json::Value {
    assert!(
        b.serial.contains("RESCUE RESULT: OK"),
        "no OK line on serial:\n{}",
        b.serial
    );
    assert_eq!(b.code, Some(expect_code), "qemu exit code\n{}", b.serial);
    let r = read_report(img, "/var/log/rescue-init");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["root"]["device"], "vda");
    assert_eq!(r["root"]["fstype"], "ext4");
    assert_eq!(r["root"]["label"], "hostroot");
    assert_eq!(r["kernel"], image().kernel_release.as_str());
    assert!(
        r["modules"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x[0] == "virtio_blk")),
        "{r}"
    );
    assert!(r["timings"].as_array().is_some_and(|t| t.len() >= 5));
    fsck_clean(img);
    // The recovery ran: the old data moved aside unchanged (vm_recover.rs checks the rest).
    assert!(r["recover"].is_object(), "{r}");
    let aside = debugfs(img, "ls -p /var/lib")
        .lines()
        .filter_map(|l| l.split('/').nth(5))
        .find(|n| n.starts_with("etcd.before-rescue-"))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("old data dir moved aside\n{}", b.serial));
    assert_eq!(
        debugfs(img, &format!("cat /var/lib/{aside}/member/snap/db")),
        "stale etcd data\n"
    );
    r
}

const TEST_ARGS: &str = "console=ttyS0 panic=-1 printk.devkmsg=on rescue.test_exit=1";

#[test]
fn pvh_direct_kernel_finds_the_host_and_writes_the_report() {
    if !enabled("pvh_direct_kernel_finds_the_host_and_writes_the_report") {
        return;
    }
    let im = image();
    let t = tempfile::tempdir().expect("tempdir");
    let disk = host_disk(t.path());
    let serial = t.path().join("serial.log");
    let mut c = qemu_base(&serial);
    c.arg("-nic")
        .arg("none")
        .arg("-kernel")
        .arg(&im.vmlinux)
        .arg("-initrd")
        .arg(&im.initrd);
    c.arg("-append").arg(TEST_ARGS);
    drive(&mut c, &disk);
    let b = boot(c, &serial, "pvh");
    let r = assert_ok(&b, &disk, 1);
    assert_eq!(
        r["root"]["chosen_by"],
        "search for etc/kubernetes, var/lib/etcd"
    );
    assert!(b.serial.contains("pid1: worker started"));
    eprintln!("pvh wall {:.2} s", b.wall.as_secs_f64());
}

#[test]
fn pvh_separate_var_from_host_fstab() {
    if !enabled("pvh_separate_var_from_host_fstab") {
        return;
    }
    let im = image();
    let t = tempfile::tempdir().expect("tempdir");
    let root_seed = t.path().join("seed-root");
    write(
        &root_seed.join("etc/kubernetes/manifests/etcd.yaml"),
        &etcd_manifest(&Node::default()),
    );
    write(
        &root_seed.join("etc/fstab"),
        "LABEL=hostroot / ext4 defaults 0 1\nLABEL=hostvar /var ext4 defaults 0 2\n",
    );
    std::fs::create_dir_all(root_seed.join("var")).expect("mkdir");
    let var_seed = t.path().join("seed-var");
    write_backup(&var_seed.join("backups/etcd-snapshot.db"));
    write(
        &var_seed.join("lib/etcd/member/snap/db"),
        "stale etcd data\n",
    );
    let root = mkfs(t.path(), "root.img", "hostroot", &root_seed);
    let var = mkfs(t.path(), "var.img", "hostvar", &var_seed);
    let serial = t.path().join("serial.log");
    let mut c = qemu_base(&serial);
    c.arg("-nic")
        .arg("none")
        .arg("-kernel")
        .arg(&im.vmlinux)
        .arg("-initrd")
        .arg(&im.initrd);
    c.arg("-append")
        .arg(format!("{TEST_ARGS} rescue.root=LABEL=hostroot"));
    drive(&mut c, &root);
    drive(&mut c, &var);
    let b = boot(c, &serial, "pvh-split-var");
    assert!(b.serial.contains("RESCUE RESULT: OK"), "{}", b.serial);
    assert_eq!(b.code, Some(1));
    // The report went to the separate /var file system, not to the root's empty var/.
    let r = read_report(&var, "/log/rescue-init");
    assert_eq!(r["mounts"][1]["device"], "vdb");
    assert_eq!(r["root"]["chosen_by"], "LABEL=hostroot");
    assert_eq!(
        debugfs(&root, "ls -p /var")
            .lines()
            .filter(|l| l.contains("/log/"))
            .count(),
        0
    );
    fsck_clean(&root);
    fsck_clean(&var);
}

#[test]
fn iso_bios_and_uefi_boot_and_recover() {
    if !enabled("iso_bios_and_uefi_boot_and_recover") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    // BIOS without test_exit: the default after success is a reboot, which -no-reboot turns
    // into QEMU exiting with 0.
    let iso_plain = iso("panic=-1", "plain.iso");
    let disk = host_disk(&t.path().join("bios"));
    let serial = t.path().join("bios.log");
    let mut c = qemu_base(&serial);
    c.args(["-nic", "none", "-boot", "d", "-cdrom"])
        .arg(&iso_plain);
    drive(&mut c, &disk);
    let b = boot(c, &serial, "iso-bios");
    assert_ok(&b, &disk, 0);
    assert!(b.serial.contains("pid1: Reboot now"), "{}", b.serial);

    let iso_test = iso("panic=-1 rescue.test_exit=1", "test.iso");
    let disk = host_disk(&t.path().join("uefi"));
    let serial = t.path().join("uefi.log");
    let mut c = qemu_base(&serial);
    c.args(["-bios", OVMF, "-nic", "none", "-boot", "d", "-cdrom"])
        .arg(&iso_test);
    drive(&mut c, &disk);
    let b = boot(c, &serial, "iso-uefi");
    assert_ok(&b, &disk, 1);
    assert!(b.serial.contains("efi: EFI v"), "booted through UEFI");
}

#[test]
fn pxe_tftp_bios_and_uefi_boot_and_recover() {
    if !enabled("pxe_tftp_bios_and_uefi_boot_and_recover") {
        return;
    }
    let t = tempfile::tempdir().expect("tempdir");
    let tftp = pxe_dir(
        "panic=-1 rescue.test_exit=1 rescue.root=LABEL=hostroot",
        "tftp",
    );
    for (label, uefi) in [("pxe-bios", false), ("pxe-uefi", true)] {
        let disk = host_disk(&t.path().join(label));
        let serial = t.path().join(format!("{label}.log"));
        let mut c = qemu_base(&serial);
        if uefi {
            c.args(["-bios", OVMF]);
        }
        c.arg("-netdev")
            .arg(format!(
                "user,id=n0,restrict=on,tftp={},bootfile=boot.ipxe",
                tftp.display()
            ))
            .args(["-device", "virtio-net-pci,netdev=n0", "-boot", "n"]);
        drive(&mut c, &disk);
        let b = boot(c, &serial, label);
        let r = assert_ok(&b, &disk, 1);
        assert_eq!(r["root"]["chosen_by"], "LABEL=hostroot");
    }
}

#[test]
fn no_host_disk_fails_clearly_and_never_reboots() {
    if !enabled("no_host_disk_fails_clearly_and_never_reboots") {
        return;
    }
    let im = image();
    let t = tempfile::tempdir().expect("tempdir");
    // With test_exit the result ends QEMU (3 = FAIL).
    let serial = t.path().join("fail.log");
    let mut c = qemu_base(&serial);
    c.args(["-nic", "none", "-kernel"])
        .arg(&im.vmlinux)
        .arg("-initrd")
        .arg(&im.initrd);
    c.arg("-append").arg(TEST_ARGS);
    let b = boot(c, &serial, "pvh-no-disk");
    assert_eq!(b.code, Some(3), "{}", b.serial);
    assert!(
        b.serial.contains("RESCUE RESULT: FAIL: no host disk: a file system with /etc/kubernetes or /var/lib/etcd did not appear within 10 s"),
        "{}",
        b.serial
    );

    // Without it, even rescue.after=reboot must not reboot after a failure: the VM holds.
    // -no-reboot would make QEMU exit on a reboot, so a QEMU still running after the hold line
    // proves there is no reboot (and no loop).
    let serial = t.path().join("hold.log");
    let mut c = qemu_base(&serial);
    c.args(["-nic", "none", "-kernel"])
        .arg(&im.vmlinux)
        .arg("-initrd")
        .arg(&im.initrd);
    c.arg("-append")
        .arg("console=ttyS0 panic=-1 printk.devkmsg=on rescue.after=reboot");
    let _g = vm_lock();
    let mut child: Child = c.spawn().expect("qemu");
    let t0 = Instant::now();
    let mut text = String::new();
    while t0.elapsed() < Duration::from_secs(QEMU_TIMEOUT_S) {
        text = std::fs::read_to_string(&serial).unwrap_or_default();
        if text.contains("pid1: holding") {
            break;
        }
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(text.contains("pid1: holding"), "{text}");
    std::thread::sleep(Duration::from_secs(3));
    let still_running = child.try_wait().expect("try_wait").is_none();
    // SIGTERM to `timeout`, which passes it on to QEMU (SIGKILL would orphan QEMU).
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert!(
        still_running,
        "QEMU exited: the guest rebooted or powered off after a failure\n{text}"
    );
    assert!(!text.contains("Restarting system"), "{text}");
}

#[test]
fn image_builds_are_reproducible() {
    if !enabled("image_builds_are_reproducible") {
        return;
    }
    let mut c = Command::new(repo().join("image/check-reproducible.sh"));
    if let Some(bin) = std::env::var_os("RESCUE_INIT_BIN") {
        c.arg("--init").arg(bin);
    }
    let out = c
        .stderr(Stdio::piped())
        .output()
        .expect("check-reproducible.sh");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}");
    assert!(out.status.success(), "{err}");
    assert!(err.contains("initrd.gz reproducible") && err.contains("rescue.iso reproducible"));
}

/// Program header types of a 64-bit little-endian ELF file.
fn elf_segment_types(elf: &[u8]) -> Vec<u32> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u64_at = |o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&elf[o..o + 8]);
        u64::from_le_bytes(a)
    };
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not ELF64");
    let phoff = usize::try_from(u64_at(0x20)).expect("phoff");
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]])
        })
        .collect()
}

#[test]
fn init_in_the_initramfs_is_static_with_modprobe_link() {
    if !enabled("init_in_the_initramfs_is_static_with_modprobe_link") {
        return;
    }
    let im = image();
    let t = tempfile::tempdir().expect("tempdir");
    let script = format!(
        "zcat '{}' | cpio -id --quiet init sbin/modprobe etc/hosts dev/console",
        im.initrd.display()
    );
    sh(Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(t.path()));
    let init = std::fs::read(t.path().join("init")).expect("init in the initramfs");
    let types = elf_segment_types(&init);
    const PT_INTERP: u32 = 3;
    const PT_DYNAMIC: u32 = 2;
    assert!(
        !types.contains(&PT_INTERP),
        "/init has an ELF interpreter: not static"
    );
    assert!(
        types.contains(&PT_DYNAMIC),
        "expected a self-relocating static-pie"
    );
    let link = std::fs::read_link(t.path().join("sbin/modprobe")).expect("modprobe link");
    assert_eq!(link, Path::new("../init"));
    let hosts = std::fs::read_to_string(t.path().join("etc/hosts")).expect("hosts");
    assert!(hosts.contains("localhost"));
    let listing = sh(Command::new("sh").arg("-c").arg(format!(
        "zcat '{}' | cpio -itv --quiet dev/console",
        im.initrd.display()
    )));
    assert!(
        listing.starts_with('c'),
        "dev/console is a character device: {listing}"
    );
    eprintln!(
        "init {} B, initramfs {} B",
        init.len(),
        std::fs::metadata(&im.initrd).map(|m| m.len()).unwrap_or(0)
    );
}
