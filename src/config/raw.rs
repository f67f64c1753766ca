//! The configuration file as written: serde types that keep each value's YAML position.
//!
//! Nothing here is validated beyond YAML types; [`super::validate`] turns a [`RawConfig`]
//! into a [`super::Config`] and reports every problem at its `line:column`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;

/// The top level of `weir.yaml`. Unknown keys are refused: a typo in a proxy's config
/// (`timout: 5s`) must not silently fall back to a default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub listen: Option<Spanned<String>>,
    pub admin: Option<Spanned<String>>,
    pub admin_token_file: Option<Spanned<String>>,
    pub service: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    pub reporter: Option<Spanned<String>>,
    pub workload: Option<Spanned<String>>,
    pub access_log: Option<bool>,
    pub telemetry: Option<bool>,
    pub latency_window: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub request_header_timeout: Option<Spanned<String>>,
    pub request_timeout: Option<Spanned<String>>,
    pub stream_idle_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<usize>>,
    pub http2_max_concurrent_streams: Option<Spanned<u32>>,
    pub upgrades: Option<Spanned<Vec<Spanned<String>>>>,
    pub workers: Option<Spanned<usize>>,
    pub tls: Option<Spanned<RawServerTls>>,
    pub destinations: Option<Spanned<Entries<Spanned<RawDestination>>>>,
    pub routes: Option<Spanned<Vec<Spanned<RawRoute>>>>,
}

/// One named destination: a version of the service, reached through its endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    pub protocol: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub labels: Option<Spanned<Entries<Spanned<String>>>>,
    pub tls: Option<Spanned<RawUpstreamTls>>,
    pub connection_pool: Option<Spanned<RawConnectionPool>>,
}

/// A destination's limits: `connection_pool: { max_requests, max_pending_requests }`
/// (Envoy's circuit breakers, Istio's `connectionPool`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConnectionPool {
    pub max_requests: Option<Spanned<usize>>,
    pub max_pending_requests: Option<Spanned<usize>>,
}

/// The listener's TLS: `tls: { cert, key, client_ca, mode }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub client_ca: Option<Spanned<String>>,
    pub mode: Option<Spanned<String>>,
}

/// TLS to a destination: `tls: { ca, server_name, cert, key }`, all optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<Spanned<String>>,
    pub server_name: Option<Spanned<String>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// One route: a match, a weighted split and its options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "match")]
    pub matcher: Option<Spanned<RawMatch>>,
    pub split: Option<Spanned<Entries<Spanned<RawWeight>>>>,
    pub timeout: Option<Spanned<String>>,
}

/// The conditions of a route; all present conditions must hold.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub authority: Option<Spanned<RawStringMatch>>,
    pub path: Option<Spanned<RawStringMatch>>,
    pub method: Option<Spanned<RawStringMatch>>,
    pub headers: Option<Entries<Spanned<RawStringMatch>>>,
    pub query: Option<Entries<Spanned<RawStringMatch>>>,
}

/// Istio's StringMatch: a plain scalar means `exact`, otherwise a one-key map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

impl<'de> Deserialize<'de> for RawStringMatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StringMatchVisitor)
    }
}

struct StringMatchVisitor;

impl<'de> Visitor<'de> for StringMatchVisitor {
    type Value = RawStringMatch;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, or one of {exact: ..}, {prefix: ..}, {regex: ..}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawStringMatch::Exact(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(RawStringMatch::Exact(v))
    }

    // YAML reads `x-version: 2` or `x-beta: true` as a number or a bool; a header value
    // is text, so take the scalar as the user wrote it.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(RawStringMatch::Exact(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(RawStringMatch::Exact(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(RawStringMatch::Exact(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(kind) = map.next_key::<String>()? else {
            return Err(de::Error::custom(
                "empty match: write one of {exact: ..}, {prefix: ..}, {regex: ..}",
            ));
        };
        let value = map.next_value::<String>()?;
        let parsed = match kind.as_str() {
            "exact" => RawStringMatch::Exact(value),
            "prefix" => RawStringMatch::Prefix(value),
            "regex" => RawStringMatch::Regex(value),
            other => {
                return Err(de::Error::custom(format!(
                    "unknown match kind `{other}`: use exact, prefix or regex"
                )));
            }
        };
        if map.next_key::<String>()?.is_some() {
            return Err(de::Error::custom(
                "a match takes exactly one of exact, prefix or regex",
            ));
        }
        Ok(parsed)
    }
}

/// A split weight as written. Anything but a non-negative integer is kept as an error
/// message, so validation can report it with the other problems instead of stopping
/// at the first one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawWeight(pub Result<u32, String>);

impl<'de> Deserialize<'de> for RawWeight {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WeightVisitor;

        impl Visitor<'_> for WeightVisitor {
            type Value = RawWeight;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a weight (a non-negative integer)")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawWeight, E> {
                Ok(RawWeight(u32::try_from(v).map_err(|_| {
                    format!("weight {v} is too large: weights are relative, so smaller numbers work the same")
                })))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawWeight, E> {
                if v < 0 {
                    return Ok(RawWeight(Err(format!(
                        "weight {v} is negative: weights are non-negative integers"
                    ))));
                }
                self.visit_u64(v as u64)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawWeight, E> {
                Ok(RawWeight(Err(format!(
                    "weight {v} is not an integer: weights are relative integers, e.g. 34/33/33"
                ))))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawWeight, E> {
                Ok(RawWeight(Err(format!(
                    "weight `{v}` is not a number: weights are non-negative integers"
                ))))
            }
        }

        deserializer.deserialize_any(WeightVisitor)
    }
}

/// A YAML mapping kept in file order, with each key's position. Duplicate keys are
/// refused here, where the second key's position is still known.
#[derive(Debug)]
pub struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(Spanned<String>, V)> = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if entries.iter().any(|(k, _)| k.value == key.value) {
                        return Err(de::Error::custom(format!("duplicate key `{}`", key.value)));
                    }
                    let value = map.next_value::<V>()?;
                    entries.push((key, value));
                }
                Ok(Entries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor(PhantomData))
    }
}
