//! Wiring only: the binary is the CLI, and (later) PID 1 of the rescue image.
fn main() -> std::process::ExitCode {
    rescue_init::cli::main()
}
