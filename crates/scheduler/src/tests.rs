//! Data-driven tests. A fixture is one line per object:
//!
//! ```text
//! host NAME [cpu=MILLI] [mem=BYTES|Ng|Nm] [label=K:V]... [down]
//! existing HOSTNAME GROUP [replicas=N] [cpu=..] [mem=..] [port=P]
//! fail GROUP HOSTNAME COUNT
//! group KEY xN [cpu=..] [mem=..] [port=P] [c=KEY==V|c=KEY!=V] [max=N] [global]
//!       [aff=G|anti=G|soft-aff=G|soft-anti=G]
//! strategy binpack
//! ```
//! The expectation lists `KEY.SLOT -> HOST` per placement and `KEY.SLOT pending: WHY`.

use super::*;
use expect_test::{Expect, expect};
use proptest::prelude::{any, prop_assert, prop_assert_eq, proptest};
use proptest::strategy::Strategy as Gen;

fn size(v: &str) -> u64 {
    let (num, mult) = if let Some(n) = v.strip_suffix('g') {
        (n, 1u64 << 30)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 1 << 20)
    } else {
        (v, 1)
    };
    num.parse::<u64>().expect("number") * mult
}

fn parse(fixture: &str) -> (Snapshot, Vec<Group>, Strategy) {
    let mut snap = Snapshot::default();
    let mut groups = Vec::new();
    let mut strategy = Strategy::Spread;
    let host_idx = |snap: &Snapshot, name: &str| {
        snap.hosts
            .iter()
            .position(|h| h.hostname == name)
            .expect("known host")
    };
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let kv = |k: &'static str| {
            words
                .iter()
                .filter_map(move |w| w.strip_prefix(k).and_then(|r| r.strip_prefix('=')))
        };
        match words[0] {
            "host" => {
                let mut labels = BTreeMap::new();
                for l in kv("label") {
                    let (k, v) = l.split_once(':').expect("label k:v");
                    labels.insert(k.to_string(), v.to_string());
                }
                snap.hosts.push(Host {
                    id: format!("id-{}", words[1]),
                    hostname: words[1].to_string(),
                    labels,
                    cpu_milli: kv("cpu").next().map(size).unwrap_or(4000),
                    memory: kv("mem").next().map(size).unwrap_or(8 << 30),
                    schedulable: !words.contains(&"down"),
                });
            }
            "existing" => snap.existing.push(Existing {
                host: host_idx(&snap, words[1]),
                group: words[2].to_string(),
                replicas: kv("replicas")
                    .next()
                    .map(|n| n.parse().expect("replicas"))
                    .unwrap_or(1),
                cpu_milli: kv("cpu").next().map(size).unwrap_or(0),
                memory: kv("mem").next().map(size).unwrap_or(0),
                ports: kv("port")
                    .map(|p| (p.parse().expect("port"), "tcp".to_string()))
                    .collect(),
            }),
            "fail" => {
                let h = host_idx(&snap, words[2]);
                snap.failures
                    .push((words[1].to_string(), h, words[3].parse().expect("count")));
            }
            "group" => {
                let n: u32 = words[2]
                    .strip_prefix('x')
                    .and_then(|n| n.parse().ok())
                    .expect("xN");
                let mut affinities = Vec::new();
                for (k, anti, hard) in [
                    ("aff", false, true),
                    ("anti", true, true),
                    ("soft-aff", false, false),
                    ("soft-anti", true, false),
                ] {
                    for g in kv(k) {
                        affinities.push(Affinity {
                            group: g.to_string(),
                            anti,
                            hard,
                        });
                    }
                }
                groups.push(Group {
                    key: words[1].to_string(),
                    slots: (1..=n).collect(),
                    cpu_milli: kv("cpu").next().map(size).unwrap_or(0),
                    memory: kv("mem").next().map(size).unwrap_or(0),
                    ports: kv("port")
                        .map(|p| (p.parse().expect("port"), "tcp".to_string()))
                        .collect(),
                    constraints: kv("c")
                        .map(|c| {
                            parse_constraint(&c.replace("==", " == ").replace("!=", " != "))
                                .expect("constraint")
                        })
                        .collect(),
                    affinities,
                    max_per_host: kv("max").next().map(|m| m.parse().expect("max")),
                    global: words.contains(&"global"),
                });
            }
            "strategy" => strategy = Strategy::Binpack,
            other => panic!("unknown fixture line {other:?}"),
        }
    }
    (snap, groups, strategy)
}

