//! The three ways to apply a configuration file (seed 003): **save** (validated and stored, nothing
//! changes), **rebuild** (stored for the phone, takes effect at the next restart, which happens in
//! the phone's upgrade window), **force** (applied live to the running agent).
//!
//! A file is validated whole before anything is written; a bad file changes nothing in any mode.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::PhoneConfig;
use crate::files::write_atomic;
use crate::files::FileError;

/// How a configuration file is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Validate and store; nothing running changes.
    Save,
    /// Store for the phone; it takes effect at the restart in the upgrade window.
    Rebuild,
    /// Apply to the running agent now.
    Force,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "save" => Ok(Mode::Save),
            "rebuild" => Ok(Mode::Rebuild),
            "force" => Ok(Mode::Force),
            other => Err(format!("`{other}` is not one of save, rebuild, force")),
        }
    }
}

/// Why applying failed. Nothing was changed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApplyError {
    /// The file is not a valid configuration.
    Invalid(FileError),
    /// The store could not be read or written.
    Io(PathBuf, io::Error),
    /// The store holds a record that cannot be read.
    Corrupt(PathBuf, String),
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::Invalid(e) => write!(f, "{e}"),
            ApplyError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ApplyError::Corrupt(p, why) => write!(f, "{}: unreadable record: {why}", p.display()),
        }
    }
}

impl std::error::Error for ApplyError {}

/// A rebuild waiting for its restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRebuild {
    /// The file it came from (relative paths inside it are taken from there).
    pub source: PathBuf,
    /// When it was handed in.
    pub released: Timestamp,
    /// The start of the upgrade window it waits for; `None` when the phone has no upgrade window
    /// (it then takes effect at the next restart, whenever that is).
    pub apply_at: Option<Timestamp>,
}

/// Where saved and rebuilt configurations are kept.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

const SAVED: &str = "saved.toml";
const REBUILD: &str = "rebuild.toml";
const REBUILD_META: &str = "rebuild.json";
const ACTIVE: &str = "active.toml";
const ACTIVE_META: &str = "active.json";

