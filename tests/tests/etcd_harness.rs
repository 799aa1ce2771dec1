//! The harness itself, against real etcd: clusters form, state reads see every kind of
//! change, restarts keep data, and dropping a cluster leaves no etcd process behind.
use std::path::Path;

use rescue_tests::{require_etcd, EtcdCluster, EtcdOpts, Version};

#[test]
fn three_members_form_a_cluster_and_drop_kills_them_all() {
    let tools = require_etcd!();
    let opts = EtcdOpts {
        names: vec!["x".into(), "y".into(), "z".into()],
        ..EtcdOpts::default()
    };
    let c = EtcdCluster::start(&tools, Version::V3_5, 3, &opts);
    let (cluster_id, members) = c.ctl().members();
    assert_ne!(cluster_id, 0);
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["x", "y", "z"]);
    for m in &members {
        assert_eq!(m.peer_urls.len(), 1, "{m:?}");
    }
    // A write through one member is read through another.
    let rev = c.ctl_member(0).put("/h/k", "v");
    assert_eq!(c.ctl_member(2).revision(), rev);
    let pids: Vec<u32> = c.members.iter().filter_map(|m| m.pid()).collect();
    assert_eq!(pids.len(), 3);
    drop(c);
    for pid in pids {
        assert!(
            !Path::new("/proc").join(pid.to_string()).exists(),
            "etcd pid {pid} still exists after drop"
        );
    }
}

#[test]
fn state_sees_puts_overwrites_deletes_leases_and_survives_restart_on_etcd_34() {
    let tools = require_etcd!();
    let mut c = EtcdCluster::start(&tools, Version::V3_4, 1, &EtcdOpts::default());
    let ctl = c.ctl();
    let r1 = ctl.put("/h/a", "1");
    let r2 = ctl.put("/h/a", "2");
    ctl.put("/h/b", "gone");
    assert_eq!(ctl.del("/h/b"), 1);
    let lease = ctl.lease_grant(600);
    let r4 = ctl.put_lease("/h/c", "leased", lease);
    let st = c.state(None);
    assert_eq!(st.members.len(), 1);
    assert_eq!(st.revision, r4);
    assert_eq!(st.leases, vec![lease]);
    assert_eq!(st.kvs.len(), 2);
    let a = &st.kvs[0];
    assert_eq!(
        (
            a.key.as_slice(),
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (b"/h/a".as_slice(), b"2".as_slice(), r1, r2, 2)
    );
    assert_eq!(
        (st.kvs[1].key.as_slice(), st.kvs[1].lease),
        (b"/h/c".as_slice(), lease)
    );
    c.restart();
    c.state(None).assert_eq(&st, "after a restart");
}
