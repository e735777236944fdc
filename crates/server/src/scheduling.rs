//! The scheduling shell: turns the store and the hosts' reports into a `scheduler::Snapshot`,
//! runs the pure scheduler, and writes the placements back. Run after every deploy, when an
//! agent connects, and every second by [`run_loop`], which is also where failover happens:
//!
//! - a host silent for `down_after` is down: its replicas are placed elsewhere (when they fit
//!   somewhere; otherwise they stay, so nothing is stopped for nothing) — at once for
//!   ordinary services, and for singletons only once the host's lease has run out too (the
//!   cut-off agent removes its singletons at that moment), so a singleton never runs twice;
//! - a draining host's replicas are placed elsewhere;
//! - a replica whose container failed `AVOID_AFTER` times in a row on its host is placed
//!   elsewhere, and the scheduler avoids that host for the service while others fit;
//! - global services get one replica on each matching host, following hosts as they come and
//!   go;
//! - replicas that fit nowhere stay pending, with the scheduler's explanation.
//!
//! A host that comes back gets a desired state without the moved replicas, so its agent
//! removes the stale copies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use store::Placement;

use crate::state::{AppState, now_ms};

/// Failover timing.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// A host not heard from for this long is down.
    pub down_after_ms: u64,
    /// Extra wait, past `down_after` and the lease, before a singleton moves.
    pub singleton_margin_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            down_after_ms: 10_000,
            singleton_margin_ms: 5_000,
        }
    }
}

/// The group key of a service: `env/stack/service`.
fn group_key(env: &str, stack: &str, service: &str) -> String {
    format!("{env}/{stack}/{service}")
}

/// The placements of a freshly deployed project: slots that exist keep their host, new slots
/// start unplaced, slots beyond the replica count go. Global services keep theirs (the
/// scheduling pass adds or removes per host).
pub fn deploy_placements(
    env: &str,
    project: &compose::Project,
    existing: &[Placement],
) -> Vec<Placement> {
    let mut out = Vec::new();
    for (service, spec) in &project.services {
        if spec.global {
            out.extend(existing.iter().filter(|p| &p.service == service).cloned());
            continue;
        }
        for slot in 1..=spec.replicas {
            let host = existing
                .iter()
                .find(|p| &p.service == service && p.slot == slot)
                .and_then(|p| p.host.clone());
            out.push(Placement {
                env: env.to_string(),
                stack: project.name.clone(),
                service: service.clone(),
                slot,
                host,
            });
        }
    }
    out
}

/// Liveness of a host as the server sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Connected and reporting a working engine.
    Up,
    /// Connected, but no report yet or the engine is unreachable.
    Unready,
    /// Not connected, but heard from within `down_after`.
    Silent,
    /// Not heard from for `down_after`.
    Down,
}

pub fn liveness(state: &AppState, host: &store::HostRecord, timing: &Timing, now: u64) -> Liveness {
    let report = state.report(&host.id);
    let last = report
        .as_ref()
        .map(|r| r.last_seen_ms)
        .unwrap_or(0)
        .max(host.last_seen_ms)
        .max(state.started_ms);
    let silent_for = now.saturating_sub(last);
    // A connection can look open long after its peer is gone (a cut link): what counts is
    // hearing from the agent, which heartbeats every few seconds.
    let fresh = silent_for < 2 * proto::HEARTBEAT_SECS * 1000 + 1000;
    if state.is_connected(&host.id) && (fresh || report.is_none()) {
        return match report {
            Some(r) if r.observed.engine.up => Liveness::Up,
            _ => Liveness::Unready,
        };
    }
    if silent_for >= timing.down_after_ms {
        Liveness::Down
    } else {
        Liveness::Silent
    }
}

