//! `--initial-cluster` parsing, URL canonicalisation (Go `url.String()` semantics), member and
//! cluster IDs, and the member JSON etcd stores.
use sha1::{Digest, Sha1};
use thiserror::Error;

use super::gojson;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ClusterError {
    #[error("--initial-cluster entry {0:?} is not of the form name=url")]
    BadEntry(String),
    #[error("--initial-cluster is empty")]
    Empty,
    #[error("URL {url:?}: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error("member name {0:?} is not in --initial-cluster")]
    NameNotInCluster(String),
    #[error("--initial-advertise-peer-urls {advertised:?} differ from the URLs of {name:?} in --initial-cluster {listed:?}")]
    AdvertiseMismatch {
        name: String,
        advertised: Vec<String>,
        listed: Vec<String>,
    },
    #[error("peer URL {0:?} is used by more than one member")]
    DuplicateUrl(String),
    #[error("two members have the same ID {0:x} (same peer URLs and token)")]
    DuplicateId(u64),
}

/// Parses and canonicalises one URL as etcd's `types.NewURLs` does: trimmed, Go `url.Parse`
/// (scheme lowercased, the rest kept as given), scheme http, https, unix or unixs, and for
/// http(s) a `host:port` and an empty path.
pub fn canonical_url(input: &str) -> Result<String, ClusterError> {
    let url = input.trim();
    let bad = |why| ClusterError::BadUrl {
        url: url.to_string(),
        why,
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme://"))?;
    if scheme.is_empty()
        || !scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Err(bad("invalid scheme"));
    }
    let scheme = scheme.to_ascii_lowercase();
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(auth_end);
    match scheme.as_str() {
        "http" | "https" => {
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            split_host_port(host).ok_or_else(|| bad("address does not have the form host:port"))?;
            if tail.starts_with('/') {
                return Err(bad("URL must not contain a path"));
            }
        }
        "unix" | "unixs" => {}
        _ => return Err(bad("scheme must be http, https, unix or unixs")),
    }
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("URL contains spaces or control characters"));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Go's `net.SplitHostPort`: `host:port` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(r) = s.strip_prefix('[') {
        let (host, after) = r.split_once(']')?;
        let port = after.strip_prefix(':')?;
        (!port.contains(':')).then_some((host, port))
    } else {
        let (host, port) = s.rsplit_once(':')?;
        (!host.contains(':') && !port.contains(':')).then_some((host, port))
    }
}

/// A member of the new cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub name: String,
    /// Canonical, sorted.
    pub peer_urls: Vec<String>,
}

impl Member {
    /// etcd's `NewMember` without a time suffix: SHA-1 of the sorted peer URLs concatenated,
    /// then the cluster token; the first 8 bytes, big-endian.
    pub fn new(name: &str, mut peer_urls: Vec<String>, token: &str) -> Self {
        peer_urls.sort();
        let mut h = Sha1::new();
        for u in &peer_urls {
            h.update(u.as_bytes());
        }
        h.update(token.as_bytes());
        let d = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        Member {
            id: u64::from_be_bytes(id),
            name: name.to_string(),
            peer_urls,
        }
    }

    /// The JSON etcd stores in the `members` bucket and in the ConfChange context:
    /// `{"id":…,"peerURLs":[…],"name":"…"}` (Go field order, name omitted when empty).
    pub fn json(&self) -> String {
        let mut s = format!(
            "{{\"id\":{},\"peerURLs\":{}",
            self.id,
            gojson::string_array(&self.peer_urls)
        );
        if !self.name.is_empty() {
            s.push_str(",\"name\":");
            gojson::push_string(&mut s, &self.name);
        }
        s.push('}');
        s
    }

    /// `{"peerURLs":[…]}`, the v2 store's raftAttributes value.
    pub fn raft_attributes_json(&self) -> String {
        format!("{{\"peerURLs\":{}}}", gojson::string_array(&self.peer_urls))
    }

    /// The ID as etcd prints it and keys buckets by: lowercase hex without padding.
    pub fn hex_id(&self) -> String {
        format!("{:x}", self.id)
    }
}

/// The members of `--initial-cluster`, in ascending ID order, and the cluster ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialCluster {
    pub members: Vec<Member>,
    pub cluster_id: u64,
    pub token: String,
}

