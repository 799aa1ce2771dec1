//! Minimal text edits of etcd and control-plane configuration. Pure: functions over
//! `&str` that return new text; the only effect is the read-only loader [`read_text`].
//!
//! After a restore the etcd configuration must describe ONE member: its `--name`,
//! `--initial-cluster=NAME=PEER_URL`, `--initial-cluster-state=new`, its peer and client
//! URLs, and no `--force-new-cluster`. When the member moves to a new IP, the listen URLs,
//! the kubeadm annotations, the probe hosts and kube-apiserver's `--advertise-address` and
//! `--etcd-servers` follow. This module finds every place a setting lives in the host's
//! configuration and replaces exactly the bytes of its value: every other byte of the file,
//! comments, order, quoting and indentation included, stays as it was. YAML is never
//! re-serialised.
//!
//! File kinds ([`FileKind`]):
//! - kubeadm static pod manifests (`etc/kubernetes/manifests/etcd.yaml` and
//!   `kube-apiserver.yaml`): `- --flag=value` items, the `kubeadm.kubernetes.io/...`
//!   annotations, `host:` of probes;
//! - systemd units: `ExecStart=` with `--flag value` or `--flag=value`, continuation lines,
//!   quotes, and `Environment=ETCD_*=` assignments;
//! - environment files (`/etc/etcd/etcd.conf`, `EnvironmentFile=`): `ETCD_NAME=...` as etcd
//!   reads them (the flag name upper-cased, `-` as `_`), quotes kept;
//! - etcd's own YAML configuration file (`--config-file`, `/etc/etcd/etcd.conf.yml`):
//!   top-level flag keys and the `*-transport-security` TLS keys;
//! - kubeadm configuration files (`ClusterConfiguration`, e.g. Cray CSM's
//!   `/etc/kubernetes/kubeadmcfg.yaml`): `etcd.local.extraArgs` as a map (v1beta3) or as a
//!   list of `name`/`value` pairs (v1beta4), `etcd.local.dataDir`, and
//!   `localAPIEndpoint.advertiseAddress`.
//!
//! [`extract`] reads the current settings from any of these, so `recover` can take the
//! member name and URLs from the host zero-config; [`Target::plan`] computes the wanted
//! member (overrides and the IP move applied); [`rewrite`] edits a file towards it.
//! Rewriting a rewritten file changes nothing and says so ([`Rewritten::changed`]).
//! [`unified_diff`] renders the edit for the report and `--dry-run`.
mod diff;
mod envfile;
mod host;
mod systemd;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use diff::unified_diff;
pub use host::{
    current_settings, load_host_config, rewrite_files, ConfigFile, FileRewrite, KNOWN_PATHS,
};

/// Errors of the rewriter.
#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    /// A configuration file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file too large to be one.
    #[error("{path} is {size} bytes, too large for a configuration file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A configuration file is not UTF-8 text.
    #[error("{path} is not utf-8 text")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// The current configuration lacks a setting the target needs.
    #[error("the host's etcd configuration does not say {setting}; give it explicitly")]
    MissingSetting {
        /// The etcd flag (or what it stands for).
        setting: &'static str,
    },
    /// A URL whose host cannot be found.
    #[error("cannot find the host in url {url}")]
    BadUrl {
        /// The URL.
        url: String,
    },
}

/// The kinds of files that hold etcd or control-plane settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// kubeadm's `manifests/etcd.yaml`.
    EtcdManifest,
    /// kubeadm's `manifests/kube-apiserver.yaml`.
    ApiServerManifest,
    /// A systemd unit (or drop-in) running etcd.
    SystemdUnit,
    /// An environment file with `ETCD_*=` lines.
    EnvFile,
    /// A kubeadm configuration file (`ClusterConfiguration` and friends).
    KubeadmConfig,
    /// etcd's own YAML configuration file (`--config-file`).
    EtcdConfigFile,
}

