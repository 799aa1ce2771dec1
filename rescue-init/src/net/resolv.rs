//! Text of `/etc/resolv.conf` and `/etc/hosts` for the initramfs. Pure; the caller writes the
//! files. The static glibc resolves through its built-in `files` and `dns` services only: it
//! reads `/etc/hosts` (without it not even `localhost` resolves) and `resolv.conf`.
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

/// glibc uses at most three `nameserver` lines (MAXNS).
pub const MAX_NAMESERVERS: usize = 3;

/// `resolv.conf` from nameservers in order of preference (duplicates dropped, at most three)
/// and an optional search domain. With no nameserver, only a comment: names then resolve from
/// `/etc/hosts` alone and DNS lookups fail at once instead of waiting on a dead server.
pub fn resolv_conf(nameservers: &[IpAddr], search: Option<&str>) -> String {
    let mut out = String::from("# written by rescue-init\n");
    if let Some(d) = search.filter(|d| valid_name(d)) {
        let _ = writeln!(out, "search {d}");
    }
    let mut seen: Vec<IpAddr> = Vec::new();
    for ns in nameservers {
        if seen.contains(ns) || ns.is_unspecified() {
            continue;
        }
        seen.push(*ns);
        if seen.len() > MAX_NAMESERVERS {
            break;
        }
        let _ = writeln!(out, "nameserver {ns}");
    }
    out.push_str("options timeout:2 attempts:2\n");
    out
}

/// `/etc/hosts`: loopback names, plus this machine's name on its address when both are known.
pub fn hosts(hostname: Option<&str>, domain: Option<&str>, address: Option<Ipv4Addr>) -> String {
    let mut out = String::from(
        "# written by rescue-init\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    );
    if let Some(h) = hostname.filter(|h| valid_name(h)) {
        let short = h.split('.').next().unwrap_or(h);
        let fqdn = match domain.filter(|d| valid_name(d)) {
            Some(d) if !h.contains('.') => format!("{h}.{d}"),
            _ => h.to_owned(),
        };
        let addr = address.unwrap_or(Ipv4Addr::new(127, 0, 1, 1));
        if fqdn == short {
            let _ = writeln!(out, "{addr}\t{short}");
        } else {
            let _ = writeln!(out, "{addr}\t{fqdn} {short}");
        }
    }
    out
}

/// A DNS name made of letters, digits, `-`, `_` and dots (rejects anything that could break
/// the file format, such as spaces or newlines from a hostile DHCP server).
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn resolv_order_dedup_and_limit() {
        let text = resolv_conf(
            &[
                ip("192.0.2.1"),
                ip("0.0.0.0"),
                ip("192.0.2.1"),
                ip("2001:db8::53"),
                ip("192.0.2.2"),
                ip("192.0.2.3"),
            ],
            Some("example.org"),
        );
        assert_eq!(
            text,
            "# written by rescue-init\nsearch example.org\nnameserver 192.0.2.1\n\
             nameserver 2001:db8::53\nnameserver 192.0.2.2\noptions timeout:2 attempts:2\n"
        );
    }

    #[test]
    fn resolv_without_servers_and_hostile_domain() {
        let text = resolv_conf(&[], Some("evil\nnameserver 6.6.6.6"));
        assert!(!text.contains("nameserver"), "{text}");
        assert!(!text.contains("search"), "{text}");
    }

    #[test]
    fn hosts_variants() {
        let base = "# written by rescue-init\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
        assert_eq!(hosts(None, None, None), base);
        assert_eq!(
            hosts(Some("node"), None, Some(Ipv4Addr::new(10, 0, 0, 5))),
            format!("{base}10.0.0.5\tnode\n")
        );
        assert_eq!(
            hosts(Some("node.a.b"), Some("ignored.c"), None),
            format!("{base}127.0.1.1\tnode.a.b node\n")
        );
        assert_eq!(hosts(Some("bad name"), None, None), base);
    }
}
