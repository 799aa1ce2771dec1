//! The worker against `FakeSys` (mounts recorded, not made), a sysfs tree and device "nodes"
//! that are real ext4 images made by mkfs.ext4. Fake mounts leave the mount point as it is,
//! so the test prepares the host tree there directly.
use std::cell::RefCell;
use std::process::Command;

use super::*;
use crate::sys::fake::{Call, FakeSys};

struct Host {
    _dir: tempfile::TempDir,
    cfg: WorkerConfig,
}

fn mkfs(path: &Path, label: &str) {
    let st = Command::new("truncate")
        .args(["-s", "4M"])
        .arg(path)
        .status()
        .expect("test step");
    assert!(st.success());
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label])
        .arg(path)
        .status()
        .expect("mkfs.ext4 (e2fsprogs)");
    assert!(st.success());
}

/// Two disks: vda (label hostroot) and vdb (label hostvar); a virtio PCI modalias; a module
/// index with virtio_pci and ext4.
fn host(with_disks: bool) -> Host {
    let dir = tempfile::tempdir().expect("test step");
    let root = dir.path();
    let sys_root = root.join("sys");
    let dev_root = root.join("dev");
    std::fs::create_dir_all(sys_root.join("class/block")).expect("test step");
    std::fs::create_dir_all(&dev_root).expect("test step");
    if with_disks {
        for (name, label) in [("vda", "hostroot"), ("vdb", "hostvar")] {
            let d = sys_root.join("devices/virtio").join(name);
            std::fs::create_dir_all(&d).expect("test step");
            std::fs::write(d.join("size"), "8192\n").expect("test step");
            std::os::unix::fs::symlink(&d, sys_root.join("class/block").join(name))
                .expect("test step");
            mkfs(&dev_root.join(name), label);
        }
    }
    let pci = sys_root.join("bus/pci/devices/0000:00:04.0");
    std::fs::create_dir_all(&pci).expect("test step");
    std::fs::write(
        pci.join("modalias"),
        "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00\n",
    )
    .expect("test step");
    let mods = root.join("modules");
    std::fs::create_dir_all(&mods).expect("test step");
    std::fs::write(
        mods.join("modules.dep"),
        "kernel/drivers/virtio/virtio_pci.ko:\nkernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\n",
    )
    .expect("test step");
    std::fs::write(
        mods.join("modules.alias"),
        "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\nalias fs-ext4 ext4\n",
    )
    .expect("test step");
    let mnt = root.join("mnt");
    std::fs::create_dir_all(mnt.join("etc/kubernetes")).expect("test step");
    std::fs::create_dir_all(mnt.join("var")).expect("test step");
    std::fs::write(
        mnt.join("etc/fstab"),
        "LABEL=hostroot / ext4 defaults 0 1\nLABEL=hostvar /var ext4 defaults 0 2\n",
    )
    .expect("test step");
    let cfg = WorkerConfig {
        args: BootArgs::default(),
        sys_root,
        dev_root,
        modules_dir: mods,
        mountpoint: mnt,
        media_dir: root.join("media"),
        disk_wait: Duration::from_secs(3),
        poll: Duration::from_millis(100),
        kernel: "6.1.0-test".to_owned(),
        cmdline: "console=ttyS0".to_owned(),
        init_start: Some(Duration::from_millis(1700)),
    };
    Host { _dir: dir, cfg }
}

fn mounts_and_umounts(sys: &FakeSys) -> Vec<String> {
    sys.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Mount {
                source,
                target,
                opts,
                ..
            } => Some(format!(
                "mount {} {} {}",
                Path::new(&source).file_name()?.to_string_lossy(),
                target.file_name()?.to_string_lossy(),
                if opts.read_only { "ro" } else { "rw" }
            )),
            Call::Umount(t) => Some(format!("umount {}", t.file_name()?.to_string_lossy())),
            Call::Sync => Some("sync".to_owned()),
            _ => None,
        })
        .collect()
}

