//! Sidekicks: services that run beside another service's containers, replica by replica.
//!
//! A service is a sidekick of the service it names in `network_mode: service:X`,
//! `volumes_from: [X]` or `x-drover: {sidekick_of: X}`. Its *primary* is the end of that
//! chain (a sidekick of a sidekick of `web` has `web` as its primary). A primary and its
//! sidekicks form a *unit*: replica `n` of every sidekick runs on the host of the primary's
//! replica `n`, and the unit is placed, upgraded, moved and replaced as one. The sidekicks'
//! own replica count and mode are the primary's.

use std::collections::BTreeMap;

use crate::{Project, Service};

/// The `x-drover` key naming a service's primary without sharing anything with it.
pub const SIDEKICK_OF: &str = "sidekick_of";

/// `network_mode: none`.
pub const NETWORK_NONE: &str = "none";
/// `network_mode: host`: the host's network stack, no Drover network or mesh.
pub const NETWORK_HOST: &str = "host";

impl Service {
    /// The service whose network this one shares (`network_mode: service:X`).
    pub fn network_service(&self) -> Option<&str> {
        self.network_mode.as_deref()?.strip_prefix("service:")
    }

    /// `volumes_from` entries as (service, read-only).
    pub fn volumes_from_services(&self) -> impl Iterator<Item = (&str, bool)> {
        self.volumes_from.iter().map(|v| match v.split_once(':') {
            Some((s, mode)) => (s, mode == "ro"),
            None => (v.as_str(), false),
        })
    }

    /// The services this one says it runs beside, each with the key that says so
    /// (`network_mode`, `volumes_from[i]`, `x-drover.sidekick_of`).
    pub fn sidekick_refs(&self) -> Vec<(String, &str)> {
        let mut refs = Vec::new();
        if let Some(s) = self.network_service() {
            refs.push(("network_mode".to_owned(), s));
        }
        for (i, (s, _)) in self.volumes_from_services().enumerate() {
            refs.push((format!("volumes_from[{i}]"), s));
        }
        let x = self
            .extensions
            .get("x-drover")
            .and_then(|x| x.get(SIDEKICK_OF))
            .and_then(|v| v.as_str());
        if let Some(s) = x {
            refs.push((format!("x-drover.{SIDEKICK_OF}"), s));
        }
        refs
    }
}

/// A broken sidekick relation: the service, the key under it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidekickError {
    pub service: String,
    /// Path below the service, e.g. `network_mode`, `volumes_from[0]`.
    pub key: String,
    pub message: String,
}

/// The primary of `service` among `services`, following each service's first reference;
/// `None` when it is no sidekick (or the chain is broken: [`check_sidekicks`] says how).
/// A cycle gives the services on it.
fn root<'a>(
    services: &'a BTreeMap<String, Service>,
    service: &str,
) -> Result<Option<&'a str>, Vec<&'a str>> {
    let Some((service, _)) = services.get_key_value(service) else {
        return Ok(None);
    };
    let service = service.as_str();
    let mut seen = vec![service];
    let mut at = service;
    loop {
        let next = services
            .get(at)
            .and_then(|s| s.sidekick_refs().first().map(|(_, n)| *n))
            .and_then(|n| services.get_key_value(n))
            .map(|(n, _)| n.as_str());
        let Some(next) = next.filter(|n| *n != at) else {
            return Ok((at != service).then_some(at));
        };
        let cycle = seen.contains(&next);
        seen.push(next);
        if cycle {
            return Err(seen);
        }
        at = next;
    }
}

