//! Test files behind a feature show up as skipped. Cargo builds a `[[test]]` with `required-features`
//! only when those features are on, and says nothing otherwise; this always-built test reads the list
//! from Cargo.toml (so it cannot go stale) and prints one `SKIPPED` line for each gated file this build
//! leaves out, with the command that runs it. It fails if a listed file does not exist, if Cargo.toml
//! has a feature this test does not know how to look up, or if a test file hides itself behind a
//! crate-level `#![cfg(feature = ...)]`, which cargo would run as zero tests without a word.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Whether each feature of the package is on in this build. Cargo passes the package's features to
/// its integration tests as `cfg`s, but only literal names can be asked for, so the list is spelled out
/// here and checked against Cargo.toml's `[features]` below.
const FEATURES: &[(&str, bool)] = &[
    ("default", cfg!(feature = "default")),
    ("std", cfg!(feature = "std")),
    ("ffi", cfg!(feature = "ffi")),
    ("indicator", cfg!(feature = "indicator")),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One `[[test]]` entry of Cargo.toml.
#[derive(Debug, Default)]
struct TestTarget {
    name: String,
    path: Option<String>,
    required: Vec<String>,
}

/// The value of a `key = "value"` line.
fn string_value(line: &str) -> Option<String> {
    let v = line.split_once('=')?.1.trim();
    Some(v.strip_prefix('"')?.strip_suffix('"')?.to_string())
}

/// The strings of a one-line `key = ["a", "b"]`.
fn list_value(line: &str) -> Vec<String> {
    let v = line.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
    let inner = v.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or_else(|| {
        panic!("tests/feature_gated.rs reads only one-line lists in Cargo.toml; found: {line}");
    });
    inner.split(',').map(|s| s.trim().trim_matches('"').to_string()).filter(|s| !s.is_empty()).collect()
}

/// The `[[test]]` entries and the names in `[features]` of a Cargo.toml.
fn parse_manifest(text: &str) -> (Vec<TestTarget>, Vec<String>) {
    let mut tests = Vec::new();
    let mut features = Vec::new();
    let mut section = String::new();
    for raw in text.lines() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            section = line.to_string();
            if section == "[[test]]" {
                tests.push(TestTarget::default());
            }
            continue;
        }
        let Some((key, _)) = line.split_once('=') else { continue };
        let key = key.trim();
        match section.as_str() {
            "[[test]]" => {
                let t = tests.last_mut().unwrap();
                match key {
                    "name" => t.name = string_value(line).expect("a quoted test name"),
                    "path" => t.path = string_value(line),
                    "required-features" => t.required = list_value(line),
                    _ => {}
                }
            }
            "[features]" => features.push(key.to_string()),
            _ => {}
        }
    }
    (tests, features)
}

fn enabled(feature: &str) -> bool {
    FEATURES
        .iter()
        .find(|(name, _)| *name == feature)
        .unwrap_or_else(|| panic!("feature `{feature}` is not in tests/feature_gated.rs's FEATURES table; add it"))
        .1
}

/// The script under scripts/ that runs `cargo test ... --test <name>`, if one does.
fn script_running(name: &str) -> Option<String> {
    let mut scripts: Vec<PathBuf> =
        std::fs::read_dir(root().join("scripts")).ok()?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    scripts.sort();
    scripts.into_iter().find_map(|p| {
        let text = std::fs::read_to_string(&p).ok()?;
        let runs = text.lines().any(|l| l.contains("cargo test") && l.contains(&format!("--test {name}")));
        let file = p.file_name()?.to_string_lossy().into_owned();
        runs.then(|| format!("scripts/{file}"))
    })
}

#[test]
fn feature_gated_test_files_show_as_skipped() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let (tests, features) = parse_manifest(&manifest);
    for f in &features {
        enabled(f);
    }
    let gated: Vec<&TestTarget> = tests.iter().filter(|t| !t.required.is_empty()).collect();
    assert!(!gated.is_empty(), "Cargo.toml lists no [[test]] with required-features; was it reorganised?");
    let mut out = std::io::stderr().lock();
    for t in gated {
        let path = t.path.clone().unwrap_or_else(|| format!("tests/{}.rs", t.name));
        assert!(root().join(&path).is_file(), "Cargo.toml's [[test]] `{}` names {path}, which does not exist", t.name);
        for f in &t.required {
            assert!(
                features.contains(f),
                "[[test]] `{}` requires `{f}`, which is not a feature of the package",
                t.name
            );
        }
        let missing: Vec<&str> = t.required.iter().map(String::as_str).filter(|f| !enabled(f)).collect();
        if missing.is_empty() {
            continue;
        }
        let how = match script_running(&t.name) {
            Some(script) => {
                format!("run {script}, or cargo test --features {} --test {}", t.required.join(","), t.name)
            }
            None => format!("cargo test --features {} --test {}", t.required.join(","), t.name),
        };
        // Past the harness's capture, so that a normal run shows it.
        let _ = writeln!(out, "SKIPPED {path}: needs --features {} ({how})", missing.join(","));
    }
}

#[test]
fn no_test_file_hides_behind_a_crate_level_cfg() {
    let dir = root().join("tests");
    let mut hidden = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "rs") && file_level_feature_cfg(&p) {
            hidden.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        hidden.is_empty(),
        "these test files compile to zero tests without a feature and nothing says so: {hidden:?}; \
         give them a [[test]] entry with required-features in Cargo.toml instead"
    );
}

fn file_level_feature_cfg(p: &Path) -> bool {
    std::fs::read_to_string(p).unwrap().lines().any(|l| l.trim_start().starts_with("#![cfg(") && l.contains("feature"))
}

#[test]
fn the_manifest_reader_reads_test_entries() {
    let text = "[features]\ndefault = [\"std\"]\nffi = [] # C\n\n[[test]]\nname = \"a\"\npath = \"tests/a.rs\"\n\
                required-features = [\"ffi\", \"std\"]\n\n[[test]]\nname = \"b\"\n\n[[bench]]\nname = \"c\"\n";
    let (tests, features) = parse_manifest(text);
    assert_eq!(features, ["default", "ffi"]);
    assert_eq!(tests.len(), 2);
    assert_eq!((tests[0].name.as_str(), tests[0].path.as_deref()), ("a", Some("tests/a.rs")));
    assert_eq!(tests[0].required, ["ffi", "std"]);
    assert_eq!((tests[1].name.as_str(), tests[1].path.as_deref()), ("b", None));
    assert!(tests[1].required.is_empty());
}
