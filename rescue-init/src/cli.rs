//! Command-line interface: parses arguments, calls the library, renders results. The only
//! module besides `progress` that writes to the terminal.
use std::error::Error;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::progress::{human, Progress};
use crate::snapshot::{self, RestoreOptions, Status};
use crate::source::{self, Pem, S3Credentials, Sha256Pin, SourceOptions};

#[derive(Parser, Debug)]
#[command(
    name = "rescue-init",
    version,
    about = "Restore a Kubernetes control plane from an etcd backup",
    long_about = "Restore a Kubernetes control plane from an etcd backup.\n\nThe same binary is PID 1 of the rescue image and an ordinary command that works on any Linux host against files and directories."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect and restore etcd snapshots (etcdutl-compatible flags)
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Recover a whole control-plane host from its newest backup
    Recover(Box<RecoverCli>),
}

#[derive(Args, Debug)]
struct RecoverCli {
    #[command(flatten)]
    args: crate::config::RecoverArgs,
    /// Recover again even if the host was already recovered from the same backup
    #[arg(long)]
    force: bool,
    /// Another directory to search for backups (e.g. mounted boot media); repeatable
    #[arg(long, value_name = "DIR")]
    search: Vec<PathBuf>,
    /// Show no progress
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Check a snapshot (or a raw member/snap/db) and print its status
    Status(StatusArgs),
    /// Restore a snapshot into a new data directory
    Restore(Box<RestoreArgs>),
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OutputFormat {
    Table,
    Json,
    Simple,
}

#[derive(Args, Debug)]
struct StatusArgs {
    /// Snapshot file (etcdctl snapshot save) or raw bbolt db
    file: PathBuf,
    /// Output format
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: OutputFormat,
    /// Do not verify the sha256 trailer
    #[arg(long)]
    skip_hash_check: bool,
}

#[derive(Args, Debug)]
struct RestoreArgs {
    /// Snapshot file (etcdctl snapshot save) or raw bbolt db (with --skip-hash-check), or a
    /// URL: file://, https:// (http:// with --sha256), s3://bucket/key, s3://bucket/prefix/latest,
    /// etcd://host:2379[,host:2379]
    #[arg(value_name = "FILE|URL")]
    file: String,
    #[command(flatten)]
    fetch: FetchArgs,
    /// Path to the data directory to create [default: <name>.etcd]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Human-readable name for this member
    #[arg(long, default_value = "default")]
    name: String,
    /// Initial cluster configuration for restore bootstrap
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// This member's peer URLs to advertise to the rest of the cluster
    #[arg(long, value_delimiter = ',', default_value = "http://localhost:2380")]
    initial_advertise_peer_urls: Vec<String>,
    /// Initial cluster token for the etcd cluster during restore bootstrap
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// Ignore the snapshot's sha256 trailer (required for a raw db copied from a data dir)
    #[arg(long)]
    skip_hash_check: bool,
    /// Add this many to the latest revision (keeps revisions monotonic for watchers)
    #[arg(long, default_value_t = 0)]
    bump_revision: u64,
    /// Mark the latest revision as compacted (required with --bump-revision)
    #[arg(long)]
    mark_compacted: bool,
    /// Show no progress
    #[arg(long, short)]
    quiet: bool,
}

/// Where a snapshot URL is fetched from and how it is checked.
#[derive(Args, Debug)]
struct FetchArgs {
    /// Expected sha256 of the fetched file (required for plain http)
    #[arg(long)]
    sha256: Option<String>,
    /// PEM CA bundle trusted besides the built-in roots (https, s3) or for etcd
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// Trust only --cacert, not the built-in roots
    #[arg(long, requires = "cacert")]
    cacert_only: bool,
    /// Client certificate (PEM) for etcd:// sources
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Client key (PEM) for etcd:// sources
    #[arg(long)]
    key: Option<PathBuf>,
    /// S3 endpoint, e.g. https://minio.example:9000 (path-style); default AWS
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1]
    #[arg(long)]
    s3_region: Option<String>,
    /// Accept plain http without --sha256 (integrity then rests on the snapshot's own trailer)
    #[arg(long)]
    insecure_http: bool,
}

