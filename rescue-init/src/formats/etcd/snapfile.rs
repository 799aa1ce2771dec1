//! The `.snap` file: `snappb.Snapshot{crc, data = raftpb.Snapshot{v2 store JSON, metadata}}`.
//! etcd 3.5 recovers membership from the v2 store JSON; 3.6 still requires the file.
use super::cluster::InitialCluster;
use super::gojson;
use super::proto::{conf_state, field_bytes, field_varint};

const EXPIRE: &str = "\"ExpireTime\":\"0001-01-01T00:00:00Z\"";

/// File name of the snapshot at term 1, index `n`.
pub fn file_name(n: u64) -> String {
    format!("{:016x}-{:016x}.snap", 1, n)
}

fn node(out: &mut String, path: &str, index: u64, value: &str, children: Option<&str>) {
    out.push_str("{\"Path\":");
    gojson::push_string(out, path);
    out.push_str(&format!(
        ",\"CreatedIndex\":{index},\"ModifiedIndex\":{index},{EXPIRE},\"Value\":"
    ));
    gojson::push_string(out, value);
    out.push_str(",\"Children\":");
    out.push_str(children.unwrap_or("null"));
    out.push('}');
}

/// The v2 store JSON etcd 3.5 builds for these members (member i, in ascending ID order, is
/// created at index i; children maps are sorted by key as strings).
pub fn v2_store_json(cluster: &InitialCluster) -> String {
    let n = cluster.members.len() as u64;
    let mut by_hex: Vec<(String, u64, String)> = cluster
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| (m.hex_id(), i as u64 + 1, m.raft_attributes_json()))
        .collect();
    let mut events = String::new();
    for (hex, idx, attrs) in &by_hex {
        if !events.is_empty() {
            events.push(',');
        }
        events.push_str("{\"action\":\"create\",\"node\":{\"key\":");
        gojson::push_string(&mut events, &format!("/0/members/{hex}/raftAttributes"));
        events.push_str(",\"value\":");
        gojson::push_string(&mut events, attrs);
        events.push_str(&format!(
            ",\"modifiedIndex\":{idx},\"createdIndex\":{idx}}}}}"
        ));
    }
    for _ in n..1000 {
        events.push_str(",null");
    }
    by_hex.sort_by(|a, b| a.0.cmp(&b.0));
    let mut members = String::from("{");
    for (i, (hex, idx, attrs)) in by_hex.iter().enumerate() {
        if i > 0 {
            members.push(',');
        }
        gojson::push_string(&mut members, hex);
        members.push(':');
        let mut attr_node = String::from("{\"raftAttributes\":");
        node(
            &mut attr_node,
            &format!("/0/members/{hex}/raftAttributes"),
            *idx,
            attrs,
            None,
        );
        attr_node.push('}');
        node(
            &mut members,
            &format!("/0/members/{hex}"),
            *idx,
            "",
            Some(&attr_node),
        );
    }
    members.push('}');
    let mut members_dir = String::from("{\"members\":");
    node(&mut members_dir, "/0/members", 1, "", Some(&members));
    members_dir.push('}');
    let mut root_children = String::from("{\"0\":");
    node(&mut root_children, "/0", 0, "", Some(&members_dir));
    root_children.push_str(",\"1\":");
    node(&mut root_children, "/1", 0, "", Some("{}"));
    root_children.push('}');
    let mut out = String::from("{\"Root\":");
    node(&mut out, "/", 0, "", Some(&root_children));
    out.push_str(&format!(
        ",\"WatcherHub\":{{\"EventHistory\":{{\"Queue\":{{\"Events\":[{events}],\"Size\":{n},\"Front\":0,\"Back\":{n},\"Capacity\":1000}},\"StartIndex\":1,\"LastIndex\":{n}}}}},\"CurrentIndex\":{n},"
    ));
    out.push_str(&format!(
        "\"Stats\":{{\"getsSuccess\":0,\"getsFail\":0,\"setsSuccess\":0,\"setsFail\":0,\"deleteSuccess\":0,\"deleteFail\":0,\"updateSuccess\":0,\"updateFail\":0,\"createSuccess\":{n},\"createFail\":0,\"compareAndSwapSuccess\":0,\"compareAndSwapFail\":0,\"compareAndDeleteSuccess\":0,\"compareAndDeleteFail\":0,\"expireCount\":0,\"watchers\":0}},\"CurrentVersion\":2}}"
    ));
    out
}

/// The complete `.snap` file contents.
pub fn encode(cluster: &InitialCluster) -> Vec<u8> {
    let n = cluster.members.len() as u64;
    let ids: Vec<u64> = cluster.members.iter().map(|m| m.id).collect();
    let mut metadata = Vec::new();
    field_bytes(&mut metadata, 1, &conf_state(&ids));
    field_varint(&mut metadata, 2, n);
    field_varint(&mut metadata, 3, 1);
    let mut snap = Vec::new();
    field_bytes(&mut snap, 1, v2_store_json(cluster).as_bytes());
    field_bytes(&mut snap, 2, &metadata);
    let mut out = Vec::new();
    field_varint(&mut out, 1, u64::from(crc32c::crc32c(&snap)));
    field_bytes(&mut out, 2, &snap);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    const ETCDUTL_SNAP_SHA256: &str =
        "ef60275dbcfc3e07263a72ec7ba91061ef0598207c792210d2d047252e1b3105";

    #[test]
    fn one_member_json_has_etcdutl_size_and_shape() {
        let c =
            InitialCluster::parse("newm=http://127.0.0.1:23480", "etcd-cluster").expect("parse");
        let j = v2_store_json(&c);
        assert_eq!(
            encode(&c).len(),
            6492,
            "etcdutl 3.5.1 writes a 6492-byte file for one member"
        );
        // sha256 of the .snap `etcdutl snapshot restore` 3.5.1 wrote for the same inputs.
        let sum = sha2::Sha256::digest(encode(&c));
        let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, ETCDUTL_SNAP_SHA256);
        let v: serde_json::Value = serde_json::from_str(&j).expect("valid json");
        let m = &v["Root"]["Children"]["0"]["Children"]["members"]["Children"]["d46c78f094ae4bda"];
        assert_eq!(
            m["Children"]["raftAttributes"]["Value"],
            "{\"peerURLs\":[\"http://127.0.0.1:23480\"]}"
        );
        assert_eq!(
            v["WatcherHub"]["EventHistory"]["Queue"]["Events"]
                .as_array()
                .map(Vec::len),
            Some(1000)
        );
        assert_eq!(file_name(1), "0000000000000001-0000000000000001.snap");
    }

    #[test]
    fn members_sorted_as_strings_events_by_id() {
        let c = InitialCluster::parse(
            "a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3",
            "etcd-cluster",
        )
        .expect("parse");
        let v: serde_json::Value = serde_json::from_str(&v2_store_json(&c)).expect("json");
        let ev = &v["WatcherHub"]["EventHistory"]["Queue"]["Events"];
        for (i, m) in c.members.iter().enumerate() {
            assert_eq!(ev[i]["node"]["createdIndex"], i as u64 + 1);
            assert!(ev[i]["node"]["key"]
                .as_str()
                .is_some_and(|k| k.contains(&m.hex_id())));
        }
        let snap = encode(&c);
        assert!(snap.len() > 6492);
    }
}
