//! One network across hosts, on the cluster of `cluster.rs` (hosts are network namespaces;
//! every request goes to a container port published on a namespace address). Containers
//! are called through a `client` container of the test app (`/call/NAME:8080/`), so names
//! are resolved and connections made from inside the containers, across the tunnel.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{Cluster, app};
use crate::harness::*;

const HEALTHCHECK: &str = "    healthcheck:\n      test: [\"CMD\", \"/app\", \"health\", \"http://127.0.0.1:8080/health\"]\n      interval: 1s\n      timeout: 1s\n      retries: 1\n";

/// Host `i`'s address on the test bridge.
pub fn host_ip(i: usize) -> String {
    format!("10.77.0.1{i}")
}

/// `/call/TARGET:8080/PATH` through the test app published on host `i`'s `port`.
fn call(i: usize, port: u16, target: &str, path: &str) -> (u16, String) {
    http_get_at(&host_ip(i), port, &format!("/call/{target}:8080/{path}"))
        .unwrap_or((0, "no answer from the calling container".into()))
}

/// Waits until a call answers 200, returning the body.
fn reach(i: usize, port: u16, target: &str) -> String {
    wait_for(
        Duration::from_secs(20),
        &format!("{target} reachable from host {i}"),
        || {
            let (code, body) = call(i, port, target, "");
            (code == 200).then_some(body)
        },
    )
}

