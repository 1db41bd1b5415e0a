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
use core::ops::Range;
use core::str::FromStr;
use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use serde::Deserialize;
use toml::Spanned;

use super::calendar::Window;
use crate::files::{line_col, value_in_words, FileError, FileErrorKind, TomlText};

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    #[serde(default)]
    notice: Vec<RawNotice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    id: Spanned<String>,
    cluster: Spanned<String>,
    // A time is an RFC 3339 string or a TOML offset date-time.
    start: Spanned<toml::Value>,
    end: Spanned<toml::Value>,
    impact: Spanned<String>,
    published: Spanned<toml::Value>,
    title: Option<Spanned<String>>,
}

/// What a time field takes, in words.
const TIME: &str = "an RFC 3339 time with an offset, such as \"2024-03-15T07:00:00Z\"";

/// The impact names a file may use.
const IMPACTS: &[&str] = &["none", "minimal", "high"];

/// Where each field of a notice is, for validation errors.
#[derive(Clone, Default)]
struct Spans {
    id: Option<Range<usize>>,
    cluster: Option<Range<usize>>,
    end: Option<Range<usize>>,
    published: Option<Range<usize>>,
}

/// A validated list of maintenance notices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeFeed {
    notices: Vec<Notice>,
}

impl NoticeFeed {
    /// A feed from notices, validated like a file (ids unique and non-empty, cluster non-empty, end after
    /// start, published not after end). An error has no file; its field names the notice by its
    /// 0-based index (`notice[1].end`).
    pub fn new(notices: Vec<Notice>) -> Result<NoticeFeed, FileError> {
        let spans = vec![Spans::default(); notices.len()];
        validate(&notices, &spans, None, |_span, field, kind| FileError::new(None, kind).with_field(field))?;
        Ok(NoticeFeed { notices })
    }

    /// Reads a feed from TOML `text`; `path` is only used to name the file in errors.
    pub fn parse(text: &str, path: &str) -> Result<NoticeFeed, FileError> {
        let cx = TomlText::new(Path::new(path), text);
        let raw: RawFeed = cx.deserialize()?;
        let mut notices = Vec::with_capacity(raw.notice.len());
        let mut spans = Vec::with_capacity(raw.notice.len());
        for (i, r) in raw.notice.into_iter().enumerate() {
            let field = |name: &str| format!("notice[{i}].{name}");
            let text_field = |v: &Spanned<String>, name: &str| {
                let t = v.get_ref().trim();
                if t.is_empty() {
                    Err(cx.at(v, &field(name), FileErrorKind::Empty))
                } else {
                    Ok(t.to_owned())
                }
            };
            let time_field = |v: &Spanned<toml::Value>, name: &str| {
                let text = match v.get_ref() {
                    toml::Value::String(s) => s.clone(),
                    toml::Value::Datetime(d) => d.to_string(),
                    other => {
                        let kind = FileErrorKind::WrongType { expected: TIME.into(), found: value_in_words(other) };
                        return Err(cx.at(v, &field(name), kind));
                    }
                };
                text.trim()
                    .parse::<Timestamp>()
                    .map_err(|_| cx.at(v, &field(name), FileErrorKind::Invalid { value: text, expected: TIME.into() }))
            };
            let id = text_field(&r.id, "id")?;
            let cluster = text_field(&r.cluster, "cluster")?;
            let start = time_field(&r.start, "start")?;
            let end = time_field(&r.end, "end")?;
            let published = time_field(&r.published, "published")?;
            let impact = r.impact.get_ref().parse::<Impact>().map_err(|_| {
                let kind = FileErrorKind::NotOneOf { value: r.impact.get_ref().clone(), allowed: IMPACTS };
                cx.at(&r.impact, &field("impact"), kind)
            })?;
            let title = r.title.map(Spanned::into_inner);
            spans.push(Spans {
                id: Some(r.id.span()),
                cluster: Some(r.cluster.span()),
                end: Some(r.end.span()),
                published: Some(r.published.span()),
            });
            notices.push(Notice { id, cluster, start, end, impact, published, title });
        }
        validate(&notices, &spans, Some(text), |span, field, kind| cx.error(span, &field, kind))?;
        Ok(NoticeFeed { notices })
    }

    /// Reads a feed from a file.
    pub fn load(path: &Path) -> Result<NoticeFeed, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError::io(path, &e))?;
        NoticeFeed::parse(&text, &path.display().to_string())
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

/// Checks the rules that span fields or notices; `err(span, field, kind)` builds the error. `text`
/// is the file's, when the notices come from one.
fn validate<E>(notices: &[Notice], spans: &[Spans], text: Option<&str>, err: E) -> Result<(), FileError>
where
    E: Fn(Option<Range<usize>>, String, FileErrorKind) -> FileError,
{
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in notices.iter().enumerate() {
        let s = spans.get(i).cloned().unwrap_or_default();
        let field = |name: &str| format!("notice[{i}].{name}");
        if n.id.trim().is_empty() {
            return Err(err(s.id, field("id"), FileErrorKind::Empty));
        }
        if n.cluster.trim().is_empty() {
            return Err(err(s.cluster, field("cluster"), FileErrorKind::Empty));
        }
        if n.end <= n.start {
            return Err(err(s.end, field("end"), FileErrorKind::MustBeAfter { other: "start" }));
        }
        if n.published > n.end {
            return Err(err(s.published, field("published"), FileErrorKind::MustNotBeAfter { other: "end" }));
        }
        if let Some(&first) = seen.get(n.id.as_str()) {
            let first_id = spans.get(first).and_then(|s| s.id.clone());
            let first_line = text.zip(first_id).map(|(t, span)| line_col(t, span.start).0);
            let kind = FileErrorKind::Duplicate { value: n.id.clone(), first_line };
            return Err(err(s.id, field("id"), kind));
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
