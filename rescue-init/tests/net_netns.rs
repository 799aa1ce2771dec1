//! `net` against the real kernel: network namespaces, veth pairs and a real DHCP server
//! (dnsmasq). Each test builds its own namespaces and deletes them when done (also on panic).
//! The client runs inside the client namespace as this very test binary, re-executed under
//! `ip netns exec` with the entry test `netns_child`.
//!
//! Needs root, `ip` (iproute2) and `dnsmasq` (Debian `dnsmasq-base`); otherwise each test says
//! why it skips. `RESCUE_REQUIRE_NETNS=1` (set in CI) turns a skip into a failure.
#![allow(clippy::print_stderr)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rescue_init::net::{self, LinuxNet, NetConfig, NetError};

const CHILD_CMDLINE: &str = "RESCUE_NET_CHILD_CMDLINE";
const CHILD_OUT: &str = "RESCUE_NET_CHILD_OUT";
const CHILD_RESOLVE: &str = "RESCUE_NET_CHILD_RESOLVE";

/// Entry point of the client process (does nothing when run directly).
#[test]
#[ignore = "run by the other tests inside a network namespace"]
fn netns_child() {
    let (Ok(cmdline), Ok(out)) = (std::env::var(CHILD_CMDLINE), std::env::var(CHILD_OUT)) else {
        return;
    };
    let out = PathBuf::from(out);
    if let Ok(names) = std::env::var(CHILD_RESOLVE) {
        // Resolve through glibc (files + dns) with the /etc files `ip netns exec` mounted.
        use std::net::ToSocketAddrs;
        let mut text = String::new();
        for name in names.split(',') {
            let r = match (name, 0u16).to_socket_addrs() {
                Ok(a) => a.map(|a| a.ip().to_string()).collect::<Vec<_>>().join(" "),
                Err(e) => format!("error {e}"),
            };
            text.push_str(&format!("{name} {r}\n"));
        }
        fs::write(out.join("result"), text).expect("write");
        return;
    }
    let start = Instant::now();
    let r = NetConfig::from_cmdline(&cmdline)
        .map_err(NetError::from)
        .and_then(|c| net::bring_up(&c, &LinuxNet));
    let elapsed = start.elapsed();
    fs::write(out.join("elapsed_ms"), elapsed.as_millis().to_string()).expect("write");
    match r {
        Ok(state) => {
            let dhcp_ms: Vec<String> = state
                .interfaces
                .iter()
                .map(|c| c.elapsed.as_millis().to_string())
                .collect();
            fs::write(out.join("dhcp_ms"), dhcp_ms.join(",")).expect("write");
            fs::write(out.join("resolv.conf"), state.resolv_conf()).expect("write");
            fs::write(out.join("hosts"), state.hosts()).expect("write");
            fs::write(out.join("result"), format!("ok\n{state:#?}")).expect("write");
        }
        Err(e) => {
            let mut chain = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                src = s.source();
            }
            fs::write(out.join("result"), format!("err\n{chain}")).expect("write");
        }
    }
}

fn skip_reason() -> Option<String> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid0 = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let reason = if !uid0 {
        Some("not root".to_owned())
    } else if !tool_works("ip", &["-V"]) {
        Some("`ip` (iproute2) not found".to_owned())
    } else if !tool_works("dnsmasq", &["--version"]) {
        Some("`dnsmasq` not found (apt-get install dnsmasq-base)".to_owned())
    } else {
        None
    };
    if let Some(r) = &reason {
        assert!(
            std::env::var("RESCUE_REQUIRE_NETNS").as_deref() != Ok("1"),
            "RESCUE_REQUIRE_NETNS=1 but the netns test cannot run: {r}"
        );
        eprintln!("skipping netns test: {r}");
    }
    reason
}

fn tool_works(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&run(args)).expect("ip -j output")
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces, `srv` and `cli`, joined by veth `s0` (10.N.0.1/24, server side) ↔ `c0`
/// (client side, down, MAC 02:00:00:00:N:01), and a second pair `s1` (10.N.1.1/24) ↔ `c1`.
struct Lab {
    n: u32,
    srv: String,
    cli: String,
    dir: tempfile::TempDir,
    dnsmasq: Option<Child>,
}

