//! The recovery configuration: `rescue.*` kernel command-line keys, a YAML plan file and
//! command-line flags, merged into one [`Config`]. Pure: parsing and merging are functions
//! over strings; the only effects are the read-only loaders [`load_plan_file`] and
//! [`read_cmdline`].
//!
//! # Sources and precedence
//! Flags (or, in the rescue image, the kernel command line) win over the plan file, which
//! wins over the defaults. Every key exists in every source under the same name:
//! `rescue.advertise_address=10.0.0.5` on the command line is `advertise_address: 10.0.0.5`
//! in a plan. On the command line `-` and `_` in a key are the same, as the kernel treats
//! them for its own parameters. Unknown `rescue.*` keys and unknown plan keys are errors
//! that name the key; parameters not starting with `rescue.` are ignored. When a key is
//! given twice on the command line, the last one wins, as with kernel parameters.
//!
//! | key | value | default |
//! |---|---|---|
//! | `root` | block device of the host root: `/dev/..`, `LABEL=`, `UUID=`, `PARTUUID=`, `PARTLABEL=` | found by discovery |
//! | `plan` | plan file path or `http(s)://` URL (`${mac}`, `${hostname}`, `${uuid}` expanded) | none (cmdline and flags only) |
//! | `source` | snapshot or backup: path, `http(s)://`, `s3://bucket/prefix`, `etcd://h:2379,h2:2379` | newest backup found on the host |
//! | `sha256` | 64 hex digits the source must hash to (required for `http://`) | none |
//! | `name` | etcd member name after recovery | from the host's etcd configuration |
//! | `advertise_address` | new IP of the member: peer and client URLs, apiserver follow | unchanged |
//! | `bump` | bool: bump the revision and mark it compacted | on |
//! | `bump_revision` | how far to bump | 1000000000 |
//! | `dry_run` | bool: plan, diff and report, change nothing | off |
//! | `after` | `reboot`, `poweroff`, `hold`, `shell` | `reboot` |
//! | `callback` | `http(s)://` URL that receives the report | none |
//! | `timeout` | bound on the whole recovery (`90`, `90s`, `15m`, `2h`) | 1h |
//! | `pause` | how long the result stays on screen before `after` | 10s |
//! | `ca` | CA bundle for https and s3 sources, the plan URL and the callback (and etcd sources without `etcd_cacert`): a path (tried as given, then on the host disk, then on the boot media) or the PEM text inline | built-in Mozilla roots |
//! | `http_token` | bearer token for http(s) sources (secret) | none |
//! | `s3_access_key_id`, `s3_secret_access_key`, `s3_session_token` | S3 static credentials (secrets) | none |
//! | `s3_region`, `s3_endpoint` | S3 region and endpoint URL | none |
//! | `etcd_cert`, `etcd_key`, `etcd_cacert` | client TLS for `etcd://` sources: paths or inline PEM | the host's or the backup's etcd client certificate (kubeadm, RKE, OpenShift) |
//!
//! Booleans take `1/0`, `true/false`, `yes/no`, `on/off`; on the command line a bare
//! boolean key (`rescue.dry_run`) means true.
//!
//! # Plan file format
//! YAML, parsed with `serde_yaml_ng`: the maintained fork of `serde_yaml` (archived in
//! 2024), with the same API and a small dependency set (indexmap, itoa, ryu,
//! unsafe-libyaml). `serde_norway` is an equivalent fork; `serde-saphyr` is pure Rust but
//! pulls in about twice the crates. Plans are small, so each key is deserialised on its
//! own, which lets a bad value name its key.
//!
//! # Secrets
//! S3 keys and tokens are [`Secret`]s and URLs are [`Url`]s: `Debug`, `Display` and
//! serialisation show `<redacted>` and `***`, so `Config` can be logged and serialised into
//! the report as it is.
mod args;
mod cmdline;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::pem::Pem;

