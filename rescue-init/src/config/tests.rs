use super::*;
use clap::Parser;

/// A valid sample value for each key, as command-line text.
fn sample(key: &str) -> &'static str {
    match key {
        "root" => "PARTUUID=0a1b2c3d-02",
        "plan" => "https://boot.example/plans/${mac}.yaml",
        "source" => "s3://backups/etcd/latest",
        "sha256" => "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "name" => "ncn-m001",
        "advertise_address" => "10.252.1.20",
        "bump" | "dry_run" | "test_exit" => "1",
        "modules" => "virtio_blk,ext4",
        "net" => "on",
        "net_timeout" => "30",
        "bump_revision" => "2000000000",
        "after" => "poweroff",
        "callback" => "https://fleet.example/done",
        "timeout" | "pause" => "90",
        "ca" | "etcd_cert" | "etcd_key" | "etcd_cacert" => "/media/ca.pem",
        "http_token" | "s3_access_key_id" | "s3_secret_access_key" | "s3_session_token" => {
            "s3cr3t-value"
        }
        "s3_region" => "us-east-1",
        "s3_endpoint" => "https://s3.example:9000",
        _ => panic!("no sample for {key}"),
    }
}

#[test]
fn cmdline_table() {
    let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
    struct Case {
        line: &'static str,
        check: fn(&Config) -> bool,
    }
    let cases = [
        Case {
            line: "BOOT_IMAGE=/vmlinuz console=ttyS0 quiet",
            check: |c| *c == Config::default(),
        },
        Case {
            line: "rescue.name=ncn-m002 rescue.advertise_address=10.0.0.9",
            check: |c| {
                c.name.as_ref().map(MemberName::as_str) == Some("ncn-m002")
                    && c.advertise_address == "10.0.0.9".parse().ok()
            },
        },
        Case {
            line: "rescue.advertise-address=fd00::5 rescue.dry-run",
            check: |c| c.advertise_address == "fd00::5".parse().ok() && c.dry_run,
        },
        Case {
            line: "rescue.dry_run=0 rescue.bump=off",
            check: |c| !c.dry_run && c.bump == Bump::Off && !c.bump.mark_compacted(),
        },
        Case {
            line: "rescue.bump_revision=5000",
            check: |c| c.bump == Bump::On { revision: 5000 } && c.bump.mark_compacted(),
        },
        Case {
            line: "rescue.name=a rescue.name=b",
            check: |c| c.name.as_ref().map(MemberName::as_str) == Some("b"),
        },
        Case {
            line: "\"rescue.root=LABEL=host root\" rescue.after=hold",
            check: |c| {
                c.root_device == Some(RootDevice::Label("host root".into()))
                    && c.after == After::Hold
            },
        },
        Case {
            line: "rescue.source=\"/run/media/backup 1/snap.db\" rescue.timeout=15m",
            check: |c| {
                c.source == Some(Location::Path("/run/media/backup 1/snap.db".into()))
                    && c.timeout == Duration::from_secs(900)
            },
        },
        Case {
            line: "ip=dhcp rescue.source=http://10.0.2.2/s.db rescue.sha256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            check: |c| c.sha256.is_some() && c.source.as_ref().and_then(Location::scheme) == Some("http"),
        },
        Case {
            line: "rescue.s3_access_key_id=AK rescue.s3_secret_access_key=SK rescue.s3_region=eu",
            check: |c| {
                c.s3.access_key_id.as_ref().map(Secret::expose) == Some("AK")
                    && c.s3.region.as_deref() == Some("eu")
            },
        },
        Case {
            line: "root=/dev/sda2 rescue_whatever=1 rescuex=2 -- rescue.pause=3",
            check: |c| c.pause == Duration::from_secs(3) && c.root_device.is_none(),
        },
    ];
    for case in &cases {
        let cfg = Config::from_cmdline(case.line).unwrap_or_else(|e| panic!("{}: {e}", case.line));
        assert!((case.check)(&cfg), "{}: {cfg:?}", case.line);
    }
    assert_eq!(
        Config::from_cmdline("rescue.advertise_address=[::1]")
            .unwrap()
            .advertise_address,
        ip("::1")
    );
}

