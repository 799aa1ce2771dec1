//! A real `etcdctl snapshot save` file from a throwaway single-member etcd on loopback.
//!
//! The binaries are the 3.5 ones of [`Tools`] (not whatever is first on PATH). Returns
//! `Ok(None)` when they are missing, unless `RESCUE_REQUIRE_ETCD=1` (CI), which turns that into
//! an error.

use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{Tools, Version};

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn etcdctl(bin: &Path, endpoint: &str, args: &[&str]) -> io::Result<std::process::Output> {
    Command::new(bin)
        .env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .args(args)
        .output()
}

/// Starts etcd, writes `keys` keys (`/registry/test/<i>` = `value-<i>`), saves a snapshot and
/// returns its bytes.
pub fn real_snapshot(keys: usize) -> io::Result<Option<Vec<u8>>> {
    let tools = match Tools::find() {
        Ok(t) => t,
        Err(why) if crate::tools::require_etcd() => {
            return Err(io::Error::other(format!("{why} and RESCUE_REQUIRE_ETCD=1")));
        }
        Err(why) => {
            crate::tools::skip(&why);
            return Ok(None);
        }
    };
    let (etcd, ctl) = (tools.etcd(Version::V3_5), tools.etcdctl(Version::V3_5));
    let dir = tempfile::tempdir()?;
    let (client, peer) = (free_port()?, free_port()?);
    let curl = format!("http://127.0.0.1:{client}");
    let purl = format!("http://127.0.0.1:{peer}");
    let log = std::fs::File::create(dir.path().join("etcd.log"))?;
    let _server = Server(
        Command::new(&etcd)
            .arg("--name=snapsrc")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={curl}"))
            .arg(format!("--advertise-client-urls={curl}"))
            .arg(format!("--listen-peer-urls={purl}"))
            .arg(format!("--initial-advertise-peer-urls={purl}"))
            .arg(format!("--initial-cluster=snapsrc={purl}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let start = Instant::now();
    loop {
        if etcdctl(&ctl, &curl, &["endpoint", "health"])?
            .status
            .success()
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(20) {
            return Err(io::Error::other("etcd did not become healthy"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 0..keys {
        let out = etcdctl(
            &ctl,
            &curl,
            &["put", &format!("/registry/test/{i}"), &format!("value-{i}")],
        )?;
        if !out.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    let snap = dir.path().join("snapshot.db");
    let out = etcdctl(&ctl, &curl, &["snapshot", "save", &snap.to_string_lossy()])?;
    if !out.status.success() {
        return Err(io::Error::other(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(Some(std::fs::read(snap)?))
}
