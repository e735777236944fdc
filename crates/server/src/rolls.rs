//! The shell of rolling upgrades (the `roll` crate decides): what a deploy does to each
//! service's slots, and the driver that, at every scheduling pass, gives each running roll
//! what the hosts report and writes what it decides.

use std::collections::{BTreeMap, HashMap};

use store::Placement;

use crate::model::{Name, SlotId, StackEntry, StackKey};
use crate::state::{AppState, HostReport};

/// What a deploy writes besides the project: every slot (revision 0 = the new one) and the
/// rolls of the services whose containers must change.
pub struct Deployed {
    pub placements: Vec<Placement>,
    pub rolls: BTreeMap<Name, roll::Roll>,
}

/// What a deploy does to each service of `project`, given the stack as it was (`old`):
/// `roll::deploy` decides per service (sidekicks have no slots: they run in their
/// primary's). `rollback`: this deploy undoes a roll that failed for this reason.
pub fn plan(
    env: &str,
    old: Option<&StackEntry>,
    project: &compose::Project,
    rollback: Option<&str>,
    now: u64,
) -> Deployed {
    let mut placements = Vec::new();
    let mut rolls = BTreeMap::new();
    let new_rev = old.map_or(1, |o| o.row.revision + 1);
    for (service, spec) in project.primaries() {
        let hash = project.unit_hash(service);
        // Slots of one revision run the same: hashed once per revision.
        let mut hashes: HashMap<u64, String> = HashMap::new();
        let name = Name::from(service.as_str());
        let existing: Vec<(&SlotId, &Option<Name>)> = old
            .into_iter()
            .flat_map(|o| {
                o.slots
                    .range((name.clone(), 0)..)
                    .take_while(|((s, _), _)| **s == **service)
            })
            .collect();
        let input = roll::deploy::Service {
            replicas: spec.replicas,
            global: spec.global,
            // A fixed container name cannot run twice on a host either.
            singleton: project.unit_any(service, proto::is_singleton)
                || spec.container_name.is_some(),
            update_config: spec.update_config.as_ref(),
            undo_config: old
                .and_then(|o| o.row.project.services.get(service))
                .and_then(|s| s.rollback_config.as_ref()),
            slots: existing
                .iter()
                .map(|(slot, _)| roll::deploy::Existing {
                    id: slot.1,
                    same: old.is_some_and(|o| {
                        let rev = o.rev_of(slot);
                        *hashes
                            .entry(rev)
                            .or_insert_with(|| o.project_of(rev).unit_hash(service))
                            == hash
                    }),
                })
                .collect(),
            previous: old.and_then(|o| o.rolls.get(service.as_str())),
        };
        let decision =
            roll::deploy::deploy(&input, new_rev, old.map(|o| o.row.revision), rollback, now);
        let hosts: BTreeMap<u32, &Option<Name>> = existing.iter().map(|(s, h)| (s.1, *h)).collect();
        for (id, rev) in decision.slots {
            let rev = match rev {
                roll::deploy::Rev::Target => 0,
                roll::deploy::Rev::Own => old.map_or(0, |o| o.rev_of(&(name.clone(), id))),
            };
            placements.push(Placement {
                env: env.to_string(),
                stack: project.name.clone(),
                service: service.clone(),
                slot: id,
                host: hosts
                    .get(&id)
                    .and_then(|h| h.as_ref())
                    .map(|h| h.to_string()),
                rev,
            });
        }
        if let Some(r) = decision.roll {
            rolls.insert(name, r);
        }
    }
    Deployed { placements, rolls }
}

/// A failed roll to undo: the service goes back to its spec of revision `from`.
pub struct RollBack {
    pub stack: String,
    pub service: String,
    pub from: u64,
    pub reason: String,
}

