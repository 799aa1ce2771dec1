//! `modprobe` mode: the kernel runs `/sbin/modprobe -q -- <name>` for request_module()
//! (ext4 asks for crc32c, vfat for nls tables, mount for fs-<type>). `/sbin/modprobe` is a
//! symlink to the init, which lands here when argv[0] ends in `modprobe`.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{Index, Loader};
use crate::sys::LinuxSys;

/// Whether argv[0] asks for modprobe mode.
pub fn is_modprobe(argv0: &str) -> bool {
    argv0
        .rsplit('/')
        .next()
        .is_some_and(|b| b.ends_with("modprobe"))
}

/// Parsed modprobe arguments (the subset the kernel and the init use).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Args {
    pub names: Vec<String>,
    pub quiet: bool,
}

/// Parse `[-q] [-v] [-a] [-b] [--] name [params...]` (params are ignored; with `-a` every
/// argument is a name).
pub fn parse_args(args: &[String]) -> Args {
    let mut out = Args::default();
    let mut all = false;
    let mut rest: Vec<&str> = Vec::new();
    let mut opts_done = false;
    for a in args {
        if !opts_done && a.starts_with('-') && a.len() > 1 {
            match a.as_str() {
                "--" => opts_done = true,
                "--quiet" => out.quiet = true,
                "--all" => all = true,
                s if !s.starts_with("--") => {
                    out.quiet |= s.contains('q');
                    all |= s.contains('a');
                }
                _ => {}
            }
        } else {
            rest.push(a);
        }
    }
    if all {
        out.names = rest.iter().map(|s| (*s).to_owned()).collect();
    } else if let Some(first) = rest.first() {
        out.names.push((*first).to_owned());
    }
    out
}

/// Module directory of the running kernel.
pub fn running_modules_dir() -> PathBuf {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    Path::new("/lib/modules").join(release)
}

/// Entry point of modprobe mode: 0 when every name loaded (or was built in), 1 otherwise.
pub fn main(args: &[String]) -> ExitCode {
    crate::logger::init(crate::logger::Target::Kernel, false);
    let parsed = parse_args(args);
    let dir = running_modules_dir();
    let index = match Index::load(&dir) {
        Ok(i) => i,
        Err(e) => {
            log::error!("modprobe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sys = LinuxSys;
    let mut loader = Loader::new(&index, &sys);
    let mut ok = true;
    for name in &parsed.names {
        match loader.request(name) {
            Ok(()) => log::info!("modprobe: {name}: ok"),
            Err(e) => {
                ok = false;
                if !parsed.quiet || !matches!(e, super::KmodError::NotFound { .. }) {
                    log::warn!("modprobe: {name}: {e}");
                }
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn kernel_request_module_argv() {
        let a = parse_args(&s(&["-q", "--", "crypto-crc32c"]));
        assert_eq!(a.names, vec!["crypto-crc32c"]);
        assert!(a.quiet);
        let b = parse_args(&s(&["-a", "ext4", "vfat"]));
        assert_eq!(b.names, vec!["ext4", "vfat"]);
        let c = parse_args(&s(&["loop", "max_loop=8"]));
        assert_eq!(c.names, vec!["loop"]);
    }

    #[test]
    fn argv0_detection() {
        assert!(is_modprobe("/sbin/modprobe"));
        assert!(is_modprobe("modprobe"));
        assert!(!is_modprobe("/init"));
        assert!(!is_modprobe("/sbin/modprobe/x"));
    }
}
