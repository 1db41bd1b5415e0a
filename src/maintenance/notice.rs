//! The maintenance notice feed (seed 000): what the phone's "bell" counts.
//!
//! An operator publishes interventions, each naming the cluster (or region) it affects, a start and end,
//! and an impact level. A phone knows which clusters its servers are in; a notice counts for it from its
//! publication until its window ends, and then disappears by itself.
//!
//! ## File format
//!
//! A TOML file with one `[[notice]]` table per notice:
//!
//! ```toml
//! [[notice]]
//! id = "CX-2024-031"                    # unique in the file
//! cluster = "cx-eu-2"                   # cluster or region name
//! start = "2024-03-15T07:00:00Z"        # RFC 3339 with an offset (or a TOML offset date-time)
//! end = "2024-03-15T08:00:00Z"          # after start
//! impact = "minimal"                    # none | minimal | high
//! published = "2024-03-11T13:00:00Z"    # not after end
//! title = "Version upgrade"             # optional
//! ```
//!
//! Unknown keys are errors (a misspelt key should not be silently ignored). Errors name the file, the
//! line and column, and the field.
//!
//! ## Cluster matching
//!
//! Cluster and region names are compared exactly, ignoring case and surrounding white space. Regions
//! are not expanded: a notice for region `eu` affects a phone that lists `eu` among its clusters.

use core::fmt;
use core::str::FromStr;
use std::collections::HashMap;

use jiff::Timestamp;
use serde::Deserialize;
use toml::Spanned;

use super::calendar::Window;
use crate::files::line_col;

/// How much a maintenance intervention may disturb service.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Impact {
    /// No impact expected.
    None,
    /// Minimal impact: short interruptions at most (seed 000: "minimum or no impact").
    Minimal,
    /// Higher impact: service may be down for part of the window.
    High,
}

impl Impact {
    /// The name used in files and on the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Impact::None => "none",
            Impact::Minimal => "minimal",
            Impact::High => "high",
        }
    }
}

impl fmt::Display for Impact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An impact name that is not `none`, `minimal` or `high`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownImpact {
    /// The text as given.
    pub text: String,
}

impl fmt::Display for UnknownImpact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown impact {:?}: expected none, minimal or high", self.text)
    }
}

impl std::error::Error for UnknownImpact {}

impl FromStr for Impact {
    type Err = UnknownImpact;

    /// Parses `none`, `minimal` (also `minimum`, `low`) or `high`, ignoring case.
    fn from_str(s: &str) -> Result<Impact, UnknownImpact> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Impact::None),
            "minimal" | "minimum" | "low" => Ok(Impact::Minimal),
            "high" => Ok(Impact::High),
            _ => Err(UnknownImpact { text: s.to_owned() }),
        }
    }
}

/// Whether two cluster or region names are the same (case-insensitive, surrounding white space ignored).
pub fn cluster_matches(a: &str, b: &str) -> bool {
    a.trim().chars().flat_map(char::to_lowercase).eq(b.trim().chars().flat_map(char::to_lowercase))
}

/// One announced maintenance intervention.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Unique identifier, e.g. `CX-2024-031`.
    pub id: String,
    /// The affected cluster or region.
    pub cluster: String,
    /// Start of the maintenance window.
    pub start: Timestamp,
    /// End of the maintenance window (exclusive).
    pub end: Timestamp,
    /// Expected impact.
    pub impact: Impact,
    /// When the notice was (or will be) published.
    pub published: Timestamp,
    /// Optional short description.
    pub title: Option<String>,
}

impl Notice {
    /// The maintenance window.
    pub fn window(&self) -> Window {
        Window::new(self.start, self.end)
    }

    /// Whether the notice names one of `clusters`.
    pub fn affects(&self, clusters: &[&str]) -> bool {
        clusters.iter().any(|c| cluster_matches(&self.cluster, c))
    }

    /// Whether the notice is on display at `now`: published and its window not yet ended.
    pub fn is_shown(&self, now: Timestamp) -> bool {
        self.published <= now && now < self.end
    }
}

