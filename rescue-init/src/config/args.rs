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
}

impl RecoverArgs {
    /// The settings these flags set (unset flags set nothing).
    pub fn settings(&self) -> Result<Settings, ConfigError> {
        let mut pairs: Vec<(&str, Option<&str>)> = Vec::new();
        for (key, value) in [
            ("source", &self.source),
            ("sha256", &self.sha256),
            ("name", &self.name),
            ("advertise_address", &self.advertise_address),
            ("bump_revision", &self.bump_revision),
        ] {
            if let Some(v) = value {
                pairs.push((key, Some(v.as_str())));
            }
        }
        if self.no_bump {
            pairs.push(("bump", Some("0")));
        }
        if self.dry_run {
            pairs.push(("dry_run", Some("1")));
        }
        Settings::from_pairs(pairs, &Origin::Flags)
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
