//! A sans-IO model of one PBX answering OPTIONS, and of the pair, with the faults a scenario scripts.
//!
//! The model parses each request and builds each response with the `rsip` crate, an independent SIP
//! implementation, so the agent's own encoder and parser are always checked against another one. A
//! response echoes Via, From, To (adding a tag), Call-ID and CSeq as RFC 3261 section 8.2.6 says.
//! It never reads a clock: time is handed in, and it hands back when its reply is due.

use std::fmt;

use rsip::headers::{ContentLength, RetryAfter, Server, UntypedHeader};
use rsip::param::Tag;
use rsip::{Header, Headers};

use crate::core::{Duration, FlowError, Instant, Side, TlsError, Transport};

/// How a server writes the header names and values of its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HeaderForm {
    /// Full names, one line per header.
    #[default]
    Normal,
    /// Compact names (`v`, `f`, `t`, `i`, `l`; RFC 3261 section 7.3.3).
    Compact,
    /// Full names, with Via, From, To and CSeq values folded onto continuation lines.
    Folded,
}

impl HeaderForm {
    /// `"normal"`, `"compact"` or `"folded"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            HeaderForm::Normal => "normal",
            HeaderForm::Compact => "compact",
            HeaderForm::Folded => "folded",
        }
    }
}

/// Which bad certificate a TLS server presents (`bad_certificate` in a scenario).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertKind {
    /// For the right name, from the lab CA, expired (valid 2020 to 2021).
    Expired,
    /// From the lab CA, valid, for another name.
    WrongName,
    /// From the lab CA, valid, naming the server's domain only through a wildcard (`*.lab`).
    Wildcard,
    /// For the right name, valid, issued by a second CA the phone does not trust.
    UnknownCa,
}

impl CertKind {
    /// Every kind, in the order of the scenario's words.
    pub const ALL: [CertKind; 4] = [CertKind::Expired, CertKind::WrongName, CertKind::Wildcard, CertKind::UnknownCa];

    /// `"expired"`, `"wrong_name"`, `"wildcard"` or `"unknown_ca"`: the scenario's word.
    pub const fn as_str(self) -> &'static str {
        match self {
            CertKind::Expired => "expired",
            CertKind::WrongName => "wrong_name",
            CertKind::Wildcard => "wildcard",
            CertKind::UnknownCa => "unknown_ca",
        }
    }

    /// What a phone that verifies like the lab's phone reports for it.
    pub const fn tls_error(self) -> TlsError {
        match self {
            CertKind::Expired => TlsError::Expired,
            CertKind::WrongName => TlsError::NameMismatch,
            CertKind::Wildcard => TlsError::WildcardRefused,
            CertKind::UnknownCa => TlsError::UnknownIssuer,
        }
    }
}

/// Whether a server answers at all, and how it treats connections (TCP and TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// It answers (subject to delay, loss and status).
    #[default]
    Answer,
    /// It receives and never answers (on a stream: the kernel completes TCP connects, nothing reads;
    /// a TLS handshake gets no answer).
    Blackhole,
    /// Its port is closed: the host answers ICMP port-unreachable, or refuses the TCP connect; its
    /// open connections are reset (the server restarts).
    Refused,
    /// Streams only: every connection is reset as soon as it is accepted, open ones included.
    Reset,
    /// Streams only: connections (and TLS handshakes) complete, requests are never answered.
    Hang,
    /// TLS only: connections are accepted, the handshake never completes; open ones are closed (the
    /// server restarts).
    StallHandshake,
    /// TLS only: the handshake presents a bad certificate; open connections are closed (the server
    /// restarts with it).
    BadCertificate(CertKind),
}

/// What a server does with a new connection (TCP SYN, then for TLS the handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connect {
    /// Connected (for TLS: the handshake completes with the good certificate).
    Accept,
    /// The port is closed: the connect is refused.
    Refuse,
    /// Accepted, then reset at once (for TLS: before the handshake completes).
    Reset,
    /// TLS: the handshake never completes.
    Stall,
    /// TLS: the handshake presents this bad certificate.
    BadCertificate(CertKind),
}

