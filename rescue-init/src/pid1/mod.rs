//! PID 1 of the rescue image: a tiny supervisor. It mounts the pseudo file systems, makes
//! the console its stdio, installs a panic hook, runs the real work in a child process
//! (`/proc/self/exe` with the `worker` argument), reaps every child, enforces a timeout,
//! reports the outcome and then reboots, powers off or holds. It never exits: if PID 1
//! exits or panics the kernel panics.
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions, WaitStatus};

use crate::logger;
use crate::sys::{LinuxSys, MountOpts, PowerAction, Sys};

pub mod cmdline;
pub mod worker;

pub use cmdline::{After, BootArgs};
pub use worker::{run_worker, HookError, RecoverHook, WorkerConfig};

/// Environment variable through which PID 1 tells the worker where to leave its status.
pub const STATUS_ENV: &str = "RESCUE_INIT_WORKER_STATUS";
/// Environment variable carrying PID 1's start time (monotonic nanoseconds).
pub const T0_ENV: &str = "RESCUE_INIT_T0_NS";
const STATUS_FILE: &str = "/run/rescue-init/worker-status";
/// Marker lines on the console, matched by the VM tests.
pub const RESULT_OK: &str = "RESCUE RESULT: OK";
pub const RESULT_FAIL: &str = "RESCUE RESULT: FAIL";

static TEST_EXIT: AtomicBool = AtomicBool::new(false);

/// True when this process is PID 1.
pub fn is_pid1() -> bool {
    rustix::process::getpid().is_init()
}

/// How the worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerEnd {
    Exited(i32),
    Signaled(i32),
    TimedOut(Duration),
    SpawnFailed(String),
}

/// The final verdict: success, or failure with a one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub message: String,
}

/// Turn the worker's end (and the status line it left) into a verdict.
pub fn verdict(end: &WorkerEnd, status_line: Option<&str>) -> Verdict {
    let line = status_line.map(str::trim).filter(|s| !s.is_empty());
    match end {
        WorkerEnd::Exited(0) => Verdict {
            ok: true,
            message: line.unwrap_or("worker finished").to_owned(),
        },
        WorkerEnd::Exited(c) => Verdict {
            ok: false,
            message: line.map_or_else(|| format!("worker exited with status {c}"), str::to_owned),
        },
        WorkerEnd::Signaled(s) => Verdict {
            ok: false,
            message: match line {
                Some(l) => format!("worker killed by signal {s} ({l})"),
                None => format!("worker killed by signal {s} (crash)"),
            },
        },
        WorkerEnd::TimedOut(t) => Verdict {
            ok: false,
            message: format!("worker timed out after {} s and was killed", t.as_secs()),
        },
        WorkerEnd::SpawnFailed(e) => Verdict {
            ok: false,
            message: format!("cannot start the worker: {e}"),
        },
    }
}

/// What PID 1 does at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Power(PowerAction),
    Hold,
    Shell,
}

/// Decide the final action. Default: reboot on success, hold on failure. A reboot after a
/// failure is turned into a hold: the machine would boot the rescue medium (or the broken
/// host) again and loop. Power-off stays allowed (it cannot loop).
pub fn decide(after: Option<After>, ok: bool) -> Final {
    match (after, ok) {
        (None, true) | (Some(After::Reboot), true) => Final::Power(PowerAction::Reboot),
        (None, false) | (Some(After::Reboot), false) | (Some(After::Hold), _) => Final::Hold,
        (Some(After::Poweroff), _) => Final::Power(PowerAction::PowerOff),
        (Some(After::Shell), _) => Final::Shell,
    }
}

