//! Snapshot sources: where a backup comes from when the host disk has none. Each source
//! streams its bytes into a staging file that the caller names (on the host disk, beside the
//! target data dir), computing the sha256 in the same pass, with bounded memory and progress;
//! the caller then restores from that file with [`crate::snapshot::restore`].
//!
//! This module is the only one that talks to the network. It writes only its staging file,
//! which it removes on any failure (a wrong pin leaves nothing behind).
//!
//! URLs (`--source`, `rescue.source=`):
//! - a local path or `file:///path`: used in place (hashed only when a pin is given);
//! - `https://host/path` (and `http://` only with a sha256 pin): resumable with `Range:`;
//!   a presigned S3 URL is one of these;
//! - `s3://bucket/key`, or `s3://bucket/prefix/latest` for the newest object under `prefix/`;
//! - `etcd://host:2379[,host2:2379]`: a snapshot streamed from a surviving member over mTLS.
//!
//! URLs shown to people (errors, logs, reports) go through [`redact`]: no password, no query
//! string (a presigned URL's signature is a credential).
mod etcd;
pub mod fleet;
mod http;
mod s3;
mod secret;
pub mod sigv4;
mod staging;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

pub use crate::pem::Pem;
use crate::progress::Progress;

pub use etcd::EtcdSource;
pub use http::HttpSource;
pub use s3::{pick_latest, S3Object, S3Source};
pub use secret::Secret;
pub use staging::{Fetched, Staging};

/// Why a snapshot could not be fetched. Messages name the (redacted) URL and the fix.
#[derive(Debug, Error)]
pub enum SourceError {
    #[error("invalid source {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "invalid sha256 pin {value:?}: expected 64 hex digits (optionally prefixed by `sha256:`)"
    )]
    BadPin { value: String },
    #[error("refusing plain http for {url}: nothing would prove the bytes are the right ones; give a sha256 pin (--sha256 / rescue.sha256=) or use https")]
    PlainHttpNeedsPin { url: String },
    #[error("cannot read CA bundle {pem}")]
    CaFile {
        pem: String,
        #[source]
        source: std::io::Error,
    },
    #[error("CA bundle {pem} holds no usable PEM certificate ({reason})")]
    CaPem { pem: String, reason: String },
    #[error("cannot read client certificate or key {pem}")]
    ClientCert {
        pem: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup failed: {reason}")]
    TlsSetup { reason: String },
    #[error("TLS with {url} failed: the server's certificate is not trusted or the handshake was refused; pass the CA that signed it with --cacert (rescue.ca= or the plan's ca:)")]
    Tls {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot connect to {url}; check the address, the network and that the server runs")]
    Connect {
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("too many redirects (more than {max}) or a redirect loop from {url}")]
    TooManyRedirects { url: String, max: usize },
    #[error("redirect from {url} to plain http {to} refused without a sha256 pin")]
    RedirectToHttp { url: String, to: String },
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url} answered HTTP {status}: {hint}")]
    HttpAuth {
        url: String,
        status: u16,
        hint: String,
    },
    #[error("download of {url} failed after {attempts} attempts")]
    Transfer {
        url: String,
        attempts: u32,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{url} sent {got} bytes but announced {expected}")]
    Length {
        url: String,
        expected: u64,
        got: u64,
    },
    #[error("{url} answered a resume request with an unusable Content-Range {value:?} (asked from byte {offset})")]
    BadContentRange {
        url: String,
        value: String,
        offset: u64,
    },
    #[error("sha256 of {url} is {actual}, the pin says {expected}: wrong file or wrong pin (nothing was kept)")]
    Sha256Mismatch {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{op} staging file {path}")]
    Staging {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no space left while writing {path}; free space on the host disk or pick another directory"
    )]
    DiskFull { path: PathBuf },
    #[error("no S3 credentials for {url}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the plan's s3 keys), or use a presigned https URL")]
    S3NoCredentials { url: String },
    #[error("S3 refused {url}: {code} ({message}); check the access key, the secret key, the region (--s3-region) and the bucket's permissions")]
    S3Denied {
        url: String,
        code: String,
        message: String,
    },
    #[error("S3 bucket of {url} does not exist (NoSuchBucket); check the bucket name and the endpoint (--s3-endpoint)")]
    S3NoSuchBucket { url: String },
    #[error("S3 object {url} does not exist (NoSuchKey); check the key, or use .../latest to pick the newest")]
    S3NoSuchKey { url: String },
    #[error("no object under {url}: the prefix is empty or wrong")]
    S3Empty { url: String },
    #[error("S3 error from {url}: HTTP {status} {code} ({message})")]
    S3 {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("S3 listing of {url} is malformed: {reason}")]
    S3Listing { url: String, reason: String },
    #[error("etcd source {url} needs the etcd CA and a client certificate, and none was given or found on the host or in a backup: pass --cacert, --cert and --key (rescue.etcd_cacert=, rescue.etcd_cert=, rescue.etcd_key= or the plan's keys), e.g. /etc/kubernetes/pki/etcd/ca.crt and healthcheck-client.crt/.key")]
    EtcdNeedsTls { url: String },
    #[error("no etcd member of {url} gave a snapshot; tried: {}", tried.join("; "))]
    EtcdAllFailed { url: String, tried: Vec<String> },
    #[error("cannot start the etcd client runtime")]
    Runtime(#[source] std::io::Error),
    #[error("cannot read local snapshot {path}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SourceError {
    pub(crate) fn staging(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| {
            if crate::errors::is_disk_full(&source) {
                return SourceError::DiskFull { path };
            }
            SourceError::Staging { op, path, source }
        }
    }
}

/// A sha256 the fetched bytes must have.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Pin(pub [u8; 32]);

impl Sha256Pin {
    /// 64 hex digits, optionally prefixed by `sha256:` or `sha256=`.
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let bad = || SourceError::BadPin {
            value: s.to_string(),
        };
        let t = s.trim();
        let t = t
            .strip_prefix("sha256:")
            .or_else(|| t.strip_prefix("sha256="))
            .unwrap_or(t);
        if t.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(t.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16)
                .map_err(|_| bad())?;
        }
        Ok(Sha256Pin(out))
    }
}