/// One scripted change to a server's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Action {
    /// Answer normally: 200, no delay, no loss (the header form stays).
    Answer,
    /// Stop answering.
    Blackhole,
    /// Close the port.
    Refuse,
    /// Delay every reply by this much.
    Delay(Duration),
    /// Drop this share (0 to 1) of requests, drawn from the seeded random source.
    Loss(f64),
    /// Answer with this final status and optional Retry-After (seconds).
    Status {
        /// The status code.
        code: u16,
        /// The Retry-After delay in seconds.
        retry_after: Option<u32>,
    },
    /// Write responses in this form.
    Headers(HeaderForm),
    /// Streams: reset every connection (open ones and each new one).
    Reset,
    /// Streams: accept connections, never answer on them.
    Hang,
    /// TLS: accept connections, never complete the handshake.
    StallHandshake,
    /// TLS: present a bad certificate.
    BadCertificate(CertKind),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Answer => f.write_str("answer"),
            Action::Blackhole => f.write_str("blackhole"),
            Action::Refuse => f.write_str("refuse (port closed)"),
            Action::Delay(d) => write!(f, "delay {d}"),
            Action::Loss(s) => write!(f, "loss {:.0}%", s * 100.0),
            Action::Status { code, retry_after: Some(r) } => write!(f, "status {code}, Retry-After {r}"),
            Action::Status { code, retry_after: None } => write!(f, "status {code}"),
            Action::Headers(h) => write!(f, "headers {}", h.as_str()),
            Action::Reset => f.write_str("reset connections"),
            Action::Hang => f.write_str("hang (accept, never answer)"),
            Action::StallHandshake => f.write_str("stall the TLS handshake"),
            Action::BadCertificate(k) => write!(f, "bad certificate ({})", k.as_str()),
        }
    }
}

/// How healthy a server is, as a probe would find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// It answers 200 at once.
    Normal,
    /// It answers, but slowly or not every time.
    Degraded,
    /// It does not answer with an alive status (blackhole, refused, 408/5xx/6xx).
    Down,
}

impl Health {
    /// `"normal"`, `"degraded"` or `"down"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Health::Normal => "normal",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

/// A small seeded random source (SplitMix64): the model's loss draws, reproducible from the seed.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A source keyed by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A uniform draw in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Counters of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests received (refused ones included).
    pub requests: u64,
    /// Responses produced.
    pub answered: u64,
    /// Requests left unanswered (blackhole or loss).
    pub dropped: u64,
    /// Requests refused (port closed).
    pub refused: u64,
    /// Datagrams that rsip could not parse as an OPTIONS request.
    pub malformed: u64,
    /// Connections attempted (TCP and TLS).
    pub connects: u64,
    /// Connections that completed (for TLS: the handshake too).
    pub connected: u64,
}

impl core::ops::AddAssign for ServerStats {
    /// Adds another server's counters (a fleet's shards each serve their own pair).
    fn add_assign(&mut self, o: ServerStats) {
        self.requests += o.requests;
        self.answered += o.answered;
        self.dropped += o.dropped;
        self.refused += o.refused;
        self.malformed += o.malformed;
        self.connects += o.connects;
        self.connected += o.connected;
    }
}

/// What the model does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reply {
    /// Send these bytes back at this time.
    Send {
        /// When the reply leaves the server.
        at: Instant,
        /// The response.
        bytes: Vec<u8>,
    },
    /// Nothing comes back.
    Silent,
    /// The port is closed: the sender gets ICMP port-unreachable.
    Refused,
}

/// One PBX: its fault state and how it answers.
#[derive(Debug, Clone)]
pub struct ServerModel {
    /// Which side of the pair it is.
    pub side: Side,
    mode: Mode,
    delay: Duration,
    loss: f64,
    status: u16,
    retry_after: Option<u32>,
    form: HeaderForm,
    rng: SplitMix,
    tags: u64,
    stats: ServerStats,
    /// The fixed parts of its responses, built once by rsip for the status and Retry-After in force.
    template: Option<Template>,
}

impl ServerModel {
    /// A healthy server on `side`, its loss draws keyed by `seed`.
    pub fn new(side: Side, seed: u64) -> Self {
        ServerModel {
            side,
            mode: Mode::Answer,
            delay: Duration::ZERO,
            loss: 0.0,
            status: 200,
            retry_after: None,
            form: HeaderForm::Normal,
            rng: SplitMix::new(seed ^ (0x5151_0000 + side as u64)),
            tags: 0,
            stats: ServerStats::default(),
            template: None,
        }
    }