impl FileKind {
    /// Guesses the kind from the path and the content; `None` if it holds no etcd settings.
    pub fn detect(path: &Path, text: &str) -> Option<FileKind> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
        if yaml && text.contains("kubeadm.k8s.io/") {
            return Some(FileKind::KubeadmConfig);
        }
        if yaml
            && text
                .lines()
                .any(|l| l.starts_with("initial-cluster:") || l.starts_with("data-dir:"))
        {
            return Some(FileKind::EtcdConfigFile);
        }
        if yaml && text.contains("kind: Pod") {
            if text.contains("component: etcd") || name == "etcd.yaml" {
                return Some(FileKind::EtcdManifest);
            }
            if text.contains("component: kube-apiserver") || name == "kube-apiserver.yaml" {
                return Some(FileKind::ApiServerManifest);
            }
            return None;
        }
        if name.ends_with(".service") || name.ends_with(".conf") && text.contains("[Service]") {
            return text.contains("etcd").then_some(FileKind::SystemdUnit);
        }
        text.lines()
            .any(|l| {
                let l = l.trim_start();
                let l = l.strip_prefix("export ").unwrap_or(l);
                l.starts_with("ETCD_") && l.contains('=')
            })
            .then_some(FileKind::EnvFile)
    }
}

/// How a value is quoted where it stands; new values are written the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// Bare.
    Plain,
    /// `'...'`
    Single,
    /// `"..."`
    Double,
}

/// One place in a file that holds a setting.
#[derive(Debug, Clone)]
struct Site {
    /// What the place holds: an etcd flag name (`initial-cluster`), or one of the
    /// `SITE_*` names.
    setting: String,
    /// The current value, unquoted.
    value: String,
    /// The bytes to replace when the value changes.
    span: Range<usize>,
    /// How to write the replacement for `span` from a new value.
    render: Render,
    /// The bytes to delete to drop the setting.
    remove: Range<usize>,
    /// 1-based line of the value.
    line: usize,
    /// The value refers to a variable (`$X`, `${X}`) and is left alone.
    indirect: bool,
}

/// How the text replacing a site's span is made from the new value.
#[derive(Debug, Clone)]
enum Render {
    /// Just the value, quoted as before.
    Value(Quote),
    /// `prefix` + value, quoted as before as one word (`--name=x`, `ETCD_NAME=x`).
    Prefixed(String, Quote),
}

/// kubeadm's annotation of the etcd pod with the client URLs.
const SITE_ETCD_ANNOTATION: &str = "annotation kubeadm.kubernetes.io/etcd.advertise-client-urls";
/// kubeadm's annotation of the apiserver pod with `ip:port`.
const SITE_APISERVER_ANNOTATION: &str =
    "annotation kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint";
/// `host:` of an httpGet probe.
const SITE_PROBE_HOST: &str = "probe host";
/// `localAPIEndpoint.advertiseAddress` of a kubeadm configuration.
const SITE_KUBEADM_ADVERTISE: &str = "localAPIEndpoint.advertiseAddress";

/// The settings found in one file: flag names without dashes (`initial-cluster`) mapped to
/// the values the program would see. For the apiserver manifest these are apiserver flags.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EtcdSettings {
    /// Flag → value (last occurrence wins, as with Go flags).
    pub flags: BTreeMap<String, String>,
    /// Flags whose value names a variable (`${ETCD_NAME}`, `%H`): not in `flags`; their
    /// values live elsewhere (an environment file, see [`EtcdSettings::fill_from`]).
    pub indirect: Vec<String>,
}

