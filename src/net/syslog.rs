//! The remote syslog sink: every event as one RFC 5424 message to a collector over UDP (RFC 5426),
//! TCP (octet counting, RFC 6587 3.4.1) or TLS (RFC 5425).
//!
//! A message: PRI from the facility (local0 unless configured) and the event's severity, the
//! wall-clock time, the host name, APP-NAME `sip-failover`, the process id, MSGID the event's name,
//! and two SD-ELEMENTs: `[meta sequenceId="N"]` (RFC 5424 7.3.1, counting from 1 and wrapping after
//! 2147483647) and `[sipfailover@32473 ...]` with the event's fields, `t_ms` first. 32473 is the
//! example Private Enterprise Number of RFC 5612, a placeholder until the product has its own.
//! Nested fields (a server's description in `started`) are written as JSON text.
//!
//! Sending never waits: the sink formats the message and offers it to a bounded queue
//! (1024 messages unless configured); when the queue is full the message is dropped and counted. One task takes
//! from the queue and writes. While the collector is down, refuses, resets or stalls (a write that
//! takes longer than [`WRITE_TIMEOUT`]), the task reconnects with a backoff from 0.5 s up to 30 s
//! and keeps the one message it was writing; the queue fills and what does not fit is dropped. The
//! first message written after drops is a `syslog_dropped` message with their `count`.

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fasyslog::format::SyslogContext;
use fasyslog::{Facility, SDElement, Severity};
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant as TInstant;
use tokio_rustls::rustls;
use tokio_rustls::TlsConnector;

use super::adapter::{to_core, Sink};
use crate::config::telemetry::{SyslogConfig, SyslogTarget, SyslogTransport};
use crate::core::{Event, Instant};

/// The SD-ID of the events' fields (32473: RFC 5612's example enterprise number, a placeholder).
pub const SD_ID: &str = "sipfailover@32473";
/// The APP-NAME of every message.
pub const APP_NAME: &str = "sip-failover";
/// How long a connection or one write may take before the collector counts as stalled.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Why the syslog sink cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SyslogError {
    /// The CA file cannot be read or holds no certificate.
    CaFile(std::path::PathBuf, String),
    /// The system's trust store has no usable certificate.
    NoRoots,
    /// The collector's name cannot be a TLS server name.
    ServerName(String),
}

impl std::fmt::Display for SyslogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyslogError::CaFile(p, e) => write!(f, "syslog CA file {}: {e}", p.display()),
            SyslogError::NoRoots => write!(f, "syslog over TLS: no certificate in the system's trust store"),
            SyslogError::ServerName(h) => write!(f, "syslog over TLS: `{h}` is not a server name"),
        }
    }
}

impl std::error::Error for SyslogError {}

/// The counters the sink and its task share.
#[derive(Debug, Default)]
struct Shared {
    /// The last sequenceId given.
    seq: AtomicU32,
    /// Messages dropped and not yet reported.
    dropped: AtomicU64,
}

impl Shared {
    fn next_seq(&self) -> u32 {
        // 1..=2147483647, then 1 again (RFC 5424 7.3.1).
        let prev = self.seq.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| Some(next_seq(s)));
        next_seq(prev.unwrap_or(0))
    }
}

fn next_seq(s: u32) -> u32 {
    if s >= i32::MAX as u32 {
        1
    } else {
        s + 1
    }
}

/// Formats events as RFC 5424 messages.
#[derive(Debug, Clone)]
pub struct Formatter {
    ctx: SyslogContext,
}

impl Formatter {
    /// Messages from this host and process, with `facility` (0-23).
    pub fn new(facility: u8) -> Self {
        let mut ctx = SyslogContext::new();
        ctx.facility(Facility::try_from(facility).unwrap_or(Facility::LOCAL0)).appname(APP_NAME);
        Formatter { ctx }
    }

    /// Sets the HOSTNAME field (tests).
    pub fn with_hostname(mut self, h: &str) -> Self {
        self.ctx.hostname(h);
        self
    }