pub use args::RecoverArgs;
pub use cmdline::{tokenize, Param};
pub use values::{
    After, Ip, Location, MemberName, Revision, RootDevice, Seconds, Secret, Sha256Hex, Text,
    Toggle, Url, REDACTED,
};

/// Errors of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key that no source knows.
    #[error("unknown key {key} in {origin}")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it was written.
        origin: Origin,
    },
    /// A non-boolean key without `=value`.
    #[error("key {key} in {origin} needs a value")]
    MissingValue {
        /// The key as written.
        key: String,
        /// Where it was written.
        origin: Origin,
    },
    /// A value that does not parse.
    #[error("invalid value for {key} in {origin}: {reason}")]
    InvalidValue {
        /// The key as written.
        key: String,
        /// Where it was written.
        origin: Origin,
        /// Why (never the value of a secret).
        reason: String,
    },
    /// A plan file naming another plan.
    #[error("plan file {path} may not name another plan (key plan)")]
    NestedPlan {
        /// The plan file.
        path: String,
    },
    /// A plan file that is not YAML.
    #[error("plan file {path} is not valid yaml")]
    PlanSyntax {
        /// The plan file.
        path: String,
        /// The parser's error.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A plan file whose top level is not a mapping of keys to values.
    #[error("plan file {path} must be a mapping of keys to values")]
    PlanNotMapping {
        /// The plan file.
        path: String,
    },
    /// A plan file that cannot be read.
    #[error("cannot read plan file {path}")]
    ReadPlan {
        /// The plan file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel command line cannot be read.
    #[error("cannot read kernel command line {path}")]
    ReadCmdline {
        /// Usually `/proc/cmdline`.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Settings that are valid alone but not together.
    #[error("invalid configuration: {reason}")]
    Conflict {
        /// What is wrong.
        reason: String,
    },
    /// A plan URL template with an unknown or unavailable `${var}`.
    #[error("plan url template: {reason}")]
    Template {
        /// What is wrong.
        reason: String,
    },
}

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "location")]
pub enum Origin {
    /// Built-in default.
    Default,
    /// A plan file (path or redacted URL).
    Plan(String),
    /// The kernel command line.
    Cmdline,
    /// Command-line flags of `rescue-init recover`.
    Flags,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("defaults"),
            Origin::Plan(p) => write!(f, "plan file {p}"),
            Origin::Cmdline => f.write_str("kernel command line"),
            Origin::Flags => f.write_str("flags"),
        }
    }
}

