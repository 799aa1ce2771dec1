//! https:// and http:// sources against a real TLS server (python3 http.server + ssl) on
//! 127.0.0.1 with a CA made at test time.
use std::path::Path;

use anyhow::{ensure, Context, Result};
use rescue_init::progress::Progress;
use rescue_init::snapshot::{self, RestoreOptions};
use rescue_init::source::{self, Sha256Pin, SourceError, SourceOptions};

use crate::common::{self, blob, entries, http_server, pki, sha256_file};

fn opts_with_ca(p: &common::Pki) -> SourceOptions {
    let mut o = SourceOptions::default();
    o.tls.ca = Some(p.ca.clone().into());
    o
}

fn fetch(url: &str, o: &SourceOptions, dir: &Path) -> Result<source::Fetched, SourceError> {
    let src = source::open(url, o)?;
    source::fetch(
        src.as_ref(),
        dir,
        o.sha256.as_ref(),
        &mut Progress::hidden(),
    )
}

struct Lab {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    staging: std::path::PathBuf,
    pki: common::Pki,
    server: common::Server,
    sha: String,
}

/// A TLS server serving `blob.bin` (3 MiB of noise).
fn lab() -> Result<Lab> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("www");
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&root)?;
    std::fs::create_dir_all(&staging)?;
    std::fs::write(root.join("blob.bin"), blob(3 << 20, 7))?;
    let pki = pki(tmp.path())?;
    let server = http_server(&root, Some(&pki), &tmp.path().join("server.log"))?;
    let sha = sha256_file(&root.join("blob.bin"))?;
    Ok(Lab {
        root,
        staging,
        pki,
        server,
        sha,
        _tmp: tmp,
    })
}

#[test]
fn https_with_test_ca_fetches_and_pins() -> Result<()> {
    let l = lab()?;
    let url = format!("https://127.0.0.1:{}/files/blob.bin", l.server.port);
    let mut o = opts_with_ca(&l.pki);
    o.sha256 = Some(Sha256Pin::parse(&l.sha)?);
    let f = fetch(&url, &o, &l.staging)?;
    ensure!(
        f.temporary && f.sha256_hex() == l.sha,
        "sha {}",
        f.sha256_hex()
    );
    ensure!(std::fs::read(&f.path)? == std::fs::read(l.root.join("blob.bin"))?);
    let staged = f.path.clone();
    drop(f);
    ensure!(!staged.exists(), "staging file removed after use");
    // One redirect is followed.
    let url = format!("https://127.0.0.1:{}/redirect/blob.bin", l.server.port);
    let f = fetch(&url, &opts_with_ca(&l.pki), &l.staging)?;
    ensure!(f.sha256_hex() == l.sha);
    Ok(())
}

#[test]
fn unknown_ca_is_a_tls_error() -> Result<()> {
    let l = lab()?;
    let url = format!("https://127.0.0.1:{}/files/blob.bin", l.server.port);
    // Built-in roots only.
    let e = fetch(&url, &SourceOptions::default(), &l.staging).expect_err("untrusted");
    ensure!(matches!(e, SourceError::Tls { .. }), "{e:?}");
    ensure!(e.to_string().contains("--cacert"), "{e}");
    // Another CA, alone.
    let mut o = SourceOptions::default();
    o.tls.ca = Some(l.pki.other_ca.clone().into());
    o.tls.ca_only = true;
    let e = fetch(&url, &o, &l.staging).expect_err("untrusted");
    ensure!(matches!(e, SourceError::Tls { .. }), "{e:?}");
    ensure!(entries(&l.staging)?.is_empty(), "nothing left");
    Ok(())
}

#[test]
fn wrong_sha256_leaves_nothing() -> Result<()> {
    let l = lab()?;
    let url = format!(
        "https://127.0.0.1:{}/files/blob.bin?token=s3cr3t",
        l.server.port
    );
    let mut o = opts_with_ca(&l.pki);
    o.sha256 = Some(Sha256Pin([0x11; 32]));
    let e = fetch(&url, &o, &l.staging).expect_err("mismatch");
    ensure!(matches!(e, SourceError::Sha256Mismatch { .. }), "{e:?}");
    let shown = e.to_string();
    ensure!(
        shown.contains(&l.sha) && !shown.contains("s3cr3t"),
        "{shown}"
    );
    ensure!(
        entries(&l.staging)?.is_empty(),
        "staging dir: {:?}",
        entries(&l.staging)?
    );
    Ok(())
}

