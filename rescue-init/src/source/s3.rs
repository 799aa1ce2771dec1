//! `s3://bucket/key` and `s3://bucket/prefix/latest` against any S3-compatible store: SigV4
//! with static keys ([`super::sigv4`]), path-style requests for a custom endpoint
//! (virtual-hosted on AWS), ListObjectsV2 to pick the newest object, GetObject streamed and
//! resumable like any https download. A presigned URL is an ordinary https source instead.
use std::io::Read;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::{StatusCode, Url};

use super::http::{self, classify, Failure};
use super::sigv4::{self, uri_encode, EMPTY_SHA256};
use super::{S3Credentials, SnapshotSource, SourceError, SourceOptions, Staging};
use crate::progress::Progress;

/// Most pages a `latest` listing reads (1000 keys each).
const MAX_LIST_PAGES: usize = 1000;

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub key: String,
    /// As the server sent it (ISO 8601, e.g. `2024-05-01T10:00:00.000Z`).
    pub last_modified: String,
    pub size: u64,
}

/// An S3 object, named or the newest under a prefix.
pub struct S3Source {
    bucket: String,
    key: String,
    latest: bool,
    endpoint: Url,
    path_style: bool,
    region: String,
    creds: Option<S3Credentials>,
    opts: SourceOptions,
    client: Client,
    /// The key `fetch` downloaded (for `latest`, the one the listing chose).
    fetched_key: std::cell::OnceCell<String>,
}

