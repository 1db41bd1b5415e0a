//! What the real-time benchmarks share.

/// Whether the real-time benchmark `name` should run: only under `cargo bench` (which passes
/// `--bench`; `cargo test --benches` does not, and then it says how to run it), and only when a
/// filter given on the command line names it.
pub fn should_run(name: &str) -> bool {
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name}: a real-time benchmark, run it with `cargo bench --bench {name}`");
        return false;
    }
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str()))
}
