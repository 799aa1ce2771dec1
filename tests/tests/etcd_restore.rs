//! `rescue-init snapshot restore|status` against `etcdutl` 3.5.1 and real etcd servers.
//!
//! Fixtures (see `rescue_tests::fixtures`) are made once per run by real servers. Each test
//! restores with etcdutl (the oracle) and with the subject (rescue-init; or etcdutl itself with
//! `RESCUE_RESTORER=etcdutl`, which proves the harness), starts real etcd on the results and
//! compares what the servers report. Skips when etcd is missing unless `RESCUE_REQUIRE_ETCD=1`.
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use rescue_tests::ctl::Perm;
use rescue_tests::etcd::initial_cluster;
use rescue_tests::fixtures::{self, Fixture, Fixtures};
use rescue_tests::tools::skip;
use rescue_tests::util::{describe, list_dir, tempdir, walk};
use rescue_tests::{EtcdCluster, MemberSpec, RestoreArgs, Restorer, Tools, Version};

/// Tools and fixtures, built once for the whole test binary; `None` when skipping. A failure
/// to build them is remembered, so every test fails with it instead of building again.
fn setup() -> Option<&'static (Tools, Fixtures)> {
    static SETUP: OnceLock<Result<Option<(Tools, Fixtures)>, String>> = OnceLock::new();
    let r = SETUP.get_or_init(|| {
        std::panic::catch_unwind(|| {
            let tools = Tools::require()?;
            let fx = fixtures::build(&tools, Path::new(env!("CARGO_TARGET_TMPDIR")));
            Some((tools, fx))
        })
        .map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
        })
    });
    match r {
        Ok(v) => v.as_ref(),
        Err(e) => panic!("building the fixtures failed: {e}"),
    }
}

/// What a restored server shows beyond [`ServerState`]: auth users, roles and grants.
#[derive(Debug, PartialEq, Eq)]
struct AuthState {
    users: Vec<String>,
    roles: Vec<String>,
    grants: Vec<(String, Vec<String>)>,
    perms: Vec<(String, Vec<Perm>)>,
}

fn auth_state(c: &EtcdCluster, fx: &Fixture) -> Option<AuthState> {
    let root = fx.user()?;
    let ctl = c.ctl_member(0).with_user(root);
    let users = ctl.users();
    let roles = ctl.roles();
    let grants = users
        .iter()
        .map(|u| (u.clone(), ctl.user_roles(u)))
        .collect();
    let perms = roles
        .iter()
        .map(|r| (r.clone(), ctl.role_perms(r)))
        .collect();
    // Auth is still on: an anonymous read is refused.
    let anon = c.ctl_member(0).run(&["get", "/app/a"]);
    assert!(
        !anon.status.success(),
        "anonymous get succeeded on a restored auth-enabled server: {}",
        describe(&anon)
    );
    Some(AuthState {
        users,
        roles,
        grants,
        perms,
    })
}

