//! `http://` and `https://` sources: a blocking reqwest client over rustls (ring), TLS always
//! verified against the built-in Mozilla roots plus an optional CA bundle (or that bundle
//! alone), redirects bounded, plain http only with a sha256 pin, and resume with `Range:`
//! after a dropped connection. Also the transport of the S3 source.
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_RANGE, RANGE};
use reqwest::{StatusCode, Url};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::staging::CHUNK;
use super::{redact, Pem, SourceError, SourceOptions, Staging, TlsFiles};
use crate::progress::Progress;

/// Reads every certificate of a PEM bundle.
pub(crate) fn read_pem_certs(ca: &Pem) -> Result<Vec<CertificateDer<'static>>, SourceError> {
    let pem = ca.read().map_err(|source| SourceError::CaFile {
        pem: ca.to_string(),
        source,
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| SourceError::CaPem {
            pem: ca.to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(SourceError::CaPem {
            pem: ca.to_string(),
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// A rustls client config with the ring provider: built-in roots and/or the CA bundle.
pub(crate) fn rustls_config(tls: &TlsFiles) -> Result<rustls::ClientConfig, SourceError> {
    let mut roots = rustls::RootCertStore::empty();
    if !tls.ca_only || tls.ca.is_none() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(ca) = &tls.ca {
        for cert in read_pem_certs(ca)? {
            roots.add(cert).map_err(|e| SourceError::CaPem {
                pem: ca.to_string(),
                reason: e.to_string(),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::TlsSetup {
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

/// The error a redirect policy returns; found again in the chain to name it.
#[derive(Debug)]
struct RedirectRefused {
    to_http: Option<String>,
}

impl std::fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.to_http {
            Some(to) => write!(f, "redirect to plain http {to} refused"),
            None => f.write_str("too many redirects"),
        }
    }
}

impl std::error::Error for RedirectRefused {}

/// A blocking client: rustls with ring, bounded redirects (never to plain http unless
/// `allow_http`), per-read timeout.
pub(crate) fn client(opts: &SourceOptions, allow_http: bool) -> Result<Client, SourceError> {
    let max = opts.max_redirects;
    let policy = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > max {
            return attempt.error(RedirectRefused { to_http: None });
        }
        if attempt.url().scheme() == "http" && !allow_http {
            let to = redact(attempt.url().as_str());
            return attempt.error(RedirectRefused { to_http: Some(to) });
        }
        attempt.follow()
    });
    Client::builder()
        .use_preconfigured_tls(rustls_config(&opts.tls)?)
        .redirect(policy)
        .connect_timeout(opts.connect_timeout)
        // In the blocking client this bounds each read, not the whole transfer.
        .timeout(opts.io_timeout)
        .user_agent(concat!("rescue-init/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SourceError::TlsSetup {
            reason: e.to_string(),
        })
}

fn find<'a, T: std::error::Error + 'static>(
    e: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        // io::Error::source() skips the error it wraps: look inside too.
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<T>()) {
                return Some(t);
            }
        }
        cur = c.source();
    }
    None
}

/// What went wrong with one request, before deciding whether to retry.
pub(crate) enum Failure {
    /// Not worth retrying (TLS, redirects, refused connection on the first try, HTTP status).
    Fatal(SourceError),
    /// A dropped or stalled connection: retry and resume.
    Transient(Box<dyn std::error::Error + Send + Sync>),
}

pub(crate) fn classify(e: reqwest::Error, shown: &str, max_redirects: usize) -> Failure {
    // reqwest's message names the full URL, query string (a presigned signature) included.
    let e = e.without_url();
    if let Some(r) = find::<RedirectRefused>(&e) {
        return Failure::Fatal(match &r.to_http {
            Some(to) => SourceError::RedirectToHttp {
                url: shown.to_string(),
                to: to.clone(),
            },
            None => SourceError::TooManyRedirects {
                url: shown.to_string(),
                max: max_redirects,
            },
        });
    }
    if e.is_redirect() {
        return Failure::Fatal(SourceError::TooManyRedirects {
            url: shown.to_string(),
            max: max_redirects,
        });
    }
    let tls = find::<rustls::Error>(&e).is_some() || crate::cli::chain(&e).contains("certificate");
    if tls {
        return Failure::Fatal(SourceError::Tls {
            url: shown.to_string(),
            source: Box::new(e),
        });
    }
    if e.is_connect() {
        return Failure::Fatal(SourceError::Connect {
            url: shown.to_string(),
            source: Box::new(e),
        });
    }
    Failure::Transient(Box::new(e))
}

/// `bytes START-END/TOTAL` → (START, TOTAL).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = if total == "*" {
        None
    } else {
        Some(total.parse().ok()?)
    };
    Some((start.parse().ok()?, total))
}

fn header_u64(h: &HeaderMap, name: reqwest::header::HeaderName) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Decides what to do with a non-success response. `on_error` turns a body into a typed error
/// (S3's XML); plain HTTP gets `HttpStatus`.
pub(crate) type ErrorBody<'a> = &'a dyn Fn(StatusCode, &str) -> SourceError;

/// Downloads `url` into `staging`, resuming with `Range:` after a dropped connection (up to
/// `opts.retries` times), with an `If-Range` on the first response's ETag so a changed file
/// restarts from zero. `prepare` adds per-request headers (S3 signs each attempt).
#[allow(clippy::too_many_arguments)]
pub(crate) fn download(
    client: &Client,
    url: &Url,
    shown: &str,
    opts: &SourceOptions,
    prepare: &dyn Fn(&Url, RequestBuilder) -> RequestBuilder,
    on_error: ErrorBody<'_>,
    staging: &mut Staging,
    progress: &mut Progress,
) -> Result<(), SourceError> {
    let mut attempts: u32 = 0;
    let mut url = url.clone();
    let mut total: Option<u64> = None;
    let mut etag: Option<String> = None;
    let mut started = false;
    loop {
        attempts += 1;
        let offset = staging.len();
        let mut req = client.get(url.clone());
        if offset > 0 {
            req = req.header(RANGE, format!("bytes={offset}-"));
            if let Some(tag) = &etag {
                req = req.header(IF_RANGE, tag.as_str());
            }
        }
        let req = prepare(&url, req);
        let outcome = match req.send() {
            Ok(resp) => receive(
                resp,
                shown,
                offset,
                &mut total,
                &mut etag,
                &mut url,
                &mut started,
                on_error,
                staging,
                progress,
            ),
            Err(e) => {
                // A refused connection on a retry is transient: the server may be restarting.
                match classify(e, shown, opts.max_redirects) {
                    Failure::Fatal(SourceError::Connect { source, .. }) if attempts > 1 => {
                        Err(Failure::Transient(source))
                    }
                    f => Err(f),
                }
            }
        };
        match outcome {
            Ok(()) => {
                progress.finish();
                return Ok(());
            }
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Transient(source)) => {
                if attempts > opts.retries {
                    return Err(SourceError::Transfer {
                        url: shown.to_string(),
                        attempts,
                        source,
                    });
                }
                log::warn!(
                    "download of {shown} interrupted at {} bytes ({source}); resuming (attempt {} of {})",
                    staging.len(),
                    attempts + 1,
                    opts.retries + 1
                );
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempts.min(10))));
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn receive(
    mut resp: Response,
    shown: &str,
    offset: u64,
    total: &mut Option<u64>,
    etag: &mut Option<String>,
    url: &mut Url,
    started: &mut bool,
    on_error: ErrorBody<'_>,
    staging: &mut Staging,
    progress: &mut Progress,
) -> Result<(), Failure> {
    let status = resp.status();
    let fatal = Failure::Fatal;
    // Later attempts go straight to where the redirects led (a presigned URL, a mirror).
    *url = resp.url().clone();
    match status {
        StatusCode::OK => {
            if offset > 0 {
                // The server ignored Range, or the file changed (If-Range): start over.
                log::warn!("{shown} restarted from byte 0 (no resume or the file changed)");
                staging.restart().map_err(fatal)?;
            }
            *total = header_u64(resp.headers(), CONTENT_LENGTH);
            *etag = resp
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .filter(|t| !t.starts_with("W/"))
                .map(str::to_string);
        }
        StatusCode::PARTIAL_CONTENT if offset > 0 => {
            let value = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bad = || {
                Failure::Fatal(SourceError::BadContentRange {
                    url: shown.to_string(),
                    value: value.clone(),
                    offset,
                })
            };
            let (start, t) = parse_content_range(&value).ok_or_else(bad)?;
            if start != offset || (t.is_some() && total.is_some() && t != *total) {
                return Err(bad());
            }
            if total.is_none() {
                *total = t;
            }
        }
        s => {
            let mut body = String::new();
            let _ = (&mut resp).take(64 << 10).read_to_string(&mut body);
            return Err(fatal(on_error(s, &body)));
        }
    }
    if !*started {
        progress.start("downloading", total.unwrap_or(0));
        *started = true;
    }
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Transient(Box::new(e))),
        };
        staging.write(&buf[..n]).map_err(fatal)?;
        if let Some(t) = *total {
            if staging.len() > t {
                return Err(fatal(SourceError::Length {
                    url: shown.to_string(),
                    expected: t,
                    got: staging.len(),
                }));
            }
        }
        progress.set(staging.len());
    }
    if let Some(t) = *total {
        if staging.len() < t {
            // A clean close before the announced length: a dropped connection.
            return Err(Failure::Transient(
                format!("connection closed at {} of {t} bytes", staging.len()).into(),
            ));
        }
    }
    Ok(())
}

