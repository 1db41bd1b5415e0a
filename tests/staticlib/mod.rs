//! The crate built as a static library with the C interface, for the tests that link C programs
//! against it (`c_interface`, `reference_phone`): one target directory, so one build serves both.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `libsip_failover.a` (debug, `--features ffi`); returns its path.
pub fn build_staticlib() -> PathBuf {
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-interface");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["rustc", "--lib", "--features", "ffi", "--crate-type", "staticlib", "--target-dir"])
        .arg(&target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the static library failed");
    let lib = target_dir.join("debug/libsip_failover.a");
    assert!(lib.exists(), "{} missing", lib.display());
    lib
}