/// Declares [`Settings`] once; its key list, merge and presence helpers follow from it.
macro_rules! settings {
    ($( $(#[$doc:meta])* $field:ident : $ty:ty ),* $(,)?) => {
        /// One layer of settings (the command line, a plan, flags): every key optional.
        /// Field names are the key names in every source.
        #[derive(Debug, Default, Clone, PartialEq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields)]
        pub struct Settings {
            $(
                $(#[$doc])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl Settings {
            /// Every key, as written in a plan and after `rescue.` on the command line.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Sets every key that `higher` sets.
            pub fn overlay(&mut self, higher: Settings) {
                $( if higher.$field.is_some() { self.$field = higher.$field; } )*
            }

            /// The keys this layer sets.
            pub fn present(&self) -> Vec<&'static str> {
                let mut out = Vec::new();
                $( if self.$field.is_some() { out.push(stringify!($field)); } )*
                out
            }
        }
    };
}

settings! {
    /// Block device of the host root.
    root: RootDevice,
    /// Plan file path or URL.
    plan: Location,
    /// Snapshot or backup location.
    source: Location,
    /// Expected sha256 of the source.
    sha256: Sha256Hex,
    /// Member name after recovery.
    name: MemberName,
    /// New IP of the member.
    advertise_address: Ip,
    /// Bump the revision (and mark it compacted).
    bump: Toggle,
    /// How far to bump.
    bump_revision: Revision,
    /// Plan and report only.
    dry_run: Toggle,
    /// What to do at the end.
    after: After,
    /// Where to POST the report.
    callback: Url,
    /// Bound on the whole recovery.
    timeout: Seconds,
    /// How long the result stays on screen.
    pause: Seconds,
    /// CA bundle for TLS sources (a path or inline PEM).
    ca: Pem,
    /// Bearer token for http(s) sources.
    http_token: Secret,
    /// S3 access key id.
    s3_access_key_id: Secret,
    /// S3 secret access key.
    s3_secret_access_key: Secret,
    /// S3 session token.
    s3_session_token: Secret,
    /// S3 region.
    s3_region: Text,
    /// S3 endpoint URL.
    s3_endpoint: Url,
    /// Client certificate for etcd sources (a path or inline PEM).
    etcd_cert: Pem,
    /// Client key for etcd sources (a path or inline PEM).
    etcd_key: Pem,
    /// CA for etcd sources (a path or inline PEM).
    etcd_cacert: Pem,
    /// Kernel modules to load before coldplug (image only; comma-separated).
    modules: Text,
    /// Report the result to QEMU's isa-debug-exit device (tests only).
    test_exit: Toggle,
    /// Network: `on` or `off` (image only; see the net module).
    net: Text,
    /// Seconds to wait for a DHCP lease (`rescue.net.timeout`).
    net_timeout: Seconds,
}

/// Boolean keys: given bare on the command line they mean true.
const TOGGLES: &[&str] = &["bump", "dry_run", "test_exit"];

impl Settings {
    /// Sets one key from its text, as every source does. `shown` is the key as the user
    /// wrote it, for errors.
    fn set(
        &mut self,
        key: &str,
        shown: &str,
        value: Option<&str>,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        if !Self::KEYS.contains(&key) {
            return Err(ConfigError::UnknownKey {
                key: shown.to_owned(),
                origin: origin.clone(),
            });
        }
        let value = match value {
            Some(v) => v,
            None if TOGGLES.contains(&key) => "1",
            None => {
                return Err(ConfigError::MissingValue {
                    key: shown.to_owned(),
                    origin: origin.clone(),
                })
            }
        };
        let mut map = serde_yaml_ng::Mapping::new();
        map.insert(key.into(), value.into());
        self.set_value(key, shown, serde_yaml_ng::Value::Mapping(map), origin)
    }

    fn set_value(
        &mut self,
        _key: &str,
        shown: &str,
        one_key_map: serde_yaml_ng::Value,
        origin: &Origin,
    ) -> Result<(), ConfigError> {
        let layer: Settings =
            serde_yaml_ng::from_value(one_key_map).map_err(|e| ConfigError::InvalidValue {
                key: shown.to_owned(),
                origin: origin.clone(),
                reason: e.to_string(),
            })?;
        self.overlay(layer);
        Ok(())
    }

    /// Parses the `rescue.*` keys of a kernel command line (`/proc/cmdline`).
    pub fn from_cmdline(cmdline: &str) -> Result<Settings, ConfigError> {
        let mut out = Settings::default();
        for param in tokenize(cmdline) {
            let Some(rest) = param.key.strip_prefix("rescue.") else {
                continue;
            };
            let key = rest.replace(['-', '.'], "_");
            out.set(&key, &param.key, param.value.as_deref(), &Origin::Cmdline)?;
        }
        Ok(out)
    }

    /// Parses a YAML plan file. `origin` names it in errors (a path or a redacted URL).
    pub fn from_plan_yaml(text: &str, origin: &str) -> Result<Settings, ConfigError> {
        let from = Origin::Plan(origin.to_owned());
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|source| ConfigError::PlanSyntax {
                path: origin.to_owned(),
                source,
            })?;
        let map = match doc {
            serde_yaml_ng::Value::Null => return Ok(Settings::default()),
            serde_yaml_ng::Value::Mapping(m) => m,
            _ => {
                return Err(ConfigError::PlanNotMapping {
                    path: origin.to_owned(),
                })
            }
        };
        let mut out = Settings::default();
        for (k, v) in map {
            let key = match k {
                serde_yaml_ng::Value::String(s) => s,
                _ => {
                    return Err(ConfigError::PlanNotMapping {
                        path: origin.to_owned(),
                    })
                }
            };
            if !Self::KEYS.contains(&key.as_str()) {
                return Err(ConfigError::UnknownKey { key, origin: from });
            }
            if key == "plan" {
                return Err(ConfigError::NestedPlan {
                    path: origin.to_owned(),
                });
            }
            let mut one = serde_yaml_ng::Mapping::new();
            one.insert(key.clone().into(), v);
            out.set_value(&key, &key, serde_yaml_ng::Value::Mapping(one), &from)?;
        }
        Ok(out)
    }

    /// The keys of this layer that hold secrets: tokens, S3 keys, an inline private key.
    pub fn secret_keys(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (key, set) in [
            ("http_token", self.http_token.is_some()),
            ("s3_secret_access_key", self.s3_secret_access_key.is_some()),
            ("s3_session_token", self.s3_session_token.is_some()),
            ("etcd_key", matches!(self.etcd_key, Some(Pem::Inline(_)))),
        ] {
            if set {
                out.push(key);
            }
        }
        out
    }

    /// Builds a layer from `(key, flag, value)` triples given as flags: `key` is the setting,
    /// `flag` the flag's name without `--`, shown in errors.
    pub fn from_flags<'a>(
        flags: impl IntoIterator<Item = (&'a str, &'a str, Option<&'a str>)>,
    ) -> Result<Settings, ConfigError> {
        let mut out = Settings::default();
        for (key, flag, value) in flags {
            out.set(key, &format!("--{flag}"), value, &Origin::Flags)?;
        }
        Ok(out)
    }
}

/// The revision bump of the restore. `etcdutl snapshot restore` requires
/// `--mark-compacted` whenever it bumps, so a bump always marks the new revision compacted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Bump {
    /// Keep the snapshot's revision.
    Off,
    /// Add `revision` to the snapshot's revision and mark it compacted.
    On {
        /// How far to bump.
        revision: u64,
    },
}

impl Bump {
    /// The default bump: 1e9, as etcd's and Kubernetes' restore docs advise.
    pub const DEFAULT_REVISION: u64 = 1_000_000_000;

    /// How far to bump (0 when off).
    pub fn revision(&self) -> u64 {
        match self {
            Bump::Off => 0,
            Bump::On { revision } => *revision,
        }
    }

    /// Whether the new revision is marked compacted.
    pub fn mark_compacted(&self) -> bool {
        matches!(self, Bump::On { .. })
    }
}

/// S3 settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct S3Settings {
    /// Access key id (secret).
    pub access_key_id: Option<Secret>,
    /// Secret access key (secret).
    pub secret_access_key: Option<Secret>,
    /// Session token (secret).
    pub session_token: Option<Secret>,
    /// Region.
    pub region: Option<String>,
    /// Endpoint of an S3-compatible store.
    pub endpoint: Option<Url>,
}

