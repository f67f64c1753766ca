//! Turns a [`RawConfig`] into a [`Config`], collecting every problem with its position.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::raw::{Entries, RawConfig, RawDestination};
use super::{
    Config, DEFAULT_ADMIN, DEFAULT_LISTEN, DestinationConfig, EndpointAddr, Issue, Protocol,
    ServiceLabels, duration,
};

mod limits;
mod routes;
mod tls;

use routes::routes;
pub use routes::split_from_weights;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_LATENCY_WINDOW: Duration = Duration::from_secs(60);

pub(super) fn parse(text: &str, origin: &str) -> Result<Config, Vec<Issue>> {
    if text.trim().is_empty() {
        return Err(vec![Issue::top(
            "the config is empty: it needs at least `destinations` and `routes` (see config/weir.yaml)",
        )]);
    }
    let raw: RawConfig = serde_saphyr::from_str(text).map_err(|e| vec![yaml_issue(&e)])?;
    from_raw(raw, origin)
}

/// A YAML or type error from the parser, reduced to a position and a one-line message.
fn yaml_issue(err: &serde_saphyr::Error) -> Issue {
    let loc = err.location();
    let text = err.without_snippet().to_string();
    // The parser appends its own "at line L column C"; we put the position in front.
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let mut message = match first.find(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    };
    // The parser's advice about its own options means nothing to a weir user.
    if let Some(i) = message.find(", set DuplicateKeyPolicy") {
        message.truncate(i);
        message.push_str(": each key may appear once");
    }
    match loc {
        Some(loc) => Issue::at(loc, message),
        None => Issue::top(message),
    }
}

fn from_raw(raw: RawConfig, origin: &str) -> Result<Config, Vec<Issue>> {
    let mut issues = Vec::new();
    let listen = listen_addr(raw.listen.as_ref(), DEFAULT_LISTEN, "listen", &mut issues);
    let admin = listen_addr(raw.admin.as_ref(), DEFAULT_ADMIN, "admin", &mut issues);
    if let (Some(l), Some(a)) = (listen, admin)
        && l == a
        && l.port() != 0
    {
        let at = raw
            .admin
            .as_ref()
            .map_or(Location::UNKNOWN, |s| s.referenced);
        issues.push(issue_at(
            at,
            "`admin` and `listen` must be different addresses",
        ));
    }
    if let Some(admin) = admin {
        admin_safety(admin, &raw, origin, &mut issues);
    }
    let labels = service_labels(&raw, &mut issues);
    let latency_window = opt_duration(
        raw.latency_window.as_ref(),
        DEFAULT_LATENCY_WINDOW,
        &mut issues,
    );
    let drain_timeout = opt_duration(
        raw.drain_timeout.as_ref(),
        DEFAULT_DRAIN_TIMEOUT,
        &mut issues,
    );
    let idle_timeout = opt_duration(raw.idle_timeout.as_ref(), DEFAULT_IDLE_TIMEOUT, &mut issues);
    let limits = limits::limits(&raw, &mut issues);
    let upgrades = limits::upgrades(&raw, &mut issues);
    if latency_window < Duration::from_secs(1) {
        let at = raw
            .latency_window
            .as_ref()
            .map_or(Location::UNKNOWN, |s| s.referenced);
        issues.push(issue_at(at, "`latency_window` must be at least 1s"));
    }
    let workers = raw.workers.as_ref().and_then(|w| {
        if w.value == 0 || w.value > 1024 {
            issues.push(Issue::at(
                w.referenced,
                "`workers` must be between 1 and 1024",
            ));
            None
        } else {
            Some(w.value)
        }
    });

    let destinations = match &raw.destinations {
        Some(d) if !d.value.0.is_empty() => destinations(&d.value, &labels, origin, &mut issues),
        Some(d) => {
            issues.push(Issue::at(
                d.referenced,
                "`destinations` is empty: name at least one",
            ));
            Vec::new()
        }
        None => {
            issues.push(Issue::top(
                "`destinations` is missing: name each version of the service and its endpoints",
            ));
            Vec::new()
        }
    };
    let routes = match &raw.routes {
        Some(r) if !r.value.is_empty() => routes(&r.value, &destinations, &mut issues),
        Some(r) => {
            issues.push(Issue::at(
                r.referenced,
                "`routes` is empty: add at least one route",
            ));
            Vec::new()
        }
        None => {
            issues.push(Issue::top(
                "`routes` is missing: add at least one route with a `split`",
            ));
            Vec::new()
        }
    };

    let tls = raw
        .tls
        .as_ref()
        .and_then(|t| tls::server_tls(t, origin, &mut issues));

    if !issues.is_empty() {
        issues.sort_by_key(|i| (i.line, i.column));
        return Err(issues);
    }
    Ok(Config {
        origin: origin.to_owned(),
        text_hash: 0,
        listen: listen.expect("checked above"),
        admin: admin.expect("checked above"),
        admin_token_file: raw.admin_token_file.map(|s| resolve_path(origin, &s.value)),
        labels,
        access_log: raw.access_log.unwrap_or(false),
        telemetry: raw.telemetry.unwrap_or(true),
        latency_window,
        drain_timeout,
        idle_timeout,
        limits,
        upgrades,
        workers,
        tls,
        destinations,
        routes,
    })
}

