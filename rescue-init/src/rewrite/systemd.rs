//! Finding etcd settings in systemd units. Pure.
//!
//! `ExecStart=` of `[Service]` whose program is etcd: its arguments, split as systemd
//! splits them (whitespace outside quotes, `"` and `'` quoting, also inside a word as in
//! `--name="x"`), over continuation lines ending in `\`, with comment lines inside a
//! continuation skipped. Go's flag syntax: `--flag=value`, `--flag value` and `-flag`,
//! boolean flags never taking the next word. `Environment=ETCD_*=` assignments too.
//! Values holding `$` or `%` are expanded by systemd and are left alone (indirect).
use std::ops::Range;

use super::{line_of, Quote, Render, Site};

/// etcd's boolean flags: they never consume the next word.
const BOOL_FLAGS: &[&str] = &[
    "force-new-cluster",
    "client-cert-auth",
    "peer-client-cert-auth",
    "auto-tls",
    "peer-auto-tls",
    "strict-reconfig-check",
    "enable-pprof",
    "enable-v2",
    "debug",
    "pre-vote",
    "socket-reuse-port",
    "socket-reuse-address",
    "experimental-initial-corrupt-check",
    "experimental-enable-lease-checkpoint",
    "experimental-memory-mlock",
    "enable-grpc-gateway",
    "unsafe-no-fsync",
    "version",
    "help",
];

/// A word of a command line, with its place in the file.
struct Word {
    /// Unquoted text.
    text: String,
    /// Bytes in the file, quotes included.
    range: Range<usize>,
    /// Where a quote opened inside the word (relative to `range.start`), and its kind.
    quote_at: Option<(usize, Quote)>,
    /// Index of the physical line.
    line: usize,
}

/// A physical line: start offset, body (without line ending) and full length.
struct Line<'a> {
    start: usize,
    body: &'a str,
    len: usize,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut pos = 0;
    text.split_inclusive('\n')
        .map(|raw| {
            let start = pos;
            pos += raw.len();
            let body = raw.strip_suffix('\n').unwrap_or(raw);
            let body = body.strip_suffix('\r').unwrap_or(body);
            Line {
                start,
                body,
                len: raw.len(),
            }
        })
        .collect()
}

/// Splits one segment (part of a line) into words.
fn words(seg: &str, base: usize, line: usize, out: &mut Vec<Word>) {
    let b = seg.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut text = String::new();
        let mut quote: Option<u8> = None;
        let mut quote_at = None;
        while i < b.len() {
            let c = b[i];
            match quote {
                None if c.is_ascii_whitespace() => break,
                None if c == b'"' || c == b'\'' => {
                    quote = Some(c);
                    if quote_at.is_none() {
                        let q = if c == b'"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                        quote_at = Some((i - start, q));
                    }
                    i += 1;
                }
                Some(q) if c == q => {
                    quote = None;
                    i += 1;
                }
                Some(b'"') | None if c == b'\\' && i + 1 < b.len() => {
                    let ch = seg[i + 1..].chars().next().unwrap_or('\u{fffd}');
                    text.push(ch);
                    i += 1 + ch.len_utf8();
                }
                _ => {
                    let ch = seg[i..].chars().next().unwrap_or('\u{fffd}');
                    text.push(ch);
                    i += ch.len_utf8().max(1);
                }
            }
        }
        out.push(Word {
            text,
            range: base + start..base + i,
            quote_at,
            line,
        });
    }
}