/// Client TLS files for `etcd://` sources.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EtcdClientTls {
    /// Client certificate.
    pub cert: Option<Pem>,
    /// Client key.
    pub key: Option<Pem>,
    /// CA certificate.
    pub cacert: Option<Pem>,
}

/// The resolved configuration. `Debug` and `Serialize` are redacted: log it and put it in
/// the report as it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Host root directory (`recover --root`; in the image, where the host is mounted).
    pub root: Option<PathBuf>,
    /// Block device of the host root (`rescue.root=`).
    pub root_device: Option<RootDevice>,
    /// Plan file the settings came from.
    pub plan: Option<Location>,
    /// Snapshot or backup; `None`: the newest backup discovered on the host.
    pub source: Option<Location>,
    /// Expected sha256 of the source.
    pub sha256: Option<Sha256Hex>,
    /// Member name; `None`: the host's current etcd configuration decides.
    pub name: Option<MemberName>,
    /// New IP of the member; `None`: unchanged.
    pub advertise_address: Option<IpAddr>,
    /// Revision bump.
    pub bump: Bump,
    /// Plan and report only.
    pub dry_run: bool,
    /// What the image does at the end.
    pub after: After,
    /// Where the report is POSTed.
    pub callback: Option<Url>,
    /// Bound on the whole recovery.
    #[serde(serialize_with = "secs")]
    pub timeout: Duration,
    /// How long the result stays on screen.
    #[serde(serialize_with = "secs")]
    pub pause: Duration,
    /// CA bundle for TLS sources.
    pub ca: Option<Pem>,
    /// Bearer token for http(s) sources.
    pub http_token: Option<Secret>,
    /// S3 settings.
    pub s3: S3Settings,
    /// Client TLS for etcd sources.
    pub etcd_tls: EtcdClientTls,
    /// Where each key that is not a default came from.
    pub origins: BTreeMap<&'static str, Origin>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// One layer of settings with its origin, for [`Config::resolve`].
