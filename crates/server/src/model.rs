//! The in-memory model: hosts, stacks (decoded once) and placements indexed by stack and by
//! host. It mirrors the store: every change is written to SQLite first, in one transaction,
//! and applied here only once that committed (see the write-through methods of `AppState`).
//! Reads — API, scheduling passes, desired states — never touch SQLite.
//!
//! The model also remembers which (host, stack) pairs changed since the last push, so only
//! those hosts get a new desired state, and only for those stacks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use store::{HostRecord, Placement, StackRow};

/// A shared, immutable name (environment, stack, service or host id).
pub type Name = Arc<str>;

/// One replica slot: `(service, slot number)` within a stack.
pub type SlotId = (Name, u32);

/// A stack and where each of its replica slots is placed (`None`: pending).
pub struct StackEntry {
    pub row: Arc<StackRow>,
    pub slots: BTreeMap<SlotId, Option<Name>>,
    /// The revision each slot runs, where it is not the current one (during a roll).
    pub revs: BTreeMap<SlotId, u64>,
    /// The projects of those older revisions.
    pub projects: BTreeMap<u64, Arc<compose::Project>>,
    /// Each service's rolling upgrade, running or last finished.
    pub rolls: BTreeMap<Name, roll::Roll>,
    /// Spec hash of each service (what a container must carry to be up to date).
    pub hashes: BTreeMap<String, Arc<str>>,
    /// What each primary's replica runs, with its sidekicks (`compose::Project::unit_hash`).
    pub unit_hashes: BTreeMap<String, Arc<str>>,
    /// The sidekicks of each primary that has any (current revision).
    pub sidekicks: BTreeMap<Name, Vec<Name>>,
}

impl StackEntry {
    fn new(row: Arc<StackRow>) -> StackEntry {
        let hashes: BTreeMap<String, Arc<str>> = row
            .project
            .services
            .iter()
            .map(|(n, s)| (n.clone(), s.spec_hash().into()))
            .collect();
        let units = row.project.units();
        let sidekicks: BTreeMap<Name, Vec<Name>> = row
            .project
            .services
            .keys()
            .filter(|s| !units.sidekicks_of(s).is_empty())
            .map(|s| {
                let with = units.sidekicks_of(s).iter().map(|k| Name::from(*k));
                (Name::from(s.as_str()), with.collect())
            })
            .collect();
        let unit_hashes = hashes
            .iter()
            .map(|(n, h)| match sidekicks.contains_key(n.as_str()) {
                true => (n.clone(), row.project.unit_hash(n).into()),
                false => (n.clone(), h.clone()),
            })
            .collect();
        StackEntry {
            row,
            slots: BTreeMap::new(),
            revs: BTreeMap::new(),
            projects: BTreeMap::new(),
            rolls: BTreeMap::new(),
            hashes,
            unit_hashes,
            sidekicks,
        }
    }

    /// The containers of every slot: each slot's own, and for a primary its sidekicks'
    /// (same slot number, same host), as `(service, slot)` and host.
    pub fn containers(&self) -> impl Iterator<Item = (SlotId, Option<&Name>)> {
        self.slots
            .iter()
            .flat_map(|(slot, host)| self.with_sidekicks(slot).map(move |s| (s, host.as_ref())))
    }

    /// Whether `service` runs beside another (it has no slots of its own).
    pub fn is_sidekick(&self, service: &str) -> bool {
        self.sidekicks
            .values()
            .any(|v| v.iter().any(|s| &**s == service))
    }

    /// Slot `slot` and the same slot of each of its service's sidekicks.
    pub fn with_sidekicks<'a>(&'a self, slot: &'a SlotId) -> impl Iterator<Item = SlotId> + 'a {
        let sidekicks = self.sidekicks.get(&slot.0).map_or(&[][..], Vec::as_slice);
        std::iter::once(slot.clone()).chain(sidekicks.iter().map(|s| (s.clone(), slot.1)))
    }

    /// The spec hash of `service` ("" if there is no such service).
    pub fn spec_hash(&self, service: &str) -> &str {
        self.hashes.get(service).map_or("", |h| h)
    }

