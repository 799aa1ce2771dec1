//! Pure parsers for depmod's text indexes (modules.dep, modules.alias, modules.softdep,
//! modules.builtin) and the shell-style glob used by alias patterns.
use std::collections::{BTreeMap, BTreeSet};

/// Canonical module name: file stem without `.ko[.xz|.zst|.gz]`, with `-` turned into `_`.
pub fn module_name(path_or_name: &str) -> String {
    let base = path_or_name.rsplit('/').next().unwrap_or(path_or_name);
    let stem = [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|ext| base.strip_suffix(ext))
        .unwrap_or(base);
    stem.replace('-', "_")
}

/// One line of modules.dep: the module file and its dependency files, in depmod's order
/// (a module's dependencies come after it, so they load in reverse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    pub path: String,
    pub deps: Vec<String>,
}

/// modules.dep: `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko ...`.
/// Returns a map from canonical module name to its entry; malformed lines are skipped.
pub fn parse_dep(text: &str) -> BTreeMap<String, DepEntry> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((path, deps)) = line.split_once(':') else {
            continue;
        };
        let path = path.trim();
        if path.is_empty() {
            continue;
        }
        out.insert(
            module_name(path),
            DepEntry {
                path: path.to_owned(),
                deps: deps.split_whitespace().map(str::to_owned).collect(),
            },
        );
    }
    out
}

/// modules.alias: `alias <pattern> <module>`; returns (pattern, canonical module) pairs.
pub fn parse_alias(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some("alias"), Some(pat), Some(module)) => {
                    Some((pat.to_owned(), module_name(module)))
                }
                _ => None,
            }
        })
        .collect()
}

/// Soft dependencies of one module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SoftDep {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// modules.softdep: `softdep <module> pre: a b post: c`.
pub fn parse_softdep(text: &str) -> BTreeMap<String, SoftDep> {
    let mut out: BTreeMap<String, SoftDep> = BTreeMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("softdep") {
            continue;
        }
        let Some(module) = it.next() else { continue };
        let entry = out.entry(module_name(module)).or_default();
        let mut post = false;
        for word in it {
            match word {
                "pre:" => post = false,
                "post:" => post = true,
                name if post => entry.post.push(name.to_owned()),
                name => entry.pre.push(name.to_owned()),
            }
        }
    }
    out
}

/// modules.builtin: one `kernel/...ko` path a line; returns canonical names.
pub fn parse_builtin(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(module_name)
        .collect()
}

/// Shell-style glob as used in modules.alias: `*`, `?` and `[...]` classes (with ranges and
/// a leading `!` or `^` for negation). Iterative, no recursion, linear backtracking on `*`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match_class(&p, pi, t[ti]),
            Some(&c) if c == t[ti] => Some(pi + 1),
            _ => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Match `c` against the class starting at `p[start] == '['`; the index after `]` on success.
fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &ch = p.get(i)?; // unterminated class: no match
        if ch == ']' && !first {
            break;
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            let hi = p[i + 2];
            if ch <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if ch == c {
                matched = true;
            }
            i += 1;
        }
    }
    (matched != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/crypto/crc32c_generic.ko:
kernel/arch/x86/crypto/crc32c-intel.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
garbage line without colon
";

    #[test]
    fn dep_lines_map_names_to_paths_and_ordered_deps() {
        let d = parse_dep(DEP);
        assert_eq!(d.len(), 7);
        let ext4 = &d["ext4"];
        assert_eq!(ext4.path, "kernel/fs/ext4/ext4.ko");
        assert_eq!(
            ext4.deps,
            vec![
                "kernel/lib/crc16.ko",
                "kernel/fs/mbcache.ko",
                "kernel/fs/jbd2/jbd2.ko"
            ]
        );
        assert_eq!(
            d["crc32c_intel"].path,
            "kernel/arch/x86/crypto/crc32c-intel.ko"
        );
        assert!(d["crc16"].deps.is_empty());
    }

    #[test]
    fn alias_softdep_and_builtin_files_parse() {
        let a = parse_alias(
            "# Aliases extracted from modules themselves.\nalias crypto-crc32c crc32c_generic\nalias fs-ext4 ext4\nalias pci:v00001AF4d00001001sv*sd*bc*sc*i* virtio_blk\n",
        );
        assert_eq!(a.len(), 3);
        assert_eq!(
            a[0],
            ("crypto-crc32c".to_owned(), "crc32c_generic".to_owned())
        );
        let s = parse_softdep(
            "# Soft dependencies\nsoftdep ext4 pre: crc32c\nsoftdep libcrc32c pre: crc32c post: foo bar\n",
        );
        assert_eq!(s["ext4"].pre, vec!["crc32c"]);
        assert_eq!(s["libcrc32c"].post, vec!["foo", "bar"]);
        let b = parse_builtin("kernel/net/packet/af_packet.ko\nkernel/fs/nls/nls-base.ko\n");
        assert!(b.contains("af_packet") && b.contains("nls_base"));
    }

    #[test]
    fn module_names_are_canonical() {
        assert_eq!(module_name("kernel/a/crc32c-intel.ko.zst"), "crc32c_intel");
        assert_eq!(module_name("nvme-core"), "nvme_core");
    }

    #[test]
    fn glob_handles_stars_questions_and_classes() {
        let pat = "pci:v00001AF4d00001001sv*sd*bc*sc*i*";
        assert!(glob_match(
            pat,
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(!glob_match(
            pat,
            "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00"
        ));
        assert!(glob_match(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(glob_match("a?c", "abc") && !glob_match("a?c", "ac"));
        assert!(glob_match(
            "usb:v*p*d*dc*dsc*dp*ic08isc0[1-6]ip50in*",
            "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00"
        ));
        assert!(!glob_match("x[!0-9]", "x5") && glob_match("x[!0-9]", "xa"));
        assert!(glob_match("*", "") && !glob_match("a", ""));
        assert!(!glob_match("a[b", "ab"));
        assert!(glob_match("*a*b", "xxaxxbxb"));
    }
}
