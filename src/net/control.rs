//! The control socket of a running agent: a Unix stream socket speaking line-delimited JSON.
//!
//! Each request is one JSON object on one line, with a `cmd` key:
//! `{"cmd":"status"}`, `{"cmd":"force","side":"primary"|"backup"}`, `{"cmd":"release"}`,
//! `{"cmd":"failback"}`, `{"cmd":"pause"}`, `{"cmd":"resume"}`, `{"cmd":"call","state":"start"|"end"}`,
//! `{"cmd":"transaction-failed"}`, `{"cmd":"maintenance","side":"primary","retry_after":300}` (a
//! transaction answered 503 with Retry-After), `{"cmd":"apply-config","path":"/etc/sip-failover.toml"}`.
//! Each answer is one line: `{"ok":true,"status":{...}}` or `{"ok":false,"error":"..."}`.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use super::events::parse_side;
use crate::core::Side;

/// The longest request line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// A request to the running agent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// The agent's state.
    Status,
    /// Pin a side.
    Force(Side),
    /// End a force.
    Release,
    /// Return to the primary now (manual failback).
    Failback,
    /// Stop probing.
    Pause,
    /// Resume probing.
    Resume,
    /// The phone's call state: `true` in a call, `false` idle.
    Call(bool),
    /// A SIP transaction of the phone failed (fast detection starts a cycle).
    TransactionFailed,
    /// A SIP transaction of the phone to this side's server was answered 503 with this Retry-After,
    /// in seconds: the server announced maintenance.
    Maintenance(Side, u32),
    /// Load, validate and apply a configuration file live (the "force" way of applying).
    ApplyConfig(PathBuf),
}

impl Request {
    /// The request as sent on the socket.
    pub fn to_json(&self) -> Value {
        match self {
            Request::Status => json!({"cmd": "status"}),
            Request::Force(s) => json!({"cmd": "force", "side": s.as_str()}),
            Request::Release => json!({"cmd": "release"}),
            Request::Failback => json!({"cmd": "failback"}),
            Request::Pause => json!({"cmd": "pause"}),
            Request::Resume => json!({"cmd": "resume"}),
            Request::Call(c) => json!({"cmd": "call", "state": if *c { "start" } else { "end" }}),
            Request::TransactionFailed => json!({"cmd": "transaction-failed"}),
            Request::Maintenance(s, r) => json!({"cmd": "maintenance", "side": s.as_str(), "retry_after": r}),
            Request::ApplyConfig(p) => json!({"cmd": "apply-config", "path": p.to_string_lossy()}),
        }
    }

    /// Reads a request; the error says what is wrong with it.
    pub fn from_json(v: &Value) -> Result<Request, String> {
        let cmd = v.get("cmd").and_then(Value::as_str).ok_or("missing `cmd`")?;
        let side = || {
            v.get("side").and_then(Value::as_str).and_then(parse_side).ok_or("`side` must be \"primary\" or \"backup\"")
        };
        Ok(match cmd {
            "status" => Request::Status,
            "force" => Request::Force(side()?),
            "release" => Request::Release,
            "failback" => Request::Failback,
            "pause" => Request::Pause,
            "resume" => Request::Resume,
            "call" => match v.get("state").and_then(Value::as_str) {
                Some("start") | Some("in_call") => Request::Call(true),
                Some("end") | Some("idle") => Request::Call(false),
                _ => return Err("`state` must be \"start\" or \"end\"".into()),
            },
            "transaction-failed" => Request::TransactionFailed,
            "maintenance" => {
                let r = v.get("retry_after").and_then(Value::as_u64).and_then(|r| u32::try_from(r).ok());
                Request::Maintenance(side()?, r.ok_or("`retry_after` must be a whole number of seconds")?)
            }
            "apply-config" => {
                Request::ApplyConfig(PathBuf::from(v.get("path").and_then(Value::as_str).ok_or("missing `path`")?))
            }
            other => return Err(format!("unknown command `{other}`")),
        })
    }
}

/// A request from a client with the channel its answer goes back on.
#[derive(Debug)]
pub struct ControlMsg {
    /// The request.
    pub request: Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Value>,
}

/// Why a control client failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ControlError {
    /// The socket could not be reached.
    Connect(PathBuf, io::Error),
    /// Sending or receiving failed.
    Io(io::Error),
    /// The agent's answer is not JSON.
    BadAnswer,
    /// The agent refused the request.
    Refused(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::Connect(p, e) => write!(f, "cannot reach the agent at {}: {e}", p.display()),
            ControlError::Io(e) => write!(f, "control socket: {e}"),
            ControlError::BadAnswer => f.write_str("the agent's answer is not JSON"),
            ControlError::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// Sends one request to the agent at `socket` and returns its answer (the whole JSON object); an
/// answer with `"ok": false` is [`ControlError::Refused`].
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Value, ControlError> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(|e| ControlError::Connect(socket.into(), e))?;
    s.set_read_timeout(Some(timeout)).map_err(ControlError::Io)?;
    s.set_write_timeout(Some(timeout)).map_err(ControlError::Io)?;
    writeln!(s, "{}", req.to_json()).map_err(ControlError::Io)?;
    let mut line = String::new();
    BufReader::new(&s).take(MAX_LINE as u64).read_line(&mut line).map_err(ControlError::Io)?;
    let v: Value = serde_json::from_str(line.trim()).map_err(|_| ControlError::BadAnswer)?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        Ok(v)
    } else {
        Err(ControlError::Refused(v.get("error").and_then(Value::as_str).unwrap_or("no reason given").to_string()))
    }
}

/// Binds the control socket at `path`, replacing a stale socket file left by a dead agent, and
/// refusing when a live agent answers there. The socket is readable by its owner only.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("an agent already listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let l = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Accepts clients until the agent stops, handing each request to `tx`.
pub async fn serve(listener: UnixListener, tx: mpsc::Sender<ControlMsg>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(client(stream, tx.clone()));
            }
            Err(e) => {
                tracing::warn!("control socket accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn client(stream: UnixStream, tx: mpsc::Sender<ControlMsg>) {
    let (r, mut w) = stream.into_split();
    let mut r = tokio::io::BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut r).take(MAX_LINE as u64).read_until(b'\n', &mut buf).await {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if buf.last() != Some(&b'\n') && n as u64 >= MAX_LINE as u64 {
            let _ = w.write_all(format!("{}\n", json!({"ok": false, "error": "request too long"})).as_bytes()).await;
            return;
        }
        let answer =
            match serde_json::from_slice::<Value>(&buf).map_err(|e| e.to_string()).and_then(|v| Request::from_json(&v))
            {
                Err(e) => json!({"ok": false, "error": e}),
                Ok(request) => {
                    let (reply, rx) = oneshot::channel();
                    if tx.send(ControlMsg { request, reply }).await.is_err() {
                        return;
                    }
                    rx.await.unwrap_or_else(|_| json!({"ok": false, "error": "the agent is stopping"}))
                }
            };
        if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
            return;
        }
    }
}
