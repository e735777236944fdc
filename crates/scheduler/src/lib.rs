//! Placement: which host runs each pending replica. A pure function of its arguments —
//! [`schedule`]`(&Snapshot, &[Group], Strategy, seed) -> Plan` — with no I/O, no clock and no
//! randomness (ties are broken by a hash of the caller's `seed`), so it is deterministic and
//! cheap to test and to benchmark.
//!
//! Replicas of one service share their requirements, so they come as one [`Group`]: the hosts
//! are filtered once per group, then replicas are placed one by one from a heap of feasible
//! hosts ordered by score; only the host just used is scored again. That keeps a placement at
//! O(log hosts) after an O(hosts) filter per service.
//!
//! Filters (a host must pass all): schedulable (active, not draining); label constraints;
//! hard affinity / anti-affinity; at most `max_per_host` replicas of the group; free CPU and
//! memory for the reservation (never overcommitted); published ports free. A replica that fits
//! nowhere stays pending with the reason, counted per filter ("2 hosts short of memory,
//! 1 excluded by region == eu").
//!
//! Scoring: hosts where the group failed repeatedly are avoided while others fit; then soft
//! affinity; then `Spread` (fewest replicas of the group, then fewest containers) or `Binpack`
//! (least free memory, then CPU); then the seeded tie-break.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::fmt;

/// A published host port: (port, protocol), e.g. (80, "tcp").
pub type PortKey = (u16, String);

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub id: String,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    /// CPU capacity in millicores.
    pub cpu_milli: u64,
    /// Memory capacity in bytes.
    pub memory: u64,
    /// Active and not draining.
    pub schedulable: bool,
}

/// Replicas already running (or placed) on a host: `replicas` of `group`, which together
/// reserve `cpu_milli`, `memory` and `ports`. Callers may split a host's load: an entry
/// with resources and no replicas, and entries with replicas and no resources, add up
/// the same. Groups never scheduled nor referred to may be lumped under any name that is
/// not a group key (e.g. "").
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub host: usize,
    /// The group (service) they belong to, e.g. `default/shop/web`.
    pub group: String,
    pub replicas: u32,
    pub cpu_milli: u64,
    pub memory: u64,
    pub ports: Vec<PortKey>,
}

/// The state the decision is made on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub hosts: Vec<Host>,
    pub existing: Vec<Existing>,
    /// Recent failures: (group, host index, count). A host with `count >= AVOID_AFTER` for a
    /// group is avoided for it while other hosts fit.
    pub failures: Vec<(String, usize, u32)>,
}

/// Failures of a group on a host before the host is avoided for that group.
pub const AVOID_AFTER: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
}

/// `node.labels.KEY == VALUE`, `node.hostname != VALUE`, `node.id == VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub key: String,
    pub op: Op,
    pub value: String,
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.strip_prefix("node.labels.").unwrap_or(&self.key);
        let op = match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
        };
        write!(f, "{key} {op} {}", self.value)
    }
}

/// Parses a swarm-style constraint: `node.labels.region == eu`, `node.hostname != db1`.
pub fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let (key, op, value) = if let Some((k, v)) = text.split_once("==") {
        (k, Op::Eq, v)
    } else if let Some((k, v)) = text.split_once("!=") {
        (k, Op::Ne, v)
    } else {
        return Err(format!(
            "constraint {text:?}: expected KEY == VALUE or KEY != VALUE"
        ));
    };
    let (key, value) = (key.trim(), value.trim());
    let known = matches!(
        key,
        "node.hostname" | "node.id" | "node.platform.os" | "node.platform.arch"
    ) || key.starts_with("node.labels.");
    if !known || key == "node.labels." {
        return Err(format!(
            "constraint {text:?}: key must be node.labels.NAME, node.hostname, node.id, \
             node.platform.os or node.platform.arch"
        ));
    }
    if value.is_empty() {
        return Err(format!("constraint {text:?}: empty value"));
    }
    Ok(Constraint {
        key: key.to_string(),
        op,
        value: value.to_string(),
    })
}

impl Constraint {
    /// The constraint written back in its canonical source form: `node.labels.a == b`.
    pub fn to_source(&self) -> String {
        let op = match self.op {
            Op::Eq => "==",
            Op::Ne => "!=",
        };
        format!("{} {op} {}", self.key, self.value)
    }

    pub fn holds(&self, host: &Host) -> bool {
        let actual = match self.key.as_str() {
            "node.hostname" => Some(host.hostname.as_str()),
            // Reported by the host's engine, kept under these names among its labels.
            "node.platform.os" | "node.platform.arch" => {
                host.labels.get(&self.key).map(String::as_str)
            }
            "node.id" => Some(host.id.as_str()),
            k => k
                .strip_prefix("node.labels.")
                .and_then(|l| host.labels.get(l))
                .map(String::as_str),
        };
        match self.op {
            Op::Eq => actual == Some(self.value.as_str()),
            Op::Ne => actual != Some(self.value.as_str()),
        }
    }
}