#[test]
fn dropped_connection_resumes_with_range() -> Result<()> {
    let l = lab()?;
    let url = format!("https://127.0.0.1:{}/drop/blob.bin", l.server.port);
    let mut o = opts_with_ca(&l.pki);
    o.sha256 = Some(Sha256Pin::parse(&l.sha)?);
    let f = fetch(&url, &o, &l.staging)?;
    ensure!(f.sha256_hex() == l.sha && f.len == 3 << 20);
    let log = std::fs::read_to_string(&l.server.log)?;
    ensure!(
        log.contains("\"GET /drop/blob.bin HTTP/1.1\" 200")
            && log.contains("\"GET /drop/blob.bin HTTP/1.1\" 206"),
        "expected a 200 cut short then a 206 resume:\n{log}"
    );
    // A server that ignores Range: the download restarts from zero and still hashes right.
    let url = format!("https://127.0.0.1:{}/norange/blob.bin", l.server.port);
    let f = fetch(&url, &o, &l.staging)?;
    ensure!(f.sha256_hex() == l.sha);
    Ok(())
}

#[test]
fn plain_http_needs_a_pin() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("blob.bin"), blob(100_000, 3))?;
    let sha = sha256_file(&tmp.path().join("blob.bin"))?;
    let srv = http_server(tmp.path(), None, &tmp.path().join("log"))?;
    let url = format!("http://127.0.0.1:{}/files/blob.bin", srv.port);
    let staging = tempfile::tempdir()?;
    let e = fetch(&url, &SourceOptions::default(), staging.path()).expect_err("refused");
    ensure!(matches!(e, SourceError::PlainHttpNeedsPin { .. }), "{e:?}");
    let o = SourceOptions {
        sha256: Some(Sha256Pin::parse(&sha)?),
        ..SourceOptions::default()
    };
    let f = fetch(&url, &o, staging.path())?;
    ensure!(f.sha256_hex() == sha);
    Ok(())
}

#[test]
fn redirect_loop_is_bounded() -> Result<()> {
    let l = lab()?;
    let url = format!("https://127.0.0.1:{}/loop", l.server.port);
    let e = fetch(&url, &opts_with_ca(&l.pki), &l.staging).expect_err("loop");
    ensure!(
        matches!(e, SourceError::TooManyRedirects { max: 5, .. }),
        "{e:?}"
    );
    let log = std::fs::read_to_string(&l.server.log)?;
    let hits = log.matches("GET /loop").count();
    ensure!(
        (5..=7).contains(&hits),
        "{hits} requests for a 5-redirect limit"
    );
    ensure!(entries(&l.staging)?.is_empty());
    Ok(())
}

#[test]
fn connection_refused_is_clear() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let port = common::free_port()?;
    let url = format!("https://127.0.0.1:{port}/x.db");
    let e = fetch(&url, &SourceOptions::default(), tmp.path()).expect_err("refused");
    ensure!(matches!(e, SourceError::Connect { .. }), "{e:?}");
    Ok(())
}

/// fetch → verify → restore of a real `etcdctl snapshot save` file served over https.
#[test]
fn https_snapshot_restores() -> Result<()> {
    let Some(bin) = common::etcd_or_skip("https_snapshot_restores")? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let snap = common::real_snapshot(&bin, tmp.path(), 20, 2 << 20)?;
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::copy(&snap, www.join("etcd.db"))?;
    let p = pki(tmp.path())?;
    let srv = http_server(&www, Some(&p), &tmp.path().join("server.log"))?;
    let url = format!("https://127.0.0.1:{}/drop/etcd.db", srv.port);
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host)?;
    let f = fetch(&url, &opts_with_ca(&p), &host)?;
    ensure!(f.sha256_hex() == sha256_file(&snap)?);
    let mut ro = RestoreOptions::new(&f.path);
    ro.data_dir = host.join("etcd");
    ro.name = "m1".into();
    ro.initial_cluster = "m1=https://10.0.0.9:2380".into();
    ro.initial_advertise_peer_urls = vec!["https://10.0.0.9:2380".into()];
    let r = snapshot::restore(&ro, &mut Progress::hidden()).context("restore")?;
    ensure!(r.members.len() == 1 && r.after.total_key >= 20, "{r:?}");
    drop(f);
    ensure!(
        entries(&host)? == vec!["etcd".to_string()],
        "{:?}",
        entries(&host)?
    );
    Ok(())
}

