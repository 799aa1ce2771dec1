//! VM end-to-end recovery: a broken master's disk, built at test time, is booted in QEMU (TCG)
//! from the real image (direct PVH kernel, ISO in BIOS and UEFI mode, PXE over QEMU's TFTP +
//! iPXE); PID 1 recovers it unattended. The test then reads the disk back with debugfs, parses
//! the rewritten etcd manifest and starts real etcd 3.5.1 with exactly its flags (the data dir
//! mapped to the copy read back): one member, the manifest's name and peer URL, every key of the
//! backup, the revision bumped past 1e9, the old data moved aside and the boot report.
//!
//! The disk (ext4, `mkfs.ext4 -d` from a seed dir): a kubeadm-style /etc/kubernetes whose etcd
//! manifest uses plain http URLs on 127.0.0.1 with free ports, a stale /var/lib/etcd (a real
//! data dir from an older state of the same etcd) and `etcdctl snapshot save` output from a
//! real etcd 3.5.1 in /var/backups.
//!
//! Failure cases in the VM: no backup, a corrupt backup (sha256 mismatch), no disk at all.
//!
//! Gated like vm_boot.rs: `RESCUE_VM_TESTS=1` (root, scripts/install-vm-deps.sh), and etcd
//! from scripts/install-deps.sh. `RESCUE_INIT_BIN` skips the nested cargo build.
#![allow(
    clippy::print_stderr,
    reason = "the test reports skips and timings on stderr"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rescue_tests::hostroot::{self, Node};
use rescue_tests::util::free_port;
use rescue_tests::{Ctl, EtcdCluster, EtcdOpts, Kv, Tools, Version};
use sha2::{Digest, Sha256};

const QEMU_TIMEOUT_S: u64 = 150;
const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// The member the manifest on the broken disk describes.
const NAME: &str = "master-0";
/// The MAC of the fleet test's NIC; its plan is served under this name.
const FLEET_MAC: &str = "52:54:00:12:34:56";
const TEST_ARGS: &str = "console=ttyS0 panic=-1 printk.devkmsg=on";

fn enabled(test: &str) -> Option<Tools> {
    if std::env::var("RESCUE_VM_TESTS").as_deref() != Ok("1") {
        eprintln!("skip {test}: set RESCUE_VM_TESTS=1 to boot the image in QEMU (needs root and scripts/install-vm-deps.sh)");
        return None;
    }
    Tools::require()
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
    PathBuf::from(s.lines().last().expect("script printed its output").trim())
}

// ---------------------------------------------------------------------------------------------
// The image, built once per test binary.

struct Image {
    dir: tempfile::TempDir,
    vmlinuz: PathBuf,
    vmlinux: PathBuf,
    initrd: PathBuf,
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let img = repo().join("image");
        let kdir = last_line(&sh(&mut Command::new(img.join("fetch-kernel.sh"))));
        let manifest = std::fs::read_to_string(kdir.join("manifest.txt")).expect("manifest");
        let release = manifest
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
            vmlinuz: kdir.join(format!("kroot/boot/vmlinuz-{release}")),
            vmlinux: kdir.join("vmlinux"),
            initrd,
            dir,
        }
    })
}

fn iso(append: &str, name: &str, add: Option<&Path>) -> PathBuf {
    let im = image();
    let mut c = Command::new(repo().join("image/build-iso.sh"));
    c.arg("--kernel")
        .arg(&im.vmlinuz)
        .arg("--initrd")
        .arg(&im.initrd)
        .arg("--out")
        .arg(im.dir.path().join(name))
        .arg("--append")
        .arg(append);
    if let Some(dir) = add {
        c.arg("--add").arg(dir);
    }
    last_line(&sh(&mut c))
}

fn pxe_dir(append: &str, name: &str) -> PathBuf {
    let im = image();
    let mut c = Command::new(repo().join("image/build-pxe.sh"));
    c.arg("--kernel")
        .arg(&im.vmlinuz)
        .arg("--initrd")
        .arg(&im.initrd)
        .arg("--out")
        .arg(im.dir.path().join(name))
        .arg("--append")
        .arg(append);
    last_line(&sh(&mut c))
}

// ---------------------------------------------------------------------------------------------
// The etcd side: a stale data dir and a newer backup from the same real etcd 3.5.1.

struct EtcdState {
    _dir: tempfile::TempDir,
    /// A copy of the member's data dir taken while it held only the old keys.
    stale: PathBuf,
    /// `etcdctl snapshot save` output taken later.
    backup: PathBuf,
    /// Every key the backup holds, as the server showed them.
    kvs: Vec<Kv>,
    /// The server's revision when the backup was taken.
    revision: i64,
}

