//! etcd:// source against a real etcd 3.5 with client-certificate TLS on 127.0.0.1.
use anyhow::{ensure, Context, Result};
use rescue_init::progress::Progress;
use rescue_init::snapshot::{self, HashCheck, RestoreOptions};
use rescue_init::source::{self, SourceError, SourceOptions};

use crate::common::{self, entries, pki, Etcd};

fn tls_opts(p: &common::Pki) -> SourceOptions {
    let mut o = SourceOptions::default();
    o.tls.ca = Some(p.ca.clone().into());
    o.tls.cert = Some(p.client_cert.clone().into());
    o.tls.key = Some(p.client_key.clone().into());
    o.connect_timeout = std::time::Duration::from_secs(3);
    o
}

#[test]
fn etcd_member_snapshot_matches_etcdctl_and_restores() -> Result<()> {
    let Some(bin) = common::etcd_or_skip("etcd_member_snapshot")? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let e = Etcd::start(&bin, &tmp.path().join("m"), Some(&p))?;
    e.fill(30, 1 << 20)?;
    let dead = common::free_port()?;
    // A dead member first: the source moves on to the next.
    let url = format!("etcd://127.0.0.1:{dead},127.0.0.1:{}", e.server.port);
    let src = source::open(&url, &tls_opts(&p))?;
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host)?;
    let f = source::fetch(src.as_ref(), &host, None, &mut Progress::hidden())?;

    // Same status as the file etcdctl writes (the same database and a sha256 trailer).
    let theirs = tmp.path().join("etcdctl.db");
    e.ctl(&["snapshot", "save", &theirs.display().to_string()])?;
    let ours = snapshot::status(&f.path, false, &mut Progress::hidden())?;
    let want = snapshot::status(&theirs, false, &mut Progress::hidden())?;
    ensure!(
        ours.hash_trailer == HashCheck::Verified,
        "{:?}",
        ours.hash_trailer
    );
    ensure!(
        (ours.hash, ours.revision, ours.total_key) == (want.hash, want.revision, want.total_key),
        "ours {ours:?}\netcdctl {want:?}"
    );
    ensure!(f.len == std::fs::metadata(&theirs)?.len() && f.len % 512 == 32);

    let mut ro = RestoreOptions::new(&f.path);
    ro.data_dir = host.join("etcd");
    ro.name = "new".into();
    ro.initial_cluster = "new=https://10.0.0.5:2380".into();
    ro.initial_advertise_peer_urls = vec!["https://10.0.0.5:2380".into()];
    let r = snapshot::restore(&ro, &mut Progress::hidden()).context("restore")?;
    ensure!(
        r.members.len() == 1 && r.after.total_key == want.total_key,
        "{r:?}"
    );
    Ok(())
}

#[test]
fn no_member_reachable_lists_each_endpoint() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let (a, b) = (common::free_port()?, common::free_port()?);
    let url = format!("etcd://127.0.0.1:{a},127.0.0.1:{b}");
    let src = source::open(&url, &tls_opts(&p))?;
    let e = source::fetch(src.as_ref(), tmp.path(), None, &mut Progress::hidden())
        .expect_err("nothing listens");
    let SourceError::EtcdAllFailed { tried, .. } = &e else {
        anyhow::bail!("unexpected {e:?}");
    };
    ensure!(tried.len() == 2, "{tried:?}");
    let shown = e.to_string();
    ensure!(
        shown.contains(&format!("127.0.0.1:{a}")) && shown.contains(&format!("127.0.0.1:{b}")),
        "{shown}"
    );
    ensure!(
        !entries(tmp.path())?
            .iter()
            .any(|n| n.starts_with(".rescue-fetch")),
        "staging removed"
    );
    // A client certificate without the CA to check the members with: the source says what
    // to pass. (No TLS material at all means an etcd without TLS: plain http.)
    let mut half = SourceOptions::default();
    half.tls.cert = Some(p.client_cert.clone().into());
    half.tls.key = Some(p.client_key.clone().into());
    let e = source::open(&url, &half).err().context("needs tls")?;
    ensure!(matches!(e, SourceError::EtcdNeedsTls { .. }), "{e:?}");
    Ok(())
}

