//! The `rescue-init` binary's command-line contract: exit codes, one-line errors, JSON output.
//! Snapshots here are synthetic (built with the crate's own bbolt writer); the real-etcd
//! comparisons live in the workspace's `tests` crate.
use std::path::Path;
use std::process::{Command, Output};

use rescue_init::formats::bbolt::{build_image, LeafItem};
use rescue_init::formats::etcd::schema::Revision;
use sha2::{Digest, Sha256};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rescue-init"))
}

fn snapshot(dir: &Path) -> std::path::PathBuf {
    let keys: Vec<LeafItem> = (1..=50u64)
        .map(|i| {
            LeafItem::new(
                Revision {
                    main: i + 1,
                    sub: 0,
                }
                .to_key(),
                vec![b'v'; 30],
            )
        })
        .collect();
    let meta = vec![LeafItem::new(
        "consistent_index",
        9u64.to_be_bytes().to_vec(),
    )];
    let mut img = build_image(4096, &[("key", keys), ("meta", meta)]).expect("image");
    let sum = Sha256::digest(&img);
    img.extend_from_slice(&sum);
    let p = dir.join("snap.db");
    std::fs::write(&p, img).expect("write");
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn status_json_has_etcdutl_keys() {
    let t = tempfile::tempdir().expect("tempdir");
    let snap = snapshot(t.path());
    let o = bin()
        .args(["snapshot", "status", "-w", "json"])
        .arg(&snap)
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["revision"], 51);
    assert_eq!(v["totalKey"], 51);
    assert_eq!(v["hashTrailer"], "verified");
    assert!(v["hash"].is_u64() && v["totalSize"].is_u64());
}

#[test]
fn restore_then_errors_are_one_line_with_nonzero_exit() {
    let t = tempfile::tempdir().expect("tempdir");
    let snap = snapshot(t.path());
    let data = t.path().join("data");
    let restore = |extra: &[&str]| {
        bin()
            .args(["snapshot", "restore", "-q"])
            .arg(&snap)
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--name",
                "n1",
                "--initial-cluster",
                "n1=https://192.0.2.10:2380",
            ])
            .args(["--initial-advertise-peer-urls", "https://192.0.2.10:2380"])
            .args(extra)
            .output()
            .expect("run")
    };
    let o = restore(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("restored"));
    // Again: the data dir is not empty now.
    let o = restore(&[]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.starts_with("error: data dir") && e.contains("not empty"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    // Bump without mark-compacted.
    std::fs::remove_dir_all(&data).expect("rm");
    let o = restore(&["--bump-revision", "10"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--mark-compacted"), "{}", stderr(&o));
    assert!(!data.exists());
    // Usage errors exit 2 (clap).
    let o = bin().args(["snapshot", "restore"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
}