#[derive(Debug, Clone)]
pub struct Layer {
    /// Where the settings came from.
    pub origin: Origin,
    /// The settings.
    pub settings: Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: None,
            root_device: None,
            plan: None,
            source: None,
            sha256: None,
            name: None,
            advertise_address: None,
            bump: Bump::On {
                revision: Bump::DEFAULT_REVISION,
            },
            dry_run: false,
            after: After::Reboot,
            callback: None,
            timeout: Duration::from_secs(3600),
            pause: Duration::from_secs(10),
            ca: None,
            http_token: None,
            s3: S3Settings::default(),
            etcd_tls: EtcdClientTls::default(),
            origins: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Defaults overlaid with the `rescue.*` keys of a kernel command line.
    pub fn from_cmdline(cmdline: &str) -> Result<Config, ConfigError> {
        Config::resolve(&[Layer {
            origin: Origin::Cmdline,
            settings: Settings::from_cmdline(cmdline)?,
        }])
    }

    /// In the rescue image: the command line over the plan it names (`rescue.plan=`),
    /// which the caller has fetched (expanding it with [`expand_plan_url`]) and parsed with
    /// [`Settings::from_plan_yaml`]; `plan` is `(origin, settings)`, the origin a path or a
    /// redacted URL.
    pub fn from_cmdline_and_plan(
        cmdline: Settings,
        plan: Option<(String, Settings)>,
    ) -> Result<Config, ConfigError> {
        let mut layers = Vec::new();
        if let Some((origin, settings)) = plan {
            layers.push(Layer {
                origin: Origin::Plan(origin),
                settings,
            });
        }
        layers.push(Layer {
            origin: Origin::Cmdline,
            settings: cmdline,
        });
        Config::resolve(&layers)
    }

