//! Ingress, pure: what a service asks to expose (`x-drover.expose`), the route table every
//! ingress host of an environment serves (stacks + container health + certificates →
//! routes), and the decisions the proxy makes per request (which route, which backend).
//! No I/O, no clock, no randomness: callers pass what they observed.
//!
//! - [`expose`]: reading (`Deserialize` for [`Expose`], with errors naming the field) and
//!   checking (`expose::check`) a service's `x-drover.expose` list.
//! - [`table`](mod@table): services, containers and certificates → the [`Table`] of one
//!   environment with the problems found, `conflicts` between services, `acme_wanted`.
//! - [`router`]: the [`Router`] a proxy asks per request (route, certificate by SNI, TCP
//!   route, ACME answer), and the per-request decisions: [`pick`] a backend, stickiness
//!   cookies, the forwarded headers, which methods may be sent again.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

pub mod expose;
pub mod router;
pub mod table;

#[cfg(test)]
mod tests;

pub use expose::check;
pub use router::{Router, forwarded_headers, is_idempotent, pick};
pub use table::{
    Container, Input, Service, acme_cert_name, acme_wanted, conflicts, table, tunnel_allows,
};

/// The label that makes a host run the ingress.
pub const INGRESS_LABEL: &str = "drover.ingress";
/// Ports the ingress listens on unless the agent is told otherwise.
pub const DEFAULT_HTTP_PORT: u16 = 80;
pub const DEFAULT_HTTPS_PORT: u16 = 443;
/// Where ACME HTTP-01 challenges are answered.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// One entry of a service's `x-drover.expose` list: an entry with `tcp` is a TCP one,
/// any other an HTTP one. `Deserialize` is written by hand ([`expose`]) so that an error
/// names the field (`unknown field 'hots', expected one of host, path, port, tls, balance,
/// sticky`) rather than "data did not match any variant".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Expose {
    Tcp(TcpExpose),
    Http(HttpExpose),
}

/// `- host: shop.example.com  path: /api  port: 8080  tls: auto|CERT_NAME|none`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpExpose {
    /// Exact (`shop.example.com`) or one leading wildcard label (`*.example.com`); any host
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A path prefix, starting with `/` [default: `/`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The container port requests go to.
    pub port: u16,
    /// `auto` (ACME), a certificate's name (`drover cert add`), or `none` [default: none].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<String>,
    /// `round_robin` (default) or `least_conn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<String>,
    /// Cookie stickiness: the cookie's name (a client keeps reaching the same backend while
    /// it is ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<String>,
}

/// `- tcp: 5432  port: 5432  proxy_protocol: true`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpExpose {
    /// The port the ingress hosts listen on.
    pub tcp: u16,
    /// The container port.
    pub port: u16,
    /// Send a PROXY protocol v2 header to the backend first.
    #[serde(default)]
    pub proxy_protocol: bool,
}

/// How an HTTP route's TLS is served.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tls {
    /// Plain HTTP only.
    None,
    /// HTTPS with the named certificate (an added one, or `auto`'s for its host); plain
    /// HTTP is redirected to HTTPS.
    Cert(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastConn,
}

/// One container behind a route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Backend {
    /// Engine container name (stable: what stickiness remembers).
    pub container: String,
    /// The host it runs on.
    pub host: String,
    /// Its address on the mesh (or its host's bridge) and the exposed container port.
    pub addr: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRoute {
    /// Lowercase; exact or `*.suffix`; `None`: any host.
    pub host: Option<String>,
    /// Path prefix, starting with `/`.
    pub path: String,
    pub stack: String,
    pub service: String,
    pub tls: Tls,
    pub balance: Balance,
    pub sticky: Option<String>,
    /// Ready backends only (running, not unhealthy, not draining); may be empty (→ 503).
    pub backends: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpRoute {
    pub listen: u16,
    pub stack: String,
    pub service: String,
    pub proxy_protocol: bool,
    pub backends: Vec<Backend>,
}

/// A certificate the ingress serves, chosen by SNI.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cert {
    pub name: String,
    /// The names it is valid for (from the certificate), lowercase, `*.` wildcards kept.
    pub domains: Vec<String>,
    /// PEM: the chain, leaf first.
    pub chain_pem: String,
    /// PEM: the private key. Travels only to ingress hosts; never printed.
    pub key_pem: String,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cert")
            .field("name", &self.name)
            .field("domains", &self.domains)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Everything an ingress host serves for one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Ordered: the proxy matches with [`Router`], not by position.
    pub http: Vec<HttpRoute>,
    pub tcp: Vec<TcpRoute>,
    pub certs: Vec<Cert>,
    /// ACME HTTP-01: token → key authorization, answered at
    /// `/.well-known/acme-challenge/TOKEN` on every host name.
    pub challenges: BTreeMap<String, String>,
}
