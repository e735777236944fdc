//! Control-plane restarts: the server is stopped (SIGTERM and `kill -9` in turn) and started
//! again, round after round, with every agent healthy. No host may be marked down (the API's
//! host states, sampled every 200 ms from the stop until every host is up again) and no
//! container may move or restart (each engine's containers and its start/stop events).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::cluster::{
    Cluster, Expect, HOSTS, Report, Rng, differences, now_secs, pct, sleeper, wait_for,
};

const STACK: &str = "rsteady";

pub fn run(c: &mut Cluster, rep: &mut Report, rounds: u32, short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    let per = if short { 3 } else { 10 };
    let mut compose = String::from("services:\n");
    let mut expect = Expect::new();
    for s in ["a", "b", "c"] {
        compose.push_str(&sleeper(s, per, 1, ""));
        expect.insert((STACK.into(), s.into()), (per, "1".into()));
    }
    c.deploy_ok(STACK, &compose)?;
    let stacks = [STACK.to_string()];
    if wait_for(Duration::from_secs(120), || {
        differences(&c.all_ps(), &stacks, &expect)
            .is_empty()
            .then_some(())
    })
    .is_none()
    {
        bail!("the stack never ran");
    }
    let placement = |c: &Cluster| -> BTreeMap<String, (usize, String)> {
        c.all_ps()
            .into_iter()
            .filter(|x| x.stack == STACK && x.running)
            .map(|x| (x.name, (x.host, x.id)))
            .collect()
    };
    let before = placement(c);
    let since = now_secs();
    let (mut down_seen, mut moved, mut events_seen) = (0usize, 0usize, 0usize);
    let (mut ready_ms, mut back_ms) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let graceful = round % 2 == 0;
        if graceful {
            c.stop_server();
        } else {
            c.kill_server();
        }
        std::thread::sleep(rng.millis(0, 3000));
        ready_ms.push(c.start_server()?.as_secs_f64() * 1000.0);
        let t = Instant::now();
        let mut states_seen = BTreeMap::new();
        let back = wait_for(Duration::from_secs(30), || {
            let states = c.host_states().ok()?;
            for (id, s) in &states {
                *states_seen.entry((id.clone(), s.clone())).or_insert(0) += 1;
            }
            (states.len() == HOSTS && states.iter().all(|(_, s)| s == "up")).then(|| t.elapsed())
        });
        // Keep watching a little: a host must not go down later either.
        let watch = Instant::now();
        while watch.elapsed() < Duration::from_millis(1000) {
            if let Ok(states) = c.host_states() {
                for (id, s) in states {
                    *states_seen.entry((id, s)).or_insert(0) += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let downs: Vec<_> = states_seen
            .keys()
            .filter(|(_, s)| s == "down")
            .map(|(id, _)| id[..12.min(id.len())].to_string())
            .collect();
        if !downs.is_empty() {
            down_seen += downs.len();
            rep.broken(
                round,
                format!("hosts marked down after a server restart: {downs:?}"),
            );
        }
        match back {
            Some(d) => back_ms.push(d.as_secs_f64() * 1000.0),
            None => rep.broken(round, "hosts not all up 30 s after the restart".to_string()),
        }
        let now = placement(c);
        let diff: Vec<_> = before
            .iter()
            .filter(|(n, v)| now.get(*n) != Some(v))
            .map(|(n, _)| n.clone())
            .collect();
        if diff.len() > moved {
            rep.broken(round, format!("containers moved or replaced: {diff:?}"));
        }
        moved = moved.max(diff.len());
        let until = now_secs();
        let mut evs = 0;
        for i in 1..=HOSTS {
            evs += c
                .engine_events(i, since, until)?
                .iter()
                .filter(|(n, _)| n.starts_with(&format!("{STACK}-")))
                .count();
        }
        if evs > events_seen {
            rep.broken(
                round,
                format!("{} container start/stop events", evs - events_seen),
            );
            events_seen = evs;
        }
        if round % 10 == 0 || round == rounds {
            println!(
                "  [restarts] round {round}/{rounds}: hosts down {down_seen}, containers moved {moved}, events {events_seen}"
            );
        }
    }
    rep.figure(format!(
        "{rounds} server restarts (SIGTERM and kill -9 in turn, down 0-3 s) with {} containers on {HOSTS} hosts: hosts marked down {down_seen}, containers moved {moved}, container start/stop events {events_seen}",
        before.len()
    ));
    rep.figure(format!(
        "server start to ready p50 {:.0} ms; to every host up again p50 {:.2} s, max {:.2} s",
        pct(&mut ready_ms, 0.5),
        pct(&mut back_ms, 0.5) / 1000.0,
        pct(&mut back_ms, 1.0) / 1000.0
    ));
    c.remove_stacks(&stacks)?;
    Ok(())
}