    /// Applies one scripted change.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Answer => {
                self.mode = Mode::Answer;
                self.delay = Duration::ZERO;
                self.loss = 0.0;
                self.status = 200;
                self.retry_after = None;
            }
            Action::Blackhole => self.mode = Mode::Blackhole,
            Action::Refuse => self.mode = Mode::Refused,
            Action::Reset => self.mode = Mode::Reset,
            Action::Hang => self.mode = Mode::Hang,
            Action::StallHandshake => self.mode = Mode::StallHandshake,
            Action::BadCertificate(k) => self.mode = Mode::BadCertificate(k),
            Action::Delay(d) => self.delay = d,
            Action::Loss(s) => self.loss = s.clamp(0.0, 1.0),
            Action::Status { code, retry_after } => {
                self.status = code;
                self.retry_after = retry_after;
            }
            Action::Headers(f) => self.form = f,
        }
    }

    /// Whether it answers at all.
    pub fn mode(&self) -> Mode {
        self.mode
    }
    /// Its reply delay.
    pub fn delay(&self) -> Duration {
        self.delay
    }
    /// Its header form.
    pub fn form(&self) -> HeaderForm {
        self.form
    }
    /// Its counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// How a probe would find it. `slow` is the delay from which a reply counts as degraded.
    pub fn health(&self) -> Health {
        let alive_status = (200..500).contains(&self.status) && self.status != 408;
        if self.mode != Mode::Answer || !alive_status || self.loss >= 1.0 {
            Health::Down
        } else if self.loss > 0.0 || self.delay > Duration::ZERO {
            Health::Degraded
        } else {
            Health::Normal
        }
    }

    /// A short description of its current fault, empty when healthy.
    pub fn fault_label(&self) -> String {
        let mut parts = Vec::new();
        match self.mode {
            Mode::Answer => {}
            Mode::Blackhole => parts.push("blackhole".to_string()),
            Mode::Refused => parts.push("refused".to_string()),
            Mode::Reset => parts.push("reset".to_string()),
            Mode::Hang => parts.push("hang".to_string()),
            Mode::StallHandshake => parts.push("stall_handshake".to_string()),
            Mode::BadCertificate(k) => parts.push(format!("bad_certificate {}", k.as_str())),
        }
        if self.mode == Mode::Answer {
            if self.status != 200 {
                parts.push(match self.retry_after {
                    Some(r) => format!("{} Retry-After {r}", self.status),
                    None => format!("{}", self.status),
                });
            }
            if self.loss > 0.0 {
                parts.push(format!("loss {:.0}%", self.loss * 100.0));
            }
            if self.delay > Duration::ZERO {
                parts.push(format!("delay {}", self.delay));
            }
        }
        parts.join(", ")
    }

    /// A request arrived at `now`: what comes back, and when.
    pub fn on_request(&mut self, now: Instant, bytes: &[u8]) -> Reply {
        self.stats.requests += 1;
        match self.mode {
            Mode::Refused => {
                self.stats.refused += 1;
                return Reply::Refused;
            }
            Mode::Blackhole | Mode::Hang | Mode::Reset | Mode::StallHandshake | Mode::BadCertificate(_) => {
                self.stats.dropped += 1;
                return Reply::Silent;
            }
            Mode::Answer => {}
        }
        if self.loss > 0.0 && self.rng.next_f64() < self.loss {
            self.stats.dropped += 1;
            return Reply::Silent;
        }
        self.tags += 1;
        let tag = format!("lab{}{:x}", self.side.index(), self.tags);
        let reply = if self.form == HeaderForm::Normal {
            let key = (self.status, self.retry_after);
            if self.template.as_ref().is_none_or(|t| t.key != key) {
                self.template = Some(Template::new(self.status, self.retry_after));
            }
            match self.template.as_ref() {
                Some(t) => t.respond(bytes, &tag),
                None => respond(bytes, self.status, self.retry_after, self.form, &tag),
            }
        } else {
            respond(bytes, self.status, self.retry_after, self.form, &tag)
        };
        match reply {
            Ok(bytes) => {
                self.stats.answered += 1;
                Reply::Send { at: now + self.delay, bytes }
            }
            Err(_) => {
                self.stats.malformed += 1;
                Reply::Silent
            }
        }
    }
}