fn mount_pseudo(sys: &dyn Sys) -> Vec<String> {
    let mut errors = Vec::new();
    let table: [(&str, &str, &str, MountOpts, &str); 5] = [
        ("proc", "/proc", "proc", MountOpts::PSEUDO, ""),
        ("sysfs", "/sys", "sysfs", MountOpts::PSEUDO, ""),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MountOpts {
                nosuid: true,
                ..MountOpts::RW
            },
            "mode=0755",
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MountOpts {
                nosuid: true,
                nodev: true,
                ..MountOpts::RW
            },
            "mode=0755",
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MountOpts {
                nosuid: true,
                nodev: true,
                ..MountOpts::RW
            },
            "mode=1777",
        ),
    ];
    for (src, target, fstype, opts, data) in table {
        let t = Path::new(target);
        if let Err(e) = sys.mkdir_all(t) {
            errors.push(e.to_string());
        }
        match sys.mount(src, t, fstype, opts, data) {
            // EBUSY: already mounted (e.g. by a kernel that mounts devtmpfs itself).
            Err(e) if e.raw_os_error() == Some(16) => {}
            Err(e) => errors.push(crate::pid1::worker::error_chain(&e)),
            Ok(()) => {}
        }
    }
    errors
}

/// Make /dev/console fds 0, 1 and 2.
fn console_stdio() -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")?;
    rustix::stdio::dup2_stdin(&f)?;
    rustix::stdio::dup2_stdout(&f)?;
    rustix::stdio::dup2_stderr(&f)?;
    Ok(())
}

/// Tell QEMU's isa-debug-exit device (iobase 0xf4) the result: QEMU exits with 1 for OK and
/// 3 for FAIL. Only when `rescue.test_exit=1`; on real hardware port 0xf4 must not be touched.
fn test_exit(ok: bool) {
    if !TEST_EXIT.load(Ordering::SeqCst) {
        return;
    }
    use std::os::unix::fs::FileExt;
    // QEMU exits the instant the port is written; give the serial console a moment to carry
    // the result line out first.
    std::thread::sleep(Duration::from_millis(200));
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/port")
        .and_then(|f| f.write_at(&[u8::from(!ok)], 0xf4));
    if let Err(e) = res {
        log::warn!("pid1: test exit through /dev/port: {e}");
    }
}

/// Sleep forever, reaping whatever dies. The only way out is a power cut.
fn hold(message: &str) -> ! {
    log::error!("pid1: holding; the machine stays up so the message can be read: {message}");
    loop {
        reap_any();
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Reap every zombie there is, without blocking.
fn reap_any() {
    while let Ok(Some(_)) = rustix::process::wait(WaitOptions::NOHANG) {}
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!("pid1: panic: {info}");
        LinuxSys.sync();
        test_exit(false);
        // Never return: with panic=abort, returning would abort PID 1 and panic the kernel.
        hold("PID 1 panicked (a bug in rescue-init)");
    }));
}

