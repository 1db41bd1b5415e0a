//! The C interface: the committed header is what cbindgen makes of `src/ffi.rs`, and the C example
//! (`examples/c/failover.c`), compiled with gcc against the static library, runs a whole failover on a
//! fake clock.
//!
//! Without gcc the C test is skipped with a message, unless `REQUIRE_PEERS=1` is set, in which case it
//! fails. `UPDATE_HEADER=1` rewrites `include/sip_failover.h` instead of comparing it. Built with
//! `--features ffi` only (`required-features` in Cargo.toml; `tests/feature_gated.rs` reports it as
//! skipped otherwise).

mod skip;

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn generate_header() -> String {
    let config = cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(root().join("src/ffi.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn header_is_current() {
    let path = root().join("include/sip_failover.h");
    let fresh = generate_header();
    if std::env::var_os("UPDATE_HEADER").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/sip_failover.h is stale: regenerate it with\n  UPDATE_HEADER=1 cargo test --features ffi --test c_interface header_is_current"
    );
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// Builds the crate as a static library with the C interface; returns the archive.
fn build_staticlib() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-interface");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root())
        .args(["rustc", "--lib", "--features", "ffi", "--crate-type", "staticlib", "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the static library failed");
    let lib = target_dir.join("debug/libsip_failover.a");
    assert!(lib.exists(), "{} missing", lib.display());
    lib
}

#[test]
fn c_example_runs_a_failover_through_the_c_interface() {
    if !skip::need(have("gcc"), "gcc", "install gcc to compile and run examples/c/failover.c") {
        return;
    }
    let lib = build_staticlib();
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-interface/failover");
    let out = Command::new("gcc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1", "-I"])
        .arg(root().join("include"))
        .arg(root().join("examples/c/failover.c"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(&exe)
        .output()
        .expect("gcc runs");
    assert!(out.status.success(), "gcc failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let run = Command::new(&exe).output().expect("the C example runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "the C example failed ({}):\n{stdout}\n{stderr}", run.status);

    let lines: Vec<&str> = stdout.lines().collect();
    let has = |l: &str| lines.contains(&l);
    // The primary never answers: attempts at 0, 800 and 1200 ms, failed at 1600 ms. The backup answers
    // every probe, so the switch comes at exactly 1600 ms, generation 1, and is acknowledged.
    for want in [
        "t=0 probe primary attempt=1",
        "t=0 probe backup attempt=1",
        "t=800 probe primary attempt=2",
        "t=1200 probe primary attempt=3",
        "t=1600 server_down primary reason=timeout",
        "t=1600 switch primary->backup reason=failover generation=1",
        "t=1600 applied backup generation=1",
        "state active=backup generation=1 pending=0",
        "resumed active=backup generation=1",
        "bad-arguments ok",
        "OK failover at 1600 ms",
    ] {
        assert!(has(want), "missing line {want:?} in the C example's output:\n{stdout}");
    }
    assert!(
        lines.contains(&"t=20 reply backup attempt=1 status=200 rtt_us=20000"),
        "no reply from the backup:\n{stdout}"
    );
    // Nothing switches before 1600 ms, and only once.
    assert_eq!(lines.iter().filter(|l| l.contains(" switch ")).count(), 1, "{stdout}");
}