impl FetchArgs {
    fn options(&self) -> Result<SourceOptions, source::SourceError> {
        let mut o = SourceOptions {
            sha256: self.sha256.as_deref().map(Sha256Pin::parse).transpose()?,
            insecure_http: self.insecure_http,
            ..SourceOptions::default()
        };
        o.tls.ca = self.cacert.clone().map(Pem::File);
        o.tls.ca_only = self.cacert_only;
        o.tls.cert = self.cert.clone().map(Pem::File);
        o.tls.key = self.key.clone().map(Pem::File);
        o.s3.endpoint = self.s3_endpoint.clone();
        o.s3.region = self.s3_region.clone();
        // Keys come from the environment only, never from argv (visible in /proc).
        o.s3.credentials = S3Credentials::from_env();
        Ok(o)
    }
}

/// Entry point of the `rescue-init` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logger::init_cli();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `top: cause: cause`, on one line.
pub fn chain(e: &dyn Error) -> String {
    crate::errors::chain(e)
}

fn run(cli: Cli) -> Result<(), Box<dyn Error>> {
    let mut out = std::io::stdout().lock();
    match cli.command {
        Command::Snapshot(SnapshotCommand::Status(a)) => {
            let mut progress = if a.write_out == OutputFormat::Json {
                Progress::hidden()
            } else {
                Progress::stderr()
            };
            let st = snapshot::status(&a.file, a.skip_hash_check, &mut progress)?;
            match a.write_out {
                OutputFormat::Json => writeln!(out, "{}", serde_json::to_string(&st)?)?,
                OutputFormat::Table => write!(out, "{}", status_table(&st))?,
                OutputFormat::Simple => write!(out, "{}", status_simple(&st))?,
            }
        }
        Command::Snapshot(SnapshotCommand::Restore(a)) => {
            let mut progress = if a.quiet {
                Progress::hidden()
            } else {
                Progress::stderr()
            };
            let data_dir = a
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", a.name)));
            let mut opts = RestoreOptions::new(&a.file);
            opts.data_dir = data_dir.clone();
            opts.name = a.name;
            opts.initial_cluster = a.initial_cluster;
            opts.initial_advertise_peer_urls = a.initial_advertise_peer_urls;
            opts.initial_cluster_token = a.initial_cluster_token;
            opts.skip_hash_check = a.skip_hash_check;
            opts.bump_revision = a.bump_revision;
            opts.mark_compacted = a.mark_compacted;
            // Flags and the target first: a typo must not cost a download.
            snapshot::check_options(&opts)?;
            // A URL is fetched into a staging file beside the data dir (same filesystem),
            // removed when `fetched` is dropped; a local path is used in place.
            let fopts = a.fetch.options()?;
            let src = source::open(&a.file, &fopts)?;
            let staging_dir = match data_dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let created = src.local_path().is_none() && !staging_dir.exists();
            if created {
                std::fs::create_dir_all(&staging_dir)?;
            }
            let fetched = source::fetch(
                src.as_ref(),
                &staging_dir,
                fopts.sha256.as_ref(),
                &mut progress,
            )
            .inspect_err(|_| {
                if created {
                    // Leave nothing behind: the directory is empty again.
                    let _ = std::fs::remove_dir(&staging_dir);
                }
            })?;
            if fetched.temporary {
                writeln!(
                    std::io::stderr(),
                    "fetched {} ({} bytes, sha256 {})",
                    src.describe(),
                    fetched.len,
                    fetched.sha256_hex()
                )?;
            }
            opts.snapshot = fetched.path.clone();
            // A fetched copy is ours: restored in place rather than copied once more, its
            // trailer already checked by the fetch's own hash pass.
            opts.consume = fetched.temporary;
            opts.trailer_verified = fetched.trailer_ok;
            let r = snapshot::restore(&opts, &mut progress)?;
            writeln!(
                out,
                "restored {} into {} in {:.2}s\n  member {} ({}) of cluster {}\n  members: {}\n  hash before {:08x}, revision {}, {} keys; after: revision {}, {} keys{}",
                src.describe(),
                r.data_dir.display(),
                r.seconds,
                r.member_id,
                opts.name,
                r.cluster_id,
                r.members.join(", "),
                r.before.hash,
                r.before.revision,
                r.before.total_key,
                r.after.revision,
                r.after.total_key,
                r.bumped_to.map(|b| format!(" (bumped to {b}, older revisions compacted)")).unwrap_or_default(),
            )?;
        }
        Command::Recover(a) => return recover(*a, &mut out),
    }
    Ok(())
}

