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
use std::sync::Arc;
use std::time::Duration;

use store::Placement;

use crate::model::{GroupId, Load, Name, SlotId, StackKey};
use crate::state::{AppState, HostReport, now_ms};

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
    let last = last_heard(state, host, report.as_ref());
    let silent_for = now.saturating_sub(last);
    // A connection can look open long after its peer is gone (a cut link): what counts is
    // hearing from the agent, which heartbeats every few seconds.
    let fresh = silent_for < 2 * proto::HEARTBEAT_SECS * 1000 + 1000;
    if state.is_connected(&host.id) && (fresh || report.is_none()) {
        return match report {
            Some(r) if r.engine().up => Liveness::Up,
            _ => Liveness::Unready,
        };
    }
    if silent_for >= timing.down_after_ms {
        Liveness::Down
    } else {
        Liveness::Silent
    }
}

/// When the host's agent was last heard from (the server's start counts as hearing it).
fn last_heard(state: &AppState, host: &store::HostRecord, report: Option<&HostReport>) -> u64 {
    report
        .map(|r| r.last_seen_ms)
        .unwrap_or(0)
        .max(host.last_seen_ms)
        .max(state.started_ms)
}

/// What a pass decided: placements to set (`host: None` never occurs) and to delete.
struct Moves {
    set: Vec<Placement>,
    remove: Vec<Placement>,
}

/// One scheduling pass over `env`: a step of every running roll, then the placements,
/// decided from the model and written through, serialised with deploys. Desired states are
/// pushed by the caller. Returns the failed rolls to roll back.
pub fn pass(
    state: &AppState,
    env: &str,
    timing: &Timing,
) -> Result<Vec<crate::rolls::RollBack>, store::Error> {
    let serial = state.serialise_writes();
    let now = now_ms();
    let rollbacks = crate::rolls::drive(state, &serial, env, now)?;
    let Some(moves) = decide(state, env, timing, now) else {
        return Ok(rollbacks);
    };
    let mut moved: Vec<String> = moves
        .set
        .iter()
        .map(|p| {
            let to = p.host.as_deref().map(short_id).unwrap_or("pending");
            format!(
                "{} -> {to}",
                proto::container_name(&p.stack, &p.service, p.slot)
            )
        })
        .chain(moves.remove.iter().map(|p| {
            format!(
                "{} removed",
                proto::container_name(&p.stack, &p.service, p.slot)
            )
        }))
        .collect();
    let total = moved.len();
    if total > 100 {
        moved.truncate(100);
        moved.push(format!("and {} more", total - 100));
    }
    let detail = moved.join(", ");
    let event = store::NewEvent {
        env,
        actor: "scheduler",
        kind: "placement.changed",
        subject: "containers",
        detail: &detail,
        source: "",
        result: "ok",
    };
    state.move_placements(&serial, &moves.set, &moves.remove, Some(&event), now)?;
    tracing::info!("placements: {detail}");
    Ok(rollbacks)
}

/// The first 12 characters of a host id, for event details (ids may be non-ASCII, so
/// this cuts at a character boundary, never inside one).
fn short_id(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(i, _)| &id[..i])
}