/// Affinity (`anti: false`) or anti-affinity (`anti: true`) to another group's replicas;
/// hard ones filter hosts, soft ones only score them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    pub group: String,
    pub anti: bool,
    pub hard: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub key: String,
    /// Pending slots of this group, in the order to place them. For a global group: ignored
    /// (one replica per matching host is placed, numbered by the caller).
    pub slots: Vec<u32>,
    pub cpu_milli: u64,
    pub memory: u64,
    pub ports: Vec<PortKey>,
    pub constraints: Vec<Constraint>,
    pub affinities: Vec<Affinity>,
    pub max_per_host: Option<u32>,
    pub global: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    #[default]
    Spread,
    Binpack,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// (group key, slot, host index). For global groups `slot` is 0: the caller numbers them.
    pub placed: Vec<(String, u32, usize)>,
    /// (group key, slot, why it fits nowhere).
    pub pending: Vec<(String, u32, String)>,
}

/// Why a host is excluded for a group: the first filter it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Reject {
    Unschedulable,
    Constraint(usize),
    Affinity(usize),
    MaxPerHost,
    Ports,
    Cpu,
    Memory,
}

/// Mutable per-host accounting while a plan is built.
#[derive(Debug, Clone, Default)]
struct Usage {
    cpu: u64,
    memory: u64,
    containers: u32,
    ports: Vec<PortKey>,
}

struct State<'a> {
    snap: &'a Snapshot,
    usage: Vec<Usage>,
    /// (group, host) -> replicas there.
    per_group: HashMap<(&'a str, usize), u32>,
    seed: u64,
}

impl<'a> State<'a> {
    fn new(snap: &'a Snapshot, seed: u64) -> Self {
        let mut usage = vec![Usage::default(); snap.hosts.len()];
        let mut per_group: HashMap<(&str, usize), u32> = HashMap::new();
        for e in &snap.existing {
            let Some(u) = usage.get_mut(e.host) else {
                continue;
            };
            u.cpu = u.cpu.saturating_add(e.cpu_milli);
            u.memory = u.memory.saturating_add(e.memory);
            u.containers = u.containers.saturating_add(e.replicas);
            u.ports.extend(e.ports.iter().cloned());
            if e.replicas > 0 {
                *per_group.entry((e.group.as_str(), e.host)).or_default() += e.replicas;
            }
        }
        State {
            snap,
            usage,
            per_group,
            seed,
        }
    }

    fn count(&self, group: &str, host: usize) -> u32 {
        self.per_group.get(&(group, host)).copied().unwrap_or(0)
    }

    fn check(&self, g: &Group, h: usize) -> Result<(), Reject> {
        let host = &self.snap.hosts[h];
        let u = &self.usage[h];
        if !host.schedulable {
            return Err(Reject::Unschedulable);
        }
        if let Some(i) = g.constraints.iter().position(|c| !c.holds(host)) {
            return Err(Reject::Constraint(i));
        }
        for (i, a) in g.affinities.iter().enumerate().filter(|(_, a)| a.hard) {
            let there = self.count(&a.group, h) > 0;
            if there == a.anti {
                return Err(Reject::Affinity(i));
            }
        }
        if g.max_per_host.is_some_and(|m| self.count(&g.key, h) >= m) {
            return Err(Reject::MaxPerHost);
        }
        if g.ports.iter().any(|p| u.ports.contains(p)) {
            return Err(Reject::Ports);
        }
        // An overflowing sum is more than any host has.
        if u.cpu
            .checked_add(g.cpu_milli)
            .is_none_or(|t| t > host.cpu_milli)
        {
            return Err(Reject::Cpu);
        }
        if u.memory
            .checked_add(g.memory)
            .is_none_or(|t| t > host.memory)
        {
            return Err(Reject::Memory);
        }
        Ok(())
    }

    /// Smaller is better.
    fn score(&self, g: &Group, h: usize, strategy: Strategy) -> Score {
        let host = &self.snap.hosts[h];
        let u = &self.usage[h];
        let avoided = self
            .snap
            .failures
            .iter()
            .any(|(fg, fh, n)| *fh == h && *n >= AVOID_AFTER && fg == &g.key);
        let soft_misses = g
            .affinities
            .iter()
            .filter(|a| !a.hard && (self.count(&a.group, h) > 0) == a.anti)
            .count() as u32;
        let (a, b) = match strategy {
            Strategy::Spread => (u64::from(self.count(&g.key, h)), u64::from(u.containers)),
            Strategy::Binpack => (
                host.memory.saturating_sub(u.memory),
                host.cpu_milli.saturating_sub(u.cpu),
            ),
        };
        Score {
            avoided,
            soft_misses,
            a,
            b,
            tie: mix(self.seed ^ (h as u64)),
            host: h,
        }
    }

