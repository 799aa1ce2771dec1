//! The recovery as PID 1's worker runs it: configuration from the kernel command line (and a
//! per-machine plan fetched by URL), the network when something must be fetched, the host root
//! where the worker mounted it, the result on the console, in the boot report and, when asked,
//! POSTed to a callback.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{self, Config, Location, Settings};
use crate::net;
use crate::pid1::HookError;
use crate::progress::Progress;
use crate::source::{self, fleet};

use super::{pem_bases, recover, source_options, RecoverOptions};

/// Error of a recovery run from the image, carrying its report for the boot report.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct BootRecoverError {
    pub message: String,
    pub report: serde_json::Value,
}

/// The worker's recovery hook: `recover --root <mountpoint>` with the `rescue.*` keys of
/// `/proc/cmdline`, searching the mounted boot media too.
pub fn boot_hook(root: &Path, media: &[PathBuf]) -> Result<serde_json::Value, HookError> {
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    run_from_cmdline(&cmdline, root, media)
}

/// How long TLS may wait for the kernel's random pool before the recovery gives up, saying so.
const ENTROPY_WAIT: Duration = Duration::from_secs(60);

/// Brings the network up when the command line asks for it or something must be fetched, and
/// returns what a plan URL may use (`${mac}`, `${hostname}`, `${uuid}`).
fn network(cmdline: &str, cfg: &Config) -> Result<fleet::MachineVars, HookError> {
    let mut vars = fleet::MachineVars {
        uuid: std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
            .ok()
            .map(|s| s.trim().to_ascii_lowercase())
            .filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let Some(net_cfg) = network_config(net::NetConfig::from_cmdline(cmdline)?, cfg)? else {
        return Ok(vars);
    };
    log::info!("recover: bringing up the network");
    let state = net::bring_up(&net_cfg, &net::LinuxNet)?;
    // glibc's built-in resolver reads these (the static binary has no NSS modules).
    for (path, text) in [
        ("/etc/resolv.conf", state.resolv_conf()),
        ("/etc/hosts", state.hosts()),
    ] {
        if let Err(e) = std::fs::write(path, text) {
            log::warn!("recover: cannot write {path}: {e}");
        }
    }
    for c in &state.interfaces {
        log::info!(
            "recover: {} {}/{} gateway {}",
            c.ifname,
            c.address
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
            c.prefix,
            c.gateway
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into())
        );
    }
    vars.mac = state
        .interfaces
        .iter()
        .find(|c| c.default_route)
        .or(state.interfaces.first())
        .and_then(|c| c.mac)
        .map(|m| m.to_string());
    vars.hostname = state.hostname.clone();
    net::entropy::wait_for_crng(ENTROPY_WAIT)?;
    Ok(vars)
}

/// What needs the network in `cfg` (a URL source or plan, a callback), for messages.
fn network_need(cfg: &Config) -> Option<String> {
    let url = |l: &Option<Location>| match l {
        Some(Location::Url(u)) => Some(u.redacted()),
        _ => None,
    };
    url(&cfg.source)
        .map(|u| format!("the source {u}"))
        .or_else(|| url(&cfg.plan).map(|u| format!("the plan {u}")))
        .or_else(|| {
            cfg.callback
                .as_ref()
                .map(|u| format!("the callback {}", u.redacted()))
        })
}

/// The network configuration to bring up, if any (pure): as the command line says, and DHCP
/// on every interface when something must be fetched and the command line says nothing
/// (`ip=` is optional). `rescue.net=off` with something to fetch is an error that says so.
fn network_config(mut net: net::NetConfig, cfg: &Config) -> Result<Option<net::NetConfig>, String> {
    let Some(need) = network_need(cfg) else {
        return Ok(net.wanted().then_some(net));
    };
    match net.rescue_net {
        net::RescueNet::Off => Err(format!(
            "{need} needs the network, but rescue.net=off forbids it: drop rescue.net=off, or use a backup on the disk or the boot media"
        )),
        _ if net.wanted() => Ok(Some(net)),
        _ => {
            log::info!("recover: {need} needs the network and no ip= is given: DHCP on every interface");
            net.rescue_net = net::RescueNet::On;
            Ok(Some(net))
        }
    }
}