impl fmt::Display for Sha256Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for Sha256Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{self}")
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// TLS material: PEM files or inline PEM.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// CA bundle added to the built-in roots (or used alone with `ca_only`) for https and s3;
    /// also for etcd when `etcd_ca` is not set.
    pub ca: Option<Pem>,
    /// Trust only `ca`, not the built-in roots.
    pub ca_only: bool,
    /// CA of the etcd members, when it differs from `ca`.
    pub etcd_ca: Option<Pem>,
    /// Client certificate (etcd mTLS).
    pub cert: Option<Pem>,
    /// Client key (etcd mTLS).
    pub key: Option<Pem>,
}

/// Static S3 keys.
#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl S3Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and the optional `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok()?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok()?;
        let token = std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|t| !t.is_empty());
        Some(S3Credentials {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        })
    }
}

/// Where S3 is and how to sign for it.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// e.g. `https://s3.example.net:3900`; requests are then path-style. Default: AWS.
    pub endpoint: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    pub credentials: Option<S3Credentials>,
}

/// Everything a source needs besides its URL.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub sha256: Option<Sha256Pin>,
    pub tls: TlsFiles,
    pub s3: S3Options,
    /// Accept plain http without a pin (a lab on loopback). Integrity then rests only on the
    /// snapshot's own sha256 trailer, which guards against corruption, not against an attacker.
    pub insecure_http: bool,
    /// Bearer token sent to the origin of an http(s) source, plan or callback URL.
    pub http_token: Option<Secret>,
    /// Attempts after the first on a dropped connection (each resumes with `Range:`).
    pub retries: u32,
    pub max_redirects: usize,
    pub connect_timeout: Duration,
    /// Longest wait for any single read or write.
    pub io_timeout: Duration,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            sha256: None,
            tls: TlsFiles::default(),
            s3: S3Options::default(),
            insecure_http: false,
            http_token: None,
            retries: 5,
            max_redirects: 5,
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(60),
        }
    }
}

/// A parsed `--source` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceUrl {
    File(PathBuf),
    Http(String),
    S3 {
        bucket: String,
        /// The object key, or the prefix to list when `latest`.
        key: String,
        latest: bool,
    },
    Etcd {
        endpoints: Vec<String>,
    },
}

