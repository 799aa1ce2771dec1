//! A secret value (S3 secret key, session token) that never shows in logs, reports or errors.
use std::fmt;

/// Holds a secret. `Debug`, `Display` and `Serialize` print `<redacted>`; only
/// [`Secret::expose`] gives the value, for the code that signs with it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: use only to compute a signature or fill a header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const REDACTED: &str = "<redacted>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let s = Secret::new("wJalrXUtnFEMI/K7MDENG");
        #[derive(serde::Serialize, Debug)]
        struct Holder {
            key: Secret,
        }
        let h = Holder { key: s.clone() };
        for shown in [
            format!("{s}"),
            format!("{s:?}"),
            format!("{h:?}"),
            serde_json::to_string(&h).unwrap_or_default(),
        ] {
            assert!(!shown.contains("wJalr"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(s.expose(), "wJalrXUtnFEMI/K7MDENG");
    }
}