/// etcd's cluster ID: SHA-1 over the member IDs sorted ascending, 8 bytes big-endian each.
pub fn cluster_id(ids: &[u64]) -> u64 {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    let mut h = Sha1::new();
    for id in ids {
        h.update(id.to_be_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

impl InitialCluster {
    /// Parses `name=url[,name=url…]` (a name repeated collects several URLs) with `token`.
    pub fn parse(spec: &str, token: &str) -> Result<Self, ClusterError> {
        let mut named: Vec<(String, Vec<String>)> = Vec::new();
        for entry in spec.split(',').filter(|e| !e.trim().is_empty()) {
            let (name, url) = entry
                .split_once('=')
                .ok_or_else(|| ClusterError::BadEntry(entry.to_string()))?;
            let url = canonical_url(url)?;
            match named.iter_mut().find(|(n, _)| n == name) {
                Some((_, urls)) => urls.push(url),
                None => named.push((name.to_string(), vec![url])),
            }
        }
        if named.is_empty() {
            return Err(ClusterError::Empty);
        }
        let mut members: Vec<Member> = named
            .into_iter()
            .map(|(n, urls)| Member::new(&n, urls, token))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for u in members.iter().flat_map(|m| &m.peer_urls) {
            if !seen.insert(u.clone()) {
                return Err(ClusterError::DuplicateUrl(u.clone()));
            }
        }
        members.sort_by_key(|m| m.id);
        for w in members.windows(2) {
            if w[0].id == w[1].id {
                return Err(ClusterError::DuplicateId(w[0].id));
            }
        }
        let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
        Ok(InitialCluster {
            cluster_id: cluster_id(&ids),
            members,
            token: token.to_string(),
        })
    }

    /// The member called `name`, checked against its advertised peer URLs as etcd's
    /// `VerifyBootstrap` does (compared after sorting; hostnames are not resolved).
    pub fn local(&self, name: &str, advertised: &[String]) -> Result<&Member, ClusterError> {
        let m = self
            .members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ClusterError::NameNotInCluster(name.to_string()))?;
        let mut adv = advertised
            .iter()
            .map(|u| canonical_url(u))
            .collect::<Result<Vec<_>, _>>()?;
        adv.sort();
        if adv != m.peer_urls {
            return Err(ClusterError::AdvertiseMismatch {
                name: name.to_string(),
                advertised: adv,
                listed: m.peer_urls.clone(),
            });
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_etcd_known_values() {
        let c =
            InitialCluster::parse("default=http://localhost:2380", "etcd-cluster").expect("parse");
        assert_eq!(c.members[0].hex_id(), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", c.cluster_id), "cdf818194e3a8c32");
        let c =
            InitialCluster::parse("newm=http://127.0.0.1:23480", "etcd-cluster").expect("parse");
        assert_eq!(c.members[0].id, 15306742208207408090);
        assert_eq!(format!("{:x}", c.cluster_id), "aa60e965f8e2bda6");
        assert_eq!(
            c.members[0].json(),
            r#"{"id":15306742208207408090,"peerURLs":["http://127.0.0.1:23480"],"name":"newm"}"#
        );
    }

    #[test]
    fn url_rules() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            (" HTTP://10.0.0.1:2380 ", Ok("http://10.0.0.1:2380")),
            ("https://[fd00::1]:2380", Ok("https://[fd00::1]:2380")),
            ("http://Host.Example:2380", Ok("http://Host.Example:2380")),
            ("http://10.0.0.1:2380/", Err("path")),
            ("http://10.0.0.1", Err("host:port")),
            ("ftp://10.0.0.1:21", Err("scheme")),
            ("10.0.0.1:2380", Err("scheme://")),
            ("unix://sock", Ok("unix://sock")),
        ];
        for (input, want) in cases {
            match (canonical_url(input), want) {
                (Ok(got), Ok(w)) => assert_eq!(&got, w, "{input}"),
                (Err(e), Err(w)) => assert!(e.to_string().contains(w), "{input}: {e}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn several_members_and_checks() {
        let c = InitialCluster::parse(
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3,a=http://127.0.0.2:1",
            "tok",
        )
        .expect("parse");
        assert_eq!(c.members.len(), 3);
        assert!(c.members.windows(2).all(|w| w[0].id < w[1].id));
        let a = c.members.iter().find(|m| m.name == "a").expect("a");
        assert_eq!(
            a.peer_urls,
            vec!["http://127.0.0.1:1", "http://127.0.0.2:1"]
        );
        assert!(c
            .local(
                "a",
                &["http://127.0.0.2:1".into(), "http://127.0.0.1:1".into()]
            )
            .is_ok());
        assert!(matches!(
            c.local("a", &["http://127.0.0.1:1".into()]),
            Err(ClusterError::AdvertiseMismatch { .. })
        ));
        assert!(matches!(
            c.local("z", &[]),
            Err(ClusterError::NameNotInCluster(_))
        ));
        assert!(matches!(
            InitialCluster::parse("a=http://h:1,b=http://h:1", "t"),
            Err(ClusterError::DuplicateUrl(_))
        ));
        assert!(matches!(
            InitialCluster::parse("", "t"),
            Err(ClusterError::Empty)
        ));
        assert!(matches!(
            InitialCluster::parse("a", "t"),
            Err(ClusterError::BadEntry(_))
        ));
    }
}
