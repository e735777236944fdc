//! The server's side of the ingress: the environment's TLS certificates (keys sealed at rest
//! with the data directory's key, open in memory), ACME challenges in flight, and sending
//! every host labelled `drover.ingress=true` its environment's route table whenever what the
//! table comes from changed (the mesh's directory: containers started, stopped, turned
//! unhealthy, moved; stacks deployed; certificates added; labels changed). The decisions
//! are the `ingress` crate's; this gathers their inputs and delivers. Runs as part of the
//! mesh's push (backends are reached over the mesh), so a change reaches every ingress host
//! within the mesh's coalescing window.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, RwLock};

use proto::ServerMsg;

use crate::state::AppState;

/// A certificate as kept in memory.
#[derive(Clone)]
pub struct Stored {
    pub cert: ingress::Cert,
    pub not_after_s: u64,
    pub source: String,
    pub created_ms: u64,
}

pub struct Ingress {
    vault: Arc<vault::Vault>,
    /// env → name → certificate.
    certs: RwLock<HashMap<String, BTreeMap<String, Stored>>>,
    /// env → ACME HTTP-01 token → key authorization.
    challenges: Mutex<HashMap<String, BTreeMap<String, String>>>,
    /// The last table sent to each host (`None`: told to run no ingress).
    sent: Mutex<HashMap<String, Option<ingress::Table>>>,
    /// env → why some routes are not fully served (a missing certificate...).
    problems: RwLock<HashMap<String, Vec<String>>>,
    /// (env, host) → why ACME could not get its certificate yet.
    acme_errors: Mutex<HashMap<(String, String), String>>,
}