fn check(fixture: &str, expect: Expect) {
    let (snap, groups, strategy) = parse(fixture);
    let plan = schedule(&snap, &groups, strategy, 7);
    let mut out = String::new();
    for (g, slot, h) in &plan.placed {
        out.push_str(&format!("{g}.{slot} -> {}\n", snap.hosts[*h].hostname));
    }
    for (g, slot, why) in &plan.pending {
        out.push_str(&format!("{g}.{slot} pending: {why}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn spread_puts_replicas_on_different_hosts() {
    check(
        "host a\nhost b\nhost c\ngroup web x4",
        expect![[r#"
            web.1 -> c
            web.2 -> a
            web.3 -> b
            web.4 -> c
        "#]],
    );
}

#[test]
fn spread_prefers_hosts_with_fewer_containers() {
    check(
        "host a\nhost b\nexisting a other\nexisting a other\ngroup web x2",
        expect![[r#"
            web.1 -> b
            web.2 -> a
        "#]],
    );
}

#[test]
fn a_hosts_load_may_be_given_split_into_resources_and_replica_counts() {
    let plan = |fixture: &str| {
        let (snap, groups, strategy) = parse(fixture);
        schedule(&snap, &groups, strategy, 7)
    };
    let hosts = "host a mem=4g\nhost b mem=4g\nhost c mem=4g\n";
    let one_by_one = "existing a web mem=1g\nexisting a web mem=1g\nexisting b db mem=2g port=80\n";
    let split = "existing a - replicas=0 mem=2g\nexisting a web replicas=2\n\
                 existing b - replicas=1 mem=2g port=80\n";
    let groups = "group web x3 mem=1g max=2 port=80\ngroup api x2 mem=1g anti=web";
    assert_eq!(
        plan(&format!("{hosts}{one_by_one}{groups}")),
        plan(&format!("{hosts}{split}{groups}"))
    );
}

#[test]
fn binpack_fills_the_fullest_host_first() {
    check(
        "host a mem=4g\nhost b mem=4g\nexisting b other mem=2g\ngroup web x3 mem=1g\nstrategy binpack",
        expect![[r#"
            web.1 -> b
            web.2 -> b
            web.3 -> a
        "#]],
    );
}

#[test]
fn resources_are_never_overcommitted_and_shortage_is_explained() {
    check(
        "host a mem=2g cpu=1000\nhost b mem=1g\nhost c down\ngroup db x3 mem=1g cpu=500",
        expect![[r#"
            db.1 -> a
            db.2 -> b
            db.3 -> a
        "#]],
    );
    check(
        "host a mem=2g cpu=1000\nhost b mem=1g\nhost c down\ngroup db x4 mem=1g cpu=500",
        expect![[r#"
            db.1 -> a
            db.2 -> b
            db.3 -> a
            db.4 pending: no host fits db (1 GiB memory, 0.5 CPU): 1 host draining or down, 1 host short of CPU, 1 host short of memory
        "#]],
    );
}

#[test]
fn constraints_filter_and_explain() {
    check(
        "host a label=region:eu\nhost b label=region:us\nhost c\ngroup web x2 c=node.labels.region==eu",
        expect![[r#"
            web.1 -> a
            web.2 -> a
        "#]],
    );
    check(
        "host a label=region:eu mem=1g\nhost b label=region:us\nhost c\ngroup web x2 mem=1g c=node.labels.region==eu",
        expect![[r#"
            web.1 -> a
            web.2 pending: no host fits web (1 GiB memory): 2 hosts excluded by region == eu, 1 host short of memory
        "#]],
    );
    check(
        "host a\nhost b\ngroup web x2 c=node.hostname!=a",
        expect![[r#"
            web.1 -> b
            web.2 -> b
        "#]],
    );
    // A platform: the OS and architecture the hosts' engines report.
    check(
        "host a label=node.platform.arch:amd64\nhost b label=node.platform.arch:arm64\nhost c\ngroup web x1 c=node.platform.arch==arm64\ngroup db x1 c=node.platform.arch==s390x",
        expect![[r#"
            web.1 -> b
            db.1 pending: no host fits db: 3 hosts excluded by node.platform.arch == s390x
        "#]],
    );
}

#[test]
fn published_ports_are_exclusive_per_host() {
    check(
        "host a\nhost b\nexisting a other port=80\ngroup web x2 port=80",
        expect![[r#"
            web.1 -> b
            web.2 pending: no host fits web: 2 hosts with port 80/tcp taken
        "#]],
    );
}

#[test]
fn max_per_host() {
    check(
        "host a\nhost b\ngroup web x3 max=1",
        expect![[r#"
            web.1 -> a
            web.2 -> b
            web.3 pending: no host fits web: 2 hosts at max 1 replica(s) per host
        "#]],
    );
}

#[test]
fn hard_and_soft_affinity() {
    check(
        "host a\nhost b\nhost c\nexisting b cache\ngroup web x2 aff=cache",
        expect![[r#"
            web.1 -> b
            web.2 -> b
        "#]],
    );
    check(
        "host a\nhost b\nexisting a db\ngroup web x2 anti=db",
        expect![[r#"
            web.1 -> b
            web.2 -> b
        "#]],
    );
    check(
        "host a\nexisting a db\ngroup web x1 anti=db",
        expect![[r#"
            web.1 pending: no host fits web: 1 host excluded by anti-affinity with db
        "#]],
    );
    // Soft: preferred while possible, never blocking.
    check(
        "host a\nhost b\nexisting a db\ngroup web x2 soft-anti=db",
        expect![[r#"
            web.1 -> b
            web.2 -> b
        "#]],
    );
    check(
        "host a\nexisting a db\ngroup web x1 soft-anti=db",
        expect![[r#"
            web.1 -> a
        "#]],
    );
}

#[test]
fn global_groups_run_once_per_matching_host() {
    check(
        "host a label=role:edge\nhost b label=role:edge\nhost c\nhost d label=role:edge down\nexisting b agent\ngroup agent x0 global c=node.labels.role==edge",
        expect![[r#"
            agent.0 -> a
        "#]],
    );
}

#[test]
fn hosts_where_a_group_keeps_failing_are_avoided_while_others_fit() {
    check(
        "host a\nhost b\nfail web a 3\nfail web b 1\ngroup web x3",
        expect![[r#"
            web.1 -> b
            web.2 -> b
            web.3 -> b
        "#]],
    );
    check(
        "host a\nhost b mem=1g\nfail web a 5\ngroup web x2 mem=1g",
        expect![[r#"
            web.1 -> b
            web.2 -> a
        "#]],
    );
}

#[test]
fn no_hosts_at_all() {
    check(
        "group web x1",
        expect![[r#"
            web.1 pending: no host fits web: there are no hosts
        "#]],
    );
}

#[test]
fn constraint_syntax() {
    assert!(parse_constraint("node.labels.region == eu").is_ok());
    assert!(parse_constraint("node.hostname!=db1").is_ok());
    assert_eq!(
        parse_constraint("node.role == manager"),
        Err("constraint \"node.role == manager\": key must be node.labels.NAME, node.hostname, node.id, node.platform.os or node.platform.arch".into())
    );
    assert!(parse_constraint("node.platform.arch == arm64").is_ok());
    assert!(parse_constraint("region").is_err());
    assert!(parse_constraint("node.labels.x == ").is_err());
}

#[test]
fn same_seed_same_plan_other_seed_other_ties() {
    let (snap, groups, strategy) = parse("host a\nhost b\nhost c\nhost d\ngroup web x1");
    let p1 = schedule(&snap, &groups, strategy, 1);
    assert_eq!(p1, schedule(&snap, &groups, strategy, 1));
    let hosts: std::collections::BTreeSet<usize> = (0..32)
        .map(|seed| schedule(&snap, &groups, strategy, seed).placed[0].2)
        .collect();
    assert!(hosts.len() > 1, "ties are spread by the seed");
}

fn arb_case() -> impl Gen<Value = (Snapshot, Vec<Group>)> {
    let host =
        (1u64..8, 1u64..16, 0usize..3, any::<bool>()).prop_map(|(cpu, mem, region, up)| Host {
            id: String::new(),
            hostname: String::new(),
            labels: BTreeMap::from([("region".to_string(), format!("r{region}"))]),
            cpu_milli: cpu * 1000,
            memory: mem << 30,
            schedulable: up,
        });
    let group = (
        0u64..3000,
        0u64..6,
        1u32..12,
        proptest::option::of(0usize..3),
        any::<bool>(),
        proptest::option::of(1u32..3),
    )
        .prop_map(|(cpu, mem, n, region, global, max)| Group {
            key: String::new(),
            slots: (1..=n).collect(),
            cpu_milli: cpu,
            memory: mem << 30,
            ports: vec![],
            constraints: region
                .map(|r| Constraint {
                    key: "node.labels.region".into(),
                    op: Op::Eq,
                    value: format!("r{r}"),
                })
                .into_iter()
                .collect(),
            affinities: vec![],
            max_per_host: max,
            global,
        });
    (
        proptest::collection::vec(host, 0..12),
        proptest::collection::vec(group, 1..6),
    )
        .prop_map(|(mut hosts, mut groups)| {
            for (i, h) in hosts.iter_mut().enumerate() {
                h.id = format!("h{i}");
                h.hostname = format!("h{i}");
            }
            for (i, g) in groups.iter_mut().enumerate() {
                g.key = format!("g{i}");
            }
            (
                Snapshot {
                    hosts,
                    ..Default::default()
                },
                groups,
            )
        })
}

proptest! {
    #[test]
    fn plans_never_overcommit_and_always_respect_constraints((snap, groups) in arb_case(), binpack in any::<bool>(), seed in any::<u64>()) {
        let strategy = if binpack { Strategy::Binpack } else { Strategy::Spread };
        let plan = schedule(&snap, &groups, strategy, seed);
        let mut cpu = vec![0u64; snap.hosts.len()];
        let mut mem = vec![0u64; snap.hosts.len()];
        let mut per: HashMap<(String, usize), u32> = HashMap::new();
        for (key, _, h) in &plan.placed {
            let g = groups.iter().find(|g| &g.key == key).expect("group");
            cpu[*h] += g.cpu_milli;
            mem[*h] += g.memory;
            *per.entry((key.clone(), *h)).or_default() += 1;
            let host = &snap.hosts[*h];
            prop_assert!(host.schedulable);
            prop_assert!(g.constraints.iter().all(|c| c.holds(host)));
            if let Some(m) = g.max_per_host {
                prop_assert!(per[&(key.clone(), *h)] <= m);
            }
        }
        for (h, host) in snap.hosts.iter().enumerate() {
            prop_assert!(cpu[h] <= host.cpu_milli, "cpu overcommitted on {h}");
            prop_assert!(mem[h] <= host.memory, "memory overcommitted on {h}");
        }
        // Every replica is either placed or pending with a reason.
        for g in groups.iter().filter(|g| !g.global) {
            let placed = plan.placed.iter().filter(|p| p.0 == g.key).count();
            let pending = plan.pending.iter().filter(|p| p.0 == g.key).count();
            prop_assert_eq!(placed + pending, g.slots.len());
        }
        // Global: at most one per host, and every matching host with room has one.
        for g in groups.iter().filter(|g| g.global) {
            for (h, host) in snap.hosts.iter().enumerate() {
                let n = per.get(&(g.key.clone(), h)).copied().unwrap_or(0);
                prop_assert!(n <= 1);
                let matches = host.schedulable && g.constraints.iter().all(|c| c.holds(host));
                if !matches {
                    prop_assert_eq!(n, 0);
                }
            }
        }
    }
}

#[test]
fn huge_reservations_never_overflow_and_are_refused() {
    // A compose reservation near u64::MAX on a host that already carries load: refused as
    // too big, never wrapped around into a small number.
    let max = u64::MAX;
    check(
        &format!(
            "host a cpu={max} mem={max}\nexisting a other cpu=5 mem=5\ngroup big x1 cpu={max}"
        ),
        expect![[r#"
            big.1 pending: no host fits big (18446744073709550 CPU): 1 host short of CPU
        "#]],
    );
}
