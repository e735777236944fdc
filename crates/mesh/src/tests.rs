//! Data-driven tests: a fixture describes an environment, one question per line, and the
//! expectation is one answer per line.
//!
//! ```text
//! place RANGE ENV_INDEX HOST_INDEX        where a host sits
//! subnet BLOCK USED,USED..                the next network subnet of a host block
//! member HOST INDEX ENDPOINT              (declares) a host of the environment
//! peers HOST                              the peers HOST configures
//! subnet-of NETWORK HOST CIDR             (declares) a network's subnet on a host
//! allows HOST                             what HOST forwards from the tunnel
//! container NAME STACK SERVICE up|down NET=IP,.. [alias NET=A,..] [link SERVICE:ALIAS,..]
//! ask IP NAME                             what Drover's DNS answers the container at IP
//! reported HOST BLOCK                     (declares) a host's report
//! rnet HOST NETWORK CIDR                  a network it reports, with its subnet
//! seen HOST NAME STACK SERVICE SLOT running|exited|unhealthy|stale NET=IP,..
//! placed STACK SERVICE SLOT HOST          where a slot is placed
//! directory                               the subnets and entries the reports give
//! ```

use super::*;
use expect_test::{Expect, expect};
use std::collections::HashMap;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("cidr in fixture")
}

fn check(fixture: &str, expected: Expect) {
    let env = net("10.192.0.0/16");
    let mut members = Vec::new();
    let mut subnets = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut reported: Vec<Reported> = Vec::new();
    let mut placed = Placed::new();
    let mut out = String::new();
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "place" => {
                let layout = Layout::new(net(w[1]));
                let answer = layout.map(|l| {
                    l.env_block(w[2].parse().expect("index"))
                        .and_then(|e| place(e, w[3].parse().expect("index")))
                });
                out += &format!("{line} -> {answer:?}\n");
            }
            "subnet" => {
                let used: Vec<Ipv4Net> = w
                    .get(2)
                    .map(|u| u.split(',').map(net).collect())
                    .unwrap_or_default();
                let s = free_subnet(net(w[1]), &used);
                out += &format!("{line} -> {}\n", s.map_or("none".into(), |s| s.to_string()));
            }
            "member" => members.push(Member {
                host: w[1].into(),
                index: w[2].parse().expect("index"),
                public_key: format!("key-{}", w[1]),
                endpoint: w[3].parse().expect("endpoint"),
            }),
            "peers" => {
                out += &format!("{line}:\n");
                for p in peers(env, w[1], &members) {
                    let allowed: Vec<String> = p.allowed.iter().map(|a| a.to_string()).collect();
                    out += &format!(
                        "  {} {} {} {}\n",
                        p.host,
                        p.public_key,
                        p.endpoint,
                        allowed.join(",")
                    );
                }
            }
            "subnet-of" => subnets.push(Subnet {
                network: w[1].into(),
                host: w[2].into(),
                subnet: net(w[3]),
            }),
            "allows" => {
                out += &format!("{line}:\n");
                for a in allows(w[1], &subnets, &entries) {
                    out += &format!("  {} {} -> {}\n", a.network, a.src, a.dst);
                }
            }
            "container" => {
                let mut e = Entry {
                    name: w[1].into(),
                    stack: w[2].into(),
                    service: w[3].into(),
                    ready: w[4] == "up",
                    addrs: BTreeMap::new(),
                    aliases: BTreeMap::new(),
                    links: Vec::new(),
                };
                for pair in w[5].split(',') {
                    let (n, ip) = pair.split_once('=').expect("NET=IP");
                    e.addrs.insert(n.into(), ip.parse().expect("ip"));
                }
                for extra in w[6..].chunks(2) {
                    match extra {
                        ["alias", list] => {
                            for pair in list.split(',') {
                                let (n, a) = pair.split_once('=').expect("NET=ALIAS");
                                e.aliases.entry(n.into()).or_default().push(a.into());
                            }
                        }
                        ["link", list] => {
                            for pair in list.split(',') {
                                let (s, a) = pair.split_once(':').unwrap_or((pair, pair));
                                e.links.push((s.into(), a.into()));
                            }
                        }
                        _ => panic!("bad container line: {line}"),
                    }
                }
                entries.push(e);
            }
            "ask" => {
                let names = Names::build(&entries);
                let answer = match names.resolve(w[1].parse().expect("ip"), w[2]) {
                    Resolution::Elsewhere => "elsewhere".to_string(),
                    Resolution::Drover(ips) if ips.is_empty() => "nothing".to_string(),
                    Resolution::Drover(ips) => ips
                        .iter()
                        .map(|ip| ip.to_string())
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                out += &format!("{line} -> {answer}\n");
            }
            "reported" => reported.push(Reported {
                host: w[1].into(),
                block: net(w[2]),
                ..Default::default()
            }),
            "rnet" => {
                let h = reported.iter_mut().find(|r| r.host == w[1]).expect("host");
                h.networks.push((w[2].into(), Some(net(w[3]))));
            }
            "seen" => {
                let h = reported.iter_mut().find(|r| r.host == w[1]).expect("host");
                h.containers.push(Seen {
                    name: w[2].into(),
                    stack: w[3].into(),
                    service: w[4].into(),
                    slot: w[5].parse().expect("slot"),
                    running: w[6] != "exited",
                    unhealthy: w[6] == "unhealthy",
                    stale: w[6] == "stale",
                    addrs: w[7]
                        .split(',')
                        .map(|p| {
                            let (n, ip) = p.split_once('=').expect("NET=IP");
                            (n.to_string(), ip.parse().expect("ip"))
                        })
                        .collect(),
                });
            }
            "placed" => {
                placed.insert(
                    (w[1].into(), w[2].into(), w[3].parse().expect("slot")),
                    w[4].into(),
                );
            }
            "directory" => {
                let (subnets, entries) = directory(&reported, &placed, &HashMap::new());
                out += "directory:\n";
                for s in subnets {
                    out += &format!("  subnet {} {} {}\n", s.network, s.host, s.subnet);
                }
                for e in entries {
                    let addrs: Vec<String> =
                        e.addrs.iter().map(|(n, ip)| format!("{n}={ip}")).collect();
                    let ready = if e.ready { "ready" } else { "not-ready" };
                    out += &format!("  {} {ready} {}\n", e.name, addrs.join(","));
                }
            }
            other => panic!("unknown fixture word {other}"),
        }
    }
    expected.assert_eq(&out);
}