/// The name a certificate's key is sealed under.
fn sealed_name(env: &str, name: &str) -> String {
    format!("cert:{env}/{name}")
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ingress {
    /// Opens every stored certificate.
    pub fn load(vault: Arc<vault::Vault>, store: &store::Store) -> Result<Ingress, String> {
        let mut certs: HashMap<String, BTreeMap<String, Stored>> = HashMap::new();
        for r in store.certs().map_err(|e| e.to_string())? {
            let key = vault
                .unseal(&sealed_name(&r.env, &r.name), &r.key_sealed)
                .map_err(|e| format!("certificate {} of {}: {e}", r.name, r.env))?;
            let key_pem = String::from_utf8(key)
                .map_err(|_| format!("certificate {} of {}: key is not UTF-8", r.name, r.env))?;
            certs.entry(r.env.clone()).or_default().insert(
                r.name.clone(),
                Stored {
                    cert: ingress::Cert {
                        name: r.name,
                        domains: r.domains,
                        chain_pem: r.chain_pem,
                        key_pem,
                    },
                    not_after_s: r.not_after_s,
                    source: r.source,
                    created_ms: r.created_ms,
                },
            );
        }
        Ok(Ingress {
            vault,
            certs: RwLock::new(certs),
            challenges: Mutex::default(),
            sent: Mutex::default(),
            problems: RwLock::default(),
            acme_errors: Mutex::default(),
        })
    }

    /// The row to store for a certificate (its key sealed), and the same in memory.
    pub fn row(
        &self,
        env: &str,
        cert: ingress::Cert,
        not_after_s: u64,
        source: &str,
        now_ms: u64,
    ) -> Result<(store::CertRow, Stored), String> {
        let key_sealed = self
            .vault
            .seal(&sealed_name(env, &cert.name), cert.key_pem.as_bytes())
            .map_err(|e| e.to_string())?;
        let row = store::CertRow {
            env: env.to_string(),
            name: cert.name.clone(),
            domains: cert.domains.clone(),
            chain_pem: cert.chain_pem.clone(),
            key_sealed,
            not_after_s,
            source: source.to_string(),
            created_ms: now_ms,
        };
        let stored = Stored {
            cert,
            not_after_s,
            source: source.to_string(),
            created_ms: now_ms,
        };
        Ok((row, stored))
    }

    /// Keeps a stored certificate in memory (after the store committed it).
    pub fn remember(&self, env: &str, stored: Stored) {
        self.certs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(env.to_string())
            .or_default()
            .insert(stored.cert.name.clone(), stored);
    }

    pub fn forget(&self, env: &str, name: &str) {
        if let Some(m) = self
            .certs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(env)
        {
            m.remove(name);
        }
    }

    /// The environment's certificates.
    pub fn certs(&self, env: &str) -> Vec<Stored> {
        self.certs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(env)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// An ACME HTTP-01 challenge to answer on the environment's ingress hosts (`None`:
    /// answered, forget it).
    pub fn set_challenge(&self, env: &str, token: &str, key_authorization: Option<String>) {
        let mut c = lock(&self.challenges);
        let m = c.entry(env.to_string()).or_default();
        match key_authorization {
            Some(k) => {
                m.insert(token.to_string(), k);
            }
            None => {
                m.remove(token);
            }
        }
    }

    /// A new session of `host`: it needs its table again.
    pub fn session_started(&self, host: &str) {
        lock(&self.sent).remove(host);
    }

    /// Why ACME has no certificate for `host` yet (`None`: it has one now).
    pub fn set_acme_error(&self, env: &str, host: &str, error: Option<String>) {
        let key = (env.to_string(), host.to_string());
        match error {
            Some(e) => lock(&self.acme_errors).insert(key, e),
            None => lock(&self.acme_errors).remove(&key),
        };
    }

    pub fn acme_error(&self, env: &str, host: &str) -> Option<String> {
        lock(&self.acme_errors)
            .get(&(env.to_string(), host.to_ascii_lowercase()))
            .cloned()
    }

    pub fn problems(&self, env: &str) -> Vec<String> {
        self.problems
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(env)
            .cloned()
            .unwrap_or_default()
    }
}

/// Every service of the environment's stacks that exposes something: (stack, service,
/// its `x-drover.expose`).
pub fn exposed(state: &AppState, env: &str) -> Vec<(String, String, Vec<ingress::Expose>)> {
    let model = state.model();
    model
        .stacks(env)
        .flat_map(|s| {
            s.row.project.services.iter().filter_map(|(name, svc)| {
                let x = proto::x_drover(svc).ok()?;
                (!x.expose.is_empty()).then(|| (s.row.project.name.clone(), name.clone(), x.expose))
            })
        })
        .collect()
}

/// A mesh member host: its id, its block and its mesh address.
pub struct Member {
    pub host: String,
    pub block: mesh::Ipv4Net,
    pub ip: Ipv4Addr,
}

/// The environment's route table from its stacks, the mesh's directory and its
/// certificates, with why some routes are not fully served.
pub fn table(
    state: &AppState,
    env: &str,
    members: &[Member],
    entries: &[mesh::Entry],
) -> (ingress::Table, Vec<String>) {
    let exposed = exposed(state, env);
    let host_of = |ip: &Ipv4Addr| {
        members
            .iter()
            .find(|m| m.block.contains(ip))
            .map(|m| m.host.as_str())
    };
    let containers: Vec<ingress::table::Container<'_>> = entries
        .iter()
        .filter_map(|e| {
            let ip = e.addrs.values().next().copied();
            Some(ingress::table::Container {
                name: &e.name,
                stack: &e.stack,
                service: &e.service,
                host: host_of(ip.as_ref()?)?,
                ready: e.ready,
                ip,
            })
        })
        .collect();
    let certs: Vec<ingress::Cert> = state
        .ingress
        .certs(env)
        .into_iter()
        .map(|s| s.cert)
        .collect();
    let challenges = lock(&state.ingress.challenges)
        .get(env)
        .cloned()
        .unwrap_or_default();
    let input = ingress::table::Input {
        services: exposed
            .iter()
            .map(|(stack, service, expose)| ingress::table::Service {
                stack,
                service,
                expose,
            })
            .collect(),
        containers,
        certs,
        challenges,
    };
    ingress::table::table(&input)
}

/// Sends the environment's ingress hosts its route table (and every other host of the
/// environment that ran an ingress the order to stop), and returns what each mesh host
/// must let through from the tunnel for it: from the ingress hosts' mesh addresses to the
/// backends it runs.
pub fn publish(
    state: &AppState,
    env: &str,
    members: &[Member],
    entries: &[mesh::Entry],
) -> HashMap<String, Vec<mesh::Allow>> {
    let (table, problems) = table(state, env, members, entries);
    state
        .ingress
        .problems
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(env.to_string(), problems);
    let labelled: Vec<String> = state
        .model()
        .hosts(env)
        .iter()
        .filter(|h| is_ingress(h))
        .map(|h| h.id.clone())
        .collect();
    for host in state.connected_hosts(env) {
        let want = labelled.contains(&host).then(|| table.clone());
        let mut sent = lock(&state.ingress.sent);
        let before = sent.get(&host);
        if before == Some(&want) || (before.is_none() && want.is_none()) {
            continue;
        }
        if state.send_to(&host, ServerMsg::Ingress(want.clone())) {
            sent.insert(host, want);
        }
    }
    // From each ingress host on the mesh to each backend on another host.
    let sources: Vec<(&str, Ipv4Addr)> = members
        .iter()
        .filter(|m| labelled.contains(&m.host))
        .map(|m| (m.host.as_str(), m.ip))
        .collect();
    ingress::tunnel_allows(&table, &sources)
        .into_iter()
        .map(|(host, pairs)| {
            let list = pairs
                .into_iter()
                .map(|(src, dst)| mesh::Allow {
                    network: "ingress".into(),
                    src: mesh::Ipv4Net::from(src),
                    dst: mesh::Ipv4Net::from(dst),
                })
                .collect();
            (host, list)
        })
        .collect()
}

/// Whether a host runs the ingress: labelled `drover.ingress=true`.
pub fn is_ingress(h: &store::HostRecord) -> bool {
    h.labels.get(ingress::INGRESS_LABEL).map(String::as_str) == Some("true")
}
