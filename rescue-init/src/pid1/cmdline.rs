//! The few `rescue.*` kernel command-line keys the boot side needs (pure). The full
//! `rescue.*` parser lives elsewhere; this one ignores keys it does not know so that it can
//! be swapped for that parser without touching the boot code.
use std::time::Duration;

use crate::blockdev::DeviceSpec;

/// Errors in the boot keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CmdlineError {
    #[error("rescue.{key}={value}: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: String,
    },
}

/// What to do when the work is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    Reboot,
    Poweroff,
    Hold,
    Shell,
}

/// Boot-side settings from the command line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BootArgs {
    /// `rescue.root=`: the host root; None = search for etc/kubernetes or var/lib/etcd.
    pub root: Option<DeviceSpec>,
    /// `rescue.after=`; None = reboot on success, hold on failure.
    pub after: Option<After>,
    /// `rescue.modules=a,b`: loaded before coldplug.
    pub modules: Vec<String>,
    /// `rescue.timeout=<seconds>`: the worker is killed after this long.
    pub timeout: Duration,
    /// `rescue.test_exit=1`: tell QEMU's isa-debug-exit device the result (tests only).
    pub test_exit: bool,
}

/// Default worker timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

impl Default for BootArgs {
    fn default() -> Self {
        BootArgs {
            root: None,
            after: None,
            modules: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            test_exit: false,
        }
    }
}

/// Split a command line into words the way the kernel does: whitespace separates words,
/// double quotes group (and are removed).
pub fn split(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Parse the boot keys out of a whole command line. Later keys win.
pub fn parse(cmdline: &str) -> Result<BootArgs, CmdlineError> {
    let mut a = BootArgs::default();
    for word in split(cmdline) {
        let Some(rest) = word.strip_prefix("rescue.") else {
            continue;
        };
        let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
        let bad = |reason: &str| CmdlineError::BadValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        match key {
            "root" => {
                a.root = Some(DeviceSpec::parse(value).map_err(|e| bad(&e.to_string()))?);
            }
            "after" => {
                a.after = Some(match value {
                    "reboot" => After::Reboot,
                    "poweroff" => After::Poweroff,
                    "hold" => After::Hold,
                    "shell" => After::Shell,
                    _ => return Err(bad("expected reboot, poweroff, hold or shell")),
                });
            }
            "modules" => {
                a.modules = value
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
            }
            "timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| bad("expected a whole number of seconds"))?;
                if secs == 0 {
                    return Err(bad("must be at least 1"));
                }
                a.timeout = Duration::from_secs(secs);
            }
            "test_exit" => {
                a.test_exit = match value {
                    "1" | "" | "yes" | "true" => true,
                    "0" | "no" | "false" => false,
                    _ => return Err(bad("expected 0 or 1")),
                };
            }
            _ => {}
        }
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: Vec<(&str, Result<BootArgs, &str>)> = vec![
            ("console=ttyS0 panic=-1", Ok(BootArgs::default())),
            (
                "rescue.root=LABEL=host rescue.after=poweroff rescue.modules=nvme,,xfs rescue.timeout=60 rescue.test_exit=1",
                Ok(BootArgs {
                    root: Some(DeviceSpec::Label("host".into())),
                    after: Some(After::Poweroff),
                    modules: vec!["nvme".into(), "xfs".into()],
                    timeout: Duration::from_secs(60),
                    test_exit: true,
                }),
            ),
            (
                "rescue.root=\"LABEL=my root\" rescue.source=s3://x",
                Ok(BootArgs {
                    root: Some(DeviceSpec::Label("my root".into())),
                    ..BootArgs::default()
                }),
            ),
            ("rescue.after=dance", Err("after")),
            ("rescue.timeout=0", Err("timeout")),
            ("rescue.timeout=abc", Err("timeout")),
            ("rescue.root=sda1", Err("root")),
            ("rescue.test_exit=2", Err("test_exit")),
        ];
        for (line, want) in cases {
            match (parse(line), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, w, "{line}"),
                (Err(CmdlineError::BadValue { key, .. }), Err(k)) => assert_eq!(key, k, "{line}"),
                (got, w) => panic!("{line}: got {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn split_handles_quotes_and_runs_of_spaces() {
        assert_eq!(
            split("  a  b=\"c d\"  \"\" e\n"),
            vec!["a", "b=c d", "", "e"]
        );
    }
}