fn etcd_state(tools: &Tools) -> &'static EtcdState {
    static STATE: OnceLock<EtcdState> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = EtcdCluster::start(
            tools,
            Version::V3_5,
            1,
            &EtcdOpts {
                names: vec!["old-master".into()],
                ..Default::default()
            },
        );
        let ctl = c.ctl();
        for i in 0..20 {
            ctl.put(&format!("/registry/old/k{i:02}"), &format!("old value {i}"));
        }
        c.stop_member(0);
        let stale = dir.path().join("stale");
        sh(Command::new("cp")
            .arg("-a")
            .arg(&c.members[0].data_dir)
            .arg(&stale));
        c.restart();
        let ctl = c.ctl();
        for i in 0..40 {
            ctl.put(
                &format!("/registry/pods/default/pod-{i:02}"),
                &format!("{{\"kind\":\"Pod\",\"n\":{i}}}"),
            );
        }
        ctl.put("/registry/old/k00", "changed after the stale copy");
        ctl.del("/registry/old/k01");
        let backup = dir.path().join("backup.db");
        ctl.snapshot_save(&backup);
        let kvs = ctl.kvs();
        let revision = ctl.revision();
        drop(c);
        EtcdState {
            _dir: dir,
            stale,
            backup,
            kvs,
            revision,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The broken master's disk.

/// Ports of the member in the manifest (free on 127.0.0.1, so etcd can start there later).
#[derive(Debug, Clone, Copy)]
struct Ports {
    client: u16,
    peer: u16,
    metrics: u16,
}

fn etcd_manifest(p: Ports) -> String {
    let Ports {
        client,
        peer,
        metrics,
    } = p;
    // Three members before the failure; the other two are gone for good.
    let (p1, p2) = (free_port(), free_port());
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: http://127.0.0.1:{client}
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=http://127.0.0.1:{client}
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=http://127.0.0.1:{peer}
    - --initial-cluster={NAME}=http://127.0.0.1:{peer},master-1=http://127.0.0.1:{p1},master-2=http://127.0.0.1:{p2}
    - --initial-cluster-state=existing
    - --listen-client-urls=http://127.0.0.1:{client}
    - --listen-metrics-urls=http://127.0.0.1:{metrics}
    - --listen-peer-urls=http://127.0.0.1:{peer}
    - --name={NAME}
    - --snapshot-count=10000
    image: registry.k8s.io/etcd:3.5.15-0
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
  hostNetwork: true
  volumes:
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
"
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backup {
    Good,
    None,
    Corrupt,
}

struct Disk {
    img: PathBuf,
    seed: PathBuf,
    ports: Ports,
}

fn put(p: &Path, data: &[u8]) {
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// Builds the disk in `dir`. With a good backup the stale data dir is a real one; in the
/// failure cases it is garbage, so the host's own data cannot serve as the last resort.
fn broken_master_disk(dir: &Path, st: &EtcdState, backup: Backup, extra: Option<&Path>) -> Disk {
    broken_master_disk_with(dir, st, backup, extra, &[])
}

/// [`broken_master_disk`] with more files on the disk (`(path in the root, bytes)`).
fn broken_master_disk_with(
    dir: &Path,
    st: &EtcdState,
    backup: Backup,
    extra: Option<&Path>,
    files: &[(&str, Vec<u8>)],
) -> Disk {
    let seed = dir.join("seed");
    for (rel, data) in files {
        put(&seed.join(rel), data);
    }
    let ports = Ports {
        client: free_port(),
        peer: free_port(),
        metrics: free_port(),
    };
    let node = Node {
        name: NAME.into(),
        ip: "127.0.0.1".into(),
        ..Node::default()
    };
    hostroot::write_kubernetes_tree(&seed.join("etc/kubernetes"), &node).expect("kubernetes");
    put(
        &seed.join("etc/kubernetes/manifests/etcd.yaml"),
        etcd_manifest(ports).as_bytes(),
    );
    put(
        &seed.join("etc/fstab"),
        b"LABEL=hostroot / ext4 errors=remount-ro 0 1\n",
    );
    if backup == Backup::Good {
        std::fs::create_dir_all(seed.join("var/lib")).expect("mkdir");
        sh(Command::new("cp")
            .arg("-a")
            .arg(&st.stale)
            .arg(seed.join("var/lib/etcd")));
    } else {
        put(
            &seed.join("var/lib/etcd/member/snap/db"),
            b"stale etcd data\n",
        );
    }
    let snap = std::fs::read(&st.backup).expect("backup");
    match backup {
        Backup::Good => put(&seed.join("var/backups/etcd-snapshot.db"), &snap),
        Backup::Corrupt => {
            let mut bad = snap;
            // Flip bytes in the middle of the bbolt part: pages still parse, the trailing
            // sha256 no longer matches.
            let mid = (bad.len() - 32) / 2;
            for b in &mut bad[mid..mid + 16] {
                *b ^= 0x5a;
            }
            put(&seed.join("var/backups/etcd-snapshot.db"), &bad);
        }
        Backup::None => {}
    }
    if let Some(big) = extra {
        // A bigger backup (the 64 MiB benchmark snapshot) replaces the small one.
        sh(Command::new("cp")
            .arg(big)
            .arg(seed.join("var/backups/etcd-snapshot.db")));
    }
    let img = dir.join("host.img");
    let size = if extra.is_some() { "640M" } else { "384M" };
    sh(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "hostroot", "-E", "root_owner=0:0", "-d"])
        .arg(&seed)
        .arg(&img)
        .arg(size));
    Disk { img, seed, ports }
}

// ---------------------------------------------------------------------------------------------
// QEMU.

struct Boot {
    serial: String,
    code: Option<i32>,
    wall: Duration,
}

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

#[derive(Debug, Clone, Copy)]
enum Via {
    Pvh,
    IsoBios,
    IsoUefi,
    PxeBios,
    /// PXE with a network the guest can use: host loopback reachable as 10.0.2.2, a fixed MAC
    /// and a virtio RNG (TLS needs entropy).
    PxeFleet,
    /// [`Via::PxeFleet`] without the virtio RNG: TLS must not hang silently on entropy.
    PxeFleetNoRng,
    /// PVH with the fleet network and a fixed SMBIOS UUID: rescue-init itself expands
    /// `${mac}` and `${uuid}` in the plan URL (no iPXE in between).
    PvhFleet,
    /// An ISO (BIOS) with the fleet network whose medium carries the plan, and in it the CA.
    IsoFleet,
}

/// The SMBIOS UUID of [`Via::PvhFleet`] (`-uuid`).
const FLEET_UUID: &str = "5d3a1c2e-7b4f-4e8a-9c61-2f0b8d7e4a13";

/// Boots `disk` (or no disk) by `how` with the `rescue.*` keys in `keys`.
fn boot(how: Via, disk: Option<&Path>, keys: &str, work: &Path) -> Boot {
    let serial = work.join(format!("{how:?}.log"));
    let mut c = qemu_base(&serial);
    let append = format!("{TEST_ARGS} {keys}");
    match how {
        Via::Pvh => {
            let im = image();
            c.args(["-nic", "none", "-kernel"])
                .arg(&im.vmlinux)
                .arg("-initrd")
                .arg(&im.initrd)
                .arg("-append")
                .arg(&append);
        }
        Via::PvhFleet => {
            let im = image();
            c.args(["-netdev", "user,id=n0"])
                .args([
                    "-device",
                    &format!("virtio-net-pci,netdev=n0,mac={FLEET_MAC}"),
                    "-device",
                    "virtio-rng-pci",
                    "-uuid",
                    FLEET_UUID,
                    "-kernel",
                ])
                .arg(&im.vmlinux)
                .arg("-initrd")
                .arg(&im.initrd)
                .arg("-append")
                .arg(&append);
        }
        Via::IsoBios | Via::IsoUefi | Via::IsoFleet => {
            // The ISO's own console arguments come first; the test's keys are appended.
            // Files in `work/media`, if any, go onto the ISO.
            let media = work.join("media");
            let iso = iso(
                &append,
                &format!("{how:?}.iso"),
                media.is_dir().then_some(media.as_path()),
            );
            if matches!(how, Via::IsoUefi) {
                c.args(["-bios", OVMF]);
            }
            if matches!(how, Via::IsoFleet) {
                c.args(["-netdev", "user,id=n0"]).args([
                    "-device",
                    &format!("virtio-net-pci,netdev=n0,mac={FLEET_MAC}"),
                    "-device",
                    "virtio-rng-pci",
                ]);
            } else {
                c.args(["-nic", "none"]);
            }
            c.args(["-boot", "d", "-cdrom"]).arg(iso);
        }
        Via::PxeFleet | Via::PxeFleetNoRng => {
            let tftp = pxe_dir(&append, &format!("{how:?}-tftp"));
            c.arg("-netdev")
                .arg(format!(
                    "user,id=n0,tftp={},bootfile=boot.ipxe",
                    tftp.display()
                ))
                .args([
                    "-device",
                    &format!("virtio-net-pci,netdev=n0,mac={FLEET_MAC}"),
                ])
                .args(["-boot", "n"]);
            if matches!(how, Via::PxeFleet) {
                c.args(["-device", "virtio-rng-pci"]);
            }
        }
        Via::PxeBios => {
            let tftp = pxe_dir(&append, &format!("{how:?}-tftp"));
            c.arg("-netdev")
                .arg(format!(
                    "user,id=n0,restrict=on,tftp={},bootfile=boot.ipxe",
                    tftp.display()
                ))
                .args(["-device", "virtio-net-pci,netdev=n0", "-boot", "n"]);
        }
    }
    if let Some(d) = disk {
        drive(&mut c, d);
    }
    let _g = vm_lock();
    let t = Instant::now();
    let status = c.status().expect("run qemu");
    let wall = t.elapsed();
    let serial = std::fs::read_to_string(&serial).unwrap_or_default();
    report_timing(&format!("{how:?}"), wall, &serial);
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
    eprintln!(
        "timing {label}: wall {:.2} s; guest: init {:?} s, worker {:?} s, result {:?} s",
        wall.as_secs_f64(),
        guest_time(serial, "pid1: rescue-init"),
        guest_time(serial, "pid1: worker started"),
        guest_time(serial, "RESCUE RESULT"),
    );
}

// ---------------------------------------------------------------------------------------------
// Reading the disk back.

fn debugfs(img: &Path, req: &str) -> String {
    let out = Command::new("debugfs")
        .arg("-R")
        .arg(req)
        .arg(img)
        .output()
        .expect("debugfs");
    assert!(
        out.status.success(),
        "debugfs -R {req:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names in a directory of the image (`ls -p`: `/inode/mode/uid/gid/name/size/`).
fn ls(img: &Path, dir: &str) -> Vec<String> {
    debugfs(img, &format!("ls -p {dir}"))
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_owned))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect()
}

/// Copies `dir` out of the image into `out` (as `out/<basename>`).
fn rdump(img: &Path, dir: &str, out: &Path) -> PathBuf {
    std::fs::create_dir_all(out).expect("mkdir");
    debugfs(img, &format!("rdump {dir} {}", out.display()));
    let base = dir.rsplit('/').next().expect("basename");
    out.join(base)
}

/// The boot reports under /var/log/rescue-init (the one with a `recover` part).
fn boot_report(img: &Path) -> serde_json::Value {
    let dirs = ls(img, "/var/log/rescue-init");
    let reports: Vec<serde_json::Value> = dirs
        .iter()
        .filter_map(|d| {
            let text = debugfs(img, &format!("cat /var/log/rescue-init/{d}/report.json"));
            serde_json::from_str(&text).ok()
        })
        .collect();
    reports
        .into_iter()
        .find(|r| r.get("recover").is_some())
        .unwrap_or_else(|| panic!("no boot report with a recover part in {dirs:?}"))
}

fn fsck_clean(img: &Path) {
    let st = Command::new("e2fsck")
        .arg("-fn")
        .arg(img)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("e2fsck");
    assert!(st.success(), "{} is not clean", img.display());
}

/// The `--flag=value` arguments of the etcd container command in a manifest.
fn manifest_flags(yaml: &str) -> Vec<(String, String)> {
    yaml.lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- --"))
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.trim_matches('"').to_owned()),
            None => (f.to_owned(), String::new()),
        })
        .collect()
}

