//! A service's `x-drover.expose` list: reading it ([`Expose`]'s `Deserialize`) and the rules
//! it must follow ([`check`]).
//!
//! Rules, each error naming the entry and field (`expose[1].path: must start with /`):
//! - `host`: a DNS name (letters, digits and `-` in labels of 1 to 63 characters, not
//!   starting or ending with `-`; any case, compared lowercase), or `*.` and such a name (one
//!   leading wildcard label only); at most 253 characters. No trailing dot.
//! - `path`: starts with `/`, at most 1024 characters, no whitespace or control characters,
//!   no `?` or `#` (a path prefix, compared byte for byte with the request's path as sent).
//! - `port`, `tcp`: 1 to 65535.
//! - `tls`: `auto`, `none` or a certificate's name (`[a-z0-9][a-z0-9_.-]*`, at most 63
//!   characters, so never an ACME certificate's `acme:HOST`). `auto` needs a host without
//!   a wildcard: HTTP-01 cannot issue wildcard certificates.
//! - `balance`: `round_robin` or `least_conn`.
//! - `sticky`: a cookie name (RFC 6265 token characters).
//! - Within one list, no two entries claim the same host and path, or the same TCP port.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};

use crate::{Expose, HttpExpose, TcpExpose};

/// An HTTP entry's fields, in the order errors list them.
pub const HTTP_FIELDS: &[&str] = &["host", "path", "port", "tls", "balance", "sticky"];
/// A TCP entry's fields.
pub const TCP_FIELDS: &[&str] = &["tcp", "port", "proxy_protocol"];

/// Longest host name.
pub const MAX_HOST: usize = 253;
/// Longest path prefix.
pub const MAX_PATH: usize = 1024;
/// Longest certificate name.
pub const MAX_CERT_NAME: usize = 63;

/// Most entries one service's expose list may have: each is a route on every ingress host.
pub const MAX_ENTRIES: usize = 1_000;

/// Checks a service's expose list; the first error names the entry and field.
pub fn check(expose: &[Expose]) -> Result<(), String> {
    if expose.len() > MAX_ENTRIES {
        return Err(format!(
            "expose: {} entries, at most {MAX_ENTRIES}",
            expose.len()
        ));
    }
    let mut claimed: HashMap<Claim, usize> = HashMap::new();
    for (i, e) in expose.iter().enumerate() {
        check_entry(e).map_err(|(field, rule)| format!("expose[{i}].{field}: {rule}"))?;
        if let Some(j) = claimed.insert(claim(e), i) {
            return Err(format!(
                "expose[{i}]: {} is already exposed by expose[{j}]",
                claim(e)
            ));
        }
    }
    Ok(())
}

/// What an entry takes for itself: a host and path, or a TCP port on the ingress hosts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Claim {
    /// Lowercase host (`None`: any host), path prefix.
    Http(Option<String>, String),
    Tcp(u16),
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Http(Some(host), path) => write!(f, "host {host} path {path}"),
            Claim::Http(None, path) => write!(f, "any host path {path}"),
            Claim::Tcp(port) => write!(f, "tcp port {port}"),
        }
    }
}

pub(crate) fn claim(e: &Expose) -> Claim {
    match e {
        Expose::Http(h) => Claim::Http(h.host_key(), h.path_or_root().to_string()),
        Expose::Tcp(t) => Claim::Tcp(t.tcp),
    }
}

impl HttpExpose {
    /// The host as routes hold it: lowercase.
    pub(crate) fn host_key(&self) -> Option<String> {
        self.host.as_ref().map(|h| h.to_ascii_lowercase())
    }

    pub(crate) fn path_or_root(&self) -> &str {
        self.path.as_deref().unwrap_or("/")
    }
}

/// One entry's rules: `Err((field, rule))`.
pub(crate) fn check_entry(e: &Expose) -> Result<(), (&'static str, String)> {
    match e {
        Expose::Http(h) => {
            if let Some(host) = &h.host {
                check_host(host).map_err(|r| ("host", r))?;
            }
            if let Some(path) = &h.path {
                check_path(path).map_err(|r| ("path", r))?;
            }
            check_port(h.port).map_err(|r| ("port", r))?;
            if let Some(tls) = &h.tls {
                check_tls(tls, h.host.as_deref()).map_err(|r| ("tls", r))?;
            }
            if let Some(b) = &h.balance
                && b != "round_robin"
                && b != "least_conn"
            {
                return Err(("balance", format!("{b:?} is not round_robin or least_conn")));
            }
            if let Some(s) = &h.sticky {
                check_cookie_name(s).map_err(|r| ("sticky", r))?;
            }
        }
        Expose::Tcp(t) => {
            check_port(t.tcp).map_err(|r| ("tcp", r))?;
            check_port(t.port).map_err(|r| ("port", r))?;
        }
    }
    Ok(())
}

