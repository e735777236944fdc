//! Agent kill storm: host 1 runs 100 containers (20 in a short run); its agent is `kill
//! -9`ed, kept down for a random moment and started again, round after round. Each time
//! its session must be back (the host `up` in the API) within 10 s of the restart, and the
//! engine must show not one container stopped, started, made or removed: an agent that
//! starts again adopts what runs.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::cluster::{Cluster, Report, Rng, now_secs, pct, wait_every};

const STACK: &str = "akill";
const BACK_WITHIN: Duration = Duration::from_secs(10);

pub fn run(c: &mut Cluster, rep: &mut Report, rounds: u32, short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    let n: u32 = if short { 20 } else { 100 };
    let t = Instant::now();
    let (_, stacks) = c.fill_host_1(STACK, n, "")?;
    rep.figure(format!(
        "{n} containers running on host 1 after {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let ids = |c: &Cluster| -> Vec<String> {
        let mut v: Vec<String> = c
            .engine_ps(1)
            .unwrap_or_default()
            .into_iter()
            .filter(|x| x.stack == STACK && x.running)
            .map(|x| x.id)
            .collect();
        v.sort();
        v
    };
    let before = ids(c);
    let since = now_secs();
    let mut back_ms = Vec::new();
    let (mut restarts, mut slow) = (0usize, 0usize);
    for round in 1..=rounds {
        c.kill_agent(1);
        std::thread::sleep(rng.millis(200, 3000));
        let state = c.host_state(1).unwrap_or_default();
        rep.check(round, state != "up", || {
            format!("host 1 still `up` in the API with its agent dead ({state})")
        });
        let t = Instant::now();
        c.start_agent(1)?;
        // Looked at every 10 ms: the session is usually back within a tenth of a second.
        match wait_every(
            BACK_WITHIN + Duration::from_secs(20),
            Duration::from_millis(10),
            || (c.host_state(1)? == "up").then(|| t.elapsed()),
        ) {
            Some(d) => {
                back_ms.push(d.as_secs_f64() * 1000.0);
                if d > BACK_WITHIN {
                    slow += 1;
                }
                rep.target(round, d <= BACK_WITHIN, || {
                    format!("session back only after {:.1} s", d.as_secs_f64())
                });
            }
            None => {
                slow += 1;
                rep.broken(round, "session not back within 30 s".to_string());
            }
        }
        // The engine's own record: nothing of the stack stopped or started.
        let events = c.engine_events(1, since, now_secs())?;
        let touched: Vec<_> = events
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{STACK}-")))
            .collect();
        if touched.len() > restarts {
            rep.broken(
                round,
                format!("containers touched: {:?}", &touched[restarts..]),
            );
            restarts = touched.len();
        }
        if round % 10 == 0 || round == rounds {
            let mut b = back_ms.clone();
            println!(
                "  [agent-kill] round {round}/{rounds}: session back p50 {:.2} s, max {:.2} s; container events {restarts}",
                pct(&mut b, 0.5) / 1000.0,
                pct(&mut b, 1.0) / 1000.0
            );
        }
    }
    let after = ids(c);
    rep.check(rounds, after == before, || {
        format!(
            "the running containers changed: {} before, {} after, {} kept",
            before.len(),
            after.len(),
            after.iter().filter(|i| before.contains(i)).count()
        )
    });
    rep.figure(format!(
        "{rounds} kill -9 of the agent of {n} containers (down 0.2-3 s each): container start/stop/create/remove events {restarts}; session back after restart p50 {:.2} s, p99 {:.2} s, max {:.2} s ({slow} over 10 s)",
        pct(&mut back_ms, 0.5) / 1000.0,
        pct(&mut back_ms, 0.99) / 1000.0,
        pct(&mut back_ms, 1.0) / 1000.0
    ));
    c.remove_stacks(&stacks)?;
    Ok(())
}
