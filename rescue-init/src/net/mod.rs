//! Network bring-up for PID 1: links up (lo too), static `ip=` or DHCPv4, default route, and
//! the text of `/etc/resolv.conf` and `/etc/hosts` for the caller to write.
//!
//! Allowed effects: only through [`NetSys`] (interfaces, routes, the DHCP socket); the real
//! implementation is `sys_linux.rs`, the only file here with `unsafe`. [`plan`] is pure: it
//! decides from the command line ([`NetConfig`]) and the links present what to do to which
//! interface. Nothing here writes files or blocks without a bound.
//!
//! Keys: the kernel's and dracut's `ip=`, `nameserver=`, `BOOTIF=`, `bootdev=`, `rd.neednet`,
//! `rd.peerdns`, `rd.bootif`, `rd.net.timeout.{dhcp,carrier}`, plus `rescue.net=off|on` and
//! `rescue.net.timeout=<s>`. The project key exists because PXE profiles and boot-loader
//! templates often inject `ip=`/`BOOTIF=` for their own use: `rescue.net=off` keeps a rescue
//! that only needs the local disk off the network whatever else the line says, and
//! `rescue.net=on` asks for DHCP without borrowing dracut's `rd.neednet` semantics.
pub mod cmdline;
pub mod dhcp;
pub mod entropy;
pub mod resolv;
pub mod sys_linux;

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use thiserror::Error;

pub use cmdline::{Autoconf, CmdlineError, IpParam, MacAddr, NetConfig, RescueNet};
pub use dhcp::{DhcpError, DhcpTransport, Lease};
pub use entropy::EntropyError;
pub use sys_linux::LinuxNet;

/// Why the network could not be brought up. Messages name the interface.
#[derive(Debug, Error)]
pub enum NetError {
    #[error("invalid network option")]
    Cmdline(#[from] CmdlineError),
    #[error("{op} on {ifname} failed")]
    Sys {
        op: &'static str,
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("no network interface besides lo (is the NIC driver loaded?)")]
    NoLinks,
    #[error("interface {ifname} named by the command line does not exist (have: {available})")]
    NoSuchLink { ifname: String, available: String },
    #[error("no interface has the PXE boot MAC {mac} from BOOTIF= (have: {available})")]
    BootifNotFound { mac: MacAddr, available: String },
    #[error("ip={param}: no device named and several interfaces ({available}); add the device or BOOTIF=")]
    Ambiguous { param: String, available: String },
    #[error("ip={param}: {what} is not supported by rescue-init")]
    Unsupported { param: String, what: &'static str },
    #[error("dhcp failed")]
    Dhcp(#[from] DhcpError),
    #[error("dhcp failed on every interface tried ({tried}); last error")]
    DhcpAll {
        tried: String,
        #[source]
        last: DhcpError,
    },
}

/// A network interface as seen at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub mac: Option<MacAddr>,
    pub loopback: bool,
    pub up: bool,
    /// Carrier (IFF_RUNNING).
    pub running: bool,
}

/// The effects `net` needs; [`LinuxNet`] is the real one.
pub trait NetSys {
    /// All interfaces, ordered by index.
    fn links(&self) -> Result<Vec<Link>, NetError>;
    /// One interface's current flags and MAC (index may be 0).
    fn link(&self, name: &str) -> Result<Link, NetError>;
    fn set_up(&self, name: &str) -> Result<(), NetError>;
    fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), NetError>;
    /// Needs the link down (set it before [`NetSys::set_up`]).
    fn set_mac(&self, name: &str, mac: MacAddr) -> Result<(), NetError>;
    fn set_ipv4(&self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError>;
    fn add_route(
        &self,
        name: &str,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetError>;
    fn dhcp_transport(&self, name: &str) -> Result<Box<dyn DhcpTransport>, NetError>;
    /// A DHCP transaction id; must never block.
    fn xid(&self) -> u32;
}

/// How one interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Dhcp,
    Static {
        address: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    },
    /// Up, no address (`ip=:::::eth1:none`).
    LinkOnly,
}

/// What to do, decided by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Interfaces to try in order; the first that succeeds is used (several only for
    /// `ip=dhcp` without a device or BOOTIF).
    pub candidates: Vec<String>,
    pub method: Method,
    pub mtu: Option<u32>,
    pub mac: Option<MacAddr>,
    pub hostname: Option<String>,
    /// DNS servers from the `ip=` line itself.
    pub dns: Vec<IpAddr>,
}

/// The whole bring-up decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The interface whose gateway becomes the default route (`bootdev=`, else BOOTIF's NIC);
    /// `None`: the first configured interface that has a gateway.
    pub route_dev: Option<String>,
}

