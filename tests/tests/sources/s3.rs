//! s3:// source against a real Garage server (it checks SigV4 signatures) on 127.0.0.1.
//! Garage comes from `scripts/install-garage.sh` (cached outside the repository); the tests
//! skip without it unless `RESCUE_REQUIRE_GARAGE=1`.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rescue_init::progress::Progress;
use rescue_init::source::{self, S3Credentials, Secret, Sha256Pin, SourceError, SourceOptions};

use crate::common::{self, blob, entries, free_port, run, sha256_file, wait_port, Server};

fn garage_bin() -> Result<Option<PathBuf>> {
    let candidates = [
        std::env::var("RESCUE_GARAGE").ok().map(PathBuf::from),
        std::env::var("XDG_CACHE_HOME")
            .ok()
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var("HOME")
                    .ok()
                    .map(|h| Path::new(&h).join(".cache"))
            })
            .map(|c| c.join("rescue-init/tools/garage")),
    ];
    if let Some(p) = candidates.into_iter().flatten().find(|p| p.exists()) {
        return Ok(Some(p));
    }
    if common::required("RESCUE_REQUIRE_GARAGE") {
        bail!("garage not found (run scripts/install-garage.sh) and RESCUE_REQUIRE_GARAGE=1");
    }
    Ok(None)
}

struct Garage {
    _server: Server,
    bin: PathBuf,
    config: PathBuf,
    endpoint: String,
    key_id: String,
    secret: String,
}

impl Garage {
    fn cli(&self, args: &[&str]) -> Result<String> {
        run(Command::new(&self.bin)
            .arg("-c")
            .arg(&self.config)
            .args(args))
    }

    fn start(bin: &Path, dir: &Path) -> Result<Garage> {
        let (s3, rpc, admin) = (free_port()?, free_port()?, free_port()?);
        let config = dir.join("garage.toml");
        let secret: String = common::blob(32, 99)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "test-admin-token"
"#,
                meta = dir.join("meta").display(),
                data = dir.join("data").display(),
            ),
        )?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("garage.log"))?)
            .spawn()
            .context("starting garage")?;
        let server = Server {
            child,
            port: s3,
            log: dir.join("garage.log"),
        };
        wait_port(rpc, Duration::from_secs(30))?;
        let mut g = Garage {
            _server: server,
            bin: bin.to_path_buf(),
            config,
            endpoint: format!("http://127.0.0.1:{s3}"),
            key_id: String::new(),
            secret: String::new(),
        };
        // Single-node layout.
        let start = Instant::now();
        let node = loop {
            match g.cli(&["node", "id", "-q"]) {
                Ok(id) => break id.trim().split('@').next().unwrap_or_default().to_string(),
                Err(e) if start.elapsed() > Duration::from_secs(30) => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        };
        g.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        g.cli(&["layout", "apply", "--version", "1"])?;
        let out = g.cli(&["key", "create", "rescue-test"])?;
        let field = |name: &str| -> Result<String> {
            out.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .with_context(|| format!("no {name} in:\n{out}"))
        };
        g.key_id = field("Key ID:")?;
        g.secret = field("Secret key:")?;
        g.cli(&["bucket", "create", "snaps"])?;
        g.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            "snaps",
            "--key",
            "rescue-test",
        ])?;
        wait_port(s3, Duration::from_secs(10))?;
        Ok(g)
    }

    /// A signed PUT with curl's own SigV4 implementation (independent of ours).
    fn put(&self, key: &str, file: &Path) -> Result<()> {
        let url = format!("{}/snaps/{key}", self.endpoint);
        let sha = sha256_file(file)?;
        run(Command::new("curl")
            .args([
                "-sS",
                "--fail-with-body",
                "--aws-sigv4",
                "aws:amz:garage:s3",
                "--user",
            ])
            .arg(format!("{}:{}", self.key_id, self.secret))
            .arg("-H")
            .arg(format!("x-amz-content-sha256: {sha}"))
            .arg("-T")
            .arg(file)
            .arg(&url))
        .with_context(|| format!("uploading {key}"))?;
        Ok(())
    }

    fn opts(&self) -> SourceOptions {
        let mut o = SourceOptions {
            insecure_http: true,
            ..SourceOptions::default()
        };
        o.s3.endpoint = Some(self.endpoint.clone());
        o.s3.region = Some("garage".into());
        o.s3.credentials = Some(S3Credentials {
            access_key_id: self.key_id.clone(),
            secret_access_key: Secret::new(self.secret.clone()),
            session_token: None,
        });
        o
    }
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