fn read_report(mnt: &Path) -> serde_json::Value {
    let base = mnt.join("var/log/rescue-init");
    let dirs: Vec<_> = std::fs::read_dir(&base)
        .expect("test step")
        .flatten()
        .collect();
    assert_eq!(dirs.len(), 1);
    let text = std::fs::read_to_string(dirs[0].path().join("report.json")).expect("test step");
    serde_json::from_str(&text).expect("test step")
}

#[test]
fn finds_the_host_by_its_kube_state_mounts_var_runs_the_hook_and_writes_the_report() {
    let h = host(true);
    let sys = FakeSys::new();
    let seen_root = RefCell::new(None);
    let hook = |root: &Path, _media: &[PathBuf]| -> Result<serde_json::Value, HookError> {
        *seen_root.borrow_mut() = Some(root.to_owned());
        Ok(serde_json::json!({"restored_keys": 3}))
    };
    let summary = run_worker(&h.cfg, &sys, Some(&hook)).expect("test step");
    assert_eq!(summary.root_device, "vda");
    assert_eq!(
        seen_root.borrow().as_deref(),
        Some(h.cfg.mountpoint.as_path())
    );
    assert_eq!(
        mounts_and_umounts(&sys),
        vec![
            "mount vda mnt ro",
            "umount mnt",
            "mount vda mnt rw",
            "mount vdb var rw",
            "sync",
            "umount var",
            "umount mnt"
        ]
    );
    let loaded: Vec<PathBuf> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::FinitModule(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(
        loaded.len(),
        3,
        "virtio_pci by coldplug, then jbd2 and ext4 for fs-ext4"
    );
    assert!(loaded[0].ends_with("virtio_pci.ko") && loaded[2].ends_with("ext4.ko"));
    let r = read_report(&h.cfg.mountpoint);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["root"]["device"], "vda");
    assert_eq!(r["root"]["label"], "hostroot");
    assert_eq!(r["recover"]["restored_keys"], 3);
    assert_eq!(r["devices"].as_array().expect("test step").len(), 2);
    assert_eq!(r["mounts"][1]["device"], "vdb");
    assert!(summary
        .report_path
        .starts_with(h.cfg.mountpoint.join("var/log/rescue-init")));
}

/// An iso9660 device (the rescue CD) is never taken for the host, but it is mounted
/// read-only as boot media and handed to the hook; it is unmounted before the host root.
#[test]
fn the_boot_medium_is_mounted_read_only_and_given_to_the_hook() {
    let h = host(true);
    let sys_root = h.cfg.sys_root.clone();
    let d = sys_root.join("devices/ata/sr0");
    std::fs::create_dir_all(&d).expect("test step");
    std::fs::write(d.join("size"), "4096\n").expect("test step");
    std::os::unix::fs::symlink(&d, sys_root.join("class/block/sr0")).expect("test step");
    let isoroot = h._dir.path().join("isoroot");
    std::fs::create_dir_all(&isoroot).expect("test step");
    std::fs::write(isoroot.join("backup.db"), "x").expect("test step");
    let st = Command::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", "RESCUE", "-o"])
        .arg(h.cfg.dev_root.join("sr0"))
        .arg(&isoroot)
        .status()
        .expect("xorriso");
    assert!(st.success());
    let sys = FakeSys::new();
    let seen = RefCell::new(Vec::new());
    let hook = |_: &Path, media: &[PathBuf]| -> Result<serde_json::Value, HookError> {
        *seen.borrow_mut() = media.to_vec();
        Ok(serde_json::json!({}))
    };
    let summary = run_worker(&h.cfg, &sys, Some(&hook)).expect("test step");
    assert_eq!(summary.root_device, "vda", "the CD is never the host");
    assert_eq!(*seen.borrow(), vec![h.cfg.media_dir.join("sr0")]);
    assert_eq!(
        mounts_and_umounts(&sys),
        vec![
            "mount vda mnt ro",
            "umount mnt",
            "mount vda mnt rw",
            "mount vdb var rw",
            "mount sr0 sr0 ro",
            "sync",
            "umount sr0",
            "umount var",
            "umount mnt"
        ]
    );
}