/// What was wrong with a notice feed.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedErrorKind {
    /// The file could not be read.
    Io(std::io::ErrorKind),
    /// Not valid TOML, an unknown key or a missing key (the TOML reader's message).
    Syntax(String),
    /// A value of the wrong TOML type.
    WrongType {
        /// What was expected.
        expected: &'static str,
    },
    /// A time that is not an RFC 3339 instant with an offset.
    BadTimestamp {
        /// The text as given.
        value: String,
    },
    /// An impact other than none, minimal or high.
    UnknownImpact {
        /// The text as given.
        value: String,
    },
    /// A required text is empty.
    Empty,
    /// The end is not after the start.
    EndNotAfterStart,
    /// The publication is after the end.
    PublishedAfterEnd,
    /// Two notices with the same id.
    DuplicateId {
        /// The id.
        id: String,
        /// Where the first one is: its line in the file, or its 1-based position in the list.
        first: usize,
    },
}

impl fmt::Display for FeedErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedErrorKind::Io(kind) => write!(f, "cannot read the file: {kind}"),
            FeedErrorKind::Syntax(message) => f.write_str(message.trim_end()),
            FeedErrorKind::WrongType { expected } => write!(f, "expected {expected}"),
            FeedErrorKind::BadTimestamp { value } => {
                write!(f, "invalid time {value:?}: expected RFC 3339 with an offset, e.g. \"2024-03-15T07:00:00Z\"")
            }
            FeedErrorKind::UnknownImpact { value } => {
                write!(f, "unknown impact {value:?}: expected none, minimal or high")
            }
            FeedErrorKind::Empty => f.write_str("must not be empty"),
            FeedErrorKind::EndNotAfterStart => f.write_str("end must be after start"),
            FeedErrorKind::PublishedAfterEnd => f.write_str("published must not be after the end of the window"),
            FeedErrorKind::DuplicateId { id, first } => {
                write!(f, "duplicate id {id:?} (first used at {first})")
            }
        }
    }
}

/// A notice feed that could not be read or is not valid, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedError {
    path: Option<String>,
    line: Option<usize>,
    column: Option<usize>,
    notice: Option<usize>,
    field: Option<&'static str>,
    kind: FeedErrorKind,
}

impl FeedError {
    fn in_file(path: &str, text: &str, span: Option<core::ops::Range<usize>>, kind: FeedErrorKind) -> Self {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        FeedError { path: Some(path.to_owned()), line, column, notice: None, field: None, kind }
    }

    fn field(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }

    /// What was wrong.
    pub fn kind(&self) -> &FeedErrorKind {
        &self.kind
    }

    /// The file, if the feed came from one.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The 1-based line in the file, if known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based character column in the file, if known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The 1-based position of the notice in a list given to [`NoticeFeed::new`].
    pub fn notice(&self) -> Option<usize> {
        self.notice
    }

    /// The field at fault (`id`, `cluster`, `start`, `end`, `impact`, `published`, `title`), if one.
    pub fn field_name(&self) -> Option<&'static str> {
        self.field
    }
}

impl fmt::Display for FeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.line, self.column) {
            (Some(p), Some(l), Some(c)) => write!(f, "{p}:{l}:{c}: ")?,
            (Some(p), Some(l), None) => write!(f, "{p}:{l}: ")?,
            (Some(p), None, _) => write!(f, "{p}: ")?,
            (None, _, _) => {}
        }
        if let Some(n) = self.notice {
            write!(f, "notice {n}: ")?;
        }
        if let Some(field) = self.field {
            write!(f, "field `{field}`: ")?;
        }
        self.kind.fmt(f)
    }
}

impl std::error::Error for FeedError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    #[serde(default)]
    notice: Vec<RawNotice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    id: Spanned<toml::Value>,
    cluster: Spanned<toml::Value>,
    start: Spanned<toml::Value>,
    end: Spanned<toml::Value>,
    impact: Spanned<toml::Value>,
    published: Spanned<toml::Value>,
    title: Option<Spanned<toml::Value>>,
}

/// Where each field of a notice is, for validation errors.
#[derive(Clone, Default)]
struct Spans {
    id: Option<core::ops::Range<usize>>,
    cluster: Option<core::ops::Range<usize>>,
    end: Option<core::ops::Range<usize>>,
    published: Option<core::ops::Range<usize>>,
}