impl S3Source {
    pub fn new(
        bucket: String,
        key: String,
        latest: bool,
        opts: &SourceOptions,
    ) -> Result<Self, SourceError> {
        let region = opts
            .s3
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_string());
        let shown = shown_url(&bucket, &key, latest);
        let (endpoint, path_style) = match &opts.s3.endpoint {
            Some(e) => (
                Url::parse(e).map_err(|err| SourceError::InvalidUrl {
                    url: super::redact(e),
                    reason: format!("bad S3 endpoint: {err}"),
                })?,
                true,
            ),
            None => (
                Url::parse(&format!("https://s3.{region}.amazonaws.com")).map_err(|err| {
                    SourceError::InvalidUrl {
                        url: shown.clone(),
                        reason: format!("bad region {region:?}: {err}"),
                    }
                })?,
                false,
            ),
        };
        // A plain-http endpoint is the operator's explicit choice (MinIO and Garage serve
        // http by default). The requests are signed, the answers are not: without a pin, only
        // the snapshot's own sha256 trailer (always checked before a restore) guards what
        // arrives, against damage but not against someone on the path. Say so.
        let plain = endpoint.scheme() == "http";
        if plain && opts.sha256.is_none() && !opts.insecure_http {
            log::warn!(
                "{shown}: the S3 endpoint {} is plain http and no sha256 pin was given; only the snapshot's own sha256 trailer will vouch for what arrives",
                super::redact(endpoint.as_str())
            );
        }
        Ok(S3Source {
            client: http::client(opts, plain)?,
            bucket,
            key,
            latest,
            endpoint,
            path_style,
            region,
            creds: opts.s3.credentials.clone(),
            opts: opts.clone(),
            fetched_key: std::cell::OnceCell::new(),
        })
    }

    fn shown(&self, key: &str) -> String {
        shown_url(&self.bucket, key, false)
    }

    /// The URL of `key` (empty: the bucket itself) with an optional query.
    fn url(&self, key: &str, query: &[(String, String)]) -> Result<Url, SourceError> {
        let mut u = self.endpoint.clone();
        let base = u.path().trim_end_matches('/').to_string();
        let path = if self.path_style {
            format!(
                "{base}/{}/{}",
                uri_encode(&self.bucket, false),
                uri_encode(key, true)
            )
        } else {
            let host = format!("{}.{}", self.bucket, u.host_str().unwrap_or_default());
            u.set_host(Some(&host))
                .map_err(|e| SourceError::InvalidUrl {
                    url: self.shown(key),
                    reason: format!("bad bucket name for a host: {e}"),
                })?;
            format!("{base}/{}", uri_encode(key, true))
        };
        u.set_path(&path);
        if query.is_empty() {
            u.set_query(None);
        } else {
            u.set_query(Some(&sigv4::canonical_query(query)));
        }
        Ok(u)
    }

    fn creds(&self, shown: &str) -> Result<&S3Credentials, SourceError> {
        self.creds
            .as_ref()
            .ok_or_else(|| SourceError::S3NoCredentials {
                url: shown.to_string(),
            })
    }

    /// Adds SigV4 headers to a GET of `url`, signed now.
    fn sign(&self, creds: &S3Credentials, url: &Url, req: RequestBuilder) -> RequestBuilder {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = sigv4::amz_date(now);
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut headers = vec![
            ("host".to_string(), host),
            ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
            ("x-amz-date".to_string(), date.clone()),
        ];
        if let Some(t) = &creds.session_token {
            headers.push(("x-amz-security-token".to_string(), t.expose().to_string()));
        }
        // The query as sent, decoded back into pairs, so the canonical form matches.
        let query: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let scope = sigv4::Scope {
            amz_date: &date,
            region: &self.region,
            service: "s3",
        };
        let auth = sigv4::authorization(
            &creds.access_key_id,
            creds.secret_access_key.expose(),
            &scope,
            &sigv4::Request {
                method: "GET",
                canonical_uri: url.path(),
                query: &query,
                headers: &headers,
                payload_sha256: EMPTY_SHA256,
            },
        );
        let mut req = req.header("authorization", auth);
        for (k, v) in headers.into_iter().filter(|(k, _)| k != "host") {
            req = req.header(k, v);
        }
        req
    }

    /// Every object under the prefix (ListObjectsV2, all pages).
    pub fn list(&self) -> Result<Vec<S3Object>, SourceError> {
        let shown = shown_url(&self.bucket, &self.key, true);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut query = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), self.key.clone()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token".to_string(), t.clone()));
            }
            let url = self.url("", &query)?;
            let req = self.sign(self.creds(&shown)?, &url, self.client.get(url.clone()));
            let mut resp = req.send().map_err(|e| match classify(e, &shown, 0) {
                Failure::Fatal(f) => f,
                Failure::Transient(source) => SourceError::Transfer {
                    url: shown.clone(),
                    attempts: 1,
                    source,
                },
            })?;
            let status = resp.status();
            let mut body = String::new();
            (&mut resp)
                .take(64 << 20)
                .read_to_string(&mut body)
                .map_err(|e| SourceError::Transfer {
                    url: shown.clone(),
                    attempts: 1,
                    source: Box::new(e),
                })?;
            if !status.is_success() {
                return Err(s3_error(&shown, status, &body));
            }
            let page = parse_list(&body).map_err(|reason| SourceError::S3Listing {
                url: shown.clone(),
                reason,
            })?;
            out.extend(page.objects);
            match page.next {
                Some(t) if page.truncated => token = Some(t),
                _ => return Ok(out),
            }
        }
        Err(SourceError::S3Listing {
            url: shown,
            reason: format!("more than {MAX_LIST_PAGES} pages; use a narrower prefix"),
        })
    }

    /// The key to download: the named one, or the newest under the prefix.
    pub fn resolve(&self) -> Result<String, SourceError> {
        if !self.latest {
            return Ok(self.key.clone());
        }
        let objects = self.list()?;
        let best = pick_latest(&objects).ok_or_else(|| SourceError::S3Empty {
            url: shown_url(&self.bucket, &self.key, true),
        })?;
        log::info!(
            "newest of {} objects under {}: {} ({}, {} bytes)",
            objects.len(),
            shown_url(&self.bucket, &self.key, true),
            best.key,
            best.last_modified,
            best.size
        );
        Ok(best.key.clone())
    }
}

fn shown_url(bucket: &str, key: &str, latest: bool) -> String {
    if latest {
        format!("s3://{bucket}/{key}latest")
    } else {
        format!("s3://{bucket}/{key}")
    }
}

impl SnapshotSource for S3Source {
    fn describe(&self) -> String {
        format!(
            "{} at {} (region {})",
            shown_url(&self.bucket, &self.key, self.latest),
            super::redact(self.endpoint.as_str()),
            self.region
        )
    }