/// One Garage for all cases (starting it and applying a layout takes seconds).
#[test]
fn s3_against_garage() -> Result<()> {
    let Some(bin) = garage_bin()? else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipping s3_against_garage: garage not found (scripts/install-garage.sh)");
        }
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let g = Garage::start(&bin, tmp.path())?;
    let files = tmp.path().join("files");
    std::fs::create_dir_all(&files)?;
    // Upload order differs from name order: `latest` must follow the names.
    let names = [
        "etcd-backup-2024-05-03T10-00-00.db",
        "etcd-backup-2024-05-01T10-00-00.db",
        "etcd-backup-2024-05-02T10-00-00.db",
    ];
    let mut shas = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let f = files.join(n);
        std::fs::write(&f, blob((1 << 20) + i * 4096, i as u64 + 1))?;
        shas.push(sha256_file(&f)?);
        g.put(&format!("cluster-a/{n}"), &f)?;
    }
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&staging)?;

    // A named object, pinned.
    let mut o = g.opts();
    o.sha256 = Some(Sha256Pin::parse(&shas[1])?);
    let got = fetch(&format!("s3://snaps/cluster-a/{}", names[1]), &o, &staging)?;
    ensure!(got.sha256_hex() == shas[1]);
    drop(got);

    // The newest by name.
    let got = fetch("s3://snaps/cluster-a/latest", &g.opts(), &staging)?;
    ensure!(
        got.sha256_hex() == shas[0],
        "latest picked {}",
        got.sha256_hex()
    );
    drop(got);

    // Wrong secret: 403 with a clear message naming the fix, nothing left.
    let mut bad = g.opts();
    if let Some(c) = bad.s3.credentials.as_mut() {
        c.secret_access_key = Secret::new("0".repeat(64));
    }
    let e = fetch("s3://snaps/cluster-a/latest", &bad, &staging).expect_err("403");
    ensure!(matches!(e, SourceError::S3Denied { .. }), "{e:?}");
    ensure!(!e.to_string().contains(&g.secret), "{e}");
    let e = fetch(
        &format!("s3://snaps/cluster-a/{}", names[0]),
        &bad,
        &staging,
    )
    .expect_err("403");
    ensure!(matches!(e, SourceError::S3Denied { .. }), "{e:?}");

    // Missing bucket and missing key.
    let e = fetch("s3://nosuchbucket/cluster-a/latest", &g.opts(), &staging).expect_err("bucket");
    ensure!(matches!(e, SourceError::S3NoSuchBucket { .. }), "{e:?}");
    ensure!(e.to_string().contains("nosuchbucket"), "{e}");
    let e = fetch("s3://snaps/cluster-a/nope.db", &g.opts(), &staging).expect_err("key");
    ensure!(matches!(e, SourceError::S3NoSuchKey { .. }), "{e:?}");
    let e = fetch("s3://snaps/empty-prefix/latest", &g.opts(), &staging).expect_err("empty");
    ensure!(matches!(e, SourceError::S3Empty { .. }), "{e:?}");
    ensure!(entries(&staging)?.is_empty(), "{:?}", entries(&staging)?);
    recover_a_host_from_s3(&g, tmp.path())?;
    recover_a_bare_host_from_an_s3_archive_with_flags(&g, tmp.path())?;
    recover_from_a_presigned_url(&g, tmp.path())?;
    recover_a_cray_host_from_its_s3_backups(&g)?;
    Ok(())
}

