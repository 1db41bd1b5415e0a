//! Small helpers shared by every folder that reads or writes files: the one error type for a file
//! that is wrong somewhere ([`FileError`](crate::files::FileError)), reading TOML so that its errors
//! name their field ([`TomlText`](crate::files::TomlText)), a crash-safe write and the place of a
//! byte offset in a text. Nothing here knows a file format; the folders above own their formats.

mod error;
mod text;

pub use error::{closest, FileError, FileErrorKind};
pub use text::{value_in_words, TomlText};

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` crash-safely: a temporary file beside it, fsync, rename, fsync of the
/// folder. A reader sees the old content or the new, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// 1-based line and column (in characters) of byte `offset` in `text`. An offset past the end is the
/// end; one inside a character is that character's start.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "a\nbc\ndéf";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (2, 1));
        assert_eq!(line_col(text, 3), (2, 2));
        assert_eq!(line_col(text, 7), (3, 2)); // inside 'é': rounds down to its start
        assert_eq!(line_col(text, 100), (3, 4));
    }
}
