//! The decisions of a rolling upgrade, pure: a service's roll state, its slots as the hosts
//! report them and `now` → the placement changes to make. No I/O, no clock, no randomness.
//!
//! A roll replaces the containers of a service that run an older spec ("old" slots) by
//! containers of the target revision ("current" slots), `parallelism` at a time:
//!
//! - `start-first`: new slots are added; once each is ready (running, healthy when it has a
//!   check, for `monitor`), as many old slots leave: first out of the names (draining, for
//!   the drain time), then removed. The service never has fewer ready replicas than asked.
//! - `stop-first`: old slots drain, then are replaced in place (same slot, same host) and
//!   the next step waits for them to be ready.
//!
//! A new container that fails (exits, turns unhealthy, cannot be created or pulled) counts
//! as a failure; past `max_failure_ratio` the roll pauses, rolls back (a roll of the
//! previous spec with `rollback_config`) or, with `continue`, goes on. The roll state is
//! small and serialisable: the server stores it at each change, so a restarted server
//! resumes where it was.

use std::collections::{BTreeMap, BTreeSet};

use compose::{FailureAction, UpdateConfig, UpdateOrder};
use serde::{Deserialize, Serialize};

pub use judge::judge;

pub mod deploy;
mod judge;
#[cfg(test)]
mod tests;

/// The settings of a roll, defaults applied (the compose specification's: one container at
/// a time, no delay, stop-first, pause on the first failure, no monitor period).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Containers replaced at a time (0: all).
    pub parallelism: u32,
    pub delay_ms: u64,
    pub order: UpdateOrder,
    pub failure_action: FailureAction,
    pub monitor_ms: u64,
    pub max_failure_ratio: f64,
}

impl Settings {
    /// `update_config` (or `rollback_config`) with defaults for what it leaves unset.
    pub fn of(c: Option<&UpdateConfig>) -> Settings {
        let c = c.cloned().unwrap_or_default();
        Settings {
            parallelism: c.parallelism.unwrap_or(1),
            delay_ms: c.delay_ns.unwrap_or(0) / 1_000_000,
            order: c.order.unwrap_or(UpdateOrder::StopFirst),
            failure_action: c.failure_action.unwrap_or(FailureAction::Pause),
            monitor_ms: c.monitor_ns.unwrap_or(0) / 1_000_000,
            max_failure_ratio: c.max_failure_ratio.unwrap_or(0.0),
        }
    }
}

/// Where a roll is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Rolling,
    /// Stopped on failures (`failure_action: pause`, or a rollback that failed too); a new
    /// deploy or a rollback starts a new roll.
    Paused {
        reason: String,
    },
    /// Every slot runs the target spec.
    Done,
    /// Failed, and `failure_action: rollback`: the server deploys the previous spec of the
    /// service, which starts a roll back.
    RollingBack {
        reason: String,
    },
}

/// After its drain time, a draining slot is...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// ...deleted (start-first, or fewer replicas asked);
    Remove,
    /// ...given the target spec where it is (stop-first).
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    pub since_ms: u64,
    pub then: Then,
}

/// The roll of one service to one revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Roll {
    /// The stack revision rolled to.
    pub target: u64,
    /// The revision the roll started from (where a rollback goes).
    pub from: u64,
    /// This roll undoes a failed one: its own failure pauses it.
    #[serde(default)]
    pub rollback: bool,
    /// Why the roll this one undoes failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub settings: Settings,
    pub started_ms: u64,
    #[serde(flatten)]
    pub phase: Phase,
    /// Slots of the current step, running the target spec, not yet ready.
    #[serde(default)]
    pub batch: BTreeSet<u32>,
    /// When each slot of the step was first seen ready (the monitor period runs from it).
    #[serde(default)]
    pub ready_ms: BTreeMap<u32, u64>,
    /// Slots out of the names, waiting their drain time.
    #[serde(default)]
    pub draining: BTreeMap<u32, Drain>,
    /// New containers that failed, with why.
    #[serde(default)]
    pub failed: BTreeMap<u32, String>,
    /// When the last step finished (`delay` runs from it).
    #[serde(default)]
    pub step_done_ms: Option<u64>,
    /// Replicas brought to the target spec so far.
    #[serde(default)]
    pub updated: u32,
    /// When the roll ended (done, paused or rolling back).
    #[serde(default)]
    pub ended_ms: Option<u64>,
}

