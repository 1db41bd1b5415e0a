//! The `sip-failover` command line.

fn main() {
    eprintln!("sip-failover: no command yet");
    std::process::exit(2);
}
