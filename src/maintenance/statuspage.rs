//! Scheduled maintenances from a status page (the public Atlassian Statuspage v2 API, the most common
//! hosted status page; seed 000's operator publishes on one) as [`Notice`]s.
//!
//! A page serves its maintenances at `<page>/api/v2/scheduled-maintenances/upcoming.json` (announced,
//! not started) and `.../active.json` (in progress or verifying). Each maintenance has an `id`, a
//! `name`, a `status` (`scheduled`, `in_progress`, `verifying`, `completed`), an `impact` (`none`,
//! `minor`, `major`, `critical`, `maintenance`), the window `scheduled_for` to `scheduled_until`,
//! `created_at`, and the `components` it affects (`{id, name, ...}`).
//!
//! A maintenance affects a phone's server when one of its components, by `name` or by `id`, equals the
//! server's cluster (compared as [`cluster_matches`]): it becomes one notice per matching cluster, shown
//! from `created_at` until its window ends, and gone once its status is `completed`. Impacts map to
//! [`Impact`]: `none` to none, `minor` and `maintenance` to minimal, `major` and `critical` to high.
//! Other fields of the schema (`incident_updates`, `page`, `shortlink`, ...) are read past.
//!
//! A document that is not the schema's JSON, or a maintenance without its window, with its end before
//! its start, or without an id, is refused whole with an error naming the source, the line and column
//! (for JSON errors) and the field (`scheduled_maintenances[2].scheduled_until`): the caller keeps the
//! notices it had.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::json;

use super::notice::{cluster_matches, Impact, Notice};
use super::url::HttpUrl;
use crate::files::{FileError, FileErrorKind};

/// The path of the upcoming maintenances below a page's base URL.
pub const UPCOMING: &str = "api/v2/scheduled-maintenances/upcoming.json";
/// The path of the maintenances in progress below a page's base URL.
pub const ACTIVE: &str = "api/v2/scheduled-maintenances/active.json";
/// The largest document read, in bytes; a larger body is an error, not a truncated read.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Deserialize)]
struct Document {
    scheduled_maintenances: Vec<Maintenance>,
}

#[derive(Deserialize)]
struct Maintenance {
    id: Option<String>,
    name: Option<String>,
    status: Option<String>,
    impact: Option<String>,
    created_at: Option<String>,
    scheduled_for: Option<String>,
    scheduled_until: Option<String>,
    #[serde(default)]
    components: Vec<Component>,
}

#[derive(Deserialize)]
struct Component {
    id: Option<String>,
    name: Option<String>,
}

const STATUSES: &[&str] = &["scheduled", "in_progress", "verifying", "completed"];
const IMPACTS: &[&str] = &["none", "minor", "major", "critical", "maintenance"];

/// The notices of one status-page document (`upcoming.json` or `active.json`) for a phone whose
/// servers are in `clusters`. `source` names the document in errors (its URL).
pub fn notices(body: &str, source: &str, clusters: &[&str]) -> Result<Vec<Notice>, FileError> {
    let path = Path::new(source);
    if body.len() > MAX_BODY {
        let kind = FileErrorKind::OutOfRange {
            value: format!("{} bytes", body.len()),
            allowed: format!("at most {MAX_BODY} bytes"),
        };
        return Err(FileError::new(Some(path), kind));
    }
    let doc: Document = serde_json::from_str(body).map_err(|e| {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
        let mut err = FileError::new(Some(path), FileErrorKind::Syntax(message));
        if e.line() > 0 {
            err = err.at(e.line(), e.column());
        }
        err
    })?;
    let mut out = Vec::new();
    for (i, m) in doc.scheduled_maintenances.iter().enumerate() {
        let field = |name: &str| format!("scheduled_maintenances[{i}].{name}");
        let err = |name: &str, kind| FileError::new(Some(path), kind).with_field(field(name));
        let id =
            m.id.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| err("id", FileErrorKind::MissingKey))?;
        let time = |name: &str, v: &Option<String>| -> Result<Timestamp, FileError> {
            let text = v.as_deref().ok_or_else(|| err(name, FileErrorKind::MissingKey))?;
            text.trim().parse::<Timestamp>().map_err(|_| {
                err(
                    name,
                    FileErrorKind::Invalid {
                        value: text.to_owned(),
                        expected: "an ISO 8601 time with an offset".into(),
                    },
                )
            })
        };
        let start = time("scheduled_for", &m.scheduled_for)?;
        let end = time("scheduled_until", &m.scheduled_until)?;
        if end <= start {
            return Err(err("scheduled_until", FileErrorKind::MustBeAfter { other: "scheduled_for" }));
        }
        let published = match &m.created_at {
            Some(_) => time("created_at", &m.created_at)?.min(end),
            None => start,
        };
        let status = m.status.as_deref().unwrap_or("scheduled").trim();
        if !STATUSES.contains(&status) {
            return Err(err("status", FileErrorKind::NotOneOf { value: status.to_owned(), allowed: STATUSES }));
        }
        let impact = match m.impact.as_deref().unwrap_or("maintenance").trim() {
            "none" => Impact::None,
            "minor" | "maintenance" => Impact::Minimal,
            "major" | "critical" => Impact::High,
            other => return Err(err("impact", FileErrorKind::NotOneOf { value: other.to_owned(), allowed: IMPACTS })),
        };
        if status == "completed" {
            continue;
        }
        let matched: Vec<&str> = clusters
            .iter()
            .copied()
            .filter(|c| {
                m.components.iter().any(|comp| {
                    comp.name.as_deref().is_some_and(|n| cluster_matches(n, c))
                        || comp.id.as_deref().is_some_and(|n| cluster_matches(n, c))
                })
            })
            .collect();
        for cluster in &matched {
            let id = if matched.len() > 1 { format!("{id}@{}", cluster.trim()) } else { id.to_owned() };
            let title = m.name.clone().filter(|t| !t.trim().is_empty());
            out.push(Notice { id, cluster: cluster.trim().to_owned(), start, end, impact, published, title });
        }
    }
    Ok(out)
}

