//! Value types of the configuration. Pure: each parses from the string form it has on the
//! kernel command line, in a plan file and in a flag, and each knows how to show itself
//! without leaking a secret (in `Debug`, in `Display` and in its serialised form).
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What a secret shows instead of its value.
pub const REDACTED: &str = "<redacted>";

/// Implements `Deserialize` through `FromStr`, accepting any YAML scalar (string, number,
/// bool), so that `rescue.x=1` on the command line and `x: 1` in a plan mean the same.
macro_rules! deserialize_via_from_str {
    ($ty:ty, $what:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = d.deserialize_any(ScalarVisitor($what))?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}

/// Accepts a scalar of any YAML type and hands back its text.
struct ScalarVisitor(&'static str);

impl Visitor<'_> for ScalarVisitor {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        Ok(v)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
}

/// A secret (S3 keys, tokens). `Debug`, `Display` and `Serialize` never show the value;
/// only [`Secret::expose`] does, for the code that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself: hand it only to the code that authenticates with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty secret".into());
        }
        Ok(Secret(s.to_owned()))
    }
}
deserialize_via_from_str!(Secret, "a secret string");

/// An absolute URL with a scheme, kept verbatim for the code that fetches it. It is shown
/// with its user information and query values replaced by `***`: presigned S3 URLs and
/// `https://user:password@host/` carry credentials there.
#[derive(Clone, PartialEq, Eq)]
pub struct Url {
    raw: String,
    scheme: String,
}

impl Url {
    /// The scheme, lowercased (`https`, `s3`, `etcd`...).
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// The URL as given, credentials included: only for the code that fetches it.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with credentials hidden, for logs and the report.
    pub fn redacted(&self) -> String {
        let rest = &self.raw[self.scheme.len() + 3..];
        let (before_fragment, fragment) = match rest.split_once('#') {
            Some((a, _)) => (a, Some("***")),
            None => (rest, None),
        };
        let (before_query, query) = match before_fragment.split_once('?') {
            Some((a, q)) => (a, Some(q)),
            None => (before_fragment, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(i) => before_query.split_at(i),
            None => (before_query, ""),
        };
        let host = match authority.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => authority.to_owned(),
        };
        let mut out = format!("{}://{host}{path}", self.scheme);
        if let Some(q) = query {
            out.push('?');
            let parts: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=***"),
                    None => kv.to_owned(),
                })
                .collect();
            out.push_str(&parts.join("&"));
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }
}

impl FromStr for Url {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err("not a url: no scheme://".into());
        };
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(format!("not a url: bad scheme {scheme:?}"));
        }
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() && !scheme.eq_ignore_ascii_case("file") {
            return Err("not a url: no host".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("not a url: contains whitespace".into());
        }
        Ok(Url {
            raw: s.to_owned(),
            scheme: scheme.to_ascii_lowercase(),
        })
    }
}
deserialize_via_from_str!(Url, "a url");

impl fmt::Debug for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Url({})", self.redacted())
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for Url {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

/// A file named by a path or by a URL (`rescue.source=`, `rescue.plan=`).
/// `file:///x` is the path `/x`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Location {
    /// A local path (in the rescue image: on the boot media or the host disk).
    Path(PathBuf),
    /// A URL for a fetcher (`http`, `https`, `s3`, `etcd`).
    Url(Url),
}

impl Location {
    /// The scheme of a URL location, `None` for a path.
    pub fn scheme(&self) -> Option<&str> {
        match self {
            Location::Path(_) => None,
            Location::Url(u) => Some(u.scheme()),
        }
    }
}

impl FromStr for Location {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty location".into());
        }
        if s.contains("://") {
            let url: Url = s.parse()?;
            if url.scheme() == "file" {
                let path = &s[url.scheme().len() + 3..];
                if !path.starts_with('/') {
                    return Err("file:// url needs an absolute path".into());
                }
                return Ok(Location::Path(PathBuf::from(path)));
            }
            return Ok(Location::Url(url));
        }
        Ok(Location::Path(PathBuf::from(s)))
    }
}
deserialize_via_from_str!(Location, "a path or url");

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) => write!(f, "{u}"),
        }
    }
}

impl Serialize for Location {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A sha256 digest given as 64 hex digits (either case); shown lowercase.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha256Hex(pub [u8; 32]);

impl FromStr for Sha256Hex {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("sha256 must be 64 hex digits".into());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
                .map_err(|_| "sha256 must be 64 hex digits".to_string())?;
        }
        Ok(Sha256Hex(out))
    }
}
deserialize_via_from_str!(Sha256Hex, "64 hex digits");

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Hex({self})")
    }
}

