//! `cargo run --release -p xtask -- chaos [--scenario NAME] [--rounds N] [--seed S]`: the
//! chaos and abuse suite. Each scenario is bounded in time, cleans up after itself, prints
//! its figures and returns every invariant it saw broken; the run fails when one was, and
//! names the seed that reproduces it. Without `--scenario` every scenario runs; without
//! `--seed` one is drawn from the clock (and printed).
//!
//! Scenarios (one file each):
//! - `hostile` (`hostile.rs`): the parsers fed hostile input: fuzzing when nightly and
//!   cargo-fuzz are there, and always a replay of every corpus input (no panic, each
//!   refused within 100 ms and 64 MiB of heap).

use anyhow::{Context, Result, bail};

pub mod hostile;

/// What a scenario is run with.
#[derive(Debug, Clone, Copy)]
pub struct Opts {
    /// How much of it to run: each scenario says what one round is (`--rounds`, default 1).
    pub rounds: u32,
    /// Where its randomness starts (`--seed`).
    pub seed: u64,
}

/// A scenario: its figures printed as it goes, the invariants it saw broken returned.
type Scenario = fn(&Opts) -> Result<Vec<String>>;

const SCENARIOS: &[(&str, Scenario)] = &[("hostile", hostile::run)];

pub fn run(args: &[String]) -> Result<()> {
    let mut only: Option<String> = None;
    let mut rounds = 1;
    let mut seed: Option<u64> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--scenario" => only = Some(value()?.clone()),
            "--rounds" => rounds = value()?.parse().context("--rounds: a number")?,
            "--seed" => seed = Some(value()?.parse().context("--seed: a number")?),
            other => bail!(
                "chaos: unknown argument {other}; usage: chaos [--scenario NAME] [--rounds N] [--seed S]"
            ),
        }
    }
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 1_000_000)
            .unwrap_or(1)
    });
    let selected: Vec<&(&str, Scenario)> = SCENARIOS
        .iter()
        .filter(|(name, _)| only.as_deref().is_none_or(|o| o == *name))
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
        bail!(
            "chaos: no scenario {:?}; there are: {}",
            only.unwrap_or_default(),
            names.join(", ")
        );
    }
    let opts = Opts { rounds, seed };
    let mut failed = Vec::new();
    for (name, scenario) in selected {
        println!("== chaos {name}: rounds {rounds}, seed {seed}");
        let started = std::time::Instant::now();
        let broken = scenario(&opts).with_context(|| format!("scenario {name}"))?;
        println!(
            "== chaos {name}: {} in {:.1} s",
            if broken.is_empty() {
                "no invariant broken".to_string()
            } else {
                format!("{} invariant(s) broken", broken.len())
            },
            started.elapsed().as_secs_f64()
        );
        for b in &broken {
            println!("BROKEN {name}: {b}");
        }
        if !broken.is_empty() {
            failed.push(format!(
                "{name} (reproduce: cargo run --release -p xtask -- chaos --scenario {name} --rounds {rounds} --seed {seed})"
            ));
        }
    }
    if !failed.is_empty() {
        bail!("chaos: invariants broken in {}", failed.join(", "));
    }
    Ok(())
}