#[test]
fn etcd_with_an_untrusted_client_fails_clearly() -> Result<()> {
    let Some(bin) = common::etcd_or_skip("etcd_untrusted")? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let e = Etcd::start(&bin, &tmp.path().join("m"), Some(&p))?;
    let mut o = tls_opts(&p);
    // Trusting another CA: the server's certificate is refused.
    o.tls.ca = Some(p.other_ca.clone().into());
    let url = format!("etcd://127.0.0.1:{}", e.server.port);
    let src = source::open(&url, &o)?;
    let err = source::fetch(src.as_ref(), tmp.path(), None, &mut Progress::hidden())
        .expect_err("untrusted");
    ensure!(matches!(err, SourceError::EtcdAllFailed { .. }), "{err:?}");
    Ok(())
}

/// The host loses its etcd CA and its apiserver-etcd-client certificate.
fn remove_host_etcd_client_files(root: &rescue_tests::hostroot::HostRoot) -> Result<()> {
    let kube = root.join("etc/kubernetes");
    std::fs::remove_dir_all(kube.join("pki/etcd"))?;
    std::fs::remove_file(kube.join("pki/apiserver-etcd-client.crt"))?;
    Ok(())
}

/// How a recovery from a member gets its TLS material.
enum Tls {
    /// Paths in a plan file.
    PlanPaths,
    /// The PEM text inline in a plan file.
    PlanInline,
    /// `--cacert`, `--cert`, `--key`.
    Flags,
    /// Nothing given: the host's kube-apiserver etcd client files (kubeadm).
    Host,
    /// Nothing given and none on the host: a Deckhouse `kube-backup.tar.gz` on the host holds
    /// them.
    Backup,
    /// A member without TLS, and no TLS material anywhere: plain http.
    Plain,
}