impl ServerModel {
    /// A new connection over `transport` (TCP or TLS) arrived: what becomes of it.
    pub fn on_connect(&mut self, transport: Transport) -> Connect {
        self.stats.connects += 1;
        let tls = transport == Transport::Tls;
        let c = match self.mode {
            Mode::Answer | Mode::Hang => Connect::Accept,
            Mode::Refused => Connect::Refuse,
            Mode::Reset => Connect::Reset,
            // Nothing reads: TCP connects in the kernel's backlog, a TLS handshake gets no answer.
            Mode::Blackhole if tls => Connect::Stall,
            Mode::Blackhole => Connect::Accept,
            Mode::StallHandshake if tls => Connect::Stall,
            Mode::BadCertificate(k) if tls => Connect::BadCertificate(k),
            // Scenarios refuse these faults on a TCP server; a plain TCP connect has no handshake.
            Mode::StallHandshake | Mode::BadCertificate(_) => Connect::Accept,
        };
        if c == Connect::Accept {
            self.stats.connected += 1;
        }
        if c == Connect::Refuse {
            self.stats.refused += 1;
        }
        c
    }

    /// What the server's current mode does to the connections already open: reset them, close
    /// them (a restart), or nothing.
    pub fn flow_effect(&self) -> Option<FlowError> {
        match self.mode {
            Mode::Refused | Mode::Reset => Some(FlowError::Refused),
            Mode::StallHandshake | Mode::BadCertificate(_) => Some(FlowError::Closed),
            _ => None,
        }
    }

    /// Whether it answers a keep-alive ping on an open connection.
    pub fn answers_ping(&self) -> bool {
        self.mode == Mode::Answer
    }
}

/// Why the model could not answer a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RespondError {
    /// rsip could not parse it as a SIP request.
    NotARequest(String),
    /// A header the response must echo is missing or malformed.
    MissingHeader(&'static str),
}

impl fmt::Display for RespondError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespondError::NotARequest(e) => write!(f, "not a SIP request: {e}"),
            RespondError::MissingHeader(h) => write!(f, "the request has no usable {h} header"),
        }
    }
}

impl std::error::Error for RespondError {}

/// Builds the response to `request` with rsip: status line, then Via, From, To (with `to_tag` added
/// when it has none), Call-ID and CSeq echoed in order, then Server, Retry-After and Content-Length,
/// written in `form`.
pub fn respond(
    request: &[u8],
    status: u16,
    retry_after: Option<u32>,
    form: HeaderForm,
    to_tag: &str,
) -> Result<Vec<u8>, RespondError> {
    let req = rsip::Request::try_from(request).map_err(|e| RespondError::NotARequest(e.to_string()))?;
    let mut headers = Headers::default();
    let (mut via, mut from, mut to, mut call_id, mut cseq) = (false, false, false, false, false);
    for h in req.headers.iter() {
        let out = match h {
            Header::Via(v) => {
                via = true;
                shaped(form, "Via", "v", v.value(), Header::Via(v.clone()))
            }
            Header::From(v) => {
                from = true;
                shaped(form, "From", "f", v.value(), Header::From(v.clone()))
            }
            Header::To(v) => {
                to = true;
                let tagged = match v.tag() {
                    Ok(Some(_)) => v.clone(),
                    Ok(None) => v.clone().with_tag(Tag::new(to_tag)).map_err(|_| RespondError::MissingHeader("To"))?,
                    Err(_) => return Err(RespondError::MissingHeader("To")),
                };
                let value = tagged.value().to_string();
                shaped(form, "To", "t", &value, Header::To(tagged))
            }
            Header::CallId(v) => {
                call_id = true;
                shaped(form, "Call-ID", "i", v.value(), Header::CallId(v.clone()))
            }
            Header::CSeq(v) => {
                cseq = true;
                // CSeq has no compact name.
                shaped(
                    if form == HeaderForm::Compact { HeaderForm::Normal } else { form },
                    "CSeq",
                    "",
                    v.value(),
                    Header::CSeq(v.clone()),
                )
            }
            _ => continue,
        };
        headers.push(out);
    }
    for (present, name) in [(via, "Via"), (from, "From"), (to, "To"), (call_id, "Call-ID"), (cseq, "CSeq")] {
        if !present {
            return Err(RespondError::MissingHeader(name));
        }
    }
    headers.push(Header::Server(Server::new("sip-failover-lab pbx-sim")));
    if let Some(r) = retry_after {
        headers.push(Header::RetryAfter(RetryAfter::new(r.to_string())));
    }
    headers.push(match form {
        HeaderForm::Compact => Header::Other("l".into(), "0".into()),
        _ => Header::ContentLength(ContentLength::new("0")),
    });
    let resp = rsip::Response { status_code: status.into(), version: rsip::Version::V2, headers, body: Vec::new() };
    Ok(resp.to_string().into_bytes())
}

