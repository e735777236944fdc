//! `bench-secrets`: the time to deliver a changed secret to 100 containers on three namespace
//! hosts (scripts/cluster.sh), by Drover and, as the reference, by Docker Swarm on the same
//! three engines, in one run, alternating.
//!
//! The workload: 100 replicas of `drover-test/busybox:1` running `/bin/busybox sleep 3600`
//! (`stop_grace_period: 1s`; Drover's with `network_mode: none`, as Drover gives each network
//! a /27 per host, 29 containers, fewer than the 34 a host runs here, and Swarm's on each
//! engine's default bridge, as a swarm service cannot ask for `none`), spread over the three
//! hosts, using one external secret at
//! `/run/secrets/key`, rolled with the same `parallelism` on both sides (default 0: all at
//! once; `--parallelism N`, or `default` for each system's own, which is 1 on both), the
//! rest of the update settings left at their defaults (stop-first, no delay; Drover drains a
//! leaving container out of the names for 2 s first).
//!
//! Drover: `drover secret update bench-key -f FILE` (it answers once the new revisions of
//! the stacks using it are written; the services then roll). Swarm cannot change a secret:
//! the new value is a new secret (`docker secret create`, not timed) and the update is
//! `docker service update --secret-rm OLD --secret-add source=NEW,target=key` (it waits for
//! the tasks, then its 5 s check that they are stable).
//!
//! Delivered: from samples of the three engines every 50 ms, each running container of the
//! service has its secret file read where the host keeps it (the same tmpfs files the
//! containers see): Drover's bind-mount source (`.Mounts` of the container list,
//! `/dev/shm/drover/<host>/<container>/N`), Swarm's `<data-root>/containers/<id>/mounts/
//! secrets/<secret id>`. The time is from the command's start to the first sample with 100
//! running containers that all read the new value (none the old one, none unreadable), and
//! a second later it must still hold.
//!
//! Needs root, iproute2, Debian's dockerd and `drover-test/busybox:1`
//! (`scripts/build-test-images.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::hosts::{Hosts, engine_get, percent_encode};
use crate::roll_bench::median;
use crate::run;

const HOSTS: usize = 3;
const REPLICAS: usize = 100;
const IMAGE: &str = "drover-test/busybox:1";
/// The external secret's name in Drover.
const SECRET: &str = "bench-key";
const TARGET: &str = "/run/secrets/key";
const SAMPLE: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, PartialEq)]
enum System {
    Drover,
    Swarm,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Drover => "drover",
            System::Swarm => "swarm",
        }
    }

    fn labels(self) -> &'static [&'static str] {
        match self {
            System::Drover => &["io.drover.stack=sec", "io.drover.service=app"],
            System::Swarm => &["com.docker.swarm.service.name=app"],
        }
    }
}

/// The service's running containers at one moment, by what their secret file holds.
#[derive(Clone, Copy, Default)]
struct Count {
    per_host: [usize; HOSTS],
    running: usize,
    new: usize,
    old: usize,
    /// Another value, no file, or no file yet.
    other: usize,
}

impl Count {
    fn delivered(&self) -> bool {
        self.running == REPLICAS && self.new == REPLICAS
    }

    fn show(&self) -> String {
        format!(
            "{} running ({}), {} new, {} old, {} other/unreadable",
            self.running,
            self.per_host
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            self.new,
            self.old,
            self.other
        )
    }
}

/// The host path of a running container's secret file.
fn secret_file(
    hosts: &Hosts,
    system: System,
    host: usize,
    c: &serde_json::Value,
) -> Option<PathBuf> {
    match system {
        System::Drover => c["Mounts"].as_array()?.iter().find_map(|m| {
            (m["Destination"].as_str() == Some(TARGET))
                .then(|| m["Source"].as_str().map(PathBuf::from))
                .flatten()
        }),
        System::Swarm => {
            let dir = hosts
                .dir
                .join(format!("hosts/h{host}/data/containers"))
                .join(c["Id"].as_str()?)
                .join("mounts/secrets");
            // One secret: the one file there, named by the secret's id.
            let entry = std::fs::read_dir(dir).ok()?.next()?.ok()?;
            Some(entry.path())
        }
    }
}

