//! The crate's folders import downward only: each top-level module of `src/` may use the ones listed
//! before it in [`LAYERS`] and none after it, so no two folders import each other (ARCHITECTURE.md
//! draws the same order).
//!
//! The check reads the sources: every `crate::<module>` path (also inside `use crate::{..}` groups)
//! and every `super::` chain that climbs out of its own top-level module, outside comments and string
//! literals.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The top-level modules of `src/`, lowest first. A module may import those before it.
const LAYERS: &[&str] = &[
    // no_std, no alloc: the sans-IO agent.
    "core",
    // Beside the core, on the core only: the status LED and the C interface.
    "indicator",
    "ffi",
    // std helpers shared by everything that touches files.
    "files",
    // Calendars, notice feeds, the upgrade window, planning.
    "maintenance",
    // The phone's configuration file, validated into the core's configuration.
    "config",
    // The tokio driver and its adapters.
    "net",
    // The lab.
    "sim",
    // The command line.
    "cli",
];

/// One import that climbs, or names a module missing from [`LAYERS`].
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    file: String,
    line: usize,
    from: String,
    to: String,
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

/// The source with comments and the contents of string and char literals blanked out (newlines
/// kept, so line numbers stay true).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0usize, 0);
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if rest.starts_with(b"r\"") || rest.starts_with(b"r#") || rest.starts_with(b"br\"") {
            let start = if rest[0] == b'b' { 2 } else { 1 };
            let hashes = rest[start..].iter().take_while(|&&c| c == b'#').count();
            if rest.get(start + hashes) != Some(&b'"') {
                out.push(rest[0] as char);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            let body = start + hashes + 1;
            let end = rest[body..]
                .windows(close.len())
                .position(|w| w == close)
                .map_or(rest.len(), |p| body + p + close.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the literal is blanked.
            let len = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map_or(1, |p| p + 3)
            } else {
                let ch = std::str::from_utf8(&rest[1..]).ok().and_then(|s| s.chars().next()).map_or(1, char::len_utf8);
                if rest.get(1 + ch) == Some(&b'\'') {
                    ch + 2
                } else {
                    1
                }
            };
            blank(&mut out, &rest[..len]);
            i += len;
        } else {
            // Copy one whole character.
            let ch = std::str::from_utf8(rest).ok().and_then(|s| s.chars().next());
            match ch {
                Some(c) => {
                    out.push(c);
                    i += c.len_utf8();
                }
                None => {
                    out.push(' ');
                    i += 1;
                }
            }
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    s.get(..end).unwrap_or("")
}

/// The first path segments of the items in a `{ .. }` group starting at `s` (just after the `{`).
fn group_heads(s: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut expect_head = true;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'{' => {
                depth += 1;
                expect_head = false;
            }
            b'}' if depth == 0 => break,
            b'}' => depth -= 1,
            b',' if depth == 0 => expect_head = true,
            c if expect_head && (c.is_ascii_alphabetic() || c == b'_') => {
                let id = ident_at(&s[i..]);
                if id != "self" {
                    heads.push(id);
                }
                expect_head = false;
                i += id.len();
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// The top-level modules `code` (the text of a file whose module path is `module_path`) refers to,
/// with their line numbers.
fn references(code: &str, module_path: &[String]) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    // Inline modules (`mod tests { .. }`) deepen the path `super` climbs from.
    let mut inline: Vec<usize> = Vec::new(); // brace depth at which each inline module opened
    let mut depth = 0usize;
    let mut line = 1;
    let mut i = 0;
    let bytes = code.as_bytes();
    let word_start = |at: usize| {
        at == 0
            || !(bytes[at - 1].is_ascii_alphanumeric()
                || bytes[at - 1] == b'_'
                || bytes[at - 1] == b':'
                || bytes[at - 1] == b'$')
    };
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        match bytes[i] {
            b'\n' => line += 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                }
            }
            _ => {}
        }
        if word_start(i) && rest.starts_with("mod ") {
            let after = rest[4..].trim_start();
            let name = ident_at(after);
            if !name.is_empty() && after[name.len()..].trim_start().starts_with('{') {
                inline.push(depth);
            }
        }
        if word_start(i) && rest.starts_with("crate::") {
            let after = &rest[7..];
            if let Some(group) = after.strip_prefix('{') {
                for h in group_heads(group) {
                    found.push((line, h.to_string()));
                }
            } else {
                found.push((line, ident_at(after).to_string()));
            }
        }
        if word_start(i) && rest.starts_with("super::") {
            let mut ups = 0;
            let mut at = i;
            while code[at..].starts_with("super::") {
                ups += 1;
                at += 7;
            }
            // The module this chain starts from: the file's, deepened by inline modules.
            let here = module_path.len() + inline.len();
            if ups >= here {
                // Climbs to the crate root: the next segment is a top-level module.
                let after = &code[at..];
                let heads = match after.strip_prefix('{') {
                    Some(group) => group_heads(group),
                    None => vec![ident_at(after)],
                };
                for h in heads {
                    found.push((line, h.to_string()));
                }
            }
            i = at;
            continue;
        }
        i += 1;
    }
    found
}

