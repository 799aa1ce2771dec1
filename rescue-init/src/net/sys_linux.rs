//! The only code of `net` that makes syscalls: interface ioctls (`SIOCGIFFLAGS`,
//! `SIOCSIFFLAGS`, `SIOCGIFHWADDR`, `SIOCSIFHWADDR`, `SIOCSIFMTU`, `SIOCSIFADDR`,
//! `SIOCSIFNETMASK`, `SIOCADDRT`), `if_nameindex`, the DHCP socket and `getrandom`.
//!
//! Why ioctls and not rtnetlink: the init only needs one IPv4 address and one default route
//! per interface, which these ioctls do with fixed-size structs from the `libc` crate and no
//! message parsing; boot-lab.md §4 measured this path in the VM. IPv6 or several addresses per
//! interface would be the reason to move to `NETLINK_ROUTE`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::cmdline::MacAddr;
use super::dhcp::DhcpTransport;
use super::{Link, NetError, NetSys};

const ARPHRD_ETHER: u16 = 1;

/// [`NetSys`] on the running kernel (in the caller's network namespace).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxNet;

fn sys_err(op: &'static str, ifname: &str) -> impl FnOnce(io::Error) -> NetError {
    let ifname = ifname.to_owned();
    move |source| NetError::Sys { op, ifname, source }
}

fn inet_socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // SAFETY: ifreq is plain data (arrays, integers, a union of those and a raw pointer);
    // all-zero bytes are a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

fn ioctl(fd: &OwnedFd, req: libc::c_ulong, arg: *mut libc::c_void) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: callers pass a request together with a pointer to the struct that request
    // reads/writes (ifreq or rtentry), valid for the duration of the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ifreq_ioctl(req: libc::c_ulong, r: &mut libc::ifreq) -> io::Result<()> {
    let fd = inet_socket()?;
    ioctl(&fd, req, (r as *mut libc::ifreq).cast())
}

/// A `sockaddr` holding an AF_INET address (port 0), built without pointer casts.
fn sockaddr_v4(a: Ipv4Addr) -> libc::sockaddr {
    let mut data = [0 as libc::c_char; 14];
    for (d, s) in data[2..6].iter_mut().zip(a.octets()) {
        *d = s as libc::c_char;
    }
    libc::sockaddr {
        sa_family: libc::AF_INET as libc::sa_family_t,
        sa_data: data,
    }
}

fn prefix_mask(prefix: u8) -> Ipv4Addr {
    let p = u32::from(prefix.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - p).unwrap_or(0))
}

fn flags(name: &str) -> io::Result<libc::c_short> {
    let mut r = ifreq(name)?;
    ifreq_ioctl(libc::SIOCGIFFLAGS, &mut r)?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags.
    Ok(unsafe { r.ifr_ifru.ifru_flags })
}

fn link_info(name: &str, index: u32) -> io::Result<Link> {
    let f = flags(name)?;
    let mut r = ifreq(name)?;
    ifreq_ioctl(libc::SIOCGIFHWADDR, &mut r)?;
    // SAFETY: SIOCGIFHWADDR filled ifru_hwaddr.
    let hw = unsafe { r.ifr_ifru.ifru_hwaddr };
    let mac = (hw.sa_family == ARPHRD_ETHER).then(|| {
        let mut m = [0u8; 6];
        for (d, s) in m.iter_mut().zip(hw.sa_data) {
            *d = s as u8;
        }
        MacAddr(m)
    });
    let has = |bit: libc::c_int| i32::from(f) & bit != 0;
    Ok(Link {
        name: name.to_owned(),
        index,
        mac,
        loopback: has(libc::IFF_LOOPBACK),
        up: has(libc::IFF_UP),
        running: has(libc::IFF_RUNNING),
    })
}

