//! The recovery as PID 1's worker runs it: configuration from the kernel command line, the
//! host root where the worker mounted it, the result on the console and in the boot report.
use std::path::Path;

use crate::config::Config;
use crate::pid1::HookError;
use crate::progress::Progress;

use super::{recover, RecoverOptions};

/// Error of a recovery run from the image, carrying its report for the boot report.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BootRecoverError {
    pub message: String,
    pub report: serde_json::Value,
}

/// The worker's recovery hook: `recover --root <mountpoint>` with the `rescue.*` keys of
/// `/proc/cmdline`.
pub fn boot_hook(root: &Path) -> Result<serde_json::Value, HookError> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    run_from_cmdline(&cmdline, root)
}

/// [`boot_hook`] for a given command line (testable without a VM).
pub fn run_from_cmdline(cmdline: &str, root: &Path) -> Result<serde_json::Value, HookError> {
    let mut cfg = Config::from_cmdline(cmdline)?;
    cfg.root = Some(root.to_path_buf());
    let (report, result) = recover(&cfg, &RecoverOptions::default(), &mut Progress::lines());
    // The console gets the summary; PID 1 prints the RESCUE RESULT line itself.
    for line in report.summary().lines().skip(1) {
        log::info!("recover: {}", line.trim());
    }
    for step in &report.plan {
        log::info!("recover: plan: {step}");
    }
    let value = serde_json::to_value(&report).unwrap_or_default();
    match result {
        Ok(()) => Ok(value),
        Err(e) => Err(Box::new(BootRecoverError {
            message: crate::cli::chain(&e),
            report: value,
        })),
    }
}