    /// The revision slot `slot` runs.
    pub fn rev_of(&self, slot: &SlotId) -> u64 {
        self.revs.get(slot).copied().unwrap_or(self.row.revision)
    }

    /// The project of revision `rev` (the current one when it is not kept).
    pub fn project_of(&self, rev: u64) -> &compose::Project {
        self.projects
            .get(&rev)
            .map_or(&self.row.project, |p| p.as_ref())
    }

    /// The spec slot `slot` is given.
    pub fn spec_of(&self, slot: &SlotId) -> Option<&compose::Service> {
        self.project_of(self.rev_of(slot)).services.get(&*slot.0)
    }

    /// Whether slot `slot` runs its service's current spec (and its sidekicks' current
    /// specs).
    pub fn is_current(&self, slot: &SlotId) -> bool {
        let rev = self.rev_of(slot);
        let want = self.unit_hashes.get(&*slot.0).map_or("", |h| h);
        if rev == self.row.revision {
            return !want.is_empty();
        }
        self.project_of(rev).unit_hash(&slot.0) == want
    }

    /// Whether slot `slot` is leaving its service (out of the names, about to stop).
    pub fn is_draining(&self, slot: &SlotId) -> bool {
        self.rolls
            .get(&slot.0)
            .is_some_and(|r| r.draining.contains_key(&slot.1))
    }

    /// Keeps only the older projects some slot still runs.
    fn prune_projects(&mut self) {
        let used: BTreeSet<u64> = self.revs.values().copied().collect();
        self.projects.retain(|r, _| used.contains(r));
    }
}

/// `(env, stack)`.
pub type StackKey = (Name, Name);

/// What replicas reserve on a host, and how many there are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Load {
    pub containers: u32,
    pub cpu_milli: u64,
    pub memory: u64,
    pub ports: Vec<scheduler::PortKey>,
}

impl Load {
    /// One replica of `svc`.
    pub fn of(svc: &compose::Service) -> Load {
        Load {
            containers: 1,
            cpu_milli: svc
                .reservations
                .cpus
                .map(|c| (c * 1000.0).round().max(0.0) as u64)
                .unwrap_or(0),
            memory: svc.reservations.memory.unwrap_or(0),
            ports: svc
                .ports
                .iter()
                .filter_map(|p| p.published.map(|pp| (pp, p.protocol.clone())))
                .collect(),
        }
    }

    /// One replica of `service` of `project` with its `sidekicks`.
    pub fn of_unit(
        project: &compose::Project,
        service: &str,
        sidekicks: Option<&Vec<Name>>,
    ) -> Load {
        let mut load = project.services.get(service).map(Load::of).unwrap_or(Load {
            containers: 1,
            ..Load::default()
        });
        for s in sidekicks.into_iter().flatten() {
            if let Some(spec) = project.services.get(&**s) {
                load.add(&Load::of(spec));
            }
        }
        load
    }

    pub fn add(&mut self, o: &Load) {
        self.containers += o.containers;
        self.cpu_milli += o.cpu_milli;
        self.memory += o.memory;
        self.ports.extend(o.ports.iter().cloned());
    }

    pub fn sub(&mut self, o: &Load) {
        self.containers = self.containers.saturating_sub(o.containers);
        self.cpu_milli = self.cpu_milli.saturating_sub(o.cpu_milli);
        self.memory = self.memory.saturating_sub(o.memory);
        for p in &o.ports {
            if let Some(i) = self.ports.iter().position(|q| q == p) {
                self.ports.swap_remove(i);
            }
        }
    }
}

/// A service: `(env, stack)` and service name.
pub type GroupId = (StackKey, Name);

#[derive(Default)]
pub struct Model {
    hosts: BTreeMap<Name, HostRecord>,
    stacks: BTreeMap<StackKey, StackEntry>,
    /// host -> (env, stack) -> slots of that stack placed there.
    by_host: HashMap<Name, BTreeMap<StackKey, BTreeSet<SlotId>>>,
    /// host -> stacks whose part on that host changed since the last [`Model::take_dirty`].
    dirty: HashMap<Name, BTreeSet<StackKey>>,
    /// Slots waiting for a host.
    pending: BTreeSet<(StackKey, SlotId)>,
    /// What the slots placed on each host reserve, kept as slots come and go.
    loads: HashMap<Name, Load>,
    /// Replicas of each service per host.
    groups: HashMap<GroupId, HashMap<Name, u32>>,
}