/// The module path of a file under `src/` (`src/net/driver.rs` is `net::driver`; `mod.rs` is its
/// folder), or `None` for the crate roots.
fn module_path(rel: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && (stem == "lib" || stem == "main") {
        return None;
    }
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every import under `root` that breaks the layer order.
fn violations(root: &Path) -> Vec<Violation> {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let mut out = Vec::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap_or(&file);
        let Some(path) = module_path(rel) else { continue };
        let Some(top) = path.first().cloned() else { continue };
        let src = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let code = code_only(&src);
        for (line, to) in references(&code, &path) {
            let ok = match (rank(&top), rank(&to)) {
                (Some(a), Some(b)) => b <= a,
                _ => false,
            };
            if !ok {
                out.push(Violation { file: rel.display().to_string(), line, from: top.clone(), to });
            }
        }
    }
    out.sort();
    out
}

fn report(v: &[Violation]) -> String {
    let mut s = format!("the layer order (lowest first) is {}\n", LAYERS.join(" < "));
    for x in v {
        let why = match (rank(&x.from), rank(&x.to)) {
            (None, _) => format!("`{}` is not in LAYERS", x.from),
            (_, None) => format!("`{}` is not in LAYERS", x.to),
            _ => format!("{} imports {}, which sits above it", x.from, x.to),
        };
        let _ = writeln!(s, "src/{}:{}: {why}", x.file, x.line);
    }
    s
}

#[test]
fn folders_import_downward_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let v = violations(&root);
    assert!(v.is_empty(), "{}", report(&v));
}

#[test]
fn every_top_level_module_has_a_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut tops = BTreeSet::new();
    for e in std::fs::read_dir(&root).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let name = name.strip_suffix(".rs").map(str::to_string).unwrap_or(name);
        if name != "lib" && name != "main" {
            tops.insert(name);
        }
    }
    let missing: Vec<_> = tops.iter().filter(|t| rank(t).is_none()).collect();
    assert!(missing.is_empty(), "add {missing:?} to LAYERS in tests/layering.rs and to ARCHITECTURE.md");
}

#[test]
fn the_scanner_sees_what_it_must() {
    let path = |p: &str| p.split("::").map(str::to_string).collect::<Vec<_>>();
    let refs = |src: &str, at: &str| references(&code_only(src), &path(at));
    // Plain paths, groups and nested groups.
    assert_eq!(refs("use crate::net::events;", "sim::timeline"), [(1, "net".to_string())]);
    assert_eq!(
        refs("use crate::{config::{self, X}, core::Y};", "net::dns"),
        [(1, "config".to_string()), (1, "core".to_string())]
    );
    // super:: climbing out of the folder, from a file and from an inline module.
    assert_eq!(refs("use super::super::config::X;", "net::driver"), [(1, "config".to_string())]);
    assert_eq!(refs("use super::events;", "net::driver"), []);
    assert_eq!(refs("mod tests {\n    use super::super::X;\n}", "net::driver"), []);
    assert_eq!(refs("mod tests {\n    use super::super::super::sim::X;\n}", "net::driver"), [(2, "sim".to_string())]);
    // Not code: comments, doc links and strings.
    assert_eq!(refs("//! [`x`](crate::sim::X)\n/* crate::net */ let s = \"crate::net\";", "core::agent"), []);
    assert_eq!(
        refs("let r = r#\"crate::net\"#; let c = '\"'; fn f<'a>(x: &'a str) { crate::files::f(x) }", "net::x"),
        [(1, "files".to_string())]
    );
    // A climbing import is reported; a downward one is not.
    let dir = std::env::temp_dir().join(format!("layering-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::create_dir_all(dir.join("net")).unwrap();
    std::fs::write(dir.join("config/mod.rs"), "use crate::net::control::Request;\n").unwrap();
    std::fs::write(dir.join("net/mod.rs"), "use crate::config::PhoneConfig;\n").unwrap();
    let v = violations(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(v, [Violation { file: "config/mod.rs".into(), line: 1, from: "config".into(), to: "net".into() }]);
}
