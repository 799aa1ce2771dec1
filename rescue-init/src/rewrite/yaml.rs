//! Finding settings in YAML text by lines, without re-serialising it. Pure.
//!
//! Enough of YAML's block syntax for what kubeadm writes: block mappings and sequences
//! (also "compact" sequences at the indent of their key), plain, single- and double-quoted
//! scalars, comments, several documents. Flow collections (`[a, b]`) are not looked into.
use std::ops::Range;

use super::{
    line_of, Quote, Render, Site, SITE_APISERVER_ANNOTATION, SITE_ETCD_ANNOTATION,
    SITE_KUBEADM_ADVERTISE, SITE_PROBE_HOST,
};

/// The lines of `text` with their byte offsets.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    text.split_inclusive('\n').map(move |l| {
        let start = pos;
        pos += l.len();
        (start, l)
    })
}

/// A line without its line ending.
fn body(line: &str) -> &str {
    let l = line.strip_suffix('\n').unwrap_or(line);
    l.strip_suffix('\r').unwrap_or(l)
}

/// Parses the scalar at `start` of `line`: its value, its byte range (quotes included) and
/// its quoting. `None` for nothing (a block parent), a comment or a flow collection.
fn scalar(line: &str, start: usize) -> Option<(String, Range<usize>, Quote)> {
    let s = &line[start..];
    let b = s.as_bytes();
    match b.first()? {
        b'#' | b'[' | b'{' | b'|' | b'>' | b'&' | b'*' | b'!' => None,
        b'\'' => {
            let mut i = 1;
            let mut value = String::new();
            loop {
                let c = *b.get(i)?;
                if c == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        value.push('\'');
                        i += 2;
                        continue;
                    }
                    return Some((value, start..start + i + 1, Quote::Single));
                }
                let ch = s[i..].chars().next()?;
                value.push(ch);
                i += ch.len_utf8();
            }
        }
        b'"' => {
            let mut i = 1;
            let mut value = String::new();
            loop {
                let c = *b.get(i)?;
                match c {
                    b'"' => return Some((value, start..start + i + 1, Quote::Double)),
                    b'\\' => {
                        let e = s.get(i + 1..)?.chars().next()?;
                        value.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            '0' => '\0',
                            other => other,
                        });
                        i += 1 + e.len_utf8();
                    }
                    _ => {
                        let ch = s[i..].chars().next()?;
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
        }
        _ => {
            let end = s.find(" #").unwrap_or(s.len());
            let v = s[..end].trim_end();
            if v.is_empty() {
                return None;
            }
            Some((v.to_owned(), start..start + v.len(), Quote::Plain))
        }
    }
}

/// Splits `key: rest` at the mapping colon; returns the key (unquoted) and the offset of
/// the value in `content` (after the spaces), or `None` if this is not a mapping entry.
fn key_value(content: &str) -> Option<(String, usize)> {
    let bytes = content.as_bytes();
    let (key, colon) = if let Some(q @ (b'"' | b'\'')) = bytes.first().copied() {
        let close = content[1..].find(char::from(q))? + 1;
        if bytes.get(close + 1) != Some(&b':') {
            return None;
        }
        (content[1..close].to_owned(), close + 1)
    } else {
        let mut found = None;
        for (i, c) in content.char_indices() {
            if c == ':' && matches!(bytes.get(i + 1), None | Some(b' ') | Some(b'\t')) {
                found = Some(i);
                break;
            }
            if c == '#' && i > 0 && bytes[i - 1] == b' ' {
                return None;
            }
        }
        let i = found?;
        (content[..i].trim_end().to_owned(), i)
    };
    let after = &content[colon + 1..];
    let value_at = colon + 1 + (after.len() - after.trim_start().len());
    Some((key, value_at))
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Sites of a static pod manifest: `- --flag=value` items, the kubeadm annotations and
/// probe hosts.
pub(super) fn manifest_sites(text: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for (off, raw) in lines(text) {
        let line = body(raw);
        let indent = indent_of(line);
        let content = &line[indent..];
        let whole = off..off + raw.len();
        if let Some(item) = content.strip_prefix("- ") {
            let at = indent + 2 + (item.len() - item.trim_start().len());
            let Some((value, range, quote)) = scalar(line, at) else {
                continue;
            };
            let dashes = value.len() - value.trim_start_matches('-').len();
            if !(1..=2).contains(&dashes) || value.len() == dashes {
                continue;
            }
            let flag_and_value = &value[dashes..];
            let (flag, v) = match flag_and_value.split_once('=') {
                Some((f, v)) => (f.to_owned(), v.to_owned()),
                None => (flag_and_value.to_owned(), "true".to_owned()),
            };
            out.push(Site {
                render: Render::Prefixed(format!("{}{flag}=", &value[..dashes]), quote),
                setting: flag,
                value: v,
                span: off + range.start..off + range.end,
                remove: whole,
                line: line_of(text, off),
                indirect: false,
            });
            continue;
        }
        let Some((key, at)) = key_value(content) else {
            continue;
        };
        let setting = match key.as_str() {
            "kubeadm.kubernetes.io/etcd.advertise-client-urls" => SITE_ETCD_ANNOTATION,
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint" => {
                SITE_APISERVER_ANNOTATION
            }
            "host" => SITE_PROBE_HOST,
            _ => continue,
        };
        if let Some((value, range, quote)) = scalar(line, indent + at) {
            out.push(Site {
                setting: setting.to_owned(),
                value,
                span: off + range.start..off + range.end,
                render: Render::Value(quote),
                remove: whole,
                line: line_of(text, off),
                indirect: false,
            });
        }
    }
    out
}