#[test]
fn addresses() {
    check(
        "
        place 10.192.0.0/10 0 1
        place 10.192.0.0/10 3 63
        place 10.192.0.0/10 64 1
        place 10.192.0.0/10 0 64
        place 10.192.0.0/10 0 0
        place 10.192.0.0/24 0 1
        subnet 10.192.4.0/22
        subnet 10.192.4.0/22 10.192.4.0/27,10.192.4.64/27
        subnet 10.192.4.0/22 10.192.4.0/24,10.192.5.0/24,10.192.6.0/24,10.192.7.0/25,10.192.7.128/26,10.192.7.192/27
        subnet 10.192.4.0/22 10.192.4.0/22
        subnet 10.192.4.0/22 10.192.4.40/30
        ",
        expect![[r#"
            place 10.192.0.0/10 0 1 -> Ok(Some(Place { ip: 10.192.0.1, block: 10.192.4.0/22, env: 10.192.0.0/16 }))
            place 10.192.0.0/10 3 63 -> Ok(Some(Place { ip: 10.195.0.63, block: 10.195.252.0/22, env: 10.195.0.0/16 }))
            place 10.192.0.0/10 64 1 -> Ok(None)
            place 10.192.0.0/10 0 64 -> Ok(None)
            place 10.192.0.0/10 0 0 -> Ok(None)
            place 10.192.0.0/24 0 1 -> Err("mesh range 10.192.0.0/24 is smaller than one environment's /16")
            subnet 10.192.4.0/22 -> 10.192.4.0/27
            subnet 10.192.4.0/22 10.192.4.0/27,10.192.4.64/27 -> 10.192.4.32/27
            subnet 10.192.4.0/22 10.192.4.0/24,10.192.5.0/24,10.192.6.0/24,10.192.7.0/25,10.192.7.128/26,10.192.7.192/27 -> 10.192.7.224/27
            subnet 10.192.4.0/22 10.192.4.0/22 -> none
            subnet 10.192.4.0/22 10.192.4.40/30 -> 10.192.4.0/27
        "#]],
    );
}

#[test]
fn each_host_peers_with_every_other_host_of_its_environment() {
    check(
        "
        member a 1 10.77.0.11:51820
        member b 2 10.77.0.12:51820
        member c 3 10.77.0.13:6000
        member bad 0 10.77.0.14:51820
        peers a
        peers c
        ",
        expect![[r#"
            peers a:
              b key-b 10.77.0.12:51820 10.192.0.2/32,10.192.8.0/22
              c key-c 10.77.0.13:6000 10.192.0.3/32,10.192.12.0/22
            peers c:
              a key-a 10.77.0.11:51820 10.192.0.1/32,10.192.4.0/22
              b key-b 10.77.0.12:51820 10.192.0.2/32,10.192.8.0/22
        "#]],
    );
}

#[test]
fn only_the_same_network_crosses_the_tunnel() {
    check(
        "
        subnet-of shop_default a 10.192.4.0/27
        subnet-of shop_default b 10.192.8.0/27
        subnet-of shop_default c 10.192.12.0/27
        subnet-of blog_default a 10.192.4.32/27
        subnet-of blog_default c 10.192.12.32/27
        subnet-of lonely b 10.192.8.32/27
        subnet-of shared b 10.192.8.64/27
        subnet-of shared c 10.192.12.64/27
        subnet-of front_default b 10.192.8.96/27
        subnet-of spy_default b 10.192.8.128/27
        container front-gw-1 front gw up front_default=10.192.8.98,shared=10.192.8.66
        container back-api-1 back api up shared=10.192.12.66
        container spy-spy-1 spy spy up spy_default=10.192.8.130
        allows a
        allows b
        allows c
        ",
        expect![[r#"
            allows a:
              blog_default 10.192.12.32/27 -> 10.192.4.32/27
              shop_default 10.192.8.0/27 -> 10.192.4.0/27
              shop_default 10.192.12.0/27 -> 10.192.4.0/27
            allows b:
              shared 10.192.12.64/27 -> 10.192.8.64/27
              shop_default 10.192.4.0/27 -> 10.192.8.0/27
              shop_default 10.192.12.0/27 -> 10.192.8.0/27
            allows c:
              blog_default 10.192.4.32/27 -> 10.192.12.32/27
              shared 10.192.8.64/27 -> 10.192.12.64/27
              shared 10.192.8.98/32 -> 10.192.12.64/27
              shop_default 10.192.4.0/27 -> 10.192.12.0/27
              shop_default 10.192.8.0/27 -> 10.192.12.0/27
        "#]],
    );
}

#[test]
fn names_answer_ready_containers_on_shared_networks() {
    check(
        "
        container shop-web-1 shop web up shop_default=10.192.4.2 alias shop_default=www
        container shop-web-2 shop web up shop_default=10.192.8.2
        container shop-web-3 shop web down shop_default=10.192.12.2
        container shop-client-1 shop client up shop_default=10.192.4.3
        container blog-web-1 blog web up blog_default=10.192.4.34,shared=10.192.4.66
        container blog-db-1 blog db up blog_default=10.192.8.34
        container shop-api-1 shop api up shop_default=10.192.8.3,shared=10.192.8.66 link web:front
        ask 10.192.4.3 web
        ask 10.192.4.3 WEB.
        ask 10.192.4.3 www
        ask 10.192.4.3 web.shop
        ask 10.192.4.3 shop-web-2
        ask 10.192.4.3 shop-web-3
        ask 10.192.4.3 db
        ask 10.192.4.3 web.blog
        ask 10.192.8.3 web.blog
        ask 10.192.8.3 web
        ask 10.192.8.3 front
        ask 10.192.4.3 front
        ask 10.192.4.3 example.org
        ask 10.77.0.1 web
        ",
        expect![[r#"
            ask 10.192.4.3 web -> 10.192.4.2 10.192.8.2
            ask 10.192.4.3 WEB. -> 10.192.4.2 10.192.8.2
            ask 10.192.4.3 www -> 10.192.4.2
            ask 10.192.4.3 web.shop -> 10.192.4.2 10.192.8.2
            ask 10.192.4.3 shop-web-2 -> 10.192.8.2
            ask 10.192.4.3 shop-web-3 -> nothing
            ask 10.192.4.3 db -> nothing
            ask 10.192.4.3 web.blog -> nothing
            ask 10.192.8.3 web.blog -> 10.192.4.66
            ask 10.192.8.3 web -> 10.192.4.2 10.192.4.66 10.192.8.2
            ask 10.192.8.3 front -> 10.192.4.2 10.192.8.2
            ask 10.192.4.3 front -> nothing
            ask 10.192.4.3 example.org -> elsewhere
            ask 10.77.0.1 web -> nothing
        "#]],
    );
}

#[test]
fn reports_are_believed_only_inside_the_reporting_hosts_block() {
    check(
        "
        reported a 10.192.4.0/22
        reported b 10.192.8.0/22
        rnet a shop_default 10.192.4.0/27
        rnet b shop_default 10.192.8.0/27
        rnet b stolen 10.192.4.32/27
        seen a shop-web-1 shop web 1 running shop_default=10.192.4.2
        seen a shop-web-2 shop web 2 unhealthy shop_default=10.192.4.3
        seen a shop-web-3 shop web 3 running shop_default=10.192.4.4
        seen b shop-web-3 shop web 3 running shop_default=10.192.8.2
        seen b shop-db-1 shop db 1 exited shop_default=10.192.8.3
        seen b shop-spoof-1 shop spoof 1 running shop_default=10.192.4.9
        placed shop web 1 a
        placed shop web 2 a
        placed shop web 3 b
        placed shop db 1 b
        placed shop spoof 1 b
        directory
        ",
        expect![[r#"
            directory:
              subnet shop_default a 10.192.4.0/27
              subnet shop_default b 10.192.8.0/27
              shop-db-1 not-ready shop_default=10.192.8.3
              shop-web-1 ready shop_default=10.192.4.2
              shop-web-2 not-ready shop_default=10.192.4.3
              shop-web-3 not-ready shop_default=10.192.4.4
              shop-web-3 ready shop_default=10.192.8.2
        "#]],
    );
}

#[test]
fn a_container_its_slot_no_longer_asks_for_answers_to_no_name() {
    // Slot 2 was given a new spec (a stop-first roll replacing it in place, or its number
    // given again to a new container on the same host): the old copy still runs, about to
    // be replaced, and must not be answered.
    check(
        "
        reported a 10.192.4.0/22
        rnet a shop_default 10.192.4.0/27
        seen a shop-web-1 shop web 1 running shop_default=10.192.4.2
        seen a shop-web-2 shop web 2 stale shop_default=10.192.4.3
        placed shop web 1 a
        placed shop web 2 a
        directory
        ",
        expect![[r#"
            directory:
              subnet shop_default a 10.192.4.0/27
              shop-web-1 ready shop_default=10.192.4.2
              shop-web-2 not-ready shop_default=10.192.4.3
        "#]],
    );
}