impl Lab {
    fn new() -> Lab {
        let n = 100 + (std::process::id() % 50) * 3 + SEQ.fetch_add(1, Ordering::SeqCst);
        let n = n % 250;
        let lab = Lab {
            n,
            srv: format!("rsnet-s{}-{n}", std::process::id()),
            cli: format!("rsnet-c{}-{n}", std::process::id()),
            dir: tempfile::tempdir().expect("tempdir"),
            dnsmasq: None,
        };
        run(&["netns", "add", &lab.srv]);
        run(&["netns", "add", &lab.cli]);
        let mac = lab.client_mac();
        run(&[
            "-n", &lab.srv, "link", "add", "s0", "type", "veth", "peer", "name", "c0", "netns",
            &lab.cli, "address", &mac,
        ]);
        run(&[
            "-n", &lab.srv, "link", "add", "s1", "type", "veth", "peer", "name", "c1", "netns",
            &lab.cli,
        ]);
        let addr = format!("10.{n}.0.1/24");
        run(&["-n", &lab.srv, "addr", "add", &addr, "dev", "s0"]);
        let addr = format!("10.{n}.1.1/24");
        run(&["-n", &lab.srv, "addr", "add", &addr, "dev", "s1"]);
        for dev in ["lo", "s0", "s1"] {
            run(&["-n", &lab.srv, "link", "set", dev, "up"]);
        }
        lab
    }

    fn client_mac(&self) -> String {
        format!("02:00:00:00:{:02x}:01", self.n)
    }

    fn net(&self, host: u8) -> String {
        format!("10.{}.0.{host}", self.n)
    }

    /// Starts dnsmasq on `s0` with extra options, and waits until it serves DHCP.
    fn start_dnsmasq(&mut self, extra: &[&str]) {
        self.start_dnsmasq_on(0, extra);
    }