/// A validated list of maintenance notices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeFeed {
    notices: Vec<Notice>,
}

impl NoticeFeed {
    /// A feed from notices, validated like a file (ids unique and non-empty, cluster non-empty, end after
    /// start, published not after end).
    pub fn new(notices: Vec<Notice>) -> Result<NoticeFeed, FeedError> {
        let spans = vec![Spans::default(); notices.len()];
        validate(&notices, &spans, |index, _span, field, kind| FeedError {
            path: None,
            line: None,
            column: None,
            notice: Some(index + 1),
            field: Some(field),
            kind,
        })?;
        Ok(NoticeFeed { notices })
    }

    /// Reads a feed from TOML `text`; `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &str) -> Result<NoticeFeed, FeedError> {
        let raw: RawFeed = toml::from_str(text)
            .map_err(|e| FeedError::in_file(path, text, e.span(), FeedErrorKind::Syntax(e.message().to_owned())))?;
        let err = |span: core::ops::Range<usize>, field: &'static str, kind| {
            FeedError::in_file(path, text, Some(span), kind).field(field)
        };
        let mut notices = Vec::with_capacity(raw.notice.len());
        let mut spans = Vec::with_capacity(raw.notice.len());
        for r in raw.notice {
            let id = text_field(&r.id, "id", &err)?;
            let cluster = text_field(&r.cluster, "cluster", &err)?;
            let start = time_field(&r.start, "start", &err)?;
            let end = time_field(&r.end, "end", &err)?;
            let published = time_field(&r.published, "published", &err)?;
            let impact_text = string_field(&r.impact, "impact", &err)?;
            let impact = impact_text.parse::<Impact>().map_err(|_| {
                err(r.impact.span(), "impact", FeedErrorKind::UnknownImpact { value: impact_text.to_owned() })
            })?;
            let title = match &r.title {
                None => None,
                Some(t) => Some(string_field(t, "title", &err)?.to_owned()),
            };
            spans.push(Spans {
                id: Some(r.id.span()),
                cluster: Some(r.cluster.span()),
                end: Some(r.end.span()),
                published: Some(r.published.span()),
            });
            notices.push(Notice { id, cluster, start, end, impact, published, title });
        }
        validate(&notices, &spans, |_index, span, field, kind| {
            let mut e = FeedError::in_file(path, text, span, kind).field(field);
            if let FeedErrorKind::DuplicateId { first, .. } = &mut e.kind {
                // Report the first one's line rather than its position.
                let first_span = spans.get(first.saturating_sub(1)).and_then(|s| s.id.clone());
                if let Some(s) = first_span {
                    *first = line_col(text, s.start).0;
                }
            }
            e
        })?;
        Ok(NoticeFeed { notices })
    }

    /// Reads a feed from a file.
    pub fn load(path: &std::path::Path) -> Result<NoticeFeed, FeedError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| FeedError {
            path: Some(name.clone()),
            line: None,
            column: None,
            notice: None,
            field: None,
            kind: FeedErrorKind::Io(e.kind()),
        })?;
        NoticeFeed::parse(&text, &name)
    }

    /// The feed in the TOML file format (times in UTC); [`NoticeFeed::parse`] reads it back unchanged.
    pub fn to_toml(&self) -> String {
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let mut out = String::new();
        for (i, n) in self.notices.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str("[[notice]]\n");
            out.push_str(&format!("id = {}\n", q(&n.id)));
            out.push_str(&format!("cluster = {}\n", q(&n.cluster)));
            out.push_str(&format!("start = \"{}\"\n", n.start));
            out.push_str(&format!("end = \"{}\"\n", n.end));
            out.push_str(&format!("impact = \"{}\"\n", n.impact));
            out.push_str(&format!("published = \"{}\"\n", n.published));
            if let Some(t) = &n.title {
                out.push_str(&format!("title = {}\n", q(t)));
            }
        }
        out
    }

    /// All notices, in file order.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// How many notices there are.
    pub fn len(&self) -> usize {
        self.notices.len()
    }

    /// Whether there are no notices.
    pub fn is_empty(&self) -> bool {
        self.notices.is_empty()
    }

    /// The notices that name one of `clusters`, published or not, ended or not.
    pub fn for_clusters<'a>(&'a self, clusters: &'a [&'a str]) -> impl Iterator<Item = &'a Notice> + 'a {
        self.notices.iter().filter(move |n| n.affects(clusters))
    }

    /// The notices on display at `now` for a phone in `clusters`: published, not yet ended.
    pub fn affecting<'a>(&'a self, now: Timestamp, clusters: &'a [&'a str]) -> impl Iterator<Item = &'a Notice> + 'a {
        self.for_clusters(clusters).filter(move |n| n.is_shown(now))
    }

    /// The bell number at `now`: how many notices [`affecting`](Self::affecting) there are.
    pub fn bell_count(&self, now: Timestamp, clusters: &[&str]) -> usize {
        self.notices.iter().filter(|n| n.affects(clusters) && n.is_shown(now)).count()
    }

    /// The next instant after `now` at which the bell number for `clusters` can change (a publication or an
    /// end), so a driver can sleep until then; `None` if it never changes again.
    pub fn next_change(&self, now: Timestamp, clusters: &[&str]) -> Option<Timestamp> {
        self.notices
            .iter()
            .filter(|n| n.affects(clusters) && n.published < n.end)
            .flat_map(|n| [n.published, n.end])
            .filter(|&t| t > now)
            .min()
    }
}

