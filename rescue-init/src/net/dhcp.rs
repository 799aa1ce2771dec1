//! DHCPv4 client (RFC 2131/2132): pure message encode/decode, and the DISCOVER → OFFER →
//! REQUEST → ACK exchange over any [`DhcpTransport`]. No IO of its own: the socket (bound to
//! one interface with `SO_BINDTODEVICE`, broadcast allowed) lives in `sys_linux.rs`.
//!
//! ```text
//!  0      1      2      3      4             8      10     12            28       44    108   236  240
//! +------+------+------+------+-------------+------+------+--- 4 x IPv4 --+--chaddr-+sname-+file-+magic+options
//! | op   |htype | hlen | hops |    xid      | secs |flags |ci yi si gi    | 16 bytes | 64   | 128 |63825363| code len data... 255
//! ```
use std::io;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::cmdline::MacAddr;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
const HEADER_LEN: usize = 240;
/// BOOTP's minimum message; some relays drop shorter ones.
const MIN_LEN: usize = 300;
/// The broadcast bit of `flags`: an interface without an address cannot get unicast replies.
pub const FLAG_BROADCAST: u16 = 0x8000;

pub const OPT_PAD: u8 = 0;
pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_HOSTNAME: u8 = 12;
pub const OPT_DOMAIN: u8 = 15;
pub const OPT_MTU: u8 = 26;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MSG_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_PARAM_LIST: u8 = 55;
pub const OPT_MAX_SIZE: u8 = 57;
pub const OPT_CLIENT_ID: u8 = 61;
pub const OPT_END: u8 = 255;

/// The options this client asks for (option 55).
pub const REQUESTED_OPTIONS: [u8; 7] = [
    OPT_SUBNET_MASK,
    OPT_ROUTER,
    OPT_DNS,
    OPT_HOSTNAME,
    OPT_DOMAIN,
    OPT_LEASE_TIME,
    OPT_MTU,
];

/// DHCP message types (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Decline = 4,
    Ack = 5,
    Nak = 6,
    Release = 7,
    Inform = 8,
}

impl MessageType {
    fn from_u8(v: u8) -> Option<Self> {
        use MessageType::*;
        Some(match v {
            1 => Discover,
            2 => Offer,
            3 => Request,
            4 => Decline,
            5 => Ack,
            6 => Nak,
            7 => Release,
            8 => Inform,
            _ => return None,
        })
    }
}

/// Why DHCP failed.
#[derive(Debug, Error)]
pub enum DhcpError {
    #[error("dhcp message too short ({len} bytes)")]
    Short { len: usize },
    #[error("dhcp message has no magic cookie")]
    NoMagic,
    #[error("dhcp option {code} overruns the message")]
    BadOption { code: u8 },
    #[error("no dhcp lease on {ifname} within {secs:.1} s ({discovers} discover, {requests} request sent, {offers} offer, {naks} nak received)")]
    Timeout {
        ifname: String,
        secs: f64,
        discovers: u32,
        requests: u32,
        offers: u32,
        naks: u32,
    },
    #[error("dhcp socket error on {ifname}")]
    Io {
        ifname: String,
        #[source]
        source: io::Error,
    },
}

/// A decoded or to-be-encoded DHCP message. Options keep their order; `file`/`sname`
/// overloading (option 52) is not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub op: u8,
    pub xid: u32,
    pub secs: u16,
    pub flags: u16,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: MacAddr,
    pub options: Vec<(u8, Vec<u8>)>,
}

impl Message {
    /// An empty BOOTREQUEST from `mac` with id `xid`.
    pub fn request(xid: u32, mac: MacAddr) -> Self {
        Message {
            op: 1,
            xid,
            secs: 0,
            flags: FLAG_BROADCAST,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: mac,
            options: Vec::new(),
        }
    }

    pub fn with(mut self, code: u8, data: impl Into<Vec<u8>>) -> Self {
        self.options.push((code, data.into()));
        self
    }