impl Model {
    /// The model of what `store` holds.
    pub fn load(store: &store::Store) -> Result<Model, store::Error> {
        let mut m = Model::default();
        for env in store.environments()? {
            for h in store.hosts(&env)? {
                m.hosts.insert(h.id.as_str().into(), h);
            }
            for row in store.stacks(&env)? {
                let key: StackKey = (env.as_str().into(), row.project.name.as_str().into());
                m.stacks.insert(key, StackEntry::new(Arc::new(row)));
            }
        }
        for p in store.placements()? {
            let key: StackKey = (p.env.as_str().into(), p.stack.as_str().into());
            let Some(entry) = m.stacks.get_mut(&key) else {
                continue;
            };
            if p.rev != entry.row.revision && !entry.projects.contains_key(&p.rev) {
                // A slot of an older revision (a roll was under way): its spec is kept.
                if let Some(project) = store.revision_project(&p.env, &p.stack, p.rev)? {
                    entry.projects.insert(p.rev, Arc::new(project));
                }
            }
            let host = p.host.as_deref().map(|h| m.host_name(h));
            m.set_slot(&key, (p.service.as_str().into(), p.slot), host, p.rev);
        }
        for r in store.rolls()? {
            let key: StackKey = (r.env.as_str().into(), r.stack.as_str().into());
            let (Some(entry), Some(state)) = (m.stacks.get_mut(&key), r.state) else {
                continue;
            };
            let roll: roll::Roll =
                serde_json::from_str(&state).map_err(|e| store::Error::Corrupt {
                    what: format!("roll of {}/{}", r.stack, r.service),
                    why: e.to_string(),
                })?;
            entry.rolls.insert(r.service.as_str().into(), roll);
        }
        m.dirty.clear();
        Ok(m)
    }

