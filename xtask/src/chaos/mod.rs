//! `cargo run --release -p xtask -- chaos [--scenario NAME] [--rounds N] [--seed S] [--short]`:
//! the chaos and abuse suite. Each scenario is bounded in time, cleans up after itself, prints
//! its figures and every invariant it saw broken; the run fails when one was, and names the
//! command and seed that reproduce it. Without `--scenario` every scenario runs; without
//! `--seed` one is drawn from the clock (and printed); without `--rounds` each runs its full
//! rounds, or its short ones with `--short` (what CI runs).
//!
//! Scenarios (one file each):
//! - `hostile` (`hostile.rs`): the parsers fed hostile input: fuzzing when nightly and
//!   cargo-fuzz are there, and always a replay of every corpus input (no panic, each
//!   refused within 100 ms and 64 MiB of heap). Needs no cluster.
//! - the fault scenarios (`faults.rs` runs them on one cluster of `cluster.rs`):
//!   `server-kill`, `agent-kill`, `partition`, `restarts`, `engine`, `disk`,
//!   `slow-clients`.

use anyhow::{Context, Result, bail};

mod agent_kill;
mod cluster;
mod disk;
mod engine;
mod faults;
pub mod hostile;
mod partition;
mod restarts;
mod server_kill;
mod slow_clients;

/// What the hostile scenario is run with.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// How much of it to run: fuzzing rounds of 10 s per target (0: the replay only).
    pub rounds: u32,
    /// Where its randomness starts (`--seed`).
    pub seed: u64,
}

/// The hostile scenario's name, and its full and short rounds.
const HOSTILE: (&str, u32, u32) = ("hostile", 3, 0);

const USAGE: &str = "usage: chaos [--scenario NAME] [--rounds N] [--seed S] [--short]";

pub fn run(args: &[String]) -> Result<()> {
    let mut only: Option<String> = None;
    let mut rounds: Option<u32> = None;
    let mut seed: Option<u64> = None;
    let mut short = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{arg} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--scenario" => only = Some(value()?.clone()),
            "--rounds" => rounds = Some(value()?.parse().context("--rounds: a number")?),
            "--seed" => seed = Some(value()?.parse().context("--seed: a number")?),
            "--short" => short = true,
            other => bail!("chaos: unknown argument {other}; {USAGE}"),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000)
            .unwrap_or(1)
    });
    let faults_names: Vec<&str> = faults::SCENARIOS.iter().map(|s| s.name).collect();
    if let Some(o) = &only
        && o != HOSTILE.0
        && !faults_names.contains(&o.as_str())
    {
        bail!(
            "chaos: no scenario {o:?}; there are: {}, {}",
            HOSTILE.0,
            faults_names.join(", ")
        );
    }
    let mut failed = Vec::new();
    if only.as_deref().is_none_or(|o| o == HOSTILE.0) {
        let (name, full, short_rounds) = HOSTILE;
        let n = rounds.unwrap_or(if short { short_rounds } else { full });
        println!("chaos: {name} ({n} rounds, seed {seed})");
        let started = std::time::Instant::now();
        let broken = hostile::run(&Opts { rounds: n, seed }).context("scenario hostile")?;
        println!(
            "chaos: {name} done in {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            if broken.is_empty() {
                "every invariant held".to_string()
            } else {
                format!("{} broken", broken.len())
            }
        );
        for b in &broken {
            println!(
                "    BROKEN: {b} (reproduce: cargo run --release -p xtask -- chaos --scenario {name} --rounds {n} --seed {seed})"
            );
        }
        if !broken.is_empty() {
            failed.push(name);
        }
    }
    if only.as_deref() != Some(HOSTILE.0) && !faults::run(only.as_deref(), rounds, seed, short)? {
        failed.push("the fault scenarios");
    }
    if !failed.is_empty() {
        bail!(
            "chaos: invariants broken in {} (see above)",
            failed.join(" and ")
        );
    }
    Ok(())
}
