//! The host's /etc/fstab (pure): which entries the rescue must mount under the host root
//! so that it sees the same tree the host does (a separate /var, /var/lib/etcd, …).
use super::DeviceSpec;

/// One fstab line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FstabEntry {
    pub spec: String,
    pub mountpoint: String,
    pub fstype: String,
    pub options: String,
}

/// Parse fstab text; comments, blank and short lines are skipped. `\040` escapes are decoded.
pub fn parse(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 {
                return None;
            }
            Some(FstabEntry {
                spec: unescape(f[0]),
                mountpoint: unescape(f[1]),
                fstype: f[2].to_owned(),
                options: f.get(3).copied().unwrap_or("defaults").to_owned(),
            })
        })
        .collect()
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

/// Mount points under the host root that matter for a control-plane recovery.
fn relevant(mp: &str) -> bool {
    mp == "/var"
        || mp.starts_with("/var/")
        || mp == "/etc/kubernetes"
        || mp.starts_with("/etc/kubernetes/")
}

/// Entries to mount on top of the host root, parents first: real block filesystems under
/// /var or /etc/kubernetes, not `noauto`. Returns the parsed spec with each entry.
pub fn extra_mounts(entries: &[FstabEntry]) -> Vec<(FstabEntry, Option<DeviceSpec>)> {
    let mut out: Vec<(FstabEntry, Option<DeviceSpec>)> = entries
        .iter()
        .filter(|e| relevant(&e.mountpoint))
        .filter(|e| !e.options.split(',').any(|o| o == "noauto"))
        .filter(|e| {
            !matches!(
                e.fstype.as_str(),
                "swap" | "tmpfs" | "none" | "proc" | "sysfs" | "nfs" | "nfs4"
            )
        })
        .filter(|e| !e.options.split(',').any(|o| o == "bind"))
        .map(|e| (e.clone(), DeviceSpec::parse(&e.spec).ok()))
        .collect();
    out.sort_by_key(|(e, _)| e.mountpoint.matches('/').count());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separate_var_and_etcd_are_picked_parents_first() {
        let text = "\
# /etc/fstab
UUID=1111 / ext4 errors=remount-ro 0 1
UUID=3333 /var/lib/etcd xfs defaults 0 2
LABEL=var /var ext4 defaults 0 2
/dev/vdb1 none swap sw 0 0
tmpfs /var/tmp tmpfs defaults 0 0
/dev/disk/by-label/data\\040x /var/data ext4 noauto 0 0
/srv /var/srv none bind 0 0
/dev/mapper/vg-lv /var/log ext4 defaults 0 0
short line
";
        let all = parse(text);
        assert_eq!(all.len(), 8);
        assert_eq!(all[5].spec, "/dev/disk/by-label/data x");
        let extra = extra_mounts(&all);
        let mps: Vec<&str> = extra.iter().map(|(e, _)| e.mountpoint.as_str()).collect();
        assert_eq!(mps, vec!["/var", "/var/log", "/var/lib/etcd"]);
        assert_eq!(extra[0].1, Some(DeviceSpec::Label("var".into())));
        // LVM is not supported yet: the spec does not parse and the caller reports it.
        assert_eq!(extra[1].1, None);
        assert_eq!(extra[2].1, Some(DeviceSpec::Uuid("3333".into())));
    }
}