    /// The shared name of host `id` (the same allocation as the host record's key).
    fn host_name(&self, id: &str) -> Name {
        self.hosts
            .get_key_value(id)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| id.into())
    }

    /// Sets (or adds) one slot's host and revision, keeping the host index, pending count
    /// and dirty set.
    fn set_slot(&mut self, key: &StackKey, slot: SlotId, host: Option<Name>, rev: u64) {
        let Some(entry) = self.stacks.get_mut(key) else {
            return;
        };
        let rev_changed = entry.rev_of(&slot) != rev;
        if rev == entry.row.revision {
            entry.revs.remove(&slot);
        } else {
            entry.revs.insert(slot.clone(), rev);
        }
        let old = entry.slots.insert(slot.clone(), host.clone());
        let old_host = match old {
            Some(Some(h)) => Some(h),
            Some(None) => {
                self.pending.remove(&(key.clone(), slot.clone()));
                None
            }
            None => None,
        };
        if let Some(h) = &old_host {
            if host.as_ref() == Some(h) {
                if rev_changed {
                    self.dirty.entry(h.clone()).or_default().insert(key.clone());
                }
                return;
            }
            self.unindex(h, key, &slot);
        }
        match host {
            Some(h) => self.index(h, key, slot),
            None => {
                self.pending.insert((key.clone(), slot));
            }
        }
    }

    /// Adds (or takes away) one replica of `service` on `host` to the host's load and the
    /// service's counts, as the stack's current spec says.
    fn account(&mut self, host: &Name, key: &StackKey, service: &Name, add: bool) {
        let load = self.replica_load(key, service);
        let group = (key.clone(), service.clone());
        if add {
            self.loads.entry(host.clone()).or_default().add(&load);
            *self
                .groups
                .entry(group)
                .or_default()
                .entry(host.clone())
                .or_default() += 1;
            return;
        }
        if let Some(l) = self.loads.get_mut(host) {
            l.sub(&load);
            if l.containers == 0 {
                self.loads.remove(host);
            }
        }
        if let Some(hosts) = self.groups.get_mut(&group) {
            if let Some(n) = hosts.get_mut(host) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    hosts.remove(host);
                }
            }
            if hosts.is_empty() {
                self.groups.remove(&group);
            }
        }
    }

    fn index(&mut self, host: Name, key: &StackKey, slot: SlotId) {
        self.account(&host, key, &slot.0, true);
        self.by_host
            .entry(host.clone())
            .or_default()
            .entry(key.clone())
            .or_default()
            .insert(slot);
        self.dirty.entry(host).or_default().insert(key.clone());
    }

    fn unindex(&mut self, host: &Name, key: &StackKey, slot: &SlotId) {
        self.account(host, key, &slot.0, false);
        if let Some(stacks) = self.by_host.get_mut(host) {
            if let Some(slots) = stacks.get_mut(key) {
                slots.remove(slot);
                if slots.is_empty() {
                    stacks.remove(key);
                }
            }
            if stacks.is_empty() {
                self.by_host.remove(host);
            }
        }
        self.dirty
            .entry(host.clone())
            .or_default()
            .insert(key.clone());
    }

    fn remove_slot(&mut self, key: &StackKey, slot: &SlotId) {
        let Some(entry) = self.stacks.get_mut(key) else {
            return;
        };
        entry.revs.remove(slot);
        match entry.slots.remove(slot) {
            Some(Some(h)) => self.unindex(&h, key, slot),
            Some(None) => {
                self.pending.remove(&(key.clone(), slot.clone()));
            }
            None => {}
        }
    }

    // ---- writes (called after the store committed the same change) ----

    /// A host's record as the store now has it (`None`: deleted — its slots become pending).
    pub fn put_host(&mut self, id: &str, record: Option<HostRecord>) {
        match record {
            Some(r) => {
                let name = self.host_name(id);
                self.hosts.insert(name, r);
            }
            None => {
                self.hosts.remove(id);
                let Some(stacks) = self.by_host.get(id).cloned() else {
                    return;
                };
                for (key, slots) in stacks {
                    for slot in slots {
                        let rev = self.stacks.get(&key).map_or(0, |e| e.rev_of(&slot));
                        self.set_slot(&key, slot, None, rev);
                    }
                }
            }
        }
    }

    /// A stack's new revision, the full set of its placements (revision 0: the new one) and
    /// its rolls.
    pub fn put_stack(
        &mut self,
        row: StackRow,
        placements: &[Placement],
        rolls: BTreeMap<Name, roll::Roll>,
    ) {
        let key: StackKey = (row.env.as_str().into(), row.project.name.as_str().into());
        let revision = row.revision;
        let row = Arc::new(row);
        let wanted: BTreeMap<SlotId, (Option<Name>, u64)> = placements
            .iter()
            .map(|p| {
                (
                    (p.service.as_str().into(), p.slot),
                    (
                        p.host.as_deref().map(|h| self.host_name(h)),
                        if p.rev == 0 { revision } else { p.rev },
                    ),
                )
            })
            .collect();
        // The loads of slots that stay follow the new spec: take them out under the old one
        // and put them back under the new one.
        let placed: Vec<(Name, Name)> = self
            .stacks
            .get(&key)
            .map(|e| {
                e.slots
                    .iter()
                    .filter_map(|((svc, _), h)| Some((h.clone()?, svc.clone())))
                    .collect()
            })
            .unwrap_or_default();
        for (h, svc) in &placed {
            self.account(h, &key, svc, false);
        }
        let old: Vec<SlotId> = match self.stacks.get_mut(&key) {
            Some(entry) => {
                // Slots keep the revision they run: the older projects stay at hand.
                let slots = std::mem::take(&mut entry.slots);
                let mut projects = std::mem::take(&mut entry.projects);
                let mut revs = std::mem::take(&mut entry.revs);
                let previous = entry.row.clone();
                for slot in slots.keys() {
                    revs.entry(slot.clone()).or_insert(previous.revision);
                }
                projects.insert(previous.revision, Arc::new(previous.project.clone()));
                *entry = StackEntry::new(row);
                entry.slots = slots;
                entry.revs = revs;
                entry.projects = projects;
                entry.rolls = rolls;
                entry.slots.keys().cloned().collect()
            }
            None => {
                let mut entry = StackEntry::new(row);
                entry.rolls = rolls;
                self.stacks.insert(key.clone(), entry);
                Vec::new()
            }
        };
        for (h, svc) in &placed {
            self.account(h, &key, svc, true);
        }
        for slot in old.iter().filter(|s| !wanted.contains_key(*s)) {
            self.remove_slot(&key, slot);
        }
        for (slot, (host, rev)) in wanted {
            self.set_slot(&key, slot, host, rev);
        }
        if let Some(e) = self.stacks.get_mut(&key) {
            e.prune_projects();
        }
        // The spec may have changed for slots that stayed where they were.
        let hosts: Vec<Name> = self.stacks[&key]
            .slots
            .values()
            .flatten()
            .cloned()
            .collect();
        for h in hosts {
            self.dirty.entry(h).or_default().insert(key.clone());
        }
    }

    pub fn delete_stack(&mut self, env: &str, name: &str) {
        let key: StackKey = (env.into(), name.into());
        let slots: Vec<SlotId> = match self.stacks.get(&key) {
            Some(e) => e.slots.keys().cloned().collect(),
            None => return,
        };
        for slot in &slots {
            self.remove_slot(&key, slot);
        }
        self.stacks.remove(&key);
    }

    /// Placement moves: `set` gives slots their (new) host and revision, `remove` deletes
    /// slots.
    pub fn move_placements(&mut self, set: &[Placement], remove: &[Placement]) {
        let mut touched = BTreeSet::new();
        for p in set {
            let key: StackKey = (p.env.as_str().into(), p.stack.as_str().into());
            let host = p.host.as_deref().map(|h| self.host_name(h));
            self.set_slot(&key, (p.service.as_str().into(), p.slot), host, p.rev);
            touched.insert(key);
        }
        for p in remove {
            let key: StackKey = (p.env.as_str().into(), p.stack.as_str().into());
            self.remove_slot(&key, &(p.service.as_str().into(), p.slot));
            touched.insert(key);
        }
        for key in touched {
            if let Some(e) = self.stacks.get_mut(&key) {
                e.prune_projects();
            }
        }
    }

    /// A service's roll as the store now has it (`None`: none).
    pub fn put_roll(&mut self, key: &StackKey, service: &str, roll: Option<roll::Roll>) {
        let Some(e) = self.stacks.get_mut(key) else {
            return;
        };
        match roll {
            Some(r) => {
                e.rolls.insert(service.into(), r);
            }
            None => {
                e.rolls.remove(service);
            }
        }
    }

    /// Whether any roll is under way (the scheduling loop then looks more often).
    pub fn rolling(&self) -> bool {
        self.stacks
            .values()
            .any(|e| e.rolls.values().any(roll::Roll::is_rolling))
    }

    /// Hosts whose desired state changed since the last call, with the stacks that changed.
    /// Marks the stack's part on each of its hosts changed (to send it again).
    pub fn touch_stack(&mut self, key: &StackKey) {
        let Some(e) = self.stacks.get(key) else {
            return;
        };
        let hosts: Vec<Name> = e.slots.values().flatten().cloned().collect();
        for h in hosts {
            self.dirty.entry(h).or_default().insert(key.clone());
        }
    }

    pub fn take_dirty(&mut self) -> HashMap<Name, BTreeSet<StackKey>> {
        std::mem::take(&mut self.dirty)
    }

    // ---- reads ----

    /// Hosts of `env`, ordered by name then id.
    pub fn hosts(&self, env: &str) -> Vec<&HostRecord> {
        let mut v: Vec<&HostRecord> = self.hosts.values().filter(|h| h.env == env).collect();
        v.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        v
    }

    pub fn host(&self, id: &str) -> Option<&HostRecord> {
        self.hosts.get(id)
    }

    /// Stacks of `env`, by name.
    pub fn stacks<'a>(&'a self, env: &'a str) -> impl Iterator<Item = &'a StackEntry> + 'a {
        self.stacks
            .iter()
            .filter(move |((e, _), _)| &**e == env)
            .map(|(_, s)| s)
    }

    pub fn stack(&self, env: &str, name: &str) -> Option<&StackEntry> {
        self.stacks.get(&(Name::from(env), Name::from(name)))
    }

    /// The slots placed on `host`, by stack.
    pub fn slots_on(&self, host: &str) -> Option<&BTreeMap<StackKey, BTreeSet<SlotId>>> {
        self.by_host.get(host)
    }

    /// Slots of `env` waiting for a host.
    pub fn pending<'a>(&'a self, env: &'a str) -> impl Iterator<Item = &'a (StackKey, SlotId)> {
        self.pending.iter().filter(move |((e, _), _)| &**e == env)
    }

    /// What one replica of a service reserves, with its sidekicks (a service no longer in
    /// its stack: nothing).
    pub fn replica_load(&self, key: &StackKey, service: &str) -> Load {
        let Some(e) = self.stacks.get(key) else {
            return Load {
                containers: 1,
                ..Load::default()
            };
        };
        Load::of_unit(&e.row.project, service, e.sidekicks.get(service))
    }

    /// What is placed on `host`.
    pub fn host_load(&self, host: &str) -> Option<&Load> {
        self.loads.get(host)
    }

    /// Where the replicas of a service are, and how many on each host.
    pub fn group_hosts(&self, group: &GroupId) -> Option<&HashMap<Name, u32>> {
        self.groups.get(group)
    }

    /// The stack entry of `key`.
    pub fn stack_by_key(&self, key: &StackKey) -> Option<&StackEntry> {
        self.stacks.get(key)
    }
}