/// The decisions of one pass, from the model. `None` when nothing changes. Only hosts that
/// are down, draining or reporting failures, pending slots and global services are looked
/// at unless something must be placed, so an idle pass costs little at any scale.
fn decide(state: &AppState, env: &str, timing: &Timing, now: u64) -> Option<Moves> {
    let model = state.model();
    let hosts = model.hosts(env);
    let index: HashMap<&str, usize> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.id.as_str(), i))
        .collect();
    let reports: Vec<Option<HostReport>> = hosts.iter().map(|h| state.report(&h.id)).collect();
    let live: Vec<Liveness> = hosts
        .iter()
        .map(|h| liveness(state, h, timing, now))
        .collect();
    let spec = |key: &StackKey, service: &str| {
        model
            .stack_by_key(key)
            .and_then(|e| e.row.project.services.get(service))
    };

    // Replicas that must move (kept placed until the scheduler finds them a new host), and
    // global replicas to delete.
    let mut unplace: BTreeSet<(StackKey, SlotId)> = BTreeSet::new();
    let mut remove: Vec<(StackKey, SlotId)> = Vec::new();
    for (h, record) in hosts.iter().enumerate() {
        let down = live[h] == Liveness::Down;
        let failing = reports[h]
            .as_ref()
            .is_some_and(|r| r.errors().iter().any(|e| e.count > 0));
        if !down && !record.draining && !failing {
            continue;
        }
        let Some(stacks) = model.slots_on(&record.id) else {
            continue;
        };
        let singleton_may_move = now.saturating_sub(last_heard(state, record, reports[h].as_ref()))
            >= timing.down_after_ms.max(proto::LEASE_MS) + timing.singleton_margin_ms;
        for (key, slots) in stacks.iter().filter(|(k, _)| &*k.0 == env) {
            for slot in slots {
                let Some(svc) = spec(key, &slot.0) else {
                    continue;
                };
                if svc.global {
                    continue; // below
                }
                let singleton = model
                    .stack_by_key(key)
                    .is_some_and(|e| e.row.project.unit_any(&slot.0, proto::is_singleton));
                let moved = if down {
                    !singleton || singleton_may_move
                } else {
                    record.draining
                };
                let name = proto::container_name(&key.1, &slot.0, slot.1);
                let fail_count = reports[h]
                    .as_ref()
                    .and_then(|r| r.error(&name))
                    .map(|e| e.count)
                    .unwrap_or(0);
                let group = group_key(env, &key.1, &slot.0);
                if fail_count > 0 {
                    state.remember_failure(&group, &record.id, fail_count, now);
                }
                // Move a failing replica only to a host where this service has not failed
                // lately: once every host has been tried, it stays (no ping-pong).
                let untried_elsewhere = fail_count >= scheduler::AVOID_AFTER
                    && live.iter().enumerate().any(|(i, l)| {
                        i != h
                            && *l == Liveness::Up
                            && !hosts[i].draining
                            && state.failures_of(&group, &hosts[i].id, now) < scheduler::AVOID_AFTER
                    });
                if moved || untried_elsewhere {
                    unplace.insert((key.clone(), slot.clone()));
                }
            }
        }
    }

    // Global services: a replica stays with its host unless the host is gone, draining or
    // no longer matches; a host that matches and has none needs one.
    let mut globals_wanting = false;
    for entry in model.stacks(env) {
        let key: StackKey = (env.into(), entry.row.project.name.as_str().into());
        for (service, svc) in entry
            .row
            .project
            .services
            .iter()
            .filter(|(n, s)| s.global && !entry.is_sidekick(n))
        {
            let constraints = constraints(svc);
            let matches = |r: &store::HostRecord| {
                let h = sched_host(r, None);
                constraints.iter().all(|c| c.holds(&h))
            };
            let mut covered: BTreeSet<usize> = BTreeSet::new();
            for (slot, host) in entry.slots.range((service.as_str().into(), 0)..) {
                if *slot.0 != **service {
                    break;
                }
                let keep = host
                    .as_deref()
                    .and_then(|h| index.get(h))
                    .is_some_and(|&i| !hosts[i].draining && matches(hosts[i]));
                if keep {
                    covered.extend(host.as_deref().and_then(|h| index.get(h)).copied());
                } else {
                    remove.push((key.clone(), slot.clone()));
                }
            }
            globals_wanting |= hosts.iter().enumerate().any(|(i, r)| {
                live[i] == Liveness::Up && !r.draining && !covered.contains(&i) && matches(r)
            });
        }
    }

    let pending: Vec<&(StackKey, SlotId)> = model.pending(env).collect();
    if unplace.is_empty() && remove.is_empty() && pending.is_empty() && !globals_wanting {
        state.set_pending_reasons(env, HashMap::new());
        return None;
    }

    // The snapshot: every host, schedulable when up and not draining; every replica that
    // stays where it is.
    let mut failures: Vec<(String, usize, u32)> = Vec::new();
    for (group, host, count) in state.recent_failures(now) {
        if let Some(&h) = index.get(host.as_str()) {
            failures.push((group, h, count));
        }
    }
    let snap_hosts: Vec<scheduler::Host> = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let engine = reports[i].as_ref().map(|r| r.engine());
            let mut s = sched_host(h, engine);
            s.schedulable = live[i] == Liveness::Up && !h.draining;
            s
        })
        .collect();
    // Replicas to place, by service: pending ones and those that must move.
    let mut wanted: BTreeMap<GroupId, Vec<u32>> = BTreeMap::new();
    for (key, slot) in pending.iter().copied().chain(unplace.iter()) {
        wanted
            .entry((key.clone(), slot.0.clone()))
            .or_default()
            .push(slot.1);
    }
    // Groups: those services, and every global service. Relevant to the scheduler: these
    // and the services they have affinities with.
    let mut groups = Vec::new();
    let mut relevant: BTreeSet<GroupId> = BTreeSet::new();
    let mut binpack = false;
    for entry in model.stacks(env) {
        let project = &entry.row.project;
        let key: StackKey = (env.into(), project.name.as_str().into());
        for (service, svc) in &project.services {
            let gid: GroupId = (key.clone(), service.as_str().into());
            let slots = wanted.remove(&gid);
            if !svc.global && slots.is_none() || entry.is_sidekick(service) {
                continue;
            }
            let x = proto::x_drover(svc).unwrap_or_default();
            binpack |= x.strategy.as_deref() == Some("binpack");
            relevant.insert(gid);
            relevant.extend(
                x.affinity
                    .iter()
                    .map(|a| (key.clone(), Name::from(a.service.as_str()))),
            );
            // A replica carries its sidekicks: their reservations, ports and constraints.
            let load = model.replica_load(&key, service);
            let mut constraints = constraints(svc);
            for s in entry.sidekicks.get(service.as_str()).into_iter().flatten() {
                if let Some(spec) = project.services.get(&**s) {
                    constraints.extend(self::constraints(spec));
                }
            }
            groups.push(scheduler::Group {
                key: group_key(env, &project.name, service),
                slots: slots.unwrap_or_default(),
                cpu_milli: load.cpu_milli,
                memory: load.memory,
                ports: load.ports,
                constraints,
                affinities: x
                    .affinity
                    .iter()
                    .map(|a| scheduler::Affinity {
                        group: group_key(env, &project.name, &a.service),
                        anti: a.anti,
                        hard: a.hard,
                    })
                    .collect(),
                max_per_host: svc.placement.max_replicas_per_node,
                global: svc.global,
            });
        }
    }

    // Replicas that stay: each host's load as the model keeps it, less the replicas that
    // move, given as one lump per host, plus the relevant services' replica counts per
    // host. The cost follows hosts and relevant services, not all replicas.
    let mut loads: Vec<Load> = hosts
        .iter()
        .map(|h| model.host_load(&h.id).cloned().unwrap_or_default())
        .collect();
    let mut counts: BTreeMap<&GroupId, HashMap<usize, u32>> = relevant
        .iter()
        .map(|g| {
            let on: HashMap<usize, u32> = model
                .group_hosts(g)
                .into_iter()
                .flatten()
                .filter_map(|(h, n)| Some((*index.get(&**h)?, *n)))
                .collect();
            (g, on)
        })
        .collect();
    for (key, slot) in unplace.iter().chain(remove.iter()) {
        let host = model
            .stack_by_key(key)
            .and_then(|e| e.slots.get(slot))
            .and_then(|h| h.as_deref())
            .and_then(|h| index.get(h));
        let Some(&h) = host else { continue };
        loads[h].sub(&model.replica_load(key, &slot.0));
        if let Some(n) = counts
            .get_mut(&(key.clone(), slot.0.clone()))
            .and_then(|m| m.get_mut(&h))
        {
            *n = n.saturating_sub(1);
        }
    }
    let mut existing = Vec::new();
    let mut counted = vec![0u32; hosts.len()];
    for (g, on) in &counts {
        for (&h, &n) in on.iter().filter(|(_, n)| **n > 0) {
            counted[h] += n;
            existing.push(scheduler::Existing {
                host: h,
                group: group_key(env, &g.0.1, &g.1),
                replicas: n,
                cpu_milli: 0,
                memory: 0,
                ports: Vec::new(),
            });
        }
    }
    for (h, load) in loads.into_iter().enumerate() {
        existing.push(scheduler::Existing {
            host: h,
            group: String::new(),
            replicas: load.containers.saturating_sub(counted[h]),
            cpu_milli: load.cpu_milli,
            memory: load.memory,
            ports: load.ports,
        });
    }
    let snapshot = scheduler::Snapshot {
        hosts: snap_hosts,
        existing,
        failures,
    };

    let strategy = if binpack {
        scheduler::Strategy::Binpack
    } else {
        scheduler::Strategy::Spread
    };
    // The scheduler runs without the model lock (agents registering must not wait for it);
    // placements cannot change meanwhile, as this pass holds the write serialisation.
    let host_ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    let remove: Vec<Placement> = remove
        .iter()
        .map(|(key, slot)| crate::model::placement(env, &key.1, slot, None, 0))
        .collect();
    drop(hosts);
    drop(model);
    let plan = scheduler::schedule(&snapshot, &groups, strategy, now);
    drop(snapshot);
    let model = state.model();

    // Placed replicas get their host. A replica that had to move but fits nowhere else
    // stays where it is (still running on a draining host, or waiting for its down host to
    // return) rather than becoming pending: nothing is stopped for nothing.
    let mut set = Vec::new();
    let mut next_global_slot: HashMap<String, u32> = HashMap::new();
    for (group, slot, h) in &plan.placed {
        let Some((stack, service)) = split_group(group, env) else {
            continue;
        };
        let key: StackKey = (env.into(), stack.into());
        let Some(entry) = model.stack_by_key(&key) else {
            continue;
        };
        let slot = if *slot == 0 {
            // Global: the next free slot number of that service.
            let next = next_global_slot.entry(group.clone()).or_insert_with(|| {
                entry
                    .slots
                    .keys()
                    .filter(|(s, _)| &**s == service)
                    .map(|(_, n)| *n)
                    .max()
                    .unwrap_or(0)
            });
            *next += 1;
            *next
        } else {
            *slot
        };
        let host = &host_ids[*h];
        let id: SlotId = (Name::from(service), slot);
        let current = entry.slots.get(&id);
        if current.is_some_and(|c| c.as_deref() == Some(host.as_str())) {
            continue;
        }
        set.push(Placement {
            env: env.to_string(),
            stack: stack.to_string(),
            service: service.to_string(),
            slot,
            host: Some(host.clone()),
            rev: entry.rev_of(&id),
        });
    }
    // Hosts that are connecting (no engine report yet) or briefly silent may take the
    // replica in a moment: say so, so that a deploy waits rather than fails.
    let coming = live
        .iter()
        .filter(|l| matches!(l, Liveness::Unready | Liveness::Silent))
        .count();
    let mut reasons = HashMap::new();
    for (group, slot, why) in plan.pending {
        if let Some((stack, service)) = split_group(&group, env) {
            let why = match coming {
                0 => why,
                n => format!("waiting for {n} host(s) to report: {why}"),
            };
            reasons.insert(proto::container_name(stack, service, slot), why);
        }
    }
    state.set_pending_reasons(env, reasons);
    if set.is_empty() && remove.is_empty() {
        return None;
    }
    Some(Moves { set, remove })
}

