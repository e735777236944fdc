//! The agent's own health checks (`x-drover.health` http/tcp): each running container whose
//! service asks for one is checked from the host at its interval, on its first address (on
//! loopback for a service on the host's network); the verdicts
//! ([`reconciler::health::Tracker`]) stand in for the engine's health of that container, so
//! names, recreation and status see them like a compose `healthcheck`.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use proto::{Health, Probe, ProbeKind};
use reconciler::health::Tracker;

use crate::Shared;
use crate::worker::now_ms;

const TICK: Duration = Duration::from_millis(250);

struct Checked {
    id: String,
    probe: Probe,
    tracker: Tracker,
    next_ms: u64,
}

/// Checks forever; publishes verdicts to `shared.probed` and wakes the worker on a change.
pub async fn run(shared: Arc<Shared>, tls: Arc<rustls::ClientConfig>) {
    // No redirects (a container must not send the agent elsewhere), no proxies.
    let http = match reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("health checks disabled: {e}");
            return;
        }
    };
    let mut checked: HashMap<String, Checked> = HashMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        let now = now_ms();
        // What to check: desired containers with a check, running, with an address.
        let wanted: Vec<(String, String, Probe, Ipv4Addr)> = {
            let desired = shared.desired.borrow();
            let observed = shared.observed.borrow();
            let (Some(d), Some(o)) = (desired.as_ref(), observed.as_ref()) else {
                continue;
            };
            d.containers
                .iter()
                .filter_map(|c| {
                    let probe = proto::x_drover(&c.spec).ok()?.probe().ok()??;
                    let seen = o.containers.iter().find(|oc| oc.name == c.name)?;
                    if seen.state != proto::ContainerState::Running {
                        return None;
                    }
                    // On the host's network the container answers where the agent is.
                    let ip = if c.spec.network_mode.as_deref() == Some(compose::NETWORK_HOST) {
                        Ipv4Addr::LOCALHOST
                    } else {
                        *seen.addrs.values().find(|ip| !ip.is_unspecified())?
                    };
                    Some((c.name.clone(), seen.id.clone(), probe, ip))
                })
                .collect()
        };
        checked.retain(|name, _| wanted.iter().any(|(n, ..)| n == name));
        let mut due = Vec::new();
        for (name, id, probe, ip) in wanted {
            let entry = checked.entry(name.clone()).or_insert_with(|| Checked {
                id: id.clone(),
                probe: probe.clone(),
                tracker: Tracker::new(now),
                next_ms: now,
            });
            if entry.id != id || entry.probe != probe {
                *entry = Checked {
                    id,
                    probe: probe.clone(),
                    tracker: Tracker::new(now),
                    next_ms: now,
                };
            }
            if entry.next_ms <= now {
                entry.next_ms = now + probe.interval_ms;
                due.push((name, probe, ip));
            }
        }
        if due.is_empty() {
            continue;
        }
        let results = join_all(due.into_iter().map(|(name, probe, ip)| {
            let http = http.clone();
            async move {
                let ok = check(&http, &probe, ip).await;
                (name, ok)
            }
        }))
        .await;
        let now = now_ms();
        for (name, ok) in results {
            if let Some(c) = checked.get_mut(&name) {
                c.tracker.record(&c.probe, ok, now);
            }
        }
        let verdicts: HashMap<String, Health> = checked
            .iter()
            .map(|(n, c)| (n.clone(), c.tracker.health(&c.probe)))
            .collect();
        let changed = shared.probed.send_if_modified(|v| {
            let changed = *v != verdicts;
            *v = verdicts;
            changed
        });
        if changed {
            shared.wake.notify_one();
        }
    }
}

/// One check of a container at `ip`.
async fn check(http: &reqwest::Client, probe: &Probe, ip: Ipv4Addr) -> bool {
    let timeout = Duration::from_millis(probe.timeout_ms);
    let addr = SocketAddr::from((ip, probe.port));
    match &probe.kind {
        ProbeKind::Tcp => matches!(
            tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
            Ok(Ok(_))
        ),
        ProbeKind::Http { path } => {
            let url = format!("http://{addr}{path}");
            match http.get(&url).timeout(timeout).send().await {
                Ok(resp) => {
                    let code = resp.status().as_u16();
                    (probe.expect.0..=probe.expect.1).contains(&code)
                }
                Err(_) => false,
            }
        }
    }
}