/// etcd started with a manifest's flags; killed on drop.
struct Etcd(Child, PathBuf);

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_etcd(tools: &Tools, flags: &[(String, String)], root: &Path, log: &Path) -> Etcd {
    let mut c = Command::new(tools.etcd(Version::V3_5));
    for (k, v) in flags {
        // The one path in the flags points into the host root: map it to the copy read back.
        let v = if k == "data-dir" {
            root.join(v.trim_start_matches('/')).display().to_string()
        } else {
            v.clone()
        };
        c.arg(format!("--{k}={v}"));
    }
    let f = std::fs::File::create(log).expect("log");
    let child = c
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup"))
        .stderr(f)
        .spawn()
        .expect("spawn etcd");
    Etcd(child, log.to_owned())
}

fn sha_tree(dir: &Path) -> BTreeMap<String, String> {
    rescue_tests::util::walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .expect("under dir")
                .display()
                .to_string();
            let h = Sha256::digest(std::fs::read(&p).expect("read"));
            (rel, format!("{h:x}"))
        })
        .collect()
}

/// Checks a recovered disk end to end with real etcd.
fn check_recovered(tools: &Tools, st: &EtcdState, disk: &Disk, b: &Boot, work: &Path) {
    check_recovered_as(
        tools,
        st,
        disk,
        b,
        work,
        Some(&st.stale),
        "etcd-snapshot.db",
    );
}

