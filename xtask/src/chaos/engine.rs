//! Engine restarts: host 1's dockerd, running 100 containers (20 in a short run) under its
//! agent, is stopped (SIGTERM by PID: it stops every container) and started again. Each
//! time, within 60 s, the engine must run every slot exactly once again (resync), with no
//! container lost and none made twice (`docker ps -a` holds exactly one container per slot).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::cluster::{Cluster, Report, Rng, differences, duplicates, pct, wait_for};

const STACK: &str = "eng";
const RESYNC_WITHIN: Duration = Duration::from_secs(60);

fn engine(c: &Cluster, how: &str) -> Result<()> {
    crate::run(
        Command::new(crate::root().join("scripts/cluster.sh"))
            .args([how, "1"])
            .arg(c.dir.join("hosts")),
    )?;
    Ok(())
}

pub fn run(c: &mut Cluster, rep: &mut Report, rounds: u32, short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    let n: u32 = if short { 20 } else { 100 };
    // `restart: always`: the default (`no`) leaves a container the engine's shutdown
    // stopped as it is, as compose does.
    let (expect, stacks) = c.fill_host_1(STACK, n, "    restart: always\n")?;
    let mut resync_ms = Vec::new();
    let mut stop_ms = Vec::new();
    let (mut lost, mut dups) = (0usize, 0usize);
    for round in 1..=rounds {
        std::thread::sleep(rng.millis(0, 2000));
        let t = Instant::now();
        engine(c, "engine-stop")?;
        stop_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        // Down for a moment: the agent sees its engine gone.
        std::thread::sleep(rng.millis(500, 3000));
        let t = Instant::now();
        engine(c, "engine-start")?;
        let mut last = Vec::new();
        let back = wait_for(RESYNC_WITHIN, || {
            let ps = c.engine_ps(1)?;
            let (d, _) = duplicates(&c.all_ps());
            if !d.is_empty() {
                dups += d.len();
                rep.broken(round, format!("slots running twice: {d:?}"));
            }
            last = differences(&ps, &stacks, &expect);
            last.is_empty().then(|| t.elapsed())
        });
        match back {
            Some(d) => resync_ms.push(d.as_secs_f64() * 1000.0),
            None => {
                lost += last.len();
                rep.broken(
                    round,
                    format!(
                        "not resynced {} s after the engine restart: {} differences, first {:?}",
                        RESYNC_WITHIN.as_secs(),
                        last.len(),
                        last.iter().take(5).collect::<Vec<_>>()
                    ),
                );
            }
        }
        // Exactly one container per slot on the engine, running or not.
        let mut per_slot: BTreeMap<u32, usize> = BTreeMap::new();
        for x in c.engine_ps(1).unwrap_or_default() {
            if x.stack == STACK {
                *per_slot.entry(x.slot).or_insert(0) += 1;
            }
        }
        let extra: Vec<_> = per_slot.iter().filter(|(_, k)| **k > 1).collect();
        rep.check(
            round,
            extra.is_empty() && per_slot.len() == n as usize,
            || {
                format!(
                    "{} slots have a container, {} of them more than one: {extra:?}",
                    per_slot.len(),
                    extra.len()
                )
            },
        );
        println!(
            "  [engine] round {round}/{rounds}: resync {}",
            back.map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "FAILED".into())
        );
    }
    rep.figure(format!(
        "{rounds} restarts of the engine under {n} containers (stop p50 {:.1} s): resync after start p50 {:.1} s, max {:.1} s (limit 60 s); slots lost {lost}, slots twice {dups}",
        pct(&mut stop_ms, 0.5) / 1000.0,
        pct(&mut resync_ms, 0.5) / 1000.0,
        pct(&mut resync_ms, 1.0) / 1000.0
    ));
    c.remove_stacks(&stacks)?;
    Ok(())
}