/// One scheduling pass over `env`. Returns whether any placement changed (the caller then
/// pushes desired states).
pub fn pass(state: &AppState, env: &str, timing: &Timing) -> Result<bool, store::Error> {
    let now = now_ms();
    let hosts = state.store().hosts(env)?;
    let stacks: BTreeMap<String, compose::Project> = state
        .store()
        .stacks(env)?
        .into_iter()
        .map(|s| (s.project.name.clone(), s.project))
        .collect();
    let placements: Vec<Placement> = state
        .store()
        .placements()?
        .into_iter()
        .filter(|p| p.env == env)
        .collect();
    let index: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    let live: Vec<Liveness> = hosts
        .iter()
        .map(|h| liveness(state, h, timing, now))
        .collect();
    let reports = state.reports();
    let spec = |p: &Placement| {
        stacks
            .get(&p.stack)
            .and_then(|s| s.services.get(&p.service))
    };

    // Replicas that must move, and failures the scheduler should remember.
    let mut failures: Vec<(String, usize, u32)> = Vec::new();
    let mut unplace: Vec<Placement> = Vec::new();
    let mut remove: Vec<Placement> = Vec::new();
    for p in &placements {
        let (Some(host), Some(svc)) = (p.host.as_deref(), spec(p)) else {
            continue;
        };
        let Some(&h) = index.get(host) else {
            // The host record is gone.
            if svc.global {
                remove.push(p.clone());
            } else {
                unplace.push(p.clone());
            }
            continue;
        };
        let record = &hosts[h];
        if svc.global {
            // A global replica stays with its host unless the host no longer qualifies.
            let constraints_hold = svc.placement.constraints.iter().all(|c| {
                scheduler::parse_constraint(c).is_ok_and(|c| c.holds(&sched_host(record, None)))
            });
            if record.draining || !constraints_hold {
                remove.push(p.clone());
            }
            continue;
        }
        let moved = match live[h] {
            Liveness::Down => {
                let last = reports
                    .get(host)
                    .map(|r| r.last_seen_ms)
                    .unwrap_or(0)
                    .max(record.last_seen_ms)
                    .max(state.started_ms);
                !proto::is_singleton(svc)
                    || now.saturating_sub(last)
                        >= timing.down_after_ms.max(proto::LEASE_MS) + timing.singleton_margin_ms
            }
            _ => record.draining,
        };
        let name = proto::container_name(&p.stack, &p.service, p.slot);
        let fail_count = reports
            .get(host)
            .and_then(|r| r.observed.errors.iter().find(|e| e.name == name))
            .map(|e| e.count)
            .unwrap_or(0);
        let group = group_key(env, &p.stack, &p.service);
        if fail_count > 0 {
            state.remember_failure(&group, host, fail_count, now);
        }
        // Move a failing replica only to a host where this service has not failed lately:
        // once every host has been tried, it stays (no ping-pong).
        let untried_elsewhere = live.iter().enumerate().any(|(i, l)| {
            i != h
                && *l == Liveness::Up
                && !hosts[i].draining
                && state.failures_of(&group, &hosts[i].id, now) < scheduler::AVOID_AFTER
        });
        if moved || (fail_count >= scheduler::AVOID_AFTER && untried_elsewhere) {
            unplace.push(p.clone());
        }
    }
    for (group, host, count) in state.recent_failures(now) {
        if let Some(&h) = index.get(host.as_str()) {
            failures.push((group, h, count));
        }
    }

    // The snapshot: every host, schedulable when up and not draining.
    let snap_hosts: Vec<scheduler::Host> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let mut s = sched_host(h, reports.get(&h.id).map(|r| &r.observed.engine));
            s.schedulable = live[i] == Liveness::Up && !h.draining;
            s
        })
        .collect();
    let unplaced_keys: BTreeSet<(&str, &str, u32)> = unplace
        .iter()
        .chain(remove.iter())
        .map(|p| (p.stack.as_str(), p.service.as_str(), p.slot))
        .collect();
    let mut existing = Vec::new();
    let mut pending: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for p in &placements {
        let Some(svc) = spec(p) else { continue };
        let staying = !unplaced_keys.contains(&(p.stack.as_str(), p.service.as_str(), p.slot));
        match p.host.as_deref().and_then(|h| index.get(h)) {
            Some(&h) if staying => existing.push(scheduler::Existing {
                host: h,
                group: group_key(env, &p.stack, &p.service),
                cpu_milli: cpu_milli(svc),
                memory: svc.reservations.memory.unwrap_or(0),
                ports: ports(svc),
            }),
            _ if !svc.global => pending
                .entry((p.stack.clone(), p.service.clone()))
                .or_default()
                .push(p.slot),
            _ => {}
        }
    }
    let snapshot = scheduler::Snapshot {
        hosts: snap_hosts,
        existing,
        failures,
    };

    // Groups: pending replicas of replicated services, and every global service.
    let mut groups = Vec::new();
    let mut strategies = Vec::new();
    for (stack_name, project) in &stacks {
        for (service, svc) in &project.services {
            let slots = pending.remove(&(stack_name.clone(), service.clone()));
            if !svc.global && slots.is_none() {
                continue;
            }
            let x = proto::x_drover(svc).unwrap_or_default();
            strategies.push(x.strategy.clone());
            groups.push(scheduler::Group {
                key: group_key(env, stack_name, service),
                slots: slots.unwrap_or_default(),
                cpu_milli: cpu_milli(svc),
                memory: svc.reservations.memory.unwrap_or(0),
                ports: ports(svc),
                constraints: svc
                    .placement
                    .constraints
                    .iter()
                    .filter_map(|c| scheduler::parse_constraint(c).ok())
                    .collect(),
                affinities: x
                    .affinity
                    .iter()
                    .map(|a| scheduler::Affinity {
                        group: group_key(env, stack_name, &a.service),
                        anti: a.anti,
                        hard: a.hard,
                    })
                    .collect(),
                max_per_host: svc.placement.max_replicas_per_node,
                global: svc.global,
            });
        }
    }
    let binpack = strategies.iter().any(|s| s.as_deref() == Some("binpack"));
    let strategy = if binpack {
        scheduler::Strategy::Binpack
    } else {
        scheduler::Strategy::Spread
    };
    let plan = scheduler::schedule(&snapshot, &groups, strategy, now);

    // Write back: placed replicas get their host. A replica that had to move but fits
    // nowhere else stays where it is (still running on a draining host, or waiting for its
    // down host to return) rather than becoming pending: nothing is stopped for nothing.
    let mut set: BTreeMap<(String, String, u32), Placement> = BTreeMap::new();
    let mut next_global_slot: HashMap<String, u32> = HashMap::new();
    for (key, slot, h) in &plan.placed {
        let Some((stack, service)) = split_group(key, env) else {
            continue;
        };
        let slot = if *slot == 0 {
            // Global: the next free slot number of that service.
            let next = next_global_slot.entry(key.clone()).or_insert_with(|| {
                placements
                    .iter()
                    .filter(|p| p.stack == stack && p.service == service)
                    .map(|p| p.slot)
                    .max()
                    .unwrap_or(0)
            });
            *next += 1;
            *next
        } else {
            *slot
        };
        set.insert(
            (stack.to_string(), service.to_string(), slot),
            Placement {
                env: env.to_string(),
                stack: stack.to_string(),
                service: service.to_string(),
                slot,
                host: Some(hosts[*h].id.clone()),
            },
        );
    }
    let mut reasons = HashMap::new();
    for (key, slot, why) in plan.pending {
        if let Some((stack, service)) = split_group(&key, env) {
            reasons.insert(proto::container_name(stack, service, slot), why);
        }
    }
    state.set_pending_reasons(env, reasons);
    let changes: Vec<Placement> = set
        .into_values()
        .filter(|p| {
            !placements.iter().any(|q| {
                q.stack == p.stack && q.service == p.service && q.slot == p.slot && q.host == p.host
            })
        })
        .collect();
    if changes.is_empty() && remove.is_empty() {
        return Ok(false);
    }
    let moved: Vec<String> = changes
        .iter()
        .map(|p| {
            let to = p
                .host
                .as_deref()
                .map(|h| &h[..h.len().min(12)])
                .unwrap_or("pending");
            format!(
                "{} -> {to}",
                proto::container_name(&p.stack, &p.service, p.slot)
            )
        })
        .chain(remove.iter().map(|p| {
            format!(
                "{} removed",
                proto::container_name(&p.stack, &p.service, p.slot)
            )
        }))
        .collect();
    let detail = moved.join(", ");
    let event = store::NewEvent {
        env,
        actor: "scheduler",
        kind: "placement.changed",
        subject: "containers",
        detail: &detail,
    };
    state
        .store()
        .move_placements(&changes, &remove, Some(&event), now)?;
    tracing::info!("placements: {detail}");
    Ok(true)
}