/// Checks every sidekick relation of `services`: each named service exists, no cycle, and
/// all of a service's references lead to one primary. A sidekick that shares its primary's
/// network has no network, port, hostname, extra host or link of its own; a service on the
/// host's network no Drover network, port, hostname, link or DNS setting.
pub fn check_sidekicks(services: &BTreeMap<String, Service>) -> Result<(), SidekickError> {
    for (name, spec) in services {
        for (key, target) in spec.sidekick_refs() {
            let message = match services.get(target) {
                None => format!("service '{name}' runs beside undefined service '{target}'"),
                Some(_) if target == name => {
                    format!("service '{name}' cannot run beside itself")
                }
                Some(t) if t.container_name.is_some() => format!(
                    "service '{name}' cannot run beside '{target}', which has a container_name"
                ),
                Some(_) => continue,
            };
            return Err(SidekickError {
                service: name.clone(),
                key,
                message,
            });
        }
    }
    for (name, spec) in services {
        let refs = spec.sidekick_refs();
        let err = |key: &str, message: String| {
            Err(SidekickError {
                service: name.clone(),
                key: key.to_owned(),
                message,
            })
        };
        if let (Err(cycle), Some((key, _))) = (root(services, name), refs.first()) {
            return err(key, format!("sidekick cycle: {}", cycle.join(" -> ")));
        }
        let mut primary: Option<&str> = None;
        for (key, target) in &refs {
            let r = root(services, target).ok().flatten().unwrap_or(target);
            match primary {
                Some(p) if p != r => {
                    return err(
                        key,
                        format!(
                            "service '{name}' cannot run beside both '{p}' and '{r}': a \
                             sidekick has one primary"
                        ),
                    );
                }
                _ => primary = Some(r),
            }
        }
        let Some(mode) = spec.network_mode.as_deref() else {
            continue;
        };
        let shared = spec.network_service().is_some();
        let host = mode == NETWORK_HOST;
        if mode != NETWORK_NONE && !host && !shared {
            return err(
                "network_mode",
                format!("unsupported network_mode '{mode}' (expected none, host or service:NAME)"),
            );
        }
        let own = [
            ("ports", !spec.ports.is_empty(), true),
            ("networks", !spec.networks.is_empty(), true),
            ("hostname", spec.hostname.is_some(), shared || host),
            ("extra_hosts", !spec.extra_hosts.is_empty(), shared),
            ("links", !spec.links.is_empty(), shared || host),
            ("dns", !spec.dns.is_empty(), host),
            ("dns_search", !spec.dns_search.is_empty(), host),
            ("dns_opt", !spec.dns_opt.is_empty(), host),
        ];
        if let Some((key, _, _)) = own.iter().find(|(_, set, applies)| *set && *applies) {
            return err(
                key,
                format!("'{key}' cannot be set with network_mode '{mode}'"),
            );
        }
    }
    Ok(())
}

/// Every sidekick of a project with its primary, computed once (for callers that ask
/// about many slots).
#[derive(Debug, Clone, Default)]
pub struct Units<'a> {
    primary: BTreeMap<&'a str, &'a str>,
    sidekicks: BTreeMap<&'a str, Vec<&'a str>>,
}

impl<'a> Units<'a> {
    pub fn primary_of(&self, service: &str) -> Option<&'a str> {
        self.primary.get(service).copied()
    }

    /// The sidekicks of `service`, by name (none for a sidekick or a lone service).
    pub fn sidekicks_of(&self, service: &str) -> &[&'a str] {
        self.sidekicks.get(service).map_or(&[], Vec::as_slice)
    }

    pub fn is_sidekick(&self, service: &str) -> bool {
        self.primary.contains_key(service)
    }
}

