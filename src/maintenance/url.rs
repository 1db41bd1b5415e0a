//! The `http://` or `https://` URL of a maintenance source (a calendar, a status page), checked once
//! where it is read, with an error that says what is wrong.

use std::fmt;

use hyper::Uri;

/// An `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    /// `https://` (else `http://`).
    pub https: bool,
    /// The host name or address (an IPv6 literal without brackets).
    pub host: String,
    /// The port (443 or 80 when the URL has none).
    pub port: u16,
    /// The path and query asked for (`/team.ics?token=x`), `/` when the URL has none.
    pub path: String,
}

impl HttpUrl {
    /// Reads `https://host[:port][/path][?query]` or `http://...`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<HttpUrl, String> {
        let uri: Uri = text.trim().parse().map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("`{text}`: the scheme must be https or http, not `{other}`")),
            None => return Err(format!("`{text}`: expected an https:// or http:// URL")),
        };
        let host = uri.host().filter(|h| !h.is_empty()).ok_or_else(|| format!("`{text}`: no host"))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let path = if path.is_empty() { "/".to_owned() } else { path.to_owned() };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(HttpUrl { https, host: host.trim_start_matches('[').trim_end_matches(']').to_owned(), port, path })
    }

    /// `scheme://host:port`, an IPv6 host in brackets.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_read_and_print() {
        let u = HttpUrl::parse("https://cal.example.com/team.ics?token=x").unwrap();
        assert_eq!(
            (u.https, u.host.as_str(), u.port, u.path.as_str()),
            (true, "cal.example.com", 443, "/team.ics?token=x")
        );
        assert_eq!(u.to_string(), "https://cal.example.com:443/team.ics?token=x");
        let u = HttpUrl::parse(" http://[::1]:8080 ").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("::1", 8080, "/"));
        assert_eq!(u.to_string(), "http://[::1]:8080/");
        assert_eq!(HttpUrl::parse("ftp://x/").unwrap_err(), "`ftp://x/`: the scheme must be https or http, not `ftp`");
        assert_eq!(HttpUrl::parse("/just/a/path").unwrap_err(), "`/just/a/path`: expected an https:// or http:// URL");
        assert!(HttpUrl::parse("http://exa mple/").unwrap_err().starts_with("`http://exa mple/` is not a URL"));
    }
}
