//! The `sip-failover` command line; all of it lives in the library's `cli` folder.

fn main() -> std::process::ExitCode {
    sip_failover::cli::main()
}
