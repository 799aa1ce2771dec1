//! Command-line interface: parses arguments and dispatches to the library.
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "rescue-init",
    version,
    about = "Restore a Kubernetes control plane from an etcd backup"
)]
struct Cli {}

/// Entry point of the `rescue-init` binary.
pub fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