fn string_field<'v, E>(v: &'v Spanned<toml::Value>, field: &'static str, err: &E) -> Result<&'v str, FeedError>
where
    E: Fn(core::ops::Range<usize>, &'static str, FeedErrorKind) -> FeedError,
{
    match v.get_ref() {
        toml::Value::String(s) => Ok(s),
        _ => Err(err(v.span(), field, FeedErrorKind::WrongType { expected: "a string" })),
    }
}

fn text_field<E>(v: &Spanned<toml::Value>, field: &'static str, err: &E) -> Result<String, FeedError>
where
    E: Fn(core::ops::Range<usize>, &'static str, FeedErrorKind) -> FeedError,
{
    let s = string_field(v, field, err)?.trim();
    if s.is_empty() {
        return Err(err(v.span(), field, FeedErrorKind::Empty));
    }
    Ok(s.to_owned())
}

fn time_field<E>(v: &Spanned<toml::Value>, field: &'static str, err: &E) -> Result<Timestamp, FeedError>
where
    E: Fn(core::ops::Range<usize>, &'static str, FeedErrorKind) -> FeedError,
{
    let text = match v.get_ref() {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => {
            return Err(err(v.span(), field, FeedErrorKind::WrongType { expected: "an RFC 3339 time with an offset" }))
        }
    };
    text.trim().parse::<Timestamp>().map_err(|_| err(v.span(), field, FeedErrorKind::BadTimestamp { value: text }))
}

/// Checks the rules that span fields or notices; `err(index, span, field, kind)` builds the error.
fn validate<E>(notices: &[Notice], spans: &[Spans], err: E) -> Result<(), FeedError>
where
    E: Fn(usize, Option<core::ops::Range<usize>>, &'static str, FeedErrorKind) -> FeedError,
{
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in notices.iter().enumerate() {
        let s = spans.get(i).cloned().unwrap_or_default();
        if n.id.trim().is_empty() {
            return Err(err(i, s.id, "id", FeedErrorKind::Empty));
        }
        if n.cluster.trim().is_empty() {
            return Err(err(i, s.cluster, "cluster", FeedErrorKind::Empty));
        }
        if n.end <= n.start {
            return Err(err(i, s.end, "end", FeedErrorKind::EndNotAfterStart));
        }
        if n.published > n.end {
            return Err(err(i, s.published, "published", FeedErrorKind::PublishedAfterEnd));
        }
        if let Some(&first) = seen.get(n.id.as_str()) {
            return Err(err(i, s.id, "id", FeedErrorKind::DuplicateId { id: n.id.clone(), first: first + 1 }));
        }
        seen.insert(n.id.as_str(), i);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names() {
        assert!(cluster_matches("cx-EU-2", " CX-eu-2 "));
        assert!(!cluster_matches("cx-eu-2", "cx-eu-20"));
        assert!(!cluster_matches("eu", "cx-eu-2"));
    }
}
