//! Checks of the rewriter against independent oracles: a real YAML parser reads the
//! rewritten YAML files, and a real etcd starts from rewritten configuration.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

fn fixture(name: &str) -> String {
    read_text(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/rewrite/testdata")
            .join(name),
    )
    .unwrap()
}

/// The etcd flags of a YAML file, read by serde_yaml_ng rather than by our line scanner.
fn flags_by_yaml_parser(kind: FileKind, text: &str) -> BTreeMap<String, String> {
    use serde_yaml_ng::Value;
    let mut out = BTreeMap::new();
    let scalar = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => panic!("not a scalar: {other:?}"),
    };
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let doc = Value::deserialize(doc).unwrap();
        match kind {
            FileKind::EtcdManifest | FileKind::ApiServerManifest => {
                for item in doc["spec"]["containers"][0]["command"]
                    .as_sequence()
                    .unwrap()
                {
                    let s = item.as_str().unwrap();
                    if let Some(f) = s.strip_prefix("--") {
                        let (k, v) = f.split_once('=').unwrap_or((f, "true"));
                        out.insert(k.to_owned(), v.to_owned());
                    }
                }
            }
            FileKind::KubeadmConfig => {
                if doc["kind"].as_str() != Some("ClusterConfiguration") {
                    continue;
                }
                let local = &doc["etcd"]["local"];
                if let Some(d) = local["dataDir"].as_str() {
                    out.insert("data-dir".into(), d.into());
                }
                match &local["extraArgs"] {
                    Value::Mapping(m) => {
                        for (k, v) in m {
                            out.insert(scalar(k), scalar(v));
                        }
                    }
                    Value::Sequence(items) => {
                        for it in items {
                            out.insert(scalar(&it["name"]), scalar(&it["value"]));
                        }
                    }
                    _ => {}
                }
            }
            FileKind::EtcdConfigFile => {
                for (k, v) in doc.as_mapping().unwrap() {
                    let k = scalar(k);
                    match v {
                        Value::Mapping(m) => {
                            let prefix = if k == "peer-transport-security" {
                                "peer-"
                            } else {
                                ""
                            };
                            for (k2, v2) in m {
                                out.insert(format!("{prefix}{}", scalar(k2)), scalar(v2));
                            }
                        }
                        Value::Null => {}
                        v => {
                            out.insert(k, scalar(v));
                        }
                    }
                }
            }
            _ => unreachable!(),
        }
    }
    out
}

use serde::Deserialize;

#[test]
fn rewritten_yaml_parses_and_agrees_with_a_real_yaml_parser() {
    let cases = [
        ("kubeadm-etcd.yaml", FileKind::EtcdManifest, "10.9.9.9"),
        (
            "kubeadm-kube-apiserver.yaml",
            FileKind::ApiServerManifest,
            "10.9.9.9",
        ),
        ("csm-kubeadmcfg.yaml", FileKind::KubeadmConfig, "10.9.9.9"),
        ("kubeadm-v1beta4.yaml", FileKind::KubeadmConfig, "fd00::9"),
        ("etcd.conf.yml", FileKind::EtcdConfigFile, "10.9.9.9"),
    ];
    let etcd = extract(FileKind::EtcdManifest, &fixture("kubeadm-etcd.yaml"));
    for (name, kind, new_ip) in cases {
        let old = fixture(name);
        assert_eq!(
            flags_by_yaml_parser(kind, &old),
            extract(kind, &old).flags,
            "{name}"
        );
        let cur = if kind == FileKind::ApiServerManifest {
            etcd.clone()
        } else {
            extract(kind, &old)
        };
        let t = Target::plan(&cur, Some("new-name"), Some(new_ip.parse().unwrap())).unwrap();
        let r = rewrite(kind, &old, &t);
        assert!(r.changed(), "{name}");
        assert_eq!(
            flags_by_yaml_parser(kind, &r.text),
            extract(kind, &r.text).flags,
            "{name}"
        );
    }
}

/// A free loopback port (bound then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the etcd it holds when dropped; its log goes to a file.
struct Etcd(Child, std::path::PathBuf);

impl Etcd {
    /// A command for etcd from PATH with an environment of nothing but PATH, run in `dir`.
    fn command(dir: &Path) -> Command {
        let mut cmd = Command::new("etcd");
        cmd.env_clear().current_dir(dir);
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd
    }