/// One step of every running roll of `env`, written through (under the caller's write
/// serialisation). Returns the rolls that failed and want to be rolled back.
pub fn drive(
    state: &AppState,
    serial: &std::sync::MutexGuard<'_, ()>,
    env: &str,
    now: u64,
) -> Result<Vec<RollBack>, store::Error> {
    let mut set = Vec::new();
    let mut remove = Vec::new();
    let mut rows = Vec::new();
    let mut updates: Vec<(StackKey, Name, roll::Roll)> = Vec::new();
    let mut events: Vec<(String, &'static str, String)> = Vec::new();
    let mut rollbacks = Vec::new();
    {
        let model = state.model();
        let mut reports: HashMap<Name, Option<HostReport>> = HashMap::new();
        for entry in model.stacks(env) {
            let project = &entry.row.project;
            let key: StackKey = (env.into(), project.name.as_str().into());
            for (service, roll) in entry.rolls.iter().filter(|(_, r)| r.is_rolling()) {
                let Some(spec) = project.services.get(&**service) else {
                    continue;
                };
                let mut slots = Vec::new();
                for (slot, host) in entry
                    .slots
                    .range((service.clone(), 0)..)
                    .take_while(|((s, _), _)| s == service)
                {
                    let report = host.as_ref().and_then(|h| {
                        reports
                            .entry(h.clone())
                            .or_insert_with(|| state.report(h))
                            .as_ref()
                    });
                    // A slot is as ready as the least ready of its containers.
                    let rev = entry.project_of(entry.rev_of(slot));
                    let state = std::iter::once(&**service)
                        .chain(rev.sidekicks_of(service))
                        .map(|s| slot_state(entry, s, slot, host.is_some(), report))
                        .max_by_key(roll::State::rank)
                        .unwrap_or(roll::State::Pending);
                    slots.push(roll::Slot {
                        id: slot.1,
                        name: proto::container_name(&project.name, service, slot.1),
                        current: entry.is_current(slot),
                        state,
                    });
                }
                let x = proto::x_drover(spec).unwrap_or_default();
                let input = roll::Input {
                    replicas: if spec.global {
                        slots.len() as u32
                    } else {
                        spec.replicas
                    },
                    slots: &slots,
                    drain_ms: x.drain_ms().unwrap_or(proto::DEFAULT_DRAIN_MS),
                    now,
                };
                let mut next = roll.clone();
                let actions = roll::step(&mut next, &input);
                if next == *roll && actions.is_empty() {
                    continue;
                }
                for a in &actions {
                    let (id, rev) = match *a {
                        roll::Action::Add(id) => (id, None),
                        roll::Action::Replace(id) => (id, Some(())),
                        roll::Action::Remove(id) => {
                            let s: SlotId = (service.clone(), id);
                            remove.push(crate::model::placement(
                                env,
                                &project.name,
                                &s,
                                None,
                                entry.rev_of(&s),
                            ));
                            continue;
                        }
                    };
                    let s: SlotId = (service.clone(), id);
                    let host = rev.and_then(|_| entry.slots.get(&s).cloned().flatten());
                    set.push(crate::model::placement(
                        env,
                        &project.name,
                        &s,
                        host.as_ref(),
                        entry.row.revision,
                    ));
                }
                if next.phase != roll.phase {
                    let subject = format!("{}/{service}", project.name);
                    let (kind, detail) = match &next.phase {
                        roll::Phase::Done => (
                            "roll.done",
                            format!(
                                "revision {}: {} replicas in {} ms",
                                next.target,
                                next.updated,
                                now.saturating_sub(next.started_ms)
                            ),
                        ),
                        roll::Phase::Paused { reason } => ("roll.paused", reason.clone()),
                        roll::Phase::RollingBack { reason } => {
                            rollbacks.push(RollBack {
                                stack: project.name.clone(),
                                service: service.to_string(),
                                from: next.from,
                                reason: reason.clone(),
                            });
                            ("roll.failed", reason.clone())
                        }
                        roll::Phase::Rolling => ("roll.started", String::new()),
                    };
                    events.push((subject, kind, detail));
                }
                tracing::debug!(
                    "roll {}/{service}: {actions:?}, batch {:?}, draining {:?}",
                    project.name,
                    next.batch,
                    next.draining.keys()
                );
                rows.push(store::RollRow {
                    env: env.to_string(),
                    stack: project.name.clone(),
                    service: service.to_string(),
                    state: serde_json::to_string(&next).ok(),
                });
                updates.push((key.clone(), service.clone(), next));
            }
        }
    }
    if rows.is_empty() {
        return Ok(rollbacks);
    }
    let event_text: Vec<String> = events
        .iter()
        .map(|(s, k, d)| format!("{s} {k} {d}"))
        .collect();
    for line in &event_text {
        tracing::info!("{line}");
    }
    {
        let mut store = state.store();
        store.move_placements(&set, &remove, &rows, None, now)?;
        for (subject, kind, detail) in &events {
            store.append_event(
                now,
                &store::NewEvent {
                    env,
                    actor: "roller",
                    kind,
                    subject,
                    detail,
                    source: "",
                    result: "ok",
                },
            )?;
        }
    }
    state.apply_roll_step(serial, &set, &remove, updates);
    Ok(rollbacks)
}

/// How the container of `service` (the slot's own service or one of its sidekicks) in
/// slot `slot` looks to its roll: the report's facts, judged by `roll::judge`.
fn slot_state(
    entry: &StackEntry,
    service: &str,
    slot: &SlotId,
    placed: bool,
    report: Option<&HostReport>,
) -> roll::State {
    if !placed {
        return roll::State::Pending;
    }
    let Some(report) = report else {
        return roll::State::Starting;
    };
    let name = proto::container_name(&entry.row.project.name, service, slot.1);
    let failed = report.error(&name).filter(|e| e.count > 0);
    let spec = entry.project_of(entry.rev_of(slot)).services.get(service);
    roll::judge(
        spec,
        failed.map(|e| e.message.as_str()),
        report.container(&name),
    )
}

/// Undoes a failed roll: a new revision of the stack with the service's spec of revision
/// `from` (the rest as it is), rolled with the service's `rollback_config`.
pub fn roll_back(state: &AppState, env: &str, rb: RollBack) {
    let (mut project, revision, kept) = {
        let model = state.model();
        let Some(e) = model.stack(env, &rb.stack) else {
            return;
        };
        let kept = e.projects.get(&rb.from).cloned();
        (e.row.project.clone(), e.row.revision, kept)
    };
    let from = kept.or_else(|| {
        let stored = state.store().revision_project(env, &rb.stack, rb.from);
        stored.ok().flatten().map(std::sync::Arc::new)
    });
    let Some(from) = from.filter(|p| p.services.contains_key(&rb.service)) else {
        tracing::error!(
            "cannot roll back {}/{}: revision {} is no longer kept",
            rb.stack,
            rb.service,
            rb.from
        );
        return;
    };
    // The service and its sidekicks, then and now, as they were then.
    let unit: Vec<String> = std::iter::once(rb.service.as_str())
        .chain(project.sidekicks_of(&rb.service))
        .chain(from.sidekicks_of(&rb.service))
        .map(str::to_string)
        .collect();
    for name in unit {
        match from.services.get(&name) {
            Some(spec) => project.services.insert(name, spec.clone()),
            None => project.services.remove(&name),
        };
    }
    let why = format!(
        "automatic rollback of {} to revision {}: {}",
        rb.service, rb.from, rb.reason
    );
    if let Err(e) = crate::api::stacks::write_project(
        state,
        "roller",
        env,
        crate::api::stacks::Deploy {
            project,
            why: Some(why),
            expected: Some(revision),
            rollback: Some(rb.reason.clone()),
            ..Default::default()
        },
    ) {
        tracing::error!("rollback of {}/{}: {}", rb.stack, rb.service, e.message);
    }
}