impl Project {
    /// The project's sidekicks and their primaries.
    pub fn units(&self) -> Units<'_> {
        let mut units = Units::default();
        for name in self.services.keys() {
            if let Ok(Some(p)) = root(&self.services, name) {
                units.primary.insert(name, p);
                units.sidekicks.entry(p).or_default().push(name);
            }
        }
        units
    }

    /// The primary `service` runs beside, if it is a sidekick (in a checked project).
    pub fn primary_of(&self, service: &str) -> Option<&str> {
        root(&self.services, service).ok().flatten()
    }

    /// The sidekicks of primary `service`, by name.
    pub fn sidekicks_of(&self, service: &str) -> Vec<&str> {
        self.services
            .keys()
            .filter(|s| self.primary_of(s) == Some(service))
            .map(String::as_str)
            .collect()
    }

    /// The services that have replicas of their own: every service but sidekicks.
    pub fn primaries(&self) -> impl Iterator<Item = (&String, &Service)> {
        let units = self.units();
        self.services
            .iter()
            .filter(move |(n, _)| !units.is_sidekick(n))
    }

    /// What a replica of `service` runs, as one digest: its spec hash, and for a primary
    /// with sidekicks the sidekicks' too. Equal digests need no container change.
    pub fn unit_hash(&self, service: &str) -> String {
        let Some(spec) = self.services.get(service) else {
            return String::new();
        };
        let own = spec.spec_hash();
        let sidekicks = self.sidekicks_of(service);
        if sidekicks.is_empty() {
            return own;
        }
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(own.as_bytes());
        for s in sidekicks {
            let hash = self.services.get(s).map(Service::spec_hash);
            h.update(format!("\n{s}={}", hash.unwrap_or_default()).as_bytes());
        }
        hex::encode(&h.finalize()[..12])
    }

    /// Whether `is` holds for `service` or any of its sidekicks.
    pub fn unit_any(&self, service: &str, is: impl Fn(&Service) -> bool) -> bool {
        std::iter::once(service)
            .chain(self.sidekicks_of(service))
            .filter_map(|s| self.services.get(s))
            .any(is)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(specs: &[(&str, &str)]) -> Project {
        // (name, relation): "" none, "net:X", "vol:X", "x:X", "mode:M".
        let mut p = Project {
            name: "p".into(),
            ..Default::default()
        };
        for (name, rel) in specs {
            let mut s = Service {
                image: Some("i".into()),
                ..Default::default()
            };
            for r in rel.split_whitespace() {
                match r.split_once(':') {
                    Some(("net", x)) => s.network_mode = Some(format!("service:{x}")),
                    Some(("vol", x)) => s.volumes_from.push(x.to_owned()),
                    Some(("x", x)) => {
                        s.extensions
                            .insert("x-drover".into(), serde_json::json!({ SIDEKICK_OF: x }));
                    }
                    Some(("mode", m)) => s.network_mode = Some(m.to_owned()),
                    Some(("port", _)) => s.ports.push(crate::Port {
                        target: 80,
                        published: None,
                        host_ip: None,
                        protocol: "tcp".into(),
                    }),
                    _ => {}
                }
            }
            p.services.insert((*name).into(), s);
        }
        p
    }

    /// One case per line: services (`name=relations;...`) → the outcome: `ok primary:
    /// sidekicks...` or `err service.key: message`.
    fn check(services: &str, expected: &str) {
        let specs: Vec<(&str, &str)> = services
            .split(';')
            .map(|s| s.split_once('=').unwrap_or((s, "")))
            .map(|(n, r)| (n.trim(), r.trim()))
            .collect();
        let p = project(&specs);
        let got = match check_sidekicks(&p.services) {
            Err(e) => format!("err {}.{}: {}", e.service, e.key, e.message),
            Ok(()) => {
                let units: Vec<String> = p
                    .primaries()
                    .map(|(n, _)| {
                        let s = p.sidekicks_of(n);
                        if s.is_empty() {
                            n.clone()
                        } else {
                            format!("{n}[{}]", s.join(","))
                        }
                    })
                    .collect();
                format!("ok {}", units.join(" "))
            }
        };
        assert_eq!(got, expected, "for {services}");
    }

    #[test]
    fn relations() {
        check("web; log=net:web", "ok web[log]");
        check("web; log=vol:web; side=x:web", "ok web[log,side]");
        // A sidekick of a sidekick runs beside the primary.
        check("web; log=net:web; ship=vol:log", "ok web[log,ship]");
        check("web; log=net:web vol:web", "ok web[log]");
        check("a; b", "ok a b");
        check("web; log=mode:none", "ok log web");
        check("web=mode:host; log=net:web", "ok web[log]");
    }

    #[test]
    fn mistakes() {
        check(
            "web; log=net:db",
            "err log.network_mode: service 'log' runs beside undefined service 'db'",
        );
        check(
            "web=net:web",
            "err web.network_mode: service 'web' cannot run beside itself",
        );
        check(
            "a=net:b; b=vol:a",
            "err a.network_mode: sidekick cycle: a -> b -> a",
        );
        check(
            "a; b; c=net:a vol:b",
            "err c.volumes_from[0]: service 'c' cannot run beside both 'a' and 'b': a \
             sidekick has one primary",
        );
        check(
            "web; log=net:web port:80",
            "err log.ports: 'ports' cannot be set with network_mode 'service:web'",
        );
        check(
            "web=mode:bridge",
            "err web.network_mode: unsupported network_mode 'bridge' (expected none, host \
             or service:NAME)",
        );
        check(
            "web=mode:host port:80",
            "err web.ports: 'ports' cannot be set with network_mode 'host'",
        );
    }

    #[test]
    fn unit_hash_covers_sidekicks() {
        let mut p = project(&[("web", ""), ("log", "net:web")]);
        let before = p.unit_hash("web");
        assert_ne!(before, p.services["web"].spec_hash());
        if let Some(log) = p.services.get_mut("log") {
            log.command = Some(vec!["tail".into()]);
        }
        assert_ne!(p.unit_hash("web"), before);
        let alone = project(&[("web", "")]);
        assert_eq!(alone.unit_hash("web"), alone.services["web"].spec_hash());
        assert!(p.unit_any("web", |s| s.command.is_some()));
        assert!(!alone.unit_any("web", |s| s.command.is_some()));
    }
}
