//! The route table of one environment: its services' expose lists, its containers' health
//! and its certificates → the [`Table`] every ingress host serves, with the problems found.
//!
//! - Backends: the ready containers of the service that have an address, at
//!   `ip:port` of the entry, sorted by container name.
//! - TLS: `none` or absent → [`Tls::None`]. A certificate's name → [`Tls::Cert`] when it is
//!   in `certs` and covers the route's host (a route without host takes it as it is); else
//!   the route is served over plain HTTP, and that is a problem (a certificate that does
//!   not cover the host could not be chosen by SNI for it, and redirecting to HTTPS would
//!   take the site down). `auto` → the ACME certificate
//!   of the host ([`acme_cert_name`]) when there is one, else another certificate covering
//!   the host (an exact name before a wildcard, then by name), else plain HTTP until ACME
//!   has one ([`acme_wanted`] says which hosts to ask for; the wait is listed as a
//!   problem too, so that it can be shown).
//! - Only the certificates some route uses are in the table: keys travel only where needed.
//! - A claim two services make (the same host and path, or the same TCP port) goes to the
//!   service that sorts first by stack and service; the other's entry is left out and is a
//!   problem. The server refuses such deploys ([`conflicts`]); this keeps the table whole
//!   if one slips through. An entry [`check`](crate::expose::check) refuses is left out too.
//! - Routes are sorted by host (any host first) and path, TCP routes by port, certificates
//!   by name; problems follow the services sorted by stack and service.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::expose::{Claim, check_entry, claim};
use crate::{Backend, Balance, Cert, Expose, HttpExpose, HttpRoute, Table, TcpRoute, Tls};

/// ACME certificates are named `acme:HOST` (HOST lowercase): a name `drover cert add`
/// cannot give (see [`crate::expose::is_cert_name`]), so the two never meet.
pub const ACME_CERT_PREFIX: &str = "acme:";

/// A certificate is renewed when it expires within this many seconds (30 days).
pub const RENEW_BEFORE_S: u64 = 30 * 24 * 60 * 60;

/// The name of the certificate ACME obtains for `host`: `acme:` and the host, lowercase.
pub fn acme_cert_name(host: &str) -> String {
    format!("{ACME_CERT_PREFIX}{}", host.to_ascii_lowercase())
}

/// A service and its `x-drover.expose` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service<'a> {
    pub stack: &'a str,
    pub service: &'a str,
    pub expose: &'a [Expose],
}

/// A container as the hosts report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container<'a> {
    /// Engine container name.
    pub name: &'a str,
    pub stack: &'a str,
    pub service: &'a str,
    /// The host it runs on.
    pub host: &'a str,
    /// Running, not unhealthy, not draining.
    pub ready: bool,
    /// Its address the ingress hosts reach (mesh); none: not routed.
    pub ip: Option<Ipv4Addr>,
}

/// Everything one environment's table is made of.
#[derive(Debug, Clone, Default)]
pub struct Input<'a> {
    pub services: Vec<Service<'a>>,
    pub containers: Vec<Container<'a>>,
    /// Added certificates and those ACME obtained (`acme:HOST`), each with its domains.
    pub certs: Vec<Cert>,
    /// ACME HTTP-01: token → key authorization, copied into the table.
    pub challenges: BTreeMap<String, String>,
}