impl Serialize for Sha256Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An etcd member name. It goes into `--initial-cluster=NAME=URL,...`, so it may not hold
/// `=`, `,` or whitespace.
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct MemberName(String);

impl MemberName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for MemberName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty member name".into());
        }
        if s.len() > 253 {
            return Err("member name longer than 253 bytes".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | ',' | '"' | '\''))
        {
            return Err(format!("member name may not contain {c:?}"));
        }
        Ok(MemberName(s.to_owned()))
    }
}
deserialize_via_from_str!(MemberName, "a member name");

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which block device holds the host root (`rescue.root=`), in the forms of fstab and the
/// kernel's `root=`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum RootDevice {
    /// `/dev/...`
    Path(PathBuf),
    /// `LABEL=`
    Label(String),
    /// `UUID=` (filesystem UUID)
    Uuid(String),
    /// `PARTUUID=`
    PartUuid(String),
    /// `PARTLABEL=`
    PartLabel(String),
}

impl FromStr for RootDevice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("/dev/") && s.len() > 5 {
            return Ok(RootDevice::Path(PathBuf::from(s)));
        }
        let Some((kind, value)) = s.split_once('=') else {
            return Err("expected /dev/..., LABEL=, UUID=, PARTUUID= or PARTLABEL=".into());
        };
        if value.is_empty() {
            return Err(format!("empty {kind}="));
        }
        let value = value.to_owned();
        match kind.to_ascii_uppercase().as_str() {
            "LABEL" => Ok(RootDevice::Label(value)),
            "UUID" => Ok(RootDevice::Uuid(value.to_ascii_lowercase())),
            "PARTUUID" => Ok(RootDevice::PartUuid(value.to_ascii_lowercase())),
            "PARTLABEL" => Ok(RootDevice::PartLabel(value)),
            _ => Err(format!("unknown device selector {kind}=")),
        }
    }
}
deserialize_via_from_str!(RootDevice, "a device selector");

impl fmt::Display for RootDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootDevice::Path(p) => write!(f, "{}", p.display()),
            RootDevice::Label(v) => write!(f, "LABEL={v}"),
            RootDevice::Uuid(v) => write!(f, "UUID={v}"),
            RootDevice::PartUuid(v) => write!(f, "PARTUUID={v}"),
            RootDevice::PartLabel(v) => write!(f, "PARTLABEL={v}"),
        }
    }
}

impl Serialize for RootDevice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What the rescue image does when the recovery ends.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// Reboot into the recovered host (the default).
    #[default]
    Reboot,
    /// Power the machine off.
    Poweroff,
    /// Stay up showing the result.
    Hold,
    /// Drop to a shell, where the image has one.
    Shell,
}

impl FromStr for After {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "reboot" => Ok(After::Reboot),
            "poweroff" => Ok(After::Poweroff),
            "hold" => Ok(After::Hold),
            "shell" => Ok(After::Shell),
            _ => Err("expected reboot, poweroff, hold or shell".into()),
        }
    }
}
deserialize_via_from_str!(After, "reboot, poweroff, hold or shell");

/// A boolean as kernel parameters spell it: `1/0`, `true/false`, `yes/no`, `on/off`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Toggle(pub bool);

impl FromStr for Toggle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" | "y" => Ok(Toggle(true)),
            "0" | "false" | "no" | "off" | "n" => Ok(Toggle(false)),
            _ => Err("expected 1/0, true/false, yes/no or on/off".into()),
        }
    }
}
deserialize_via_from_str!(Toggle, "a boolean");

/// The revision bump of a restore: a positive count.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Revision(pub u64);

impl FromStr for Revision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let digits: String = s.chars().filter(|c| *c != '_').collect();
        match digits.parse::<u64>() {
            Ok(0) => Err("bump revision must be positive (use bump=0 to turn it off)".into()),
            Ok(n) => Ok(Revision(n)),
            Err(_) => Err("expected a positive integer".into()),
        }
    }
}
deserialize_via_from_str!(Revision, "a positive integer");

