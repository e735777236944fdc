//! Partitions: the host running a singleton is cut off from the server for 10 minutes (20 s
//! in a short run, two of the ways, chosen by the seed), three ways: its link down (`cut`), packets from the server dropped on
//! the host (`blackhole-in`: it still talks, nothing comes back) and packets to the server
//! dropped (`blackhole-out`: it still hears, nothing it says arrives). Meanwhile, on the cut
//! host: the replicas of a normal service keep running (none stopped), the singleton stops
//! once its lease (10 s) ran out, and a singleton never runs on two hosts at once. After
//! healing: exactly one container per slot on the engines within 60 s.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::cluster::{
    Cluster, Ctr, Expect, HOSTS, LEASE, Report, Rng, differences, sleeper, wait_for,
};

const STACK: &str = "part";
const HEAL_WITHIN: Duration = Duration::from_secs(60);
const VARIANTS: [&str; 3] = ["cut", "blackhole-in", "blackhole-out"];

/// Cuts (or heals, `on` false) host `i` the way `variant` says.
fn partition(c: &Cluster, variant: &str, i: usize, on: bool) -> Result<()> {
    let op = if on { "-I" } else { "-D" };
    match variant {
        "cut" => c.net(if on { "cut" } else { "heal" }, i),
        "blackhole-in" => c.iptables(i, &[op, "INPUT", "-s", "10.77.0.1", "-j", "DROP"]),
        _ => c.iptables(i, &[op, "OUTPUT", "-d", "10.77.0.1", "-j", "DROP"]),
    }
}

fn running(ps: &[Ctr], host: usize, service: &str) -> BTreeSet<String> {
    ps.iter()
        .filter(|x| x.host == host && x.running && x.stack == STACK && x.service == service)
        .map(|x| x.id.clone())
        .collect()
}

pub fn run(c: &mut Cluster, rep: &mut Report, rounds: u32, short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    let hold = if short {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(600)
    };
    let compose = format!(
        "services:\n{}{}",
        sleeper("web", 6, 1, ""),
        sleeper("db", 1, 1, "    x-drover:\n      singleton: true\n")
    );
    c.deploy_ok(STACK, &compose)?;
    let mut expect = Expect::new();
    expect.insert((STACK.into(), "web".into()), (6, "1".into()));
    expect.insert((STACK.into(), "db".into()), (1, "1".into()));
    let stacks = [STACK.to_string()];
    let first = rng.below(VARIANTS.len() as u64) as usize;
    // A short run (CI) takes two of the three ways, which two turning with the seed.
    let runs = if short {
        2
    } else {
        rounds.max(1) * VARIANTS.len() as u32
    };
    for round in 1..=runs {
        let variant = VARIANTS[(first + round as usize - 1) % VARIANTS.len()];
        if wait_for(Duration::from_secs(90), || {
            differences(&c.all_ps(), &stacks, &expect)
                .is_empty()
                .then_some(())
        })
        .is_none()
        {
            bail!("the stack never ran as deployed before round {round}");
        }
        let ps = c.all_ps();
        let Some(home) = ps
            .iter()
            .find(|x| x.stack == STACK && x.service == "db" && x.running)
            .map(|x| x.host)
        else {
            bail!("no singleton running");
        };
        let kept = running(&ps, home, "web");
        let t = Instant::now();
        partition(c, variant, home, true)?;
        let mut fenced: Option<Duration> = None;
        let mut moved: Option<Duration> = None;
        let mut stopped_web = BTreeSet::new();
        let mut twice = 0usize;
        while t.elapsed() < hold {
            let ps = c.all_ps();
            let web = running(&ps, home, "web");
            for id in kept.difference(&web) {
                if stopped_web.insert(id.clone()) {
                    rep.broken(
                        round,
                        format!(
                            "{variant}: a web replica on the cut host {home} stopped after {:.1} s",
                            t.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
            let homes: Vec<usize> = ps
                .iter()
                .filter(|x| x.stack == STACK && x.service == "db" && x.running)
                .map(|x| x.host)
                .collect();
            if homes.len() > 1 {
                twice += 1;
                if twice == 1 {
                    rep.broken(
                        round,
                        format!(
                            "{variant}: the singleton runs on hosts {homes:?} at once, {:.1} s into the partition",
                            t.elapsed().as_secs_f64()
                        ),
                    );
                }
            }
            if fenced.is_none() && !homes.contains(&home) {
                fenced = Some(t.elapsed());
            }
            if moved.is_none() && homes.iter().any(|h| *h != home) {
                moved = Some(t.elapsed());
            }
            if fenced.is_none() && t.elapsed() > LEASE + Duration::from_secs(4) {
                fenced = Some(Duration::MAX);
                rep.broken(
                    round,
                    format!(
                        "{variant}: the singleton still runs on the cut host {:.1} s into the partition (lease {} s)",
                        t.elapsed().as_secs_f64(),
                        LEASE.as_secs()
                    ),
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        partition(c, variant, home, false)?;
        let healed = Instant::now();
        let mut last = Vec::new();
        let mut dup_after = 0usize;
        let settled = wait_for(HEAL_WITHIN, || {
            let ps = c.all_ps();
            let homes = ps
                .iter()
                .filter(|x| x.stack == STACK && x.service == "db" && x.running)
                .count();
            if homes > 1 {
                dup_after += 1;
                if dup_after == 1 {
                    rep.broken(
                        round,
                        format!("{variant}: the singleton runs twice after healing"),
                    );
                }
            }
            last = differences(&ps, &stacks, &expect);
            last.is_empty().then(|| healed.elapsed())
        });
        if settled.is_none() {
            rep.broken(
                round,
                format!(
                    "{variant}: not one container per slot {} s after healing: {last:?}",
                    HEAL_WITHIN.as_secs()
                ),
            );
        }
        let show = |d: Option<Duration>| match d {
            Some(d) if d != Duration::MAX => format!("{:.1} s", d.as_secs_f64()),
            Some(_) => "never".to_string(),
            None => "not within the partition".to_string(),
        };
        rep.figure(format!(
            "{variant} of host {home} for {} s: web replicas there kept {}/{}; singleton stopped there after {}, running elsewhere after {}, twice {twice} samples; after healing one container per slot in {}",
            hold.as_secs(),
            kept.len() - stopped_web.len(),
            kept.len(),
            show(fenced),
            show(moved),
            settled
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "over 60 s".into())
        ));
        // Every host up again before the next variant.
        if wait_for(Duration::from_secs(60), || {
            (c.hosts_up().ok()? == HOSTS).then_some(())
        })
        .is_none()
        {
            rep.broken(
                round,
                format!("{variant}: host {home} not up 60 s after healing"),
            );
        }
    }
    c.remove_stacks(&stacks)?;
    Ok(())
}