    /// The first option `code`, if any.
    pub fn option(&self, code: u8) -> Option<&[u8]> {
        self.options
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, d)| d.as_slice())
    }

    pub fn message_type(&self) -> Option<MessageType> {
        match self.option(OPT_MSG_TYPE) {
            Some([t]) => MessageType::from_u8(*t),
            _ => None,
        }
    }

    fn addrs(&self, code: u8) -> Vec<Ipv4Addr> {
        self.option(code)
            .map(|d| {
                d.chunks_exact(4)
                    .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn addr(&self, code: u8) -> Option<Ipv4Addr> {
        match self.option(code) {
            Some(&[a, b, c, d]) => Some(Ipv4Addr::new(a, b, c, d)),
            _ => None,
        }
    }

    fn text(&self, code: u8) -> Option<String> {
        let d = self.option(code)?;
        let d = d.split(|&b| b == 0).next().unwrap_or(d);
        let s = std::str::from_utf8(d).ok()?;
        (!s.is_empty()).then(|| s.to_owned())
    }

    /// Encodes the message; options longer than 255 bytes are split (RFC 3396).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MIN_LEN);
        b.extend_from_slice(&[self.op, 1, 6, 0]);
        b.extend_from_slice(&self.xid.to_be_bytes());
        b.extend_from_slice(&self.secs.to_be_bytes());
        b.extend_from_slice(&self.flags.to_be_bytes());
        for a in [self.ciaddr, self.yiaddr, self.siaddr, self.giaddr] {
            b.extend_from_slice(&a.octets());
        }
        b.extend_from_slice(&self.chaddr.0);
        b.resize(HEADER_LEN - 4, 0); // chaddr padding, sname, file
        b.extend_from_slice(&MAGIC);
        for (code, data) in &self.options {
            if data.is_empty() {
                b.extend_from_slice(&[*code, 0]);
            }
            for chunk in data.chunks(255) {
                b.push(*code);
                // chunks(255) guarantees the length fits in a byte.
                b.push(u8::try_from(chunk.len()).unwrap_or(255));
                b.extend_from_slice(chunk);
            }
        }
        b.push(OPT_END);
        if b.len() < MIN_LEN {
            b.resize(MIN_LEN, OPT_PAD);
        }
        b
    }

    /// Decodes a message, checking every length. Repeated options are concatenated (RFC 3396).
    pub fn decode(b: &[u8]) -> Result<Message, DhcpError> {
        if b.len() < HEADER_LEN {
            return Err(DhcpError::Short { len: b.len() });
        }
        if b[236..240] != MAGIC {
            return Err(DhcpError::NoMagic);
        }
        let ip = |o: usize| Ipv4Addr::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&b[28..34]);
        let mut options: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut i = HEADER_LEN;
        while i < b.len() {
            let code = b[i];
            match code {
                OPT_PAD => i += 1,
                OPT_END => break,
                _ => {
                    let len = *b.get(i + 1).ok_or(DhcpError::BadOption { code })? as usize;
                    let data = b
                        .get(i + 2..i + 2 + len)
                        .ok_or(DhcpError::BadOption { code })?;
                    match options.iter_mut().find(|(c, _)| *c == code) {
                        Some((_, d)) => d.extend_from_slice(data),
                        None => options.push((code, data.to_vec())),
                    }
                    i += 2 + len;
                }
            }
        }
        Ok(Message {
            op: b[0],
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            secs: u16::from_be_bytes([b[8], b[9]]),
            flags: u16::from_be_bytes([b[10], b[11]]),
            ciaddr: ip(12),
            yiaddr: ip(16),
            siaddr: ip(20),
            giaddr: ip(24),
            chaddr: MacAddr(mac),
            options,
        })
    }
}

/// What the client asks with (besides its MAC and transaction id).
#[derive(Debug, Clone)]
pub struct ClientParams {
    pub ifname: String,
    pub mac: MacAddr,
    pub hostname: Option<String>,
    /// Total time for this interface.
    pub timeout: Duration,
    pub xid: u32,
}

/// A DHCP lease as acknowledged by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    /// From option 1; classful when the server sent no mask.
    pub prefix: u8,
    /// Option 3 (may be empty: e.g. QEMU `restrict=on`).
    pub routers: Vec<Ipv4Addr>,
    /// Option 6 (may be empty).
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    pub lease_secs: Option<u32>,
    pub server_id: Ipv4Addr,
    pub mtu: Option<u16>,
}

impl Lease {
    fn from_ack(m: &Message, server_id: Ipv4Addr) -> Lease {
        let prefix = match m.addr(OPT_SUBNET_MASK) {
            Some(mask)
                if u32::from(mask).leading_ones() + u32::from(mask).trailing_zeros() == 32 =>
            {
                u8::try_from(u32::from(mask).leading_ones()).unwrap_or(32)
            }
            _ => super::cmdline::classful_prefix(m.yiaddr),
        };
        Lease {
            address: m.yiaddr,
            prefix,
            routers: m.addrs(OPT_ROUTER),
            dns: m.addrs(OPT_DNS),
            hostname: m.text(OPT_HOSTNAME),
            domain: m.text(OPT_DOMAIN),
            lease_secs: match m.option(OPT_LEASE_TIME) {
                Some(&[a, b, c, d]) => Some(u32::from_be_bytes([a, b, c, d])),
                _ => None,
            },
            server_id: m.addr(OPT_SERVER_ID).unwrap_or(server_id),
            mtu: match m.option(OPT_MTU) {
                Some(&[a, b]) => Some(u16::from_be_bytes([a, b])),
                _ => None,
            },
        }
    }
}

