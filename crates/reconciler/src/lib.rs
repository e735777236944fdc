//! The reconcile decision: what an agent must do to its engine so that what it observes becomes
//! what the server wants. A pure function of its arguments — no engine, no clock (the caller
//! passes `now_ms`), no randomness — so it is cheap to call on every event and easy to test.
//!
//! Rules, in short:
//! - a desired container that does not exist is run once its dependencies allow it, and
//!   created ahead (not started) while they do not;
//! - one whose spec hash differs from the desired one, or that is dead, is replaced;
//! - one that was created but never started is started once its dependencies allow it;
//! - one that exited while its restart policy says it should run (`always`, `unless-stopped`)
//!   is started again (the engine restarts crashes itself; this catches `docker stop`);
//! - a Drover container of this cluster that is not desired is removed;
//! - a network this cluster created that no desired container uses and no container of this
//!   cluster is attached to is removed; volumes are never removed here (data);
//! - one that its health check has called unhealthy for [`UNHEALTHY_SETTLE_MS`] is recreated
//!   when its service's policy says so (`replace_unhealthy`, decided by the server), counted
//!   as a failure so that a service that keeps turning unhealthy is recreated with backoff;
//! - after a failure, the same container is retried with exponential backoff;
//! - when the agent is fenced (its lease expired), singleton containers are removed and not
//!   created, whatever the desired state says.

use std::collections::{BTreeMap, BTreeSet};

pub mod health;

use compose::{Condition, RestartPolicy};
use proto::{
    ContainerState, Desired, DesiredContainer, DesiredNetwork, DesiredVolume, Health,
    ObservedContainer,
};

/// Consecutive failures of one container, as the agent remembers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Failure {
    pub count: u32,
    pub last_ms: u64,
}

/// Delay before retrying after `count` consecutive failures: 1 s, 2 s, 4 s... capped at 60 s.
pub fn backoff_ms(count: u32) -> u64 {
    let exp = count.saturating_sub(1).min(6);
    (1000u64 << exp).min(60_000)
}

pub struct Input<'a> {
    pub desired: &'a Desired,
    pub observed: &'a [ObservedContainer],
    /// Every network name on the engine, with `true` when this cluster owns it.
    pub networks: &'a BTreeMap<String, bool>,
    /// Every volume name on the engine.
    pub volumes: &'a BTreeSet<String>,
    pub failures: &'a BTreeMap<String, Failure>,
    /// Since when (ms) each container has been seen unhealthy without a break.
    pub unhealthy_since: &'a BTreeMap<String, u64>,
    pub now_ms: u64,
    /// The agent's singleton lease has expired (no word from the server): singleton
    /// containers must not run here, since the server may be starting them elsewhere.
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateNetwork(DesiredNetwork),
    CreateVolume(DesiredVolume),
    /// Create and start a container that does not exist.
    Run(DesiredContainer),
    /// Create, without starting, a container whose dependencies are not ready yet.
    Create(DesiredContainer),
    /// Remove `old_id`, then create and start `container` under the same name.
    Replace {
        old_id: String,
        container: DesiredContainer,
    },
    /// Like `Replace`, because the container turned unhealthy (a failure of the container).
    Recreate {
        old_id: String,
        container: DesiredContainer,
    },
    Start {
        id: String,
        name: String,
    },
    Remove {
        id: String,
        name: String,
    },
    /// Remove at once, without a grace period (fencing a singleton).
    Kill {
        id: String,
        name: String,
    },
    RemoveNetwork {
        name: String,
    },
}

impl Action {
    /// Creates a network or volume that container actions of the same plan may need.
    pub fn is_infra(&self) -> bool {
        matches!(self, Action::CreateNetwork(_) | Action::CreateVolume(_))
    }