/// Restores `fx` as a single member named `restored` with both restorers, starts etcd 3.5 on
/// each (one after the other: same peer URL, hence same IDs) and compares everything.
fn single_member_matches_etcdutl(fx: &Fixture) {
    let Some((tools, _)) = setup() else { return };
    let subject = Restorer::subject(tools);
    let oracle = Restorer::oracle(tools);
    let td = tempdir(fx.name);
    let spec = MemberSpec::new("restored");
    let args = |dir: &str| RestoreArgs {
        skip_hash_check: fx.skip_hash_check,
        ..RestoreArgs::single(&fx.file, &td.path().join(dir), &spec.name, &spec.peer_url())
    };
    oracle.restore_ok(&args("oracle.etcd"));
    subject.restore_ok(&args("subject.etcd"));

    let run = |dir: &str| {
        let c = EtcdCluster::start_restored(
            tools,
            Version::V3_5,
            &[(spec.clone(), td.path().join(dir))],
        );
        let st = c.state(fx.user());
        let auth = auth_state(&c, fx);
        (c, st, auth)
    };
    let (c, want, want_auth) = run("oracle.etcd");
    drop(c);
    let (mut c, got, got_auth) = run("subject.etcd");

    got.assert_eq(
        &want,
        &format!("{}: {} vs etcdutl", fx.name, subject.label()),
    );
    assert_eq!(got_auth, want_auth, "{}: auth state", fx.name);
    assert_eq!(got.members.len(), 1);
    assert_eq!(got.members[0].name, spec.name);
    assert_eq!(got.members[0].peer_urls, vec![spec.peer_url()]);
    got.assert_same_data(
        &fx.source,
        &format!("{}: restored vs the source server", fx.name),
    );
    assert!(!got.kvs.is_empty());
    if fx.auth.is_none() {
        assert!(
            got.kvs.iter().any(|kv| kv.lease != 0),
            "{}: no key with a lease",
            fx.name
        );
    }
    if let (Some(a), Some(g)) = (&fx.auth, &got_auth) {
        assert_eq!(g.users, a.users);
        assert_eq!(g.roles, a.roles);
    }

    // A write survives a restart.
    let user = fx.user();
    let ctl = |c: &EtcdCluster| match user {
        Some(u) => c.ctl_member(0).with_user(u),
        None => c.ctl_member(0),
    };
    let rev = ctl(&c).put("/rescue/roundtrip", "after-restore");
    assert_eq!(rev, got.revision + 1, "{}: first write's revision", fx.name);
    c.restart();
    let kvs = ctl(&c).kvs();
    let kv = kvs
        .iter()
        .find(|kv| kv.key == b"/rescue/roundtrip")
        .unwrap_or_else(|| panic!("{}: written key lost over a restart", fx.name));
    assert_eq!(kv.value, b"after-restore");
    assert_eq!(kv.mod_revision, rev);
    drop(c);

    if fx.from_v34 {
        // etcd 3.4 starts on the subject's restore of a 3.4 snapshot, with the same content.
        subject.restore_ok(&args("subject-for-3.4.etcd"));
        let c = EtcdCluster::start_restored(
            tools,
            Version::V3_4,
            &[(spec.clone(), td.path().join("subject-for-3.4.etcd"))],
        );
        let st = c.state(None);
        assert_eq!(
            st,
            want,
            "{}: etcd 3.4 on {}'s restore",
            fx.name,
            subject.label()
        );
    }
}

#[test]
fn restore_cluster3_snapshot_matches_etcdutl() {
    if let Some((_, fx)) = setup() {
        single_member_matches_etcdutl(&fx.cluster3);
    }
}

#[test]
fn restore_raw_db_matches_etcdutl() {
    if let Some((_, fx)) = setup() {
        single_member_matches_etcdutl(&fx.raw_db);
    }
}

#[test]
fn restore_auth_snapshot_matches_etcdutl() {
    if let Some((_, fx)) = setup() {
        single_member_matches_etcdutl(&fx.auth);
    }
}

#[test]
fn restore_v34_snapshot_matches_etcdutl_and_runs_on_etcd_34() {
    if let Some((_, fx)) = setup() {
        single_member_matches_etcdutl(&fx.v34);
    }
}

const STATUS_KEYS: [&str; 4] = ["hash", "revision", "totalKey", "totalSize"];

fn assert_status_eq(a: &serde_json::Value, b: &serde_json::Value, keys: &[&str], what: &str) {
    for k in keys {
        assert!(a[k].is_u64(), "{what}: {k} missing or not a number in {a}");
        assert_eq!(a[k], b[k], "{what}: {k} differs\n  {a}\n  {b}");
    }
}

