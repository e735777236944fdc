//! What a deploy does to one service's slots, pure.
//!
//! A service that is new, or whose every container already runs the new spec, gets its slot
//! count at once: slots that exist keep their number (and host); the highest go; new ones
//! take the lowest free numbers and wait for the scheduler. A service whose containers must
//! change keeps its slots as they are and gets a [`Roll`] to the new revision, which adds,
//! replaces and removes slots step by step.

use std::collections::BTreeSet;

use compose::{UpdateConfig, UpdateOrder};

use crate::{Roll, Settings, free_slots};

/// One slot of the service as the deploy finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Existing {
    pub id: u32,
    /// It already runs what the new revision asks (its spec and its sidekicks').
    pub same: bool,
}

/// A service of the new revision, and its slots now.
#[derive(Debug, Clone, Default)]
pub struct Service<'a> {
    pub replicas: u32,
    pub global: bool,
    /// It (or one of its sidekicks) must never run twice.
    pub singleton: bool,
    pub update_config: Option<&'a UpdateConfig>,
    /// `rollback_config` of the spec being replaced: how a rollback of it rolls.
    pub undo_config: Option<&'a UpdateConfig>,
    /// Its slots, in slot order.
    pub slots: Vec<Existing>,
    /// Its last roll, if any: containers still leaving finish leaving.
    pub previous: Option<&'a Roll>,
}

/// Which revision a slot runs after the deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rev {
    /// The new one (a new slot, or one already running its spec).
    Target,
    /// The one it runs now (until its roll reaches it).
    Own,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Every slot the service keeps or gets; a slot not listed goes.
    pub slots: Vec<(u32, Rev)>,
    pub roll: Option<Roll>,
}