/// `recover` from `etcd://` members (the first one dead): the snapshot streamed from the
/// surviving member recovers a host, and etcd started from the rewritten manifest serves the
/// member's keys. Returns the report.
fn recover_from_member(tls: Tls) -> Result<()> {
    use rescue_tests::hostroot::{self, HostRoot, Node};
    use rescue_tests::recovery::{self, MemberFlags};
    let Some(bin) = common::etcd_or_skip("recover_from_member")? else {
        return Ok(());
    };
    let Some(tools) = rescue_tests::Tools::require() else {
        return Ok(());
    };
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let p = pki(tmp.path())?;
    let member_tls = (!matches!(tls, Tls::Plain)).then_some(&p);
    let e = Etcd::start(&bin, &tmp.path().join("m"), member_tls)?;
    e.fill(20, 64 << 10)?;
    let want_keys = e.ctl(&["get", "", "--from-key", "--keys-only"])?;
    let dead = common::free_port()?;
    let url = format!("etcd://127.0.0.1:{dead},127.0.0.1:{}", e.server.port);
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new()?;
    hostroot::host_kubernetes(&root, &node)?;
    recovery::stale_data_dir(&root);
    let plan = tmp.path().join("plan.yaml");
    let read = |f: &std::path::Path| std::fs::read_to_string(f);
    let indent = |t: String| t.trim_end().replace('\n', "\n  ");
    let mut args: Vec<String> = vec!["--source".into(), url.clone()];
    let real = [
        ("pki/etcd/ca.crt", &p.ca),
        ("pki/apiserver-etcd-client.crt", &p.client_cert),
        ("pki/apiserver-etcd-client.key", &p.client_key),
    ];
    match tls {
        Tls::PlanPaths => std::fs::write(
            &plan,
            format!(
                "etcd_cacert: {}\netcd_cert: {}\netcd_key: {}\n",
                p.ca.display(),
                p.client_cert.display(),
                p.client_key.display()
            ),
        )?,
        Tls::PlanInline => std::fs::write(
            &plan,
            format!(
                "etcd_cacert: |\n  {}\netcd_cert: |\n  {}\netcd_key: |\n  {}\n",
                indent(read(&p.ca)?),
                indent(read(&p.client_cert)?),
                indent(read(&p.client_key)?)
            ),
        )?,
        Tls::Flags => {
            std::fs::write(&plan, "")?;
            for (flag, f) in [
                ("--cacert", &p.ca),
                ("--cert", &p.client_cert),
                ("--key", &p.client_key),
            ] {
                args.extend([flag.to_string(), f.to_string_lossy().into_owned()]);
            }
        }
        Tls::Host => {
            std::fs::write(&plan, "")?;
            for (rel, f) in real {
                std::fs::copy(f, root.join("etc/kubernetes").join(rel))?;
            }
        }
        Tls::Plain => {
            std::fs::write(&plan, "")?;
            remove_host_etcd_client_files(&root)?;
        }
        Tls::Backup => {
            std::fs::write(&plan, "")?;
            // The host has lost its etcd client files; a backup of /etc/kubernetes has them.
            remove_host_etcd_client_files(&root)?;
            let scratch = HostRoot::new()?;
            let tree = scratch.join("kubernetes");
            hostroot::write_kubernetes_tree(&tree, &node)?;
            for (rel, f) in real {
                std::fs::copy(f, tree.join(rel))?;
            }
            let tgz = rescue_tests::tarw::tar_gz_dir(
                &tree,
                "./kubernetes",
                &[("./etcd-backup.snapshot", &src.snapshot)],
            )?;
            hostroot::write_file(&root.join("root/kube-backup.tar.gz"), &tgz, 0o600)?;
        }
    }
    args.extend(["--plan".into(), plan.to_string_lossy().into_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = recovery::recover_ok(root.path(), &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(stdout.contains("RESCUE RESULT: OK"), "{stdout}");
    ensure!(stdout.contains("fetched from etcd://"), "{stdout}");
    // The trailer was checked in the fetch's own pass: the file is not hashed again.
    ensure!(
        stdout.contains("sha256 trailer checked while fetching"),
        "{stdout}"
    );
    let report_dir = std::fs::read_dir(root.join("var/log/rescue-init"))?
        .next()
        .context("report dir")??
        .path();
    let report = std::fs::read_to_string(report_dir.join("report.json"))?;
    let key_body: String = read(&p.client_key)?
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    ensure!(
        !report.contains(&key_body),
        "the client key reached the report"
    );
    let r: serde_json::Value = serde_json::from_str(&report)?;
    let from = r["fetch"]["clientTls"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match tls {
        Tls::Host => ensure!(from.contains("kube-apiserver.yaml"), "{from:?}"),
        Tls::Backup => ensure!(from.contains("kube-backup.tar.gz"), "{from:?}"),
        _ => ensure!(from.is_empty(), "{from:?}"),
    }
    recovery::check_stale_moved_aside(&root);
    let flags = MemberFlags::from(
        root.path(),
        &recovery::parse_flags(&root.join("etc/kubernetes/manifests/etcd.yaml")),
    );
    let server = flags.start(&tools);
    let ctl = server.ctl();
    let (_, members) = ctl.members();
    ensure!(
        members.len() == 1 && members[0].name == node.name,
        "{members:?}"
    );
    let got: Vec<String> = ctl
        .kvs()
        .iter()
        .map(|k| String::from_utf8_lossy(&k.key).into_owned())
        .collect();
    let want: Vec<String> = want_keys
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    ensure!(
        got == want,
        "keys after recovery {got:?}\nkeys of the member {want:?}"
    );
    ensure!(ctl.revision() > 1_000_000_000, "revision bumped");
    Ok(())
}

#[test]
fn recover_from_a_member_with_tls_paths_in_the_plan() -> Result<()> {
    recover_from_member(Tls::PlanPaths)
}

#[test]
fn recover_from_a_member_with_inline_pem_in_the_plan() -> Result<()> {
    recover_from_member(Tls::PlanInline)
}

#[test]
fn recover_from_a_member_with_tls_flags() -> Result<()> {
    recover_from_member(Tls::Flags)
}

#[test]
fn recover_from_a_member_with_the_hosts_client_certificate() -> Result<()> {
    recover_from_member(Tls::Host)
}

#[test]
fn recover_from_a_member_with_the_client_certificate_of_a_backup() -> Result<()> {
    recover_from_member(Tls::Backup)
}

#[test]
fn recover_from_a_member_without_tls() -> Result<()> {
    recover_from_member(Tls::Plain)
}