fn names(links: &[&Link]) -> String {
    let v: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}

fn param_text(p: &IpParam) -> String {
    match (&p.device, p.client) {
        (Some(d), _) => format!("{d}:..."),
        (None, Some(c)) => format!("{c}:..."),
        (None, None) => format!("{:?}", p.autoconf).to_lowercase(),
    }
}

/// Decides which interfaces to configure and how. Pure.
pub fn plan(cfg: &NetConfig, links: &[Link]) -> Result<Plan, NetError> {
    if !cfg.wanted() {
        return Ok(Plan {
            steps: Vec::new(),
            route_dev: None,
        });
    }
    let nics: Vec<&Link> = links.iter().filter(|l| !l.loopback).collect();
    let bootif = match cfg.bootif {
        Some(mac) => Some(
            nics.iter()
                .find(|l| l.mac == Some(mac))
                .map(|l| l.name.clone())
                .ok_or_else(|| NetError::BootifNotFound {
                    mac,
                    available: names(&nics),
                })?,
        ),
        None => None,
    };
    let default_dhcp;
    let params: &[IpParam] = if cfg.ips.is_empty() {
        default_dhcp = [cmdline::parse_ip("dhcp")?];
        &default_dhcp
    } else {
        &cfg.ips
    };
    let mut steps = Vec::new();
    for p in params {
        let unsupported = |what| NetError::Unsupported {
            param: param_text(p),
            what,
        };
        let method = match (p.autoconf, p.client) {
            (Autoconf::Dhcp, _) => Method::Dhcp,
            (Autoconf::Off, Some(IpAddr::V4(address))) => Method::Static {
                address,
                prefix: p.ipv4_prefix().unwrap_or(24),
                gateway: match p.gateway {
                    None => None,
                    Some(IpAddr::V4(g)) if g.is_unspecified() => None,
                    Some(IpAddr::V4(g)) => Some(g),
                    Some(IpAddr::V6(_)) => return Err(unsupported("an IPv6 gateway")),
                },
            },
            (Autoconf::Off, Some(IpAddr::V6(_))) => {
                return Err(unsupported("a static IPv6 address"))
            }
            (Autoconf::Off, None) if p.device.is_some() => Method::LinkOnly,
            (Autoconf::Off, None) => continue, // ip=off / ip=none
            (Autoconf::Dhcp6, _) => return Err(unsupported("dhcp6")),
            (Autoconf::Auto6, _) => return Err(unsupported("IPv6 autoconfiguration")),
            (Autoconf::Ibft, _) => return Err(unsupported("ibft")),
            (Autoconf::BootpRarp, _) => return Err(unsupported("bootp/rarp")),
        };
        let candidates = match (&p.device, &bootif) {
            (Some(d), _) => {
                if !nics.iter().any(|l| &l.name == d) {
                    return Err(NetError::NoSuchLink {
                        ifname: d.clone(),
                        available: names(&nics),
                    });
                }
                vec![d.clone()]
            }
            (None, Some(b)) => vec![b.clone()],
            (None, None) if nics.is_empty() => return Err(NetError::NoLinks),
            (None, None) if nics.len() == 1 => vec![nics[0].name.clone()],
            (None, None) if method == Method::Dhcp => nics.iter().map(|l| l.name.clone()).collect(),
            (None, None) => {
                return Err(NetError::Ambiguous {
                    param: param_text(p),
                    available: names(&nics),
                })
            }
        };
        steps.push(Step {
            candidates,
            method,
            mtu: p.mtu,
            mac: p.mac,
            hostname: p.hostname.clone(),
            dns: p.dns.clone(),
        });
    }
    Ok(Plan {
        steps,
        route_dev: cfg.bootdev.clone().or(bootif),
    })
}