    fn file_name(&self) -> Option<String> {
        let key = self.fetched_key.get().unwrap_or(&self.key);
        key.rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
    }

    fn fetch(&self, staging: &mut Staging, progress: &mut Progress) -> Result<(), SourceError> {
        let key = self.resolve()?;
        let _ = self.fetched_key.set(key.clone());
        let shown = self.shown(&key);
        let url = self.url(&key, &[])?;
        let creds = self.creds(&shown)?;
        // Signed again for every attempt: a resume may come minutes later.
        let prepare = |u: &Url, r: RequestBuilder| self.sign(creds, u, r);
        let on_error = |status: StatusCode, body: &str| s3_error(&shown, status, body);
        http::download(
            &self.client,
            &url,
            &shown,
            &self.opts,
            &prepare,
            &on_error,
            staging,
            progress,
        )
    }
}

/// A typed error from an S3 error response (`<Error><Code>…`).
fn s3_error(url: &str, status: StatusCode, body: &str) -> SourceError {
    let code = tag(body, "Code").unwrap_or_default();
    let message = tag(body, "Message").unwrap_or_default();
    let url = url.to_string();
    match code.as_str() {
        "NoSuchBucket" => SourceError::S3NoSuchBucket { url },
        "NoSuchKey" => SourceError::S3NoSuchKey { url },
        _ if status == StatusCode::FORBIDDEN
            || matches!(
                code.as_str(),
                "AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId"
            ) =>
        {
            SourceError::S3Denied {
                url,
                code: if code.is_empty() {
                    "403 Forbidden".into()
                } else {
                    code
                },
                message,
            }
        }
        _ => SourceError::S3 {
            url,
            status: status.as_u16(),
            code,
            message,
        },
    }
}