/// `recover --plan` naming `s3://…/latest` (keys, endpoint and pin in the plan, as a fleet
/// would): the newest object is fetched, detected, restored; etcd starts from the rewritten
/// manifest with every key of the source.
fn recover_a_host_from_s3(g: &Garage, dir: &Path) -> Result<()> {
    use rescue_tests::hostroot::{self, HostRoot, Node};
    use rescue_tests::recovery;
    let Some(tools) = rescue_tests::Tools::require() else {
        return Ok(());
    };
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let snap = dir.join("etcd-backup-2024-05-04T10-00-00.db");
    std::fs::write(&snap, &src.snapshot)?;
    let sha = sha256_file(&snap)?;
    g.put("cluster-b/etcd-backup-2024-05-04T10-00-00.db", &snap)?;
    // An older, different object that `latest` must not pick.
    let old = dir.join("etcd-backup-2024-05-01T10-00-00.db");
    std::fs::write(&old, blob(1 << 20, 5))?;
    g.put("cluster-b/etcd-backup-2024-05-01T10-00-00.db", &old)?;
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new()?;
    hostroot::host_kubernetes(&root, &node)?;
    recovery::stale_data_dir(&root);
    let plan = dir.join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "source: s3://snaps/cluster-b/latest\nsha256: {sha}\ns3_endpoint: {}\ns3_region: garage\ns3_access_key_id: {}\ns3_secret_access_key: {}\n",
            g.endpoint, g.key_id, g.secret
        ),
    )?;
    let out = recovery::recover_ok(root.path(), &["--plan", &plan.to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        stdout.contains("fetched from s3://snaps/cluster-b/latest"),
        "{stdout}"
    );
    ensure!(!stdout.contains(&g.secret), "the secret reached the output");
    ensure!(
        !recovery::report_json(&root).to_string().contains(&g.secret),
        "the secret reached the report"
    );
    recovery::check_recovered_kubeadm(&tools, &root, src, &node);
    Ok(())
}