impl EtcdSettings {
    /// The value of a flag.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.flags.get(flag).map(String::as_str)
    }

    /// A comma-separated flag as a list.
    pub fn list(&self, flag: &str) -> Vec<String> {
        self.get(flag).map(split_list).unwrap_or_default()
    }

    /// `--name`.
    pub fn name(&self) -> Option<&str> {
        self.get("name")
    }

    /// `--data-dir`.
    pub fn data_dir(&self) -> Option<&str> {
        self.get("data-dir")
    }

    /// `--initial-cluster` as (name, peer URL) pairs.
    pub fn initial_cluster(&self) -> Vec<(String, String)> {
        self.list("initial-cluster")
            .into_iter()
            .filter_map(|e| e.split_once('=').map(|(n, u)| (n.to_owned(), u.to_owned())))
            .collect()
    }

    /// Fills in what `other` has and this lacks (for a unit plus its environment file:
    /// flags on the command line win over the environment, as in etcd).
    pub fn fill_from(&mut self, other: &EtcdSettings) {
        for (k, v) in &other.flags {
            self.flags.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// Reads the settings of one file.
pub fn extract(kind: FileKind, text: &str) -> EtcdSettings {
    let mut out = EtcdSettings::default();
    for site in sites(kind, text) {
        if site.setting.contains(' ') || site.setting == SITE_KUBEADM_ADVERTISE {
            continue;
        }
        if site.indirect {
            out.indirect.push(site.setting);
            continue;
        }
        out.flags.insert(site.setting, site.value);
    }
    out.indirect.sort();
    out.indirect.dedup();
    out
}

fn sites(kind: FileKind, text: &str) -> Vec<Site> {
    match kind {
        FileKind::EtcdManifest | FileKind::ApiServerManifest => yaml::manifest_sites(text),
        FileKind::KubeadmConfig => yaml::kubeadm_sites(text),
        FileKind::SystemdUnit => systemd::sites(text),
        FileKind::EnvFile => envfile::sites(text),
        FileKind::EtcdConfigFile => yaml::etcd_config_sites(text),
    }
}

/// The member etcd must be after the recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// `--name`.
    pub name: String,
    /// `--initial-advertise-peer-urls`, and the URLs of `--initial-cluster`.
    pub peer_urls: Vec<String>,
    /// `--advertise-client-urls`.
    pub client_urls: Vec<String>,
    /// The address move, if any: every other place holding `from` gets `to`.
    pub moved: Option<Move>,
}

/// A member's move to a new address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// The hosts the member had (IPs or names, without brackets): first the host of its
    /// peer URL, then any added with [`Target::also_move`].
    pub from: Vec<String>,
    /// The new IP.
    pub to: IpAddr,
}

impl Target {
    /// Computes the member from the host's current etcd settings, with an optional new name
    /// and an optional new IP. Peer and client URLs keep scheme and port; with a new IP every
    /// URL whose host was the member's old host gets the new one (loopback and wildcard
    /// listen addresses stay).
    pub fn plan(
        current: &EtcdSettings,
        name: Option<&str>,
        new_ip: Option<IpAddr>,
    ) -> Result<Target, RewriteError> {
        let current_name = current.name().map(str::to_owned);
        let name = name
            .map(str::to_owned)
            .or_else(|| current_name.clone())
            .ok_or(RewriteError::MissingSetting { setting: "--name" })?;
        let mut peer_urls = current.list("initial-advertise-peer-urls");
        if peer_urls.is_empty() {
            // Fall back on this member's entries of --initial-cluster.
            let me = current_name.as_deref().unwrap_or(&name);
            peer_urls = current
                .initial_cluster()
                .into_iter()
                .filter(|(n, _)| n == me)
                .map(|(_, u)| u)
                .collect();
        }
        if peer_urls.is_empty() {
            return Err(RewriteError::MissingSetting {
                setting: "--initial-advertise-peer-urls",
            });
        }
        let mut client_urls = current.list("advertise-client-urls");
        if client_urls.is_empty() {
            return Err(RewriteError::MissingSetting {
                setting: "--advertise-client-urls",
            });
        }
        let moved = match new_ip {
            None => None,
            Some(to) => {
                let from = url_host(&peer_urls[0])
                    .ok_or_else(|| RewriteError::BadUrl {
                        url: peer_urls[0].clone(),
                    })?
                    .to_owned();
                let m = Move {
                    from: vec![from],
                    to,
                };
                peer_urls = peer_urls.iter().map(|u| m.url(u)).collect();
                client_urls = client_urls.iter().map(|u| m.url(u)).collect();
                Some(m)
            }
        };
        Ok(Target {
            name,
            peer_urls,
            client_urls,
            moved,
        })
    }

