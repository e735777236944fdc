//! The fault scenarios of `xtask chaos`: kills, partitions, restarts, a full disk, slow
//! clients, each on a three-host cluster of `scripts/cluster.sh` (see `cluster.rs`). One
//! cluster serves every scenario of a run; each scenario removes what it deployed and leaves
//! every host up. A scenario prints its figures as it goes and every invariant it saw
//! broken with the seed that reproduces it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};

use super::cluster::{Cluster, Report};

/// A scenario: its name, its full and short (CI) rounds, and what runs it.
pub struct Scenario {
    pub name: &'static str,
    pub full: u32,
    pub short: u32,
    pub run: fn(&mut Cluster, &mut Report, u32, bool) -> Result<()>,
}

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "server-kill",
        full: 100,
        short: 3,
        run: super::server_kill::run,
    },
    Scenario {
        name: "agent-kill",
        full: 50,
        short: 3,
        run: super::agent_kill::run,
    },
    Scenario {
        name: "partition",
        full: 1,
        short: 1,
        run: super::partition::run,
    },
    Scenario {
        name: "restarts",
        full: 50,
        short: 3,
        run: super::restarts::run,
    },
    Scenario {
        name: "engine",
        full: 6,
        short: 1,
        run: super::engine::run,
    },
    Scenario {
        name: "disk",
        full: 5,
        short: 1,
        run: super::disk::run,
    },
    Scenario {
        name: "slow-clients",
        full: 1,
        short: 1,
        run: super::slow_clients::run,
    },
];

/// The drover binary: `DROVER_BIN`, else the release build.
fn drover() -> Result<PathBuf> {
    match std::env::var_os("DROVER_BIN") {
        Some(b) => Ok(PathBuf::from(b)),
        None => crate::build_drover(),
    }
}

/// Runs one scenario (or all), `rounds` each (else full or short), from `seed`. Returns
/// whether every invariant held.
pub fn run(scenario: Option<&str>, rounds: Option<u32>, seed: u64, short: bool) -> Result<bool> {
    let chosen: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| scenario.is_none_or(|n| n == s.name))
        .collect();
    if chosen.is_empty() {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        bail!(
            "no fault scenario {scenario:?}; there are {}",
            names.join(", ")
        );
    }
    let bin = drover()?;
    for img in ["drover-test/app:1", "drover-test/busybox:1"] {
        crate::run(std::process::Command::new("docker").args(["image", "inspect", img]))
            .map_err(|_| anyhow::anyhow!("{img} missing: run scripts/build-test-images.sh"))?;
    }
    let start = Instant::now();
    let mut c = Cluster::start(&bin)?;
    println!(
        "chaos: cluster of {} hosts up in {:.1} s",
        super::cluster::HOSTS,
        start.elapsed().as_secs_f64()
    );
    let mut reports = Vec::new();
    for (k, s) in chosen.iter().enumerate() {
        // Each scenario its own seed, derived from the run's, printed so it can be run alone.
        let sseed = if chosen.len() == 1 {
            seed
        } else {
            seed.wrapping_add(k as u64)
        };
        let n = rounds.unwrap_or(if short { s.short } else { s.full });
        println!(
            "chaos: {} ({n} rounds, seed {sseed}{})",
            s.name,
            if short { ", short" } else { "" }
        );
        let t = Instant::now();
        let mut report = Report::new(s.name, sseed, n, short);
        let outcome = (s.run)(&mut c, &mut report, n, short);
        if let Err(e) = &outcome {
            report.broken(0, format!("scenario failed: {e:#}"));
        }
        // Whatever happened, every host up again before the next one.
        if let Err(e) = c.settle() {
            report.broken(0, format!("cluster did not recover: {e:#}"));
            drop(c);
            c = Cluster::start(&bin)?;
        }
        println!(
            "chaos: {} done in {:.1} s: {}",
            s.name,
            t.elapsed().as_secs_f64(),
            if report.broken.is_empty() {
                "every invariant held".to_string()
            } else {
                format!("{} broken", report.broken.len())
            }
        );
        reports.push(report);
    }
    drop(c);
    println!("\nchaos summary ({:.0} s):", start.elapsed().as_secs_f64());
    let mut ok = true;
    for r in &reports {
        println!(
            "- {} ({} rounds, seed {}): {}",
            r.name,
            r.rounds,
            r.seed,
            if r.broken.is_empty() { "ok" } else { "BROKEN" }
        );
        for f in &r.figures {
            println!("    {f}");
        }
        for b in &r.broken {
            ok = false;
            println!(
                "    BROKEN: {b} (reproduce: cargo run --release -p xtask -- chaos --scenario {} --rounds {} --seed {}{})",
                r.name,
                r.rounds,
                r.seed,
                if short { " --short" } else { "" }
            );
        }
    }
    Ok(ok)
}
