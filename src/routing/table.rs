//! The route table: ordered routes, first match wins, found without scanning them all.
//!
//! A config with a thousand routes must route as fast as one with a single route, so
//! each route is filed under the most selective condition it has that can be looked up
//! by key (exact path, exact host, exact header value, path prefix). A request then only
//! evaluates the routes whose key it carries, plus the few routes that have no key at
//! all. Among the candidates the lowest route index that fully matches wins, which is
//! exactly "first match wins" over the whole list.
//!
//! Routes whose only selective condition is a regex on the host or the path are matched
//! together: all those regexes form one `RegexSet`, run once per request, so a thousand
//! regex routes cost one pass over the host (or path), not a thousand.

use std::collections::HashMap;

use http::header::HeaderName;
use regex::RegexSet;

use super::matcher::{RequestMatch, RequestView, StringMatch};

/// Routes in config order with a lookup index. `T` is what a match yields.
#[derive(Debug)]
pub struct RouteTable<T> {
    routes: Vec<(RequestMatch, T)>,
    index: Index,
}

/// Route indexes, each list ascending.
#[derive(Debug, Default)]
struct Index {
    exact_path: FastMap<String, Vec<u32>>,
    exact_host: FastMap<String, Vec<u32>>,
    exact_header: Vec<(HeaderName, FastMap<String, Vec<u32>>)>,
    path_prefix: FastMap<String, Vec<u32>>,
    /// The distinct prefix lengths in `path_prefix`, ascending.
    prefix_lengths: Vec<usize>,
    host_regex: RegexGroup,
    path_regex: RegexGroup,
    /// Routes with no indexable condition; always evaluated.
    unkeyed: Vec<u32>,
}

/// Below this many regexes on a field, trying each is faster than one set search.
const MIN_REGEX_SET: usize = 8;

/// A fast hasher for the index maps (FxHash). Their keys come from the config, so a
/// client choosing what to look up cannot make lookups slow, and SipHash's flood
/// resistance would only cost time on every request.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.write(&[b]);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Routes keyed by a regex on one field, with all their regexes in one set.
#[derive(Debug, Default)]
struct RegexGroup {
    routes: Vec<u32>,
    patterns: Vec<String>,
    set: Option<RegexSet>,
}

impl RegexGroup {
    fn add(&mut self, route: u32, pattern: &str) {
        self.routes.push(route);
        self.patterns.push(pattern.to_owned());
    }

    /// Builds the set; with few regexes, or when the set cannot be built (too large),
    /// the routes are evaluated one by one instead, which is then cheaper.
    fn build(&mut self, unkeyed: &mut Vec<u32>) {
        if self.routes.is_empty() {
            return;
        }
        if self.routes.len() < MIN_REGEX_SET {
            unkeyed.append(&mut self.routes);
            unkeyed.sort_unstable();
            self.patterns = Vec::new();
            return;
        }
        match regex::RegexSetBuilder::new(&self.patterns)
            .size_limit(64 << 20)
            .build()
        {
            Ok(set) => self.set = Some(set),
            Err(_) => {
                unkeyed.append(&mut self.routes);
                unkeyed.sort_unstable();
            }
        }
        self.patterns = Vec::new();
    }
}

impl<T> RouteTable<T> {
    pub fn new(routes: Vec<(RequestMatch, T)>) -> Self {
        let mut index = Index::default();
        for (i, (m, _)) in routes.iter().enumerate() {
            let i = i as u32;
            if let Some(StringMatch::Exact(p)) = &m.path {
                index.exact_path.entry(p.clone()).or_default().push(i);
            } else if let Some(StringMatch::Exact(h)) = &m.authority {
                index.exact_host.entry(h.clone()).or_default().push(i);
            } else if let Some((name, StringMatch::Exact(v))) = m
                .headers
                .iter()
                .find(|(_, sm)| matches!(sm, StringMatch::Exact(_)))
            {
                let pos = match index.exact_header.iter().position(|(n, _)| n == name) {
                    Some(pos) => pos,
                    None => {
                        index.exact_header.push((name.clone(), FastMap::default()));
                        index.exact_header.len() - 1
                    }
                };
                index.exact_header[pos]
                    .1
                    .entry(v.clone())
                    .or_default()
                    .push(i);
            } else if let Some(StringMatch::Prefix(p)) = &m.path {
                index.path_prefix.entry(p.clone()).or_default().push(i);
                if !index.prefix_lengths.contains(&p.len()) {
                    index.prefix_lengths.push(p.len());
                }
            } else if let Some(StringMatch::Regex(re)) = &m.authority {
                index.host_regex.add(i, re.as_str());
            } else if let Some(StringMatch::Regex(re)) = &m.path {
                index.path_regex.add(i, re.as_str());
            } else {
                index.unkeyed.push(i);
            }
        }
        index.prefix_lengths.sort_unstable();
        index.host_regex.build(&mut index.unkeyed);
        index.path_regex.build(&mut index.unkeyed);
        RouteTable { routes, index }
    }

