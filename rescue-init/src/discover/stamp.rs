//! Timestamps embedded in backup file names. Pure.
//!
//! Formats seen in the products' own tools (all read as UTC):
//! - OpenShift `cluster-backup.sh`: `date "+%F_%H%M%S"` → `snapshot_2022-06-17_024925.db`
//!   (openshift/cluster-etcd-operator `bindata/etcd/cluster-backup.sh`)
//! - Cray CSM: `etcd-backup-2022-09-15-20-34-13.tar.gz` (Cray-HPE/docs-csm
//!   `operations/kubernetes/Create_a_Manual_Backup_of_a_Healthy_Bare-Metal_etcd_Cluster.md`)
//! - RKE1 recurring snapshots: `time.RFC3339` + `_etcd` → `2024-01-02T03:04:05Z_etcd.zip`
//!   (rancher/rke-tools `main.go`)
//! - k3s / RKE2: `etcd-snapshot-<node>-<unix seconds>` (k3s docs, "etcd-snapshot")
//! - common hand-made names: `20240102-030405`, `20240102_030405`, `20240102030405`, `2024-01-02`.

/// Seconds since the epoch for a proleptic Gregorian UTC date and time.
pub fn unix_seconds(y: i64, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
    // Days from civil (H. Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mo = i64::from(mo);
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
}

/// Patterns: `d` is a digit, other characters are literal. Most specific first.
const PATTERNS: &[&str] = &[
    "dddd-dd-ddTdd:dd:dd",
    "dddd-dd-dd_dd-dd-dd",
    "dddd-dd-dd_dd:dd:dd",
    "dddd-dd-dd-dd-dd-dd",
    "dddd-dd-dd_dddddd",
    "dddd-dd-ddTdddddd",
    "dddddddd-dddddd",
    "dddddddd_dddddd",
    "ddddddddTdddddd",
    "dddddddddddddd",
    "dddd-dd-dd",
    "dddddddd",
];

fn matches_at(s: &[u8], at: usize, pat: &str) -> Option<Vec<u32>> {
    let mut digits = Vec::new();
    for (i, p) in pat.bytes().enumerate() {
        let c = *s.get(at + i)?;
        if p == b'd' {
            if !c.is_ascii_digit() {
                return None;
            }
            digits.push(u32::from(c - b'0'));
        } else if c != p {
            return None;
        }
    }
    // Do not match inside a longer run of digits.
    if s.get(at + pat.len()).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(digits)
}

fn num(d: &[u32]) -> u32 {
    d.iter().fold(0, |acc, x| acc * 10 + x)
}

/// The timestamp (UTC seconds) a file name carries, if any.
pub fn from_name(name: &str) -> Option<i64> {
    let s = name.as_bytes();
    for at in 0..s.len() {
        if at > 0 && s.get(at - 1).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        for pat in PATTERNS {
            let Some(d) = matches_at(s, at, pat) else {
                continue;
            };
            let (y, mo, day) = (num(&d[0..4]), num(&d[4..6]), num(&d[6..8]));
            let (h, mi, sec) = if d.len() >= 14 {
                (num(&d[8..10]), num(&d[10..12]), num(&d[12..14]))
            } else {
                (0, 0, 0)
            };
            if !(1990..=2200).contains(&y)
                || !(1..=12).contains(&mo)
                || !(1..=31).contains(&day)
                || h > 23
                || mi > 59
                || sec > 60
            {
                continue;
            }
            let mut t = unix_seconds(i64::from(y), mo, day, h, mi, sec);
            if pat.starts_with("dddd-dd-ddTdd") {
                t -= rfc3339_offset(s.get(at + pat.len()..).unwrap_or_default());
            }
            return Some(t);
        }
    }
    unix_suffix(name)
}

/// `+HH:MM` / `-HH:MM` after an RFC 3339 time, in seconds east of UTC (`Z` or none: 0).
fn rfc3339_offset(rest: &[u8]) -> i64 {
    let rest = match rest.first() {
        Some(b'.') => rest
            .get(
                rest.iter()
                    .skip(1)
                    .take_while(|c| c.is_ascii_digit())
                    .count()
                    + 1..,
            )
            .unwrap_or_default(),
        _ => rest,
    };
    let sign = match rest.first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return 0,
    };
    match matches_at(rest, 1, "dd:dd") {
        Some(d) => sign * (i64::from(num(&d[0..2])) * 3600 + i64::from(num(&d[2..4])) * 60),
        None => 0,
    }
}

/// A run of exactly 10 digits after `-` or `_`, read as Unix seconds (2001..2100).
fn unix_suffix(name: &str) -> Option<i64> {
    let s = name.as_bytes();
    let mut best = None;
    let mut i = 0;
    while i < s.len() {
        if s.get(i).is_some_and(u8::is_ascii_digit) {
            let start = i;
            while s.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let sep_before = start > 0 && matches!(s.get(start - 1), Some(b'-') | Some(b'_'));
            if i - start == 10 && sep_before {
                let v: i64 = name.get(start..i)?.parse().ok()?;
                if (978_307_200..4_102_444_800).contains(&v) {
                    best = Some(v);
                }
            }
        } else {
            i += 1;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_math() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2024, 2, 29, 12, 0, 0), 1_709_208_000);
    }

    #[test]
    fn names() {
        let t = |y, mo, d, h, mi, s| Some(unix_seconds(y, mo, d, h, mi, s));
        let cases: &[(&str, Option<i64>)] = &[
            ("snapshot_2022-06-17_024925.db", t(2022, 6, 17, 2, 49, 25)),
            (
                "static_kuberesources_2022-06-17_024925.tar.gz",
                t(2022, 6, 17, 2, 49, 25),
            ),
            (
                "snapshot_2023-08-03_152316__POSSIBLY_DIRTY__.db",
                t(2023, 8, 3, 15, 23, 16),
            ),
            (
                "etcd-backup-2022-09-15-20-34-13.tar.gz",
                t(2022, 9, 15, 20, 34, 13),
            ),
            ("2024-01-02T03:04:05Z_etcd.zip", t(2024, 1, 2, 3, 4, 5)),
            ("2024-01-02T05:04:05+02:00_etcd", t(2024, 1, 2, 3, 4, 5)),
            ("etcd-snapshot-master-1-1700000000", Some(1_700_000_000)),
            ("etcd-snapshot-master-1-1700000000.zip", Some(1_700_000_000)),
            ("backup-20240102-030405.db", t(2024, 1, 2, 3, 4, 5)),
            ("etcd_20240102030405.db", t(2024, 1, 2, 3, 4, 5)),
            ("etcd-2024-01-02.db", t(2024, 1, 2, 0, 0, 0)),
            ("etcd-backup.snapshot", None),
            ("kube-backup.tar.gz", None),
            ("snapshot.db", None),
            ("etcd-2024-13-02.db", None),
            ("v3.5.1-123456789012345", None),
        ];
        for (name, want) in cases {
            assert_eq!(from_name(name), *want, "{name}");
        }
    }
}
