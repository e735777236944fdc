//! Server kill storm: several clients deploy, scale, redeploy and remove their own stacks
//! through the API while the server is `kill -9`ed at a random moment of each round and
//! started again. After each restart: every write the API acknowledged is there (a write
//! whose request got no answer may have happened or not, and whichever did is then
//! expected), the engines converge to exactly those states with no slot running twice, and
//! the containers of a stack nobody touched were never stopped or started.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::cluster::{
    Api, Cluster, Expect, Failed, Report, Rng, differences, duplicates, now_secs, pct, sleeper,
};

const CLIENTS: usize = 3;
const STACKS_PER_CLIENT: usize = 3;
const STEADY: &str = "ksteady";

/// What a stack is: absent, or present with a version and a replica count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Absent,
    Present { version: u64, replicas: u32 },
}

/// A client stack as its client knows it: the last acknowledged state and, after a request
/// without an answer, the state it asked for (which may have happened).
#[derive(Clone, Debug)]
struct Known {
    acked: State,
    maybe: Option<State>,
}

fn compose(version: u64, replicas: u32) -> String {
    format!("services:\n{}", sleeper("w", replicas, version, ""))
}

/// The state of `stack` as the API has it.
pub fn api_state(api: &Api, stack: &str) -> Result<State> {
    let a = api.call("GET", &format!("~/stacks/{stack}"), None)?;
    if a.status == 404 {
        return Ok(State::Absent);
    }
    if !a.ok() {
        anyhow::bail!("GET stack {stack}: {} {}", a.status, a.body);
    }
    let v = a.json()?;
    let replicas = v["services"][0]["replicas"].as_u64().unwrap_or(0) as u32;
    let export = api.call("GET", &format!("~/stacks/{stack}/compose"), None)?;
    let version = export
        .body
        .lines()
        .find(|l| l.contains("chaos.v"))
        .and_then(|l| {
            l.split(':')
                .nth(1)
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(State::Present { version, replicas })
}

/// One client's storm until `stop`: random writes to its own stacks; `ops` counts
/// (acknowledged, refused, unanswered).
fn storm(
    api: Api,
    mut rng: Rng,
    stacks: Arc<Mutex<BTreeMap<String, Known>>>,
    mine: Vec<String>,
    stop: Arc<AtomicBool>,
    lat: Arc<Mutex<Vec<f64>>>,
    counts: Arc<Mutex<[u32; 3]>>,
) {
    while !stop.load(Ordering::Relaxed) {
        // A client thinks a little between writes.
        std::thread::sleep(rng.millis(20, 200));
        let name = &mine[rng.below(mine.len() as u64) as usize];
        let known = stacks.lock().map(|s| s[name].clone()).ok();
        let Some(known) = known else { return };
        if known.maybe.is_some() {
            // Unknown until the server is back and the checker has looked.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let (target, method, path, body) = match known.acked {
            State::Absent => {
                let (version, replicas) = (rng.range(1, 1_000_000), rng.range(1, 3) as u32);
                (
                    State::Present { version, replicas },
                    "POST",
                    "~/stacks".to_string(),
                    Some(serde_json::json!({"name": name, "compose": compose(version, replicas)})),
                )
            }
            State::Present { version, replicas } => match rng.below(10) {
                0..=3 => {
                    let n = (replicas % 3) + 1;
                    (
                        State::Present {
                            version,
                            replicas: n,
                        },
                        "POST",
                        format!("~/stacks/{name}/services/w/scale"),
                        Some(serde_json::json!({"replicas": n})),
                    )
                }
                4..=6 => {
                    let v = version + 1;
                    (
                        State::Present {
                            version: v,
                            replicas,
                        },
                        "POST",
                        "~/stacks".to_string(),
                        Some(serde_json::json!({"name": name, "compose": compose(v, replicas)})),
                    )
                }
                _ => (State::Absent, "DELETE", format!("~/stacks/{name}"), None),
            },
        };
        let t = Instant::now();
        let r = api.try_call(method, &path, body);
        let mut s = match stacks.lock() {
            Ok(s) => s,
            Err(_) => return,
        };
        let k = s.get_mut(name).expect("own stack");
        let mut c = counts.lock().expect("counts");
        match r {
            Ok(a) if a.ok() => {
                k.acked = target;
                c[0] += 1;
                if let Ok(mut l) = lat.lock() {
                    l.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok(_) | Err(Failed::Connect(_)) => {
                c[1] += 1;
                drop(c);
                drop(s);
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(Failed::Unknown(_)) => {
                k.maybe = Some(target);
                c[2] += 1;
            }
        }
    }
}

pub fn run(c: &mut Cluster, rep: &mut Report, rounds: u32, _short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    // Bystanders: a stack nothing changes.
    c.deploy_ok(STEADY, &format!("services:\n{}", sleeper("b", 6, 1, "")))?;
    let names: Vec<String> = (0..CLIENTS * STACKS_PER_CLIENT)
        .map(|i| format!("k{}s{}", i / STACKS_PER_CLIENT, i % STACKS_PER_CLIENT))
        .collect();
    let mut all = names.clone();
    all.push(STEADY.into());
    let stacks: Arc<Mutex<BTreeMap<String, Known>>> = Arc::new(Mutex::new(
        names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    Known {
                        acked: State::Absent,
                        maybe: None,
                    },
                )
            })
            .collect(),
    ));
    let mut expect_steady = Expect::new();
    expect_steady.insert((STEADY.into(), "b".into()), (6, "1".into()));
    let settled = super::cluster::wait_for(Duration::from_secs(60), || {
        differences(&c.all_ps(), &[STEADY.into()], &expect_steady)
            .is_empty()
            .then_some(())
    });
    if settled.is_none() {
        anyhow::bail!("the steady stack never ran");
    }
    let steady_ids: Vec<String> = {
        let mut v: Vec<String> = c
            .all_ps()
            .into_iter()
            .filter(|x| x.stack == STEADY)
            .map(|x| x.id)
            .collect();
        v.sort();
        v
    };
    let mut since = now_secs();
    let lat = Arc::new(Mutex::new(Vec::new()));
    let counts = Arc::new(Mutex::new([0u32; 3]));
    let (mut restart_ms, mut converge_ms) = (Vec::new(), Vec::new());
    let (mut lost, mut dup_seen, mut bystander_events) = (0usize, 0usize, 0usize);
    let mut overlaps = 0usize;
    let mut first_overlap: Option<String> = None;
    for round in 1..=rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let api = c.api_handle()?;
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let mine = names[k * STACKS_PER_CLIENT..(k + 1) * STACKS_PER_CLIENT].to_vec();
                let (api, r, st, stop, lat, counts) = (
                    api.clone(),
                    rng.fork(),
                    stacks.clone(),
                    stop.clone(),
                    lat.clone(),
                    counts.clone(),
                );
                std::thread::spawn(move || storm(api, r, st, mine, stop, lat, counts))
            })
            .collect();
        std::thread::sleep(rng.millis(200, 3000));
        c.kill_server();
        // The clients keep trying for a moment against the dead server.
        std::thread::sleep(rng.millis(0, 500));
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            let _ = h.join();
        }
        restart_ms.push(c.start_server()?.as_secs_f64() * 1000.0);

        // Every acknowledged write is there; an unanswered one is either way.
        let mut expect = expect_steady.clone();
        {
            let mut s = stacks.lock().expect("stacks");
            for (name, k) in s.iter_mut() {
                let seen = api_state(&api, name)?;
                let fine = seen == k.acked || Some(seen) == k.maybe;
                if !fine {
                    lost += 1;
                    rep.broken(
                        round,
                        format!(
                            "{name}: the API acknowledged {:?}{} but has {seen:?} after the restart",
                            k.acked,
                            k.maybe
                                .map(|m| format!(" (or maybe {m:?})"))
                                .unwrap_or_default()
                        ),
                    );
                }
                k.acked = seen;
                k.maybe = None;
                if let State::Present { version, replicas } = seen {
                    expect.insert((name.clone(), "w".into()), (replicas, version.to_string()));
                }
            }
        }
        // The engines converge to exactly that; never a slot twice on the way.
        let t = Instant::now();
        let mut last = Vec::new();
        let mut dup_reported = false;
        let converged = super::cluster::wait_for(Duration::from_secs(60), || {
            let ps = c.all_ps();
            let (d, o) = duplicates(&ps);
            if !d.is_empty() {
                dup_seen += 1;
                if !dup_reported {
                    dup_reported = true;
                    rep.broken(round, format!("slots running twice: {d:?}"));
                }
            }
            if !o.is_empty() {
                overlaps += o.len();
                if first_overlap.is_none() {
                    first_overlap = Some(o[0].clone());
                }
            }
            last = differences(&ps, &all, &expect);
            last.is_empty().then(|| t.elapsed())
        });
        match converged {
            Some(d) => converge_ms.push(d.as_secs_f64() * 1000.0),
            None => rep.broken(
                round,
                format!("engines not converged 60 s after the restart: {last:?}"),
            ),
        }
        // The bystanders were never touched.
        let until = now_secs();
        let mut ids = Vec::new();
        for i in 1..=super::cluster::HOSTS {
            for (name, action) in c.engine_events(i, since, until)? {
                if name.starts_with(&format!("{STEADY}-")) {
                    bystander_events += 1;
                    rep.broken(
                        round,
                        format!("untouched container {name}: {action} on host {i}"),
                    );
                }
            }
        }
        ids.extend(
            c.all_ps()
                .into_iter()
                .filter(|x| x.stack == STEADY && x.running)
                .map(|x| x.id),
        );
        ids.sort();
        rep.check(round, ids == steady_ids, || {
            format!("the untouched stack's containers changed: {ids:?}")
        });
        since = until;
        if round % 10 == 0 || round == rounds {
            let cnt = *counts.lock().expect("counts");
            println!(
                "  [server-kill] round {round}/{rounds}: {} writes acknowledged, {} refused or not connected, {} unanswered so far",
                cnt[0], cnt[1], cnt[2]
            );
        }
    }
    let cnt = *counts.lock().expect("counts");
    let mut l = lat.lock().expect("lat").clone();
    rep.figure(format!(
        "{rounds} kill -9 of the server during a storm of {CLIENTS} clients: {} writes acknowledged (p50 {:.0} ms, p99 {:.0} ms), {} unanswered (either outcome accepted), {} not connected or refused",
        cnt[0],
        pct(&mut l, 0.5),
        pct(&mut l, 0.99),
        cnt[2],
        cnt[1]
    ));
    rep.figure(format!(
        "acknowledged writes lost: {lost}; samples with a slot (same version) running twice: {dup_seen}; start/stop events of untouched containers: {bystander_events}"
    ));
    rep.figure(format!(
        "samples with a removed or replaced container still stopping while its slot's successor (another version) runs elsewhere: {overlaps}{}",
        first_overlap.map(|o| format!(", e.g. {o}")).unwrap_or_default()
    ));
    rep.figure(format!(
        "restart to ready: p50 {:.0} ms, max {:.0} ms; engines converged after the restart: p50 {:.1} s, max {:.1} s",
        pct(&mut restart_ms, 0.5),
        pct(&mut restart_ms, 1.0),
        pct(&mut converge_ms, 0.5) / 1000.0,
        pct(&mut converge_ms, 1.0) / 1000.0
    ));
    all.retain(|_| true);
    c.remove_stacks(&all)?;
    Ok(())
}
