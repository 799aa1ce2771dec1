//! Finding etcd settings in environment files (`/etc/etcd/etcd.conf`, `EnvironmentFile=`).
//! Pure.
//!
//! etcd reads a flag from `ETCD_<FLAG>` with the flag upper-cased and `-` as `_`
//! (`ETCD_INITIAL_CLUSTER` is `--initial-cluster`). Lines are `KEY=value`,
//! `KEY="value"` or `KEY='value'`, optionally after `export `; `#` and `;` start comments.
//! Commented-out settings are not settings and are never touched.
use super::{line_of, Quote, Render, Site};

/// The etcd flag an environment variable sets, if it is one (`ETCD_NAME` → `name`).
pub(super) fn flag_of(key: &str) -> Option<String> {
    let rest = key.strip_prefix("ETCD_")?;
    if rest.is_empty()
        || !rest
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace('_', "-"))
}

/// Sites of an environment file.
pub(super) fn sites(text: &str) -> Vec<Site> {
    let mut out = Vec::new();
    let mut pos = 0;
    for raw in text.split_inclusive('\n') {
        let off = pos;
        pos += raw.len();
        let body = raw.strip_suffix('\n').unwrap_or(raw);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let t = body.trim_start();
        let t_at = body.len() - t.len();
        let (t, t_at) = match t.strip_prefix("export ") {
            Some(r) => {
                let r2 = r.trim_start();
                (r2, t_at + (t.len() - r2.len()))
            }
            None => (t, t_at),
        };
        if t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        let Some((key, _)) = t.split_once('=') else {
            continue;
        };
        let Some(flag) = flag_of(key) else {
            continue;
        };
        let v_at = t_at + key.len() + 1;
        let v = &body[v_at..];
        let (value, len, quote) = match v.as_bytes().first() {
            Some(q @ (b'"' | b'\'')) => {
                let Some(close) = v[1..].find(char::from(*q)) else {
                    continue;
                };
                let inner = &v[1..=close];
                let q = if *q == b'"' {
                    Quote::Double
                } else {
                    Quote::Single
                };
                (inner.to_owned(), close + 2, q)
            }
            _ => {
                let trimmed = v.trim_end();
                (trimmed.to_owned(), trimmed.len(), Quote::Plain)
            }
        };
        out.push(Site {
            setting: flag,
            indirect: value.contains('$'),
            value,
            span: off + v_at..off + v_at + len,
            render: Render::Value(quote),
            remove: off..off + raw.len(),
            line: line_of(text, off),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_names() {
        assert_eq!(
            flag_of("ETCD_INITIAL_CLUSTER").as_deref(),
            Some("initial-cluster")
        );
        assert_eq!(flag_of("ETCD_NAME").as_deref(), Some("name"));
        assert_eq!(flag_of("ETCDCTL_API"), None);
        assert_eq!(flag_of("ETCD_"), None);
        assert_eq!(flag_of("MY_ETCD_NAME"), None);
    }
}