fn read_status(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Run `cmd` and wait for it (and, with `reap_all`, for any other child: PID 1 adopts
/// orphans). The child is killed with its process group after `timeout`.
pub fn supervise(mut cmd: Command, timeout: Duration, reap_all: bool, sys: &dyn Sys) -> WorkerEnd {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return WorkerEnd::SpawnFailed(e.to_string()),
    };
    let Some(pid) = Pid::from_raw(i32::try_from(child.id()).unwrap_or(-1)) else {
        return WorkerEnd::SpawnFailed("invalid pid".to_owned());
    };
    log::info!(
        "pid1: worker started (pid {}) at {:.3} s",
        child.id(),
        sys.uptime().as_secs_f64()
    );
    let deadline = sys.uptime() + timeout;
    let mut killed = false;
    loop {
        let res = if reap_all {
            rustix::process::wait(WaitOptions::NOHANG)
        } else {
            rustix::process::waitpid(Some(pid), WaitOptions::NOHANG)
        };
        match res {
            Ok(Some((p, status))) if p == pid => {
                if killed {
                    return WorkerEnd::TimedOut(timeout);
                }
                return end_of(status);
            }
            Ok(Some(_)) => continue, // an orphan reaped
            Ok(None) => {}
            Err(e) => return WorkerEnd::SpawnFailed(format!("wait: {e}")),
        }
        if !killed && sys.uptime() >= deadline {
            log::error!(
                "pid1: worker timed out after {} s, killing it",
                timeout.as_secs()
            );
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn end_of(status: WaitStatus) -> WorkerEnd {
    if let Some(c) = status.exit_status() {
        WorkerEnd::Exited(c)
    } else if let Some(s) = status.terminating_signal() {
        WorkerEnd::Signaled(s)
    } else {
        WorkerEnd::Exited(-1)
    }
}

/// PID 1's whole life. Never returns.
pub fn run() -> ! {
    let sys = LinuxSys;
    let t0 = sys.uptime();
    let mount_errors = mount_pseudo(&sys);
    let console = console_stdio();
    logger::init(logger::Target::Kernel, false);
    install_panic_hook();
    log::info!(
        "pid1: rescue-init {} started at {:.3} s",
        env!("CARGO_PKG_VERSION"),
        t0.as_secs_f64()
    );
    for e in &mount_errors {
        log::error!("pid1: {e}");
    }
    if let Err(e) = console {
        log::warn!("pid1: /dev/console as stdio: {e}");
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let args = match cmdline::parse(&cmdline) {
        Ok(a) => a,
        Err(e) => {
            let v = Verdict {
                ok: false,
                message: format!("bad kernel command line: {e}"),
            };
            finish(&sys, None, &v)
        }
    };
    TEST_EXIT.store(args.test_exit, Ordering::SeqCst);

    let status_path = PathBuf::from(STATUS_FILE);
    if let Some(dir) = status_path.parent() {
        if let Err(e) = sys.mkdir_all(dir) {
            log::warn!("pid1: {e}");
        }
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("worker")
        .env(STATUS_ENV, &status_path)
        .env(T0_ENV, t0.as_nanos().to_string());
    let end = supervise(cmd, args.timeout, true, &sys);
    let v = verdict(&end, read_status(&status_path).as_deref());
    finish(&sys, args.after, &v)
}

fn finish(sys: &dyn Sys, after: Option<After>, v: &Verdict) -> ! {
    if v.ok {
        log::info!("{RESULT_OK}: {}", v.message);
    } else {
        log::error!("{RESULT_FAIL}: {}", v.message);
    }
    sys.sync();
    test_exit(v.ok);
    match decide(after, v.ok) {
        Final::Power(action) => {
            log::info!("pid1: {action:?} now");
            if let Err(e) = sys.reboot(action) {
                log::error!("pid1: {e}");
            }
            hold(&v.message)
        }
        Final::Shell => {
            let sh = Path::new("/bin/sh");
            if sh.exists() {
                match Command::new(sh).status() {
                    Ok(s) => log::info!("pid1: shell ended: {s}"),
                    Err(e) => log::error!("pid1: shell: {e}"),
                }
            } else {
                log::error!("pid1: rescue.after=shell, but the image has no /bin/sh");
            }
            hold(&v.message)
        }
        Final::Hold => hold(&v.message),
    }
}

/// Entry point of the `worker` process. `recover` is the recovery run on the host root.
pub fn worker_main(recover: Option<&dyn RecoverHook>) -> ExitCode {
    logger::init(logger::Target::Kernel, false);
    let status_path = std::env::var_os(STATUS_ENV).map(PathBuf::from);
    let write_status = |line: &str| {
        if let Some(p) = &status_path {
            if let Err(e) = std::fs::write(p, line) {
                log::warn!("worker: status file {}: {e}", p.display());
            }
        }
    };
    let hook_path = status_path.clone();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("worker: panic: {info}");
        if let Some(p) = &hook_path {
            let _ = std::fs::write(p, format!("worker panicked: {info}"));
        }
    }));
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    // The full `rescue.*` parser first: an unknown or bad key stops here, on the console,
    // before any disk is touched.
    if let Err(e) = crate::config::Config::from_cmdline(&cmdline) {
        write_status(&format!(
            "bad kernel command line: {}",
            worker::error_chain(&e)
        ));
        return ExitCode::FAILURE;
    }
    let args = match cmdline::parse(&cmdline) {
        Ok(a) => a,
        Err(e) => {
            write_status(&format!("bad kernel command line: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let kernel = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let mut cfg = WorkerConfig::for_image(args, kernel, cmdline.trim().to_owned());
    cfg.init_start = std::env::var(T0_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_nanos);
    match run_worker(&cfg, &LinuxSys, recover) {
        Ok(s) => {
            let host_path = s
                .report_path
                .strip_prefix(&cfg.mountpoint)
                .map(|p| Path::new("/").join(p))
                .unwrap_or(s.report_path.clone());
            write_status(&format!(
                "host root {}, report {}",
                s.root_device,
                host_path.display()
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            let chain = worker::error_chain(&e);
            log::error!("worker: {chain}");
            write_status(&chain);
            ExitCode::FAILURE
        }
    }
}

/// Whether this process was started by PID 1 as its worker (`worker` argument plus the
/// status variable, so that a stray `rescue-init worker` on a normal host is not one).
pub fn is_worker_invocation(args: &[String]) -> bool {
    args.get(1).map(String::as_str) == Some("worker") && std::env::var_os(STATUS_ENV).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::FakeSys;

    #[test]
    fn final_action_never_reboots_after_a_failure() {
        use PowerAction::*;
        assert_eq!(decide(None, true), Final::Power(Reboot));
        assert_eq!(decide(None, false), Final::Hold);
        assert_eq!(decide(Some(After::Reboot), false), Final::Hold);
        assert_eq!(decide(Some(After::Poweroff), false), Final::Power(PowerOff));
        assert_eq!(decide(Some(After::Hold), true), Final::Hold);
        assert_eq!(decide(Some(After::Shell), false), Final::Shell);
    }

    #[test]
    fn verdicts() {
        assert!(verdict(&WorkerEnd::Exited(0), Some("host root vda\n")).ok);
        let v = verdict(&WorkerEnd::Exited(1), Some("no host disk: …"));
        assert!(!v.ok && v.message == "no host disk: …");
        let v = verdict(&WorkerEnd::Signaled(11), None);
        assert!(!v.ok && v.message.contains("signal 11"));
        assert!(verdict(&WorkerEnd::TimedOut(Duration::from_secs(5)), None)
            .message
            .contains("timed out after 5 s"));
    }

    #[test]
    fn supervise_real_children_exit_crash_and_timeout() {
        let sys = LinuxSys;
        let ok = supervise(Command::new("true"), Duration::from_secs(10), false, &sys);
        assert_eq!(ok, WorkerEnd::Exited(0));
        let mut c = Command::new("sh");
        c.args(["-c", "exit 7"]);
        assert_eq!(
            supervise(c, Duration::from_secs(10), false, &sys),
            WorkerEnd::Exited(7)
        );
        let mut c = Command::new("sh");
        c.args(["-c", "kill -SEGV $$"]);
        assert_eq!(
            supervise(c, Duration::from_secs(10), false, &sys),
            WorkerEnd::Signaled(11)
        );
        let mut c = Command::new("sh");
        c.args(["-c", "sleep 30 & sleep 30"]);
        let t = std::time::Instant::now();
        let end = supervise(c, Duration::from_millis(200), false, &sys);
        assert_eq!(end, WorkerEnd::TimedOut(Duration::from_millis(200)));
        assert!(t.elapsed() < Duration::from_secs(5));
        let missing = supervise(
            Command::new("/nonexistent/worker"),
            Duration::from_secs(1),
            false,
            &sys,
        );
        assert!(matches!(missing, WorkerEnd::SpawnFailed(_)));
    }

    #[test]
    fn pseudo_mounts_in_order() {
        let sys = FakeSys::new();
        assert!(mount_pseudo(&sys).is_empty());
        let targets: Vec<PathBuf> = sys
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                crate::sys::fake::Call::Mount { target, .. } => Some(target),
                _ => None,
            })
            .collect();
        let want: Vec<PathBuf> = ["/proc", "/sys", "/dev", "/run", "/tmp"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(targets, want);
    }
}