#[test]
fn status_matches_etcdutl_for_snapshots_and_restored_dbs() {
    let Some((tools, fx)) = setup() else { return };
    let subject = Restorer::subject(tools);
    let oracle = Restorer::oracle(tools);
    let td = tempdir("status");
    for f in fx.all() {
        let want = oracle.status(&f.file, f.skip_hash_check);
        let got = subject.status(&f.file, f.skip_hash_check);
        assert_status_eq(&got, &want, &STATUS_KEYS, &format!("status of {}", f.name));
        assert_eq!(
            want["revision"].as_i64(),
            Some(f.source.revision),
            "{}: snapshot revision vs the source server",
            f.name
        );

        // The db each restorer wrote (copied: etcdutl opens it read-write).
        let mut dbs: Vec<PathBuf> = Vec::new();
        for (tag, r) in [("oracle", &oracle), ("subject", &subject)] {
            let dir = td.path().join(format!("{}-{tag}.etcd", f.name));
            // The same peer URL for both (nothing listens on it): the same members bucket.
            let a = RestoreArgs {
                skip_hash_check: f.skip_hash_check,
                ..RestoreArgs::single(&f.file, &dir, "s", "http://127.0.0.1:2380")
            };
            r.restore_ok(&a);
            let copy = td.path().join(format!("{}-{tag}.db", f.name));
            std::fs::copy(dir.join("member/snap/db"), &copy).expect("copy restored db");
            dbs.push(copy);
        }
        let oracle_db = oracle.status(&dbs[0], true);
        let subject_db_by_oracle = oracle.status(&dbs[1], true);
        let subject_db_by_subject = subject.status(&dbs[1], true);
        assert_status_eq(
            &subject_db_by_subject,
            &subject_db_by_oracle,
            &STATUS_KEYS,
            &format!(
                "{}: status of the restored db, {} vs etcdutl",
                f.name,
                subject.label()
            ),
        );
        // etcdutl accepts the subject's db (it runs bbolt's consistency check) and finds the
        // same content as in its own; the file size may differ.
        assert_status_eq(
            &subject_db_by_oracle,
            &oracle_db,
            &["hash", "revision", "totalKey"],
            &format!("{}: restored dbs, {} vs etcdutl", f.name, subject.label()),
        );
    }
}

#[test]
fn restore_with_two_peer_urls_matches_etcdutl() {
    let Some((tools, fx)) = setup() else { return };
    let f = &fx.cluster3;
    let subject = Restorer::subject(tools);
    let oracle = Restorer::oracle(tools);
    let td = tempdir("two-urls");
    let mut spec = MemberSpec::new("two");
    spec.extra_peer_ports.push(rescue_tests::util::free_port());
    // Advertised in descending order: the member ID is computed over the sorted URLs.
    spec.extra_peer_ports.sort();
    spec.extra_peer_ports.reverse();
    let mut states = Vec::new();
    for (tag, r) in [("oracle", &oracle), ("subject", &subject)] {
        let dir = td.path().join(format!("{tag}.etcd"));
        r.restore_ok(&RestoreArgs::for_member(&f.file, &dir, &spec));
        let c = EtcdCluster::start_restored(tools, Version::V3_5, &[(spec.clone(), dir)]);
        states.push(c.state(None));
    }
    states[1].assert_eq(
        &states[0],
        &format!("two peer URLs: {} vs etcdutl", subject.label()),
    );
    let mut urls = spec.peer_urls();
    urls.sort();
    assert_eq!(states[1].members.len(), 1);
    assert_eq!(states[1].members[0].peer_urls, urls);
}

