//! Network keys of the kernel command line → [`NetConfig`]. Pure: no IO.
//!
//! Syntax follows the kernel's `Documentation/admin-guide/nfs/nfsroot.rst` and dracut's
//! `dracut.cmdline(7)`:
//!
//! ```text
//! ip=<autoconf>                                   dhcp | on | any | off | none | dhcp6 | auto6 | ...
//! ip=<interface>:<autoconf>[:[<mtu>][:<macaddr>]] dracut, one interface
//! ip=<client-ip>:<server-ip|peer>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>
//!     [:<dns0-ip>:<dns1-ip>:<ntp0-ip>]            kernel tail
//!     [:[<mtu>][:<macaddr>]] | [:[<dns1>][:<dns2>]] dracut tails
//! nameserver=<ip> (repeatable)   BOOTIF=01-aa-bb-cc-dd-ee-ff   bootdev=<iface>
//! rd.neednet[=0|1]  rd.peerdns=0  rd.bootif=0  rd.net.timeout.dhcp=<s>  rd.net.timeout.carrier=<s>
//! rescue.net=off|on   rescue.net.timeout=<s>
//! ```
//!
//! IPv6 addresses go in brackets. `ip=` may be given once per interface. The netmask field
//! takes a dotted mask or a prefix length; a missing IPv4 mask is derived classfully, as the
//! kernel does. An empty `<autoconf>` with a client address means static, as in the kernel
//! (it only autoconfigures what is missing).
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use thiserror::Error;

/// Default time one interface is given to obtain a DHCP lease.
pub const DEFAULT_DHCP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default time to wait for carrier after a link is brought up.
pub const DEFAULT_CARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// The `rescue.*` keys this module reads; the config module must accept them as known.
pub const RESCUE_KEYS: &[&str] = &["rescue.net", "rescue.net.timeout"];