/// A datagram channel to the DHCP servers of one interface, plus its clock.
pub trait DhcpTransport {
    /// Broadcasts one message to 255.255.255.255:67.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Waits up to `timeout` for one datagram; `Ok(None)` on timeout.
    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>>;
    /// The current time (a transport may run on a virtual clock).
    fn now(&self) -> Instant;
}

/// Retransmission delays: 0.5, 1, 2, 4, 4, ... seconds (short, for a boot on a LAN).
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_millis(500u64 << attempt.min(3))
}

fn base_request(p: &ClientParams, kind: MessageType, secs: u16) -> Message {
    let mut client_id = vec![1u8];
    client_id.extend_from_slice(&p.mac.0);
    let mut m = Message::request(p.xid, p.mac)
        .with(OPT_MSG_TYPE, [kind as u8])
        .with(OPT_CLIENT_ID, client_id)
        .with(OPT_PARAM_LIST, REQUESTED_OPTIONS)
        .with(OPT_MAX_SIZE, 1500u16.to_be_bytes());
    m.secs = secs;
    if let Some(h) = &p.hostname {
        m = m.with(OPT_HOSTNAME, h.as_bytes());
    }
    m
}

/// Builds a DHCPDISCOVER.
pub fn discover(p: &ClientParams, secs: u16) -> Message {
    base_request(p, MessageType::Discover, secs)
}

/// Builds the DHCPREQUEST (SELECTING state) for an offer.
pub fn request(p: &ClientParams, secs: u16, offered: Ipv4Addr, server: Ipv4Addr) -> Message {
    base_request(p, MessageType::Request, secs)
        .with(OPT_REQUESTED_IP, offered.octets())
        .with(OPT_SERVER_ID, server.octets())
}

enum State {
    Selecting,
    Requesting { offered: Ipv4Addr, server: Ipv4Addr },
}

/// Runs DISCOVER → OFFER → REQUEST → ACK until a lease or `p.timeout`. A NAK, or a REQUEST
/// left unanswered three times, restarts from DISCOVER. Foreign replies (other xid or MAC)
/// are skipped.
pub fn obtain_lease<T: DhcpTransport + ?Sized>(
    t: &mut T,
    p: &ClientParams,
) -> Result<Lease, DhcpError> {
    let start = t.now();
    let deadline = start + p.timeout;
    let io_err = |source| DhcpError::Io {
        ifname: p.ifname.clone(),
        source,
    };
    let (mut discovers, mut requests, mut offers, mut naks) = (0u32, 0u32, 0u32, 0u32);
    let mut state = State::Selecting;
    let mut attempt = 0u32;
    let mut buf = [0u8; 1600];
    loop {
        let now = t.now();
        if now >= deadline {
            return Err(DhcpError::Timeout {
                ifname: p.ifname.clone(),
                secs: (now - start).as_secs_f64(),
                discovers,
                requests,
                offers,
                naks,
            });
        }
        let secs = u16::try_from((now - start).as_secs()).unwrap_or(u16::MAX);
        let msg = match state {
            State::Selecting => {
                discovers += 1;
                discover(p, secs)
            }
            State::Requesting { offered, server } => {
                requests += 1;
                request(p, secs, offered, server)
            }
        };
        t.send(&msg.encode()).map_err(io_err)?;
        let wait_until = (now + retry_delay(attempt)).min(deadline);
        attempt += 1;
        // Wait for a matching reply until this try's deadline.
        let reply = loop {
            let now = t.now();
            if now >= wait_until {
                break None;
            }
            let Some(n) = t.recv(&mut buf, wait_until - now).map_err(io_err)? else {
                break None;
            };
            let Ok(m) = Message::decode(&buf[..n]) else {
                continue;
            };
            if m.op != 2 || m.xid != p.xid || m.chaddr != p.mac {
                continue;
            }
            match (&state, m.message_type()) {
                (State::Selecting, Some(MessageType::Offer)) if !m.yiaddr.is_unspecified() => {
                    break Some(m)
                }
                (State::Requesting { .. }, Some(MessageType::Ack | MessageType::Nak)) => {
                    break Some(m)
                }
                _ => continue,
            }
        };
        match (reply, &state) {
            (None, State::Requesting { .. }) if attempt >= 3 => {
                state = State::Selecting;
                attempt = 0;
            }
            (None, _) => {}
            (Some(m), State::Selecting) => {
                offers += 1;
                let server = m.addr(OPT_SERVER_ID).unwrap_or(m.siaddr);
                state = State::Requesting {
                    offered: m.yiaddr,
                    server,
                };
                attempt = 0;
            }
            (Some(m), State::Requesting { server, .. }) => {
                if m.message_type() == Some(MessageType::Ack) {
                    return Ok(Lease::from_ack(&m, *server));
                }
                naks += 1;
                state = State::Selecting;
                attempt = 0;
            }
        }
    }
}