/// A recovery from a fetched snapshot: the stale data dir was garbage (no local fallback).
fn check_recovered_from_fetched(tools: &Tools, st: &EtcdState, disk: &Disk, b: &Boot, work: &Path) {
    check_recovered_as(tools, st, disk, b, work, None, "https://10.0.2.2");
}

/// Checks a recovered disk; `stale` is what the moved-aside data dir must hold (None: only
/// that it was moved aside), `backup` a text the recover report must name.
fn check_recovered_as(
    tools: &Tools,
    st: &EtcdState,
    disk: &Disk,
    b: &Boot,
    work: &Path,
    stale: Option<&Path>,
    backup: &str,
) {
    assert!(
        b.serial.contains("RESCUE RESULT: OK"),
        "no OK line on serial:\n{}",
        b.serial
    );
    fsck_clean(&disk.img);
    let out = work.join("readback");
    let root = out.join("root");
    std::fs::create_dir_all(root.join("var/lib")).expect("mkdir");
    rdump(&disk.img, "/etc", &root);
    rdump(&disk.img, "/var/lib/etcd", &root.join("var/lib"));

    // Old data moved aside, never deleted: the stale copy still byte-identical.
    let aside: Vec<String> = ls(&disk.img, "/var/lib")
        .into_iter()
        .filter(|n| n.starts_with("etcd.before-rescue-"))
        .collect();
    assert_eq!(aside.len(), 1, "old data dir moved aside: {aside:?}");
    let moved = rdump(
        &disk.img,
        &format!("/var/lib/{}", aside[0]),
        &out.join("aside"),
    );
    match stale {
        Some(stale) => assert_eq!(
            sha_tree(&moved),
            sha_tree(stale),
            "the old data dir was moved aside unchanged"
        ),
        None => assert!(
            ls(&disk.img, &format!("/var/lib/{}/member/snap", aside[0]))
                .contains(&"db".to_string()),
            "the old data dir was moved aside with its contents"
        ),
    }

    // The boot report says ok and embeds the recover report.
    let r = boot_report(&disk.img);
    assert_eq!(r["status"], "ok", "{r:#}");
    let rec = &r["recover"];
    assert!(rec.is_object(), "recover report embedded: {r:#}");
    assert!(
        rec.to_string().contains(backup),
        "the recover report names the backup: {rec:#}"
    );

    // The manifest, rewritten: start etcd with exactly its flags.
    let yaml = std::fs::read_to_string(root.join("etc/kubernetes/manifests/etcd.yaml"))
        .expect("manifest read back");
    let flags = manifest_flags(&yaml);
    let get = |k: &str| {
        flags
            .iter()
            .find(|(f, _)| f == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("--{k} in the manifest:\n{yaml}"))
    };
    let peer = format!("http://127.0.0.1:{}", disk.ports.peer);
    assert_eq!(get("name"), NAME);
    assert_eq!(get("initial-cluster"), format!("{NAME}={peer}"), "{yaml}");
    let etcd = start_etcd(tools, &flags, &root, &work.join("etcd.log"));
    let endpoint = format!("http://127.0.0.1:{}", disk.ports.client);
    let ctl = Ctl::new(&tools.etcdctl(Version::V3_5), &endpoint);
    let t = Instant::now();
    while !ctl.run(&["endpoint", "health"]).status.success() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "etcd on the recovered disk is not healthy:\n{}",
            std::fs::read_to_string(&etcd.1).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, members) = ctl.members();
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].name, NAME);
    assert_eq!(members[0].peer_urls, vec![peer]);
    let kv = |v: &[Kv]| {
        v.iter()
            .map(|k| (k.key.clone(), k.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(kv(&ctl.kvs()), kv(&st.kvs), "every key of the backup");
    let rev = ctl.revision();
    assert!(
        rev > 1_000_000_000 && rev > st.revision,
        "revision {rev} bumped past 1e9"
    );
    // Still writable as a one-member cluster.
    ctl.put("/after/recovery", "ok");
    eprintln!(
        "recovered: 1 member {NAME} {}, {} keys, revision {rev}, wall {:.2} s",
        members[0].peer_urls[0],
        st.kvs.len(),
        b.wall.as_secs_f64()
    );
}

/// Checks a failed run: a clear serial line, a FAIL exit, the host data unchanged.
fn check_failed(disk: &Disk, b: &Boot, want: &str, work: &Path) {
    assert_eq!(b.code, Some(3), "FAIL exit\n{}", b.serial);
    let line = b
        .serial
        .lines()
        .find(|l| l.contains("RESCUE RESULT: FAIL"))
        .unwrap_or_else(|| panic!("no FAIL line:\n{}", b.serial));
    assert!(line.contains(want), "{line}");
    fsck_clean(&disk.img);
    let out = work.join("readback");
    for d in ["/etc", "/var"] {
        rdump(&disk.img, d, &out);
    }
    let before = sha_tree(&disk.seed);
    let mut after = sha_tree(&out);
    after.retain(|k, _| !k.starts_with("var/log/rescue-init/"));
    assert_eq!(after, before, "the host data is unchanged");
    let r = boot_report(&disk.img);
    assert_ne!(r["status"], "ok", "{r:#}");
    assert!(r["recover"].is_object(), "{r:#}");
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn pvh_recovers_the_broken_master() {
    let Some(tools) = enabled("pvh_recovers_the_broken_master") else {
        return;
    };
    let st = etcd_state(&tools);
    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::Good, None);
    let b = boot(Via::Pvh, Some(&disk.img), "rescue.test_exit=1", t.path());
    assert_eq!(b.code, Some(1), "{}", b.serial);
    check_recovered(&tools, st, &disk, &b, t.path());
}

#[test]
fn iso_bios_and_uefi_recover_the_broken_master() {
    let Some(tools) = enabled("iso_bios_and_uefi_recover_the_broken_master") else {
        return;
    };
    let st = etcd_state(&tools);
    // BIOS: rescue.after=poweroff ends QEMU with 0 (no test-exit device use).
    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::Good, None);
    let b = boot(
        Via::IsoBios,
        Some(&disk.img),
        "rescue.after=poweroff",
        t.path(),
    );
    assert_eq!(b.code, Some(0), "{}", b.serial);
    check_recovered(&tools, st, &disk, &b, t.path());

    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::Good, None);
    let b = boot(
        Via::IsoUefi,
        Some(&disk.img),
        "rescue.test_exit=1",
        t.path(),
    );
    assert_eq!(b.code, Some(1), "{}", b.serial);
    assert!(b.serial.contains("efi: EFI v"), "booted through UEFI");
    check_recovered(&tools, st, &disk, &b, t.path());
}