/// The table of one environment, and the problems found making it (each naming the
/// `stack/service` and its entry; the routes exist as described above).
pub fn table(input: &Input) -> (Table, Vec<String>) {
    let mut backends: HashMap<(&str, &str), Vec<&Container>> = HashMap::new();
    for c in &input.containers {
        if c.ready && c.ip.is_some() {
            backends.entry((c.stack, c.service)).or_default().push(c);
        }
    }
    for list in backends.values_mut() {
        list.sort_by_key(|c| (c.name, c.ip));
    }
    let backends_at = |s: &Service, port: u16| -> Vec<Backend> {
        let list = backends.get(&(s.stack, s.service));
        list.map(|l| l.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|c| {
                Some(Backend {
                    container: c.name.to_string(),
                    host: c.host.to_string(),
                    addr: SocketAddr::new(IpAddr::V4(c.ip?), port),
                })
            })
            .collect()
    };

    let mut table = Table {
        challenges: input.challenges.clone(),
        ..Table::default()
    };
    let mut problems = Vec::new();
    let mut claimed: HashMap<Claim, String> = HashMap::new();
    for s in sorted(&input.services) {
        let who = format!("{}/{}", s.stack, s.service);
        for (i, e) in s.expose.iter().enumerate() {
            if let Err((field, rule)) = check_entry(e) {
                problems.push(format!("{who}: expose[{i}].{field}: {rule}; not routed"));
                continue;
            }
            let claim = claim(e);
            if let Some(owner) = claimed.get(&claim) {
                problems.push(format!(
                    "{who}: expose[{i}]: {claim} is already routed to {owner}; not routed"
                ));
                continue;
            }
            claimed.insert(claim, who.clone());
            match e {
                Expose::Http(h) => {
                    let host = h.host_key();
                    let tls = match tls_of(h, host.as_deref(), &input.certs) {
                        Ok(tls) => tls,
                        Err(why) => {
                            problems.push(format!("{who}: expose[{i}].tls: {why}"));
                            Tls::None
                        }
                    };
                    table.http.push(HttpRoute {
                        host,
                        path: h.path_or_root().to_string(),
                        stack: s.stack.to_string(),
                        service: s.service.to_string(),
                        tls,
                        balance: match h.balance.as_deref() {
                            Some("least_conn") => Balance::LeastConn,
                            _ => Balance::RoundRobin,
                        },
                        sticky: h.sticky.clone(),
                        backends: backends_at(s, h.port),
                    });
                }
                Expose::Tcp(t) => table.tcp.push(TcpRoute {
                    listen: t.tcp,
                    stack: s.stack.to_string(),
                    service: s.service.to_string(),
                    proxy_protocol: t.proxy_protocol,
                    backends: backends_at(s, t.port),
                }),
            }
        }
    }
    table
        .http
        .sort_by(|a, b| (&a.host, &a.path).cmp(&(&b.host, &b.path)));
    table.tcp.sort_by_key(|t| t.listen);

    let used: BTreeSet<&str> = table
        .http
        .iter()
        .filter_map(|r| match &r.tls {
            Tls::Cert(name) => Some(name.as_str()),
            Tls::None => None,
        })
        .collect();
    for name in used {
        if let Some(c) = input.certs.iter().find(|c| c.name == name) {
            table.certs.push(c.clone());
        }
    }
    (table, problems)
}

/// A route's TLS; `Err` says why it is served over plain HTTP instead.
fn tls_of(h: &HttpExpose, host: Option<&str>, certs: &[Cert]) -> Result<Tls, String> {
    match (h.tls.as_deref(), host) {
        (None | Some("none"), _) => Ok(Tls::None),
        (Some("auto"), Some(host)) => {
            let acme = acme_cert_name(host);
            if certs.iter().any(|c| c.name == acme) {
                return Ok(Tls::Cert(acme));
            }
            let best = certs
                .iter()
                .filter_map(|c| Some((covers(c, host)?, &c.name)))
                .min();
            match best {
                Some((_, name)) => Ok(Tls::Cert(name.clone())),
                None => Err(format!(
                    "auto: no certificate for {host} yet; served over plain HTTP until ACME \
                     obtains {acme}"
                )),
            }
        }
        // `check` refuses auto without a host.
        (Some("auto"), None) => Err("auto needs a host; served over plain HTTP".into()),
        (Some(name), host) => match certs.iter().find(|c| c.name == name) {
            Some(c) => match host {
                Some(host) if covers(c, host).is_none() => Err(format!(
                    "certificate {name} does not cover {host} (it holds {}); served over \
                     plain HTTP",
                    c.domains.join(", ")
                )),
                _ => Ok(Tls::Cert(name.to_string())),
            },
            None => Err(format!(
                "certificate {name} does not exist; served over plain HTTP until it is added"
            )),
        },
    }
}