/// Reads every running container's secret file, on every engine.
fn count(hosts: &Hosts, system: System, old: &[u8], new: &[u8]) -> Result<Count> {
    let filters = serde_json::json!({ "label": system.labels() }).to_string();
    let path = format!("/containers/json?filters={}", percent_encode(&filters));
    let mut n = Count::default();
    for i in 1..=HOSTS {
        let list = engine_get(&hosts.sock(i), &path)?;
        for c in list.as_array().context("container list")? {
            n.running += 1;
            n.per_host[i - 1] += 1;
            let value = secret_file(hosts, system, i, c).and_then(|f| std::fs::read(f).ok());
            match value.as_deref() {
                Some(v) if v == new => n.new += 1,
                Some(v) if v == old => n.old += 1,
                _ => n.other += 1,
            }
        }
    }
    Ok(n)
}

/// When an update's samples changed (seconds since the command started): the first container
/// reading the new value, the last old one gone, every container reading the new one.
#[derive(Clone, Copy)]
struct Timeline {
    first_new: f64,
    old_gone: f64,
    delivered: f64,
}

/// Samples until every container holds `new`: when, and the last sample.
fn wait_delivered(
    hosts: &Hosts,
    system: System,
    old: &[u8],
    new: &[u8],
    start: Instant,
    timeout: Duration,
) -> Result<(Timeline, Count)> {
    let (mut first_new, mut old_gone) = (None, None);
    loop {
        let next = Instant::now() + SAMPLE;
        let t = start.elapsed().as_secs_f64();
        let c = count(hosts, system, old, new)?;
        if c.new > 0 {
            first_new.get_or_insert(t);
        }
        if c.old == 0 {
            old_gone.get_or_insert(t);
        }
        if c.delivered() {
            let timeline = Timeline {
                first_new: first_new.unwrap_or(t),
                old_gone: old_gone.unwrap_or(t),
                delivered: t,
            };
            return Ok((timeline, c));
        }
        if start.elapsed() > timeout {
            bail!(
                "{}: the new value not delivered after {}s: {}",
                system.name(),
                timeout.as_secs(),
                c.show()
            );
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

fn compose(parallelism: Option<u32>) -> String {
    let update = match parallelism {
        Some(p) => format!("      update_config:\n        parallelism: {p}\n"),
        None => String::new(),
    };
    format!(
        r#"services:
  app:
    image: {IMAGE}
    command: ["/bin/busybox", "sleep", "3600"]
    stop_grace_period: 1s
    network_mode: none
    secrets:
      - source: key
    deploy:
      replicas: {REPLICAS}
{update}secrets:
  key:
    external: true
    name: {SECRET}
"#
    )
}

/// Swarm's secret of round `v`.
fn swarm_secret(v: usize) -> String {
    format!("bench-key-v{v}")
}

fn value(v: usize) -> Vec<u8> {
    format!("secret value {v}\n").into_bytes()
}

/// One update of `system`'s secret from value `v - 1` to `v`: the command's wall time, and
/// when the containers changed.
fn update(
    hosts: &Hosts,
    drover: &Path,
    system: System,
    v: usize,
    parallelism: Option<u32>,
) -> Result<(f64, Timeline)> {
    let file = hosts.dir.join(format!("value-{v}"));
    std::fs::write(&file, value(v))?;
    let file_s = file.to_string_lossy().to_string();
    let mut cmd = match system {
        System::Drover => {
            let mut c = Command::new(drover);
            c.args(["secret", "update", SECRET, "-f", &file_s])
                .env("DROVER_URL", &hosts.url)
                .env("DROVER_TOKEN", &hosts.token)
                .env("DROVER_CONFIG", hosts.dir.join("cli.json"));
            c
        }
        System::Swarm => {
            hosts.docker(1, &["secret", "create", &swarm_secret(v), &file_s])?;
            let mut c = Command::new("docker");
            c.arg("-H")
                .arg(format!("unix://{}", hosts.sock(1).display()))
                .args([
                    "service",
                    "update",
                    "--detach=false",
                    "--quiet",
                    "--no-resolve-image",
                    "--secret-rm",
                    &swarm_secret(v - 1),
                    "--secret-add",
                    &format!("source={},target=key", swarm_secret(v)),
                ]);
            if let Some(p) = parallelism {
                c.args(["--update-parallelism", &p.to_string()]);
            }
            c.arg("app");
            c
        }
    };
    let start = Instant::now();
    let command = std::thread::spawn(move || {
        let out = run(&mut cmd);
        (out, start.elapsed().as_secs_f64())
    });
    // All at once: a few times a deploy's time; a step at a time: a few seconds a step.
    let steps = match parallelism {
        Some(0) => 1,
        Some(p) => REPLICAS.div_ceil(p as usize),
        None => REPLICAS,
    };
    let timeout = Duration::from_secs(300.max(10 * steps as u64));
    let waited = wait_delivered(hosts, system, &value(v - 1), &value(v), start, timeout);
    let (out, command_s) = command
        .join()
        .map_err(|_| anyhow::anyhow!("command thread panicked"))?;
    let out = out?;
    let (timeline, _) = waited?;
    if system == System::Drover {
        eprintln!("    {}", out.trim());
    }
    // Still so a second later (and after the command is done).
    std::thread::sleep(Duration::from_secs(1));
    let after = count(hosts, system, &value(v - 1), &value(v))?;
    if !after.delivered() {
        bail!(
            "{}: delivered at {:.1}s, but then: {}",
            system.name(),
            timeline.delivered,
            after.show()
        );
    }
    if system == System::Swarm {
        hosts.docker(1, &["secret", "rm", &swarm_secret(v - 1)])?;
    }
    Ok((command_s, timeline))
}

fn setup_swarm(hosts: &mut Hosts, parallelism: Option<u32>) -> Result<()> {
    hosts.init_swarm()?;
    let file = hosts.dir.join("value-0");
    std::fs::write(&file, value(0))?;
    hosts.docker(
        1,
        &[
            "secret",
            "create",
            &swarm_secret(0),
            &file.to_string_lossy(),
        ],
    )?;
    let replicas = REPLICAS.to_string();
    let secret = format!("source={},target=key", swarm_secret(0));
    let p = parallelism.map(|p| p.to_string());
    let mut args = vec![
        "service",
        "create",
        "--detach=false",
        "--quiet",
        "--no-resolve-image",
        "--name",
        "app",
        "--replicas",
        &replicas,
        "--stop-grace-period",
        "1s",
        "--secret",
        &secret,
    ];
    if let Some(p) = &p {
        args.extend(["--update-parallelism", p]);
    }
    args.extend([IMAGE, "/bin/busybox", "sleep", "3600"]);
    hosts.docker(1, &args)?;
    Ok(())
}

/// `parallelism`: `None` for each system's default.
pub fn bench(drover: &Path, rounds: usize, parallelism: Option<u32>, swarm: bool) -> Result<()> {
    run(Command::new("docker").args(["image", "inspect", IMAGE]))
        .context("test image missing: run scripts/build-test-images.sh")?;
    let mut hosts = Hosts::up("bench-secrets", HOSTS, &[IMAGE])?;
    let result = measure(&mut hosts, drover, rounds, parallelism, swarm);
    if result.is_ok() {
        hosts.keep = false;
    }
    // The agents remove the stack's containers and their files; what is left of their
    // hosts' secret directories (`/dev/shm/drover/<host id>`) goes with the hosts.
    if !hosts.url.is_empty() {
        let _ = hosts.cli(drover, &["stack", "rm", "sec"]);
    }
    let ids: Vec<String> = (1..=HOSTS)
        .filter_map(|i| {
            std::fs::read_to_string(hosts.dir.join(format!("hosts/h{i}/agent/host-id"))).ok()
        })
        .map(|id| id.trim().to_string())
        .filter(|id| !id.is_empty() && !id.contains('/') && id != "..")
        .collect();
    drop(hosts);
    for id in ids {
        let _ = std::fs::remove_dir_all(Path::new("/dev/shm/drover").join(id));
    }
    result
}

fn measure(
    hosts: &mut Hosts,
    drover: &Path,
    rounds: usize,
    parallelism: Option<u32>,
    swarm: bool,
) -> Result<()> {
    let shown = match parallelism {
        Some(p) => format!(
            "parallelism {p}{}",
            if p == 0 { " (all at once)" } else { "" }
        ),
        None => "parallelism default (1)".to_string(),
    };
    eprintln!("bench-secrets: drover server and {HOSTS} agents");
    hosts.start_server(drover)?;
    hosts.start_agents(drover)?;
    let file = hosts.dir.join("value-0");
    std::fs::write(&file, value(0))?;
    hosts.cli(
        drover,
        &["secret", "create", SECRET, "-f", &file.to_string_lossy()],
    )?;
    let yml = hosts.dir.join("sec.yml");
    std::fs::write(&yml, compose(parallelism))?;
    let t = Instant::now();
    hosts.cli(
        drover,
        &["stack", "deploy", "-f", &yml.to_string_lossy(), "-p", "sec"],
    )?;
    let (_, c) = wait_delivered(
        hosts,
        System::Drover,
        b"",
        &value(0),
        t,
        Duration::from_secs(300),
    )?;
    eprintln!(
        "bench-secrets: drover: {} in {:.1}s",
        c.show(),
        t.elapsed().as_secs_f64()
    );
    if swarm {
        eprintln!("bench-secrets: swarm of {HOSTS} engines");
        let t = Instant::now();
        setup_swarm(hosts, parallelism)?;
        let (_, c) = wait_delivered(
            hosts,
            System::Swarm,
            b"",
            &value(0),
            t,
            Duration::from_secs(300),
        )?;
        eprintln!(
            "bench-secrets: swarm: {} in {:.1}s",
            c.show(),
            t.elapsed().as_secs_f64()
        );
    }

    let systems: &[System] = if swarm {
        &[System::Drover, System::Swarm]
    } else {
        &[System::Drover]
    };
    let mut results: Vec<(System, f64, Timeline)> = Vec::new();
    for round in 1..=rounds {
        for &system in systems {
            std::thread::sleep(Duration::from_secs(3));
            let (command_s, t) = update(hosts, drover, system, round, parallelism)?;
            eprintln!(
                "round {round}: {}: command {command_s:.2}s, first new value {:.2}s, old ones gone {:.2}s, all {REPLICAS} delivered {:.2}s",
                system.name(),
                t.first_new,
                t.old_gone,
                t.delivered
            );
            results.push((system, command_s, t));
        }
    }
    let of = |system: System, f: fn(&(System, f64, Timeline)) -> f64| {
        median(results.iter().filter(|r| r.0 == system).map(f).collect())
    };
    println!(
        "\nsecret update delivered to {REPLICAS} containers on {HOSTS} hosts, {shown}, stop-first ({rounds} updates each, alternating; times are medians, from the command's start)"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>10} {:>10}",
        "system", "command", "first new", "old gone", "delivered"
    );
    for &system in systems {
        println!(
            "{:<8} {:>9.2}s {:>9.2}s {:>9.2}s {:>9.2}s",
            system.name(),
            of(system, |r| r.1),
            of(system, |r| r.2.first_new),
            of(system, |r| r.2.old_gone),
            of(system, |r| r.2.delivered)
        );
    }
    if swarm {
        println!(
            "drover / swarm: delivered {:.2}x",
            of(System::Drover, |r| r.2.delivered) / of(System::Swarm, |r| r.2.delivered)
        );
    }
    println!(
        "(command: `drover secret update`, which returns once the new revision is written, / `docker service update --secret-rm --secret-add`, which waits for the tasks and then 5 s more; first new: the first container reading the new value; old gone: no running container reads the old one; delivered: all {REPLICAS} running containers read the new value from their secret file)"
    );
    Ok(())
}