/// A backup on the boot medium: the ISO built with `--add` carries it and the host disk has
/// none. The image mounts the CD read-only, finds the backup there and recovers the host.
#[test]
fn iso_with_the_backup_on_the_medium_recovers_a_host_without_one() {
    let Some(tools) = enabled("iso_with_the_backup_on_the_medium_recovers_a_host_without_one")
    else {
        return;
    };
    let st = etcd_state(&tools);
    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::None, None);
    put(
        &t.path()
            .join("media/backups/etcd-snapshot-20240102-030405.db"),
        &std::fs::read(&st.backup).expect("backup"),
    );
    let b = boot(
        Via::IsoBios,
        Some(&disk.img),
        "rescue.test_exit=1",
        t.path(),
    );
    assert_eq!(b.code, Some(1), "{}", b.serial);
    assert!(
        b.serial.contains("boot medium sr0 mounted read-only"),
        "{}",
        b.serial
    );
    check_recovered_as(
        &tools,
        st,
        &disk,
        &b,
        t.path(),
        None,
        "/run/rescue-init/media/sr0/backups/etcd-snapshot-20240102-030405.db",
    );
}

#[test]
fn pxe_recovers_the_broken_master() {
    let Some(tools) = enabled("pxe_recovers_the_broken_master") else {
        return;
    };
    let st = etcd_state(&tools);
    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::Good, None);
    let b = boot(
        Via::PxeBios,
        Some(&disk.img),
        "rescue.test_exit=1 rescue.root=LABEL=hostroot",
        t.path(),
    );
    assert_eq!(b.code, Some(1), "{}", b.serial);
    check_recovered(&tools, st, &disk, &b, t.path());
}