fn check_port(port: u16) -> Result<(), String> {
    if port == 0 {
        return Err("must be a port from 1 to 65535".into());
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("must not be empty (leave host out to match any host)".into());
    }
    if host.len() > MAX_HOST {
        return Err(format!("longer than {MAX_HOST} characters"));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.contains('*') {
        return Err(format!(
            "{host:?}: only one leading wildcard label is allowed (*.example.com)"
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(format!("{host:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!("{host:?} has a label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "{host:?}: a label may hold only letters, digits and -"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("{host:?}: a label may not start or end with -"));
        }
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with /".into());
    }
    if path.len() > MAX_PATH {
        return Err(format!("longer than {MAX_PATH} characters"));
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    if path.contains(['?', '#']) {
        return Err("must not contain ? or # (a path prefix, without query)".into());
    }
    Ok(())
}

fn check_tls(tls: &str, host: Option<&str>) -> Result<(), String> {
    match tls {
        "none" => Ok(()),
        "auto" => match host {
            None => Err("auto needs a host (ACME issues certificates for a name)".into()),
            Some(h) if h.starts_with("*.") => Err(format!(
                "auto cannot serve the wildcard host {h} (HTTP-01 cannot issue wildcard \
                 certificates): add one with drover cert add and name it"
            )),
            Some(_) => Ok(()),
        },
        name if is_cert_name(name) => Ok(()),
        other => Err(format!(
            "{other:?} is not auto, none or a certificate name \
             ([a-z0-9][a-z0-9_.-]*, at most {MAX_CERT_NAME} characters)"
        )),
    }
}

/// A name `drover cert add` may give: `[a-z0-9][a-z0-9_.-]*`, at most 63 characters.
pub fn is_cert_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_CERT_NAME
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// RFC 6265 `cookie-name` (an RFC 2616 token): visible ASCII except separators.
fn check_cookie_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must be a cookie name, not empty".into());
    }
    if !name.bytes().all(is_token_char) {
        return Err(format!(
            "{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    Ok(())
}

/// A `tchar` of RFC 9110 (the token of RFC 2616 that RFC 6265 names).
pub(crate) fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl<'de> Deserialize<'de> for Expose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ExposeVisitor)
    }
}

struct ExposeVisitor;

/// Stores a field's value, refusing a second one.
fn once<T, E: de::Error>(slot: &mut Option<T>, value: T, field: &str) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::custom(format!("duplicate field '{field}'")));
    }
    *slot = Some(value);
    Ok(())
}

impl<'de> Visitor<'de> for ExposeVisitor {
    type Value = Expose;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an expose entry: a map with port and host/path/tls, or with tcp")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Expose, A::Error> {
        let mut host: Option<Option<String>> = None;
        let mut path: Option<Option<String>> = None;
        let mut port: Option<u16> = None;
        let mut tls: Option<Option<String>> = None;
        let mut balance: Option<Option<String>> = None;
        let mut sticky: Option<Option<String>> = None;
        let mut tcp: Option<u16> = None;
        let mut proxy_protocol: Option<bool> = None;
        // Whether an unknown key is an HTTP or TCP entry's is known only at the end.
        let mut unknown: Option<String> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "host" => once(&mut host, map.next_value()?, "host")?,
                "path" => once(&mut path, map.next_value()?, "path")?,
                "port" => once(&mut port, map.next_value()?, "port")?,
                "tls" => once(&mut tls, map.next_value()?, "tls")?,
                "balance" => once(&mut balance, map.next_value()?, "balance")?,
                "sticky" => once(&mut sticky, map.next_value()?, "sticky")?,
                "tcp" => once(&mut tcp, map.next_value()?, "tcp")?,
                "proxy_protocol" => once(&mut proxy_protocol, map.next_value()?, "proxy_protocol")?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    unknown.get_or_insert(key);
                }
            }
        }
        let unknown_field = |field: &str, expected: &[&str]| {
            A::Error::custom(format!(
                "unknown field '{field}', expected one of {}",
                expected.join(", ")
            ))
        };
        let missing_port = || A::Error::custom("missing field 'port'");
        if let Some(tcp) = tcp {
            let http_only = [
                ("host", host.is_some()),
                ("path", path.is_some()),
                ("tls", tls.is_some()),
                ("balance", balance.is_some()),
                ("sticky", sticky.is_some()),
            ];
            let stray = unknown
                .as_deref()
                .or_else(|| http_only.iter().find(|(_, set)| *set).map(|(f, _)| *f));
            if let Some(field) = stray {
                return Err(unknown_field(field, TCP_FIELDS));
            }
            Ok(Expose::Tcp(TcpExpose {
                tcp,
                port: port.ok_or_else(missing_port)?,
                proxy_protocol: proxy_protocol.unwrap_or(false),
            }))
        } else {
            let stray = unknown
                .as_deref()
                .or(proxy_protocol.map(|_| "proxy_protocol"));
            if let Some(field) = stray {
                return Err(unknown_field(field, HTTP_FIELDS));
            }
            Ok(Expose::Http(HttpExpose {
                host: host.flatten(),
                path: path.flatten(),
                port: port.ok_or_else(missing_port)?,
                tls: tls.flatten(),
                balance: balance.flatten(),
                sticky: sticky.flatten(),
            }))
        }
    }
}