/// Whether `cert` is valid for `host` (lowercase; `*.suffix` for a wildcard route, which
/// only a wildcard certificate for the same suffix covers): `Some(0)` by an exact name,
/// `Some(1)` by a wildcard (one label, as TLS clients match), `None` not.
pub(crate) fn covers(cert: &Cert, host: &str) -> Option<u8> {
    let mut best = None;
    for d in &cert.domains {
        if d.eq_ignore_ascii_case(host) {
            return Some(0);
        }
        if let Some(suffix) = d.strip_prefix("*.")
            && let Some((label, rest)) = host.split_once('.')
            && !label.is_empty()
            && label != "*"
            && rest.eq_ignore_ascii_case(suffix)
        {
            best = Some(1);
        }
    }
    best
}

fn sorted<'s, 'a>(services: &'s [Service<'a>]) -> Vec<&'s Service<'a>> {
    let mut sorted: Vec<&Service> = services.iter().collect();
    sorted.sort_by_key(|s| (s.stack, s.service));
    sorted
}

/// Claims two different services make: the same host (compared lowercase) and path, or
/// the same TCP port. One message per service claiming what a service sorting before it
/// (by stack and service) claims, naming both (that one first) and the claim, sorted by
/// claim. Entries `check` refuses
/// are not looked at. A wildcard host and an exact host under it do not conflict (the
/// exact one is more specific), nor does a host with any-host.
pub fn conflicts(services: &[Service]) -> Vec<String> {
    let mut first: BTreeMap<Claim, String> = BTreeMap::new();
    // A set: each conflict once, sorted by claim, without comparing it to every other.
    let mut found: BTreeSet<(Claim, String)> = BTreeSet::new();
    for s in sorted(services) {
        let who = format!("{}/{}", s.stack, s.service);
        for e in s.expose {
            if check_entry(e).is_err() {
                continue;
            }
            let claim = claim(e);
            match first.get(&claim) {
                None => {
                    first.insert(claim, who.clone());
                }
                Some(owner) if *owner == who => {}
                Some(owner) => {
                    let msg = format!("{owner} and {who} both claim {claim}");
                    found.insert((claim, msg));
                }
            }
        }
    }
    found.into_iter().map(|(_, m)| m).collect()
}

/// The hosts (lowercase, sorted) ACME should get a certificate for: those of entries with
/// `tls: auto` that have no `acme:HOST` certificate, or one that expires within
/// [`RENEW_BEFORE_S`] of `now_unix_s`, or one whose expiry `cert_expiry` cannot tell
/// (unix seconds). Entries `check` refuses are not looked at.
pub fn acme_wanted(
    services: &[Service],
    certs: &[Cert],
    now_unix_s: u64,
    cert_expiry: impl Fn(&Cert) -> Option<u64>,
) -> Vec<String> {
    let mut hosts = BTreeSet::new();
    for s in services {
        for e in s.expose {
            if let Expose::Http(h) = e
                && h.tls.as_deref() == Some("auto")
                && check_entry(e).is_ok()
                && let Some(host) = h.host_key()
            {
                hosts.insert(host);
            }
        }
    }
    hosts
        .into_iter()
        .filter(|host| {
            let name = acme_cert_name(host);
            match certs.iter().find(|c| c.name == name) {
                None => true,
                Some(c) => {
                    cert_expiry(c).is_none_or(|t| t <= now_unix_s.saturating_add(RENEW_BEFORE_S))
                }
            }
        })
        .collect()
}

/// What each backend's host must let through its tunnel for the ingress: from every
/// ingress host's mesh address to each backend address it runs (an ingress host reaches
/// its own backends without the tunnel). Host → sorted (source, destination) pairs.
pub fn tunnel_allows(
    table: &Table,
    ingress_hosts: &[(&str, std::net::Ipv4Addr)],
) -> BTreeMap<String, std::collections::BTreeSet<(std::net::Ipv4Addr, std::net::Ipv4Addr)>> {
    let mut out: BTreeMap<String, std::collections::BTreeSet<_>> = BTreeMap::new();
    let backends = table
        .http
        .iter()
        .flat_map(|r| &r.backends)
        .chain(table.tcp.iter().flat_map(|r| &r.backends));
    for b in backends {
        let std::net::IpAddr::V4(dst) = b.addr.ip() else {
            continue;
        };
        for (_, src) in ingress_hosts.iter().filter(|(h, _)| *h != b.host) {
            out.entry(b.host.clone()).or_default().insert((*src, dst));
        }
    }
    out
}