impl Store {
    /// A store in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io(&self, name: &str) -> impl Fn(io::Error) -> ApplyError + '_ {
        let p = self.dir.join(name);
        move |e| ApplyError::Io(p.clone(), e)
    }

    /// Reads and validates `file`, returning its text and configuration.
    fn validated(file: &Path) -> Result<(String, PhoneConfig), ApplyError> {
        let text = fs::read_to_string(file).map_err(|e| ApplyError::Io(file.to_path_buf(), e))?;
        let cfg = PhoneConfig::parse(&text, file).map_err(ApplyError::Invalid)?;
        Ok((text, cfg))
    }

    /// **Save**: validates `file` and stores it; nothing running changes.
    pub fn save(&self, file: &Path) -> Result<PhoneConfig, ApplyError> {
        let (text, cfg) = Self::validated(file)?;
        write_atomic(&self.dir.join(SAVED), text.as_bytes()).map_err(self.io(SAVED))?;
        Ok(cfg)
    }

    /// **Rebuild**: validates `file`, stores it, and schedules it for the first upgrade window that
    /// starts at least the buffer after `released` (the new file's own upgrade window).
    pub fn rebuild(&self, file: &Path, released: Timestamp) -> Result<PendingRebuild, ApplyError> {
        let (text, cfg) = Self::validated(file)?;
        let apply_at = cfg.maintenance.upgrade.as_ref().and_then(|u| u.apply_at(released)).map(|w| w.start);
        let pending = PendingRebuild { source: absolute(file), released, apply_at };
        write_atomic(&self.dir.join(SAVED), text.as_bytes()).map_err(self.io(SAVED))?;
        write_atomic(&self.dir.join(REBUILD), text.as_bytes()).map_err(self.io(REBUILD))?;
        // The record last: a rebuild counts only once its record is complete.
        write_atomic(&self.dir.join(REBUILD_META), meta_json(&pending).as_bytes()).map_err(self.io(REBUILD_META))?;
        Ok(pending)
    }

    /// **Force** (the store's part): validates `file` and stores it as saved and as the phone's
    /// configuration; the caller then hands it to the running agent.
    pub fn force(&self, file: &Path) -> Result<PhoneConfig, ApplyError> {
        let (text, cfg) = Self::validated(file)?;
        write_atomic(&self.dir.join(SAVED), text.as_bytes()).map_err(self.io(SAVED))?;
        self.write_active(&text, &absolute(file))?;
        Ok(cfg)
    }

    fn write_active(&self, text: &str, source: &Path) -> Result<(), ApplyError> {
        write_atomic(&self.dir.join(ACTIVE), text.as_bytes()).map_err(self.io(ACTIVE))?;
        let meta = serde_json::json!({ "source": source.to_string_lossy() }).to_string();
        write_atomic(&self.dir.join(ACTIVE_META), meta.as_bytes()).map_err(self.io(ACTIVE_META))
    }

    /// The rebuild waiting for its restart, if any.
    pub fn pending_rebuild(&self) -> Result<Option<PendingRebuild>, ApplyError> {
        let path = self.dir.join(REBUILD_META);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ApplyError::Io(path, e)),
        };
        parse_meta(&text).map(Some).map_err(|why| ApplyError::Corrupt(path, why))
    }

    /// At a restart at `now`: if a rebuild is pending and its window has come, makes it the phone's
    /// configuration and returns it. A rebuild whose window has not come stays pending.
    pub fn take_due_rebuild(&self, now: Timestamp) -> Result<Option<PhoneConfig>, ApplyError> {
        let Some(p) = self.pending_rebuild()? else { return Ok(None) };
        if p.apply_at.is_some_and(|t| t > now) {
            return Ok(None);
        }
        let path = self.dir.join(REBUILD);
        let text = fs::read_to_string(&path).map_err(|e| ApplyError::Io(path.clone(), e))?;
        let cfg = PhoneConfig::parse(&text, &p.source).map_err(ApplyError::Invalid)?;
        self.write_active(&text, &p.source)?;
        fs::remove_file(self.dir.join(REBUILD_META)).map_err(self.io(REBUILD_META))?;
        let _ = fs::remove_file(path);
        Ok(Some(cfg))
    }

    /// The configuration the phone runs with, as last made so by force or a due rebuild.
    pub fn active(&self) -> Result<Option<PhoneConfig>, ApplyError> {
        let path = self.dir.join(ACTIVE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ApplyError::Io(path, e)),
        };
        let meta = fs::read_to_string(self.dir.join(ACTIVE_META)).unwrap_or_default();
        let source = serde_json::from_str::<serde_json::Value>(&meta)
            .ok()
            .and_then(|v| v.get("source").and_then(|s| s.as_str()).map(PathBuf::from))
            .unwrap_or(path);
        PhoneConfig::parse(&text, &source).map(Some).map_err(ApplyError::Invalid)
    }
}

fn absolute(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn meta_json(p: &PendingRebuild) -> String {
    serde_json::json!({
        "source": p.source.to_string_lossy(),
        "released": p.released.to_string(),
        "apply_at": p.apply_at.map(|t| t.to_string()),
    })
    .to_string()
}

fn parse_meta(text: &str) -> Result<PendingRebuild, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let source = v.get("source").and_then(|s| s.as_str()).ok_or("no source")?;
    let released = v.get("released").and_then(|s| s.as_str()).ok_or("no released")?;
    let released: Timestamp = released.parse().map_err(|e: jiff::Error| e.to_string())?;
    let apply_at = match v.get("apply_at") {
        None | Some(serde_json::Value::Null) => None,
        Some(s) => Some(s.as_str().ok_or("apply_at is not a string")?.parse().map_err(|e: jiff::Error| e.to_string())?),
    };
    Ok(PendingRebuild { source: PathBuf::from(source), released, apply_at })
}