/// A service's placement constraints (validated at deploy, so none fails to parse here),
/// and its `platform` as constraints on the hosts' reported OS and architecture.
fn constraints(svc: &compose::Service) -> Vec<scheduler::Constraint> {
    let platform = svc.platform.as_deref().map(compose::platform_parts);
    let from_platform = platform.into_iter().flat_map(|(os, arch)| {
        [("node.platform.os", os), ("node.platform.arch", arch)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k} == {v}")))
    });
    svc.placement
        .constraints
        .iter()
        .cloned()
        .chain(from_platform)
        .filter_map(|c| scheduler::parse_constraint(&c).ok())
        .collect()
}

fn split_group<'a>(key: &'a str, env: &str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(env)?.strip_prefix('/')?.split_once('/')
}

/// Milli-CPUs of `cpus` as an agent reported them; saturating, as the report is outside
/// data and `u64::MAX * 1000` must not overflow.
pub fn cpu_milli(cpus: u64) -> u64 {
    cpus.saturating_mul(1000)
}

/// A store host as the scheduler sees it; capacity from the host's last engine report.
fn sched_host(h: &store::HostRecord, engine: Option<&proto::EngineStatus>) -> scheduler::Host {
    let mut labels = h.labels.clone();
    for (key, value) in [
        ("node.platform.os", engine.and_then(|e| e.os.clone())),
        ("node.platform.arch", engine.and_then(|e| e.arch.clone())),
    ] {
        if let Some(v) = value {
            labels.insert(key.to_string(), v);
        }
    }
    scheduler::Host {
        id: h.id.clone(),
        hostname: h.name.clone(),
        labels,
        cpu_milli: cpu_milli(engine.and_then(|e| e.cpus).unwrap_or(0)),
        memory: engine.and_then(|e| e.memory).unwrap_or(0),
        schedulable: false,
    }
}