    /// One message: MSGID `name`, `sequenceId` `seq`, and `t_ms` then `fields` as SD-PARAMs.
    pub fn message(&self, severity: Severity, name: &str, seq: u32, t: Instant, fields: &Map<String, Value>) -> String {
        let mut meta = SDElement::new("meta").expect("a registered SD-ID");
        let _ = meta.add_param("sequenceId", seq.to_string());
        let mut sd = SDElement::new(SD_ID).expect("a valid SD-ID");
        let _ = sd.add_param("t_ms", t.as_millis().to_string());
        for (k, v) in fields {
            let text = match v {
                Value::Null => continue,
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            // A name that is not an SD-NAME (none of the event schema's) is left out, not sent broken.
            let _ = sd.add_param(k.as_str(), text);
        }
        let msgid = if name.is_empty() || name.len() > 32 { "-" } else { name };
        self.ctx.format_rfc5424::<_, &str>(severity, Some(msgid), vec![meta, sd], None).to_string()
    }
}

/// The severity of an event in syslog.
pub fn severity(name: &str) -> Severity {
    match name {
        "apply_failed" | "syslog_dropped" | "hook_failed" => Severity::ERROR,
        "switch" | "no_server_reachable" | "server_down" | "rebuild_failed" | "flow_down" => Severity::WARNING,
        "server_up" | "flow_up" | "applied" | "held" | "started" | "stopped" | "config_applied" | "control" => {
            Severity::NOTICE
        }
        "probe_sent" | "reply" | "attempt_timed_out" | "ignored" => Severity::DEBUG,
        _ => Severity::INFORMATIONAL,
    }
}

/// One message as it goes on a stream: its length in octets, a space, the message (RFC 6587 3.4.1,
/// RFC 5425 4.3).
pub fn octet_counted(msg: &str) -> Vec<u8> {
    let mut v = format!("{} ", msg.len()).into_bytes();
    v.extend_from_slice(msg.as_bytes());
    v
}

/// The sink: formats each event and offers it to the writer's queue.
pub struct SyslogSink {
    fmt: Formatter,
    tx: mpsc::Sender<String>,
    shared: Arc<Shared>,
}

impl SyslogSink {
    /// Checks the settings (the CA file, the server name) and starts the writer task; must be
    /// called inside the tokio runtime.
    /// `start` is the tokio instant of the core's [`Instant::ZERO`], for the `t_ms` of the writer's
    /// own messages.
    pub fn start(cfg: &SyslogConfig, start: TInstant) -> Result<SyslogSink, SyslogError> {
        let tls = match cfg.target.transport {
            SyslogTransport::Tls => Some(tls_connector(cfg)?),
            _ => None,
        };
        let fmt = Formatter::new(cfg.facility);
        let (tx, rx) = mpsc::channel(cfg.queue.max(1));
        let shared = Arc::new(Shared::default());
        let writer = Writer {
            target: cfg.target.clone(),
            queue: cfg.queue,
            tls,
            fmt: fmt.clone(),
            shared: shared.clone(),
            start,
        };
        tokio::spawn(writer.run(rx));
        Ok(SyslogSink { fmt, tx, shared })
    }