    /// Starts dnsmasq on `s<side>` (subnet 10.N.<side>.0/24), and waits until it serves DHCP.
    fn start_dnsmasq_on(&mut self, side: u8, extra: &[&str]) {
        let log = self.dir.path().join("dnsmasq.log");
        let range = format!(
            "--dhcp-range=10.{n}.{side}.50,10.{n}.{side}.99,255.255.255.0,1h",
            n = self.n
        );
        let mut args: Vec<String> = vec![
            "netns".into(),
            "exec".into(),
            self.srv.clone(),
            "dnsmasq".into(),
            "--no-daemon".into(),
            "--conf-file=/dev/null".into(),
            format!("--interface=s{side}"),
            "--bind-interfaces".into(),
            "--user=root".into(),
            "--pid-file=".into(),
            "--dhcp-authoritative".into(),
            "--log-dhcp".into(),
            format!("--log-facility={}", log.display()),
            format!(
                "--dhcp-leasefile={}",
                self.dir.path().join("leases").display()
            ),
            range,
        ];
        if !extra.iter().any(|e| e.starts_with("--port=")) {
            args.push("--port=0".into()); // DHCP only
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn dnsmasq");
        self.dnsmasq = Some(child);
        let start = Instant::now();
        loop {
            let text = fs::read_to_string(&log).unwrap_or_default();
            if text.contains("DHCP, IP range") {
                return;
            }
            if let Some(Ok(Some(st))) = self.dnsmasq.as_mut().map(|c| c.try_wait()) {
                panic!("dnsmasq exited early ({st}): {text}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "dnsmasq not ready: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the client in the client namespace with `cmdline`; returns (result, out dir, wall).
    fn client(&self, tag: &str, cmdline: &str) -> (String, PathBuf, Duration) {
        self.child(tag, cmdline, None)
    }

    fn child(
        &self,
        tag: &str,
        cmdline: &str,
        resolve: Option<&str>,
    ) -> (String, PathBuf, Duration) {
        let out = self.dir.path().join(tag);
        fs::create_dir_all(&out).expect("mkdir");
        let exe = std::env::current_exe().expect("current exe");
        let start = Instant::now();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.cli])
            .arg(&exe)
            .args([
                "--exact",
                "netns_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CMDLINE, cmdline)
            .env(CHILD_OUT, &out)
            .env_remove(CHILD_RESOLVE)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(names) = resolve {
            cmd.env(CHILD_RESOLVE, names);
        }
        let mut child = cmd.spawn().expect("spawn client");
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if start.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("client did not finish in 90 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let wall = start.elapsed();
        assert!(status.success(), "client process failed: {status}");
        let result = fs::read_to_string(out.join("result")).expect("client result");
        (result, out, wall)
    }

    fn addrs(&self, dev: &str) -> Vec<(String, u64)> {
        let v = json(&["-n", &self.cli, "-j", "addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for l in v.as_array().into_iter().flatten() {
            for a in l["addr_info"].as_array().into_iter().flatten() {
                if a["family"] == "inet" {
                    out.push((
                        a["local"].as_str().unwrap_or("").to_owned(),
                        a["prefixlen"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
        out
    }

    /// (gateway, dev) of the default route, if any.
    fn default_route(&self) -> Option<(String, String)> {
        let v = json(&["-n", &self.cli, "-j", "-4", "route", "show", "default"]);
        let r = v.as_array()?.first()?;
        Some((
            r["gateway"].as_str()?.to_owned(),
            r["dev"].as_str()?.to_owned(),
        ))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Files for `ip netns exec` to mount over /etc, if a test made them.
        let _ = fs::remove_dir_all(Path::new("/etc/netns").join(&self.cli));
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.cli, &self.srv] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ms(out: &Path, file: &str) -> String {
    fs::read_to_string(out.join(file)).unwrap_or_default()
}

#[test]
fn dhcp_lease_from_dnsmasq_on_the_pxe_nic() {
    if skip_reason().is_some() {
        return;
    }
    let mut lab = Lab::new();
    let router = lab.net(1);
    let dns = lab.net(53);
    lab.start_dnsmasq(&[
        &format!("--dhcp-option=3,{router}"),
        &format!("--dhcp-option=6,{dns}"),
        "--domain=rescue.test",
    ]);
    // Two NICs, the server only on c0: BOOTIF must pick c0 and not waste time on c1.
    let bootif = lab.client_mac().replace(':', "-");
    let cmdline = format!("quiet ip=dhcp BOOTIF=01-{bootif} nameserver=192.0.2.53 rd.neednet=1");
    let (result, out, wall) = lab.client("dhcp", &cmdline);
    assert!(result.starts_with("ok"), "client failed: {result}");
    let addrs = lab.addrs("c0");
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    let (addr, prefix) = &addrs[0];
    let host: u8 = addr
        .rsplit('.')
        .next()
        .and_then(|h| h.parse().ok())
        .expect("address");
    assert!(
        addr.starts_with(&format!("10.{}.0.", lab.n)) && (50..=99).contains(&host),
        "{addr}"
    );
    assert_eq!(*prefix, 24);
    assert!(lab.addrs("c1").is_empty(), "c1 must stay unconfigured");
    assert_eq!(lab.default_route(), Some((router, "c0".to_owned())));
    let resolv = ms(&out, "resolv.conf");
    let ns: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(ns, ["192.0.2.53", dns.as_str()], "{resolv}");
    assert!(resolv.contains("search rescue.test"), "{resolv}");
    // The loopback is up too.
    let lo = json(&["-n", &lab.cli, "-j", "link", "show", "dev", "lo"]);
    assert!(lo[0]["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == "UP")));
    // dnsmasq pings an address before offering it (about 3 s when nobody answers).
    eprintln!(
        "measured (dnsmasq with ping check): dhcp exchange {} ms, bring_up {} ms, client process {} ms",
        ms(&out, "dhcp_ms"),
        ms(&out, "elapsed_ms"),
        wall.as_millis()
    );
}

#[test]
fn dhcp_lease_without_router_or_dns() {
    if skip_reason().is_some() {
        return;
    }
    let mut lab = Lab::new();
    // Empty option values make dnsmasq send no router and no DNS (like QEMU restrict=on).
    lab.start_dnsmasq(&["--dhcp-option=3", "--dhcp-option=6", "--no-ping"]);
    let (result, out, wall) = lab.client("bare", "ip=c0:dhcp");
    assert!(result.starts_with("ok"), "client failed: {result}");
    assert_eq!(lab.addrs("c0").len(), 1);
    assert_eq!(lab.default_route(), None);
    let resolv = ms(&out, "resolv.conf");
    assert!(!resolv.contains("nameserver"), "{resolv}");
    assert!(ms(&out, "hosts").contains("127.0.0.1\tlocalhost"));
    eprintln!(
        "measured (dnsmasq --no-ping): dhcp exchange {} ms, bring_up {} ms, client process {} ms",
        ms(&out, "dhcp_ms"),
        ms(&out, "elapsed_ms"),
        wall.as_millis()
    );
}

#[test]
fn static_kernel_and_dracut_forms() {
    if skip_reason().is_some() {
        return;
    }
    let lab = Lab::new();
    let gw = lab.net(1);
    // Kernel form: client:server:gw:netmask:hostname:device:autoconf:dns0:dns1:ntp0.
    let a = lab.net(7);
    let cmdline = format!(
        "ip={a}:{gw}:{gw}:255.255.255.0:rescue1.example.org:c0:off:{}:{}:{gw}",
        lab.net(53),
        lab.net(54)
    );
    let (result, out, _) = lab.client("kernel", &cmdline);
    assert!(result.starts_with("ok"), "client failed: {result}");
    assert_eq!(lab.addrs("c0"), [(a.clone(), 24)]);
    assert_eq!(lab.default_route(), Some((gw.clone(), "c0".to_owned())));
    let resolv = ms(&out, "resolv.conf");
    assert!(
        resolv.contains(&format!(
            "nameserver {}\nnameserver {}\n",
            lab.net(53),
            lab.net(54)
        )),
        "{resolv}"
    );
    assert!(
        ms(&out, "hosts").contains(&format!("{a}\trescue1.example.org rescue1")),
        "{}",
        ms(&out, "hosts")
    );

    // dracut form on the second NIC: prefix length, mtu and a MAC to set.
    let b = format!("10.{}.1.9", lab.n);
    let cmdline = format!(
        "ip={b}::{}:20:h2:c1:none:1400:02:aa:bb:cc:dd:{:02x}",
        gw, lab.n
    );
    let (result, _, _) = lab.client("dracut", &cmdline);
    assert!(result.starts_with("ok"), "client failed: {result}");
    assert_eq!(lab.addrs("c1"), [(b, 20)]);
    let link = json(&["-n", &lab.cli, "-j", "link", "show", "dev", "c1"]);
    assert_eq!(link[0]["mtu"], 1400);
    assert_eq!(
        link[0]["address"],
        format!("02:aa:bb:cc:dd:{:02x}", lab.n).as_str()
    );
}

#[test]
fn dhcp_without_server_times_out_with_a_clear_error() {
    if skip_reason().is_some() {
        return;
    }
    let lab = Lab::new();
    let (result, out, wall) = lab.client("timeout", "ip=c0:dhcp rescue.net.timeout=3");
    assert!(result.starts_with("err"), "expected a failure: {result}");
    assert!(
        result.contains("no dhcp lease on c0 within 3.0 s"),
        "unclear error: {result}"
    );
    let took: u64 = ms(&out, "elapsed_ms").parse().expect("elapsed");
    assert!(
        (3000..4500).contains(&took),
        "bring_up took {took} ms for a 3 s timeout"
    );
    eprintln!(
        "measured: timeout path {took} ms in bring_up, {} ms process",
        wall.as_millis()
    );
}

#[test]
fn dhcp_any_falls_back_to_the_interface_that_answers() {
    if skip_reason().is_some() {
        return;
    }
    let mut lab = Lab::new();
    // Only c1 (the second NIC) has a server: ip=dhcp tries c0 first, gives up after its
    // timeout, then gets a lease on c1.
    lab.start_dnsmasq_on(1, &["--no-ping", "--dhcp-option=3"]);
    let (result, out, _) = lab.client("any", "ip=dhcp rescue.net.timeout=2");
    assert!(result.starts_with("ok"), "client failed: {result}");
    assert!(lab.addrs("c0").is_empty());
    let addrs = lab.addrs("c1");
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert!(
        addrs[0].0.starts_with(&format!("10.{}.1.", lab.n)),
        "{addrs:?}"
    );
    let took: u64 = ms(&out, "elapsed_ms").parse().expect("elapsed");
    assert!((2000..4000).contains(&took), "{took} ms");
}

#[test]
fn generated_resolver_files_resolve_names_through_glibc() {
    if skip_reason().is_some() {
        return;
    }
    let mut lab = Lab::new();
    let server = lab.net(1);
    let cp1 = lab.net(77);
    // dnsmasq also answers DNS on s0 for one name.
    lab.start_dnsmasq(&[
        "--port=53",
        "--no-resolv",
        "--no-hosts",
        "--no-ping",
        "--domain=rescue.test",
        &format!("--address=/cp1.rescue.test/{cp1}"),
        &format!("--dhcp-option=6,{server}"),
    ]);
    let (result, out, _) = lab.client("up", "ip=::::node7:c0:dhcp");
    assert!(result.starts_with("ok"), "client failed: {result}");
    let leased = lab.addrs("c0")[0].0.clone();
    // `ip netns exec` bind-mounts /etc/netns/<ns>/<file> over /etc/<file>.
    let etc = Path::new("/etc/netns").join(&lab.cli);
    fs::create_dir_all(&etc).expect("mkdir /etc/netns/<ns>");
    fs::copy(out.join("resolv.conf"), etc.join("resolv.conf")).expect("copy");
    fs::copy(out.join("hosts"), etc.join("hosts")).expect("copy");
    let (text, _, _) = lab.child(
        "resolve",
        "",
        Some("localhost,node7,node7.rescue.test,cp1.rescue.test"),
    );
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(
        got,
        [
            "localhost ::1 127.0.0.1".to_owned(),
            format!("node7 {leased}"),
            format!("node7.rescue.test {leased}"),
            format!("cp1.rescue.test {cp1}"),
        ],
        "got {text}\nresolv.conf:\n{}\nhosts:\n{}",
        ms(&out, "resolv.conf"),
        ms(&out, "hosts")
    );
}
