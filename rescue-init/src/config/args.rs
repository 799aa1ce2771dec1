//! Flags of `rescue-init recover`, turned into a settings layer. Pure.
use std::path::PathBuf;

use super::{Config, ConfigError, Layer, Origin, Settings};

/// Flags of `rescue-init recover`; flatten it into the subcommand with `#[command(flatten)]`.
/// Values are parsed by the same code as `rescue.*` keys and plan keys.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RecoverArgs {
    /// Host root directory to recover (a mounted disk, or `/` from a live system).
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// YAML plan file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Snapshot or backup (path or URL); default: the newest backup found on the host.
    #[arg(long, value_name = "PATH|URL")]
    pub source: Option<String>,
    /// Expected sha256 of the source.
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// etcd member name after recovery; default: from the host's etcd configuration.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Move the member to this IP (peer and client URLs, manifests, apiserver).
    #[arg(long, value_name = "IP")]
    pub advertise_address: Option<String>,
    /// Do not bump the revision (default: bump by 1e9 and mark compacted).
    #[arg(long)]
    pub no_bump: bool,
    /// How far to bump the revision.
    #[arg(long, value_name = "N", conflicts_with = "no_bump")]
    pub bump_revision: Option<String>,
    /// Print every step and diff; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// PEM CA bundle for https, s3 and etcd sources (and the plan and callback URLs), trusted
    /// besides the built-in roots.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<String>,
    /// Client certificate (PEM) for etcd:// sources; default: the host's or the backup's
    /// kubeadm, RKE or OpenShift etcd client certificate.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<String>,
    /// Client key (PEM) for etcd:// sources.
    #[arg(long, value_name = "FILE")]
    pub key: Option<String>,
    /// S3 endpoint of an S3-compatible store, e.g. https://minio.example:9000 (path-style);
    /// default: AWS. Keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
    /// AWS_SESSION_TOKEN) or the plan, never from flags.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
}

impl RecoverArgs {
    /// The settings these flags set (unset flags set nothing).
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut flags: Vec<(&str, &str, Option<&str>)> = Vec::new();
        for (key, flag, value) in [
            ("source", "source", &self.source),
            ("sha256", "sha256", &self.sha256),
            ("name", "name", &self.name),
            (
                "advertise_address",
                "advertise-address",
                &self.advertise_address,
            ),
            ("bump_revision", "bump-revision", &self.bump_revision),
            ("ca", "cacert", &self.cacert),
            ("etcd_cert", "cert", &self.cert),
            ("etcd_key", "key", &self.key),
            ("s3_endpoint", "s3-endpoint", &self.s3_endpoint),
            ("s3_region", "s3-region", &self.s3_region),
        ] {
            if let Some(v) = value {
                flags.push((key, flag, Some(v.as_str())));
            }
        }
        if self.no_bump {
            flags.push(("bump", "no-bump", Some("0")));
        }
        if self.dry_run {
            flags.push(("dry_run", "dry-run", Some("1")));
        }
        Settings::from_flags(flags)
    }

    /// Resolves the configuration: defaults, then the plan (already loaded, e.g. with
    /// [`super::load_plan_file`] on `self.plan`), then these flags.
    pub fn resolve(&self, plan: Option<Settings>) -> Result<Config, ConfigError> {
        let mut layers = Vec::new();
        if let Some(settings) = plan {
            let origin = Origin::Plan(
                self.plan
                    .as_ref()
                    .map_or_else(|| "(plan)".to_owned(), |p| p.display().to_string()),
            );
            layers.push(Layer { origin, settings });
        }
        layers.push(Layer {
            origin: Origin::Flags,
            settings: self.settings()?,
        });
        let mut cfg = Config::resolve(&layers)?;
        cfg.root = Some(self.root.clone());
        if let Some(p) = &self.plan {
            cfg.plan = Some(super::Location::Path(p.clone()));
        }
        Ok(cfg)
    }
}