/// The deploy of revision `target` (over revision `from`, when the stack existed) for one
/// service. `rollback`: this deploy undoes a roll that failed for this reason (its roll
/// rolls with `undo_config`).
pub fn deploy(
    service: &Service<'_>,
    target: u64,
    from: Option<u64>,
    rollback: Option<&str>,
    now: u64,
) -> Decision {
    let existing = &service.slots;
    let from = match from {
        Some(f) if existing.iter().any(|s| !s.same) => f,
        // Fewer replicas: the roll drains the highest slots out of the names before they go.
        Some(f) if !service.global && existing.len() > service.replicas as usize => {
            let slots = existing.iter().map(|s| (s.id, Rev::Target)).collect();
            let mut roll = Roll::new(target, f, false, Settings::of(service.update_config), now);
            if let Some(prev) = service.previous {
                roll.draining = prev.draining.clone();
            }
            return Decision {
                slots,
                roll: Some(roll),
            };
        }
        _ => {
            if service.global {
                // The scheduling pass adds or removes per host.
                let slots = existing.iter().map(|s| (s.id, Rev::Target)).collect();
                return Decision { slots, roll: None };
            }
            let keep = existing.len().min(service.replicas as usize);
            let mut slots: Vec<(u32, Rev)> = existing[..keep]
                .iter()
                .map(|s| (s.id, Rev::Target))
                .collect();
            let used: BTreeSet<u32> = existing[..keep].iter().map(|s| s.id).collect();
            let missing = service.replicas as usize - keep;
            slots.extend(
                free_slots(&used, missing)
                    .into_iter()
                    .map(|id| (id, Rev::Target)),
            );
            return Decision { slots, roll: None };
        }
    };
    // Containers change: a roll does it. Slots already on the new spec move to the new
    // revision; the others keep theirs until the roll reaches them.
    let slots = existing
        .iter()
        .map(|s| (s.id, if s.same { Rev::Target } else { Rev::Own }))
        .collect();
    let mut settings = Settings::of(if rollback.is_some() {
        service.undo_config
    } else {
        service.update_config
    });
    // Two copies of a singleton never run at once, and a global service has one container
    // per host: both replace in place.
    if service.global || service.singleton {
        settings.order = UpdateOrder::StopFirst;
    }
    let mut roll = Roll::new(target, from, rollback.is_some(), settings, now);
    roll.cause = rollback.map(str::to_string);
    if let Some(prev) = service.previous {
        roll.draining = prev.draining.clone();
    }
    Decision {
        slots,
        roll: Some(roll),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Drain, Then};

    /// A case: `replicas=N [global] [singleton] [start-first] [undo-start-first] [draining=ID]
    /// [new-stack] [rollback]` and the slots as `ID` (already on the new spec) or `ID*` (an
    /// older one) → the slots after (`ID` new revision, `ID*` its own) and the roll.
    fn check(case: &str, slots: &str, expected: &str) {
        let words: Vec<&str> = case.split_whitespace().collect();
        let has = |w: &str| words.contains(&w);
        let value = |k: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse::<u32>().ok())
        };
        let start_first = UpdateConfig {
            order: Some(UpdateOrder::StartFirst),
            parallelism: Some(2),
            ..Default::default()
        };
        let mut previous = Roll::new(1, 0, false, Settings::of(None), 0);
        if let Some(id) = value("draining") {
            previous.draining.insert(
                id,
                Drain {
                    since_ms: 5,
                    then: Then::Remove,
                },
            );
        }
        let service = Service {
            replicas: value("replicas").unwrap_or(1),
            global: has("global"),
            singleton: has("singleton"),
            update_config: has("start-first").then_some(&start_first),
            undo_config: has("undo-start-first").then_some(&start_first),
            slots: slots
                .split_whitespace()
                .map(|s| Existing {
                    id: s.trim_end_matches('*').parse().unwrap_or(0),
                    same: !s.ends_with('*'),
                })
                .collect(),
            previous: Some(&previous),
        };
        let from = (!has("new-stack")).then_some(4);
        let rollback = has("rollback").then_some("web-2: unhealthy");
        let d = deploy(&service, 5, from, rollback, 100);
        let slots: Vec<String> = d
            .slots
            .iter()
            .map(|(id, rev)| match rev {
                Rev::Target => id.to_string(),
                Rev::Own => format!("{id}*"),
            })
            .collect();
        let roll = match &d.roll {
            None => "no roll".to_string(),
            Some(r) => format!(
                "roll {}->{} {} x{}{}{}{}",
                r.from,
                r.target,
                r.settings.order.as_str(),
                r.settings.parallelism,
                if r.rollback { " rollback" } else { "" },
                r.cause
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                if r.draining.is_empty() {
                    String::new()
                } else {
                    format!(" draining {:?}", r.draining.keys().collect::<Vec<_>>())
                },
            ),
        };
        assert_eq!(
            format!("{} | {roll}", slots.join(" ")),
            expected,
            "{case} / {slots:?}"
        );
    }

    #[test]
    fn unchanged_services_get_their_count_at_once() {
        check("replicas=3 new-stack", "", "1 2 3 | no roll");
        check("replicas=3", "1 2 3", "1 2 3 | no roll");
        // Scale up: the lowest free numbers; down: the highest go.
        check("replicas=4", "1 3", "1 3 2 4 | no roll");
        // Scale down: a roll drains the highest out of the names, then removes them.
        check("replicas=1", "1 2 3", "1 2 3 | roll 4->5 stop-first x1");
        check("replicas=1 new-stack", "", "1 | no roll");
        // A global service keeps its slots: the scheduling pass follows the hosts.
        check("global", "1 2 5", "1 2 5 | no roll");
    }

    #[test]
    fn changed_services_roll() {
        check(
            "replicas=3",
            "1* 2* 3*",
            "1* 2* 3* | roll 4->5 stop-first x1",
        );
        check(
            "replicas=3 start-first",
            "1* 2*",
            "1* 2* | roll 4->5 start-first x2",
        );
        // Slots already on the new spec (an earlier roll got there) move to it.
        check("replicas=2", "1 2*", "1 2* | roll 4->5 stop-first x1");
        // Singletons (and sidekicks of one) and global services replace in place.
        check(
            "replicas=1 start-first singleton",
            "1*",
            "1* | roll 4->5 stop-first x2",
        );
        check(
            "global start-first",
            "1* 2*",
            "1* 2* | roll 4->5 stop-first x2",
        );
        // Containers leaving in the last roll finish leaving.
        check(
            "replicas=2 draining=3",
            "1* 2* 3*",
            "1* 2* 3* | roll 4->5 stop-first x1 draining [3]",
        );
    }

    #[test]
    fn rollbacks_roll_with_the_undone_specs_rollback_config() {
        check(
            "replicas=2 start-first rollback",
            "1* 2",
            "1* 2 | roll 4->5 stop-first x1 rollback (web-2: unhealthy)",
        );
        check(
            "replicas=2 undo-start-first rollback",
            "1* 2",
            "1* 2 | roll 4->5 start-first x2 rollback (web-2: unhealthy)",
        );
    }
}
