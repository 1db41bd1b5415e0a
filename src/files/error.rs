//! The one error for "this file is wrong here": configuration files, lab scenarios, notice feeds, and
//! the calendar rules written inside them.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A file that cannot be used, and where: the file, the line and column, the field, and what is wrong.
///
/// ```text
/// phone.toml:4:27: redundancy.sip_keep_alive_interval: expected an integer number of seconds, found a string "x"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileError {
    /// The file; `None` for values that came from no file (a notice list built in code).
    pub path: Option<PathBuf>,
    /// 1-based line, when the error has a place in the file.
    pub line: Option<u32>,
    /// 1-based column in characters, with `line`.
    pub column: Option<u32>,
    /// The field at fault as a path of keys and 0-based indices (`redundancy.primary_port`,
    /// `at[2].share`, `notice[0].start`), when one is.
    pub field: Option<String>,
    /// What is wrong.
    pub kind: FileErrorKind,
}

impl FileError {
    /// An error about the whole file at `path`, with no place or field.
    pub fn new(path: Option<&Path>, kind: FileErrorKind) -> FileError {
        FileError { path: path.map(Path::to_path_buf), line: None, column: None, field: None, kind }
    }

    /// The file at `path` could not be read.
    pub fn io(path: &Path, e: &io::Error) -> FileError {
        FileError::new(Some(path), FileErrorKind::Io(e.kind()))
    }

    /// The same error, naming `field`.
    pub fn with_field(mut self, field: impl Into<String>) -> FileError {
        self.field = Some(field.into());
        self
    }

    /// The same error, at 1-based `line` and `column` (in characters).
    pub fn at(mut self, line: usize, column: usize) -> FileError {
        self.line = Some(u32::try_from(line).unwrap_or(u32::MAX));
        self.column = Some(u32::try_from(column).unwrap_or(u32::MAX));
        self
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.path {
            write!(f, "{}", p.display())?;
            match (self.line, self.column) {
                (Some(l), Some(c)) => write!(f, ":{l}:{c}")?,
                (Some(l), None) => write!(f, ":{l}")?,
                _ => {}
            }
            f.write_str(": ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        self.kind.fmt(f)
    }
}

impl std::error::Error for FileError {}

/// What is wrong in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileErrorKind {
    /// The file could not be read.
    Io(io::ErrorKind),
    /// Not valid TOML, or a value the TOML reader refused: its message.
    Syntax(String),
    /// A key this kind of file does not have (the key is the error's field).
    UnknownKey {
        /// The known key closest to it, when one is close.
        suggestion: Option<String>,
    },
    /// A key that must be given is missing (the key is the error's field).
    MissingKey,
    /// A value of the wrong type.
    WrongType {
        /// What the field takes (`an integer number of seconds`).
        expected: String,
        /// What was written (`a string "x"`).
        found: String,
    },
    /// A text that must not be empty (or only white space) is.
    Empty,
    /// A text holds control characters.
    ControlCharacters,
    /// A number, duration or count outside what is allowed.
    OutOfRange {
        /// The value as written.
        value: String,
        /// What is allowed (`1..=65535`, `1s..=1h`).
        allowed: String,
    },
    /// A word that is not one of the allowed ones.
    NotOneOf {
        /// The word as written.
        value: String,
        /// The allowed words.
        allowed: &'static [&'static str],
    },
    /// A value, or a part of one, without the form the field takes.
    Invalid {
        /// The value, or its part at fault, as written (empty when something is missing).
        value: String,
        /// The form the field takes (`an IP address or a host name`).
        expected: String,
    },
    /// A value given twice where each must be unique.
    Duplicate {
        /// The value.
        value: String,
        /// The line of the first one, when known.
        first_line: Option<usize>,
    },
    /// A value that must come after another field's.
    MustBeAfter {
        /// The other field.
        other: &'static str,
    },
    /// A value that must not come after another field's.
    MustNotBeAfter {
        /// The other field.
        other: &'static str,
    },
    /// Values that cannot work together, in words.
    Conflict(String),
}