impl SourceUrl {
    /// Parses a source URL (pure).
    pub fn parse(s: &str) -> Result<Self, SourceError> {
        let invalid = |reason: &str| SourceError::InvalidUrl {
            url: redact(s),
            reason: reason.to_string(),
        };
        let s = s.trim();
        if s.is_empty() {
            return Err(invalid("empty"));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            if s.contains(':') && !s.starts_with('/') && !s.starts_with('.') {
                return Err(invalid(
                    "unknown form; use a path, file://, http(s)://, s3:// or etcd://",
                ));
            }
            return Ok(SourceUrl::File(PathBuf::from(s)));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "file" => {
                let path = rest.strip_prefix("localhost").unwrap_or(rest);
                if !path.starts_with('/') {
                    return Err(invalid("file:// needs an absolute path (file:///path)"));
                }
                Ok(SourceUrl::File(PathBuf::from(path)))
            }
            "http" | "https" => {
                if rest.starts_with('/') {
                    return Err(invalid("no host"));
                }
                let u = reqwest::Url::parse(s).map_err(|e| invalid(&e.to_string()))?;
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("no host"));
                }
                Ok(SourceUrl::Http(s.to_string()))
            }
            "s3" => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() || bucket.contains(['?', '#', '@', ':']) {
                    return Err(invalid(
                        "expected s3://bucket/key or s3://bucket/prefix/latest",
                    ));
                }
                if key.contains(['?', '#']) {
                    return Err(invalid("no query or fragment in s3:// URLs"));
                }
                let (key, latest) = if key == "latest" {
                    (String::new(), true)
                } else if let Some(prefix) = key.strip_suffix("/latest") {
                    (format!("{prefix}/"), true)
                } else if key.is_empty() || key.ends_with('/') {
                    return Err(invalid(
                        "no object key; name the object or end with /latest for the newest",
                    ));
                } else {
                    (key.to_string(), false)
                };
                Ok(SourceUrl::S3 {
                    bucket: bucket.to_string(),
                    key,
                    latest,
                })
            }
            "etcd" => {
                let list = rest.trim_end_matches('/');
                let mut endpoints = Vec::new();
                for ep in list.split(',') {
                    let ep = ep.trim();
                    if ep.is_empty() {
                        continue;
                    }
                    if ep.contains(['/', '@', '?']) {
                        return Err(invalid("expected etcd://host:port[,host:port]"));
                    }
                    let with_port = if ep.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && !h.ends_with(':') && p.parse::<u16>().is_ok()
                    }) {
                        ep.to_string()
                    } else if ep.starts_with('[') && ep.ends_with(']') || !ep.contains(':') {
                        format!("{ep}:2379")
                    } else {
                        return Err(invalid("bad host:port"));
                    };
                    endpoints.push(with_port);
                }
                if endpoints.is_empty() {
                    return Err(invalid("no endpoint"));
                }
                Ok(SourceUrl::Etcd { endpoints })
            }
            other => Err(invalid(&format!(
                "unsupported scheme {other:?}; use a path, file://, http(s)://, s3:// or etcd://"
            ))),
        }
    }
}

/// The URL as it may be shown: no password, no query string, no fragment.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let cut = rest.find(['?', '#']).unwrap_or(rest.len());
    let (main, tail) = rest.split_at(cut);
    let (authority, path) = main.split_at(main.find('/').unwrap_or(main.len()));
    let authority = match authority.rsplit_once('@') {
        Some((_userinfo, host)) => format!("<redacted>@{host}"),
        None => authority.to_string(),
    };
    let tail = if tail.starts_with('?') {
        "?<redacted>"
    } else {
        ""
    };
    format!("{scheme}://{authority}{path}{tail}")
}

/// A place a snapshot can be fetched from.
pub trait SnapshotSource {
    /// A redacted description for logs and reports (never a secret).
    fn describe(&self) -> String;

    /// Streams the snapshot into `staging`. The staging file's hash covers exactly the bytes
    /// on disk at every moment, so a source may resume from `staging.len()`.
    fn fetch(&self, staging: &mut Staging, progress: &mut Progress) -> Result<(), SourceError>;

    /// A local file usable in place, without a copy.
    fn local_path(&self) -> Option<&Path> {
        None
    }

    /// The file's name at the origin (the URL's last segment, the S3 key's base name), so that
    /// a fetched backup keeps the name its layout may be recognised by. Known after `fetch`
    /// for `s3://…/latest`.
    fn file_name(&self) -> Option<String> {
        None
    }
}

/// A local file (or `file://`).
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
}