    /// The first route, in config order, that matches the request.
    pub fn find(&self, req: &RequestView<'_>) -> Option<&T> {
        let mut best = u32::MAX;
        let idx = &self.index;
        self.scan(&idx.unkeyed, req, &mut best);
        if !idx.exact_path.is_empty()
            && let Some(list) = idx.exact_path.get(req.path)
        {
            self.scan(list, req, &mut best);
        }
        if !idx.exact_host.is_empty()
            && let Some(list) = idx.exact_host.get(req.host)
        {
            self.scan(list, req, &mut best);
        }
        for (name, by_value) in &idx.exact_header {
            req.headers.any(name, |v| {
                if let Some(list) = by_value.get(v) {
                    self.scan(list, req, &mut best);
                }
                false
            });
        }
        for &len in &idx.prefix_lengths {
            if len > req.path.len() {
                break;
            }
            if let Some(list) = req
                .path
                .get(..len)
                .and_then(|prefix| idx.path_prefix.get(prefix))
            {
                self.scan(list, req, &mut best);
            }
        }
        for (group, field) in [(&idx.host_regex, req.host), (&idx.path_regex, req.path)] {
            if let Some(set) = &group.set {
                let hits = set.matches(field);
                // Pattern ids ascend with route indexes, so the walk stops early.
                for id in hits.iter() {
                    let i = group.routes[id];
                    if i >= best {
                        break;
                    }
                    if self.routes[i as usize].0.matches(req) {
                        best = i;
                        break;
                    }
                }
            }
        }
        self.routes.get(best as usize).map(|(_, t)| t)
    }

    /// Lowers `best` to the first route of `list` that matches, if it comes earlier.
    #[inline]
    fn scan(&self, list: &[u32], req: &RequestView<'_>, best: &mut u32) {
        for &i in list {
            if i >= *best {
                return;
            }
            if self.routes[i as usize].0.matches(req) {
                *best = i;
                return;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Routes in config order.
    pub fn iter(&self) -> impl Iterator<Item = &(RequestMatch, T)> {
        self.routes.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(kind: &str, p: &str) -> RequestMatch {
        let sm = match kind {
            "exact" => StringMatch::Exact(p.into()),
            "prefix" => StringMatch::Prefix(p.into()),
            _ => StringMatch::regex(p).unwrap(),
        };
        RequestMatch {
            path: Some(sm),
            ..Default::default()
        }
    }

    fn find<'t>(t: &'t RouteTable<&'static str>, req: &http::Request<()>) -> Option<&'t str> {
        t.find(&RequestView::of(req)).copied()
    }

    #[test]
    fn first_match_wins_across_index_buckets() {
        let header = RequestMatch {
            headers: vec![(
                HeaderName::from_static("x-weir-stage"),
                StringMatch::Exact("prerelease".into()),
            )],
            ..Default::default()
        };
        let host = RequestMatch {
            authority: Some(StringMatch::Prefix("prerelease.".into())),
            ..Default::default()
        };
        let t = RouteTable::new(vec![
            (header, "header"),
            (host, "host"),
            (path("prefix", "/api/"), "api"),
            (path("exact", "/api/special"), "special"),
            (RequestMatch::default(), "catch-all"),
            (path("exact", "/never"), "never"),
        ]);
        let req = |uri: &str| http::Request::get(uri).body(()).unwrap();
        assert_eq!(find(&t, &req("/api/special")), Some("api"));
        assert_eq!(find(&t, &req("/api/x")), Some("api"));
        assert_eq!(find(&t, &req("/never")), Some("catch-all"));
        assert_eq!(find(&t, &req("http://prerelease.shop/x")), Some("host"));
        let staged = http::Request::get("/api/x")
            .header("x-weir-stage", "prerelease")
            .body(())
            .unwrap();
        assert_eq!(find(&t, &staged), Some("header"));
    }

    #[test]
    fn no_match_is_none() {
        let t = RouteTable::new(vec![
            (path("exact", "/a"), "a"),
            (path("regex", "/b/[0-9]+"), "b"),
        ]);
        let req = |uri: &str| http::Request::get(uri).body(()).unwrap();
        assert_eq!(find(&t, &req("/c")), None);
        assert_eq!(find(&t, &req("/b/12")), Some("b"));
    }

    #[test]
    fn many_routes_agree_with_a_linear_scan() {
        let mut routes = Vec::new();
        for i in 0..300 {
            let m = match i % 4 {
                0 => path("exact", &format!("/svc/{i}")),
                1 => path("prefix", &format!("/svc/{i}/")),
                2 => RequestMatch {
                    headers: vec![(
                        HeaderName::from_static("x-user"),
                        StringMatch::Exact(i.to_string()),
                    )],
                    ..Default::default()
                },
                _ => path("regex", &format!("/re/{i}/.*")),
            };
            routes.push((m, i));
        }
        let linear: Vec<RequestMatch> = routes.iter().map(|(m, _)| m.clone()).collect();
        let t = RouteTable::new(routes);
        for probe in 0..300 {
            for uri in [
                format!("/svc/{probe}"),
                format!("/svc/{probe}/x"),
                format!("/re/{probe}/y"),
            ] {
                let req = http::Request::get(uri.as_str())
                    .header("x-user", (probe + 2).to_string())
                    .body(())
                    .unwrap();
                let view = RequestView::of(&req);
                let expected = linear.iter().position(|m| m.matches(&view));
                assert_eq!(t.find(&view).copied(), expected, "{uri}");
            }
        }
    }
}
