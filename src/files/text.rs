//! A TOML file's text and name, and how its errors get their place and field.

use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::error::{closest, FileError, FileErrorKind};
use super::line_col;

/// A TOML file being read: its name for errors, its text, and how its fields' types are described.
#[derive(Debug, Clone, Copy)]
pub struct TomlText<'a> {
    path: &'a Path,
    text: &'a str,
    types: &'a [(&'a str, &'a str)],
}

impl<'a> TomlText<'a> {
    /// The text of the file at `path` (`path` only names it in errors).
    pub fn new(path: &'a Path, text: &'a str) -> TomlText<'a> {
        TomlText { path, text, types: &[] }
    }

    /// The same, describing the type of some fields in words when a value has the wrong type: pairs of
    /// a field path with `[]` for any index (`at[].ms`) and what it takes (`an integer number of
    /// milliseconds`). Other fields are described from the Rust type (`an integer`).
    pub fn with_types(self, types: &'a [(&'a str, &'a str)]) -> TomlText<'a> {
        TomlText { types, ..self }
    }

    /// The file's name.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The file's text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// Reads the text as `T`. A key `T` does not have, a missing key and a value of the wrong type are
    /// reported with the field's path; an unknown key with the closest known one.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, FileError> {
        toml::from_str(self.text).map_err(|e| self.toml_error(&e))
    }

    /// An error at byte range `span` of the text (or the whole file), naming `field` (none if empty).
    pub fn error(&self, span: Option<Range<usize>>, field: &str, kind: FileErrorKind) -> FileError {
        let mut e = FileError::new(Some(self.path), kind);
        if let Some(s) = span {
            let (l, c) = line_col(self.text, s.start);
            e = e.at(l, c);
        }
        if !field.is_empty() {
            e = e.with_field(field);
        }
        e
    }

    /// An error at the value `v`, naming `field`.
    pub fn at<T>(&self, v: &Spanned<T>, field: &str, kind: FileErrorKind) -> FileError {
        self.error(Some(v.span()), field, kind)
    }

    /// An error at 1-based character `column` inside the string value `v` (a token of a rule written
    /// in a string), naming `field`. Where the string is written with escapes the error is at its
    /// start.
    pub fn in_string(&self, v: &Spanned<String>, column: usize, field: &str, kind: FileErrorKind) -> FileError {
        let span = v.span();
        let raw = self.text.get(span.clone()).unwrap_or("");
        let value = v.get_ref();
        // A literal or basic string on one line, with no escapes, holds the value byte for byte.
        let plain = (raw.starts_with('"') || raw.starts_with('\''))
            && raw.get(1..raw.len().saturating_sub(1)) == Some(value.as_str());
        let inner = value.char_indices().nth(column.saturating_sub(1)).map_or(value.len(), |(b, _)| b);
        let at = if plain { span.start + 1 + inner } else { span.start };
        self.error(Some(at..at), field, kind)
    }

    fn toml_error(&self, e: &toml::de::Error) -> FileError {
        let message = e.message().trim();
        let span = e.span();
        let tree = toml::from_str::<Spanned<Node>>(self.text).ok();
        let locate = |tables_only: bool, skip: Option<&str>| -> String {
            match (&tree, &span) {
                (Some(t), Some(s)) => path_at(t, s, tables_only, skip),
                _ => String::new(),
            }
        };
        let join = |table: String, key: &str| if table.is_empty() { key.to_string() } else { format!("{table}.{key}") };
        let (field, kind) = if let Some(rest) = message.strip_prefix("unknown field `") {
            let key = rest.split('`').next().unwrap_or("");
            // serde lists the known fields after "expected", each in backticks.
            let known = rest.split_once("expected").map_or("", |(_, k)| k);
            let suggestion = closest(key, known.split('`').skip(1).step_by(2)).map(str::to_string);
            (join(locate(true, Some(key)), key), FileErrorKind::UnknownKey { suggestion })
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let key = rest.split('`').next().unwrap_or("");
            (join(locate(true, None), key), FileErrorKind::MissingKey)
        } else if let Some(rest) = message.strip_prefix("invalid type: ") {
            let field = locate(false, None);
            let (found, expected) = rest.rsplit_once(", expected ").unwrap_or((rest, ""));
            let expected = match self.types.iter().find(|(f, _)| *f == without_indices(&field)) {
                Some((_, words)) => words.to_string(),
                None => type_in_words(expected),
            };
            (field, FileErrorKind::WrongType { expected, found: found_in_words(found) })
        } else {
            (locate(false, None), FileErrorKind::Syntax(message.to_string()))
        };
        self.error(span, &field, kind)
    }
}

/// `at[2].share` without its indices: `at[].share`.
fn without_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            c if !in_index => out.push(c),
            _ => {}
        }
    }
    out
}

/// serde's name of an expected type in words: `i64` is `an integer`.
fn type_in_words(expected: &str) -> String {
    let words = match expected {
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "isize" | "usize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" => "an array",
        "a map" => "a table",
        e if e.starts_with("struct ") => "a table",
        e => e,
    };
    words.to_string()
}

/// serde's description of a value in words: ``integer `5` `` is `an integer 5`.
fn found_in_words(found: &str) -> String {
    let inner = |s: &str| s.trim_matches('`').to_string();
    if let Some(s) = found.strip_prefix("string ") {
        format!("a string {s}")
    } else if let Some(s) = found.strip_prefix("integer ") {
        format!("an integer {}", inner(s))
    } else if let Some(s) = found.strip_prefix("floating point ") {
        format!("a number {}", inner(s))
    } else if let Some(s) = found.strip_prefix("boolean ") {
        format!("a boolean {}", inner(s))
    } else {
        match found {
            "sequence" => "an array".to_string(),
            "map" => "a table".to_string(),
            other => other.to_string(),
        }
    }
}