struct Frame {
    indent: usize,
    key: String,
    block: bool,
}

/// A `- name: x` / `value: y` item of a v1beta4 `extraArgs` list being read.
struct Item {
    indent: usize,
    start: usize,
    end: usize,
    name: Option<String>,
    value: Option<(String, Range<usize>, Quote, usize)>,
}

const EXTRA_ARGS: [&str; 3] = ["etcd", "local", "extraArgs"];

/// Sites of a kubeadm configuration file: `etcd.local.extraArgs` (map or list form),
/// `etcd.local.dataDir` and `localAPIEndpoint.advertiseAddress`.
pub(super) fn kubeadm_sites(text: &str) -> Vec<Site> {
    let mut out = Vec::new();
    let mut doc: Vec<Site> = Vec::new();
    let mut kind: Option<String> = None;
    let mut stack: Vec<Frame> = Vec::new();
    let mut item: Option<Item> = None;

    let flush_item = |item: &mut Option<Item>, doc: &mut Vec<Site>| {
        if let Some(Item {
            start,
            end,
            name: Some(name),
            value: Some((value, range, quote, line)),
            ..
        }) = item.take()
        {
            doc.push(Site {
                setting: name,
                value,
                span: range,
                render: Render::Value(quote),
                remove: start..end,
                line,
                indirect: false,
            });
        }
    };
    let flush_doc = |doc: &mut Vec<Site>, kind: &Option<String>, out: &mut Vec<Site>| {
        for site in doc.drain(..) {
            let keep = match kind.as_deref() {
                Some("ClusterConfiguration") => site.setting != SITE_KUBEADM_ADVERTISE,
                Some("InitConfiguration" | "JoinConfiguration") => {
                    site.setting == SITE_KUBEADM_ADVERTISE
                }
                Some(_) => false,
                None => true,
            };
            if keep {
                out.push(site);
            }
        }
    };

    for (off, raw) in lines(text) {
        let line = body(raw);
        let trimmed = line.trim();
        if trimmed == "---" || trimmed.starts_with("--- ") || trimmed == "..." {
            flush_item(&mut item, &mut doc);
            flush_doc(&mut doc, &kind, &mut out);
            kind = None;
            stack.clear();
            continue;
        }
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        let mut content = &line[indent..];
        let mut key_indent = indent;
        let mut in_item_line = false;
        if content == "-" || content.starts_with("- ") {
            while stack.last().is_some_and(|f| f.indent > indent) {
                stack.pop();
            }
            while stack
                .last()
                .is_some_and(|f| f.indent == indent && (f.key == "-" || !f.block))
            {
                stack.pop();
            }
            flush_item(&mut item, &mut doc);
            let inner = content[1..].trim_start();
            key_indent = indent + (content.len() - inner.len());
            content = inner;
            let path: Vec<&str> = stack.iter().map(|f| f.key.as_str()).collect();
            if path == EXTRA_ARGS {
                item = Some(Item {
                    indent,
                    start: off,
                    end: off + raw.len(),
                    name: None,
                    value: None,
                });
                in_item_line = true;
            }
            // Keys inside the item nest below the sequence.
            stack.push(Frame {
                indent,
                key: "-".into(),
                block: true,
            });
        } else {
            if item.as_ref().is_some_and(|it| indent <= it.indent) {
                flush_item(&mut item, &mut doc);
            }
            while stack.last().is_some_and(|f| f.indent >= indent) {
                stack.pop();
            }
        }
        if let Some(it) = item.as_mut() {
            if in_item_line || indent > it.indent {
                it.end = off + raw.len();
            }
        }
        let Some((key, at)) = key_value(content) else {
            continue;
        };
        let value = scalar(line, key_indent + at);
        let path: Vec<&str> = stack
            .iter()
            .map(|f| f.key.as_str())
            .filter(|k| *k != "-")
            .collect();
        if let Some((v, range, quote)) = value.clone() {
            let line_no = line_of(text, off);
            let span = off + range.start..off + range.end;
            if indent == 0 && key == "kind" {
                kind = Some(v.clone());
            }
            let in_list_item = stack.last().is_some_and(|f| f.key == "-");
            if let (true, Some(it)) = (in_list_item, item.as_mut()) {
                match key.as_str() {
                    "name" => it.name = Some(v),
                    "value" => it.value = Some((v, span, quote, line_no)),
                    _ => {}
                }
            } else if path == EXTRA_ARGS || path.as_slice() == ["etcd", "local"] && key == "dataDir"
            {
                let setting = if key == "dataDir" {
                    "data-dir".to_owned()
                } else {
                    key.clone()
                };
                doc.push(Site {
                    setting,
                    value: v,
                    span,
                    render: Render::Value(quote),
                    remove: off..off + raw.len(),
                    line: line_no,
                    indirect: false,
                });
            } else if key == "advertiseAddress" && path.last() == Some(&"localAPIEndpoint") {
                doc.push(Site {
                    setting: SITE_KUBEADM_ADVERTISE.to_owned(),
                    value: v,
                    span,
                    render: Render::Value(quote),
                    remove: off..off + raw.len(),
                    line: line_no,
                    indirect: false,
                });
            }
        }
        stack.push(Frame {
            indent: key_indent,
            key,
            block: value.is_none(),
        });
    }
    flush_item(&mut item, &mut doc);
    flush_doc(&mut doc, &kind, &mut out);
    out
}