/// Why a network key of the command line could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("{key}={value}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> CmdlineError {
    CmdlineError::Invalid {
        key: key.to_owned(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// An Ethernet MAC address. Parses `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl FromStr for MacAddr {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split([':', '-']) {
            if n == 6 || part.len() != 2 {
                return Err(());
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| ())?;
            n += 1;
        }
        if n == 6 {
            Ok(MacAddr(out))
        } else {
            Err(())
        }
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The `<autoconf>` field of `ip=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autoconf {
    /// `off`/`none`, or empty with a client address: static configuration (or nothing).
    Off,
    /// `dhcp`, `on`, `any`, `single-dhcp` and an empty field without a client address.
    Dhcp,
    /// `dhcp6`: not supported by this init (reported as an error when applied).
    Dhcp6,
    /// `auto6`, `either6`, `link6`: IPv6 autoconfiguration, not supported yet.
    Auto6,
    /// `ibft`: iSCSI firmware table, not supported.
    Ibft,
    /// `bootp`, `rarp`, `both`: kernel-only protocols, not supported.
    BootpRarp,
}

impl Autoconf {
    fn parse(s: &str) -> Option<Self> {
        // The kernel allows `dhcp,<client-id-type>,<client-id-value>`; the client id is ignored.
        let word = s.split(',').next().unwrap_or(s);
        Some(match word {
            "off" | "none" => Autoconf::Off,
            "dhcp" | "on" | "any" | "single-dhcp" | "dhcp4" => Autoconf::Dhcp,
            "dhcp6" => Autoconf::Dhcp6,
            "auto6" | "either6" | "link6" => Autoconf::Auto6,
            "ibft" => Autoconf::Ibft,
            "bootp" | "rarp" | "both" => Autoconf::BootpRarp,
            _ => return None,
        })
    }
}

/// One `ip=` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpParam {
    pub client: Option<IpAddr>,
    /// Kernel `<server-ip>` / dracut `<peer>`: recorded, not used for routing.
    pub peer: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
    /// Prefix length from `<netmask>` (dotted mask or length).
    pub prefix: Option<u8>,
    pub hostname: Option<String>,
    pub device: Option<String>,
    pub autoconf: Autoconf,
    pub dns: Vec<IpAddr>,
    pub ntp: Vec<IpAddr>,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
}

impl IpParam {
    fn with_autoconf(autoconf: Autoconf) -> Self {
        IpParam {
            client: None,
            peer: None,
            gateway: None,
            prefix: None,
            hostname: None,
            device: None,
            autoconf,
            dns: Vec::new(),
            ntp: Vec::new(),
            mtu: None,
            mac: None,
        }
    }

    /// The prefix to use for an IPv4 client address: the given one, else classful (kernel rule).
    pub fn ipv4_prefix(&self) -> Option<u8> {
        match self.client {
            Some(IpAddr::V4(a)) => Some(self.prefix.unwrap_or_else(|| classful_prefix(a))),
            _ => None,
        }
    }
}

/// Classful netmask of an IPv4 address (class A /8, B /16, otherwise /24).
pub fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// `rescue.net=`: the project's own switch (see the module docs of `net`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescueNet {
    /// Not given: follow `ip=`/`rd.neednet`.
    Default,
    /// `rescue.net=off`: never touch the network, whatever `ip=` says.
    Off,
    /// `rescue.net=on`: bring the network up (DHCP unless `ip=` says otherwise).
    On,
}

/// Network configuration from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub ips: Vec<IpParam>,
    pub nameservers: Vec<IpAddr>,
    /// `BOOTIF=`: the MAC of the NIC that PXE booted.
    pub bootif: Option<MacAddr>,
    /// `bootdev=`: the interface that owns the default route and DNS.
    pub bootdev: Option<String>,
    /// `rd.neednet=1`.
    pub need_net: bool,
    /// `rd.peerdns=0` turns this off: ignore DNS servers from DHCP.
    pub peer_dns: bool,
    pub rescue_net: RescueNet,
    pub dhcp_timeout: Duration,
    pub carrier_timeout: Duration,
    /// Keys recognised but not implemented (`vlan=`, `bond=`, ...), for a warning.
    pub ignored: Vec<String>,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            ips: Vec::new(),
            nameservers: Vec::new(),
            bootif: None,
            bootdev: None,
            need_net: false,
            peer_dns: true,
            rescue_net: RescueNet::Default,
            dhcp_timeout: DEFAULT_DHCP_TIMEOUT,
            carrier_timeout: DEFAULT_CARRIER_TIMEOUT,
            ignored: Vec::new(),
        }
    }
}

impl NetConfig {
    /// Parses the network keys of a whole kernel command line (`/proc/cmdline`). Other keys
    /// are ignored. The last value wins for single-valued keys; `ip=` and `nameserver=` add up.
    pub fn from_cmdline(cmdline: &str) -> Result<Self, CmdlineError> {
        let mut c = NetConfig::default();
        let mut bootif_enabled = true;
        for word in split_cmdline(cmdline) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (word.as_str(), None),
            };
            match (key, value) {
                ("ip", Some(v)) => c.ips.push(parse_ip(v)?),
                ("nameserver", Some(v)) => c
                    .nameservers
                    .push(parse_addr(v).ok_or_else(|| invalid(key, v, "not an IP address"))?),
                ("BOOTIF", Some(v)) => c.bootif = Some(parse_bootif(v)?),
                ("bootdev", Some(v)) if !v.is_empty() => c.bootdev = Some(v.to_owned()),
                ("rd.neednet", v) => c.need_net = parse_bool(key, v)?,
                ("rd.peerdns", v) => c.peer_dns = parse_bool(key, v)?,
                ("rd.bootif", v) => bootif_enabled = parse_bool(key, v)?,
                ("rd.net.timeout.dhcp" | "rescue.net.timeout", Some(v)) => {
                    c.dhcp_timeout = parse_secs(key, v)?
                }
                ("rd.net.timeout.carrier", Some(v)) => c.carrier_timeout = parse_secs(key, v)?,
                ("rescue.net", Some(v)) => {
                    c.rescue_net = match v {
                        "off" | "0" | "none" => RescueNet::Off,
                        "on" | "1" | "dhcp" => RescueNet::On,
                        _ => return Err(invalid(key, v, "expected off or on")),
                    }
                }
                ("vlan" | "bond" | "team" | "bridge" | "ifname" | "rd.route", Some(_)) => {
                    c.ignored.push(word.clone())
                }
                _ => {}
            }
        }
        if !bootif_enabled {
            c.bootif = None;
        }
        Ok(c)
    }

    /// Whether the network should be brought up at all.
    pub fn wanted(&self) -> bool {
        match self.rescue_net {
            RescueNet::Off => false,
            RescueNet::On => true,
            RescueNet::Default => {
                self.need_net
                    || self.ips.iter().any(|p| {
                        p.autoconf != Autoconf::Off || p.client.is_some() || p.device.is_some()
                    })
            }
        }
    }
}

/// Splits a kernel command line on whitespace, keeping double-quoted parts together and
/// dropping the quotes (`key="a b"` → `key=a b`), as the kernel's `next_arg` does.
pub fn split_cmdline(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut has = false;
    for ch in cmdline.chars() {
        match ch {
            '"' => {
                quoted = !quoted;
                has = true;
            }
            c if c.is_whitespace() && !quoted => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

fn parse_bool(key: &str, v: Option<&str>) -> Result<bool, CmdlineError> {
    match v {
        None | Some("1" | "yes" | "true" | "on") => Ok(true),
        Some("0" | "no" | "false" | "off") => Ok(false),
        Some(v) => Err(invalid(key, v, "expected 0 or 1")),
    }
}

fn parse_secs(key: &str, v: &str) -> Result<Duration, CmdlineError> {
    match v.parse::<u64>() {
        Ok(s) if (1..=3600).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(invalid(key, v, "expected seconds between 1 and 3600")),
    }
}

fn parse_addr(s: &str) -> Option<IpAddr> {
    let s = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    s.parse().ok()
}

/// `BOOTIF=01-aa-bb-cc-dd-ee-ff` (pxelinux `IPAPPEND 2`: ARP type 01, then the MAC); the bare
/// MAC is accepted too.
fn parse_bootif(v: &str) -> Result<MacAddr, CmdlineError> {
    let mac = match v.len() {
        20 if v.starts_with("01-") || v.starts_with("01:") => &v[3..],
        _ => v,
    };
    mac.parse()
        .map_err(|()| invalid("BOOTIF", v, "expected 01-aa-bb-cc-dd-ee-ff"))
}

/// Splits an `ip=` value on `:`, keeping `[...]` (IPv6) as one field without the brackets.
fn split_fields(v: &str) -> Result<Vec<String>, CmdlineError> {
    let mut out = Vec::new();
    let mut rest = v;
    loop {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = inner
                .find(']')
                .ok_or_else(|| invalid("ip", v, "unclosed '['"))?;
            let after = &inner[end + 1..];
            // Allow a `/prefix` right after the bracket (dracut's `<peer>/<len>`).
            let (suffix, tail) = match after.find(':') {
                Some(i) => (&after[..i], Some(&after[i + 1..])),
                None => (after, None),
            };
            out.push(format!("{}{}", &inner[..end], suffix));
            match tail {
                Some(t) => rest = t,
                None => break,
            }
        } else {
            match rest.find(':') {
                Some(i) => {
                    out.push(rest[..i].to_owned());
                    rest = &rest[i + 1..];
                }
                None => {
                    out.push(rest.to_owned());
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn parse_prefix(v: &str, field: &str, is_v6: bool) -> Result<u8, CmdlineError> {
    let max = if is_v6 { 128 } else { 32 };
    if let Ok(n) = field.parse::<u8>() {
        if n <= max {
            return Ok(n);
        }
    }
    if let Ok(mask) = field.parse::<Ipv4Addr>() {
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() == 32 {
            // At most 32, so it fits.
            return Ok(u8::try_from(bits.leading_ones()).unwrap_or(32));
        }
    }
    Err(invalid("ip", v, format!("bad netmask {field:?}")))
}

fn opt_addr(v: &str, what: &str, field: &str) -> Result<Option<IpAddr>, CmdlineError> {
    if field.is_empty() {
        return Ok(None);
    }
    // dracut's `<peer>` may carry a `/len`; keep only the address.
    let addr = field.split('/').next().unwrap_or(field);
    addr.parse()
        .map(Some)
        .map_err(|_| invalid("ip", v, format!("bad {what} {field:?}")))
}

/// Parses one `ip=` value.
pub fn parse_ip(v: &str) -> Result<IpParam, CmdlineError> {
    let f = split_fields(v)?;
    let nonempty = |s: &String| (!s.is_empty()).then(|| s.clone());
    if f.len() == 1 {
        let a = Autoconf::parse(&f[0]).ok_or_else(|| {
            invalid(
                "ip",
                v,
                "expected dhcp, on, any, off, none, dhcp6, auto6 or a full ip= form",
            )
        })?;
        return Ok(IpParam::with_autoconf(a));
    }
    // dracut: <interface>:<autoconf>[:[<mtu>][:<macaddr>]]
    if let Some(a) = Autoconf::parse(&f[1]) {
        if f.len() <= 9 {
            let mut p = IpParam::with_autoconf(a);
            p.device = nonempty(&f[0]);
            parse_mtu_mac(v, &f[2..], &mut p)?;
            return Ok(p);
        }
    }
    if f.len() > 16 {
        return Err(invalid("ip", v, "too many fields"));
    }
    let field = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
    let mut p = IpParam::with_autoconf(Autoconf::Off);
    p.client = opt_addr(v, "client address", field(0))?;
    p.peer = opt_addr(v, "server/peer address", field(1))?;
    p.gateway = opt_addr(v, "gateway", field(2))?;
    if !field(3).is_empty() {
        let v6 = matches!(p.client, Some(IpAddr::V6(_)));
        p.prefix = Some(parse_prefix(v, field(3), v6)?);
    }
    p.hostname = nonempty(&field(4).to_owned());
    p.device = nonempty(&field(5).to_owned());
    p.autoconf = match field(6) {
        "" if p.client.is_some() => Autoconf::Off,
        "" => Autoconf::Dhcp,
        s => {
            Autoconf::parse(s).ok_or_else(|| invalid("ip", v, format!("unknown autoconf {s:?}")))?
        }
    };
    let tail = if f.len() > 7 { &f[7..] } else { &[][..] };
    if let Some(first) = tail.first() {
        if parse_addr(first).is_some() {
            // Kernel <dns0>:<dns1>:<ntp0> (dracut <dns1>:<dns2>).
            for (i, s) in tail.iter().enumerate() {
                if s.is_empty() {
                    continue;
                }
                let a = parse_addr(s)
                    .ok_or_else(|| invalid("ip", v, format!("bad dns/ntp address {s:?}")))?;
                match i {
                    0 | 1 => p.dns.push(a),
                    2 => p.ntp.push(a),
                    _ => return Err(invalid("ip", v, "too many fields")),
                }
            }
        } else {
            parse_mtu_mac(v, tail, &mut p)?;
        }
    }
    Ok(p)
}

/// `[:[<mtu>][:<macaddr>]]`, where the MAC spreads over six `:`-separated fields (or is one
/// `-`-separated field).
fn parse_mtu_mac(v: &str, tail: &[String], p: &mut IpParam) -> Result<(), CmdlineError> {
    let Some(mtu) = tail.first() else {
        return Ok(());
    };
    if !mtu.is_empty() {
        p.mtu = Some(match mtu.parse::<u32>() {
            Ok(m) if (68..=65535).contains(&m) => m,
            _ => return Err(invalid("ip", v, format!("bad mtu {mtu:?}"))),
        });
    }
    let mac = &tail[1..];
    let text = match mac.len() {
        0 => return Ok(()),
        1 if mac[0].is_empty() => return Ok(()),
        1 | 6 => mac.join(":"),
        _ => return Err(invalid("ip", v, "bad mac address")),
    };
    p.mac = Some(
        text.parse()
            .map_err(|()| invalid("ip", v, format!("bad mac address {text:?}")))?,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn mac(s: &str) -> MacAddr {
        s.parse().expect("mac")
    }

    /// (ip= value, expected) for the forms of nfsroot.rst and dracut.cmdline(7).
    #[test]
    fn ip_forms() {
        let base = |a| IpParam::with_autoconf(a);
        let cases: Vec<(&str, IpParam)> = vec![
            ("dhcp", base(Autoconf::Dhcp)),
            ("on", base(Autoconf::Dhcp)),
            ("any", base(Autoconf::Dhcp)),
            ("single-dhcp", base(Autoconf::Dhcp)),
            ("off", base(Autoconf::Off)),
            ("none", base(Autoconf::Off)),
            ("dhcp6", base(Autoconf::Dhcp6)),
            ("auto6", base(Autoconf::Auto6)),
            ("either6", base(Autoconf::Auto6)),
            ("ibft", base(Autoconf::Ibft)),
            ("bootp", base(Autoconf::BootpRarp)),
            ("dhcp,01,aabbcc", base(Autoconf::Dhcp)),
            (
                "eth0:dhcp",
                IpParam {
                    device: Some("eth0".into()),
                    ..base(Autoconf::Dhcp)
                },
            ),
            (
                "enp1s0:dhcp:9000",
                IpParam {
                    device: Some("enp1s0".into()),
                    mtu: Some(9000),
                    ..base(Autoconf::Dhcp)
                },
            ),
            (
                "eth1:on::52:54:00:12:34:56",
                IpParam {
                    device: Some("eth1".into()),
                    mac: Some(mac("52:54:00:12:34:56")),
                    ..base(Autoconf::Dhcp)
                },
            ),
            (
                "eth1:dhcp:1500:52-54-00-12-34-57",
                IpParam {
                    device: Some("eth1".into()),
                    mtu: Some(1500),
                    mac: Some(mac("52:54:00:12:34:57")),
                    ..base(Autoconf::Dhcp)
                },
            ),
            // Kernel: all ten fields.
            (
                "10.0.0.5:10.0.0.1:10.0.0.254:255.255.255.0:node1:eth0:off:10.0.0.53:10.0.0.54:10.0.0.123",
                IpParam {
                    client: Some(ip("10.0.0.5")),
                    peer: Some(ip("10.0.0.1")),
                    gateway: Some(ip("10.0.0.254")),
                    prefix: Some(24),
                    hostname: Some("node1".into()),
                    device: Some("eth0".into()),
                    dns: vec![ip("10.0.0.53"), ip("10.0.0.54")],
                    ntp: vec![ip("10.0.0.123")],
                    ..base(Autoconf::Off)
                },
            ),
            // pxelinux IPAPPEND 1: four fields, empty autoconf with a client address = static.
            (
                "192.168.1.20:192.168.1.1:192.168.1.1:255.255.255.0",
                IpParam {
                    client: Some(ip("192.168.1.20")),
                    peer: Some(ip("192.168.1.1")),
                    gateway: Some(ip("192.168.1.1")),
                    prefix: Some(24),
                    ..base(Autoconf::Off)
                },
            ),
            // Kernel: only a device, autoconf empty → DHCP on it.
            (
                ":::::eth2:",
                IpParam {
                    device: Some("eth2".into()),
                    ..base(Autoconf::Dhcp)
                },
            ),
            (
                ":::::eth2:none",
                IpParam {
                    device: Some("eth2".into()),
                    ..base(Autoconf::Off)
                },
            ),
            // dracut: prefix length as netmask, mtu and a MAC spread over six fields.
            (
                "10.1.2.3::10.1.2.1:20:h:bootnet:none:1400:02:aa:bb:cc:dd:ee",
                IpParam {
                    client: Some(ip("10.1.2.3")),
                    gateway: Some(ip("10.1.2.1")),
                    prefix: Some(20),
                    hostname: Some("h".into()),
                    device: Some("bootnet".into()),
                    mtu: Some(1400),
                    mac: Some(mac("02:aa:bb:cc:dd:ee")),
                    ..base(Autoconf::Off)
                },
            ),
            // dracut: dns1/dns2 tail, IPv6 in brackets, peer with /len.
            (
                "[2001:db8::5]:[2001:db8::1]/64:[2001:db8::fe]:64::eth0:none:[2001:db8::53]:192.0.2.53",
                IpParam {
                    client: Some(ip("2001:db8::5")),
                    peer: Some(ip("2001:db8::1")),
                    gateway: Some(ip("2001:db8::fe")),
                    prefix: Some(64),
                    device: Some("eth0".into()),
                    dns: vec![ip("2001:db8::53"), ip("192.0.2.53")],
                    ..base(Autoconf::Off)
                },
            ),
            // Static with dhcp autoconf: the address field is a hint only.
            (
                "10.9.9.9::::myhost:eth0:dhcp",
                IpParam {
                    client: Some(ip("10.9.9.9")),
                    hostname: Some("myhost".into()),
                    device: Some("eth0".into()),
                    ..base(Autoconf::Dhcp)
                },
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse_ip(input), Ok(want), "ip={input}");
        }
    }

    #[test]
    fn ip_errors() {
        for bad in [
            "",
            "bogus",
            "10.0.0.300::::::off",
            "10.0.0.5::10.0.0.1:255.0.255.0::eth0:off",
            "10.0.0.5::10.0.0.1:33::eth0:off",
            "10.0.0.5::::h:eth0:sometimes",
            "[2001:db8::5:::::eth0:none",
            "eth0:dhcp:12",
            "eth0:dhcp:1500:52:54:00",
            "10.0.0.5::::h:eth0:none:1500:zz:zz:zz:zz:zz:zz",
        ] {
            let e = parse_ip(bad).expect_err(bad);
            assert!(e.to_string().starts_with("ip="), "{bad}: {e}");
        }
    }

    #[test]
    fn classful_default_mask() {
        let p = parse_ip("10.1.2.3::::::off").expect("parse");
        assert_eq!(p.ipv4_prefix(), Some(8));
        assert_eq!(classful_prefix(Ipv4Addr::new(172, 16, 0, 1)), 16);
        assert_eq!(classful_prefix(Ipv4Addr::new(192, 168, 0, 1)), 24);
        let p = parse_ip("10.1.2.3:::255.255.0.0:::off").expect("parse");
        assert_eq!(p.ipv4_prefix(), Some(16));
    }

    #[test]
    fn whole_cmdline() {
        let c = NetConfig::from_cmdline(
            "BOOT_IMAGE=/vmlinuz console=ttyS0 ip=eth0:dhcp ip=10.0.1.5:::24::eth1:none \
             nameserver=192.0.2.1 nameserver=[2001:db8::53] BOOTIF=01-52-54-00-AB-CD-EF \
             rd.neednet rd.peerdns=0 rd.net.timeout.carrier=7 rescue.net.timeout=9 vlan=v5:eth0 \
             rescue.source=\"http://x/a b\"",
        )
        .expect("parse");
        assert_eq!(c.ips.len(), 2);
        assert_eq!(c.ips[1].client, Some(ip("10.0.1.5")));
        assert_eq!(c.nameservers, [ip("192.0.2.1"), ip("2001:db8::53")]);
        assert_eq!(c.bootif, Some(mac("52:54:00:ab:cd:ef")));
        assert!(c.need_net);
        assert!(!c.peer_dns);
        assert_eq!(c.carrier_timeout, Duration::from_secs(7));
        assert_eq!(c.dhcp_timeout, Duration::from_secs(9));
        assert_eq!(c.ignored, ["vlan=v5:eth0"]);
        assert!(c.wanted());
    }

    #[test]
    fn wanted_and_switches() {
        let w = |s: &str| NetConfig::from_cmdline(s).expect(s).wanted();
        assert!(!w("console=ttyS0"));
        assert!(!w("ip=off"));
        assert!(!w("rd.neednet=0"));
        assert!(w("rd.neednet=1"));
        assert!(w("ip=dhcp"));
        assert!(w("rescue.net=on"));
        assert!(w("ip=:::::eth1:none"), "a link to bring up without address");
        assert!(!w("ip=dhcp BOOTIF=01-52-54-00-ab-cd-ef rescue.net=off"));
        let c = NetConfig::from_cmdline("BOOTIF=01-52-54-00-ab-cd-ef rd.bootif=0").expect("parse");
        assert_eq!(c.bootif, None);
        assert_eq!(
            NetConfig::default().dhcp_timeout,
            DEFAULT_DHCP_TIMEOUT,
            "default timeout"
        );
    }

    #[test]
    fn cmdline_errors() {
        for bad in [
            "nameserver=dns.example",
            "BOOTIF=01-52-54-00",
            "rd.neednet=maybe",
            "rescue.net=auto",
            "rescue.net.timeout=0",
            "rd.net.timeout.dhcp=x",
            "ip=eth0:dhcp:9",
        ] {
            assert!(NetConfig::from_cmdline(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn split_respects_quotes() {
        assert_eq!(
            split_cmdline("  a=1 b=\"x y\"  \"c=3 4\" d "),
            ["a=1", "b=x y", "c=3 4", "d"]
        );
    }

    #[test]
    fn mac_text() {
        assert_eq!(mac("AA-bb-CC-dd-EE-ff").to_string(), "aa:bb:cc:dd:ee:ff");
        for bad in [
            "aa:bb:cc:dd:ee",
            "aa:bb:cc:dd:ee:ff:00",
            "aab:b:cc:dd:ee:ff",
            "gg:bb:cc:dd:ee:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }
}