#[test]
fn rescue_root_selects_the_device_without_probing() {
    let mut h = host(true);
    h.cfg.args.root = Some(DeviceSpec::Label("hostvar".into()));
    std::fs::write(h.cfg.mountpoint.join("etc/fstab"), "").expect("test step");
    let sys = FakeSys::new();
    run_worker(&h.cfg, &sys, None).expect("test step");
    assert_eq!(
        mounts_and_umounts(&sys),
        vec!["mount vdb mnt rw", "sync", "umount mnt"]
    );
    assert_eq!(
        read_report(&h.cfg.mountpoint)["recover"],
        serde_json::Value::Null
    );
}

#[test]
fn no_host_disk_fails_after_the_wait_with_a_clear_message() {
    let h = host(false);
    let sys = FakeSys::new();
    let err = run_worker(&h.cfg, &sys, None).expect_err("must fail");
    let msg = error_chain(&err);
    assert!(msg.starts_with("no host disk:"), "{msg}");
    assert!(
        msg.contains("within 3 s") && msg.contains("devices seen: none"),
        "{msg}"
    );
    assert!(sys.uptime() >= Duration::from_secs(3));
    assert!(mounts_and_umounts(&sys).is_empty());
}

#[test]
fn a_failing_recovery_still_writes_the_report_and_unmounts() {
    let h = host(true);
    let sys = FakeSys::new();
    let hook = |_: &Path, _: &[PathBuf]| -> Result<serde_json::Value, HookError> {
        Err("no backup found".into())
    };
    let err = run_worker(&h.cfg, &sys, Some(&hook)).expect_err("must fail");
    assert_eq!(
        error_chain(&err),
        format!(
            "recovery on {} failed: no backup found",
            h.cfg.mountpoint.display()
        )
    );
    let r = read_report(&h.cfg.mountpoint);
    assert_eq!(r["status"], "failed");
    assert!(r["error"]
        .as_str()
        .expect("test step")
        .contains("no backup found"));
    let seq = mounts_and_umounts(&sys);
    assert_eq!(&seq[seq.len() - 2..], &["umount var", "umount mnt"]);
}

#[test]
fn a_root_mount_failure_is_reported() {
    let mut h = host(true);
    h.cfg.args.root = Some(DeviceSpec::Path("/dev/vda".into()));
    let sys = FakeSys::new();
    sys.fail_mount(h.cfg.mountpoint.clone(), 2);
    let err = run_worker(&h.cfg, &sys, None).expect_err("must fail");
    assert!(error_chain(&err).starts_with("mount host root vda (ext4) on"));
}

#[test]
fn timestamps_are_utc_civil_dates() {
    assert_eq!(timestamp(0), "19700101T000000Z");
    assert_eq!(timestamp(951_782_400), "20000229T000000Z");
    assert_eq!(timestamp(1_795_312_496), "20261122T015456Z");
}

#[test]
fn a_missing_var_disk_from_fstab_fails_after_the_wait_and_unmounts_the_root() {
    let h = host(true);
    std::fs::write(
        h.cfg.mountpoint.join("etc/fstab"),
        "LABEL=hostroot / ext4 defaults 0 1\nUUID=0000-missing /var xfs defaults 0 2\n",
    )
    .expect("fstab");
    let sys = FakeSys::new();
    let err = run_worker(&h.cfg, &sys, None).expect_err("must fail");
    let msg = error_chain(&err);
    assert_eq!(
        msg,
        "host fstab entry UUID=0000-missing for /var: no such device within 3 s"
    );
    // The report still lands on the root, and the root is unmounted.
    assert_eq!(read_report(&h.cfg.mountpoint)["status"], "failed");
    assert_eq!(
        mounts_and_umounts(&sys).last().map(String::as_str),
        Some("umount mnt")
    );
}
