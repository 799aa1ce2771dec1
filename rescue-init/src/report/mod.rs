//! The recovery report: a serde model written as `report.json`, and a short human summary for
//! the console. Secrets never reach it: callers put only redacted configuration in.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::exec::StepOutcome;

/// How a recovery ended.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "result", rename_all = "camelCase")]
pub enum Outcome {
    /// The host was recovered.
    Recovered,
    /// `--dry-run`: the plan was made and nothing changed.
    DryRun,
    /// The host was already recovered from this backup; nothing to do.
    AlreadyRecovered { reason: String },
    /// Recovery failed; `rolled_back` lists what was undone.
    Failed {
        error: String,
        rolled_back: Vec<String>,
        rollback_failures: Vec<String>,
    },
}

/// A file's change as a unified diff.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileDiff {
    pub path: PathBuf,
    pub diff: String,
}

/// What was fetched for a recovery from a URL source.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FetchInfo {
    /// The source URL, redacted.
    pub url: String,
    /// What was fetched, as the source describes it (the S3 key `latest` chose, the endpoint).
    pub from: String,
    pub bytes: u64,
    pub sha256: String,
    /// The file ends with the sha256 of the rest (an etcd snapshot), checked in the same pass.
    pub trailer_verified: bool,
    pub seconds: f64,
    /// Where the etcd client certificate came from when none was configured.
    pub client_tls: Option<String>,
}

/// Everything a recovery did, for `report.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tool: String,
    pub version: String,
    pub started_at: String,
    pub finished_at: String,
    pub seconds: f64,
    pub root: PathBuf,
    pub outcome: Outcome,
    /// The resolved configuration, secrets redacted.
    pub config: serde_json::Value,
    /// Every backup candidate found and why it was or was not chosen.
    pub candidates: serde_json::Value,
    pub source: Option<String>,
    /// Set when the backup was fetched from a URL.
    pub fetch: Option<FetchInfo>,
    pub member: Option<serde_json::Value>,
    pub plan: Vec<String>,
    pub steps: Vec<StepOutcome>,
    pub moved_aside: Vec<(PathBuf, PathBuf)>,
    pub written: Vec<PathBuf>,
    pub diffs: Vec<FileDiff>,
}

impl Report {
    pub fn new(root: &Path, started: SystemTime) -> Self {
        Report {
            tool: "rescue-init".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            started_at: rfc3339(started),
            finished_at: String::new(),
            seconds: 0.0,
            root: root.to_path_buf(),
            outcome: Outcome::DryRun,
            config: serde_json::Value::Null,
            candidates: serde_json::Value::Null,
            source: None,
            fetch: None,
            member: None,
            plan: Vec::new(),
            steps: Vec::new(),
            moved_aside: Vec::new(),
            written: Vec::new(),
            diffs: Vec::new(),
        }
    }

    /// Stamps the end time.
    pub fn finish(&mut self, started: SystemTime, outcome: Outcome) {
        let now = SystemTime::now();
        self.finished_at = rfc3339(now);
        self.seconds = now
            .duration_since(started)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.outcome = outcome;
    }

    /// A few lines for the console: outcome first, then the facts an operator checks.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let banner = match &self.outcome {
            Outcome::Recovered => "RESCUE RESULT: OK (recovered)".to_string(),
            Outcome::DryRun => "RESCUE RESULT: DRY RUN (nothing changed)".to_string(),
            Outcome::AlreadyRecovered { reason } => {
                format!("RESCUE RESULT: OK (nothing to do: {reason})")
            }
            Outcome::Failed { error, .. } => format!("RESCUE RESULT: FAIL: {error}"),
        };
        let _ = writeln!(s, "{banner}");
        if let Some(src) = &self.source {
            let _ = writeln!(s, "  backup: {src}");
        }
        for st in &self.steps {
            if let Some(r) = &st.restore {
                let _ = writeln!(
                    s,
                    "  etcd: member {} cluster {}; revision {} -> {}; {} key revisions (live keys and their history); data dir {}",
                    r.member_id,
                    r.cluster_id,
                    r.before.revision,
                    r.after.revision,
                    r.after.total_key,
                    r.data_dir.display()
                );
            }
        }
        for (from, to) in &self.moved_aside {
            let _ = writeln!(s, "  moved aside: {} -> {}", from.display(), to.display());
        }
        for d in &self.diffs {
            let _ = writeln!(s, "  rewrote: {}", d.path.display());
        }
        if let Outcome::Failed {
            rolled_back,
            rollback_failures,
            ..
        } = &self.outcome
        {
            for r in rolled_back {
                let _ = writeln!(s, "  rolled back: {r}");
            }
            for r in rollback_failures {
                let _ = writeln!(s, "  ROLLBACK FAILED: {r}");
            }
        }
        let _ = writeln!(s, "  took {:.2}s", self.seconds);
        s
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time (UTC), without a calendar crate.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, mo, d) = civil_from_days((secs / 86400) as i64);
    let rem = secs % 86400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `YYYYMMDDTHHMMSSZ`, for directory names.
pub fn compact_timestamp(t: SystemTime) -> String {
    rfc3339(t).replace(['-', ':'], "")
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A unified diff of two texts (whole-file hunks around changed lines, 2 lines of context).
pub fn unified_diff(path: &Path, before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    // Longest common subsequence table; config files are small.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] > lcs[i + 1][j]) {
            ops.push(('+', b[j]));
            j += 1;
        } else {
            ops.push(('-', a[i]));
            i += 1;
        }
    }
    let mut out = format!("--- {0}\n+++ {0}\n", path.display());
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.0 != ' ')
        .map(|(k, _)| k)
        .collect();
    if changed.is_empty() {
        return String::new();
    }
    let ctx = 2;
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(ctx);
        let mut end = changed[k] + ctx;
        while k + 1 < changed.len() && changed[k + 1] <= end + ctx {
            k += 1;
            end = changed[k] + ctx;
        }
        let end = end.min(ops.len() - 1);
        let old_start = ops[..start].iter().filter(|o| o.0 != '+').count() + 1;
        let new_start = ops[..start].iter().filter(|o| o.0 != '-').count() + 1;
        let old_len = ops[start..=end].iter().filter(|o| o.0 != '+').count();
        let new_len = ops[start..=end].iter().filter(|o| o.0 != '-').count();
        let _ = writeln!(out, "@@ -{old_start},{old_len} +{new_start},{new_len} @@");
        for (c, line) in &ops[start..=end] {
            let _ = writeln!(out, "{c}{line}");
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_312_397);
        assert_eq!(rfc3339(t), "2026-11-22T01:53:17Z");
        assert_eq!(compact_timestamp(t), "20261122T015317Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn diff_shows_only_changed_lines_with_context() {
        let before = "a\nb\nc\n- --name=old\nd\ne\nf\ng\n";
        let after = "a\nb\nc\n- --name=new\nd\ne\nf\ng\n";
        let d = unified_diff(Path::new("etcd.yaml"), before, after);
        assert_eq!(d, "--- etcd.yaml\n+++ etcd.yaml\n@@ -2,5 +2,5 @@\n b\n c\n-- --name=old\n+- --name=new\n d\n e\n");
        assert_eq!(unified_diff(Path::new("x"), "same\n", "same\n"), "");
    }
}