/// A duration in whole seconds, written `90`, `90s`, `15m` or `2h`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (num, mult) = match s.as_bytes().last() {
            Some(b's') => (&s[..s.len() - 1], 1),
            Some(b'm') => (&s[..s.len() - 1], 60),
            Some(b'h') => (&s[..s.len() - 1], 3600),
            _ => (s, 1),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| "expected seconds, or a number with s, m or h".to_string())?;
        n.checked_mul(mult)
            .map(|secs| Seconds(Duration::from_secs(secs)))
            .ok_or_else(|| "duration too large".to_string())
    }
}
deserialize_via_from_str!(Seconds, "a duration");

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0.as_secs())
    }
}

/// An IP address (v4 or v6).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Ip(pub IpAddr);

impl FromStr for Ip {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bare = s
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(s);
        bare.parse()
            .map(Ip)
            .map_err(|_| "expected an IPv4 or IPv6 address".to_string())
    }
}
deserialize_via_from_str!(Ip, "an IP address");

/// A plain string setting (region names and the like).
#[derive(Clone, PartialEq, Eq, Debug, Serialize)]
pub struct Text(pub String);

impl FromStr for Text {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty value".into());
        }
        Ok(Text(s.to_owned()))
    }
}
deserialize_via_from_str!(Text, "a string");

deserialize_via_from_str!(crate::pem::Pem, "a path or inline PEM");

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_redaction_hides_userinfo_query_and_fragment() {
        let u: Url = "https://user:pw@h.example:8443/a/b?X-Amz-Signature=abc&v=1#frag"
            .parse()
            .unwrap();
        assert_eq!(u.scheme(), "https");
        assert_eq!(
            u.redacted(),
            "https://***@h.example:8443/a/b?X-Amz-Signature=***&v=***#***"
        );
        assert!(!format!("{u:?}").contains("pw"));
        assert!(!serde_json::to_string(&u).unwrap().contains("abc"));
        assert_eq!(
            u.expose(),
            "https://user:pw@h.example:8443/a/b?X-Amz-Signature=abc&v=1#frag"
        );
        let plain: Url = "etcd://10.0.0.1:2379,10.0.0.2:2379".parse().unwrap();
        assert_eq!(plain.redacted(), "etcd://10.0.0.1:2379,10.0.0.2:2379");
    }

    #[test]
    fn url_rejects_garbage() {
        for bad in [
            "",
            "no-scheme",
            "://x",
            "1http://x",
            "http://",
            "http://a b",
        ] {
            assert!(bad.parse::<Url>().is_err(), "{bad}");
        }
    }

    #[test]
    fn location_forms() {
        assert_eq!(
            "file:///boot/snap.db".parse::<Location>().unwrap(),
            Location::Path("/boot/snap.db".into())
        );
        assert_eq!(
            "/x/y".parse::<Location>().unwrap(),
            Location::Path("/x/y".into())
        );
        assert_eq!("s3://b/p".parse::<Location>().unwrap().scheme(), Some("s3"));
        assert!("file://rel".parse::<Location>().is_err());
    }

    #[test]
    fn secret_never_shows() {
        let s: Secret = "hunter2".parse().unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?}{s}").contains("hunter2"));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{REDACTED}\"")
        );
    }

    #[test]
    fn sha256_roundtrip_and_case() {
        let hex = "AB".repeat(32);
        let d: Sha256Hex = hex.parse().unwrap();
        assert_eq!(d.to_string(), "ab".repeat(32));
        assert!("ab".repeat(31).parse::<Sha256Hex>().is_err());
        assert!("zz".repeat(32).parse::<Sha256Hex>().is_err());
    }

    #[test]
    fn small_values() {
        assert_eq!(
            "15m".parse::<Seconds>().unwrap().0,
            Duration::from_secs(900)
        );
        assert_eq!("7".parse::<Seconds>().unwrap().0, Duration::from_secs(7));
        assert!("x".parse::<Seconds>().is_err());
        assert_eq!("1_000".parse::<Revision>().unwrap().0, 1000);
        assert!("0".parse::<Revision>().is_err());
        assert!("On".parse::<Toggle>().unwrap().0);
        assert!("maybe".parse::<Toggle>().is_err());
        assert!("a,b".parse::<MemberName>().is_err());
        assert!("a=b".parse::<MemberName>().is_err());
        assert_eq!(
            "UUID=ABC".parse::<RootDevice>().unwrap(),
            RootDevice::Uuid("abc".into())
        );
        assert!("FOO=x".parse::<RootDevice>().is_err());
        assert_eq!("[::1]".parse::<Ip>().unwrap().0.to_string(), "::1");
    }
}
