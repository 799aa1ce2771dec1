//! Unified diff of two texts, line by line (Myers' algorithm). Pure.
//!
//! The output is what `diff -u` prints and `patch` applies: `--- a/PATH`, `+++ b/PATH`,
//! hunks with three lines of context, and `\ No newline at end of file` where a last line
//! has no newline.
use std::fmt::Write;

/// An edit script operation over lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Equal(usize, usize),
    Delete(usize),
    Insert(usize),
}

/// Myers' O((N+M)D) shortest edit script.
fn myers(a: &[&str], b: &[&str]) -> Vec<Op> {
    let n = a.len();
    let m = b.len();
    let max = n + m;
    let off = max + 1;
    let mut v = vec![0usize; 2 * max + 3];
    let mut trace: Vec<Vec<usize>> = Vec::new();
    'outer: for d in 0..=max {
        trace.push(v.clone());
        let d = d as isize;
        let mut k = -d;
        while k <= d {
            let ki = (k + off as isize) as usize;
            let mut x = if k == -d || (k != d && v[ki - 1] < v[ki + 1]) {
                v[ki + 1]
            } else {
                v[ki - 1] + 1
            };
            let mut y = (x as isize - k) as usize;
            while x < n && y < m && a[x] == b[y] {
                x += 1;
                y += 1;
            }
            v[ki] = x;
            if x >= n && y >= m {
                trace.push(v.clone());
                break 'outer;
            }
            k += 2;
        }
    }
    // Walk back through the trace.
    let mut ops = Vec::new();
    let (mut x, mut y) = (n, m);
    for d in (1..trace.len() - 1).rev() {
        let v = &trace[d];
        let d = d as isize;
        let k = x as isize - y as isize;
        let ki = (k + off as isize) as usize;
        let prev_k = if k == -d || (k != d && v[ki - 1] < v[ki + 1]) {
            k + 1
        } else {
            k - 1
        };
        let prev_x = v[(prev_k + off as isize) as usize];
        let prev_y = (prev_x as isize - prev_k) as usize;
        while x > prev_x && y > prev_y {
            x -= 1;
            y -= 1;
            ops.push(Op::Equal(x, y));
        }
        if x == prev_x {
            y -= 1;
            ops.push(Op::Insert(y));
        } else {
            x -= 1;
            ops.push(Op::Delete(x));
        }
    }
    while x > 0 && y > 0 {
        x -= 1;
        y -= 1;
        ops.push(Op::Equal(x, y));
    }
    ops.reverse();
    ops
}

const CONTEXT: usize = 3;

/// Renders a unified diff of `old` and `new` for `path`; empty when they are equal.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.split_inclusive('\n').collect();
    let b: Vec<&str> = new.split_inclusive('\n').collect();
    let ops = myers(&a, &b);
    let path = path.trim_start_matches('/');
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    // Group changes into hunks with context.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Equal(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(CONTEXT);
        let mut end = changed[i];
        while i < changed.len() && changed[i] <= end + 2 * CONTEXT + 1 {
            end = changed[i];
            i += 1;
        }
        let end = (end + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..end];
        let (mut a_start, mut b_start) = (None, None);
        let (mut a_len, mut b_len) = (0, 0);
        for op in hunk {
            match *op {
                Op::Equal(x, y) => {
                    a_start.get_or_insert(x);
                    b_start.get_or_insert(y);
                    a_len += 1;
                    b_len += 1;
                }
                Op::Delete(x) => {
                    a_start.get_or_insert(x);
                    a_len += 1;
                }
                Op::Insert(y) => {
                    b_start.get_or_insert(y);
                    b_len += 1;
                }
            }
        }
        // Where a side has no lines in the hunk, its start is the line before it.
        let a_at = a_start.unwrap_or_else(|| position_before(&ops[..start], true));
        let b_at = b_start.unwrap_or_else(|| position_before(&ops[..start], false));
        let _ = writeln!(out, "@@ -{} +{} @@", range(a_at, a_len), range(b_at, b_len));
        for op in hunk {
            let (sign, line) = match *op {
                Op::Equal(x, _) => (' ', a[x]),
                Op::Delete(x) => ('-', a[x]),
                Op::Insert(y) => ('+', b[y]),
            };
            out.push(sign);
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push_str("\n\\ No newline at end of file\n");
            }
        }
    }
    out
}