impl fmt::Display for FileErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileErrorKind::Io(io::ErrorKind::NotFound) => f.write_str("cannot read the file: there is no such file"),
            FileErrorKind::Io(io::ErrorKind::PermissionDenied) => {
                f.write_str("cannot read the file: permission denied")
            }
            FileErrorKind::Io(kind) => write!(f, "cannot read the file: {kind}"),
            FileErrorKind::Syntax(message) => f.write_str(message.trim_end()),
            FileErrorKind::UnknownKey { suggestion: None } => f.write_str("unknown key"),
            FileErrorKind::UnknownKey { suggestion: Some(s) } => write!(f, "unknown key; did you mean `{s}`?"),
            FileErrorKind::MissingKey => f.write_str("missing, and it is required"),
            FileErrorKind::WrongType { expected, found } => write!(f, "expected {expected}, found {found}"),
            FileErrorKind::Empty => f.write_str("must not be empty"),
            FileErrorKind::ControlCharacters => f.write_str("must not hold control characters"),
            FileErrorKind::OutOfRange { value, allowed } => write!(f, "{value} is outside {allowed}"),
            FileErrorKind::NotOneOf { value, allowed } => {
                write!(f, "`{value}` is not one of {}", allowed.join(", "))?;
                match closest(value, allowed.iter().copied()) {
                    Some(s) => write!(f, "; did you mean `{s}`?"),
                    None => Ok(()),
                }
            }
            FileErrorKind::Invalid { value, expected } if value.is_empty() => {
                write!(f, "expected {expected}, found nothing")
            }
            FileErrorKind::Invalid { value, expected } => write!(f, "expected {expected}, found {value:?}"),
            FileErrorKind::Duplicate { value, first_line: Some(l) } => {
                write!(f, "`{value}` is given twice (first on line {l})")
            }
            FileErrorKind::Duplicate { value, first_line: None } => write!(f, "`{value}` is given twice"),
            FileErrorKind::MustBeAfter { other } => write!(f, "must be after `{other}`"),
            FileErrorKind::MustNotBeAfter { other } => write!(f, "must not be after `{other}`"),
            FileErrorKind::Conflict(why) => f.write_str(why),
        }
    }
}

/// The candidate closest to `word` by edit distance (a swap of two neighbours counts as one edit),
/// if it is close enough to be a slip of the keyboard: at most one edit per three characters.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows, [two back, one back, this one]; before the first step "this one" is row 0.
    let mut rows = [vec![0; b.len() + 1], vec![0; b.len() + 1], (0..=b.len()).collect::<Vec<_>>()];
    for i in 1..=a.len() {
        rows.rotate_left(1);
        let [two, one, row] = &mut rows;
        row[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (one[j] + 1).min(row[j - 1] + 1).min(one[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(two[j - 2] + 1);
            }
        }
    }
    rows[2][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("bakup_destination", "backup_destination"), 1);
        assert_eq!(edit_distance("primary_prot", "primary_port"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn the_closest_key_is_suggested_only_when_close() {
        let keys = ["primary_server", "backup_destination", "backup_destination_address"];
        assert_eq!(closest("bakup_destination", keys), Some("backup_destination"));
        assert_eq!(closest("primary_sever", keys), Some("primary_server"));
        assert_eq!(closest("colour", keys), None);
        assert_eq!(closest("x", ["y"]), Some("y"));
        assert_eq!(closest("xy", ["ab"]), None);
    }

    #[test]
    fn one_display_for_every_file() {
        let e = FileError::new(
            Some(Path::new("phone.toml")),
            FileErrorKind::UnknownKey { suggestion: Some("backup_destination".into()) },
        )
        .with_field("redundancy.bakup_destination")
        .at(5, 1);
        assert_eq!(
            e.to_string(),
            "phone.toml:5:1: redundancy.bakup_destination: unknown key; did you mean `backup_destination`?"
        );
        let e = FileError::new(None, FileErrorKind::MustBeAfter { other: "start" }).with_field("notice[1].end");
        assert_eq!(e.to_string(), "notice[1].end: must be after `start`");
        let e = FileError::new(
            Some(Path::new("s.toml")),
            FileErrorKind::NotOneOf { value: "atuo".into(), allowed: &["auto", "manual", "never"] },
        );
        assert_eq!(e.to_string(), "s.toml: `atuo` is not one of auto, manual, never; did you mean `auto`?");
    }
}