/// The fixed parts of a response in the normal form, built once with rsip: the status line, and the
/// Server, Retry-After and Content-Length headers with the blank line. [`Template::respond`] fills in
/// the echoed headers, each parsed and written by rsip, so its bytes are those of [`respond`] without
/// building a whole rsip response for every request.
#[derive(Debug, Clone)]
pub struct Template {
    key: (u16, Option<u32>),
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl Template {
    /// The template of a `status` response with `retry_after`.
    pub fn new(status: u16, retry_after: Option<u32>) -> Self {
        let mut headers = Headers::default();
        headers.push(Header::Server(Server::new("sip-failover-lab pbx-sim")));
        if let Some(r) = retry_after {
            headers.push(Header::RetryAfter(RetryAfter::new(r.to_string())));
        }
        headers.push(Header::ContentLength(ContentLength::new("0")));
        let resp = rsip::Response { status_code: status.into(), version: rsip::Version::V2, headers, body: Vec::new() };
        let text = resp.to_string().into_bytes();
        let split = text.windows(2).position(|w| w == b"\r\n").map_or(text.len(), |i| i + 2);
        Template { key: (status, retry_after), head: text[..split].to_vec(), tail: text[split..].to_vec() }
    }

    /// The response to `request`, byte for byte what [`respond`] builds in the normal form.
    pub fn respond(&self, request: &[u8], to_tag: &str) -> Result<Vec<u8>, RespondError> {
        use std::io::Write as _;
        let req = rsip::Request::try_from(request).map_err(|e| RespondError::NotARequest(e.to_string()))?;
        let mut out = Vec::with_capacity(self.head.len() + self.tail.len() + 320);
        out.extend_from_slice(&self.head);
        let mut seen = [false; 5];
        for h in req.headers.iter() {
            // Writing into a Vec cannot fail.
            let _ = match h {
                Header::Via(_) => {
                    seen[0] = true;
                    write!(out, "{h}\r\n")
                }
                Header::From(_) => {
                    seen[1] = true;
                    write!(out, "{h}\r\n")
                }
                Header::To(v) => {
                    seen[2] = true;
                    match v.tag() {
                        Ok(Some(_)) => write!(out, "{h}\r\n"),
                        Ok(None) => {
                            let tagged =
                                v.clone().with_tag(Tag::new(to_tag)).map_err(|_| RespondError::MissingHeader("To"))?;
                            write!(out, "{}\r\n", Header::To(tagged))
                        }
                        Err(_) => return Err(RespondError::MissingHeader("To")),
                    }
                }
                Header::CallId(_) => {
                    seen[3] = true;
                    write!(out, "{h}\r\n")
                }
                Header::CSeq(_) => {
                    seen[4] = true;
                    write!(out, "{h}\r\n")
                }
                _ => continue,
            };
        }
        for (present, name) in seen.into_iter().zip(["Via", "From", "To", "Call-ID", "CSeq"]) {
            if !present {
                return Err(RespondError::MissingHeader(name));
            }
        }
        out.extend_from_slice(&self.tail);
        Ok(out)
    }
}

/// A header in the requested form: as rsip types it, under its compact name, or folded after its
/// first parameter separator (or its first space).
fn shaped(form: HeaderForm, name: &str, compact: &str, value: &str, typed: Header) -> Header {
    match form {
        HeaderForm::Normal => typed,
        HeaderForm::Compact => Header::Other(compact.into(), value.into()),
        HeaderForm::Folded => {
            let folded = match value.find(';').or_else(|| value.find(' ')) {
                Some(i) => format!("{}\r\n\t{}", &value[..i], value[i..].trim_start()),
                None => value.to_string(),
            };
            Header::Other(name.into(), folded)
        }
    }
}

/// A fault state change of one server, for timelines and summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultChange {
    /// When.
    pub at: Instant,
    /// Which server.
    pub server: Side,
    /// Its health from now on.
    pub health: Health,
    /// A short description of the fault in force (empty when healthy).
    pub label: String,
}

/// The pair: two server models and the scripted steps still to apply.
#[derive(Debug, Clone)]
pub struct PairModel {
    servers: [ServerModel; 2],
    steps: Vec<(Instant, Side, Action)>,
    next: usize,
}

impl PairModel {
    /// A healthy pair that will apply `steps` (times from the start of the run) in order.
    pub fn new(steps: &[(Duration, Side, Action)], seed: u64) -> Self {
        let mut steps: Vec<(Instant, Side, Action)> =
            steps.iter().map(|(t, s, a)| (Instant::ZERO + *t, *s, *a)).collect();
        steps.sort_by_key(|s| s.0);
        PairModel {
            servers: [ServerModel::new(Side::Primary, seed), ServerModel::new(Side::Backup, seed)],
            steps,
            next: 0,
        }
    }

