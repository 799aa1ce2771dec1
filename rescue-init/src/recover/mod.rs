//! `recover --root DIR`: the whole recovery of a control-plane host, the same code PID 1 runs
//! after mounting the host disk.
//!
//! discover (read-only) → stage and verify (writes only to staging directories rescue-init
//! creates, removed on failure) → plan the host changes (pure, from what was staged) →
//! validate → apply with rollback ([`crate::exec`]) → report.
mod boot;
mod stage;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::{Config, Location as SourceLocation};
use crate::discover::bbolt::HashCheck;
use crate::discover::client_tls::{self, ClientTls};
use crate::discover::{self, Candidate, KubeSource, Layout, Location, ScanOptions};
use crate::exec::{self, ExecError};
use crate::pem::Pem;
use crate::plan::{Plan, PlanError, RestoreEtcd, Step, Trailer};
use crate::progress::Progress;
use crate::report::{compact_timestamp, FetchInfo, FileDiff, Outcome, Report};
use crate::rewrite::{self, ConfigFile, FileKind, RewriteError, Target};
use crate::source;

pub use boot::{boot_hook, run_from_cmdline, BootRecoverError};
pub use stage::BackupStager;

/// Why a recovery could not be done. Each names the cause and what to do.
#[derive(Debug, Error)]
pub enum RecoverError {
    #[error("no host root given: pass --root DIR (the mounted host disk)")]
    NoRoot,
    #[error("cannot read the host root")]
    Discover(#[from] discover::DiscoverError),
    #[error("no usable etcd backup found under {root}{}; put a backup on the host or the boot media, or pass --source", candidates_note(.candidates))]
    NoBackup { root: PathBuf, candidates: String },
    #[error("--source {0}: {1}")]
    Source(String, String),
    #[error("the backup could not be fetched; the host was not changed")]
    Fetch(#[source] source::SourceError),
    #[error("--source {backup}: not a usable backup: {reasons}")]
    Unusable { backup: String, reasons: String },
    #[error("the etcd member settings are unknown (a host without etcd configuration, e.g. RKE, needs --name and --advertise-address)")]
    Settings(#[source] RewriteError),
    #[error("refusing an unsafe plan")]
    Plan(#[from] PlanError),
    #[error("the backup could not be staged or verified; the host was not changed")]
    Prepare(#[source] ExecError),
    #[error("recovery failed")]
    Apply(#[source] ExecError),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn candidates_note(c: &str) -> String {
    if c.trim().is_empty() {
        String::new()
    } else {
        format!(" (candidates: {})", c.trim().replace('\n', "; "))
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecoverError {
    let path = path.to_path_buf();
    move |source| RecoverError::Io { op, path, source }
}

/// Extra inputs of a recovery that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct RecoverOptions {
    /// More directories to search for backups (the boot media in the image).
    pub extra_dirs: Vec<PathBuf>,
    /// Recover again even if the host was already recovered from this backup.
    pub force: bool,
}

/// What a previous successful recovery left, to make a second run safe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Marker {
    source: String,
    size: u64,
    timestamp: i64,
    data_dir: PathBuf,
    member_id: String,
    report: PathBuf,
}

const MARKER: &str = "var/lib/rescue-init/last-recovery.json";

/// Recovers the host at `cfg.root`. Always returns a report; the error, if any, beside it.
pub fn recover(
    cfg: &Config,
    opts: &RecoverOptions,
    progress: &mut Progress,
) -> (Report, Result<(), RecoverError>) {
    let started = SystemTime::now();
    let root = cfg.root.clone().unwrap_or_default();
    let mut report = Report::new(&root, started);
    report.config = cfg.to_report_json();
    let result = run(cfg, opts, &root, started, progress, &mut report);
    // A fetched backup is a copy of our own: never left behind.
    let fetched = fetch_dir(&root, &ts_of(&report), cfg.dry_run);
    if fetched.exists() {
        let _ = fs::remove_dir_all(&fetched);
    }
    let outcome = match &result {
        Ok(o) => o.clone(),
        Err(e) => {
            let (rolled_back, rollback_failures) = match e {
                RecoverError::Apply(x) => (x.rolled_back.clone(), x.rollback_failures.clone()),
                _ => (Vec::new(), Vec::new()),
            };
            Outcome::Failed {
                error: crate::cli::chain(e),
                rolled_back,
                rollback_failures,
            }
        }
    };
    report.finish(started, outcome);
    (report, result.map(|_| ()))
}

fn run(
    cfg: &Config,
    opts: &RecoverOptions,
    root: &Path,
    started: SystemTime,
    progress: &mut Progress,
    report: &mut Report,
) -> Result<Outcome, RecoverError> {
    if cfg.root.is_none() {
        return Err(RecoverError::NoRoot);
    }
    let ts = compact_timestamp(started);

    // 1. Discover (read-only).
    let (candidate, mut ours) = choose_backup(cfg, opts, root, report, progress)?;
    let source_id = candidate.snapshot.to_string();
    report.source = Some(match &cfg.source {
        Some(SourceLocation::Url(u)) => {
            format!("{} fetched from {}", candidate.layout, u.redacted())
        }
        _ => format!("{} {source_id}", candidate.layout),
    });
    log::info!("backup: {} {source_id}", candidate.layout);
    if !opts.force {
        if let Some(reason) = already_recovered(root, &candidate) {
            return Ok(Outcome::AlreadyRecovered { reason });
        }
    }

    // 2. Stage and verify: writes only into staging directories we create (outside the root
    //    for a dry run), removed again unless the recovery goes ahead.
    let staging = Staging::new(root, &ts, cfg.dry_run)?;
    ours.dirs.push(staging.var.clone());
    let result = stage_and_plan(
        cfg,
        root,
        &ts,
        (&candidate, &ours),
        &staging,
        progress,
        report,
    );
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            staging.remove();
            return Err(e);
        }
    };
    report
        .plan
        .extend(plan.steps.iter().map(ToString::to_string));
    if cfg.dry_run {
        staging.remove();
        return Ok(Outcome::DryRun);
    }

    // 3. Apply, with rollback.
    match exec::apply(&plan, &BackupStager, &ts, progress) {
        Ok(steps) => report.steps.extend(steps),
        Err(e) => {
            // Rolled back: the staging directories hold only our own extraction of the
            // backup. Kept when the rollback itself failed, for the operator.
            if e.rollback_failures.is_empty() {
                staging.remove();
            }
            return Err(RecoverError::Apply(e));
        }
    }
    staging.remove();
    let member_id = report
        .steps
        .iter()
        .find_map(|s| s.restore.as_ref().map(|r| r.member_id.clone()))
        .unwrap_or_default();
    let data_dir = plan
        .steps
        .iter()
        .find_map(|s| match s {
            Step::RestoreEtcd(r) => Some(r.data_dir.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let marker = Marker {
        source: source_id,
        size: candidate.size,
        timestamp: candidate.timestamp,
        data_dir,
        member_id,
        report: report_dir(root, &ts).join("report.json"),
    };
    write_marker(root, &marker)?;
    Ok(Outcome::Recovered)
}

/// Where the report of a run goes on the host.
pub fn report_dir(root: &Path, ts: &str) -> PathBuf {
    root.join("var/log/rescue-init").join(ts)
}

/// Writes `report.json` and `summary.txt` into `dir`.
pub fn write_report(dir: &Path, report: &Report) -> Result<PathBuf, RecoverError> {
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let path = dir.join("report.json");
    let json = serde_json::to_vec_pretty(report).map_err(|e| RecoverError::Io {
        op: "encoding",
        path: path.clone(),
        source: e.into(),
    })?;
    exec::write_new(&path, &json, 0o600).map_err(|e| RecoverError::Io {
        op: "writing",
        path: path.clone(),
        source: std::io::Error::other(crate::cli::chain(&e)),
    })?;
    let summary = dir.join("summary.txt");
    let _ = exec::write_new(&summary, report.summary().as_bytes(), 0o644);
    Ok(path)
}

fn choose_backup(
    cfg: &Config,
    opts: &RecoverOptions,
    root: &Path,
    report: &mut Report,
    progress: &mut Progress,
) -> Result<(Candidate, Ours), RecoverError> {
    let mut scan = ScanOptions {
        extra_dirs: opts.extra_dirs.clone(),
        skip_live_data_dir: true,
        ..Default::default()
    };
    let mut ours = Ours::default();
    let wanted: Option<PathBuf> = match &cfg.source {
        None => None,
        Some(SourceLocation::Path(given)) => {
            // As given, else on the host disk, else on the boot media.
            let Some(p) = discover::locate(given, &pem_bases(root, opts)) else {
                return Err(RecoverError::Source(
                    given.display().to_string(),
                    "no such file or directory (looked as given, on the host disk and on the boot media)".into(),
                ));
            };
            scan.extra_dirs.push(if p.is_dir() {
                p.clone()
            } else {
                p.parent().unwrap_or(Path::new("/")).to_path_buf()
            });
            scan.check_all = true;
            scan.skip_live_data_dir = false;
            Some(p)
        }
        Some(SourceLocation::Url(u)) => {
            // Fetched (streamed and hashed in one pass) into a directory of our own on the
            // host disk (outside the root for a dry run), then detected like a local backup.
            let dir = fetch_dir(root, &ts_of(report), cfg.dry_run);
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
            let (fetched, info) = fetch_source(u.expose(), cfg, opts, root, &dir, progress)
                .inspect_err(|_| {
                    let _ = fs::remove_dir_all(&dir);
                })?;
            report.source = Some(u.redacted());
            if info.trailer_verified {
                scan.trailer_checked.push(fetched.clone());
            }
            ours.dirs.push(dir.clone());
            report.fetch = Some(info);
            scan.extra_dirs.push(dir.clone());
            scan.check_all = true;
            Some(fetched)
        }
    };
    let mut inv = discover::scan(root, &scan)?;
    if wanted.is_none() && inv.chosen().is_none() {
        // No backup: the host's own data dir is the last resort (the newest data, if intact).
        let retry = ScanOptions {
            skip_live_data_dir: false,
            ..scan.clone()
        };
        let second = discover::scan(root, &retry)?;
        if second.chosen().is_some() {
            log::warn!("no backup found; recovering from the host's own etcd data dir");
            inv = second;
        }
    }
    report.candidates = serde_json::to_value(&inv).unwrap_or_default();
    let chosen = match &wanted {
        None => inv.chosen().cloned(),
        Some(p) => inv
            .candidates
            .iter()
            .filter(|c| c.status != discover::Status::Rejected)
            .filter(|c| location_under(&c.snapshot, p))
            .max_by_key(|c| c.timestamp)
            .cloned(),
    };
    if let (None, Some(p)) = (&chosen, &wanted) {
        // The backup named by --source is not usable: say why, for it alone.
        let mut reasons: Vec<String> = inv
            .candidates
            .iter()
            .filter(|c| location_under(&c.snapshot, p))
            .map(|c| format!("{}: {}", c.layout, c.reason))
            .collect();
        if reasons.is_empty() {
            reasons.push("no etcd snapshot, database or backup archive in it".into());
        }
        let shown = match &cfg.source {
            Some(SourceLocation::Url(u)) => u.redacted(),
            _ => p.display().to_string(),
        };
        return Err(RecoverError::Unusable {
            backup: shown,
            reasons: reasons.join("; "),
        });
    }
    ours.trailer_checked = scan.trailer_checked;
    chosen
        .map(|c| (c, ours))
        .ok_or_else(|| RecoverError::NoBackup {
            root: root.to_path_buf(),
            candidates: inv.to_string(),
        })
}

/// The timestamp of this run, from the report's start time.
fn ts_of(report: &Report) -> String {
    report.started_at.replace(['-', ':'], "")
}

/// Where a fetched backup is kept during the recovery.
fn fetch_dir(root: &Path, ts: &str, dry_run: bool) -> PathBuf {
    if dry_run {
        std::env::temp_dir().join(format!(
            "rescue-init-dry-run-fetch-{}-{ts}",
            std::process::id()
        ))
    } else {
        root.join(format!("var/lib/.rescue-init-fetch-{ts}"))
    }
}

/// Where PEM paths of the configuration are looked for after "as given": the host root, then
/// the extra directories (the boot media in the image).
pub(crate) fn pem_bases<'a>(root: &'a Path, opts: &'a RecoverOptions) -> Vec<&'a Path> {
    std::iter::once(root)
        .chain(opts.extra_dirs.iter().map(PathBuf::as_path))
        .collect()
}

/// Source options from the configuration (secrets exposed only here, to the fetcher). PEM
/// paths are found as given, else below `bases` (see [`Pem::resolve`]).
pub(crate) fn source_options(cfg: &Config, bases: &[&Path]) -> source::SourceOptions {
    let mut o = source::SourceOptions {
        sha256: cfg.sha256.as_ref().map(|h| source::Sha256Pin(h.0)),
        ..source::SourceOptions::default()
    };
    let resolve = |p: &Option<Pem>| p.as_ref().map(|p| p.resolve(bases));
    o.tls.ca = resolve(&cfg.ca);
    o.tls.etcd_ca = resolve(&cfg.etcd_tls.cacert);
    o.tls.cert = resolve(&cfg.etcd_tls.cert);
    o.tls.key = resolve(&cfg.etcd_tls.key);
    o.http_token = cfg
        .http_token
        .as_ref()
        .map(|t| source::Secret::new(t.expose()));
    o.s3.endpoint = cfg.s3.endpoint.as_ref().map(|u| u.expose().to_string());
    o.s3.region = cfg.s3.region.clone();
    o.s3.credentials = match (&cfg.s3.access_key_id, &cfg.s3.secret_access_key) {
        (Some(id), Some(secret)) => Some(source::S3Credentials {
            access_key_id: id.expose().to_string(),
            secret_access_key: source::Secret::new(secret.expose()),
            session_token: cfg
                .s3
                .session_token
                .as_ref()
                .map(|t| source::Secret::new(t.expose())),
        }),
        _ => source::S3Credentials::from_env(),
    };
    o
}

/// For an `etcd://` source without a configured client certificate: the host's own, else one
/// from the newest backup that has `/etc/kubernetes` (read-only; see
/// [`discover::client_tls`]).
fn default_etcd_client(root: &Path, opts: &RecoverOptions) -> Option<ClientTls> {
    if let Some(t) = client_tls::on_host(root) {
        return Some(t);
    }
    let scan = ScanOptions {
        extra_dirs: opts.extra_dirs.clone(),
        verify_hash: false,
        ..Default::default()
    };
    let inv = discover::scan(root, &scan).ok()?;
    inv.candidates
        .iter()
        .filter_map(|c| c.kubernetes.as_ref())
        .find_map(|k| match client_tls::in_backup(k) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("etcd client certificate: {}", crate::cli::chain(&e));
                None
            }
        })
}

/// A fetched file's name on the host: `fetched-` and the origin's name when that is a plain
/// file name, for the report and the timestamp in it; the prefix keeps a name that a layout
/// pairs with a sibling file (OpenShift's `snapshot_<date>.db`) from being taken for half of
/// that pair.
fn fetched_name(origin: Option<String>) -> String {
    let plain = |n: &String| {
        n.len() <= 200
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+:@".contains(&b))
    };
    match origin.filter(plain) {
        Some(n) => format!("fetched-{n}"),
        None => "fetched-backup".to_owned(),
    }
}

fn fetch_source(
    url: &str,
    cfg: &Config,
    opts: &RecoverOptions,
    root: &Path,
    dir: &Path,
    progress: &mut Progress,
) -> Result<(PathBuf, FetchInfo), RecoverError> {
    let mut sopts = source_options(cfg, &pem_bases(root, opts));
    let fail = RecoverError::Fetch;
    let mut client_tls = None;
    if matches!(
        source::SourceUrl::parse(url),
        Ok(source::SourceUrl::Etcd { .. })
    ) && sopts.tls.cert.is_none()
    {
        match default_etcd_client(root, opts) {
            Some(t) => {
                log::info!("etcd client certificate: {}", t.from);
                sopts.tls.cert = Some(t.cert);
                sopts.tls.key = Some(t.key);
                if sopts.tls.etcd_ca.is_none() && sopts.tls.ca.is_none() {
                    sopts.tls.etcd_ca = Some(t.ca);
                }
                client_tls = Some(t.from);
            }
            None => log::warn!(
                "etcd client certificate: none configured, none found on the host or in a backup"
            ),
        }
    }
    let started = std::time::Instant::now();
    let src = source::open(url, &sopts).map_err(fail)?;
    let fetched =
        source::fetch(src.as_ref(), dir, sopts.sha256.as_ref(), progress).map_err(fail)?;
    log::info!(
        "fetched {} ({} bytes, sha256 {})",
        src.describe(),
        fetched.len,
        fetched.sha256_hex()
    );
    let info = FetchInfo {
        url: source::redact(url),
        from: src.describe(),
        bytes: fetched.len,
        sha256: fetched.sha256_hex(),
        trailer_verified: fetched.trailer_ok,
        seconds: started.elapsed().as_secs_f64(),
        client_tls,
    };
    if !fetched.temporary {
        return Ok((fetched.path.clone(), info));
    }
    let name = fetched_name(src.file_name());
    let to = dir.join(&name);
    let from = fetched.keep();
    fs::rename(&from, &to)
        .inspect_err(|_| {
            let _ = fs::remove_file(&from);
        })
        .map_err(io_err("naming the fetched backup", &to))?;
    Ok((to, info))
}

fn location_under(loc: &Location, p: &Path) -> bool {
    match loc {
        Location::File { path } => path.starts_with(p),
        Location::Member { archive, .. } => archive.starts_with(p),
    }
}

fn already_recovered(root: &Path, c: &Candidate) -> Option<String> {
    let text = fs::read(root.join(MARKER)).ok()?;
    let m: Marker = serde_json::from_slice(&text).ok()?;
    let same = m.source == c.snapshot.to_string() && m.size == c.size && m.timestamp == c.timestamp;
    (same && m.data_dir.join("member/snap/db").exists()).then(|| {
        format!(
            "already recovered from {} as member {} (report {}); pass --force to recover again",
            m.source,
            m.member_id,
            m.report.display()
        )
    })
}

fn write_marker(root: &Path, m: &Marker) -> Result<(), RecoverError> {
    let path = root.join(MARKER);
    let dir = path.parent().unwrap_or(root);
    fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let json = serde_json::to_vec_pretty(m).unwrap_or_default();
    let mode = 0o600;
    let r = if path.exists() {
        exec::write_replace(&path, &json, mode)
    } else {
        exec::write_new(&path, &json, mode)
    };
    r.map_err(|e| RecoverError::Io {
        op: "writing",
        path,
        source: std::io::Error::other(crate::cli::chain(&e)),
    })
}

/// What rescue-init itself put on the host in this run: directories whose files it may
/// consume (the fetch and staging directories), and fetched files whose sha256 trailer it
/// checked in the pass that wrote them.
#[derive(Debug, Default)]
struct Ours {
    dirs: Vec<PathBuf>,
    trailer_checked: Vec<PathBuf>,
}

/// Staging directories rescue-init creates: one beside `/etc/kubernetes` (so the staged tree
/// can be renamed into place on the same filesystem) and one for the snapshot.
struct Staging {
    etc: PathBuf,
    var: PathBuf,
    created: Vec<PathBuf>,
}

impl Staging {
    fn new(root: &Path, ts: &str, dry_run: bool) -> Result<Self, RecoverError> {
        let (etc, var) = if dry_run {
            let base = std::env::temp_dir()
                .join(format!("rescue-init-dry-run-{}-{ts}", std::process::id()));
            (base.join("etc"), base.join("var"))
        } else {
            (
                root.join(format!("etc/.rescue-init-{ts}")),
                root.join(format!("var/lib/.rescue-init-{ts}")),
            )
        };
        let mut created = Vec::new();
        for d in [&etc, &var] {
            let mut missing = Vec::new();
            let mut cur = d.as_path();
            while !cur.exists() {
                missing.push(cur.to_path_buf());
                match cur.parent() {
                    Some(p) => cur = p,
                    None => break,
                }
            }
            fs::create_dir_all(d).map_err(io_err("creating staging directory", d))?;
            created.extend(missing.into_iter().rev());
        }
        Ok(Staging { etc, var, created })
    }

    fn remove(&self) {
        for d in self.created.iter().rev() {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// The `/etc/kubernetes` tree the backup brings: the whole tree, or only some entries of it.
fn replaces_whole_tree(k: &KubeSource) -> bool {
    matches!(k, KubeSource::Dir { .. } | KubeSource::Archive { .. })
}

#[allow(clippy::too_many_arguments)]
fn stage_and_plan(
    cfg: &Config,
    root: &Path,
    ts: &str,
    (c, ours): (&Candidate, &Ours),
    staging: &Staging,
    progress: &mut Progress,
    report: &mut Report,
) -> Result<Plan, RecoverError> {
    // Stage what must be extracted, and verify the snapshot.
    let mut prep = Plan::default();
    let snapshot = match &c.snapshot {
        Location::File { path } => path.clone(),
        Location::Member { .. } => {
            let to = staging.var.join("snapshot.db");
            prep.steps.push(Step::StageSnapshot {
                from: c.snapshot.clone(),
                to: to.clone(),
            });
            to
        }
    };
    let skip_hash = matches!(c.layout, Layout::RawDb | Layout::DataDir)
        || c.check
            .as_ref()
            .is_some_and(|r| r.hash == HashCheck::Absent);
    let staged_kube = match &c.kubernetes {
        Some(k) if !matches!(k, KubeSource::RkeSsl { .. }) => {
            let to = staging.etc.join("kubernetes");
            prep.steps.push(Step::StageKubernetes {
                from: k.clone(),
                to: to.clone(),
            });
            Some((k.clone(), to))
        }
        _ => None,
    };
    let trailer = if skip_hash {
        Trailer::None
    } else if ours.trailer_checked.contains(&snapshot) {
        Trailer::CheckedWhileFetching
    } else {
        Trailer::Verify
    };
    prep.steps.push(Step::VerifySnapshot {
        path: snapshot.clone(),
        trailer,
    });
    let prepared =
        exec::apply(&prep, &BackupStager, ts, progress).map_err(RecoverError::Prepare)?;
    report
        .plan
        .extend(prep.steps.iter().map(ToString::to_string));
    report.steps.extend(prepared);

    // The configuration that will be in effect: the host's, with the staged tree's files
    // standing in for those it replaces.
    let host_files = rewrite::load_host_config(root).map_err(RecoverError::Settings)?;
    let mut files: Vec<(ConfigFile, PathBuf)> = Vec::new(); // (file, where it will live on the host)
    if let Some((k, dir)) = &staged_kube {
        let staged_root = staging.etc.join("root");
        let link_dir = staged_root.join("etc");
        fs::create_dir_all(&link_dir).map_err(io_err("creating", &link_dir))?;
        // Make the staged tree readable as `<staged_root>/etc/kubernetes` without copying.
        let link = link_dir.join("kubernetes");
        if !link.exists() {
            std::os::unix::fs::symlink(dir, &link).map_err(io_err("linking", &link))?;
        }
        for f in rewrite::load_host_config(&staged_root).map_err(RecoverError::Settings)? {
            let dest = root.join(&f.real_path);
            files.push((f, dest));
        }
        let whole = replaces_whole_tree(k);
        for f in host_files {
            let under_kube = f.real_path.starts_with("etc/kubernetes");
            let replaced =
                under_kube && (whole || files.iter().any(|(s, _)| s.real_path == f.real_path));
            if !replaced {
                let dest = root.join(&f.real_path);
                files.push((f, dest));
            }
        }
        let _ = fs::remove_file(&link);
    } else {
        files = host_files
            .into_iter()
            .map(|f| {
                let dest = root.join(&f.real_path);
                (f, dest)
            })
            .collect();
    }
    let only: Vec<ConfigFile> = files.iter().map(|(f, _)| f.clone()).collect();
    let settings = rewrite::current_settings(&only);
    let name = cfg.name.as_ref().map(|n| n.as_str());
    let mut target = match Target::plan(&settings, name, cfg.advertise_address) {
        Ok(t) => t,
        Err(e) => fallback_target(cfg).ok_or(RecoverError::Settings(e))?,
    };
    if let Some(api) = only.iter().find(|f| f.kind == FileKind::ApiServerManifest) {
        if let Some(addr) = rewrite::extract(api.kind, &api.text).get("advertise-address") {
            target.also_move(addr);
        }
    }
    report.member = serde_json::to_value(&target).ok();

    // The host changes.
    let data_dir_rel = settings
        .data_dir()
        .unwrap_or("/var/lib/etcd")
        .trim_start_matches('/')
        .to_string();
    let data_dir = root.join(&data_dir_rel);
    let mut plan = Plan::default();
    let aside = |p: &Path| aside_path(p, ts);
    let mut snapshot_now = snapshot.clone();
    if data_dir.exists() {
        let to = aside(&data_dir);
        if let Ok(rel) = snapshot.strip_prefix(&data_dir) {
            snapshot_now = to.join(rel);
        }
        plan.steps.push(Step::MoveAside {
            from: data_dir.clone(),
            to: to.clone(),
        });
        report.moved_aside.push((data_dir.clone(), to));
    }
    if let Some((k, dir)) = &staged_kube {
        let kube = root.join("etc/kubernetes");
        if replaces_whole_tree(k) {
            if kube.exists() {
                let to = aside(&kube);
                plan.steps.push(Step::MoveAside {
                    from: kube.clone(),
                    to: to.clone(),
                });
                report.moved_aside.push((kube.clone(), to));
            }
            plan.steps.push(Step::Install {
                from: dir.clone(),
                to: kube.clone(),
            });
            report.written.push(kube);
        } else {
            if !kube.exists() {
                fs::create_dir_all(&kube).map_err(io_err("creating", &kube))?;
            }
            // Merge into the host's tree: a staged directory the host also has is entered,
            // so only the entries the backup brings are moved aside and replaced (replacing
            // the whole `manifests/` would drop the host's other manifests, and the etcd
            // manifest the plan rewrites).
            for (e, dest) in merge_pairs(dir, &kube)? {
                if dest.exists() {
                    let to = aside(&dest);
                    plan.steps.push(Step::MoveAside {
                        from: dest.clone(),
                        to: to.clone(),
                    });
                    report.moved_aside.push((dest.clone(), to));
                }
                plan.steps.push(Step::Install {
                    from: e.clone(),
                    to: dest.clone(),
                });
                report.written.push(dest);
            }
        }
    }
    // A snapshot rescue-init fetched or extracted itself becomes the new db in place (no second
    // copy of it written); the operator's own backup files are only ever read.
    let consume = ours.dirs.iter().any(|d| snapshot_now.starts_with(d));
    plan.steps.push(Step::RestoreEtcd(RestoreEtcd {
        snapshot: snapshot_now,
        data_dir: data_dir.clone(),
        name: target.name.clone(),
        initial_cluster: target.initial_cluster(),
        peer_urls: target.peer_urls.clone(),
        token: "etcd-cluster".into(),
        // The verify step above has checked the sha256 trailer of this very file; hashing it
        // again would only repeat that read (seconds per 64 MiB on a slow rescue machine).
        // The restore still checks the whole structure before it writes.
        skip_hash_check: true,
        bump_revision: cfg.bump.revision(),
        consume,
    }));
    report.written.push(data_dir.clone());
    for (f, dest) in &files {
        let r = rewrite::rewrite(f.kind, &f.text, &target);
        if r.changed() {
            report.diffs.push(FileDiff {
                path: dest.clone(),
                diff: rewrite::unified_diff(&f.path.to_string_lossy(), &f.text, &r.text),
            });
            plan.steps.push(Step::Rewrite {
                path: dest.clone(),
                before: f.text.clone(),
                after: r.text,
            });
            report.written.push(dest.clone());
        }
    }
    plan.steps.push(Step::Sync);
    plan.validate(&|p: &Path| p.exists())?;
    check_free_space(&data_dir, c.size)?;
    Ok(plan)
}

/// Where `p` is moved aside: a `.before-rescue-<ts>` sibling. Inside a static pod manifest
/// directory the sibling is hidden (kubelet runs every file there but hidden ones, and must
/// not run the old pod beside the new one).
fn aside_path(p: &Path, ts: &str) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_manifests = p
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "manifests");
    let dot = if in_manifests { "." } else { "" };
    p.with_file_name(format!("{dot}{name}.before-rescue-{ts}"))
}

/// The (staged entry, host destination) pairs that merge the staged tree `from` into `to`:
/// directories present on both sides are entered, everything else is one pair. Sorted.
fn merge_pairs(from: &Path, to: &Path) -> Result<Vec<(PathBuf, PathBuf)>, RecoverError> {
    let mut entries: Vec<PathBuf> = fs::read_dir(from)
        .map_err(io_err("reading", from))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        let Some(n) = e.file_name() else { continue };
        let dest = to.join(n);
        let both_dirs = fs::symlink_metadata(&e).is_ok_and(|m| m.is_dir())
            && fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir());
        if both_dirs {
            out.extend(merge_pairs(&e, &dest)?);
        } else {
            out.push((e, dest));
        }
    }
    Ok(out)
}

/// Without any etcd configuration (e.g. RKE, where the etcd container's flags live in the
/// cluster state), a name and an address given by the operator are enough.
fn fallback_target(cfg: &Config) -> Option<Target> {
    let name = cfg.name.as_ref()?.as_str().to_string();
    let ip = cfg.advertise_address?;
    let host = match ip {
        std::net::IpAddr::V6(v6) => format!("[{v6}]"),
        std::net::IpAddr::V4(v4) => v4.to_string(),
    };
    Some(Target {
        name,
        peer_urls: vec![format!("https://{host}:2380")],
        client_urls: vec![format!("https://{host}:2379")],
        moved: None,
    })
}

fn check_free_space(data_dir: &Path, snapshot_size: u64) -> Result<(), RecoverError> {
    let mut probe = data_dir.to_path_buf();
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p.to_path_buf(),
            None => return Ok(()),
        }
    }
    let st = rustix::fs::statvfs(&probe).map_err(|e| RecoverError::Io {
        op: "inspecting",
        path: probe.clone(),
        source: e.into(),
    })?;
    let available = st.f_bavail.saturating_mul(st.f_frsize);
    let needed = snapshot_size + crate::formats::etcd::wal::SEGMENT_SIZE + (16 << 20);
    if available < needed {
        return Err(RecoverError::Io {
            op: "checking free space for",
            path: data_dir.to_path_buf(),
            source: std::io::Error::other(format!(
                "{needed} bytes needed, {available} available; free space on the host disk"
            )),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn aside_paths_are_siblings_hidden_in_manifest_dirs() {
        let ts = "20240102T030405Z";
        assert_eq!(
            aside_path(Path::new("/r/var/lib/etcd"), ts),
            Path::new("/r/var/lib/etcd.before-rescue-20240102T030405Z")
        );
        assert_eq!(
            aside_path(Path::new("/r/etc/kubernetes/manifests/etcd-pod.yaml"), ts),
            Path::new("/r/etc/kubernetes/manifests/.etcd-pod.yaml.before-rescue-20240102T030405Z")
        );
        assert_eq!(
            aside_path(Path::new("/r/etc/kubernetes/manifests"), ts),
            Path::new("/r/etc/kubernetes/manifests.before-rescue-20240102T030405Z")
        );
    }

    #[test]
    fn merge_pairs_enter_directories_both_sides_have() {
        let staged = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        let s = staged.path();
        let h = host.path();
        fs::create_dir_all(s.join("manifests")).unwrap();
        fs::write(s.join("manifests/etcd-pod.yaml"), "new").unwrap();
        fs::create_dir_all(s.join("static-pod-resources/etcd-pod-3")).unwrap();
        fs::write(s.join("static-pod-resources/etcd-pod-3/x"), "x").unwrap();
        fs::create_dir_all(h.join("manifests")).unwrap();
        fs::write(h.join("manifests/kube-apiserver.yaml"), "keep").unwrap();
        let got = merge_pairs(s, h).unwrap();
        assert_eq!(
            got,
            vec![
                (
                    s.join("manifests/etcd-pod.yaml"),
                    h.join("manifests/etcd-pod.yaml")
                ),
                (
                    s.join("static-pod-resources"),
                    h.join("static-pod-resources")
                ),
            ]
        );
    }
}