/// The text of the first `<name>…</name>` in `xml`, unescaped.
pub(crate) fn tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml.get(start..)?.find(&close)?;
    Some(unescape(xml.get(start..end)?))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let ent = &after[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

struct ListPage {
    objects: Vec<S3Object>,
    truncated: bool,
    next: Option<String>,
}

fn parse_list(xml: &str) -> Result<ListPage, String> {
    if !xml.contains("<ListBucketResult") {
        return Err("no ListBucketResult element".into());
    }
    let mut objects = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find("<Contents>") {
        let body = &rest[i..];
        let end = body
            .find("</Contents>")
            .ok_or("unterminated Contents element")?;
        let item = &body[..end];
        let key = tag(item, "Key").ok_or("Contents without Key")?;
        objects.push(S3Object {
            key,
            last_modified: tag(item, "LastModified").unwrap_or_default(),
            size: tag(item, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
        });
        rest = &body[end..];
    }
    Ok(ListPage {
        objects,
        truncated: tag(xml, "IsTruncated").is_some_and(|t| t == "true"),
        next: tag(xml, "NextContinuationToken"),
    })
}

/// A timestamp in an object's name, as `YYYYMMDDhhmmss`: the digits of the last path
/// component when they start like a date (`etcd-2024-05-01T10-00-00.db`,
/// `snapshot_20240501100000.db`, `…-20240501.db`), or ten digits of Unix seconds.
pub fn name_timestamp(key: &str) -> Option<u64> {
    let name = key.rsplit('/').next().unwrap_or(key);
    let groups: Vec<&str> = name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    if let [single] = groups.as_slice() {
        if single.len() == 10 && !single.starts_with("19") && !single.starts_with("20") {
            let secs: u64 = single.parse().ok()?;
            let stamp = sigv4::amz_date(secs);
            return stamp.replace('T', "").trim_end_matches('Z').parse().ok();
        }
    }
    // From the first group that starts with a plausible year.
    let start = groups
        .iter()
        .position(|g| g.len() >= 4 && (g.starts_with("19") || g.starts_with("20")))?;
    let mut digits = String::new();
    for g in &groups[start..] {
        if digits.len() >= 14 {
            break;
        }
        digits.push_str(g);
    }
    if digits.len() < 8 {
        return None;
    }
    if digits.len() == 10 {
        // Unix seconds starting with 19/20 (2030-2033, 1972-1976): still seconds.
        let secs: u64 = digits.parse().ok()?;
        let stamp = sigv4::amz_date(secs);
        return stamp.replace('T', "").trim_end_matches('Z').parse().ok();
    }
    digits.truncate(14);
    while digits.len() < 14 {
        digits.push('0');
    }
    digits.parse().ok()
}

/// The newest object: by the timestamps in the names when every candidate has one, else by
/// LastModified; ties broken by key. Directory markers and empty objects are skipped.
pub fn pick_latest(objects: &[S3Object]) -> Option<&S3Object> {
    let candidates: Vec<&S3Object> = objects
        .iter()
        .filter(|o| !o.key.ends_with('/') && o.size > 0)
        .collect();
    let stamps: Option<Vec<u64>> = candidates.iter().map(|o| name_timestamp(&o.key)).collect();
    match stamps {
        Some(stamps) if !stamps.is_empty() => candidates
            .iter()
            .zip(stamps)
            .max_by(|(a, sa), (b, sb)| {
                sa.cmp(sb)
                    .then_with(|| a.last_modified.cmp(&b.last_modified))
                    .then_with(|| a.key.cmp(&b.key))
            })
            .map(|(o, _)| *o),
        _ => candidates.into_iter().max_by(|a, b| {
            a.last_modified
                .cmp(&b.last_modified)
                .then_with(|| a.key.cmp(&b.key))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, lm: &str) -> S3Object {
        S3Object {
            key: key.into(),
            last_modified: lm.into(),
            size: 10,
        }
    }

    #[test]
    fn timestamps_in_names() {
        for (name, want) in [
            (
                "etcd/etcd-backup-2024-05-01T10-20-30.db",
                Some(20240501102030),
            ),
            ("snap_20240501102030.db", Some(20240501102030)),
            ("x/etcd-20240501.db", Some(20240501000000)),
            ("bare-1714558830.db", Some(20240501102030)),
            ("v3/snapshot.db", None),
            ("etcd-3.5.1.db", None),
        ] {
            assert_eq!(name_timestamp(name), want, "{name}");
        }
    }

    #[test]
    fn latest_by_name_then_by_last_modified() {
        // Names say 2024-05-02 is newest even though it was uploaded first.
        let by_name = [
            obj("p/etcd-2024-05-02T00-00-00.db", "2024-06-01T00:00:00.000Z"),
            obj("p/etcd-2024-05-03T00-00-00.db", "2024-05-01T00:00:00.000Z"),
            obj("p/etcd-2024-04-30T23-59-59.db", "2024-07-01T00:00:00.000Z"),
            obj("p/", "2030-01-01T00:00:00.000Z"),
        ];
        assert_eq!(
            pick_latest(&by_name).map(|o| o.key.as_str()),
            Some("p/etcd-2024-05-03T00-00-00.db")
        );
        let mixed = [
            obj("p/snapshot.db", "2024-06-01T00:00:00.000Z"),
            obj("p/etcd-2024-05-03.db", "2024-05-01T00:00:00.000Z"),
        ];
        assert_eq!(
            pick_latest(&mixed).map(|o| o.key.as_str()),
            Some("p/snapshot.db")
        );
        assert_eq!(pick_latest(&[]), None);
    }

    #[test]
    fn parses_listing_and_errors() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>
<Contents><Key>p/a&amp;b.db</Key><LastModified>2024-05-01T00:00:00.000Z</LastModified><Size>42</Size></Contents>
<Contents><Key>p/c.db</Key><LastModified>2024-05-02T00:00:00.000Z</LastModified><Size>7</Size></Contents>
</ListBucketResult>"#;
        let page = parse_list(xml).expect("ok");
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "p/a&b.db");
        assert_eq!(page.objects[0].size, 42);
        assert!(page.truncated);
        assert_eq!(page.next.as_deref(), Some("tok&1"));
        let err = "<Error><Code>NoSuchBucket</Code><Message>b</Message></Error>";
        assert!(matches!(
            s3_error("s3://b/k", StatusCode::NOT_FOUND, err),
            SourceError::S3NoSuchBucket { .. }
        ));
        let err = "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>";
        assert!(matches!(
            s3_error("s3://b/k", StatusCode::FORBIDDEN, err),
            SourceError::S3Denied { .. }
        ));
    }
}