    fn spawn(mut cmd: Command, log: std::path::PathBuf) -> Etcd {
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::null()).stderr(Stdio::from(f));
        Etcd(cmd.spawn().unwrap(), log)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(port: u16, request: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// The members etcd reports over its HTTP gateway, as (name, peer URLs).
fn members(port: u16, etcd: &mut Etcd) -> Vec<(String, Vec<String>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = etcd.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(&etcd.1).unwrap_or_default();
            panic!("etcd exited with {status}: {log}");
        }
        let body = http(
            port,
            "POST /v3/cluster/member/list HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
        );
        if let Some(v) = body.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()) {
            if let Some(ms) = v["members"].as_array() {
                return ms
                    .iter()
                    .map(|m| {
                        let urls = m["peerURLs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|u| u.as_str().unwrap().to_owned())
                            .collect();
                        (m["name"].as_str().unwrap_or("").to_owned(), urls)
                    })
                    .collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "etcd did not answer: {}",
            std::fs::read_to_string(&etcd.1).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn etcd_available() -> bool {
    let ok = Command::new("etcd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("RESCUE_REQUIRE_ETCD").is_none(),
            "etcd is required (RESCUE_REQUIRE_ETCD is set) but not found"
        );
    }
    ok
}

/// A three-member configuration, rewritten to one member, is what a real etcd accepts:
/// it bootstraps exactly that member. The environment file is handed to etcd as its
/// environment (etcd maps ETCD_* to flags itself), the config file via --config-file.
#[test]
fn real_etcd_starts_single_member_from_rewritten_config() {
    if !etcd_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (peer, client) = (free_port(), free_port());
    let (peer2, client2) = (free_port(), free_port());

    // An env file of a member that was part of three.
    let env = format!(
        "# member of a three-node cluster\nETCD_NAME=\"m2\"\nETCD_DATA_DIR=\"{data}\"\n\
         ETCD_LISTEN_PEER_URLS=\"http://127.0.0.1:{peer}\"\n\
         ETCD_LISTEN_CLIENT_URLS=\"http://127.0.0.1:{client}\"\n\
         ETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://127.0.0.1:{peer}\"\n\
         ETCD_ADVERTISE_CLIENT_URLS=\"http://127.0.0.1:{client}\"\n\
         ETCD_INITIAL_CLUSTER=\"m1=http://127.0.0.2:2380,m2=http://127.0.0.1:{peer},m3=http://127.0.0.3:2380\"\n\
         ETCD_INITIAL_CLUSTER_STATE=existing\n",
        data = dir.path().join("env.etcd").display()
    );
    let t = Target::plan(&extract(FileKind::EnvFile, &env), Some("rescued"), None).unwrap();
    let r = rewrite(FileKind::EnvFile, &env, &t);
    let mut cmd = Etcd::command(dir.path());
    for line in r.text.lines().filter(|l| l.starts_with("ETCD_")) {
        let (k, v) = line.split_once('=').unwrap();
        cmd.env(k, v.trim_matches('"'));
    }
    let mut etcd = Etcd::spawn(cmd, dir.path().join("env.log"));
    assert_eq!(
        members(client, &mut etcd),
        vec![(
            "rescued".to_owned(),
            vec![format!("http://127.0.0.1:{peer}")]
        )]
    );
    drop(etcd);

    // etcd's YAML config file.
    let yml = format!(
        "name: 'm2'\ndata-dir: {data}\nlisten-peer-urls: http://127.0.0.1:{peer2}\n\
         listen-client-urls: http://127.0.0.1:{client2}\n\
         initial-advertise-peer-urls: http://127.0.0.1:{peer2}\n\
         advertise-client-urls: http://127.0.0.1:{client2}\n\
         initial-cluster: m1=http://127.0.0.2:2380,m2=http://127.0.0.1:{peer2}\n\
         initial-cluster-state: 'existing'\nforce-new-cluster: true\n",
        data = dir.path().join("yml.etcd").display()
    );
    let t = Target::plan(&extract(FileKind::EtcdConfigFile, &yml), None, None).unwrap();
    let r = rewrite(FileKind::EtcdConfigFile, &yml, &t);
    let path = dir.path().join("etcd.conf.yml");
    std::fs::write(&path, &r.text).unwrap();
    let mut cmd = Etcd::command(dir.path());
    cmd.arg("--config-file").arg(&path);
    let mut etcd = Etcd::spawn(cmd, dir.path().join("yml.log"));
    assert_eq!(
        members(client2, &mut etcd),
        vec![("m2".to_owned(), vec![format!("http://127.0.0.1:{peer2}")])]
    );
}
