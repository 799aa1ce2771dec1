//! Wiring only: PID 1 of the rescue image, its worker, the kernel's modprobe helper, or the CLI.
use std::process::ExitCode;

use rescue_init::{kmod, pid1, recover};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if pid1::is_pid1() {
        pid1::run();
    }
    if args.first().is_some_and(|a| kmod::modprobe::is_modprobe(a)) {
        return kmod::modprobe::main(&args[1..]);
    }
    if pid1::is_worker_invocation(&args) {
        return pid1::worker_main(Some(&recover::boot_hook));
    }
    rescue_init::cli::main()
}