impl NetSys for LinuxNet {
    fn links(&self) -> Result<Vec<Link>, NetError> {
        // SAFETY: if_nameindex returns a heap array terminated by an entry with index 0, or
        // NULL on error; it is freed below with if_freenameindex and not used afterwards.
        let head = unsafe { libc::if_nameindex() };
        if head.is_null() {
            return Err(sys_err("if_nameindex", "*")(io::Error::last_os_error()));
        }
        let mut names = Vec::new();
        let mut p = head;
        loop {
            // SAFETY: p points into the array, which ends with a zero entry we stop at.
            let e = unsafe { &*p };
            if e.if_index == 0 || e.if_name.is_null() {
                break;
            }
            // SAFETY: if_name is a NUL-terminated string owned by the array.
            let name = unsafe { CStr::from_ptr(e.if_name) }
                .to_string_lossy()
                .into_owned();
            names.push((name, e.if_index));
            // SAFETY: not past the terminating entry (checked above).
            p = unsafe { p.add(1) };
        }
        // SAFETY: head came from if_nameindex and is freed once.
        unsafe { libc::if_freenameindex(head) };
        let mut out = Vec::new();
        for (name, index) in names {
            match link_info(&name, index) {
                Ok(l) => out.push(l),
                // The link may vanish between the two calls; skip it.
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {}
                Err(e) => return Err(sys_err("SIOCGIFFLAGS", &name)(e)),
            }
        }
        out.sort_by_key(|l| l.index);
        Ok(out)
    }

    fn link(&self, name: &str) -> Result<Link, NetError> {
        link_info(name, 0).map_err(sys_err("SIOCGIFFLAGS", name))
    }

    fn set_up(&self, name: &str) -> Result<(), NetError> {
        let f = flags(name).map_err(sys_err("SIOCGIFFLAGS", name))?;
        if i32::from(f) & libc::IFF_UP != 0 {
            return Ok(());
        }
        let mut r = ifreq(name).map_err(sys_err("SIOCSIFFLAGS", name))?;
        // IFF_UP (0x1) fits in the short.
        r.ifr_ifru.ifru_flags = f | libc::IFF_UP as libc::c_short;
        ifreq_ioctl(libc::SIOCSIFFLAGS, &mut r).map_err(sys_err("SIOCSIFFLAGS", name))
    }

    fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), NetError> {
        let mut r = ifreq(name).map_err(sys_err("SIOCSIFMTU", name))?;
        r.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu).unwrap_or(libc::c_int::MAX);
        ifreq_ioctl(libc::SIOCSIFMTU, &mut r).map_err(sys_err("SIOCSIFMTU", name))
    }

    fn set_mac(&self, name: &str, mac: MacAddr) -> Result<(), NetError> {
        let mut r = ifreq(name).map_err(sys_err("SIOCSIFHWADDR", name))?;
        let mut data = [0 as libc::c_char; 14];
        for (d, s) in data.iter_mut().zip(mac.0) {
            *d = s as libc::c_char;
        }
        r.ifr_ifru.ifru_hwaddr = libc::sockaddr {
            sa_family: ARPHRD_ETHER,
            sa_data: data,
        };
        ifreq_ioctl(libc::SIOCSIFHWADDR, &mut r).map_err(sys_err("SIOCSIFHWADDR", name))
    }

    fn set_ipv4(&self, name: &str, addr: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
        let mut r = ifreq(name).map_err(sys_err("SIOCSIFADDR", name))?;
        r.ifr_ifru.ifru_addr = sockaddr_v4(addr);
        ifreq_ioctl(libc::SIOCSIFADDR, &mut r).map_err(sys_err("SIOCSIFADDR", name))?;
        let mut r = ifreq(name).map_err(sys_err("SIOCSIFNETMASK", name))?;
        r.ifr_ifru.ifru_netmask = sockaddr_v4(prefix_mask(prefix));
        ifreq_ioctl(libc::SIOCSIFNETMASK, &mut r).map_err(sys_err("SIOCSIFNETMASK", name))
    }

    fn add_route(
        &self,
        name: &str,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), NetError> {
        let dev = std::ffi::CString::new(name)
            .map_err(|_| sys_err("SIOCADDRT", name)(io::ErrorKind::InvalidInput.into()))?;
        // SAFETY: rtentry is plain data plus a raw pointer; all-zero is a valid value (null
        // rt_dev).
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr_v4(dst);
        rt.rt_genmask = sockaddr_v4(prefix_mask(prefix));
        rt.rt_flags = libc::RTF_UP;
        if prefix == 32 {
            rt.rt_flags |= libc::RTF_HOST;
        }
        if let Some(gw) = gateway {
            rt.rt_gateway = sockaddr_v4(gw);
            rt.rt_flags |= libc::RTF_GATEWAY;
        }
        // The kernel copies the device name during the call; `dev` outlives it.
        rt.rt_dev = dev.as_ptr().cast_mut();
        let fd = inet_socket().map_err(sys_err("SIOCADDRT", name))?;
        ioctl(&fd, libc::SIOCADDRT, (&mut rt as *mut libc::rtentry).cast())
            .map_err(sys_err("SIOCADDRT", name))
    }

    fn dhcp_transport(&self, name: &str) -> Result<Box<dyn DhcpTransport>, NetError> {
        UdpDhcp::open(name)
            .map(|t| Box::new(t) as Box<dyn DhcpTransport>)
            .map_err(sys_err("dhcp socket", name))
    }

    fn xid(&self) -> u32 {
        insecure_u32()
    }
}

