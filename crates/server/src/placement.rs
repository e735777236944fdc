//! Which host runs each slot of a stack. Minimal spread placement for the single-cluster
//! core: keep existing placements, put new slots on the connected host of the environment
//! with the fewest containers (ties by host id). No host connected: the slot stays unplaced
//! ("pending") and is placed when a host registers.

use std::collections::BTreeMap;

use store::Placement;

/// Placements for `project` in `env`: existing ones kept (when the host is still known),
/// new slots spread over `hosts`. `load` counts containers per host outside this stack.
pub fn place(
    env: &str,
    project: &compose::Project,
    existing: &[Placement],
    hosts: &[String],
    load: &BTreeMap<String, usize>,
) -> Vec<Placement> {
    let mut load: BTreeMap<String, usize> = hosts
        .iter()
        .map(|h| (h.clone(), load.get(h).copied().unwrap_or(0)))
        .collect();
    let kept = |service: &str, slot: u32| {
        existing
            .iter()
            .find(|p| p.service == service && p.slot == slot)
            .and_then(|p| p.host.clone())
    };
    // Slots that stay where they are count towards their host's load first.
    for (service, spec) in &project.services {
        for slot in 1..=spec.replicas {
            if let Some(n) = kept(service, slot).and_then(|h| load.get_mut(&h)) {
                *n += 1;
            }
        }
    }
    let mut out = Vec::new();
    for (service, spec) in &project.services {
        for slot in 1..=spec.replicas {
            let host = kept(service, slot).or_else(|| {
                let best = load
                    .iter()
                    .min_by(|a, b| a.1.cmp(b.1).then(a.0.cmp(b.0)))
                    .map(|(h, _)| h.clone())?;
                if let Some(n) = load.get_mut(&best) {
                    *n += 1;
                }
                Some(best)
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn project(replicas: u32) -> compose::Project {
        let mut p = compose::Project {
            name: "s".into(),
            ..Default::default()
        };
        p.services.insert(
            "web".into(),
            compose::Service {
                image: Some("x".into()),
                replicas,
                ..Default::default()
            },
        );
        p
    }

    fn hosts_of(v: &[Placement]) -> Vec<Option<&str>> {
        v.iter().map(|p| p.host.as_deref()).collect()
    }

    #[test]
    fn spreads_new_slots_and_keeps_old_ones() {
        let hosts = vec!["a".to_string(), "b".to_string()];
        let load = BTreeMap::from([("a".to_string(), 1)]);
        let first = place("default", &project(3), &[], &hosts, &load);
        assert_eq!(hosts_of(&first), [Some("b"), Some("a"), Some("b")]);
        // Scaling up keeps slots 1-3 where they are.
        let second = place("default", &project(4), &first, &hosts, &load);
        assert_eq!(
            hosts_of(&second),
            [Some("b"), Some("a"), Some("b"), Some("a")]
        );
        // Scaling down drops the highest slots.
        assert_eq!(
            place("default", &project(1), &second, &hosts, &load).len(),
            1
        );
    }

    #[test]
    fn without_hosts_slots_stay_pending() {
        let out = place("default", &project(2), &[], &[], &BTreeMap::new());
        assert_eq!(hosts_of(&out), [None, None]);
    }
}