#[test]
fn cmdline_errors_name_the_key() {
    let cases: &[(&str, &str)] = &[
        ("rescue.nmae=x", "unknown key rescue.nmae"),
        ("rescue.=x", "unknown key rescue."),
        (
            "rescue.name",
            "key rescue.name in kernel command line needs a value",
        ),
        ("rescue.name=", "invalid value for rescue.name"),
        ("rescue.name=a,b", "invalid value for rescue.name"),
        (
            "rescue.advertise_address=10.0.0",
            "invalid value for rescue.advertise_address",
        ),
        ("rescue.bump=maybe", "invalid value for rescue.bump"),
        (
            "rescue.bump_revision=0",
            "invalid value for rescue.bump_revision",
        ),
        ("rescue.after=explode", "invalid value for rescue.after"),
        ("rescue.sha256=abc", "invalid value for rescue.sha256"),
        ("rescue.source=http://h/x", "needs sha256"),
        ("rescue.source=ftp://h/x", "scheme must be"),
        ("rescue.callback=s3://b/x", "callback: scheme"),
        ("rescue.s3_access_key_id=AK", "go together"),
        ("rescue.etcd_key=/k", "go together"),
    ];
    for (line, want) in cases {
        let err = Config::from_cmdline(line).expect_err(line).to_string();
        assert!(err.contains(want), "{line}: got {err:?}, want {want:?}");
    }
    match Config::from_cmdline("quiet rescue.bogus=1") {
        Err(ConfigError::UnknownKey { key, origin }) => {
            assert_eq!(key, "rescue.bogus");
            assert_eq!(origin, Origin::Cmdline);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn secrets_never_reach_errors_debug_or_report() {
    let line = "rescue.s3_access_key_id=AKIAXYZ rescue.s3_secret_access_key=SECRETSK \
                rescue.http_token=TOKENVAL rescue.callback=https://u:PASSWD@h/cb?sig=SIGVAL";
    let cfg = Config::from_cmdline(line).unwrap();
    let shown = format!("{cfg:?} {}", cfg.to_report_json());
    for secret in ["AKIAXYZ", "SECRETSK", "TOKENVAL", "PASSWD", "SIGVAL"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert!(shown.contains(REDACTED));
    assert_eq!(
        cfg.http_token.as_ref().map(Secret::expose),
        Some("TOKENVAL")
    );
    // An invalid secret-bearing URL must not echo the secret either.
    for line in [
        "rescue.s3_endpoint=\"https://u:PASSWD@h/ x\"",
        "rescue.source=http://u:PASSWD@h/x",
        "rescue.http_token=",
    ] {
        let err = Config::from_cmdline(line).unwrap_err().to_string();
        assert!(!err.contains("PASSWD"), "{line}: {err}");
    }
}

#[test]
fn every_key_parses_from_cmdline_and_plan_alike() {
    for key in Settings::KEYS {
        let v = sample(key);
        let from_cmdline = Settings::from_cmdline(&format!("rescue.{key}=\"{v}\""))
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(from_cmdline.present(), vec![*key]);
        if *key == "plan" {
            continue; // a plan may not name a plan (tested below)
        }
        let yaml = format!("{key}: '{v}'\n");
        let from_plan =
            Settings::from_plan_yaml(&yaml, "t.yaml").unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(from_plan, from_cmdline, "{key}");
    }
}

#[test]
fn plan_keys_are_exactly_the_cmdline_keys() {
    // Every field of Settings, all set, serialises under a name in KEYS and vice versa.
    let line: Vec<String> = Settings::KEYS
        .iter()
        .map(|k| format!("rescue.{k}={}", sample(k)))
        .collect();
    let all = Settings::from_cmdline(&line.join(" ")).unwrap();
    let json = serde_json::to_value(&all).unwrap();
    let mut names: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    let mut keys = Settings::KEYS.to_vec();
    keys.sort_unstable();
    assert_eq!(names, keys);
}

#[test]
fn plan_yaml_typed_values_and_errors() {
    let plan = "# fleet plan for ncn-m001\n\
                name: ncn-m001\n\
                advertise_address: 10.252.1.20\n\
                bump: false\n\
                dry_run: yes\n\
                timeout: 600\n\
                source: s3://etcd-backup/bare-metal/latest\n\
                s3_endpoint: https://rgw.local:8080\n\
                s3_access_key_id: AK\n\
                s3_secret_access_key: SK\n";
    let s = Settings::from_plan_yaml(plan, "m1.yaml").unwrap();
    let cfg = Config::resolve(&[Layer {
        origin: Origin::Plan("m1.yaml".into()),
        settings: s,
    }])
    .unwrap();
    assert_eq!(cfg.bump, Bump::Off);
    assert!(cfg.dry_run);
    assert_eq!(cfg.timeout, Duration::from_secs(600));
    assert_eq!(
        cfg.origins.get("name"),
        Some(&Origin::Plan("m1.yaml".into()))
    );

    match Settings::from_plan_yaml("name: a\nadvertise_adress: 1.2.3.4\n", "p.yaml") {
        Err(ConfigError::UnknownKey { key, origin }) => {
            assert_eq!(key, "advertise_adress");
            assert_eq!(origin, Origin::Plan("p.yaml".into()));
        }
        other => panic!("{other:?}"),
    }
    let cases: &[(&str, &str)] = &[
        ("plan: /x.yaml\n", "may not name another plan"),
        ("- a\n- b\n", "must be a mapping"),
        (
            "name: [a, b]\n",
            "invalid value for name in plan file p.yaml",
        ),
        ("bump: 7\n", "invalid value for bump"),
        ("name: a\nname: b\n", "not valid yaml"),
        ("name: 'a\n", "not valid yaml"),
        ("1: x\n", "must be a mapping"),
    ];
    for (yaml, want) in cases {
        let err = Settings::from_plan_yaml(yaml, "p.yaml").expect_err(yaml);
        let chain = format!(
            "{err} / {:?}",
            std::error::Error::source(&err).map(ToString::to_string)
        );
        assert!(chain.contains(want), "{yaml:?}: {chain}");
    }
    assert_eq!(
        Settings::from_plan_yaml("", "e.yaml").unwrap(),
        Settings::default()
    );
    assert_eq!(
        Settings::from_plan_yaml("# only a comment\n", "e.yaml").unwrap(),
        Settings::default()
    );
}

#[test]
fn flags_beat_plan_beat_defaults() {
    let args = parse_args(&[
        "--root",
        "/mnt/host",
        "--plan",
        "/p.yaml",
        "--name",
        "flagname",
        "--no-bump",
    ]);
    let plan = Settings::from_plan_yaml(
        "name: planname\nadvertise_address: 10.1.1.1\nbump_revision: 42\nafter: hold\n",
        "/p.yaml",
    )
    .unwrap();
    let cfg = args.resolve(Some(plan)).unwrap();
    assert_eq!(cfg.root.as_deref(), Some(Path::new("/mnt/host")));
    assert_eq!(cfg.name.as_ref().map(MemberName::as_str), Some("flagname"));
    assert_eq!(cfg.advertise_address, "10.1.1.1".parse().ok());
    assert_eq!(cfg.bump, Bump::Off);
    assert_eq!(cfg.after, After::Hold);
    assert_eq!(cfg.origins.get("name"), Some(&Origin::Flags));
    assert_eq!(
        cfg.origins.get("advertise_address"),
        Some(&Origin::Plan("/p.yaml".into()))
    );
    assert!(!cfg.origins.contains_key("timeout"));
    assert_eq!(cfg.plan, Some(Location::Path("/p.yaml".into())));

    let bad = parse_args(&["--root", "/r", "--advertise-address", "nope"]);
    let err = bad.resolve(None).unwrap_err().to_string();
    assert!(err.contains("--advertise-address in flags"), "{err}");

    let defaults = parse_args(&["--root", "/r"]).resolve(None).unwrap();
    assert_eq!(
        defaults.bump,
        Bump::On {
            revision: 1_000_000_000
        }
    );
    assert!(!defaults.dry_run);
}

#[test]
fn fetch_flags_set_the_tls_and_s3_keys() {
    let args = parse_args(&[
        "--root",
        "/r",
        "--source",
        "s3://snaps/cluster/latest",
        "--cacert",
        "/etc/ssl/lab-ca.pem",
        "--cert",
        "/c.pem",
        "--key",
        "/k.pem",
        "--s3-endpoint",
        "http://127.0.0.1:3900",
        "--s3-region",
        "garage",
    ]);
    let cfg = args.resolve(None).unwrap();
    let file = |p: &str| Some(Pem::File(PathBuf::from(p)));
    assert_eq!(cfg.ca, file("/etc/ssl/lab-ca.pem"));
    assert_eq!(cfg.etcd_tls.cert, file("/c.pem"));
    assert_eq!(cfg.etcd_tls.key, file("/k.pem"));
    assert_eq!(cfg.s3.region.as_deref(), Some("garage"));
    assert_eq!(
        cfg.s3.endpoint.as_ref().map(|u| u.expose().to_string()),
        Some("http://127.0.0.1:3900".into())
    );
    assert_eq!(cfg.origins.get("ca"), Some(&Origin::Flags));

    let err = parse_args(&["--root", "/r", "--cert", "/c.pem"])
        .resolve(None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("etcd_cert and etcd_key go together"), "{err}");
    let err = parse_args(&["--root", "/r", "--s3-endpoint", "ftp://x"])
        .resolve(None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("s3_endpoint"), "{err}");
}

#[test]
fn report_json_shape() {
    let cfg = Config::from_cmdline(
        "rescue.name=m1 rescue.s3_secret_access_key=x rescue.s3_access_key_id=y",
    )
    .unwrap();
    let v = cfg.to_report_json();
    assert_eq!(v["name"], "m1");
    assert_eq!(v["bump"]["mode"], "on");
    assert_eq!(v["bump"]["revision"], 1_000_000_000u64);
    assert_eq!(v["timeout"], 3600);
    assert_eq!(v["s3"]["secret_access_key"], REDACTED);
    assert_eq!(v["origins"]["name"]["kind"], "cmdline");
}

#[test]
fn plan_url_expansion() {
    let vars = PlanVars {
        mac: Some("52:54:00:12:34:56".into()),
        hostname: Some("ncn m1".into()),
        uuid: None,
    };
    assert_eq!(
        expand_plan_url("https://h/p?mac=${mac}&h=${hostname}", &vars).unwrap(),
        "https://h/p?mac=52:54:00:12:34:56&h=ncn%20m1"
    );
    assert_eq!(
        expand_plan_url("https://h/static.yaml", &vars).unwrap(),
        "https://h/static.yaml"
    );
    for bad in [
        "https://h/${uuid}",
        "https://h/${serial}",
        "https://h/${mac",
    ] {
        assert!(
            matches!(
                expand_plan_url(bad, &vars),
                Err(ConfigError::Template { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn loaders_read_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("plan.yaml");
    std::fs::write(&p, "name: m9\n").unwrap();
    assert_eq!(load_plan_file(&p).unwrap().name.unwrap().as_str(), "m9");
    assert!(matches!(
        load_plan_file(&dir.path().join("missing.yaml")),
        Err(ConfigError::ReadPlan { .. })
    ));
    let c = dir.path().join("cmdline");
    std::fs::write(&c, "quiet rescue.dry_run\n").unwrap();
    assert!(
        Config::from_cmdline(&read_cmdline(&c).unwrap())
            .unwrap()
            .dry_run
    );
}

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: RecoverArgs,
}

pub(super) fn parse_args(argv: &[&str]) -> RecoverArgs {
    let mut full = vec!["recover"];
    full.extend_from_slice(argv);
    Wrapper::parse_from(full).args
}

#[test]
fn image_flow_cmdline_over_fetched_plan() {
    let cmdline = Settings::from_cmdline(
        "console=ttyS0 rescue.plan=https://boot/${mac}.yaml rescue.after=hold",
    )
    .unwrap();
    let Some(Location::Url(url)) = &cmdline.plan else {
        panic!("plan url expected");
    };
    let vars = PlanVars {
        mac: Some("52:54:00:aa:bb:cc".into()),
        ..PlanVars::default()
    };
    assert_eq!(
        expand_plan_url(url.expose(), &vars).unwrap(),
        "https://boot/52:54:00:aa:bb:cc.yaml"
    );
    let plan =
        Settings::from_plan_yaml("after: poweroff\nname: m3\n", "https://boot/x.yaml").unwrap();
    let cfg =
        Config::from_cmdline_and_plan(cmdline, Some(("https://boot/x.yaml".into(), plan))).unwrap();
    assert_eq!(cfg.after, After::Hold, "the command line wins");
    assert_eq!(cfg.name.as_ref().map(MemberName::as_str), Some("m3"));
    assert_eq!(cfg.origins.get("after"), Some(&Origin::Cmdline));
    assert_eq!(
        cfg.origins.get("name"),
        Some(&Origin::Plan("https://boot/x.yaml".into()))
    );
}