    fn offer(&mut self, name: &str, t: Instant, fields: &Map<String, Value>) {
        let msg = self.fmt.message(severity(name), name, self.shared.next_seq(), t, fields);
        if self.tx.try_send(msg).is_err() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Sink for SyslogSink {
    fn core(&mut self, t: Instant, ev: &Event, fields: &Map<String, Value>) {
        self.offer(ev.name(), t, fields);
    }

    fn driver(&mut self, t: Instant, name: &str, fields: &Map<String, Value>) {
        self.offer(name, t, fields);
    }
}

/// The TLS client settings: the CA file's certificates, else the system's trust store
/// ([`super::tls::roots`]).
fn tls_connector(cfg: &SyslogConfig) -> Result<(TlsConnector, rustls::pki_types::ServerName<'static>), SyslogError> {
    use rustls::pki_types::ServerName;
    let roots = super::tls::roots(cfg.ca_file.as_deref()).map_err(|e| match e {
        super::tls::TlsSetupError::NoRoots => SyslogError::NoRoots,
        super::tls::TlsSetupError::CaFile(p, e) => SyslogError::CaFile(p, e),
        other => SyslogError::CaFile(cfg.ca_file.clone().unwrap_or_default(), other.to_string()),
    })?;
    let config = rustls::ClientConfig::builder_with_provider(super::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| SyslogError::CaFile(cfg.ca_file.clone().unwrap_or_default(), e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        ServerName::try_from(cfg.target.host.clone()).map_err(|_| SyslogError::ServerName(cfg.target.host.clone()))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// A connection to the collector.
enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    async fn send(&mut self, msg: &str) -> io::Result<()> {
        match self {
            Conn::Udp(s) => s.send(msg.as_bytes()).await.map(|_| ()),
            Conn::Tcp(s) => s.write_all(&octet_counted(msg)).await,
            Conn::Tls(s) => {
                s.write_all(&octet_counted(msg)).await?;
                s.flush().await
            }
        }
    }
}

/// The task that writes the queue to the collector.
struct Writer {
    target: SyslogTarget,
    queue: usize,
    tls: Option<(TlsConnector, rustls::pki_types::ServerName<'static>)>,
    fmt: Formatter,
    shared: Arc<Shared>,
    start: TInstant,
}

impl Writer {
    async fn connect(&self) -> io::Result<Conn> {
        let addr = tokio::net::lookup_host((self.target.host.as_str(), self.target.port))
            .await?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
        match self.target.transport {
            SyslogTransport::Udp => {
                let any: std::net::SocketAddr =
                    if addr.is_ipv6() { "[::]:0".parse().expect("addr") } else { "0.0.0.0:0".parse().expect("addr") };
                let s = UdpSocket::bind(any).await?;
                s.connect(addr).await?;
                Ok(Conn::Udp(s))
            }
            SyslogTransport::Tcp => {
                let s = TcpStream::connect(addr).await?;
                let _ = s.set_nodelay(true);
                Ok(Conn::Tcp(s))
            }
            SyslogTransport::Tls => {
                let s = TcpStream::connect(addr).await?;
                let _ = s.set_nodelay(true);
                let (connector, name) = self.tls.as_ref().ok_or_else(|| io::Error::other("no TLS settings"))?;
                Ok(Conn::Tls(Box::new(connector.connect(name.clone(), s).await?)))
            }
        }
    }

    async fn run(self, mut rx: mpsc::Receiver<String>) {
        let mut conn: Option<Conn> = None;
        let mut pending: Option<String> = None;
        let mut backoff = BACKOFF_MIN;
        let mut down_since_warned = false;
        loop {
            let msg = match pending.take() {
                Some(m) => m,
                None => match rx.recv().await {
                    Some(m) => m,
                    None => return,
                },
            };
            let result = tokio::time::timeout(WRITE_TIMEOUT, async {
                if conn.is_none() {
                    conn = Some(self.connect().await?);
                }
                let c = conn.as_mut().ok_or_else(|| io::Error::other("no connection"))?;
                let dropped = self.shared.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let mut f = Map::new();
                    f.insert("count".into(), Value::from(dropped));
                    f.insert("queue".into(), Value::from(self.queue));
                    let report = self.fmt.message(
                        Severity::ERROR,
                        "syslog_dropped",
                        self.shared.next_seq(),
                        to_core(self.start, TInstant::now()),
                        &f,
                    );
                    if let Err(e) = c.send(&report).await {
                        self.shared.dropped.fetch_add(dropped, Ordering::Relaxed);
                        return Err(e);
                    }
                    tracing::warn!(
                        count = dropped,
                        "syslog collector {} back; {dropped} messages dropped",
                        self.target
                    );
                }
                c.send(&msg).await
            })
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "stalled")));
            match result {
                Ok(()) => {
                    backoff = BACKOFF_MIN;
                    down_since_warned = false;
                }
                Err(e) => {
                    if !down_since_warned {
                        tracing::warn!("syslog collector {}: {e}; reconnecting", self.target);
                        down_since_warned = true;
                    }
                    conn = None;
                    pending = Some(msg);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn a_message_has_the_rfc5424_header_and_structured_data() {
        let f = Formatter::new(16).with_hostname("phone-7");
        let m = f.message(
            severity("switch"),
            "switch",
            7,
            Instant::from_micros(1_600_400),
            &fields(serde_json::json!({"from": "primary", "to": "backup", "generation": 3, "x": null})),
        );
        // local0 (16) * 8 + warning (4) = 132.
        assert!(m.starts_with("<132>1 "), "{m}");
        let after_ts = m.split_once(' ').unwrap().1.split_once(' ').unwrap().1;
        let pid = std::process::id();
        assert_eq!(
            after_ts,
            format!(
                "phone-7 sip-failover {pid} switch [meta sequenceId=\"7\"][sipfailover@32473 t_ms=\"1600\" \
                 from=\"primary\" generation=\"3\" to=\"backup\"]"
            )
        );
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket() {
        let f = Formatter::new(16).with_hostname("h");
        let m = f.message(
            Severity::INFORMATIONAL,
            "ignored",
            1,
            Instant::ZERO,
            &fields(serde_json::json!({"detail": r#"a "q" \ ] z"#, "nested": {"k": "v"}})),
        );
        assert!(m.contains(r#"detail="a \"q\" \\ \] z""#), "{m}");
        assert!(m.contains(r#"nested="{\"k\":\"v\"}""#), "{m}");
    }

    #[test]
    fn sequence_ids_wrap_to_one() {
        assert_eq!(next_seq(0), 1);
        assert_eq!(next_seq(41), 42);
        assert_eq!(next_seq(i32::MAX as u32), 1);
        let s = Shared::default();
        assert_eq!((s.next_seq(), s.next_seq()), (1, 2));
    }

    #[test]
    fn stream_frames_count_octets() {
        assert_eq!(octet_counted("<134>1 - - - - - -"), b"18 <134>1 - - - - - -".to_vec());
        assert_eq!(octet_counted("é"), b"2 \xc3\xa9".to_vec());
    }
}