/// The words of a directive's value, from line `first`, after `prefix_len` bytes.
/// Returns the words and the index of the last physical line of the directive.
fn directive_words(lines: &[Line<'_>], first: usize, prefix_len: usize) -> (Vec<Word>, usize) {
    let mut out = Vec::new();
    let mut idx = first;
    let mut offset_in_line = prefix_len;
    loop {
        let l = &lines[idx];
        let body = &l.body[offset_in_line..];
        let (seg, cont) = match body.strip_suffix('\\') {
            Some(s) => (s, true),
            None => (body, false),
        };
        words(seg, l.start + offset_in_line, idx, &mut out);
        if !cont {
            return (out, idx);
        }
        // Skip comment lines inside the continuation.
        idx += 1;
        while idx < lines.len() && {
            let t = lines[idx].body.trim_start();
            t.starts_with('#') || t.starts_with(';')
        } {
            idx += 1;
        }
        if idx >= lines.len() {
            return (out, idx - 1);
        }
        offset_in_line = 0;
    }
}

/// What to delete to drop words `first..=last` of a directive.
fn removal(
    lines: &[Line<'_>],
    ws: &[Word],
    first: usize,
    last: usize,
    end_line: usize,
) -> Range<usize> {
    let a = &ws[first];
    let z = &ws[last];
    let l = &lines[a.line];
    let alone = a.line == z.line
        && ws.iter().filter(|w| w.line == a.line).count() == last - first + 1
        && first > 0;
    if alone && a.line != end_line {
        // The only words of a continuation line: drop the line.
        return l.start..l.start + l.len;
    }
    if alone && first > 0 {
        // The last line of the directive: drop from the end of the previous word, which
        // also drops the `\` that joined the lines.
        return ws[first - 1].range.end..l.start + l.body.len();
    }
    let from = if first > 0 && ws[first - 1].line == a.line {
        ws[first - 1].range.end
    } else {
        a.range.start
    };
    from..z.range.end
}

fn is_indirect(v: &str) -> bool {
    v.contains('$') || v.contains('%')
}

/// The span and rendering of the value of `word`, which is `prefix` (`--name=`,
/// `ETCD_NAME=`) followed by the value.
fn value_site(word: &Word, prefix: &str) -> (Range<usize>, Render) {
    match word.quote_at {
        // `--name="x"`: the quoted part is the value.
        Some((at, q)) if at == prefix.len() => {
            (word.range.start + at..word.range.end, Render::Value(q))
        }
        // `"--name=x"`: the word is rewritten whole, quoted the same way.
        Some((0, q)) => (word.range.clone(), Render::Prefixed(prefix.to_owned(), q)),
        // A quote inside the value: the word is rewritten whole.
        Some(_) => (
            word.range.clone(),
            Render::Prefixed(prefix.to_owned(), Quote::Double),
        ),
        None => (
            word.range.start + prefix.len()..word.range.end,
            Render::Value(Quote::Plain),
        ),
    }
}

/// Sites of a systemd unit.
pub(super) fn sites(text: &str) -> Vec<Site> {
    let lines = split_lines(text);
    let mut out = Vec::new();
    let mut section = String::new();
    let mut i = 0;
    while i < lines.len() {
        let body = lines[i].body;
        let t = body.trim_start();
        if t.starts_with('[') {
            section = t.trim_end().to_owned();
            i += 1;
            continue;
        }
        if section != "[Service]" || t.starts_with('#') || t.starts_with(';') {
            i += 1;
            continue;
        }
        let lead = body.len() - t.len();
        let directive = t.split('=').next().unwrap_or("").trim_end();
        if directive != "ExecStart" && directive != "Environment" {
            i += 1;
            continue;
        }
        let prefix_len = lead + t.find('=').map_or(t.len(), |e| e + 1);
        let (ws, end) = directive_words(&lines, i, prefix_len);
        if directive == "ExecStart" {
            exec_sites(text, &lines, &ws, end, &mut out);
        } else {
            env_sites(text, &lines, &ws, end, &mut out);
        }
        i = end + 1;
    }
    out
}

fn exec_sites(text: &str, lines: &[Line<'_>], ws: &[Word], end: usize, out: &mut Vec<Site>) {
    let Some(program) = ws.first() else {
        return;
    };
    let prog = program.text.trim_start_matches(['-', '@', '+', '!', ':']);
    if !prog.rsplit('/').next().unwrap_or("").starts_with("etcd") {
        return;
    }
    let mut k = 1;
    while k < ws.len() {
        let w = &ws[k];
        let dashes = w.text.len() - w.text.trim_start_matches('-').len();
        if !(1..=2).contains(&dashes) || w.text.len() == dashes {
            k += 1;
            continue;
        }
        let body = &w.text[dashes..];
        if let Some((flag, value)) = body.split_once('=') {
            let (span, render) = value_site(w, &w.text[..dashes + flag.len() + 1]);
            out.push(Site {
                setting: flag.to_owned(),
                value: value.to_owned(),
                span,
                render,
                remove: removal(lines, ws, k, k, end),
                line: line_of(text, w.range.start),
                indirect: is_indirect(value),
            });
            k += 1;
            continue;
        }
        let flag = body.to_owned();
        let takes_value = !BOOL_FLAGS.contains(&flag.as_str());
        match ws.get(k + 1) {
            Some(v) if takes_value && !v.text.starts_with('-') => {
                let (span, render) = match v.quote_at {
                    Some((0, q)) => (v.range.clone(), Render::Value(q)),
                    _ => (v.range.clone(), Render::Value(Quote::Plain)),
                };
                out.push(Site {
                    setting: flag,
                    value: v.text.clone(),
                    span,
                    render,
                    remove: removal(lines, ws, k, k + 1, end),
                    line: line_of(text, v.range.start),
                    indirect: is_indirect(&v.text),
                });
                k += 2;
            }
            _ => {
                // A boolean flag alone: true. Setting it rewrites the word as --flag=value.
                out.push(Site {
                    render: Render::Prefixed(format!("{}{flag}=", &w.text[..dashes]), Quote::Plain),
                    setting: flag,
                    value: "true".into(),
                    span: w.range.clone(),
                    remove: removal(lines, ws, k, k, end),
                    line: line_of(text, w.range.start),
                    indirect: false,
                });
                k += 1;
            }
        }
    }
}

fn env_sites(text: &str, lines: &[Line<'_>], ws: &[Word], end: usize, out: &mut Vec<Site>) {
    for (k, w) in ws.iter().enumerate() {
        let Some((key, value)) = w.text.split_once('=') else {
            continue;
        };
        let Some(flag) = super::envfile::flag_of(key) else {
            continue;
        };
        let (span, render) = value_site(w, &w.text[..key.len() + 1]);
        let remove = if ws.len() == 1 {
            let l = &lines[w.line];
            l.start..l.start + l.len
        } else {
            removal(lines, ws, k, k, end)
        };
        out.push(Site {
            setting: flag,
            value: value.to_owned(),
            span,
            render,
            remove,
            line: line_of(text, w.range.start),
            indirect: value.contains('%'),
        });
    }
}

/// The `EnvironmentFile=` paths of `[Service]` (a leading `-`, "ignore if missing", is
/// dropped).
pub(super) fn environment_files(text: &str) -> Vec<String> {
    let mut section = "";
    let mut out = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t;
            continue;
        }
        if section != "[Service]" {
            continue;
        }
        if let Some(v) = t.strip_prefix("EnvironmentFile=") {
            let v = v.trim().trim_start_matches('-');
            if v.starts_with('/') {
                out.push(v.to_owned());
            }
        }
    }
    out
}