/// What rescue-init's status adds to etcdutl's: the trailer check, page size, and the
/// members and cluster ID recorded in the snapshot, checked against the source server.
#[test]
fn status_reports_trailer_members_and_cluster_id_of_the_source() {
    let Some((tools, fx)) = setup() else { return };
    let subject = Restorer::subject(tools);
    if !subject.is_rescue_init() {
        skip("the extra status keys are rescue-init's");
        return;
    }
    for f in fx.all() {
        let st = subject.status(&f.file, f.skip_hash_check);
        let want_trailer = if f.skip_hash_check {
            "absent"
        } else {
            "verified"
        };
        assert_eq!(st["hashTrailer"], want_trailer, "{}: {st}", f.name);
        assert_eq!(st["pageSize"], 4096, "{}: {st}", f.name);
        let hex = |v: &serde_json::Value| {
            u64::from_str_radix(v.as_str().unwrap_or_default(), 16)
                .unwrap_or_else(|e| panic!("{}: not a hex id {v}: {e}", f.name))
        };
        let mut members: Vec<rescue_tests::MemberInfo> = st["members"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no members in {st}", f.name))
            .iter()
            .map(|m| rescue_tests::MemberInfo {
                id: hex(&m["id"]),
                name: m["name"].as_str().unwrap_or_default().to_string(),
                peer_urls: m["peerURLs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|u| u.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        members.sort();
        assert_eq!(
            members, f.source.members,
            "{}: members in the snapshot",
            f.name
        );
        assert_eq!(
            hex(&st["clusterIdFromMembers"]),
            f.source.cluster_id,
            "{}: cluster ID from the recorded members",
            f.name
        );
    }
}

#[test]
fn multi_member_restore_matches_etcdutl() {
    let Some((tools, fx)) = setup() else { return };
    let f = &fx.cluster3;
    let subject = Restorer::subject(tools);
    let oracle = Restorer::oracle(tools);
    let td = tempdir("multi");
    let specs: Vec<MemberSpec> = ["a", "b", "c"].iter().map(|n| MemberSpec::new(n)).collect();
    let ic = initial_cluster(&specs);
    let run = |tag: &str, r: &Restorer| {
        let members: Vec<(MemberSpec, PathBuf)> = specs
            .iter()
            .map(|s| {
                let dir = td.path().join(format!("{tag}-{}.etcd", s.name));
                r.restore_ok(&RestoreArgs {
                    initial_cluster: ic.clone(),
                    token: "rebuilt".into(),
                    ..RestoreArgs::single(&f.file, &dir, &s.name, &s.peer_url())
                });
                (s.clone(), dir)
            })
            .collect();
        let c = EtcdCluster::start_restored(tools, Version::V3_5, &members);
        let st = c.state(None);
        // Every member serves the same data.
        for i in 1..members.len() {
            let other = c.ctl_member(i).state();
            other.assert_same_data(&st, &format!("{tag}: member {i} vs member 0"));
        }
        st
    };
    let want = run("oracle", &oracle);
    let got = run("subject", &subject);
    got.assert_eq(
        &want,
        &format!("3-member restore: {} vs etcdutl", subject.label()),
    );
    assert_eq!(got.members.len(), 3);
    let names: Vec<&str> = got.members.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c"]);
    got.assert_same_data(&f.source, "3-member restore vs the source server");
}

#[test]
fn bump_revision_with_mark_compacted() {
    let Some((tools, fx)) = setup() else { return };
    let subject = Restorer::subject(tools);
    if !subject.is_rescue_init() {
        skip("etcdutl 3.5.1 has no --bump-revision");
        return;
    }
    const BUMP: i64 = 1_000_000_000;
    let f = &fx.cluster3;
    let old = f.source.revision;
    let td = tempdir("bump");
    let spec = MemberSpec::new("bumped");
    let dir = td.path().join("bumped.etcd");
    subject.restore_ok(&RestoreArgs {
        bump_revision: Some(BUMP as u64),
        mark_compacted: true,
        ..RestoreArgs::single(&f.file, &dir, &spec.name, &spec.peer_url())
    });
    let c = EtcdCluster::start_restored(tools, Version::V3_5, &[(spec, dir)]);
    let ctl = c.ctl_member(0);
    let rev = ctl.revision();
    assert!(rev >= old + BUMP, "revision {rev} < {old} + {BUMP}");
    let key = String::from_utf8(f.source.kvs[0].key.clone()).expect("utf-8 key");
    let o = ctl.run(&["get", &key, "--rev", &old.to_string()]);
    assert!(
        !o.status.success(),
        "read at the old revision succeeded: {}",
        describe(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("compacted"),
        "read at the old revision: {}",
        describe(&o)
    );
    // Current values are all still there.
    let now = rescue_tests::ServerState {
        kvs: ctl.kvs(),
        leases: ctl.leases(),
        ..f.source.clone()
    };
    now.assert_same_data(&f.source, "keys and leases after the bump");
    let put = ctl.put("/rescue/after-bump", "1");
    assert_eq!(put, old + BUMP + 1, "first write after the bump");
}

/// One bad input: what to run, and words the error must contain (any of them).
struct BadCase {
    name: &'static str,
    input: Vec<u8>,
    skip_hash_check: bool,
    /// Pre-existing files in the data dir (the non-empty case).
    occupied: bool,
    words: &'static [&'static str],
}

fn bad_cases(snapshot: &[u8], raw_db: &[u8]) -> Vec<BadCase> {
    let db_len = snapshot.len() - 32;
    let mut flipped = snapshot.to_vec();
    flipped[db_len / 2] ^= 0x10;
    let mut wrong_trailer = snapshot.to_vec();
    wrong_trailer[snapshot.len() - 1] ^= 0x01;
    let truncated = snapshot[..db_len / 2 + 100].to_vec();
    let mut random = vec![0u8; 64 * 1024];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in &mut random {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let hash: &[&str] = &["sha256", "hash"];
    let any: &[&str] = &[];
    vec![
        BadCase {
            name: "flipped bit in the db part",
            input: flipped,
            skip_hash_check: false,
            occupied: false,
            words: hash,
        },
        BadCase {
            name: "wrong sha256 trailer",
            input: wrong_trailer,
            skip_hash_check: false,
            occupied: false,
            words: hash,
        },
        BadCase {
            name: "truncated",
            input: truncated.clone(),
            skip_hash_check: false,
            occupied: false,
            words: any,
        },
        BadCase {
            name: "truncated, --skip-hash-check",
            input: truncated,
            skip_hash_check: true,
            occupied: false,
            words: any,
        },
        BadCase {
            name: "random bytes",
            input: random.clone(),
            skip_hash_check: false,
            occupied: false,
            words: any,
        },
        BadCase {
            name: "random bytes, --skip-hash-check",
            input: random,
            skip_hash_check: true,
            occupied: false,
            words: any,
        },
        BadCase {
            name: "non-empty data dir",
            input: snapshot.to_vec(),
            skip_hash_check: false,
            occupied: true,
            words: &["not empty", "non-empty"],
        },
        BadCase {
            name: "raw db without --skip-hash-check",
            input: raw_db.to_vec(),
            skip_hash_check: false,
            occupied: false,
            words: hash,
        },
    ]
}

fn assert_clean_failure(case: &BadCase, o: &Output) {
    let code = o.status.code();
    assert!(
        matches!(code, Some(c) if c != 0 && c != 101),
        "{}: want a non-zero exit without panic or signal: {}",
        case.name,
        describe(o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    let err = err.trim_end();
    assert_eq!(
        err.lines().count(),
        1,
        "{}: want one line on stderr: {err}",
        case.name
    );
    assert!(err.starts_with("error:"), "{}: {err}", case.name);
    let lower = err.to_lowercase();
    assert!(
        case.words.is_empty() || case.words.iter().any(|w| lower.contains(w)),
        "{}: the error should say {:?}: {err}",
        case.name,
        case.words
    );
}

#[test]
fn bad_inputs_fail_cleanly_and_leave_nothing() {
    let Some((tools, fx)) = setup() else { return };
    let subject = Restorer::subject(tools);
    if !subject.is_rescue_init() {
        skip("the clean-failure contract is rescue-init's (etcdutl leaves data dirs)");
        return;
    }
    let snapshot = std::fs::read(&fx.cluster3.file).expect("read snapshot");
    let raw = std::fs::read(&fx.raw_db.file).expect("read raw db");
    let td = tempdir("bad");
    for (i, case) in bad_cases(&snapshot, &raw).iter().enumerate() {
        let input = td.path().join(format!("input-{i}"));
        std::fs::write(&input, &case.input).expect("write input");
        let parent = td.path().join(format!("case-{i}"));
        std::fs::create_dir(&parent).expect("mkdir");
        let data = parent.join("data");
        if case.occupied {
            std::fs::create_dir(&data).expect("mkdir data");
            std::fs::write(data.join("keep.txt"), b"keep").expect("write");
        }
        let spec = MemberSpec::new("bad");
        let o = subject.restore(&RestoreArgs {
            skip_hash_check: case.skip_hash_check,
            ..RestoreArgs::single(&input, &data, "bad", &spec.peer_url())
        });
        assert_clean_failure(case, &o);
        if case.occupied {
            assert_eq!(
                list_dir(&parent),
                ["data"],
                "{}: beside the data dir",
                case.name
            );
            assert_eq!(
                walk(&data),
                [PathBuf::from("keep.txt")],
                "{}: data dir",
                case.name
            );
            assert_eq!(std::fs::read(data.join("keep.txt")).expect("read"), b"keep");
        } else {
            assert_eq!(
                list_dir(&parent),
                Vec::<String>::new(),
                "{}: left behind",
                case.name
            );
        }
        // The status command refuses the same corrupt inputs (except a good file in a
        // non-empty dir, which status does not care about).
        if !case.occupied && !(case.name.starts_with("raw db")) {
            let s = subject.status_output(&input, case.skip_hash_check);
            assert_clean_failure(case, &s);
        }
    }
}

/// File modes and contents of a restored data dir: relative path → (mode, bytes); the db is
/// left out of the bytes (bbolt page layout may differ; its content is compared by hash).
fn dir_files(dir: &Path) -> Vec<(PathBuf, u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read restored dir") {
            let p = e.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(dir).expect("prefix").to_path_buf();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                stack.push(p.clone());
                out.push((rel, mode, None));
            } else if rel == Path::new("member/snap/db") {
                out.push((rel, mode, None));
            } else {
                out.push((rel, mode, Some(std::fs::read(&p).expect("read"))));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The WAL and `.snap` files are byte-identical to etcdutl's, file modes equal, and the db has
/// etcdutl's content hash, for URL spellings Go normalises (scheme and host case, IPv6,
/// several URLs in any order) and several members; a URL with a path is refused by both.
#[test]
fn restored_files_match_etcdutl_byte_for_byte() {
    let Some((tools, fx)) = setup() else { return };
    let f = &fx.cluster3;
    let subject = Restorer::subject(tools);
    let oracle = Restorer::oracle(tools);
    let one = |url: &str| ("n".to_string(), format!("n={url}"), url.to_string());
    let cases: Vec<(String, String, String)> = vec![
        one("http://127.0.0.1:2380"),
        one("HTTP://127.0.0.1:2380"),
        one("http://[::1]:2380"),
        one("https://LOCALHOST:2380"),
        (
            "n".into(),
            "n=https://10.0.0.2:2380,n=https://10.0.0.1:2380".into(),
            "https://10.0.0.2:2380,https://10.0.0.1:2380".into(),
        ),
        (
            "b".into(),
            "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380,c=https://10.0.0.3:2380".into(),
            "https://10.0.0.2:2380".into(),
        ),
    ];
    for (name, cluster, urls) in &cases {
        let td = tempdir("bytes");
        let args = |dir: &str| RestoreArgs {
            initial_cluster: cluster.clone(),
            peer_urls: urls.clone(),
            token: "etcd-cluster".into(),
            ..RestoreArgs::single(&f.file, &td.path().join(dir), name, "unused")
        };
        oracle.restore_ok(&args("oracle"));
        subject.restore_ok(&args("subject"));
        let want = dir_files(&td.path().join("oracle"));
        let got = dir_files(&td.path().join("subject"));
        let what = format!("{} with --initial-cluster {cluster}", subject.label());
        let names = |v: &[(PathBuf, u32, Option<Vec<u8>>)]| -> Vec<(PathBuf, u32)> {
            v.iter().map(|(p, m, _)| (p.clone(), *m)).collect()
        };
        assert_eq!(names(&got), names(&want), "{what}: files and modes");
        for ((p, _, g), (_, _, w)) in got.iter().zip(&want) {
            assert!(g == w, "{what}: {} differs from etcdutl's", p.display());
        }
        let db = |dir: &str| {
            let copy = td.path().join(format!("{dir}.db"));
            std::fs::copy(td.path().join(dir).join("member/snap/db"), &copy).expect("copy db");
            oracle.status(&copy, true)
        };
        assert_status_eq(
            &db("subject"),
            &db("oracle"),
            &["hash", "revision", "totalKey"],
            &format!("{what}: restored db"),
        );
    }

    // A peer URL with a path: both refuse, and the subject leaves nothing.
    let td = tempdir("bytes-bad");
    for (tag, r) in [("oracle", &oracle), ("subject", &subject)] {
        let dir = td.path().join(tag);
        let o = r.restore(&RestoreArgs::single(
            &f.file,
            &dir,
            "n",
            "http://127.0.0.1:2380/",
        ));
        assert!(!o.status.success(), "{tag}: a URL with a path was accepted");
        if r.is_rescue_init() {
            assert!(!dir.exists(), "{tag}: left {}", dir.display());
        }
    }
}