impl Roll {
    pub fn new(target: u64, from: u64, rollback: bool, settings: Settings, now: u64) -> Roll {
        Roll {
            target,
            from,
            rollback,
            cause: None,
            settings,
            started_ms: now,
            phase: Phase::Rolling,
            batch: BTreeSet::new(),
            ready_ms: BTreeMap::new(),
            draining: BTreeMap::new(),
            failed: BTreeMap::new(),
            step_done_ms: None,
            updated: 0,
            ended_ms: None,
        }
    }

    pub fn is_rolling(&self) -> bool {
        self.phase == Phase::Rolling
    }
}

/// A slot as the server sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub id: u32,
    /// Container name, for reasons.
    pub name: String,
    /// It is given the target spec.
    pub current: bool,
    pub state: State,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// Waiting for a host.
    Pending,
    /// Placed, not ready yet (pulling, starting, health starting, older container still
    /// there).
    Starting,
    /// Running the spec it is given, healthy if it has a check.
    Ready,
    /// Exited, unhealthy, or could not be created; with why.
    Failed(String),
}

impl State {
    /// How far from ready, for a slot of several containers (a primary and its sidekicks):
    /// the slot is as its worst container.
    pub fn rank(&self) -> u8 {
        match self {
            State::Ready => 0,
            State::Starting => 1,
            State::Pending => 2,
            State::Failed(_) => 3,
        }
    }
}

pub struct Input<'a> {
    /// Replicas the target spec asks for.
    pub replicas: u32,
    pub slots: &'a [Slot],
    /// How long a leaving container stays out of the names before it stops.
    pub drain_ms: u64,
    pub now: u64,
}

/// A placement change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A new slot, with the target spec (the scheduler places it).
    Add(u32),
    /// The slot gets the target spec where it is.
    Replace(u32),
    /// The slot goes.
    Remove(u32),
}

/// The `n` lowest slot numbers (from 1) not in `used`.
pub fn free_slots(used: &BTreeSet<u32>, n: usize) -> Vec<u32> {
    (1..=u32::MAX)
        .filter(|i| !used.contains(i))
        .take(n)
        .collect()
}