/// A fleet plan fetched by MAC, and the report posted to a callback (retried after a 503).
#[test]
fn plan_by_mac_and_callback() -> Result<()> {
    use rescue_init::source::fleet::{expand, fetch_document, post_report, MachineVars};
    let l = lab()?;
    std::fs::write(
        l.root.join("52-54-00-12-34-56.toml"),
        "source = \"s3://snaps/latest\"\n",
    )?;
    let vars = MachineVars {
        mac: Some("52:54:00:12:34:56".into()),
        ..MachineVars::default()
    };
    let url = expand(
        &format!(
            "https://127.0.0.1:{}/files/${{mac-dashes}}.toml",
            l.server.port
        ),
        &vars,
    )?;
    let o = opts_with_ca(&l.pki);
    let plan = fetch_document(&url, &o)?;
    ensure!(plan == b"source = \"s3://snaps/latest\"\n");
    // Plain http plans are fetched (as the PXE boot chain itself is); a closed port is a
    // clear connection error.
    let e = fetch_document("http://127.0.0.1:1/p.toml", &o).expect_err("closed");
    ensure!(matches!(e, SourceError::Connect { .. }), "{e:?}");

    let report = r#"{"outcome":"success","member":"m1"}"#;
    let status = post_report(
        &format!("https://127.0.0.1:{}/flaky", l.server.port),
        report,
        &o,
    )?;
    ensure!(status == 204);
    ensure!(std::fs::read_to_string(l.root.join("callback-0.json"))? == report);
    let e = post_report(
        &format!("https://127.0.0.1:{}/nope", l.server.port),
        report,
        &o,
    )
    .expect_err("404");
    ensure!(
        matches!(e, SourceError::HttpStatus { status: 404, .. }),
        "{e:?}"
    );
    Ok(())
}

/// Errors never show a presigned URL's query string or a password, even from the HTTP library.
#[test]
fn errors_never_show_query_or_password() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let port = common::free_port()?;
    let url = format!("https://user:pa55word@127.0.0.1:{port}/snap.db?X-Amz-Signature=deadbeef");
    let e = fetch(&url, &SourceOptions::default(), tmp.path()).expect_err("refused");
    let mut shown = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(c) = cur {
        shown.push_str(&format!(": {c}"));
        cur = c.source();
    }
    ensure!(
        !shown.contains("deadbeef") && !shown.contains("pa55word"),
        "{shown}"
    );
    ensure!(
        shown.contains(&format!("127.0.0.1:{port}/snap.db")),
        "{shown}"
    );
    Ok(())
}

/// `rescue-init snapshot restore https://…` (the binary): the fetch checks the snapshot's
/// sha256 trailer in its own pass, so a good snapshot is restored without a second read, and
/// one whose bbolt bytes were changed in transit or at rest is refused by that same check
/// (nothing left behind).
#[test]
fn cli_restore_over_https_checks_the_trailer_in_the_fetch() -> Result<()> {
    let Some(bin) = common::etcd_or_skip("cli_restore_over_https")? else {
        return Ok(());
    };
    let rescue = rescue_tests::restorer::rescue_init_bin().map_err(anyhow::Error::msg)?;
    let tmp = tempfile::tempdir()?;
    let snap = common::real_snapshot(&bin, tmp.path(), 20, 1 << 20)?;
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www)?;
    let good = std::fs::read(&snap)?;
    let mut bad = good.clone();
    let mid = (bad.len() - 32) / 2;
    bad[mid] ^= 0x40;
    std::fs::write(www.join("good.db"), &good)?;
    std::fs::write(www.join("bad.db"), &bad)?;
    let p = pki(tmp.path())?;
    let srv = http_server(&www, Some(&p), &tmp.path().join("server.log"))?;
    let restore = |name: &str, dir: &str| {
        std::process::Command::new(&rescue)
            .args(["snapshot", "restore"])
            .arg(format!("https://127.0.0.1:{}/files/{name}", srv.port))
            .arg("--cacert")
            .arg(&p.ca)
            .arg("--data-dir")
            .arg(tmp.path().join(dir).join("etcd"))
            .args([
                "--name",
                "m1",
                "--initial-cluster",
                "m1=http://localhost:2380",
                "-q",
            ])
            .output()
    };
    let ok = restore("good.db", "a")?;
    ensure!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let st = snapshot::status(
        &tmp.path().join("a/etcd/member/snap/db"),
        true,
        &mut Progress::hidden(),
    )?;
    ensure!(st.total_key >= 20, "{st:?}");
    let refused = restore("bad.db", "b")?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(!refused.status.success(), "a corrupt snapshot was restored");
    ensure!(stderr.contains("sha256"), "{stderr}");
    ensure!(
        entries(&tmp.path().join("b"))
            .unwrap_or_default()
            .is_empty(),
        "{:?}",
        entries(&tmp.path().join("b"))
    );
    Ok(())
}