/// [`bring_up`] on the running kernel from a whole command line (`/proc/cmdline`).
pub fn bring_up_cmdline(cmdline: &str) -> Result<NetState, NetError> {
    bring_up(&NetConfig::from_cmdline(cmdline)?, &LinuxNet)
}

/// Where an interface's configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Static,
    Dhcp(Lease),
    LinkOnly,
}

/// One configured interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    pub ifname: String,
    pub mac: Option<MacAddr>,
    pub address: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    /// Whether this interface got the default route.
    pub default_route: bool,
    pub source: Source,
    /// Time spent obtaining the address (DHCP exchange).
    pub elapsed: Duration,
}

/// The network as brought up, and the resolver files it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetState {
    pub interfaces: Vec<Configured>,
    /// In order: `nameserver=`, `ip=` DNS fields, DHCP option 6 (unless `rd.peerdns=0`).
    pub nameservers: Vec<IpAddr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
}

impl NetState {
    /// Text for `/etc/resolv.conf`.
    pub fn resolv_conf(&self) -> String {
        resolv::resolv_conf(&self.nameservers, self.domain.as_deref())
    }

    /// Text for `/etc/hosts`.
    pub fn hosts(&self) -> String {
        let addr = self.interfaces.iter().find_map(|c| c.address);
        resolv::hosts(self.hostname.as_deref(), self.domain.as_deref(), addr)
    }
}