/// A path from the config, relative to the config file's directory.
pub fn resolve_path(origin: &str, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    if path.is_absolute() {
        return path;
    }
    match std::path::Path::new(origin).parent() {
        Some(dir) => dir.join(path),
        None => path,
    }
}

/// The weights API changes where traffic goes: off loopback it needs a token.
fn admin_safety(admin: SocketAddr, raw: &RawConfig, origin: &str, issues: &mut Vec<Issue>) {
    let at = raw
        .admin
        .as_ref()
        .map_or(Location::UNKNOWN, |s| s.referenced);
    match &raw.admin_token_file {
        None if !admin.ip().is_loopback() => issues.push(issue_at(
            at,
            format!(
                "`admin` is {admin}, not a loopback address, and `admin_token_file` is not set: \
                 set it so the mutating admin endpoints require a bearer token, or bind `admin` to 127.0.0.1"
            ),
        )),
        None => {}
        Some(file) => {
            let path = resolve_path(origin, &file.value);
            match std::fs::read_to_string(&path) {
                Ok(token) if token.trim().len() >= 16 => {}
                Ok(_) => issues.push(Issue::at(
                    file.referenced,
                    format!("`admin_token_file` {}: the token must be at least 16 characters", path.display()),
                )),
                Err(error) => issues.push(Issue::at(
                    file.referenced,
                    format!("`admin_token_file` {}: cannot read it: {error}", path.display()),
                )),
            }
        }
    }
}

fn issue_at(loc: Location, message: impl Into<String>) -> Issue {
    if loc == Location::UNKNOWN {
        Issue::top(message)
    } else {
        Issue::at(loc, message)
    }
}

fn service_labels(raw: &RawConfig, issues: &mut Vec<Issue>) -> ServiceLabels {
    let text = |v: &Option<Spanned<String>>, default: &str| {
        v.as_ref()
            .map_or_else(|| default.to_owned(), |s| s.value.clone())
    };
    let reporter = text(&raw.reporter, "source");
    if reporter != "source" && reporter != "destination" {
        let at = raw
            .reporter
            .as_ref()
            .map_or(Location::UNKNOWN, |s| s.referenced);
        issues.push(issue_at(
            at,
            format!("`reporter` is `{reporter}`: it must be `source` or `destination`"),
        ));
    }
    ServiceLabels {
        service: text(&raw.service, "unknown"),
        namespace: text(&raw.namespace, "default"),
        reporter,
        workload: text(&raw.workload, "weir"),
    }
}

fn listen_addr(
    value: Option<&Spanned<String>>,
    default: &str,
    key: &str,
    issues: &mut Vec<Issue>,
) -> Option<SocketAddr> {
    let Some(value) = value else {
        return Some(default.parse().expect("default addresses parse"));
    };
    match parse_listen(&value.value) {
        Ok(addr) => Some(addr),
        Err(why) => {
            issues.push(Issue::at(value.referenced, format!("`{key}`: {why}")));
            None
        }
    }
}

/// `127.0.0.1:15001`, `[::]:15001`, `:15001` (all interfaces) or `localhost:15001`.
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let hint = || {
        format!("`{text}` is not an address: write IP:PORT, e.g. 127.0.0.1:15001 or 0.0.0.0:15001")
    };
    let (host, port) = text.rsplit_once(':').ok_or_else(hint)?;
    let port: u16 = port.parse().map_err(|_| hint())?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => return Err(hint()),
    };
    Ok(SocketAddr::new(ip, port))
}