impl SnapshotSource for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn fetch(&self, staging: &mut Staging, progress: &mut Progress) -> Result<(), SourceError> {
        let local = |source| SourceError::Local {
            path: self.path.clone(),
            source,
        };
        let mut f = std::fs::File::open(&self.path).map_err(local)?;
        let total = f.metadata().map_err(local)?.len();
        progress.start("copying snapshot", total);
        staging.copy_from(&mut f, progress).map_err(|e| match e {
            staging::CopyError::Read(source) => local(source),
            staging::CopyError::Write(e) => e,
        })?;
        progress.finish();
        Ok(())
    }

    fn local_path(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

/// Opens the source a URL names.
pub fn open(url: &str, opts: &SourceOptions) -> Result<Box<dyn SnapshotSource>, SourceError> {
    Ok(match SourceUrl::parse(url)? {
        SourceUrl::File(path) => Box::new(FileSource { path }),
        SourceUrl::Http(u) => Box::new(HttpSource::new(&u, opts)?),
        SourceUrl::S3 {
            bucket,
            key,
            latest,
        } => Box::new(S3Source::new(bucket, key, latest, opts)?),
        SourceUrl::Etcd { endpoints } => Box::new(EtcdSource::new(endpoints, opts)?),
    })
}

/// Fetches `source` into a new staging file in `dir` (on the same filesystem as the data dir
/// the caller restores into), checks `pin`, and returns the file. A local source is used in
/// place (hashed only when pinned). On any error nothing is left in `dir`.
pub fn fetch(
    source: &dyn SnapshotSource,
    dir: &Path,
    pin: Option<&Sha256Pin>,
    progress: &mut Progress,
) -> Result<Fetched, SourceError> {
    if let Some(path) = source.local_path() {
        return staging::check_local(path, pin, progress);
    }
    let mut staging = Staging::create(dir)?;
    source.fetch(&mut staging, progress)?;
    staging.finish(&source.describe(), pin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let cases: &[(&str, SourceUrl)] = &[
            (
                "/var/backups/snap.db",
                SourceUrl::File("/var/backups/snap.db".into()),
            ),
            ("./snap.db", SourceUrl::File("./snap.db".into())),
            ("file:///srv/s.db", SourceUrl::File("/srv/s.db".into())),
            (
                "https://h.example/a/b.db?x=1",
                SourceUrl::Http("https://h.example/a/b.db?x=1".into()),
            ),
            (
                "s3://bkt/etcd/snap-2024.db",
                SourceUrl::S3 {
                    bucket: "bkt".into(),
                    key: "etcd/snap-2024.db".into(),
                    latest: false,
                },
            ),
            (
                "s3://bkt/etcd/latest",
                SourceUrl::S3 {
                    bucket: "bkt".into(),
                    key: "etcd/".into(),
                    latest: true,
                },
            ),
            (
                "s3://bkt/latest",
                SourceUrl::S3 {
                    bucket: "bkt".into(),
                    key: String::new(),
                    latest: true,
                },
            ),
            (
                "etcd://10.0.0.1:2379,10.0.0.2",
                SourceUrl::Etcd {
                    endpoints: vec!["10.0.0.1:2379".into(), "10.0.0.2:2379".into()],
                },
            ),
            (
                "etcd://[fd00::1]:2379",
                SourceUrl::Etcd {
                    endpoints: vec!["[fd00::1]:2379".into()],
                },
            ),
        ];
        for (s, want) in cases {
            assert_eq!(&SourceUrl::parse(s).expect("ok"), want, "{s}");
        }
        for bad in [
            "",
            "ftp://x/y",
            "s3://",
            "s3://bkt/",
            "s3://bkt/dir/",
            "etcd://",
            "file://rel/path",
            "https:///nohost",
            "host:2379",
        ] {
            assert!(SourceUrl::parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn redacts_secrets() {
        assert_eq!(
            redact("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA"),
            "https://b.s3.amazonaws.com/k?<redacted>"
        );
        assert_eq!(
            redact("https://user:pw@h.example:8443/p#frag"),
            "https://<redacted>@h.example:8443/p"
        );
        assert_eq!(redact("s3://bkt/k"), "s3://bkt/k");
        let e = SourceUrl::parse("ftp://u:secret@h/x?token=zzz").expect_err("should fail");
        let shown = e.to_string();
        assert!(
            !shown.contains("secret") && !shown.contains("zzz"),
            "{shown}"
        );
    }

    #[test]
    fn parses_pins() {
        let h = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let p = Sha256Pin::parse(h).expect("ok");
        assert_eq!(p.to_string(), h);
        assert_eq!(Sha256Pin::parse(&format!("sha256:{h}")).expect("ok"), p);
        assert_eq!(Sha256Pin::parse(&h.to_uppercase()).expect("ok"), p);
        assert!(Sha256Pin::parse(&h[1..]).is_err());
        assert!(Sha256Pin::parse(&format!("{}zz", &h[2..])).is_err());
    }
}