    /// Name of the engine object the action is about.
    pub fn target(&self) -> &str {
        match self {
            Action::CreateNetwork(n) => &n.name,
            Action::CreateVolume(v) => &v.name,
            Action::Run(c) | Action::Create(c) => &c.name,
            Action::Replace { container, .. } | Action::Recreate { container, .. } => {
                &container.name
            }
            Action::Start { name, .. }
            | Action::Remove { name, .. }
            | Action::Kill { name, .. }
            | Action::RemoveNetwork { name } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Network and volume creations first ([`Action::is_infra`]): the caller completes those,
    /// then runs the container actions, which are independent of each other, concurrently.
    pub actions: Vec<Action>,
    /// Containers held back, with why.
    pub waiting: Vec<(String, String)>,
}

/// How long a container stays unhealthy before it is recreated: long enough for the
/// server to see its siblings fail too (a shared outage), so a service that recreates on
/// quorum is not recreated replica by replica as each notices.
pub const UNHEALTHY_SETTLE_MS: u64 = 2_000;

/// Seconds left before a container that failed may be tried again, and how many failures.
fn backoff_left(input: &Input<'_>, name: &str) -> Option<(u64, u32)> {
    let f = input.failures.get(name)?;
    let wait = backoff_ms(f.count);
    let since = input.now_ms.saturating_sub(f.last_ms);
    (since < wait).then(|| ((wait - since).div_ceil(1000), f.count))
}

pub fn reconcile(input: &Input<'_>) -> Plan {
    let mut plan = Plan::default();
    let observed: BTreeMap<&str, &ObservedContainer> = input
        .observed
        .iter()
        .map(|c| (c.name.as_str(), c))
        .collect();

    // Networks and volumes the desired containers need.
    for n in &input.desired.networks {
        if !n.external && !input.networks.contains_key(&n.name) {
            plan.actions.push(Action::CreateNetwork(n.clone()));
        }
    }
    for v in &input.desired.volumes {
        if !v.external && !input.volumes.contains(&v.name) {
            plan.actions.push(Action::CreateVolume(v.clone()));
        }
    }

    let fenced = |c: &&DesiredContainer| input.fenced && proto::is_singleton(&c.spec);
    let desired_names: BTreeSet<&str> = input
        .desired
        .containers
        .iter()
        .filter(|c| !fenced(c))
        .map(|c| c.name.as_str())
        .collect();

    for want in input.desired.containers.iter().filter(|c| !fenced(c)) {
        let have = observed.get(want.name.as_str()).copied();
        if let Some(c) = have
            && want.replace_unhealthy
            && c.spec_hash == want.spec_hash
            && c.state == ContainerState::Running
            && c.health == Some(Health::Unhealthy)
        {
            let since = input.unhealthy_since.get(&want.name).copied();
            let settle = since
                .map(|t| (t + UNHEALTHY_SETTLE_MS).saturating_sub(input.now_ms))
                .unwrap_or(UNHEALTHY_SETTLE_MS);
            match backoff_left(input, &want.name) {
                Some((secs, count)) => plan.waiting.push((
                    want.name.clone(),
                    format!("unhealthy: recreating in {secs}s after {count} recreation(s)"),
                )),
                None if settle > 0 => plan.waiting.push((
                    want.name.clone(),
                    format!("unhealthy: recreating in {}s", settle.div_ceil(1000)),
                )),
                None => plan.actions.push(Action::Recreate {
                    old_id: c.id.clone(),
                    container: want.clone(),
                }),
            }
            continue;
        }
        let needs_start = match have {
            Some(c) if c.spec_hash != want.spec_hash || c.state == ContainerState::Dead => {
                Some(Some(c))
            }
            Some(c) if lost_network(want, c, &observed) => Some(Some(c)),
            Some(c) if c.state == ContainerState::Created => Some(None),
            Some(c) if c.state == ContainerState::Exited && should_run_after_exit(want) => {
                Some(None)
            }
            Some(_) => None,
            None => Some(None),
        };
        let Some(replace) = needs_start else { continue };
        if let Some((secs, count)) = backoff_left(input, &want.name) {
            plan.waiting.push((
                want.name.clone(),
                format!("retrying in {secs}s after {count} failure(s)"),
            ));
            continue;
        }
        if let Some(reason) = blocked_by_primary(want, input.desired, &observed) {
            // Created only once its primary is: the engine resolves the names then.
            plan.waiting.push((want.name.clone(), reason));
            continue;
        }
        if let Some(reason) = blocked_by_dependency(want, input) {
            // Create ahead (creating is most of the cost); start once dependencies allow.
            if have.is_none() {
                plan.actions.push(Action::Create(want.clone()));
            }
            plan.waiting.push((want.name.clone(), reason));
            continue;
        }
        plan.actions.push(match (replace, have) {
            (Some(old), _) => Action::Replace {
                old_id: old.id.clone(),
                container: want.clone(),
            },
            (None, Some(c)) => Action::Start {
                id: c.id.clone(),
                name: c.name.clone(),
            },
            (None, None) => Action::Run(want.clone()),
        });
    }

    for c in input.observed {
        let fenced_here = input
            .desired
            .containers
            .iter()
            .any(|d| d.name == c.name && fenced(&d));
        if fenced_here {
            plan.actions.push(Action::Kill {
                id: c.id.clone(),
                name: c.name.clone(),
            });
        } else if !desired_names.contains(c.name.as_str()) {
            plan.actions.push(Action::Remove {
                id: c.id.clone(),
                name: c.name.clone(),
            });
        }
    }

    let wanted_networks: BTreeSet<&str> = input
        .desired
        .networks
        .iter()
        .map(|n| n.name.as_str())
        .collect();
    // Attached: any container of ours on the engine (running or not) joined to it.
    let attached: BTreeSet<&str> = input
        .observed
        .iter()
        .flat_map(|c| c.addrs.keys().map(String::as_str))
        .collect();
    for (name, owned) in input.networks {
        if *owned && !wanted_networks.contains(name.as_str()) && !attached.contains(name.as_str()) {
            plan.actions
                .push(Action::RemoveNetwork { name: name.clone() });
        }
    }
    plan
}

fn should_run_after_exit(want: &DesiredContainer) -> bool {
    matches!(
        want.spec.restart,
        RestartPolicy::Always | RestartPolicy::UnlessStopped
    )
}

/// Whether sidekick `have` shares the network of a container that is gone: its primary's
/// replica was replaced since (a new container, a new network namespace).
fn lost_network(
    want: &DesiredContainer,
    have: &ObservedContainer,
    observed: &BTreeMap<&str, &ObservedContainer>,
) -> bool {
    let Some(primary) = want.spec.network_service() else {
        return false;
    };
    let name = proto::container_name(&want.stack, primary, want.slot);
    match (observed.get(name.as_str()), &have.network_of) {
        (Some(p), Some(joined)) => &p.id != joined,
        _ => false,
    }
}

/// Why sidekick `want` may not be created yet: the replica of its primary it shares the
/// network of must run, and those it mounts the volumes of must exist, each on its own
/// current spec.
fn blocked_by_primary(
    want: &DesiredContainer,
    desired: &Desired,
    observed: &BTreeMap<&str, &ObservedContainer>,
) -> Option<String> {
    let net = want.spec.network_service().map(|s| (s, true));
    let vols = want.spec.volumes_from_services().map(|(s, _)| (s, false));
    for (service, must_run) in net.into_iter().chain(vols) {
        let name = proto::container_name(&want.stack, service, want.slot);
        let hash = desired
            .containers
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.spec_hash.as_str());
        let ok = observed.get(name.as_str()).is_some_and(|o| {
            hash.is_none_or(|h| h == o.spec_hash)
                && o.state != ContainerState::Dead
                && (!must_run || o.state == ContainerState::Running)
        });
        if !ok {
            let what = if must_run { "to run" } else { "to exist" };
            return Some(format!("waiting for {name} {what}"));
        }
    }
    None
}

/// Why `want` may not start yet, if its `depends_on` conditions do not hold on this host.
/// Dependencies with no desired container on this host are not checked here (the server
/// orders cross-host starts).
fn blocked_by_dependency(want: &DesiredContainer, input: &Input<'_>) -> Option<String> {
    for (dep, d) in &want.spec.depends_on {
        let desired_here: Vec<&DesiredContainer> = input
            .desired
            .containers
            .iter()
            .filter(|c| c.env == want.env && c.stack == want.stack && &c.service == dep)
            .collect();
        if desired_here.is_empty() {
            continue;
        }
        for dc in desired_here {
            let obs = input
                .observed
                .iter()
                .find(|o| o.name == dc.name && o.spec_hash == dc.spec_hash);
            let ok = match (d.condition, obs) {
                (_, None) => false,
                (Condition::ServiceStarted, Some(o)) => matches!(
                    o.state,
                    ContainerState::Running | ContainerState::Restarting | ContainerState::Exited
                ),
                (Condition::ServiceHealthy, Some(o)) => {
                    o.state == ContainerState::Running
                        && match o.health {
                            Some(h) => h == Health::Healthy,
                            None => dc.spec.healthcheck.is_none(),
                        }
                }
                (Condition::ServiceCompletedSuccessfully, Some(o)) => {
                    o.state == ContainerState::Exited && o.exit_code == Some(0)
                }
            };
            if !ok {
                let what = match d.condition {
                    Condition::ServiceStarted => "to start",
                    Condition::ServiceHealthy => "to be healthy",
                    Condition::ServiceCompletedSuccessfully => "to complete successfully",
                };
                return Some(format!("waiting for {dep} {what}"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