    fn place(&mut self, g: &'a Group, h: usize) {
        let u = &mut self.usage[h];
        u.cpu = u.cpu.saturating_add(g.cpu_milli);
        u.memory = u.memory.saturating_add(g.memory);
        u.containers = u.containers.saturating_add(1);
        u.ports.extend(g.ports.iter().cloned());
        *self.per_group.entry((g.key.as_str(), h)).or_default() += 1;
    }

    fn explain(&self, g: &Group) -> String {
        let mut counts: BTreeMap<Reject, usize> = BTreeMap::new();
        for h in 0..self.snap.hosts.len() {
            if let Err(r) = self.check(g, h) {
                *counts.entry(r).or_default() += 1;
            }
        }
        let mut need = Vec::new();
        if g.memory > 0 {
            need.push(format!("{} memory", bytes(g.memory)));
        }
        if g.cpu_milli > 0 {
            need.push(format!("{} CPU", g.cpu_milli as f64 / 1000.0));
        }
        let need = if need.is_empty() {
            String::new()
        } else {
            format!(" ({})", need.join(", "))
        };
        if self.snap.hosts.is_empty() {
            return format!("no host fits {}{need}: there are no hosts", g.key);
        }
        let plural = |n: usize| if n == 1 { "host" } else { "hosts" };
        let parts: Vec<String> = counts
            .iter()
            .map(|(r, &n)| {
                let what = match r {
                    Reject::Unschedulable => "draining or down".to_string(),
                    Reject::Constraint(i) => format!("excluded by {}", g.constraints[*i]),
                    Reject::Affinity(i) => {
                        let a = &g.affinities[*i];
                        if a.anti {
                            format!("excluded by anti-affinity with {}", a.group)
                        } else {
                            format!("excluded by affinity with {}", a.group)
                        }
                    }
                    Reject::MaxPerHost => {
                        format!("at max {} replica(s) per host", g.max_per_host.unwrap_or(0))
                    }
                    Reject::Ports => {
                        let ports: Vec<String> = g
                            .ports
                            .iter()
                            .map(|(p, proto)| format!("{p}/{proto}"))
                            .collect();
                        format!("with port {} taken", ports.join(", "))
                    }
                    Reject::Cpu => "short of CPU".to_string(),
                    Reject::Memory => "short of memory".to_string(),
                };
                format!("{n} {} {what}", plural(n))
            })
            .collect();
        format!("no host fits {}{need}: {}", g.key, parts.join(", "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Score {
    avoided: bool,
    soft_misses: u32,
    a: u64,
    b: u64,
    tie: u64,
    host: usize,
}

/// splitmix64: a fixed, well-mixed function for seeded tie-breaks.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn bytes(n: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if n >= GIB {
        let g = format!("{:.2}", n as f64 / GIB as f64);
        format!("{} GiB", g.trim_end_matches('0').trim_end_matches('.'))
    } else if n >= MIB {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} B")
    }
}

/// Places every pending replica of `groups` on `snap`'s hosts. Groups are placed in the
/// order given; within a group, slots in the order given.
pub fn schedule(snap: &Snapshot, groups: &[Group], strategy: Strategy, seed: u64) -> Plan {
    let mut st = State::new(snap, seed);
    let mut plan = Plan::default();
    for g in groups {
        if g.global {
            for h in 0..snap.hosts.len() {
                if st.count(&g.key, h) == 0 && st.check(g, h).is_ok() {
                    st.place(g, h);
                    plan.placed.push((g.key.clone(), 0, h));
                }
            }
            continue;
        }
        if g.slots.is_empty() {
            continue;
        }
        let mut heap: BinaryHeap<Reverse<Score>> = (0..snap.hosts.len())
            .filter(|&h| st.check(g, h).is_ok())
            .map(|h| Reverse(st.score(g, h, strategy)))
            .collect();
        let mut explanation: Option<String> = None;
        for &slot in &g.slots {
            let mut chosen = None;
            while let Some(Reverse(s)) = heap.pop() {
                // Scores of other hosts do not change while this group is placed (only the
                // chosen host's usage does), so a popped entry is current unless it is the
                // host just used, which is re-pushed with its new score below.
                if st.check(g, s.host).is_ok() {
                    chosen = Some(s.host);
                    break;
                }
            }
            match chosen {
                Some(h) => {
                    st.place(g, h);
                    plan.placed.push((g.key.clone(), slot, h));
                    if st.check(g, h).is_ok() {
                        heap.push(Reverse(st.score(g, h, strategy)));
                    }
                }
                None => {
                    let why = explanation.get_or_insert_with(|| st.explain(g)).clone();
                    plan.pending.push((g.key.clone(), slot, why));
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests;