/// An `http(s)://` URL (also a presigned S3 URL).
pub struct HttpSource {
    url: Url,
    shown: String,
    opts: SourceOptions,
    client: Client,
}

impl HttpSource {
    pub fn new(url: &str, opts: &SourceOptions) -> Result<Self, SourceError> {
        let shown = redact(url);
        let url = Url::parse(url).map_err(|e| SourceError::InvalidUrl {
            url: shown.clone(),
            reason: e.to_string(),
        })?;
        let allow_http = opts.sha256.is_some() || opts.insecure_http;
        if url.scheme() == "http" && !allow_http {
            return Err(SourceError::PlainHttpNeedsPin { url: shown });
        }
        Ok(HttpSource {
            client: client(opts, allow_http)?,
            url,
            shown,
            opts: opts.clone(),
        })
    }
}

/// Adds `Authorization: Bearer` for requests to the origin of `first` only: a resume that
/// goes straight to where a redirect led (a mirror, a presigned URL) never gets the token,
/// just as reqwest drops it on a redirect to another host.
pub(crate) fn bearer<'a>(
    token: Option<&'a super::Secret>,
    first: &Url,
) -> impl Fn(&Url, RequestBuilder) -> RequestBuilder + 'a {
    let origin = first.origin();
    move |u: &Url, r: RequestBuilder| match token {
        Some(t) if u.origin() == origin => r.bearer_auth(t.expose()),
        _ => r,
    }
}