#[test]
fn no_backup_fails_clearly_and_leaves_the_host_unchanged() {
    let Some(tools) = enabled("no_backup_fails_clearly_and_leaves_the_host_unchanged") else {
        return;
    };
    let st = etcd_state(&tools);
    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::None, None);
    let b = boot(Via::Pvh, Some(&disk.img), "rescue.test_exit=1", t.path());
    check_failed(&disk, &b, "no usable etcd backup found", t.path());
}

#[test]
fn corrupt_backup_fails_clearly_and_leaves_the_host_unchanged() {
    let Some(tools) = enabled("corrupt_backup_fails_clearly_and_leaves_the_host_unchanged") else {
        return;
    };
    let st = etcd_state(&tools);
    let t = tempfile::tempdir().expect("tempdir");
    let disk = broken_master_disk(t.path(), st, Backup::Corrupt, None);
    let b = boot(Via::Pvh, Some(&disk.img), "rescue.test_exit=1", t.path());
    check_failed(&disk, &b, "no usable etcd backup found", t.path());
    assert!(
        b.serial.to_lowercase().contains("sha256"),
        "the console says why the backup was refused:\n{}",
        b.serial
    );
}

/// No disk at all, and the default after a failure: the VM holds, QEMU keeps running (no
/// reboot, no loop) with the message on serial.
#[test]
fn no_host_disk_holds_with_a_clear_message() {
    if enabled("no_host_disk_holds_with_a_clear_message").is_none() {
        return;
    }
    let im = image();
    let t = tempfile::tempdir().expect("tempdir");
    let serial = t.path().join("hold.log");
    let mut c = qemu_base(&serial);
    c.args(["-nic", "none", "-kernel"])
        .arg(&im.vmlinux)
        .arg("-initrd")
        .arg(&im.initrd)
        .arg("-append")
        .arg(TEST_ARGS);
    let _g = vm_lock();
    let mut child = c.spawn().expect("qemu");
    let t0 = Instant::now();
    let mut text = String::new();
    while t0.elapsed() < Duration::from_secs(QEMU_TIMEOUT_S) {
        text = std::fs::read_to_string(&serial).unwrap_or_default();
        if text.contains("pid1: holding") || child.try_wait().expect("try_wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let still_running = child.try_wait().expect("try_wait").is_none();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    assert!(text.contains("RESCUE RESULT: FAIL: no host disk"), "{text}");
    assert!(text.contains("pid1: holding"), "{text}");
    assert!(still_running, "QEMU exited after a failure:\n{text}");
}

/// The 64 MiB benchmark backup (scripts/gen-bench-snapshot.py output, cached), timed per boot
/// path. Runs only with `RESCUE_VM_BENCH=1`; prints the figures for image/README.md.
#[test]
fn bench_64m_backup_per_boot_path() {
    if enabled("bench_64m_backup_per_boot_path").is_none() {
        return;
    }
    if std::env::var("RESCUE_VM_BENCH").as_deref() != Ok("1") {
        eprintln!("skip bench_64m_backup_per_boot_path: set RESCUE_VM_BENCH=1");
        return;
    }
    let tools = Tools::require().expect("etcd");
    let st = etcd_state(&tools);
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
    let big = cache.join("rescue-init/bench/snap-64M.db");
    assert!(
        big.exists(),
        "{} (scripts/gen-bench-snapshot.py)",
        big.display()
    );
    for how in [Via::Pvh, Via::IsoBios, Via::IsoUefi, Via::PxeBios] {
        let t = tempfile::tempdir().expect("tempdir");
        let disk = broken_master_disk(t.path(), st, Backup::Good, Some(&big));
        let b = boot(
            how,
            Some(&disk.img),
            "rescue.after=poweroff rescue.root=LABEL=hostroot",
            t.path(),
        );
        assert!(b.serial.contains("RESCUE RESULT: OK"), "{}", b.serial);
        assert_eq!(b.code, Some(0), "powered off");
        let g = |needle: &str| guest_time(&b.serial, needle).unwrap_or(f64::NAN);
        let (init, restore, result, off) = (
            g("pid1: rescue-init"),
            g("snapshot restore"),
            g("RESCUE RESULT"),
            g("reboot: Power down"),
        );
        if matches!(how, Via::Pvh) {
            for l in b.serial.lines().filter(|l| l.contains("rescue:")) {
                eprintln!("  {l}");
            }
        }
        let restore_took = b
            .serial
            .lines()
            .skip_while(|l| !l.contains("snapshot restore"))
            .find(|l| l.contains("done in"))
            .unwrap_or_default()
            .to_owned();
        // QEMU start to the result line: the wall time less the guest's time from the result
        // line to the power-off (the guest clock starts after QEMU's own start-up).
        eprintln!(
            "bench {how:?}: wall (QEMU start to exit) {:.2} s; QEMU start to RESCUE RESULT ~{:.2} s; \
             init start {init:.3} s, first restore step {restore:.3} s (init to restore {:.3} s), \
             result {result:.3} s; restore: {restore_took}",
            b.wall.as_secs_f64(),
            b.wall.as_secs_f64() - (off - result),
            restore - init,
        );
    }
}

/// A test CA and a server certificate for 10.0.2.2 (host loopback as the guest sees it).
fn fleet_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    sh(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=rescue-test-ca"])
        .args([
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(&ca_key)
        .arg("-out")
        .arg(&ca));
    let (crt, key, csr, ext) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("server.csr"),
        dir.join("server.ext"),
    );
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:10.0.2.2,IP:127.0.0.1\n",
    )
    .expect("ext");
    sh(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", "/CN=10.0.2.2", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    sh(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial", "7", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&crt));
    (ca, crt, key)
}