    /// Merges layers over the defaults, lowest precedence first (plan, then command line
    /// or flags), and checks the result.
    pub fn resolve(layers: &[Layer]) -> Result<Config, ConfigError> {
        let mut merged = Settings::default();
        let mut origins = BTreeMap::new();
        for layer in layers {
            for key in layer.settings.present() {
                origins.insert(key, layer.origin.clone());
            }
            merged.overlay(layer.settings.clone());
        }
        let s = merged;
        let bump_on = s.bump.is_none_or(|t| t.0);
        let cfg = Config {
            root: None,
            root_device: s.root,
            plan: s.plan,
            source: s.source,
            sha256: s.sha256,
            name: s.name,
            advertise_address: s.advertise_address.map(|ip| ip.0),
            bump: if bump_on {
                Bump::On {
                    revision: s.bump_revision.map_or(Bump::DEFAULT_REVISION, |r| r.0),
                }
            } else {
                Bump::Off
            },
            dry_run: s.dry_run.is_some_and(|t| t.0),
            after: s.after.unwrap_or_default(),
            callback: s.callback,
            timeout: s.timeout.map_or(Duration::from_secs(3600), |t| t.0),
            pause: s.pause.map_or(Duration::from_secs(10), |t| t.0),
            ca: s.ca,
            http_token: s.http_token,
            s3: S3Settings {
                access_key_id: s.s3_access_key_id,
                secret_access_key: s.s3_secret_access_key,
                session_token: s.s3_session_token,
                region: s.s3_region.map(|t| t.0),
                endpoint: s.s3_endpoint,
            },
            etcd_tls: EtcdClientTls {
                cert: s.etcd_cert,
                key: s.etcd_key,
                cacert: s.etcd_cacert,
            },
            origins,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let conflict = |reason: &str| {
            Err(ConfigError::Conflict {
                reason: reason.to_owned(),
            })
        };
        if let Some(scheme) = self.source.as_ref().and_then(Location::scheme) {
            if !matches!(scheme, "http" | "https" | "s3" | "etcd") {
                return conflict("source: scheme must be http, https, s3 or etcd (or a path)");
            }
            if scheme == "http" && self.sha256.is_none() {
                return conflict("a plain http:// source needs sha256 to pin its content");
            }
        }
        if let Some(scheme) = self.plan.as_ref().and_then(Location::scheme) {
            if !matches!(scheme, "http" | "https") {
                return conflict("plan: scheme must be http or https (or a path)");
            }
        }
        for (key, url) in [
            ("callback", &self.callback),
            ("s3_endpoint", &self.s3.endpoint),
        ] {
            if let Some(u) = url {
                if !matches!(u.scheme(), "http" | "https") {
                    return conflict(&format!("{key}: scheme must be http or https"));
                }
            }
        }
        if self.s3.access_key_id.is_some() != self.s3.secret_access_key.is_some() {
            return conflict("s3_access_key_id and s3_secret_access_key go together");
        }
        if self.etcd_tls.cert.is_some() != self.etcd_tls.key.is_some() {
            return conflict("etcd_cert and etcd_key go together");
        }
        Ok(())
    }

    /// The redacted configuration as JSON, for the report.
    pub fn to_report_json(&self) -> serde_json::Value {
        // Serialising plain data with string keys into a `Value` cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Machine facts a plan URL may name: `${mac}`, `${hostname}`, `${uuid}` (DMI product UUID).
#[derive(Debug, Clone, Default)]
pub struct PlanVars {
    /// MAC of the boot interface, lowercase with colons.
    pub mac: Option<String>,
    /// Host name.
    pub hostname: Option<String>,
    /// DMI product UUID.
    pub uuid: Option<String>,
}

/// Expands `${mac}`, `${hostname}` and `${uuid}` in a plan URL, as matchbox and Talos do.
/// An unknown variable, or one this machine does not have, is an error.
pub fn expand_plan_url(template: &str, vars: &PlanVars) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(ConfigError::Template {
                reason: "unterminated ${".into(),
            });
        };
        let name = &after[..end];
        let value = match name {
            "mac" => vars.mac.as_deref(),
            "hostname" => vars.hostname.as_deref(),
            "uuid" => vars.uuid.as_deref(),
            _ => {
                return Err(ConfigError::Template {
                    reason: format!("unknown variable ${{{name}}}"),
                })
            }
        };
        let Some(value) = value else {
            return Err(ConfigError::Template {
                reason: format!("${{{name}}} is not known on this machine"),
            });
        };
        for b in value.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads and parses a plan file (read-only).
pub fn load_plan_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadPlan {
        path: path.to_owned(),
        source,
    })?;
    Settings::from_plan_yaml(&text, &path.display().to_string())
}

/// Reads the kernel command line (read-only); `path` is `/proc/cmdline` outside tests.
pub fn read_cmdline(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadCmdline {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
