//! A PEM setting: the path of a PEM file (on the host disk, the boot media or the rescue image
//! itself) or the PEM text inline, as a fleet plan may carry its CA bundle or an etcd client
//! certificate and key. Inline PEM is never shown: `Display`, `Debug` and `Serialize` give its
//! size only, since it may be a private key. Parsing is pure; [`Pem::read`] and
//! [`Pem::resolve`] only read.
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where the PEM bytes of a setting are.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file.
    File(PathBuf),
    /// The PEM text itself (starts with `-----BEGIN `).
    Inline(String),
}

impl Pem {
    /// The file, if this is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Pem::File(p) => Some(p),
            Pem::Inline(_) => None,
        }
    }

    /// The PEM bytes.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Pem::File(p) => std::fs::read(p),
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }

    /// Finds the file: as given when it exists there, else the first of `bases` (the host
    /// root, the boot media) that holds it at the same absolute path, resolved as in a chroot
    /// (an absolute symlink on the host disk stays on the host disk); else as given, so that
    /// the error names the path the user wrote. Inline PEM is returned unchanged.
    pub fn resolve(&self, bases: &[&Path]) -> Pem {
        match self {
            Pem::File(p) => {
                crate::discover::locate(p, bases).map_or_else(|| self.clone(), Pem::File)
            }
            Pem::Inline(_) => self.clone(),
        }
    }
}

impl FromStr for Pem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.starts_with("-----BEGIN ") {
            if !t.contains("-----END ") {
                return Err("inline PEM without an -----END line".into());
            }
            return Ok(Pem::Inline(format!("{t}\n")));
        }
        if s.is_empty() {
            return Err("empty path".into());
        }
        if s.contains("://") {
            return Err("expected a path or inline PEM, not a url".into());
        }
        Ok(Pem::File(PathBuf::from(s)))
    }
}

impl fmt::Display for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "{}", p.display()),
            Pem::Inline(text) => write!(f, "inline PEM ({} bytes)", text.len()),
        }
    }
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Pem {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<PathBuf> for Pem {
    fn from(p: PathBuf) -> Self {
        Pem::File(p)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----";

    #[test]
    fn parses_paths_and_inline_pem() {
        assert_eq!(
            "/etc/rescue/ca.pem".parse::<Pem>().unwrap(),
            Pem::File("/etc/rescue/ca.pem".into())
        );
        let inline: Pem = format!("  {KEY}\n").parse().unwrap();
        assert_eq!(inline.read().unwrap(), format!("{KEY}\n").into_bytes());
        assert!(inline.path().is_none());
        for bad in ["", "https://x/ca.pem", "-----BEGIN CERTIFICATE-----\nabc"] {
            assert!(bad.parse::<Pem>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inline_pem_never_shows() {
        let inline: Pem = KEY.parse().unwrap();
        for shown in [
            inline.to_string(),
            format!("{inline:?}"),
            serde_json::to_string(&inline).unwrap(),
        ] {
            assert!(!shown.contains("MC4C"), "{shown}");
            assert!(shown.contains("inline PEM"), "{shown}");
        }
    }

    #[test]
    fn resolves_against_the_host_root_then_as_given() {
        let host = tempfile::tempdir().unwrap();
        let media = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(host.path().join("etc/rescue")).unwrap();
        std::fs::write(host.path().join("etc/rescue/ca.pem"), "x").unwrap();
        std::fs::write(media.path().join("ca.pem"), "y").unwrap();
        let bases = [host.path(), media.path()];
        let on_host = Pem::File("/etc/rescue/ca.pem".into()).resolve(&bases);
        assert_eq!(on_host, Pem::File(host.path().join("etc/rescue/ca.pem")));
        let on_media = Pem::File("/ca.pem".into()).resolve(&bases);
        assert_eq!(on_media, Pem::File(media.path().join("ca.pem")));
        // A path that exists as given wins (the CLI on a live system).
        let given = Pem::File(host.path().join("etc/rescue/ca.pem"));
        assert_eq!(given.resolve(&bases), given);
        // Missing everywhere: as written, for the error.
        let missing = Pem::File("/nowhere/ca.pem".into());
        assert_eq!(missing.resolve(&bases), missing);
    }
}
