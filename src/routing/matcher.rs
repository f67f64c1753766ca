//! What a route matches on: Istio's `StringMatch` and the request conditions built from it.

use http::HeaderMap;
use http::header::HeaderName;
use regex::Regex;

/// Istio's StringMatch. Regexes must match the whole value, as Envoy's `safe_regex` does.
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

impl StringMatch {
    /// Compiles a regex anchored at both ends, so `v1` does not match `v10`.
    pub fn regex(pattern: &str) -> Result<Self, regex::Error> {
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map(StringMatch::Regex)
    }

    #[inline]
    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(s) => value == s,
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Regex(re) => re.is_match(value),
        }
    }

    /// The kind and text, for display (`/config`, errors).
    pub fn describe(&self) -> (&'static str, &str) {
        match self {
            StringMatch::Exact(s) => ("exact", s),
            StringMatch::Prefix(s) => ("prefix", s),
            // Show the user's pattern, not the anchored one we compiled.
            StringMatch::Regex(re) => {
                let s = re.as_str();
                ("regex", &s[4..s.len() - 2])
            }
        }
    }
}

impl PartialEq for StringMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StringMatch::Exact(a), StringMatch::Exact(b)) => a == b,
            (StringMatch::Prefix(a), StringMatch::Prefix(b)) => a == b,
            (StringMatch::Regex(a), StringMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

/// The request fields a route can look at, borrowed from the request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The host the client asked for, without a port (`:authority` or `Host`).
    pub host: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    pub method: &'a str,
    pub query: Option<&'a str>,
    pub headers: RequestHeaders<'a>,
}

/// A request's header fields: hyper's map, or the lines weir's own HTTP/1.1 path
/// parsed in place.
#[derive(Debug, Clone, Copy)]
pub enum RequestHeaders<'a> {
    Map(&'a HeaderMap),
    Lines(&'a [httparse::Header<'a>]),
}

impl<'a> RequestHeaders<'a> {
    /// Calls `f` with each value of `name` that is valid text, until it returns true;
    /// says whether it did.
    pub fn any(&self, name: &HeaderName, mut f: impl FnMut(&'a str) -> bool) -> bool {
        match *self {
            RequestHeaders::Map(map) => map
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(&mut f)),
            RequestHeaders::Lines(lines) => lines
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case(name.as_str()))
                .any(|h| std::str::from_utf8(h.value).is_ok_and(&mut f)),
        }
    }
}

impl<'a> RequestView<'a> {
    pub fn of<B>(req: &'a http::Request<B>) -> Self {
        let host = req
            .uri()
            .authority()
            .map(|a| a.host())
            .or_else(|| {
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(strip_port)
            })
            .unwrap_or("");
        RequestView {
            host,
            path: req.uri().path(),
            method: req.method().as_str(),
            query: req.uri().query(),
            headers: RequestHeaders::Map(req.headers()),
        }
    }
}

/// `example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`.
pub fn strip_port(authority: &str) -> &str {
    if authority.starts_with('[') {
        return match authority.find(']') {
            Some(end) => &authority[..=end],
            None => authority,
        };
    }
    match authority.rfind(':') {
        Some(i) => &authority[..i],
        None => authority,
    }
}

/// All conditions of one route; every present condition must hold (they are ANDed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMatch {
    pub authority: Option<StringMatch>,
    pub path: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub headers: Vec<(HeaderName, StringMatch)>,
    pub query: Vec<(String, StringMatch)>,
}

impl RequestMatch {
    pub fn is_catch_all(&self) -> bool {
        self.authority.is_none()
            && self.path.is_none()
            && self.method.is_none()
            && self.headers.is_empty()
            && self.query.is_empty()
    }

    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(m) = &self.path
            && !m.matches(req.path)
        {
            return false;
        }
        if let Some(m) = &self.authority
            && !m.matches(req.host)
        {
            return false;
        }
        if let Some(m) = &self.method
            && !m.matches(req.method)
        {
            return false;
        }
        for (name, m) in &self.headers {
            // A repeated header matches when any of its values does.
            if !req.headers.any(name, |v| m.matches(v)) {
                return false;
            }
        }
        for (key, m) in &self.query {
            if !query_param(req.query, key).is_some_and(|v| m.matches(v)) {
                return false;
            }
        }
        true
    }
}

/// The raw value of the first `key` in a query string; `?key` alone gives `""`, as Istio.
fn query_param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(req: &'a http::Request<()>) -> RequestView<'a> {
        RequestView::of(req)
    }

    #[test]
    fn host_comes_from_authority_or_host_header_without_port() {
        let req = http::Request::get("/a")
            .header("host", "shop.example:8080")
            .body(())
            .unwrap();
        assert_eq!(view(&req).host, "shop.example");
        let req = http::Request::get("http://prerelease.shop/a")
            .body(())
            .unwrap();
        assert_eq!(view(&req).host, "prerelease.shop");
        let req = http::Request::get("/")
            .header("host", "[::1]:80")
            .body(())
            .unwrap();
        assert_eq!(view(&req).host, "[::1]");
    }

    #[test]
    fn conditions_are_anded() {
        let m = RequestMatch {
            path: Some(StringMatch::Prefix("/api/".into())),
            headers: vec![(
                HeaderName::from_static("x-weir-stage"),
                StringMatch::Exact("prerelease".into()),
            )],
            query: vec![("debug".into(), StringMatch::Exact("".into()))],
            ..Default::default()
        };
        let hit = http::Request::get("/api/x?debug")
            .header("x-weir-stage", "prerelease")
            .body(())
            .unwrap();
        assert!(m.matches(&view(&hit)));
        let miss = http::Request::get("/api/x?debug").body(()).unwrap();
        assert!(!m.matches(&view(&miss)));
        let miss = http::Request::get("/web?debug")
            .header("x-weir-stage", "prerelease")
            .body(())
            .unwrap();
        assert!(!m.matches(&view(&miss)));
    }

    #[test]
    fn regex_is_anchored() {
        let m = StringMatch::regex("v[0-9]").unwrap();
        assert!(m.matches("v1"));
        assert!(!m.matches("v10"));
        assert_eq!(m.describe(), ("regex", "v[0-9]"));
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param(Some("a=1&b=2"), "b"), Some("2"));
        assert_eq!(query_param(Some("a&b=2"), "a"), Some(""));
        assert_eq!(query_param(None, "a"), None);
    }
}