/// A placement row of `env`/`stack` for one slot, running revision `rev`.
pub fn placement(
    env: &str,
    stack: &str,
    slot: &SlotId,
    host: Option<&Name>,
    rev: u64,
) -> Placement {
    Placement {
        env: env.to_string(),
        stack: stack.to_string(),
        service: slot.0.to_string(),
        slot: slot.1,
        host: host.map(|h| h.to_string()),
        rev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(env: &str, name: &str) -> StackRow {
        StackRow {
            env: env.into(),
            project: compose::Project {
                name: name.into(),
                ..Default::default()
            },
            revision: 1,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    fn p(stack: &str, service: &str, slot: u32, host: Option<&str>) -> Placement {
        Placement {
            env: "default".into(),
            stack: stack.into(),
            service: service.into(),
            slot,
            host: host.map(str::to_string),
            rev: 1,
        }
    }

    /// The host index as `host: stack/service.slot ...` lines, for comparison.
    fn index(m: &Model) -> Vec<String> {
        let mut out: Vec<String> = m
            .by_host
            .iter()
            .map(|(h, stacks)| {
                let slots: Vec<String> = stacks
                    .iter()
                    .flat_map(|((_, s), slots)| {
                        slots.iter().map(move |(svc, n)| format!("{s}/{svc}.{n}"))
                    })
                    .collect();
                format!("{h}: {}", slots.join(" "))
            })
            .collect();
        out.sort();
        out
    }

    fn dirty(m: &mut Model) -> Vec<String> {
        let mut out: Vec<String> = m
            .take_dirty()
            .into_iter()
            .map(|(h, s)| {
                let s: Vec<String> = s.iter().map(|(_, n)| n.to_string()).collect();
                format!("{h}: {}", s.join(" "))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn placements_are_indexed_by_host_and_changes_mark_hosts_dirty() {
        let mut m = Model::default();
        m.put_stack(
            row("default", "s"),
            &[p("s", "web", 1, Some("a")), p("s", "web", 2, None)],
            BTreeMap::new(),
        );
        assert_eq!(index(&m), ["a: s/web.1"]);
        assert_eq!(m.pending("default").count(), 1);
        assert_eq!(dirty(&mut m), ["a: s"]);

        m.move_placements(
            &[p("s", "web", 2, Some("b")), p("s", "web", 1, Some("b"))],
            &[],
        );
        assert_eq!(index(&m), ["b: s/web.1 s/web.2"]);
        assert_eq!(m.pending("default").count(), 0);
        assert_eq!(dirty(&mut m), ["a: s", "b: s"]);

        // Redeploy with fewer replicas: the dropped slot leaves its host.
        m.put_stack(
            row("default", "s"),
            &[p("s", "web", 1, Some("b"))],
            BTreeMap::new(),
        );
        assert_eq!(index(&m), ["b: s/web.1"]);
        assert_eq!(dirty(&mut m), ["b: s"]);

        m.move_placements(&[], &[p("s", "web", 1, Some("b"))]);
        assert!(index(&m).is_empty());
        m.put_stack(
            row("default", "t"),
            &[p("t", "db", 1, Some("c"))],
            BTreeMap::new(),
        );
        m.delete_stack("default", "t");
        assert!(index(&m).is_empty());
        assert!(m.stack("default", "t").is_none());
        assert_eq!(m.pending("default").count(), 0);
    }

    fn row_with(name: &str, service: &str, memory: u64, port: Option<u16>) -> StackRow {
        let mut r = row("default", name);
        let mut svc = compose::Service {
            image: Some("x".into()),
            ..Default::default()
        };
        svc.reservations.memory = Some(memory);
        if let Some(p) = port {
            svc.ports.push(compose::Port {
                published: Some(p),
                target: p,
                host_ip: None,
                protocol: "tcp".into(),
            });
        }
        r.project.services.insert(service.into(), svc);
        r
    }

    #[test]
    fn host_loads_and_service_counts_follow_placements_and_specs() {
        let mut m = Model::default();
        let load = |m: &Model, h: &str| {
            m.host_load(h)
                .map(|l| (l.containers, l.memory, l.ports.len()))
        };
        let web: GroupId = (("default".into(), "s".into()), "web".into());
        let two_on_a = [p("s", "web", 1, Some("a")), p("s", "web", 2, Some("a"))];
        m.put_stack(
            row_with("s", "web", 1 << 30, Some(80)),
            &two_on_a,
            BTreeMap::new(),
        );
        assert_eq!(load(&m, "a"), Some((2, 2 << 30, 2)));
        // A new spec reserves more: the replicas that stay count with it.
        m.put_stack(
            row_with("s", "web", 2 << 30, None),
            &two_on_a,
            BTreeMap::new(),
        );
        assert_eq!(load(&m, "a"), Some((2, 4 << 30, 0)));
        m.move_placements(&[p("s", "web", 2, Some("b"))], &[]);
        assert_eq!(load(&m, "a"), Some((1, 2 << 30, 0)));
        assert_eq!(load(&m, "b"), Some((1, 2 << 30, 0)));
        let counts: BTreeMap<String, u32> = m
            .group_hosts(&web)
            .into_iter()
            .flatten()
            .map(|(h, n)| (h.to_string(), *n))
            .collect();
        assert_eq!(counts, BTreeMap::from([("a".into(), 1), ("b".into(), 1)]));
        m.delete_stack("default", "s");
        assert_eq!(load(&m, "a"), None);
        assert_eq!(load(&m, "b"), None);
        assert!(m.group_hosts(&web).is_none());
    }

    #[test]
    fn a_deleted_host_leaves_its_slots_pending() {
        let mut m = Model::default();
        let host = HostRecord {
            id: "a".into(),
            env: "default".into(),
            name: "a".into(),
            labels: BTreeMap::new(),
            user_labels: BTreeMap::new(),
            draining: false,
            created_ms: 0,
            last_seen_ms: 0,
        };
        m.put_host("a", Some(host));
        m.put_stack(
            row("default", "s"),
            &[p("s", "web", 1, Some("a")), p("s", "web", 2, Some("a"))],
            BTreeMap::new(),
        );
        assert_eq!(m.hosts("default").len(), 1);
        m.put_host("a", None);
        assert!(m.hosts("default").is_empty());
        assert!(index(&m).is_empty());
        assert_eq!(m.pending("default").count(), 2);
        let slots: Vec<Option<Name>> = m
            .stack("default", "s")
            .map(|s| s.slots.values().cloned().collect())
            .unwrap_or_default();
        assert_eq!(slots, vec![None, None]);
    }
}