/// The error for a non-success status of a plain http(s) request to `url`; `body` is what the
/// server said (S3 names its refusal of a presigned URL there), `token` whether a bearer token
/// was sent.
pub(crate) fn status_error(
    shown: &str,
    url: &Url,
    status: StatusCode,
    body: &str,
    token: bool,
) -> SourceError {
    if !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return SourceError::HttpStatus {
            url: shown.to_string(),
            status: status.as_u16(),
        };
    }
    let hint = if is_presigned(url) {
        let code = super::s3::tag(body, "Code").unwrap_or_else(|| "refused".into());
        format!("the presigned URL was refused ({code}): it expired or its signature does not match; presign it again")
    } else if token {
        "the bearer token (http_token) was refused; check it".into()
    } else {
        "the server wants credentials: give a bearer token (http_token in the plan or rescue.http_token=) or a presigned URL".into()
    };
    SourceError::HttpAuth {
        url: shown.to_string(),
        status: status.as_u16(),
        hint,
    }
}

/// Whether a URL is presigned (S3 SigV4 or V2, GCS): its query string is the credential.
fn is_presigned(url: &Url) -> bool {
    url.query_pairs().any(|(k, _)| {
        ["x-amz-signature", "signature", "x-goog-signature"]
            .iter()
            .any(|p| k.eq_ignore_ascii_case(p))
    })
}

impl super::SnapshotSource for HttpSource {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    fn file_name(&self) -> Option<String> {
        self.url
            .path_segments()
            .and_then(|mut s| s.next_back().map(str::to_owned))
            .filter(|n| !n.is_empty())
    }

    fn fetch(&self, staging: &mut Staging, progress: &mut Progress) -> Result<(), SourceError> {
        let shown = self.shown.clone();
        let token = self.opts.http_token.as_ref();
        let url = &self.url;
        let on_error = move |status: StatusCode, body: &str| {
            status_error(&shown, url, status, body, token.is_some())
        };
        download(
            &self.client,
            &self.url,
            &self.shown,
            &self.opts,
            &bearer(token, &self.url),
            &on_error,
            staging,
            progress,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_and_bearer_origin() {
        let u = |s: &str| Url::parse(s).expect("url");
        assert!(is_presigned(&u(
            "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab"
        )));
        assert!(is_presigned(&u("https://h/k?AWSAccessKeyId=x&Signature=y")));
        assert!(!is_presigned(&u("https://h/k?version=2")));
        // The token goes to the first URL's origin only.
        let token = super::super::Secret::new("t");
        let client = Client::new();
        let auth = bearer(Some(&token), &u("https://a.example/x"));
        let with = |url: &str| {
            auth(&u(url), client.get(url))
                .build()
                .expect("request")
                .headers()
                .contains_key(reqwest::header::AUTHORIZATION)
        };
        assert!(with("https://a.example/y"));
        assert!(!with("https://b.example/x"));
        assert!(!with("https://a.example:8443/x"));
        assert!(!with("http://a.example/x"));
    }

    #[test]
    fn content_range() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some((100, Some(200)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes */200"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn plain_http_needs_a_pin() {
        let e = HttpSource::new("http://127.0.0.1:1/x?sig=secret", &SourceOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("sha256 pin") && !e.contains("secret"), "{e}");
    }
}