/// Letters, digits, `.`, `_` and `-`: names appear in URLs, metric labels and logs.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn opt_duration(
    value: Option<&Spanned<String>>,
    default: Duration,
    issues: &mut Vec<Issue>,
) -> Duration {
    match value {
        None => default,
        Some(v) => duration::parse(&v.value).unwrap_or_else(|why| {
            issues.push(Issue::at(v.referenced, why));
            default
        }),
    }
}

fn destinations(
    raw: &Entries<Spanned<RawDestination>>,
    labels: &ServiceLabels,
    origin: &str,
    issues: &mut Vec<Issue>,
) -> Vec<DestinationConfig> {
    let mut out = Vec::new();
    for (name, dest) in &raw.0 {
        if !valid_name(&name.value) {
            issues.push(Issue::at(
                name.referenced,
                format!(
                    "destination name `{}` may only use letters, digits, '.', '_' and '-'",
                    name.value
                ),
            ));
        }
        // Kept even when invalid, so routes naming it are not also reported as
        // naming an unknown destination.
        out.push(destination(&name.value, dest, labels, origin, issues));
    }
    out
}

fn destination(
    name: &str,
    dest: &Spanned<RawDestination>,
    labels: &ServiceLabels,
    origin: &str,
    issues: &mut Vec<Issue>,
) -> DestinationConfig {
    let mut endpoints = Vec::new();
    match &dest.value.endpoints {
        None => issues.push(Issue::at(
            dest.referenced,
            format!("destination `{name}` has no `endpoints`: list its host:port addresses"),
        )),
        Some(list) if list.value.is_empty() => issues.push(Issue::at(
            list.referenced,
            format!("destination `{name}` has an empty `endpoints` list"),
        )),
        Some(list) => {
            let mut seen = HashSet::new();
            for ep in &list.value {
                match parse_endpoint(&ep.value) {
                    Ok(addr) if !seen.insert(addr.clone()) => issues.push(Issue::at(
                        ep.referenced,
                        format!("endpoint `{}` is listed twice in `{name}`", ep.value),
                    )),
                    Ok(addr) => endpoints.push(addr),
                    Err(why) => issues.push(Issue::at(ep.referenced, why)),
                }
            }
        }
    }
    let protocol = match &dest.value.protocol {
        None => Protocol::Http1,
        Some(p) => match p.value.as_str() {
            "http1" => Protocol::Http1,
            "http2" => Protocol::Http2,
            other => {
                issues.push(Issue::at(
                    p.referenced,
                    format!("protocol `{other}` is unknown: use `http1` (the default) or `http2`"),
                ));
                Protocol::Http1
            }
        },
    };
    let tls = dest
        .value
        .tls
        .as_ref()
        .and_then(|t| tls::upstream_tls(name, t, &endpoints, protocol, origin, issues));
    let connect_timeout = opt_duration(
        dest.value.connect_timeout.as_ref(),
        DEFAULT_CONNECT_TIMEOUT,
        issues,
    );
    let pool = limits::pool(name, dest.value.connection_pool.as_ref(), issues);
    let mut workload = format!("{}-{name}", labels.service);
    let mut version = name.to_owned();
    if let Some(l) = &dest.value.labels {
        for (key, value) in &l.value.0 {
            match key.value.as_str() {
                "destination_workload" => workload = value.value.clone(),
                "destination_version" => version = value.value.clone(),
                other => issues.push(Issue::at(
                    key.referenced,
                    format!(
                        "label `{other}` cannot be set per destination: use destination_workload or destination_version"
                    ),
                )),
            }
        }
    }
    DestinationConfig {
        name: name.to_owned(),
        endpoints,
        protocol,
        connect_timeout,
        workload,
        version,
        tls,
        pool,
    }
}

/// `host:port` with an IPv4 address, a `[v6]` address or a DNS name.
fn parse_endpoint(text: &str) -> Result<EndpointAddr, String> {
    let bad = |why: &str| {
        format!(
            "endpoint `{text}` is not host:port ({why}), e.g. 127.0.0.1:8081 or shop-canary:8080"
        )
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, port) = rest.split_once("]:").ok_or_else(|| bad("missing port"))?;
        host.parse::<Ipv6Addr>()
            .map_err(|_| bad("bad IPv6 address"))?;
        (host, port)
    } else {
        let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("missing port"))?;
        if host.contains(':') {
            return Err(bad("write IPv6 addresses in brackets"));
        }
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !host_ok {
            return Err(bad("bad host"));
        }
        (host, port)
    };
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    if port == 0 {
        return Err(bad("port 0"));
    }
    Ok(EndpointAddr {
        host: host.to_owned(),
        port,
    })
}
