//! `rescue-init recover --source https://…`: a backup archive that arrives over the network goes
//! through the same layout detection as a local one (a Deckhouse `kube-backup.tar.gz` recovers a
//! host with no `/etc/kubernetes`), a bearer token from the plan is sent and never shown, a
//! missing token is a clear 401, and a hostile archive is refused with the host unchanged.
use anyhow::{ensure, Context, Result};
use rescue_tests::hostroot::{self, HostRoot, Node};
use rescue_tests::recovery::{self, MemberFlags};
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

/// The report of the one recovery on `root`.
fn report(root: &HostRoot) -> Result<serde_json::Value> {
    let dir = std::fs::read_dir(root.join("var/log/rescue-init"))?
        .next()
        .context("report dir")??
        .path();
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join("report.json"),
    )?)?)
}

#[test]
fn deckhouse_archive_over_https_with_a_token_recovers_a_bare_host() -> Result<()> {
    let Some(tools) = rescue_tests::Tools::require() else {
        return Ok(());
    };
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join(".token"), TOKEN)?;
    let node = Node::loopback("master-0", "127.0.0.1");
    let scratch = HostRoot::new()?;
    let archive =
        hostroot::deckhouse_kube_backup(&scratch, &src.snapshot, "kube-backup.tar.gz", &node)?;
    std::fs::copy(&archive, www.join("kube-backup.tar.gz"))?;
    let sha = sha256_file(&archive)?;
    let srv = http_server(&www, Some(&p), &tmp.path().join("server.log"))?;
    let url = format!("https://127.0.0.1:{}/auth/kube-backup.tar.gz", srv.port);
    let ca = p.ca.to_string_lossy().into_owned();

    // A bare host: a stale data dir, no /etc/kubernetes; the archive brings it.
    let root = HostRoot::new()?;
    recovery::stale_data_dir(&root);
    let stderr = recovery::assert_refused(
        root.path(),
        &["--source", &url, "--cacert", &ca],
        "HTTP 401",
    );
    ensure!(stderr.contains("http_token"), "{stderr}");

    let plan = tmp.path().join("plan.yaml");
    std::fs::write(&plan, format!("http_token: {TOKEN}\nsha256: {sha}\n"))?;
    let plan = plan.to_string_lossy().into_owned();
    let out = recovery::recover_ok(
        root.path(),
        &["--plan", &plan, "--source", &url, "--cacert", &ca],
    );
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(shown.contains("deckhouse kube-backup"), "{shown}");
    ensure!(!shown.contains(TOKEN), "the token reached the output");
    let r = report(&root)?;
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
    // The archive's /etc/kubernetes is in place, and etcd starts from its rewritten manifest.
    ensure!(root.join("etc/kubernetes/admin.conf").is_file());
    let flags = MemberFlags::from(
        root.path(),
        &recovery::parse_flags(&root.join("etc/kubernetes/manifests/etcd.yaml")),
    );
    recovery::check_server(
        &tools,
        &flags,
        &src.state,
        &node.name,
        &node.peer_url(),
        true,
    );
    recovery::check_stale_moved_aside(&root);
    Ok(())
}

#[test]
fn hostile_archive_over_https_changes_nothing() -> Result<()> {
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www)?;
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
    std::fs::write(www.join("kube-backup.tar.gz"), tarw::gzip(&tar)?)?;
    let srv = http_server(&www, Some(&p), &tmp.path().join("server.log"))?;
    let url = format!("https://127.0.0.1:{}/files/kube-backup.tar.gz", srv.port);

    let root = HostRoot::new()?;
    hostroot::host_kubernetes(&root, &node)?;
    recovery::stale_data_dir(&root);
    recovery::assert_refused(
        root.path(),
        &["--source", &url, "--cacert", &p.ca.to_string_lossy()],
        "..",
    );
    Ok(())
}