fn recover(a: RecoverCli, out: &mut impl Write) -> Result<(), Box<dyn Error>> {
    use crate::recover::{self, RecoverError, RecoverOptions};
    use crate::report::Outcome;
    let plan = a
        .args
        .plan
        .as_deref()
        .map(crate::config::load_plan_file)
        .transpose()?;
    let cfg = a.args.resolve(plan)?;
    let opts = RecoverOptions {
        extra_dirs: a.search,
        force: a.force,
    };
    let mut progress = if a.quiet {
        Progress::hidden()
    } else {
        Progress::stderr()
    };
    let (report, result) = recover::recover(&cfg, &opts, &mut progress);
    if !report.plan.is_empty() {
        writeln!(out, "plan:")?;
        for (i, s) in report.plan.iter().enumerate() {
            writeln!(out, "{:>3}. {s}", i + 1)?;
        }
    }
    for d in &report.diffs {
        write!(out, "{}", d.diff)?;
    }
    // The report goes on the host only when the host was changed (or a change was attempted
    // and rolled back); a refused or dry run leaves the host exactly as it was.
    let touched = matches!(report.outcome, Outcome::Recovered)
        || matches!(&result, Err(RecoverError::Apply(_)));
    if touched {
        let dir = recover::report_dir(&report.root, &report.started_at.replace(['-', ':'], ""));
        match recover::write_report(&dir, &report) {
            Ok(p) => writeln!(out, "report: {}", p.display())?,
            Err(e) => writeln!(out, "report could not be written: {}", chain(&e))?,
        }
    }
    write!(out, "{}", report.summary())?;
    result.map_err(Into::into)
}

fn status_simple(st: &Status) -> String {
    let mut s = format!(
        "{:x}, {}, {}, {}\n",
        st.hash,
        st.revision,
        st.total_key,
        human(st.total_size)
    );
    s.push_str(&extras(st));
    s
}

fn status_table(st: &Status) -> String {
    let row = [
        format!("{:x}", st.hash),
        st.revision.to_string(),
        st.total_key.to_string(),
        human(st.total_size),
    ];
    let head = ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"];
    let w: Vec<usize> = head
        .iter()
        .zip(&row)
        .map(|(h, r)| h.len().max(r.len()) + 2)
        .collect();
    let line = format!(
        "+{}+\n",
        w.iter()
            .map(|n| "-".repeat(*n))
            .collect::<Vec<_>>()
            .join("+")
    );
    let fmt = |cells: &[String]| {
        format!(
            "|{}|\n",
            cells
                .iter()
                .zip(&w)
                .map(|(c, n)| format!("{c:^n$}"))
                .collect::<Vec<_>>()
                .join("|")
        )
    };
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    format!(
        "{line}{}{line}{}{line}{}",
        fmt(&head),
        fmt(&row),
        extras(st)
    )
}

fn extras(st: &Status) -> String {
    let mut s = format!(
        "sha256 trailer: {:?}; page size {}; txid {}; consistent index {}; term {}\n",
        st.hash_trailer,
        st.page_size,
        st.txid,
        st.consistent_index.map_or("-".into(), |v| v.to_string()),
        st.term.map_or("-".into(), |v| v.to_string()),
    );
    s.push_str(&format!(
        "storage version {}; cluster version {}; cluster id (from members) {}\n",
        st.storage_version.as_deref().unwrap_or("-"),
        st.cluster_version.as_deref().unwrap_or("-"),
        st.cluster_id_from_members.as_deref().unwrap_or("-"),
    ));
    for m in &st.members {
        s.push_str(&format!(
            "member {} name={} peers={} clients={}{}\n",
            m.id,
            m.name,
            m.peer_urls.join(","),
            m.client_urls.join(","),
            if m.is_learner { " (learner)" } else { "" }
        ));
    }
    s
}