/// [`boot_hook`] for a given command line.
pub fn run_from_cmdline(
    cmdline: &str,
    root: &Path,
    media: &[PathBuf],
) -> Result<serde_json::Value, HookError> {
    let line = Settings::from_cmdline(cmdline)?;
    let mut cfg = Config::from_cmdline_and_plan(line.clone(), None)?;
    let opts = RecoverOptions {
        extra_dirs: media.to_vec(),
        ..RecoverOptions::default()
    };
    let bases = pem_bases(root, &opts);
    // A plan file on disk is read first: what it names (a URL source, a callback) decides
    // whether the network is needed.
    if let Some(Location::Path(p)) = cfg.plan.clone() {
        // A plan in the image, on the host disk or on the boot media.
        let path = crate::discover::locate(&p, &bases).unwrap_or(p);
        let plan = config::load_plan_file(&path)?;
        cfg =
            Config::from_cmdline_and_plan(line.clone(), Some((path.display().to_string(), plan)))?;
    }
    let vars = network(cmdline, &cfg)?;
    if let Some(Location::Url(u)) = cfg.plan.clone() {
        let url = fleet::expand(u.expose(), &vars)?;
        let shown = source::redact(&url);
        log::info!("recover: fetching the plan {shown}");
        let doc = fleet::fetch_document(&url, &source_options(&cfg, &bases))?;
        let text = String::from_utf8(doc).map_err(|_| format!("plan {shown} is not utf-8 text"))?;
        let plan = Settings::from_plan_yaml(&text, &shown)?;
        let secrets = plan.secret_keys();
        if u.scheme() == "http" && !secrets.is_empty() {
            return Err(format!(
                "plan {shown} came over plain http but carries secrets ({}): anyone on the network could read them; serve plans with secrets over https",
                secrets.join(", ")
            )
            .into());
        }
        // The network is up already: fetching the plan needed it.
        cfg = Config::from_cmdline_and_plan(line, Some((shown, plan)))?;
    }
    cfg.root = Some(root.to_path_buf());
    let (report, result) = recover(&cfg, &opts, &mut Progress::lines());
    // The console gets the summary; PID 1 prints the RESCUE RESULT line itself.
    for line in report.summary().lines().skip(1) {
        log::info!("recover: {}", line.trim());
    }
    for step in &report.plan {
        log::info!("recover: plan: {step}");
    }
    let value = serde_json::to_value(&report).unwrap_or_default();
    if let Some(cb) = &cfg.callback {
        let json = value.to_string();
        match fleet::post_report(cb.expose(), &json, &source_options(&cfg, &bases)) {
            Ok(status) => log::info!("recover: report sent to {} (HTTP {status})", cb.redacted()),
            Err(e) => log::warn!(
                "recover: report not sent to {}: {}",
                cb.redacted(),
                crate::cli::chain(&e)
            ),
        }
    }
    match result {
        Ok(()) => Ok(value),
        Err(e) => Err(Box::new(BootRecoverError {
            message: crate::cli::chain(&e),
            report: value,
        })),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(cmdline: &str) -> Config {
        Config::from_cmdline_and_plan(Settings::from_cmdline(cmdline).unwrap(), None).unwrap()
    }

    fn decide(cmdline: &str) -> Result<Option<net::RescueNet>, String> {
        let net = net::NetConfig::from_cmdline(cmdline).unwrap();
        network_config(net, &cfg(cmdline)).map(|o| o.map(|n| n.rescue_net))
    }

    #[test]
    fn the_network_comes_up_when_something_must_be_fetched() {
        // Nothing to fetch, nothing asked: no network.
        assert_eq!(decide("console=ttyS0"), Ok(None));
        // Asked for: as asked.
        assert_eq!(decide("ip=dhcp"), Ok(Some(net::RescueNet::Default)));
        // A URL source, plan or callback without ip=: DHCP on every interface.
        for line in [
            "rescue.source=https://b.example/s.db",
            "rescue.plan=https://b.example/p.yaml",
            "rescue.callback=https://b.example/done",
        ] {
            assert_eq!(decide(line), Ok(Some(net::RescueNet::On)), "{line}");
        }
        // With ip=: that configuration, unchanged.
        assert_eq!(
            decide("ip=10.0.0.5::10.0.0.1:255.255.255.0::eth0:none rescue.source=https://b/s"),
            Ok(Some(net::RescueNet::Default))
        );
        // rescue.net=off and a URL: a clear error naming both.
        let e = decide("rescue.net=off rescue.source=https://b.example/s.db").unwrap_err();
        assert!(
            e.contains("rescue.net=off") && e.contains("https://b.example/s.db"),
            "{e}"
        );
    }
}
