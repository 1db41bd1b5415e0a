//! The crash-safe state file: what [`Agent::resume`](crate::core::Agent::resume) needs after a reboot
//! or a `kill -9`.
//!
//! It is a small JSON object written to `state.json.tmp`, flushed to disk, renamed over `state.json`
//! and the directory flushed, so a crash at any point leaves either the old file or the new one.

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use serde_json::{json, Value};

use super::events::parse_side;
use crate::core::{Side, Snapshot};

/// The file's name inside the state directory.
pub const FILE_NAME: &str = "state.json";
const VERSION: u64 = 1;

/// Why the state file could not be read or written.
#[derive(Debug)]
#[non_exhaustive]
pub enum StateError {
    /// Reading or writing failed.
    Io(PathBuf, io::Error),
    /// The file holds something that is not a state written by this program.
    Corrupt(PathBuf, &'static str),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            StateError::Corrupt(p, why) => write!(f, "{}: not a valid state file: {why}", p.display()),
        }
    }
}

impl std::error::Error for StateError {}

/// The state file of one agent.
#[derive(Debug, Clone)]
pub struct StateFile {
    dir: PathBuf,
}

impl StateFile {
    /// The state file in `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateFile { dir: dir.into() }
    }

    /// The file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved snapshot; `Ok(None)` when there is no file yet.
    pub fn load(&self) -> Result<Option<Snapshot>, StateError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StateError::Io(path, e)),
        };
        decode(&text).map(Some).map_err(|why| StateError::Corrupt(path, why))
    }

    /// Writes `snap` crash-safely: temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, snap: &Snapshot) -> Result<(), StateError> {
        let path = self.path();
        crate::files::write_atomic(&path, encode(snap).as_bytes()).map_err(|e| StateError::Io(path, e))
    }
}

/// The state adapter: saves the agent's snapshot whenever it changed.
#[derive(Debug)]
pub struct StateSaver {
    file: Option<StateFile>,
    saved: Option<Snapshot>,
}

impl StateSaver {
    /// Saves to `file` (nowhere when `None`); `saved` is what the file already holds.
    pub fn new(file: Option<StateFile>, saved: Option<Snapshot>) -> StateSaver {
        StateSaver { file, saved }
    }

    /// The file's path, if there is one.
    pub fn path(&self) -> Option<PathBuf> {
        self.file.as_ref().map(StateFile::path)
    }

    /// Writes `snap` unless the file holds it already.
    pub fn save(&mut self, snap: Snapshot) {
        let Some(file) = &self.file else { return };
        if self.saved == Some(snap) {
            return;
        }
        match file.save(&snap) {
            Ok(()) => self.saved = Some(snap),
            Err(e) => tracing::error!("saving state: {e}"),
        }
    }
}

/// The file's text for `snap`.
pub fn encode(snap: &Snapshot) -> String {
    let v = json!({
        "version": VERSION,
        "active": snap.active.as_str(),
        "generation": snap.generation,
        "issued": snap.issued,
        "forced": snap.forced.map(Side::as_str),
        "failback_pending": snap.failback_pending,
        "saved_utc": jiff::Timestamp::now().to_string(),
    });
    format!("{v}\n")
}

/// Reads the file's text back.
pub fn decode(text: &str) -> Result<Snapshot, &'static str> {
    let v: Value = serde_json::from_str(text).map_err(|_| "not JSON")?;
    if v.get("version").and_then(Value::as_u64) != Some(VERSION) {
        return Err("unknown version");
    }
    let active = v.get("active").and_then(Value::as_str).and_then(parse_side).ok_or("bad `active`")?;
    let generation =
        v.get("generation").and_then(Value::as_u64).and_then(|g| u32::try_from(g).ok()).ok_or("bad `generation`")?;
    // Files written before `issued` was saved: the generation in force was the last one issued.
    let issued = match v.get("issued") {
        None => generation,
        Some(i) => i.as_u64().and_then(|g| u32::try_from(g).ok()).ok_or("bad `issued`")?,
    };
    let forced = match v.get("forced") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_str().and_then(parse_side).ok_or("bad `forced`")?),
    };
    let failback_pending = v.get("failback_pending").and_then(Value::as_bool).ok_or("bad `failback_pending`")?;
    Ok(Snapshot { active, generation, issued, forced, failback_pending })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_the_round_trip() {
        let s = Snapshot {
            active: Side::Backup,
            generation: 7,
            issued: 8,
            forced: Some(Side::Backup),
            failback_pending: true,
        };
        assert_eq!(decode(&encode(&s)), Ok(s));
        let s = Snapshot { active: Side::Primary, generation: 0, issued: 0, forced: None, failback_pending: false };
        assert_eq!(decode(&encode(&s)), Ok(s));
    }

    #[test]
    fn a_file_without_issued_takes_the_generation_in_force() {
        let old = r#"{"version":1,"active":"backup","generation":3,"forced":null,"failback_pending":false}"#;
        let s = decode(old).unwrap();
        assert_eq!((s.generation, s.issued), (3, 3));
        let bad = r#"{"version":1,"active":"backup","generation":3,"issued":-1,"failback_pending":false}"#;
        assert_eq!(decode(bad), Err("bad `issued`"));
    }

    #[test]
    fn garbage_is_refused() {
        for t in ["", "{}", "[1]", r#"{"version":1,"active":"middle","generation":1,"failback_pending":false}"#] {
            assert!(decode(t).is_err(), "{t}");
        }
    }

    #[test]
    fn save_then_load_in_a_directory() {
        let dir = std::env::temp_dir().join(format!("sf-state-{}", std::process::id()));
        let f = StateFile::new(&dir);
        assert!(f.load().unwrap().is_none());
        let s = Snapshot { active: Side::Backup, generation: 2, issued: 2, forced: None, failback_pending: false };
        f.save(&s).unwrap();
        assert_eq!(f.load().unwrap(), Some(s));
        assert!(!dir.join("state.json.tmp").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