fn setsockopt_raw(fd: &OwnedFd, opt: libc::c_int, val: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::socklen_t::try_from(val.len()).unwrap_or(0);
    // SAFETY: val is a live buffer of len bytes for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            val.as_ptr().cast(),
            len,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// UDP 0.0.0.0:68 bound to one interface (`SO_BINDTODEVICE`) with broadcast allowed.
pub struct UdpDhcp {
    sock: UdpSocket,
}

impl UdpDhcp {
    pub fn open(ifname: &str) -> io::Result<UdpDhcp> {
        use std::os::fd::AsRawFd;
        let fd = inet_socket()?;
        let one = 1i32.to_ne_bytes();
        setsockopt_raw(&fd, libc::SO_REUSEADDR, &one)?;
        setsockopt_raw(&fd, libc::SO_BROADCAST, &one)?;
        setsockopt_raw(&fd, libc::SO_BINDTODEVICE, ifname.as_bytes())?;
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 68u16.to_be(),
            sin_addr: libc::in_addr { s_addr: 0 },
            sin_zero: [0; 8],
        };
        let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>()).unwrap_or(16);
        // SAFETY: sin is a valid sockaddr_in of the given length for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sin as *const libc::sockaddr_in).cast(),
                len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(UdpDhcp {
            sock: UdpSocket::from(fd),
        })
    }
}

impl DhcpTransport for UdpDhcp {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.sock
            .send_to(msg, (Ipv4Addr::BROADCAST, 67))
            .map(|_| ())
    }

    fn recv(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        self.sock
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        match self.sock.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

fn getrandom(buf: &mut [u8], flags: libc::c_uint) -> io::Result<usize> {
    // SAFETY: buf is a live, writable buffer of buf.len() bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), flags) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Whether the CRNG is initialised: `getrandom(GRND_NONBLOCK)` fails with EAGAIN until it is.
pub fn crng_ready() -> io::Result<bool> {
    let mut b = [0u8; 1];
    match getrandom(&mut b, libc::GRND_NONBLOCK) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Never blocks: `GRND_INSECURE` (Linux ≥ 5.6), else `GRND_NONBLOCK`, else the clock and pid.
pub fn insecure_u32() -> u32 {
    let mut b = [0u8; 4];
    for flags in [libc::GRND_INSECURE, libc::GRND_NONBLOCK] {
        if matches!(getrandom(&mut b, flags), Ok(4)) {
            return u32::from_ne_bytes(b);
        }
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}