fn split_group<'a>(key: &'a str, env: &str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(env)?.strip_prefix('/')?.split_once('/')
}

fn cpu_milli(svc: &compose::Service) -> u64 {
    svc.reservations
        .cpus
        .map(|c| (c * 1000.0).round().max(0.0) as u64)
        .unwrap_or(0)
}

fn ports(svc: &compose::Service) -> Vec<scheduler::PortKey> {
    svc.ports
        .iter()
        .filter_map(|p| p.published.map(|pp| (pp, p.protocol.clone())))
        .collect()
}

/// A store host as the scheduler sees it; capacity from the host's last engine report.
fn sched_host(h: &store::HostRecord, engine: Option<&proto::EngineStatus>) -> scheduler::Host {
    scheduler::Host {
        id: h.id.clone(),
        hostname: h.name.clone(),
        labels: h.labels.clone(),
        cpu_milli: engine.and_then(|e| e.cpus).unwrap_or(0) * 1000,
        memory: engine.and_then(|e| e.memory).unwrap_or(0),
        schedulable: false,
    }
}

/// Runs a scheduling pass over every environment each second (failover, drain, global
/// services, pending replicas), pushing desired states when placements change.
pub async fn run_loop(state: std::sync::Arc<AppState>, timing: Timing) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let envs = match state.store().environments() {
            Ok(e) => e,
            Err(e) => {
                tracing::error!("scheduling: {e}");
                continue;
            }
        };
        let mut changed = false;
        for env in envs {
            match pass(&state, &env, &timing) {
                Ok(c) => changed |= c,
                Err(e) => tracing::error!("scheduling {env}: {e}"),
            }
        }
        if changed {
            state.push_desired();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_keeps_existing_slots_and_drops_extra_ones() {
        let mut p = compose::Project {
            name: "s".into(),
            ..Default::default()
        };
        p.services.insert(
            "web".into(),
            compose::Service {
                image: Some("x".into()),
                replicas: 2,
                ..Default::default()
            },
        );
        let slot = |n: u32, h: Option<&str>| Placement {
            env: "default".into(),
            stack: "s".into(),
            service: "web".into(),
            slot: n,
            host: h.map(str::to_string),
        };
        let existing = [slot(1, Some("a")), slot(2, Some("b")), slot(3, Some("c"))];
        assert_eq!(
            deploy_placements("default", &p, &existing),
            vec![slot(1, Some("a")), slot(2, Some("b"))]
        );
        assert_eq!(
            deploy_placements("default", &p, &[]),
            vec![slot(1, None), slot(2, None)]
        );
    }

    #[test]
    fn group_keys_split_back() {
        let k = group_key("default", "shop", "web");
        assert_eq!(split_group(&k, "default"), Some(("shop", "web")));
        assert_eq!(split_group(&k, "other"), None);
    }
}