/// Runs a scheduling pass over every environment each second and whenever one is asked
/// for (deploys, agents connecting, host changes; requests made during a pass are served by
/// the next one), then pushes the new desired state of every host whose part changed.
pub async fn run_loop(state: Arc<AppState>, timing: Timing) {
    loop {
        // Rolls are stepped by passes: while one runs, passes come often.
        let tick = if state.model().rolling() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let ticket = state.next_pass(tick).await;
        let st = state.clone();
        let started = std::time::Instant::now();
        let ran = tokio::task::spawn_blocking(move || {
            let envs = match st.store().environments() {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!("scheduling: {e}");
                    return;
                }
            };
            for env in envs {
                match pass(&st, &env, &timing) {
                    Ok(rollbacks) => {
                        for rb in rollbacks {
                            crate::rolls::roll_back(&st, &env, rb);
                        }
                    }
                    Err(e) => tracing::error!("scheduling {env}: {e}"),
                }
            }
            st.push_dirty();
        })
        .await;
        if let Err(e) = ran {
            tracing::error!("scheduling pass failed: {e}");
        }
        state
            .monitor
            .set_pass(started.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
        state.pass_done(ticket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_cut_at_character_boundaries() {
        // Byte 12 falls inside "ホ": byte slicing panicked here.
        assert_eq!(short_id("x日本語ホスト"), "x日本語ホスト");
        assert_eq!(short_id("hôst-é"), "hôst-é");
        assert_eq!(short_id("日本"), "日本");
        assert_eq!(short_id("aéééééééééééééé"), "aééééééééééé");
        assert_eq!(short_id("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_id(""), "");
    }

    #[test]
    fn huge_reported_cpus_saturate() {
        let host = store::HostRecord {
            id: "h".into(),
            env: "default".into(),
            name: "h".into(),
            labels: Default::default(),
            user_labels: Default::default(),
            draining: false,
            created_ms: 0,
            last_seen_ms: 0,
        };
        let engine = proto::EngineStatus {
            up: true,
            cpus: Some(u64::MAX),
            ..Default::default()
        };
        assert_eq!(sched_host(&host, Some(&engine)).cpu_milli, u64::MAX);
        assert_eq!(cpu_milli(4), 4000);
        assert_eq!(sched_host(&host, None).cpu_milli, 0);

        // The API's view of the host computes its free CPU from the same report.
        let store = store::Store::open_in_memory().expect("store");
        let state = AppState::new(
            store,
            "c".into(),
            &std::env::temp_dir().join("drover-sched-test"),
            Timing::default(),
        )
        .expect("state");
        let observed = proto::Observed {
            engine,
            ..Default::default()
        };
        state.set_report("h", observed);
        let info = crate::api::hosts::host_info(&state, host);
        assert_eq!(info.free_cpu_milli, Some(u64::MAX));
    }

    #[test]
    fn group_keys_split_back() {
        let k = group_key("default", "shop", "web");
        assert_eq!(split_group(&k, "default"), Some(("shop", "web")));
        assert_eq!(split_group(&k, "other"), None);
    }
}