/// Sites of an etcd configuration file (`--config-file`, e.g. `/etc/etcd/etcd.conf.yml`):
/// top-level keys are flag names; `client-transport-security` and
/// `peer-transport-security` hold the TLS flags (`cert-file` there is `--cert-file` and
/// `--peer-cert-file`).
pub(super) fn etcd_config_sites(text: &str) -> Vec<Site> {
    let mut out = Vec::new();
    let mut parent: Option<String> = None;
    for (off, raw) in lines(text) {
        let line = body(raw);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if trimmed == "---" {
            parent = None;
            continue;
        }
        let indent = indent_of(line);
        let Some((key, at)) = key_value(&line[indent..]) else {
            continue;
        };
        let value = scalar(line, indent + at);
        let setting = if indent == 0 {
            parent = value.is_none().then(|| key.clone());
            key
        } else {
            match parent.as_deref() {
                Some("client-transport-security") => key,
                Some("peer-transport-security") => format!("peer-{key}"),
                _ => continue,
            }
        };
        if let Some((v, range, quote)) = value {
            out.push(Site {
                setting,
                value: v,
                span: off + range.start..off + range.end,
                render: Render::Value(quote),
                remove: off..off + raw.len(),
                line: line_of(text, off),
                indirect: false,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        let cases: &[(&str, Option<(&str, Quote)>)] = &[
            ("plain value # c", Some(("plain value", Quote::Plain))),
            ("'it''s'", Some(("it's", Quote::Single))),
            ("\"a\\\"b\" # c", Some(("a\"b", Quote::Double))),
            ("# only comment", None),
            ("[a, b]", None),
            ("", None),
            ("'unterminated", None),
        ];
        for (s, want) in cases {
            let got = scalar(s, 0).map(|(v, _, q)| (v, q));
            assert_eq!(got, want.map(|(v, q)| (v.to_owned(), q)), "{s:?}");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(key_value("name: x"), Some(("name".into(), 6)));
        assert_eq!(key_value("extraArgs:"), Some(("extraArgs".into(), 10)));
        assert_eq!(key_value("\"a:b\": c"), Some(("a:b".into(), 7)));
        assert_eq!(key_value("url: http://x:1"), Some(("url".into(), 5)));
        assert_eq!(key_value("no colon here"), None);
        assert_eq!(key_value("--flag=http://x"), None);
    }
}
