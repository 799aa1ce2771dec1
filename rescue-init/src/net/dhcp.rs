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

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
    const OFFERED: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    fn params(timeout_ms: u64) -> ClientParams {
        ClientParams {
            ifname: "eth0".into(),
            mac: MAC,
            hostname: Some("rescue".into()),
            timeout: Duration::from_millis(timeout_ms),
            xid: 0x1234_5678,
        }
    }

    #[test]
    fn discover_wire_format() {
        let b = discover(&params(1000), 3).encode();
        assert!(b.len() >= 300, "BOOTP minimum size");
        assert_eq!(&b[0..4], &[1, 1, 6, 0], "op, htype, hlen, hops");
        assert_eq!(&b[4..8], &[0x12, 0x34, 0x56, 0x78], "xid");
        assert_eq!(&b[8..10], &[0, 3], "secs");
        assert_eq!(&b[10..12], &[0x80, 0], "broadcast flag");
        assert_eq!(&b[28..34], &MAC.0, "chaddr");
        assert_eq!(&b[236..240], &MAGIC);
        // First option: message type DISCOVER.
        assert_eq!(&b[240..243], &[OPT_MSG_TYPE, 1, 1]);
        let m = Message::decode(&b).expect("decode");
        assert_eq!(m.message_type(), Some(MessageType::Discover));
        assert_eq!(m.option(OPT_PARAM_LIST), Some(&REQUESTED_OPTIONS[..]));
        assert_eq!(m.option(OPT_HOSTNAME), Some(&b"rescue"[..]));
        assert_eq!(
            m.option(OPT_CLIENT_ID),
            Some(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56][..])
        );
        let r = request(&params(1000), 0, OFFERED, SERVER);
        let r = Message::decode(&r.encode()).expect("decode");
        assert_eq!(r.message_type(), Some(MessageType::Request));
        assert_eq!(r.option(OPT_REQUESTED_IP), Some(&OFFERED.octets()[..]));
        assert_eq!(r.option(OPT_SERVER_ID), Some(&SERVER.octets()[..]));
    }

    #[test]
    fn roundtrip_and_long_options() {
        let long = vec![7u8; 300];
        let m = Message::request(9, MAC)
            .with(OPT_MSG_TYPE, [5])
            .with(OPT_DNS, [1, 1, 1, 1, 8, 8, 8, 8])
            .with(120, long.clone());
        let back = Message::decode(&m.encode()).expect("decode");
        assert_eq!(back, m, "a 300-byte option is split and joined again");
        assert_eq!(back.option(120).map(<[u8]>::len), Some(300));
    }

    #[test]
    fn decode_rejects_damage() {
        let good = discover(&params(1000), 0).encode();
        assert!(matches!(
            Message::decode(&good[..100]),
            Err(DhcpError::Short { len: 100 })
        ));
        let mut nomagic = good.clone();
        nomagic[236] = 0;
        assert!(matches!(Message::decode(&nomagic), Err(DhcpError::NoMagic)));
        // An option whose length runs past the end.
        let mut cut = good[..240].to_vec();
        cut.extend_from_slice(&[OPT_DNS, 8, 1, 2, 3]);
        assert!(matches!(
            Message::decode(&cut),
            Err(DhcpError::BadOption { code: OPT_DNS })
        ));
        // A missing END is tolerated; truncated tails of PAD too.
        let mut noend = good[..240].to_vec();
        noend.extend_from_slice(&[OPT_MSG_TYPE, 1, 2]);
        assert!(Message::decode(&noend).is_ok());
    }

    #[test]
    fn lease_fields_and_defaults() {
        let ack = Message {
            op: 2,
            yiaddr: OFFERED,
            ..Message::request(1, MAC)
        }
        .with(OPT_MSG_TYPE, [5])
        .with(OPT_SUBNET_MASK, [255, 255, 252, 0])
        .with(OPT_ROUTER, [10, 0, 2, 2, 10, 0, 2, 3])
        .with(OPT_DNS, [10, 0, 2, 3])
        .with(OPT_HOSTNAME, *b"node\0")
        .with(OPT_DOMAIN, *b"lab")
        .with(OPT_LEASE_TIME, 86400u32.to_be_bytes())
        .with(OPT_MTU, 1450u16.to_be_bytes());
        let l = Lease::from_ack(&ack, SERVER);
        assert_eq!(l.prefix, 22);
        assert_eq!(l.routers.len(), 2);
        assert_eq!(l.dns, [Ipv4Addr::new(10, 0, 2, 3)]);
        assert_eq!(l.hostname.as_deref(), Some("node"));
        assert_eq!(l.domain.as_deref(), Some("lab"));
        assert_eq!(l.lease_secs, Some(86400));
        assert_eq!(l.mtu, Some(1450));
        assert_eq!(l.server_id, SERVER);
        // No mask, router or DNS (QEMU restrict=on style): classful mask, empty lists.
        let bare = Message {
            op: 2,
            yiaddr: Ipv4Addr::new(192, 168, 7, 9),
            ..Message::request(1, MAC)
        }
        .with(OPT_MSG_TYPE, [5]);
        let l = Lease::from_ack(&bare, SERVER);
        assert_eq!((l.prefix, l.routers.len(), l.dns.len()), (24, 0, 0));
    }

    /// An in-memory DHCP server on a virtual clock: answers as RFC 2131 says, except that it
    /// stays silent for the first `drop` messages and NAKs the first `nak` requests.
    struct Server {
        t0: Instant,
        clock: Duration,
        drop: u32,
        nak: u32,
        sent_at: Vec<(Duration, MessageType)>,
        queue: Vec<Vec<u8>>,
        noise: bool,
    }

    impl Server {
        fn new(drop: u32, nak: u32) -> Server {
            Server {
                t0: Instant::now(),
                clock: Duration::ZERO,
                drop,
                nak,
                sent_at: Vec::new(),
                queue: Vec::new(),
                noise: false,
            }
        }

        fn reply(&self, req: &Message, kind: u8) -> Vec<u8> {
            Message {
                op: 2,
                flags: req.flags,
                yiaddr: if kind == 6 {
                    Ipv4Addr::UNSPECIFIED
                } else {
                    OFFERED
                },
                ..Message::request(req.xid, req.chaddr)
            }
            .with(OPT_MSG_TYPE, [kind])
            .with(OPT_SERVER_ID, SERVER.octets())
            .with(OPT_SUBNET_MASK, [255, 255, 255, 0])
            .encode()
        }
    }

    impl DhcpTransport for Server {
        fn send(&mut self, msg: &[u8]) -> io::Result<()> {
            let m = Message::decode(msg).map_err(|e| io::Error::other(e.to_string()))?;
            let kind = m
                .message_type()
                .ok_or_else(|| io::Error::other("no type"))?;
            self.sent_at.push((self.clock, kind));
            if self.noise {
                // Another client's traffic and garbage arrive first.
                self.queue.push(vec![1, 2, 3]);
                let mut other = m.clone();
                other.xid ^= 1;
                self.queue.push(self.reply(&other, 2));
            }
            if self.drop > 0 {
                self.drop -= 1;
                return Ok(());
            }
            let answer = match kind {
                MessageType::Discover => 2,
                MessageType::Request if self.nak > 0 => {
                    self.nak -= 1;
                    6
                }
                MessageType::Request => 5,
                _ => return Ok(()),
            };
            self.queue.push(self.reply(&m, answer));
            Ok(())
        }

        fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
            if self.queue.is_empty() {
                self.clock += timeout;
                return Ok(None);
            }
            let m = self.queue.remove(0);
            buf[..m.len()].copy_from_slice(&m);
            self.clock += Duration::from_millis(1);
            Ok(Some(m.len()))
        }

        fn now(&self) -> Instant {
            self.t0 + self.clock
        }
    }

    fn kinds(s: &Server) -> Vec<MessageType> {
        s.sent_at.iter().map(|(_, k)| *k).collect()
    }

    #[test]
    fn exchange_happy_path() {
        let mut s = Server::new(0, 0);
        let l = obtain_lease(&mut s, &params(5000)).expect("lease");
        assert_eq!((l.address, l.prefix, l.server_id), (OFFERED, 24, SERVER));
        assert_eq!(kinds(&s), [MessageType::Discover, MessageType::Request]);
    }

    #[test]
    fn retransmits_with_backoff() {
        let mut s = Server::new(3, 0);
        obtain_lease(&mut s, &params(20_000)).expect("lease");
        let times: Vec<u128> = s.sent_at.iter().map(|(t, _)| t.as_millis()).collect();
        // Discovers at 0, 0.5, 1.5, 3.5 s (0.5, 1, 2 s apart), then the request 1 ms later.
        assert_eq!(times, [0, 500, 1500, 3500, 3501]);
    }

    #[test]
    fn nak_restarts_from_discover() {
        let mut s = Server::new(0, 1);
        obtain_lease(&mut s, &params(5000)).expect("lease");
        use MessageType::*;
        assert_eq!(kinds(&s), [Discover, Request, Discover, Request]);
    }

    #[test]
    fn foreign_replies_and_garbage_are_skipped() {
        let mut s = Server::new(0, 0);
        s.noise = true;
        let l = obtain_lease(&mut s, &params(5000)).expect("lease");
        assert_eq!(l.address, OFFERED);
        assert_eq!(s.sent_at.len(), 2, "no retransmission caused by noise");
    }

    #[test]
    fn silent_network_times_out_at_the_bound() {
        let mut s = Server::new(u32::MAX, 0);
        let e = obtain_lease(&mut s, &params(10_000)).expect_err("no server");
        match &e {
            DhcpError::Timeout {
                ifname,
                secs,
                discovers,
                offers,
                ..
            } => {
                assert_eq!(ifname, "eth0");
                assert!((10.0..10.01).contains(secs), "{secs}");
                // 0, .5, 1.5, 3.5, 7.5 s.
                assert_eq!((*discovers, *offers), (5, 0));
            }
            other => panic!("unexpected {other}"),
        }
        assert!(
            e.to_string()
                .starts_with("no dhcp lease on eth0 within 10.0 s"),
            "{e}"
        );
    }

    #[test]
    fn retry_schedule() {
        let d: Vec<u128> = (0..6).map(|i| retry_delay(i).as_millis()).collect();
        assert_eq!(d, [500, 1000, 2000, 4000, 4000, 4000]);
    }
}