/// Issue 5's fleet case: a PXE-booted VM with no backup on its disk brings its network up by
/// DHCP, fetches its plan by MAC over HTTPS from a server on host loopback (a test CA), fetches
/// the snapshot the plan names over HTTPS with a sha256 pin, recovers, and POSTs its report to
/// the callback.
#[test]
fn pxe_fleet_plan_by_mac_https_snapshot_and_callback() {
    let Some(tools) = enabled("pxe_fleet_plan_by_mac_https_snapshot_and_callback") else {
        return;
    };
    let (b, _t) = fleet_case(&tools, Via::PxeFleet);
    assert_eq!(b.code, Some(1), "{}", b.serial);
}

/// A plan on the boot medium (`build-iso.sh --add`), its CA inline: the network comes up
/// because the plan names an https source and a callback, the snapshot is fetched, the host
/// recovered and the report POSTed.
#[test]
fn iso_plan_on_the_medium_with_an_inline_ca_fetches_over_https() {
    let Some(tools) = enabled("iso_plan_on_the_medium_with_an_inline_ca_fetches_over_https") else {
        return;
    };
    let (b, _t) = fleet_case(&tools, Via::IsoFleet);
    assert_eq!(b.code, Some(1), "{}", b.serial);
    assert!(b.serial.contains("bringing up the network"), "{}", b.serial);
}

/// The fleet case with rescue-init expanding the plan URL itself: `${mac}` from the NIC that
/// got the lease, `${uuid}` from /sys/class/dmi (QEMU `-uuid`); the plan's snapshot URL needs
/// the plan's bearer token.
#[test]
fn pvh_fleet_expands_mac_and_uuid_and_sends_the_plans_token() {
    let Some(tools) = enabled("pvh_fleet_expands_mac_and_uuid_and_sends_the_plans_token") else {
        return;
    };
    let (b, _t) = fleet_case(&tools, Via::PvhFleet);
    assert_eq!(b.code, Some(1), "{}", b.serial);
    assert!(
        b.serial
            .contains(&format!("plan-{FLEET_MAC}-{FLEET_UUID}.yaml")),
        "the expanded plan URL is logged:\n{}",
        b.serial
    );
}