/// The number of lines of one side before a point of the script.
fn position_before(ops: &[Op], old_side: bool) -> usize {
    ops.iter()
        .filter(|op| match op {
            Op::Equal(..) => true,
            Op::Delete(_) => old_side,
            Op::Insert(_) => !old_side,
        })
        .count()
}

/// `start,len` of a hunk header (1-based; a side with no lines names the line before).
fn range(start0: usize, len: usize) -> String {
    match len {
        0 => format!("{start0},0"),
        1 => format!("{}", start0 + 1),
        _ => format!("{},{len}", start0 + 1),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified_diff("x", "a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn one_line_changed() {
        let old = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
        let new = "1\n2\n3\n4\nFIVE\n6\n7\n8\n9\n";
        assert_eq!(
            unified_diff("/etc/x", old, new),
            "--- a/etc/x\n+++ b/etc/x\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+FIVE\n 6\n 7\n 8\n"
        );
    }

    #[test]
    fn deletion_insertion_and_missing_newline() {
        assert_eq!(
            unified_diff("f", "a\nb\n", "a\n"),
            "--- a/f\n+++ b/f\n@@ -1,2 +1 @@\n a\n-b\n"
        );
        assert_eq!(
            unified_diff("f", "", "x\n"),
            "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+x\n"
        );
        assert_eq!(
            unified_diff("f", "a\nb", "a\nc"),
            "--- a/f\n+++ b/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n"
        );
    }

    /// The real `patch` applies our diffs and gets the new text back.
    #[test]
    fn patch_applies_our_diffs() {
        if std::process::Command::new("patch")
            .arg("--version")
            .output()
            .is_err()
        {
            // GNU patch is part of every build image; say so loudly if it is not.
            panic!("GNU patch not found: install it (apt-get install patch)");
        }
        let dir = tempfile::tempdir().unwrap();
        let base: Vec<String> = (0..40).map(|i| format!("line {i}\n")).collect();
        type Edit = Box<dyn Fn(&mut Vec<String>)>;
        let variants: Vec<Edit> = vec![
            Box::new(|v| v[0] = "first\n".into()),
            Box::new(|v| {
                v.remove(39);
            }),
            Box::new(|v| {
                v[5] = "five\n".into();
                v[6] = "six\n".into();
                v.insert(20, "new\n".into());
                v.remove(33);
            }),
            Box::new(|v| {
                v.insert(0, "top\n".into());
                v.push("bottom\n".into());
            }),
            Box::new(|v| {
                for l in v.iter_mut().step_by(4) {
                    *l = format!("changed {l}");
                }
            }),
            Box::new(|v| v.truncate(3)),
        ];
        for (n, f) in variants.iter().enumerate() {
            let old = base.concat();
            let mut lines = base.clone();
            f(&mut lines);
            let new = lines.concat();
            let d = unified_diff("f.txt", &old, &new);
            let old_path = dir.path().join(format!("old{n}"));
            let diff_path = dir.path().join(format!("d{n}.patch"));
            let out_path = dir.path().join(format!("out{n}"));
            std::fs::write(&old_path, &old).unwrap();
            std::fs::write(&diff_path, &d).unwrap();
            let st = std::process::Command::new("patch")
                .arg("-s")
                .arg("-o")
                .arg(&out_path)
                .arg(&old_path)
                .arg(&diff_path)
                .status()
                .unwrap();
            assert!(st.success(), "variant {n}: patch failed on\n{d}");
            assert_eq!(
                std::fs::read_to_string(&out_path).unwrap(),
                new,
                "variant {n}"
            );
        }
    }
}