/// A TOML value in words, for type errors found after reading (`an integer 0`).
pub fn value_in_words(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("a string {s:?}"),
        toml::Value::Integer(i) => format!("an integer {i}"),
        toml::Value::Float(x) => format!("a number {x}"),
        toml::Value::Boolean(b) => format!("a boolean {b}"),
        toml::Value::Datetime(d) => format!("a date-time {d}"),
        toml::Value::Array(_) => "an array".to_string(),
        toml::Value::Table(_) => "a table".to_string(),
    }
}

/// The shape of a TOML document with the span of every value, to name the field at an error's place.
#[derive(Debug)]
enum Node {
    Table(Vec<(String, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Value,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Value)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Value)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Value)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Value)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Node, E> {
        Ok(Node::Value)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            // The TOML reader hands a date-time over as a one-key table.
            if key.starts_with("$__toml_private") {
                map.next_value::<de::IgnoredAny>()?;
                return Ok(Node::Value);
            }
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Table(entries))
    }
}

/// The path of the deepest value (or, with `tables_only`, table) whose span holds `span`. `skip` is an
/// unknown key: its own header table (`[key]`, which holds the key) is not descended into.
fn path_at(root: &Spanned<Node>, span: &Range<usize>, tables_only: bool, skip: Option<&str>) -> String {
    let holds = |n: &Spanned<Node>| n.span().start <= span.start && span.end <= n.span().end;
    let mut path = String::new();
    let mut node = root;
    loop {
        let next = match node.get_ref() {
            Node::Table(entries) => entries
                .iter()
                .filter(|(k, v)| holds(v) && !(skip == Some(k.as_str()) && v.span().start + 2 >= span.start))
                .map(|(k, v)| (format!("{}{k}", if path.is_empty() { "" } else { "." }), v))
                .next(),
            Node::Array(items) => items.iter().enumerate().find(|(_, v)| holds(v)).map(|(i, v)| (format!("[{i}]"), v)),
            Node::Value => None,
        };
        match next {
            Some((_, v)) if tables_only && matches!(v.get_ref(), Node::Value) => break,
            Some((seg, v)) => {
                path.push_str(&seg);
                node = v;
            }
            None => break,
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct File {
        redundancy: Spanned<Redundancy>,
        #[serde(default)]
        at: Vec<Spanned<Step>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Redundancy {
        primary_server: String,
        backup_destination: Option<bool>,
        sip_keep_alive_interval: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Step {
        t: String,
        ms: Option<Vec<i64>>,
    }

    const TYPES: &[(&str, &str)] = &[("redundancy.sip_keep_alive_interval", "an integer number of seconds")];

    fn err(text: &str) -> String {
        TomlText::new(Path::new("phone.toml"), text).with_types(TYPES).deserialize::<File>().unwrap_err().to_string()
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_eq!(
            err("[redundancy]\nprimary_server = \"a\"\nsip_keep_alive_interval = \"x\"\n"),
            "phone.toml:3:27: redundancy.sip_keep_alive_interval: expected an integer number of seconds, \
             found a string \"x\""
        );
        assert_eq!(
            err("[redundancy]\nprimary_server = 5\n"),
            "phone.toml:2:18: redundancy.primary_server: expected a string, found an integer 5"
        );
        assert_eq!(
            err("[redundancy]\nprimary_server = \"a\"\n[[at]]\nt = \"1s\"\n[[at]]\nt = \"2s\"\nms = [1, true]\n"),
            "phone.toml:7:10: at[1].ms[1]: expected an integer, found a boolean true"
        );
        assert_eq!(err("redundancy = 5\n"), "phone.toml:1:14: redundancy: expected a table, found an integer 5");
    }

    #[test]
    fn unknown_and_missing_keys_name_the_field() {
        assert_eq!(
            err("[redundancy]\nprimary_server = \"a\"\nbakup_destination = true\n"),
            "phone.toml:3:1: redundancy.bakup_destination: unknown key; did you mean `backup_destination`?"
        );
        assert_eq!(err("[redundancy]\nprimary_server = \"a\"\n[bogus]\nx = 1\n"), "phone.toml:3:2: bogus: unknown key");
        assert_eq!(
            err("[redundancy]\nprimary_server = \"a\"\n[[at]]\nt = \"1s\"\n[[at]]\nms = [1]\n"),
            "phone.toml:5:1: at[1].t: missing, and it is required"
        );
        assert_eq!(err("# nothing\n"), "phone.toml:1:1: redundancy: missing, and it is required");
    }

    #[test]
    fn syntax_errors_have_a_place() {
        let e = err("[redundancy\n");
        assert!(e.starts_with("phone.toml:1:"), "{e}");
    }

    #[test]
    fn a_place_inside_a_string() {
        let text = "w = \"Sat 25:00-22:00\"\ne = \"Sat\\t25:00\"\n";
        #[derive(Deserialize)]
        struct W {
            w: Spanned<String>,
            e: Spanned<String>,
        }
        let t = TomlText::new(Path::new("x.toml"), text);
        let w: W = t.deserialize().unwrap();
        assert_eq!(t.in_string(&w.w, 5, "w", FileErrorKind::Empty).column, Some(10));
        // Escapes: the string's start.
        assert_eq!(t.in_string(&w.e, 5, "e", FileErrorKind::Empty).column, Some(5));
    }

    #[test]
    fn indices_are_dropped_for_type_descriptions() {
        assert_eq!(without_indices("at[12].ms[0]"), "at[].ms[]");
        assert_eq!(without_indices("redundancy.primary_port"), "redundancy.primary_port");
    }
}