/// `recover --source s3://…/latest --s3-endpoint … --s3-region …` with the keys in the
/// environment (never in argv): the newest object is a Deckhouse `kube-backup.tar.gz`, detected
/// after the fetch like a local one, and it recovers a host that has no `/etc/kubernetes`. A
/// wrong secret is a clear 403 and changes nothing.
fn recover_a_bare_host_from_an_s3_archive_with_flags(g: &Garage, dir: &Path) -> Result<()> {
    use rescue_tests::hostroot::{self, HostRoot, Node};
    use rescue_tests::recovery;
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
    g.put("cluster-c/kube-backup-2024-06-01T02-00-00.tar.gz", &archive)?;
    let old = dir.join("old.tar.gz");
    std::fs::write(&old, blob(64 << 10, 9))?;
    g.put("cluster-c/kube-backup-2024-05-31T02-00-00.tar.gz", &old)?;

    let root = HostRoot::new()?;
    recovery::stale_data_dir(&root);
    let args = [
        "--source",
        "s3://snaps/cluster-c/latest",
        "--s3-endpoint",
        &g.endpoint,
        "--s3-region",
        "garage",
        "--sha256",
        &sha,
    ];
    // A wrong secret: 403, one error line naming it, the host unchanged.
    let before = recovery::picture(root.path());
    let out = recovery::recover_with_env(
        root.path(),
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", g.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "{stderr}");
    ensure!(stderr.contains("S3 refused"), "{stderr}");
    recovery::assert_same_tree(&before, &recovery::picture(root.path()), &stderr);

    let out = recovery::recover_with_env(
        root.path(),
        &args,
        &[
            ("AWS_ACCESS_KEY_ID", g.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", g.secret.as_str()),
        ],
    );
    let shown = recovery::output_text(&out);
    ensure!(out.status.success(), "{shown}");
    ensure!(shown.contains("deckhouse kube-backup"), "{shown}");
    ensure!(!shown.contains(&g.secret), "the secret reached the output");
    ensure!(root.join("etc/kubernetes/admin.conf").is_file());
    recovery::check_recovered_kubeadm(&tools, &root, src, &node);
    Ok(())
}

/// A presigned GET URL (signed by `s3_presign.py`, Python's hmac, not our signer): rescue-init
/// needs no keys, Garage checks the signature, the host is recovered, and the signature never
/// shows in the output or the report. A tampered signature is a clear 403, nothing changed.
fn recover_from_a_presigned_url(g: &Garage, dir: &Path) -> Result<()> {
    use rescue_tests::hostroot::{self, HostRoot, Node};
    use rescue_tests::recovery;
    let Some(tools) = rescue_tests::Tools::require() else {
        return Ok(());
    };
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let snap = dir.join("presigned.db");
    std::fs::write(&snap, &src.snapshot)?;
    let sha = sha256_file(&snap)?;
    g.put("cluster-d/etcd-20240601.db", &snap)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sources/s3_presign.py");
    let url = run(Command::new("python3").arg(script).args([
        &g.endpoint,
        "snaps",
        "cluster-d/etcd-20240601.db",
        "garage",
        &g.key_id,
        &g.secret,
    ]))?
    .trim()
    .to_owned();
    let signature = url
        .rsplit_once("X-Amz-Signature=")
        .map(|(_, s)| s.to_owned())
        .context("signature")?;
    let node = Node::loopback("master-0", "127.0.0.1");
    let root = HostRoot::new()?;
    hostroot::host_kubernetes(&root, &node)?;
    recovery::stale_data_dir(&root);

    let mut bad = url.clone();
    let last = bad.pop().context("url")?;
    bad.push(if last == '0' { '1' } else { '0' });
    let stderr =
        recovery::assert_refused(root.path(), &["--source", &bad, "--sha256", &sha], "403");
    ensure!(
        !stderr.contains(&signature[..16]),
        "the signature reached the output"
    );

    let out = recovery::recover_ok(root.path(), &["--source", &url, "--sha256", &sha]);
    let shown = recovery::output_text(&out);
    ensure!(
        !shown.contains(&signature),
        "the signature reached the output"
    );
    ensure!(
        !recovery::report_json(&root)
            .to_string()
            .contains(&signature),
        "the signature reached the report"
    );
    recovery::check_recovered_kubeadm(&tools, &root, src, &node);
    Ok(())
}

/// Cray CSM pushes `etcd-backup-<date>.tar.gz` (holding `<same name>/etcd-dump.bin`) to S3:
/// a CSM master whose etcd runs as a systemd unit configured from kubeadmcfg.yaml recovers
/// from `s3://…/latest`; etcd starts with the rewritten configuration.
fn recover_a_cray_host_from_its_s3_backups(g: &Garage) -> Result<()> {
    use rescue_tests::hostroot::{self, HostRoot, Node};
    use rescue_tests::recovery;
    let Some(tools) = rescue_tests::Tools::require() else {
        return Ok(());
    };
    let Some(src) = recovery::source() else {
        return Ok(());
    };
    let node = Node::loopback("ncn-m001", "127.0.0.1");
    let root = HostRoot::new()?;
    recovery::stale_data_dir(&root);
    // The host's configuration as CSM has it; the archive goes to S3, not on the host.
    let archive = hostroot::cray(
        &root,
        &src.snapshot,
        "tmp/outgoing",
        "2024-07-01-10-00-05",
        &node,
    )?;
    g.put(
        "bare-metal/etcd-backup-2024-07-01-10-00-05.tar.gz",
        &archive,
    )?;
    let scratch = HostRoot::new()?;
    let older = hostroot::cray(
        &scratch,
        &src.snapshot[..src.snapshot.len() / 2],
        "x",
        "2024-06-30-10-00-05",
        &node,
    )?;
    g.put("bare-metal/etcd-backup-2024-06-30-10-00-05.tar.gz", &older)?;
    std::fs::remove_dir_all(root.join("tmp/outgoing"))?;
    let out = recovery::recover_with_env(
        root.path(),
        &[
            "--source",
            "s3://snaps/bare-metal/latest",
            "--s3-endpoint",
            &g.endpoint,
            "--s3-region",
            "garage",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", g.key_id.as_str()),
            ("AWS_SECRET_ACCESS_KEY", g.secret.as_str()),
        ],
    );
    let shown = recovery::output_text(&out);
    ensure!(out.status.success(), "{shown}");
    ensure!(shown.contains("cray csm"), "{shown}");
    // Garage speaks plain http and no pin was given: allowed (the endpoint is the operator's
    // choice), with a warning that only the snapshot's trailer vouches for the bytes.
    ensure!(shown.contains("no sha256 pin"), "{shown}");
    recovery::check_recovered_host(&tools, &root, src, &node, "etc/kubernetes/kubeadmcfg.yaml");
    Ok(())
}
