//! Pure checks of archive member names and link targets. No IO.

use std::path::{Component, Path, PathBuf};

/// Why a member name cannot be used as a path below the destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameProblem {
    /// Starts with `/`.
    Absolute,
    /// Has a `..` component.
    ParentDir,
    /// Holds a NUL byte.
    Invalid,
}

/// Turns a raw member name into a relative path made only of normal components.
///
/// `./a//b/` becomes `a/b`; `.` components and repeated slashes are dropped. The result may be
/// empty (the `./` entry many tarballs start with); callers decide what that means.
pub(crate) fn relative_path(raw: &[u8]) -> Result<PathBuf, NameProblem> {
    if raw.contains(&0) {
        return Err(NameProblem::Invalid);
    }
    if raw.first() == Some(&b'/') {
        return Err(NameProblem::Absolute);
    }
    let mut out = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(NameProblem::ParentDir),
            other => out.push(bytes_to_os(other)),
        }
    }
    Ok(out)
}

/// A lenient form of the name used for listing and for matching a member asked for by name:
/// leading `/` and `./` are dropped, as are `.` components and repeated slashes. `..` is kept, so
/// such names never match a clean request.
pub fn display_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        if part.is_empty() || part == "." {
            continue;
        }
        parts.push(part);
    }
    parts.join("/")
}

/// Checks that a symlink stored at `entry` (relative, already clean) with `target` stays below
/// the destination root when resolved lexically. Absolute targets are refused: inside a host root
/// they would point at the rescue system, not at the host.
pub(crate) fn symlink_stays_inside(entry: &Path, target: &[u8]) -> bool {
    if target.is_empty() || target.first() == Some(&b'/') || target.contains(&0) {
        return false;
    }
    let mut stack: Vec<Component<'_>> = entry
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if stack.pop().is_none() {
                    return false;
                }
            }
            _ => stack.push(Component::CurDir), // any normal name: depth grows by one
        }
    }
    true
}

#[cfg(unix)]
fn bytes_to_os(b: &[u8]) -> &std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let cases: &[(&[u8], Result<&str, NameProblem>)] = &[
            (b"a/b", Ok("a/b")),
            (b"./a//b/", Ok("a/b")),
            (b"./", Ok("")),
            (b"kubernetes/pki/ca.key", Ok("kubernetes/pki/ca.key")),
            (b"/etc/passwd", Err(NameProblem::Absolute)),
            (b"../x", Err(NameProblem::ParentDir)),
            (b"a/../../x", Err(NameProblem::ParentDir)),
            (b"a/..", Err(NameProblem::ParentDir)),
            (b"a\0b", Err(NameProblem::Invalid)),
        ];
        for (raw, want) in cases {
            let got = relative_path(raw);
            match want {
                Ok(p) => assert_eq!(
                    got,
                    Ok(PathBuf::from(p)),
                    "{:?}",
                    String::from_utf8_lossy(raw)
                ),
                Err(e) => assert_eq!(got, Err(*e), "{:?}", String::from_utf8_lossy(raw)),
            }
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(display_name(b"/backup/snap"), "backup/snap");
        assert_eq!(
            display_name(b"./etcd-backup.snapshot"),
            "etcd-backup.snapshot"
        );
        assert_eq!(display_name(b"a/../b"), "a/../b");
    }

    #[test]
    fn symlink_targets() {
        let cases: &[(&str, &[u8], bool)] = &[
            ("a/link", b"b", true),
            ("a/link", b"../b", true),
            ("a/link", b"../../b", false),
            ("link", b"..", false),
            ("link", b".", true),
            ("a/b/link", b"../c/../../d", true),
            ("a/b/link", b"../c/../../../d", false),
            ("link", b"/etc/shadow", false),
            ("link", b"", false),
        ];
        for (entry, target, inside) in cases {
            assert_eq!(
                symlink_stays_inside(Path::new(entry), target),
                *inside,
                "{entry} -> {}",
                String::from_utf8_lossy(target)
            );
        }
    }
}