    /// With a move, also moves `host` (e.g. the apiserver's old `--advertise-address` when
    /// etcd's peer URL names the member by a host name). No-op without a move.
    pub fn also_move(&mut self, host: &str) {
        if let Some(m) = self.moved.as_mut() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if !m.was(host) {
                m.from.push(host.to_owned());
            }
        }
    }

    /// `--initial-cluster` for the single member.
    pub fn initial_cluster(&self) -> String {
        self.peer_urls
            .iter()
            .map(|u| format!("{}={u}", self.name))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Move {
    /// Whether `host` is one the member moves away from.
    fn was(&self, host: &str) -> bool {
        self.from.iter().any(|f| same_host(host, f))
    }

    /// The URL with its host moved if it was the old host.
    pub fn url(&self, url: &str) -> String {
        match url_host_range(url) {
            Some(r) if self.was(&url[r.clone()]) => {
                let host = match self.to {
                    IpAddr::V6(v6) => format!("[{v6}]"),
                    IpAddr::V4(v4) => v4.to_string(),
                };
                format!("{}{host}{}", &url[..r.start], &url[r.end..])
            }
            _ => url.to_owned(),
        }
    }

    /// A bare host (no brackets), moved if it was the old host.
    pub fn host(&self, host: &str) -> String {
        if self.was(host) {
            self.to.to_string()
        } else {
            host.to_owned()
        }
    }

    /// `host:port`, moved if the host was the old host.
    pub fn endpoint(&self, endpoint: &str) -> String {
        let (host, port) = match endpoint.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p),
            _ => return self.host(endpoint),
        };
        if !self.was(host) {
            return endpoint.to_owned();
        }
        match self.to {
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            IpAddr::V4(v4) => format!("{v4}:{port}"),
        }
    }

    fn list(&self, value: &str) -> String {
        split_list(value)
            .iter()
            .map(|u| self.url(u))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn same_host(a: &str, b: &str) -> bool {
    let strip = |h: &str| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    };
    let (a, b) = (strip(a), strip(b));
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The byte range of the host in `scheme://host:port/...` (brackets of IPv6 included).
fn url_host_range(url: &str) -> Option<Range<usize>> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..auth_end];
    let host_start = auth.rfind('@').map_or(0, |i| i + 1);
    let hostport = &auth[host_start..];
    let host_len = if hostport.starts_with('[') {
        hostport.find(']')? + 1
    } else {
        hostport.find(':').unwrap_or(hostport.len())
    };
    if host_len == 0 {
        return None;
    }
    let s = start + host_start;
    Some(s..s + host_len)
}

/// The host of a URL, without IPv6 brackets.
pub fn url_host(url: &str) -> Option<&str> {
    url_host_range(url).map(|r| url[r].trim_start_matches('[').trim_end_matches(']'))
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a rewrite wants at one site.
enum Want {
    Keep,
    Set(String),
    Remove,
}

fn want(kind: FileKind, site: &Site, t: &Target) -> Want {
    let moved = |f: &dyn Fn(&Move) -> String| match &t.moved {
        Some(m) => Want::Set(f(m)),
        None => Want::Keep,
    };
    let apiserver = kind == FileKind::ApiServerManifest;
    match site.setting.as_str() {
        SITE_PROBE_HOST => moved(&|m| m.host(&site.value)),
        SITE_KUBEADM_ADVERTISE => moved(&|m| m.host(&site.value)),
        SITE_APISERVER_ANNOTATION => moved(&|m| m.endpoint(&site.value)),
        SITE_ETCD_ANNOTATION => Want::Set(t.client_urls.join(",")),
        "advertise-address" if apiserver => moved(&|m| m.host(&site.value)),
        "etcd-servers" if apiserver => moved(&|m| m.list(&site.value)),
        _ if apiserver => Want::Keep,
        "name" => Want::Set(t.name.clone()),
        "initial-cluster" => Want::Set(t.initial_cluster()),
        "initial-cluster-state" => Want::Set("new".into()),
        "initial-advertise-peer-urls" => Want::Set(t.peer_urls.join(",")),
        "advertise-client-urls" => Want::Set(t.client_urls.join(",")),
        "listen-peer-urls" | "listen-client-urls" | "listen-metrics-urls" => {
            moved(&|m| m.list(&site.value))
        }
        "force-new-cluster" => Want::Remove,
        _ => Want::Keep,
    }
}

/// One edit made by [`rewrite`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// 1-based line in the old file.
    pub line: usize,
    /// The setting (flag name, annotation, ...).
    pub setting: String,
    /// The old value.
    pub old: String,
    /// The new value; `None` when the setting was removed.
    pub new: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.new {
            Some(n) => write!(
                f,
                "line {}: {}: {} -> {}",
                self.line, self.setting, self.old, n
            ),
            None => write!(
                f,
                "line {}: {}: {} removed",
                self.line, self.setting, self.old
            ),
        }
    }
}