    /// One server.
    pub fn server(&self, side: Side) -> &ServerModel {
        &self.servers[side.index()]
    }

    /// When the next scripted step is due.
    pub fn next_step_at(&self) -> Option<Instant> {
        self.steps.get(self.next).map(|s| s.0)
    }

    /// Applies every step due at or before `now`; returns the health changes they caused, in order.
    pub fn advance(&mut self, now: Instant) -> Vec<FaultChange> {
        let mut changes = Vec::new();
        while let Some(&(at, side, action)) = self.steps.get(self.next) {
            if at > now {
                break;
            }
            self.next += 1;
            let s = &mut self.servers[side.index()];
            let (health, label) = (s.health(), s.fault_label());
            s.apply(action);
            let (h2, l2) = (s.health(), s.fault_label());
            if h2 != health || l2 != label {
                changes.push(FaultChange { at, server: side, health: h2, label: l2 });
            }
        }
        changes
    }

    /// A connection to `side` over `transport` arrived (steps due by then must have been applied).
    pub fn connect(&mut self, side: Side, transport: Transport) -> Connect {
        self.servers[side.index()].on_connect(transport)
    }

    /// A request for `side` arrived at `now` (steps due by then must have been applied).
    pub fn on_request(&mut self, side: Side, now: Instant, bytes: &[u8]) -> Reply {
        self.servers[side.index()].on_request(now, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "OPTIONS sip:pbx-a.lab:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\nMax-Forwards: 70\r\nFrom: <sip:p7@127.0.0.1:5070>;tag=f1\r\nTo: <sip:pbx-a.lab:5060>\r\nCall-ID: c1\r\nCSeq: 4 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_response_echoes_the_request_and_tags_to() {
        let r = String::from_utf8(respond(REQ.as_bytes(), 200, None, HeaderForm::Normal, "t9").unwrap()).unwrap();
        assert!(r.starts_with("SIP/2.0 200 "), "{r}");
        assert!(r.contains("Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n"), "{r}");
        assert!(r.contains("To: <sip:pbx-a.lab:5060>;tag=t9\r\n"), "{r}");
        assert!(r.contains("CSeq: 4 OPTIONS\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n"), "{r:?}");
    }

    #[test]
    fn a_template_writes_the_same_bytes_as_a_whole_rsip_response() {
        let tagged = REQ.replace("To: <sip:pbx-a.lab:5060>", "To: <sip:pbx-a.lab:5060>;tag=x1");
        let two_vias = REQ.replace("Max-Forwards", "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKz\r\nMax-Forwards");
        for (status, retry) in [(200, None), (503, Some(60)), (486, None)] {
            let t = Template::new(status, retry);
            for req in [REQ, tagged.as_str(), two_vias.as_str()] {
                assert_eq!(
                    t.respond(req.as_bytes(), "t9").unwrap(),
                    respond(req.as_bytes(), status, retry, HeaderForm::Normal, "t9").unwrap(),
                    "{status} {req}"
                );
            }
            let no_cseq = REQ.replace("CSeq: 4 OPTIONS\r\n", "");
            assert_eq!(t.respond(no_cseq.as_bytes(), "t"), Err(RespondError::MissingHeader("CSeq")));
        }
    }

    #[test]
    fn compact_and_folded_forms() {
        let c = String::from_utf8(respond(REQ.as_bytes(), 503, Some(60), HeaderForm::Compact, "t").unwrap()).unwrap();
        assert!(c.contains("\r\nv: SIP/2.0/UDP") && c.contains("\r\ni: c1\r\n") && c.contains("\r\nl: 0\r\n"), "{c}");
        assert!(c.contains("Retry-After: 60\r\n"), "{c}");
        let f = String::from_utf8(respond(REQ.as_bytes(), 200, None, HeaderForm::Folded, "t").unwrap()).unwrap();
        assert!(f.contains("Via: SIP/2.0/UDP 127.0.0.1:5070\r\n\t;branch="), "{f}");
    }

    #[test]
    fn loss_is_reproducible_from_the_seed() {
        let run = |seed| {
            let mut s = ServerModel::new(Side::Primary, seed);
            s.apply(Action::Loss(0.5));
            (0..64)
                .map(|_| matches!(s.on_request(Instant::ZERO, REQ.as_bytes()), Reply::Send { .. }))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }
}
