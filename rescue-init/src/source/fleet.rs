//! The network side of fleet plans and callbacks: `rescue.plan=URL` with `${mac}`,
//! `${hostname}`, `${uuid}` substituted (as matchbox and Talos do), fetched into memory with a
//! size bound, and `rescue.callback=URL` receiving the report as JSON. TLS is verified always,
//! as for snapshot sources; plain http is allowed (see [`parse`]), and the recovery refuses a
//! plain-http plan that carries secrets. `http_token` is sent as a bearer token.
use std::io::Read;

use reqwest::StatusCode;

use super::http::{bearer, classify, client, status_error, Failure};
use super::{redact, SourceError, SourceOptions};

/// The largest plan accepted (a plan is a small TOML/JSON document).
pub const MAX_PLAN_BYTES: u64 = 1 << 20;

/// Values substituted into a plan URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineVars {
    /// MAC of the boot interface, lower case with colons (`52:54:00:12:34:56`).
    pub mac: Option<String>,
    pub hostname: Option<String>,
    /// `/sys/class/dmi/id/product_uuid`, lower case.
    pub uuid: Option<String>,
}

/// Substitutes `${mac}`, `${hostname}`, `${uuid}` (also `${mac-dashes}` = `52-54-00-…`, the
/// form iPXE and matchbox use in paths). Values are URI-encoded. An unknown name or a value
/// that is not known on this machine is an error naming it.
pub fn expand(template: &str, vars: &MachineVars) -> Result<String, SourceError> {
    let invalid = |reason: String| SourceError::InvalidUrl {
        url: redact(template),
        reason,
    };
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| invalid("unterminated ${".into()))?;
        let name = &after[..end];
        let value = match name {
            "mac" => vars.mac.clone(),
            "mac-dashes" => vars.mac.as_ref().map(|m| m.replace(':', "-")),
            "hostname" => vars.hostname.clone(),
            "uuid" => vars.uuid.clone(),
            other => {
                return Err(invalid(format!(
                    "unknown variable ${{{other}}} (known: mac, mac-dashes, hostname, uuid)"
                )))
            }
        }
        .ok_or_else(|| invalid(format!("${{{name}}} is not known on this machine")))?;
        out.push_str(&super::sigv4::uri_encode(&value, false).replace("%3A", ":"));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Plans and callbacks may use plain http: the kernel and initramfs of a PXE boot came over
/// the same network unauthenticated, and fleet servers (matchbox) often serve http. A plan
/// fetched so is logged as such; https is the choice for plans that carry secrets.
fn parse(url: &str) -> Result<(reqwest::Url, String), SourceError> {
    let shown = redact(url);
    let u = reqwest::Url::parse(url).map_err(|e| SourceError::InvalidUrl {
        url: shown.clone(),
        reason: e.to_string(),
    })?;
    match u.scheme() {
        "https" => {}
        "http" => log::warn!("{shown} is plain http: its content is not protected in transit"),
        other => {
            return Err(SourceError::InvalidUrl {
                url: shown,
                reason: format!("unsupported scheme {other:?} (use https://)"),
            })
        }
    }
    Ok((u, shown))
}

fn send_error(e: reqwest::Error, shown: &str, opts: &SourceOptions) -> SourceError {
    match classify(e, shown, opts.max_redirects) {
        Failure::Fatal(f) => f,
        Failure::Transient(source) => SourceError::Transfer {
            url: shown.to_string(),
            attempts: 1,
            source,
        },
    }
}

/// Fetches a small document (a plan) into memory, at most `MAX_PLAN_BYTES`.
pub fn fetch_document(url: &str, opts: &SourceOptions) -> Result<Vec<u8>, SourceError> {
    let (u, shown) = parse(url)?;
    let c = client(opts, true)?;
    let token = opts.http_token.as_ref();
    let resp = bearer(token, &u)(&u, c.get(u.clone()))
        .send()
        .map_err(|e| send_error(e, &shown, opts))?;
    let status = resp.status();
    if status != StatusCode::OK {
        return Err(status_error(&shown, &u, status, "", token.is_some()));
    }
    let mut body = Vec::new();
    resp.take(MAX_PLAN_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| SourceError::Transfer {
            url: shown.clone(),
            attempts: 1,
            source: Box::new(e),
        })?;
    if body.len() as u64 > MAX_PLAN_BYTES {
        return Err(SourceError::Length {
            url: shown,
            expected: MAX_PLAN_BYTES,
            got: body.len() as u64,
        });
    }
    Ok(body)
}

/// POSTs `json` (the report, already redacted by its producer) to a callback URL, retrying
/// up to `opts.retries` times on connection errors and 5xx. Returns the final status.
pub fn post_report(url: &str, json: &str, opts: &SourceOptions) -> Result<u16, SourceError> {
    let (u, shown) = parse(url)?;
    let c = client(opts, true)?;
    let token = opts.http_token.as_ref();
    let auth = bearer(token, &u);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let sent = auth(&u, c.post(u.clone()))
            .header("content-type", "application/json")
            .body(json.to_string())
            .send();
        let retry_reason: Box<dyn std::error::Error + Send + Sync> = match sent {
            Ok(r) if r.status().is_success() => return Ok(r.status().as_u16()),
            Ok(r) if r.status().is_server_error() => format!("HTTP {}", r.status()).into(),
            Ok(r) => return Err(status_error(&shown, &u, r.status(), "", token.is_some())),
            Err(e) => match classify(e, &shown, opts.max_redirects) {
                Failure::Fatal(SourceError::Connect { source, .. }) => source,
                Failure::Fatal(f) => return Err(f),
                Failure::Transient(source) => source,
            },
        };
        if attempts > opts.retries {
            return Err(SourceError::Transfer {
                url: shown,
                attempts,
                source: retry_reason,
            });
        }
        std::thread::sleep(std::time::Duration::from_millis(
            200 * u64::from(attempts.min(10)),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_machine_vars() {
        let v = MachineVars {
            mac: Some("52:54:00:ab:cd:ef".into()),
            hostname: Some("master 1".into()),
            uuid: Some("4c4c4544-0042".into()),
        };
        assert_eq!(
            expand("https://pxe/plans/${mac-dashes}.toml?h=${hostname}&u=${uuid}&m=${mac}", &v)
                .expect("ok"),
            "https://pxe/plans/52-54-00-ab-cd-ef.toml?h=master%201&u=4c4c4544-0042&m=52:54:00:ab:cd:ef"
        );
        assert_eq!(
            expand("https://x/plain", &v).expect("ok"),
            "https://x/plain"
        );
        for bad in ["https://x/${serial}", "https://x/${mac"] {
            assert!(expand(bad, &v).is_err(), "{bad}");
        }
        let none = MachineVars::default();
        let e = expand("https://x/${uuid}", &none).expect_err("unknown uuid");
        assert!(e.to_string().contains("${uuid} is not known"), "{e}");
    }
}