/// The result of [`rewrite`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rewritten {
    /// The kind the file was rewritten as.
    pub kind: FileKind,
    /// The new text (equal to the old one when nothing changed).
    pub text: String,
    /// The edits, in file order.
    pub changes: Vec<Change>,
    /// EtcdSettings left alone because their value names a variable (`${ETCD_NAME}`).
    pub indirect: Vec<String>,
}

impl Rewritten {
    /// Whether the file changes; `false` means it already matched the target.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// Rewrites a file towards `target`, replacing only the bytes of changed values.
pub fn rewrite(kind: FileKind, text: &str, target: &Target) -> Rewritten {
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let mut changes = Vec::new();
    let mut indirect = Vec::new();
    for site in sites(kind, text) {
        let w = want(kind, &site, target);
        if site.indirect {
            if !matches!(w, Want::Keep) {
                indirect.push(site.setting.clone());
            }
            continue;
        }
        match w {
            Want::Keep => {}
            Want::Set(v) if v == site.value => {}
            Want::Set(v) => {
                edits.push((site.span.clone(), render(&site.render, &v)));
                changes.push(Change {
                    line: site.line,
                    setting: site.setting.clone(),
                    old: site.value.clone(),
                    new: Some(v),
                });
            }
            Want::Remove => {
                edits.push((site.remove.clone(), String::new()));
                changes.push(Change {
                    line: site.line,
                    setting: site.setting.clone(),
                    old: site.value.clone(),
                    new: None,
                });
            }
        }
    }
    edits.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len() + 64);
    let mut pos = 0;
    for (range, new) in edits {
        if range.start < pos {
            continue; // overlapping edit (a removed line holding another site): skip it
        }
        out.push_str(&text[pos..range.start]);
        out.push_str(&new);
        pos = range.end;
    }
    out.push_str(&text[pos..]);
    changes.sort_by_key(|c| c.line);
    indirect.sort();
    indirect.dedup();
    Rewritten {
        kind,
        text: out,
        changes,
        indirect,
    }
}

fn render(r: &Render, value: &str) -> String {
    match r {
        Render::Value(q) => quote(*q, value),
        Render::Prefixed(prefix, q) => quote(*q, &format!("{prefix}{value}")),
    }
}

/// Quotes `s` in the given style. Plain text that YAML or a shell would misread is
/// double-quoted instead.
fn quote(q: Quote, s: &str) -> String {
    match q {
        Quote::Plain if plain_safe(s) => s.to_owned(),
        Quote::Single => format!("'{}'", s.replace('\'', "''")),
        Quote::Plain | Quote::Double => {
            format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
        }
    }
}

fn plain_safe(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| "?:,[]{}#&*!|>'\"%@`$ ".contains(c))
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\' || c == ' ')
}

/// Files larger than this are not configuration files.
pub const MAX_CONFIG_SIZE: u64 = 4 << 20;

/// Reads a configuration file as text (read-only), refusing more than
/// [`MAX_CONFIG_SIZE`] bytes.
pub fn read_text(path: &Path) -> Result<String, RewriteError> {
    use std::io::Read;
    let read_err = |source| RewriteError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_SIZE {
        return Err(RewriteError::TooLarge {
            path: path.to_owned(),
            size: std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len()),
        });
    }
    String::from_utf8(bytes).map_err(|_| RewriteError::NotText {
        path: path.to_owned(),
    })
}

/// Byte offsets of line starts, for 1-based line numbers.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].bytes().filter(|b| *b == b'\n').count() + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod oracle_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