/// One step of the roll: changes `roll` and returns the placement changes to make.
pub fn step(roll: &mut Roll, input: &Input<'_>) -> Vec<Action> {
    let mut out = Vec::new();
    if !roll.is_rolling() {
        return out;
    }
    let now = input.now;
    let slots: BTreeMap<u32, &Slot> = input.slots.iter().map(|s| (s.id, s)).collect();
    roll.batch.retain(|id| slots.contains_key(id));
    roll.draining.retain(|id, _| slots.contains_key(id));
    roll.ready_ms.retain(|id, _| roll.batch.contains(id));

    // Drains that are over.
    let over: Vec<(u32, Then)> = roll
        .draining
        .iter()
        .filter(|(_, d)| now >= d.since_ms.saturating_add(input.drain_ms))
        .map(|(id, d)| (*id, d.then))
        .collect();
    let mut removed = BTreeSet::new();
    let mut replaced = BTreeSet::new();
    for (id, then) in over {
        roll.draining.remove(&id);
        match then {
            Then::Remove => {
                out.push(Action::Remove(id));
                removed.insert(id);
            }
            Then::Replace => {
                out.push(Action::Replace(id));
                replaced.insert(id);
                roll.batch.insert(id);
            }
        }
    }

    // The step's slots.
    let had_batch = !roll.batch.is_empty();
    for id in roll.batch.clone() {
        let state = if replaced.contains(&id) {
            &State::Starting
        } else {
            &slots[&id].state
        };
        match state {
            State::Ready => {
                let at = *roll.ready_ms.entry(id).or_insert(now);
                if now.saturating_sub(at) >= roll.settings.monitor_ms {
                    roll.batch.remove(&id);
                    roll.ready_ms.remove(&id);
                    roll.updated += 1;
                }
            }
            State::Failed(why) => {
                roll.failed
                    .entry(id)
                    .or_insert_with(|| format!("{}: {why}", slots[&id].name));
            }
            State::Pending | State::Starting => {}
        }
    }

    // Too many failures?
    let asked = input.replicas.max(1) as f64;
    if !roll.failed.is_empty() && roll.failed.len() as f64 / asked > roll.settings.max_failure_ratio
    {
        let reason = roll.failed.values().next().cloned().unwrap_or_default();
        match roll.settings.failure_action {
            FailureAction::Continue => {}
            FailureAction::Rollback if !roll.rollback => {
                roll.phase = Phase::RollingBack { reason };
                roll.ended_ms = Some(now);
                return out;
            }
            FailureAction::Rollback | FailureAction::Pause => {
                roll.phase = Phase::Paused { reason };
                roll.ended_ms = Some(now);
                return out;
            }
        }
    }
    if roll.settings.failure_action == FailureAction::Continue {
        for id in roll.failed.keys() {
            if roll.batch.remove(id) {
                roll.ready_ms.remove(id);
                roll.updated += 1;
            }
        }
    }
    if had_batch && roll.batch.is_empty() {
        roll.step_done_ms = Some(now);
    }

    // A step in flight: its slots are not ready, or old ones are draining to be replaced.
    if !roll.batch.is_empty() || roll.draining.values().any(|d| d.then == Then::Replace) {
        return out;
    }

    // Between steps: slots beyond the replicas asked leave (old ones first), then the next
    // step starts once the delay is over.
    let live = |s: &&&Slot| !roll.draining.contains_key(&s.id) && !removed.contains(&s.id);
    let mut current: Vec<u32> = slots
        .values()
        .filter(live)
        .filter(|s| s.current || replaced.contains(&s.id))
        .map(|s| s.id)
        .collect();
    let mut old: Vec<u32> = slots
        .values()
        .filter(live)
        .filter(|s| !s.current && !replaced.contains(&s.id))
        .map(|s| s.id)
        .collect();
    let replicas = input.replicas as usize;
    let mut excess = (current.len() + old.len()).saturating_sub(replicas);
    while excess > 0 {
        // The highest old slot, else the highest new one that is not ready.
        let id = match old.pop() {
            Some(id) => id,
            None => {
                let pick = current
                    .iter()
                    .rposition(|id| slots[id].state != State::Ready)
                    .unwrap_or(current.len() - 1);
                current.remove(pick)
            }
        };
        roll.draining.insert(
            id,
            Drain {
                since_ms: now,
                then: Then::Remove,
            },
        );
        excess -= 1;
    }
    if old.is_empty() && current.len() == replicas {
        if roll.draining.is_empty() {
            roll.phase = Phase::Done;
            roll.ended_ms = Some(now);
        }
        return out;
    }
    if let Some(done) = roll.step_done_ms
        && now < done.saturating_add(roll.settings.delay_ms)
    {
        return out;
    }

    let per_step = match roll.settings.parallelism {
        0 => replicas.max(1),
        n => n as usize,
    };
    let missing = replicas.saturating_sub(current.len() + old.len());
    let used: BTreeSet<u32> = slots.keys().copied().collect();
    let add = |roll: &mut Roll, out: &mut Vec<Action>, n: usize| {
        for id in free_slots(&used, n) {
            roll.batch.insert(id);
            out.push(Action::Add(id));
        }
    };
    match roll.settings.order {
        UpdateOrder::StartFirst => {
            // New ones first, as many as old ones remain to be replaced (or are missing).
            let n = per_step.min(replicas.saturating_sub(current.len()));
            add(roll, &mut out, n);
        }
        UpdateOrder::StopFirst => {
            let n_add = per_step.min(missing);
            add(roll, &mut out, n_add);
            for id in old.iter().take(per_step - n_add) {
                roll.draining.insert(
                    *id,
                    Drain {
                        since_ms: now,
                        then: Then::Replace,
                    },
                );
            }
        }
    }
    roll.step_done_ms = None;
    out
}