/// Waits until every link in `names` has carrier, or `timeout`. Returns those with carrier.
fn wait_carrier(sys: &dyn NetSys, names: &[String], timeout: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let ready: Vec<String> = names
            .iter()
            .filter(|n| sys.link(n).map(|l| l.running).unwrap_or(false))
            .cloned()
            .collect();
        if ready.len() == names.len() || start.elapsed() >= timeout {
            return ready;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Brings the network up as the command line says: lo up; for each planned interface, MAC and
/// MTU, link up, carrier wait (bounded), then static address or DHCP (bounded per interface);
/// one default route. Returns what was configured; the caller writes
/// [`NetState::resolv_conf`] and [`NetState::hosts`] to `/etc`.
pub fn bring_up(cfg: &NetConfig, sys: &dyn NetSys) -> Result<NetState, NetError> {
    for word in &cfg.ignored {
        log::warn!("net: {word} is not supported, ignored");
    }
    let mut state = NetState {
        interfaces: Vec::new(),
        nameservers: cfg.nameservers.clone(),
        hostname: None,
        domain: None,
    };
    sys.set_up("lo")?;
    if !cfg.wanted() {
        log::info!("net: not requested (no ip=, rd.neednet or rescue.net=on)");
        return Ok(state);
    }
    // NIC drivers may still be probing: retry the plan until the carrier timeout.
    let start = Instant::now();
    let plan = loop {
        let links = sys.links()?;
        match plan(cfg, &links) {
            Ok(p) => break p,
            Err(
                e @ (NetError::NoLinks
                | NetError::NoSuchLink { .. }
                | NetError::BootifNotFound { .. }),
            ) if start.elapsed() < cfg.carrier_timeout => {
                log::debug!("net: {e}; waiting for interfaces");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e),
        }
    };
    let mut all: Vec<String> = Vec::new();
    for step in &plan.steps {
        for name in &step.candidates {
            if let Some(mac) = step.mac {
                sys.set_mac(name, mac)?;
            }
            if let Some(mtu) = step.mtu {
                sys.set_mtu(name, mtu)?;
            }
            sys.set_up(name)?;
            if !all.contains(name) {
                all.push(name.clone());
            }
        }
    }
    let with_carrier = wait_carrier(sys, &all, cfg.carrier_timeout);
    for name in all.iter().filter(|n| !with_carrier.contains(n)) {
        log::warn!(
            "net: {name} has no carrier after {:.1} s",
            cfg.carrier_timeout.as_secs_f64()
        );
    }
    for step in &plan.steps {
        let c = configure_step(cfg, sys, step, &with_carrier)?;
        if state.hostname.is_none() {
            state.hostname = step.hostname.clone();
        }
        state.nameservers.extend(step.dns.iter().copied());
        if let Source::Dhcp(lease) = &c.source {
            if cfg.peer_dns {
                state
                    .nameservers
                    .extend(lease.dns.iter().map(|a| IpAddr::V4(*a)));
            }
            if state.hostname.is_none() {
                state.hostname = lease.hostname.clone();
            }
            if state.domain.is_none() {
                state.domain = lease.domain.clone();
            }
        }
        state.interfaces.push(c);
    }
    // One default route: route_dev's gateway, else the first interface with one.
    let owner = state.interfaces.iter().position(|c| {
        c.gateway.is_some() && plan.route_dev.as_ref().is_none_or(|d| d == &c.ifname)
    });
    if let Some(i) = owner {
        let c = &mut state.interfaces[i];
        if let (Some(gw), Some(addr)) = (c.gateway, c.address) {
            add_default_route(sys, &c.ifname, addr, c.prefix, gw)?;
            c.default_route = true;
            log::info!("net: default route via {gw} dev {}", c.ifname);
        }
    } else {
        log::info!("net: no gateway, no default route (only the local subnet is reachable)");
    }
    Ok(state)
}

fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    u32::from(a) & mask == u32::from(b) & mask
}

fn add_default_route(
    sys: &dyn NetSys,
    ifname: &str,
    addr: Ipv4Addr,
    prefix: u8,
    gw: Ipv4Addr,
) -> Result<(), NetError> {
    if !same_subnet(addr, gw, prefix) {
        // e.g. a /32 lease: reach the gateway through an on-link host route first.
        sys.add_route(ifname, gw, 32, None)?;
    }
    match sys.add_route(ifname, Ipv4Addr::UNSPECIFIED, 0, Some(gw)) {
        Err(NetError::Sys { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            log::warn!("net: a default route exists already; kept it");
            Ok(())
        }
        r => r,
    }
}

fn configure_step(
    cfg: &NetConfig,
    sys: &dyn NetSys,
    step: &Step,
    with_carrier: &[String],
) -> Result<Configured, NetError> {
    let mac_of = |n: &str| sys.link(n).ok().and_then(|l| l.mac);
    match &step.method {
        Method::Static {
            address,
            prefix,
            gateway,
        } => {
            let name = &step.candidates[0];
            sys.set_ipv4(name, *address, *prefix)?;
            log::info!("net: {name} static {address}/{prefix}");
            Ok(Configured {
                ifname: name.clone(),
                mac: mac_of(name),
                address: Some(*address),
                prefix: *prefix,
                gateway: *gateway,
                default_route: false,
                source: Source::Static,
                elapsed: Duration::ZERO,
            })
        }
        Method::LinkOnly => {
            let name = &step.candidates[0];
            log::info!("net: {name} up without address");
            Ok(Configured {
                ifname: name.clone(),
                mac: mac_of(name),
                address: None,
                prefix: 0,
                gateway: None,
                default_route: false,
                source: Source::LinkOnly,
                elapsed: Duration::ZERO,
            })
        }
        Method::Dhcp => {
            // Interfaces with carrier first; those without are tried only if none has one.
            let mut order: Vec<&String> = step
                .candidates
                .iter()
                .filter(|n| with_carrier.contains(n))
                .collect();
            if order.is_empty() || step.candidates.len() == 1 {
                order = step.candidates.iter().collect();
            }
            let mut last = None;
            for name in &order {
                match dhcp_one(cfg, sys, name, step.hostname.clone()) {
                    Ok(c) => return Ok(c),
                    Err(NetError::Dhcp(e)) if order.len() > 1 => {
                        log::warn!("net: {e}");
                        last = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            let tried: Vec<&str> = order.iter().map(|s| s.as_str()).collect();
            match last {
                Some(last) => Err(NetError::DhcpAll {
                    tried: tried.join(", "),
                    last,
                }),
                None => Err(NetError::NoLinks),
            }
        }
    }
}

fn dhcp_one(
    cfg: &NetConfig,
    sys: &dyn NetSys,
    name: &str,
    hostname: Option<String>,
) -> Result<Configured, NetError> {
    let link = sys.link(name)?;
    let mac = link.mac.ok_or_else(|| NetError::Sys {
        op: "dhcp (no ethernet mac)",
        ifname: name.to_owned(),
        source: io::ErrorKind::Unsupported.into(),
    })?;
    let params = dhcp::ClientParams {
        ifname: name.to_owned(),
        mac,
        hostname,
        timeout: cfg.dhcp_timeout,
        xid: sys.xid(),
    };
    log::info!(
        "net: dhcp on {name} ({mac}), up to {:.0} s",
        cfg.dhcp_timeout.as_secs_f64()
    );
    let start = Instant::now();
    let lease = {
        let mut t = sys.dhcp_transport(name)?;
        dhcp::obtain_lease(t.as_mut(), &params)?
    };
    let elapsed = start.elapsed();
    sys.set_ipv4(name, lease.address, lease.prefix)?;
    log::info!(
        "net: {name} dhcp {}/{} from {} router {} dns {} lease {} in {:.3} s",
        lease.address,
        lease.prefix,
        lease.server_id,
        lease
            .routers
            .first()
            .map_or("none".to_owned(), |r| r.to_string()),
        if lease.dns.is_empty() {
            "none".to_owned()
        } else {
            lease
                .dns
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(",")
        },
        lease
            .lease_secs
            .map_or("infinite".to_owned(), |s| format!("{s} s")),
        elapsed.as_secs_f64()
    );
    Ok(Configured {
        ifname: name.to_owned(),
        mac: Some(mac),
        address: Some(lease.address),
        prefix: lease.prefix,
        gateway: lease.routers.first().copied(),
        default_route: false,
        source: Source::Dhcp(lease),
        elapsed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, index: u32, mac: Option<[u8; 6]>) -> Link {
        Link {
            name: name.into(),
            index,
            mac: mac.map(MacAddr),
            loopback: name == "lo",
            up: false,
            running: false,
        }
    }

    fn links() -> Vec<Link> {
        vec![
            link("lo", 1, None),
            link("eth0", 2, Some([2, 0, 0, 0, 0, 1])),
            link("eth1", 3, Some([2, 0, 0, 0, 0, 2])),
        ]
    }

    fn plan_of(cmdline: &str, links: &[Link]) -> Result<Plan, NetError> {
        plan(&NetConfig::from_cmdline(cmdline).expect(cmdline), links)
    }

    fn cands(p: &Plan) -> Vec<Vec<String>> {
        p.steps.iter().map(|s| s.candidates.clone()).collect()
    }

    #[test]
    fn dhcp_candidates() {
        // ip=dhcp without BOOTIF: every NIC in index order, lo never.
        let p = plan_of("ip=dhcp", &links()).expect("plan");
        assert_eq!(cands(&p), [["eth0", "eth1"]]);
        assert_eq!(p.steps[0].method, Method::Dhcp);
        assert_eq!(p.route_dev, None);
        // BOOTIF picks the PXE NIC, which also owns the default route.
        let p = plan_of("ip=dhcp BOOTIF=01-02-00-00-00-00-02", &links()).expect("plan");
        assert_eq!(cands(&p), [["eth1"]]);
        assert_eq!(p.route_dev.as_deref(), Some("eth1"));
        // rd.neednet alone with BOOTIF: DHCP on that NIC.
        let p = plan_of("rd.neednet=1 BOOTIF=02:00:00:00:00:01", &links()).expect("plan");
        assert_eq!(cands(&p), [["eth0"]]);
        // Nothing asked: nothing planned.
        assert!(plan_of("BOOTIF=01-02-00-00-00-00-02", &links())
            .expect("plan")
            .steps
            .is_empty());
        assert!(plan_of("ip=dhcp rescue.net=off", &links())
            .expect("plan")
            .steps
            .is_empty());
    }

    #[test]
    fn several_ip_lines_and_bootdev() {
        let p = plan_of(
            "ip=eth0:dhcp ip=10.0.0.2::10.0.0.1:24::eth1:none bootdev=eth1",
            &links(),
        )
        .expect("plan");
        assert_eq!(cands(&p), [["eth0"], ["eth1"]]);
        assert_eq!(
            p.steps[1].method,
            Method::Static {
                address: Ipv4Addr::new(10, 0, 0, 2),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 0, 1)),
            }
        );
        assert_eq!(p.route_dev.as_deref(), Some("eth1"));
    }

    #[test]
    fn static_needs_a_device_when_ambiguous() {
        let e = plan_of("ip=10.0.0.2::10.0.0.1:255.255.255.0", &links()).expect_err("ambiguous");
        assert!(matches!(e, NetError::Ambiguous { .. }), "{e}");
        assert!(e.to_string().contains("eth0, eth1"), "{e}");
        // One NIC only: it is used. BOOTIF disambiguates too.
        let one = &links()[..2];
        let p = plan_of("ip=10.0.0.2::10.0.0.1:255.255.255.0", one).expect("plan");
        assert_eq!(cands(&p), [["eth0"]]);
        let p = plan_of("ip=10.0.0.2:::24 BOOTIF=01-02-00-00-00-00-02", &links()).expect("plan");
        assert_eq!(cands(&p), [["eth1"]]);
        // A class A address without a mask gets /8, as in the kernel.
        let p = plan_of("ip=10.0.0.2::::::off", one).expect("plan");
        assert!(matches!(
            p.steps[0].method,
            Method::Static { prefix: 8, .. }
        ));
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            (
                "ip=eth7:dhcp",
                "interface eth7 named by the command line does not exist (have: eth0, eth1)",
            ),
            (
                "ip=dhcp BOOTIF=01-02-00-00-00-00-09",
                "no interface has the PXE boot MAC 02:00:00:00:00:09",
            ),
            ("ip=eth0:dhcp6", "dhcp6 is not supported"),
            (
                "ip=[2001:db8::2]::::::none",
                "a static IPv6 address is not supported",
            ),
            ("ip=ibft", "ibft is not supported"),
        ];
        for (cmdline, want) in cases {
            let e = plan_of(cmdline, &links()).expect_err(cmdline);
            assert!(e.to_string().contains(want), "{cmdline}: {e}");
        }
        let e = plan_of("ip=dhcp", &links()[..1]).expect_err("no nic");
        assert!(matches!(e, NetError::NoLinks));
    }

    #[test]
    fn link_only_and_off() {
        let p = plan_of("ip=:::::eth1:none ip=eth0:dhcp", &links()).expect("plan");
        assert_eq!(p.steps[0].method, Method::LinkOnly);
        assert!(plan_of("ip=off rd.neednet=0", &links())
            .expect("plan")
            .steps
            .is_empty());
    }

    #[test]
    fn state_renders_resolver_files() {
        let s = NetState {
            interfaces: vec![Configured {
                ifname: "eth0".into(),
                mac: None,
                address: Some(Ipv4Addr::new(10, 0, 2, 15)),
                prefix: 24,
                gateway: None,
                default_route: false,
                source: Source::Static,
                elapsed: Duration::ZERO,
            }],
            nameservers: vec!["10.0.2.3".parse().expect("ip")],
            hostname: Some("cp1".into()),
            domain: Some("k8s.lab".into()),
        };
        assert_eq!(
            s.resolv_conf(),
            "# written by rescue-init\nsearch k8s.lab\nnameserver 10.0.2.3\noptions timeout:2 attempts:2\n"
        );
        assert!(
            s.hosts().ends_with("10.0.2.15\tcp1.k8s.lab cp1\n"),
            "{}",
            s.hosts()
        );
    }

    #[test]
    fn subnet_check() {
        let a = Ipv4Addr::new(10, 1, 2, 3);
        assert!(same_subnet(a, Ipv4Addr::new(10, 1, 2, 254), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 1, 3, 1), 24));
        assert!(!same_subnet(a, Ipv4Addr::new(10, 1, 2, 1), 32));
        assert!(same_subnet(a, Ipv4Addr::new(99, 9, 9, 9), 0));
    }
}