/// The same boot without a virtio RNG (and no RDRAND under TCG): the kernel's pool may never
/// fill, and TLS needs it. The run must end, recovered or with a clear message about what it
/// waited for; never a silent hang.
#[test]
fn pxe_fleet_without_rng_never_hangs_silently() {
    let Some(tools) = enabled("pxe_fleet_without_rng_never_hangs_silently") else {
        return;
    };
    let (b, _t) = fleet_case(&tools, Via::PxeFleetNoRng);
    match b.code {
        Some(1) => {}
        Some(3) => assert!(
            b.serial.contains("random") || b.serial.contains("entropy"),
            "a failure names the entropy wait:\n{}",
            b.serial
        ),
        other => panic!(
            "QEMU ended with {other:?} (timeout or crash):\n{}",
            b.serial
        ),
    }
}

/// Runs the fleet case by `how`; checks the recovery and the callback when it succeeded.
fn fleet_case(tools: &Tools, how: Via) -> (Boot, tempfile::TempDir) {
    let tools = tools.clone();
    let st = etcd_state(&tools);
    let t = tempfile::tempdir().expect("tempdir");
    let www = t.path().join("www");
    std::fs::create_dir_all(&www).expect("www");
    let (ca, crt, key) = fleet_pki(t.path());
    let snap = std::fs::read(&st.backup).expect("backup");
    std::fs::write(www.join("etcd-snapshot-20240102-030405.db"), &snap).expect("serve");
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&snap)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let server_py = repo().join("tests/tests/sources/https_server.py");
    let mut server = Command::new("python3")
        .arg(&server_py)
        .arg(&www)
        .arg("--cert")
        .arg(&crt)
        .arg("--key")
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("https server");
    let port: u16 = {
        use std::io::BufRead;
        let out = server.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("port line");
        line.trim().parse().expect("port")
    };
    let base = format!("https://10.0.2.2:{port}");
    // PXE: iPXE expands ${mac} in the boot script (as fleets using it do). PVH: rescue-init
    // expands ${mac} and ${uuid}, and the snapshot sits behind a bearer token the plan gives.
    const TOKEN: &str = "fleet-t0ken-5e";
    let (template, plan_name, snapshot_url, token) = match how {
        Via::PvhFleet => (
            "plan-${mac}-${uuid}.yaml",
            format!("plan-{FLEET_MAC}-{FLEET_UUID}.yaml"),
            format!("{base}/auth/etcd-snapshot-20240102-030405.db"),
            format!("http_token: {TOKEN}\n"),
        ),
        _ => (
            "plan-${mac}.yaml",
            format!("plan-{FLEET_MAC}.yaml"),
            format!("{base}/files/etcd-snapshot-20240102-030405.db"),
            String::new(),
        ),
    };
    std::fs::write(www.join(".token"), TOKEN).expect("token");
    let plan = format!("# plan of {FLEET_MAC}\nsource: {snapshot_url}\nsha256: {sha}\n{token}");
    std::fs::write(www.join(plan_name), &plan).expect("plan");
    // No backup on the disk: the plan is the only way to one. The CA is on the host disk.
    let ca_pem = std::fs::read(&ca).expect("ca");
    let disk = broken_master_disk_with(
        t.path(),
        st,
        Backup::None,
        None,
        &[("etc/rescue/ca.pem", ca_pem)],
    );
    // The CA path is the host's: rescue-init finds it on the mounted host disk. On the ISO,
    // the plan sits on the medium with the CA inline and the callback in it: the network is
    // brought up because of what the plan names.
    let keys = match how {
        Via::IsoFleet => {
            let pem = String::from_utf8(std::fs::read(&ca).expect("ca")).expect("pem");
            let inline = pem.trim_end().replace('\n', "\n  ");
            put(
                &t.path().join("media/fleet/plan.yaml"),
                format!("{plan}callback: {base}/callback\nca: |\n  {inline}\n").as_bytes(),
            );
            "rescue.test_exit=1 rescue.root=LABEL=hostroot rescue.plan=/fleet/plan.yaml".to_owned()
        }
        _ => format!(
            "rescue.test_exit=1 rescue.root=LABEL=hostroot ip=dhcp rescue.ca=/etc/rescue/ca.pem \
             rescue.plan={base}/files/{template} rescue.callback={base}/callback"
        ),
    };
    let b = boot(how, Some(&disk.img), &keys, t.path());
    let _ = server.kill();
    let _ = server.wait();
    if b.code != Some(1) {
        return (b, t);
    }
    let callbacks: Vec<_> = std::fs::read_dir(&www)
        .expect("www")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("callback-"))
        .collect();
    assert_eq!(
        callbacks.len(),
        1,
        "one report POSTed to the callback\n{}",
        b.serial
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(callbacks[0].path()).expect("callback body"))
            .expect("callback json");
    assert_eq!(report["outcome"]["result"], "recovered", "{report}");
    assert!(
        report["source"]
            .as_str()
            .is_some_and(|s| s.contains("fetched from https://10.0.2.2")),
        "{report}"
    );
    assert!(
        !report.to_string().contains("BEGIN"),
        "no key material in the report"
    );
    assert!(
        !report.to_string().contains(TOKEN) && !b.serial.contains(TOKEN),
        "the token is neither in the report nor on the console"
    );
    check_recovered_from_fetched(&tools, st, &disk, &b, t.path());
    (b, t)
}
