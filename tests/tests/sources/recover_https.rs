//! `rescue-init recover --source https://…`: a backup archive that arrives over the network goes
//! through the same layout detection as a local one (a Deckhouse `kube-backup.tar.gz` recovers a
//! host with no `/etc/kubernetes`), a bearer token from the plan is sent and never shown, a
//! missing token is a clear 401, and a hostile archive is refused with the host unchanged.
use anyhow::{ensure, Result};
use rescue_tests::hostroot::{self, HostRoot, Node};
use rescue_tests::recovery;
use rescue_tests::tarw::{self, TarEntry};

use crate::common::{http_server, pki, sha256_file};

const TOKEN: &str = "t0ken-8c1d-s3cr3t";

/// No `var/lib/.rescue-init-fetch-*` left on the host.
fn no_fetch_leftovers(root: &HostRoot) -> Result<()> {
    let left: Vec<String> = std::fs::read_dir(root.join("var/lib"))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".rescue-init-fetch"))
        .collect();
    ensure!(left.is_empty(), "fetch dirs left: {left:?}");
    Ok(())
}

/// A test HTTPS server serving `files` (name, bytes) and a `.token`, with its CA.
struct Www {
    tmp: tempfile::TempDir,
    ca: String,
    server: crate::common::Server,
}

fn serve(files: &[(&str, &[u8])]) -> Result<Www> {
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join(".token"), TOKEN)?;
    for (name, data) in files {
        std::fs::write(www.join(name), data)?;
    }
    let server = http_server(&www, Some(&p), &tmp.path().join("server.log"))?;
    Ok(Www {
        ca: p.ca.to_string_lossy().into_owned(),
        tmp,
        server,
    })
}

#[test]
fn deckhouse_archive_over_https_with_a_token_recovers_a_bare_host() -> Result<()> {
    let Some(tools) = rescue_tests::Tools::require() else {
        return Ok(());
    };
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let node = Node::loopback("master-0", "127.0.0.1");
    let scratch = HostRoot::new()?;
    let archive =
        hostroot::deckhouse_kube_backup(&scratch, &src.snapshot, "kube-backup.tar.gz", &node)?;
    let sha = sha256_file(&archive)?;
    let w = serve(&[("kube-backup.tar.gz", &std::fs::read(&archive)?)])?;
    let url = format!(
        "https://127.0.0.1:{}/auth/kube-backup.tar.gz",
        w.server.port
    );
    let ca = w.ca.clone();

    // A bare host: a stale data dir, no /etc/kubernetes; the archive brings it.
    let root = HostRoot::new()?;
    recovery::stale_data_dir(&root);
    let stderr = recovery::assert_refused(
        root.path(),
        &["--source", &url, "--cacert", &ca],
        "HTTP 401",
    );
    ensure!(stderr.contains("http_token"), "{stderr}");

    let plan = w.tmp.path().join("plan.yaml");
    std::fs::write(&plan, format!("http_token: {TOKEN}\nsha256: {sha}\n"))?;
    let plan = plan.to_string_lossy().into_owned();
    // A dry run fetches outside the host, prints the plan and leaves the host as it was.
    let before = recovery::picture(root.path());
    let tmpdir = tempfile::tempdir()?;
    let dry = recovery::recover_with_tmpdir(
        root.path(),
        &[
            "--plan",
            &plan,
            "--source",
            &url,
            "--cacert",
            &ca,
            "--dry-run",
        ],
        Some(tmpdir.path()),
    );
    let shown = recovery::output_text(&dry);
    ensure!(dry.status.success(), "{shown}");
    ensure!(
        shown.contains("DRY RUN") && shown.contains("plan:"),
        "{shown}"
    );
    recovery::assert_same_tree(&before, &recovery::picture(root.path()), "dry run");
    ensure!(
        std::fs::read_dir(tmpdir.path())?.next().is_none(),
        "the dry run's fetch and staging directories are removed"
    );
    let out = recovery::recover_ok(
        root.path(),
        &["--plan", &plan, "--source", &url, "--cacert", &ca],
    );
    let shown = recovery::output_text(&out);
    ensure!(shown.contains("deckhouse kube-backup"), "{shown}");
    ensure!(!shown.contains(TOKEN), "the token reached the output");
    let r = recovery::report_json(&root);
    ensure!(
        !r.to_string().contains(TOKEN),
        "the token reached the report"
    );
    ensure!(r["fetch"]["sha256"] == sha.as_str(), "{}", r["fetch"]);
    ensure!(
        r["fetch"]["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/auth/kube-backup.tar.gz")),
        "{}",
        r["fetch"]
    );
    no_fetch_leftovers(&root)?;
    // The snapshot extracted from the fetched archive is rescue-init's own copy: it became the
    // db in place rather than being copied once more.
    let consumed = r["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["restore"]["consumed"] == true);
    ensure!(consumed, "{:#}", r["steps"]);
    // The archive's /etc/kubernetes is in place, and etcd starts from its rewritten manifest.
    ensure!(root.join("etc/kubernetes/admin.conf").is_file());
    recovery::check_recovered_kubeadm(&tools, &root, src, &node);
    Ok(())
}

#[test]
fn hostile_archive_over_https_changes_nothing() -> Result<()> {
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let node = Node::loopback("master-0", "127.0.0.1");
    let tar = tarw::tar(&[
        TarEntry::file("./etcd-backup.snapshot", &src.snapshot).mode(0o600),
        TarEntry::dir("./kubernetes/"),
        TarEntry::dir("./kubernetes/manifests/"),
        TarEntry::file(
            "./kubernetes/manifests/etcd.yaml",
            hostroot::etcd_manifest(&node).as_bytes(),
        )
        .mode(0o600),
        TarEntry::file("./kubernetes/../../../../tmp/evil", b"x"),
    ])?;
    let w = serve(&[("kube-backup.tar.gz", &tarw::gzip(&tar)?)])?;
    let url = format!(
        "https://127.0.0.1:{}/files/kube-backup.tar.gz",
        w.server.port
    );

    let root = HostRoot::new()?;
    hostroot::host_kubernetes(&root, &node)?;
    recovery::stale_data_dir(&root);
    recovery::assert_refused(root.path(), &["--source", &url, "--cacert", &w.ca], "..");
    Ok(())
}