/// The notices of a page's two documents, one notice per id: a maintenance listed in both (it has
/// just started) is taken from `active`.
pub fn merge(upcoming: Vec<Notice>, active: Vec<Notice>) -> Vec<Notice> {
    let mut by_id: BTreeMap<String, Notice> = BTreeMap::new();
    for n in upcoming.into_iter().chain(active) {
        by_id.insert(n.id.clone(), n);
    }
    by_id.into_values().collect()
}

/// `notices` as a Statuspage `scheduled-maintenances` document (status `scheduled`, one component
/// named after each notice's cluster), so lab testers can serve realistic pages to the agent.
pub fn to_json(notices: &[Notice], page_name: &str) -> String {
    let impact = |i: Impact| match i {
        Impact::None => "none",
        Impact::Minimal => "minor",
        Impact::High => "major",
    };
    let list: Vec<_> = notices
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "name": n.title,
                "status": "scheduled",
                "impact": impact(n.impact),
                "created_at": n.published.to_string(),
                "scheduled_for": n.start.to_string(),
                "scheduled_until": n.end.to_string(),
                "components": [{"id": n.cluster, "name": n.cluster, "status": "operational"}],
                "incident_updates": [],
            })
        })
        .collect();
    let doc = json!({
        "page": {"id": page_name, "name": page_name, "time_zone": "Etc/UTC"},
        "scheduled_maintenances": list,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// A status page's base URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl {
    /// `https://` (else `http://`).
    pub https: bool,
    /// The host name or address (an IPv6 literal without brackets).
    pub host: String,
    /// The port (443 or 80 when the URL has none).
    pub port: u16,
    /// The path prefix, ending with `/`.
    pub prefix: String,
}

impl PageUrl {
    /// Reads `https://host[:port][/path]` or `http://...`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<PageUrl, String> {
        let HttpUrl { https, host, port, mut path } = HttpUrl::parse(text)?;
        if path.contains('?') {
            return Err(format!("`{text}`: a page's base URL takes no query"));
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        Ok(PageUrl { https, host, port, prefix: path })
    }

    /// The URL of `doc` below the page.
    pub fn document(&self, doc: &str) -> String {
        let origin = HttpUrl { https: self.https, host: self.host.clone(), port: self.port, path: String::new() };
        format!("{}{}{doc}", origin.origin(), self.prefix)
    }
}

impl fmt::Display for PageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.document(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_urls() {
        let u = PageUrl::parse("https://trust.example.com").unwrap();
        assert_eq!(u.document(UPCOMING), "https://trust.example.com:443/api/v2/scheduled-maintenances/upcoming.json");
        let u = PageUrl::parse("http://127.0.0.1:8080/status/").unwrap();
        assert_eq!(u.document(ACTIVE), "http://127.0.0.1:8080/status/api/v2/scheduled-maintenances/active.json");
        let u = PageUrl::parse("http://[::1]:81/p").unwrap();
        assert_eq!(u.document("x"), "http://[::1]:81/p/x");
        for (bad, why) in [
            ("ftp://x", "the scheme must be https or http"),
            ("trust.example.com", "expected an https:// or http:// URL"),
            ("https://x/?a=1", "takes no query"),
            ("https://", "not a URL"),
        ] {
            let e = PageUrl::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