/// The hostname a test app answered with (`called X: hostname=H name=`).
fn hostname(body: &str) -> String {
    body.split("hostname=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

/// `docker inspect` on host `i`'s engine.
fn inspect(c: &Cluster, i: usize, container: &str, format: &str) -> String {
    let sock = c.dir.path().join(format!("hosts/h{i}/docker.sock"));
    let out = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(["inspect", "--format", format, container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Drops (or, with `heal`, allows again) host `i`'s tunnel traffic, leaving its link to the
/// server alone: the hosts then reach the server but not each other.
fn block_tunnel(i: usize, heal: bool) {
    let op = if heal { "-D" } else { "-I" };
    for chain in ["INPUT", "OUTPUT"] {
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                &format!("drvh{i}"),
                "iptables",
                "-w",
                op,
                chain,
            ])
            .args(["-p", "udp", "--dport", "51820", "-j", "DROP"])
            .status()
            .expect("iptables");
        assert!(st.success(), "iptables {op} {chain} in host {i}");
    }
}

/// The MESH column of `drover host ls`, one cell per host.
pub fn mesh_cells(c: &Cluster) -> Vec<String> {
    c.ok(&["host", "ls"])
        .lines()
        .skip(1)
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .find(|cell| cell.contains('/') && !cell.contains('G') && !cell.contains('.'))
                .unwrap_or("-")
                .to_string()
        })
        .collect()
}

pub fn one_network_across_hosts(c: &Cluster) {
    let (h1, h2, h3) = (c.host_id(1), c.host_id(2), c.host_id(3));
    c.ok(&["host", "label", &h1, "net=client"]);
    c.ok(&["host", "label", &h2, "net=spy"]);
    c.ok(&["host", "label", &h3, "net=web"]);
    wait_for(
        Duration::from_secs(30),
        "every host reaching both peers",
        || (mesh_cells(c) == ["2/2", "2/2", "2/2"]).then_some(()),
    );

    // A stack spread over hosts: web (2 replicas) on host 3, client on host 1.
    c.deploy_ok(
        "shop",
        &format!(
            "services:\n  web:\n{}{HEALTHCHECK}    networks:\n      default:\n        aliases: [www]\n    deploy:\n      replicas: 2\n      placement:\n        constraints: [node.labels.net == web]\n  client:\n{}    ports: [\"18081:8080\"]\n    links: [\"web:front\"]\n    deploy:\n      placement:\n        constraints: [node.labels.net == client]\n",
            app(""),
            app("")
        ),
    );
    assert_eq!(c.running(3, "shop", Some("web")).len(), 2);
    assert_eq!(c.running(1, "shop", Some("client")).len(), 1);
    for name in [
        "web",
        "www",
        "web.shop",
        "shop-web-1",
        "shop-web-2",
        "front",
    ] {
        let body = reach(1, 18081, name);
        assert!(
            body.starts_with(&format!("called {name}: hostname=")),
            "{body}"
        );
    }
    // Several answers: calls by service name reach both replicas.
    let seen: std::collections::BTreeSet<String> = (0..10)
        .map(|_| hostname(&call(1, 18081, "web", "").1))
        .collect();
    assert_eq!(seen.len(), 2, "calls to web reached {seen:?}");

    // An unhealthy replica leaves the answers; healthy again, it comes back.
    let web1_ip = inspect(
        c,
        3,
        "shop-web-1",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    assert!(web1_ip.starts_with("10.192."), "web-1 address {web1_ip}");
    let web2 = hostname(&reach(1, 18081, "shop-web-2"));
    assert_eq!(call(1, 18081, &web1_ip, "unhealthy").0, 200);
    let turned = wait_for(Duration::from_secs(20), "web-1 unhealthy", || {
        (inspect(c, 3, "shop-web-1", "{{.State.Health.Status}}") == "unhealthy").then(Instant::now)
    });
    let left = wait_for(Duration::from_secs(20), "web-1 out of the answers", || {
        (0..6)
            .all(|_| hostname(&call(1, 18081, "web", "").1) == web2)
            .then(|| turned.elapsed())
    });
    eprintln!(
        "mesh: an unhealthy container left the answers {:.2} s after the engine marked it (target 2 s)",
        left.as_secs_f64()
    );
    assert_eq!(call(1, 18081, &web1_ip, "healthy").0, 200);
    wait_for(Duration::from_secs(20), "web-1 back in the answers", || {
        (0..10)
            .map(|_| hostname(&call(1, 18081, "web", "").1))
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            .eq(&2)
            .then_some(())
    });

    // Isolation: a stack sharing no network with shop reaches neither its names nor its
    // addresses (nor the client's link alias).
    c.deploy_ok(
        "spy",
        &format!(
            "services:\n  spy:\n{}    ports: [\"18083:8080\"]\n    deploy:\n      placement:\n        constraints: [node.labels.net == spy]\n",
            app("")
        ),
    );
    reach(2, 18083, "spy");
    for target in ["web.shop", "web", "front", web1_ip.as_str()] {
        let (code, body) = call(2, 18083, target, "");
        assert_eq!(code, 502, "spy reached {target}: {body}");
    }

    // Stacks joined by a network made with `drover network create`: SERVICE.STACK across
    // stacks and hosts.
    c.ok(&["network", "create", "shared"]);
    let shared = "networks:\n  shared:\n    external: true\n";
    c.deploy_ok(
        "back",
        &format!(
            "services:\n  api:\n{}    networks: [shared]\n    deploy:\n      placement:\n        constraints: [node.labels.net == web]\n{shared}",
            app("")
        ),
    );
    c.deploy_ok(
        "front",
        &format!(
            "services:\n  gw:\n{}    ports: [\"18082:8080\"]\n    networks: [default, shared]\n    deploy:\n      placement:\n        constraints: [node.labels.net == spy]\n{shared}",
            app("")
        ),
    );
    reach(2, 18082, "api.back");
    reach(2, 18082, "api");
    assert_eq!(
        call(2, 18083, "api.back", "").0,
        502,
        "spy is not on shared"
    );
    let ls = c.ok(&["network", "ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("shared ") && l.contains("back") && l.contains("front")),
        "{ls}"
    );
    let rm = c.cli(&["network", "rm", "shared"]);
    assert_ne!(rm.code, 0, "a joined network was removed: {}", rm.stdout);
    assert!(rm.stderr.contains("back"), "{}", rm.stderr);

    // A pair of hosts that cannot reach each other (the server still reaches both) is
    // shown broken, then repairs itself once the path is back.
    block_tunnel(2, false);
    wait_for(
        Duration::from_secs(20),
        "host 2's pairs shown broken",
        || {
            let cells = mesh_cells(c);
            (cells[..].iter().filter(|m| m.contains("broken")).count() == 3).then_some(cells)
        },
    );
    let detail = c.ok(&["host", "inspect", &h2]);
    assert!(detail.contains("NAT or a firewall"), "{detail}");
    assert_ne!(call(2, 18082, "api.back", "").0, 200);
    block_tunnel(2, true);
    let healed = Instant::now();
    wait_for(Duration::from_secs(30), "mesh repaired", || {
        (mesh_cells(c) == ["2/2", "2/2", "2/2"]).then_some(())
    });
    reach(2, 18082, "api.back");
    eprintln!(
        "mesh: a cut pair repaired itself {:.1} s after the path came back (target 10 s)",
        healed.elapsed().as_secs_f64()
    );

    for s in ["front", "back", "spy", "shop"] {
        c.ok(&["stack", "rm", s]);
    }
    c.ok(&["network", "rm", "shared"]);
}

/// Before host 3 is cut off: a service that can only move from host 3 to host 2, and a
/// client on host 1 calling it by name.
pub fn failover_setup(c: &Cluster) {
    let (h2, h3) = (c.host_id(2), c.host_id(3));
    c.ok(&["host", "label", &h3, "fo=yes"]);
    c.deploy_ok(
        "fo",
        &format!(
            "services:\n  api:\n{}    deploy:\n      placement:\n        constraints: [node.labels.fo == yes]\n  client:\n{}    ports: [\"18084:8080\"]\n    deploy:\n      placement:\n        constraints: [node.labels.net == client]\n",
            app(""),
            app("")
        ),
    );
    assert_eq!(c.running(3, "fo", Some("api")).len(), 1);
    reach(1, 18084, "api");
    c.ok(&["host", "label", &h2, "fo=yes"]);
}

/// After host 3 was cut off: the replacement on host 2 answers to the same name.
pub fn failover_keeps_names(c: &Cluster) {
    let running = wait_for(Duration::from_secs(40), "api replaced on host 2", || {
        (!c.running(2, "fo", Some("api")).is_empty()).then(Instant::now)
    });
    let body = reach(1, 18084, "api");
    assert!(body.starts_with("called api"), "{body}");
    eprintln!(
        "mesh: the replacement answered by name {:.2} s after it was running (target 2 s)",
        running.elapsed().as_secs_f64()
    );
    c.ok(&["stack", "rm", "fo"]);
}

/// A `start-first` upgrade of 4 replicas spread over the 3 hosts while a client on host 1
/// calls the service by name without pause: not one call fails.
pub fn zero_downtime_upgrade(c: &Cluster) {
    let version = |v: &str| {
        format!(
            "services:\n  web:\n{}    environment:\n      VERSION: \"{v}\"\n    deploy:\n      replicas: 4\n      update_config: {{parallelism: 2, order: start-first}}\n    x-drover:\n      health: {{http: /health, port: 8080, interval: 300ms, retries: 3}}\n  client:\n{}    ports: [\"18083:8080\"]\n    deploy:\n      placement:\n        constraints: [node.labels.net == client]\n",
            app(""),
            app("")
        )
    };
    c.deploy_ok("zd", &version("1"));
    let spread: usize = (1..=3)
        .filter(|i| !c.running(*i, "zd", Some("web")).is_empty())
        .count();
    assert!(spread >= 2, "web should span hosts");
    reach(1, 18083, "web");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (code, body) = call(1, 18083, "web", "");
                if code == 200 {
                    ok += 1;
                } else {
                    failed.push(format!("{code} {body}"));
                }
            }
            (ok, failed)
        })
    };
    let start = Instant::now();
    c.deploy_ok("zd", &version("2"));
    let took = start.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = poller.join().expect("poller");
    eprintln!(
        "zero-downtime upgrade: {:.1}s, {ok} calls answered, {} failed",
        took.as_secs_f64(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "failed calls during the roll: {failed:?}"
    );
    assert!(ok > 20, "too few calls to judge: {ok}");
    let web: Vec<String> = (1..=3)
        .flat_map(|i| c.running(i, "zd", Some("web")))
        .collect();
    assert_eq!(web.len(), 4, "{web:?}");
    for (i, name) in (1..=3).flat_map(|i| {
        c.running(i, "zd", Some("web"))
            .into_iter()
            .map(move |n| (i, n))
    }) {
        let env = inspect(c, i, &name, "{{range .Config.Env}}{{println .}}{{end}}");
        assert!(env.contains("VERSION=2"), "{name}: {env}");
    }
}
