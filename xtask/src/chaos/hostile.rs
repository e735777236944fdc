//! Scenario `hostile`: the parsers Drover runs on input from outside (the compose loader,
//! `.env`, interpolation, the agent protocol, the REST request bodies, `x-drover.expose`)
//! fed hostile input. The targets are `fuzz/src/lib.rs`, compiled in here too.
//!
//! 1. Fuzzing, when `cargo +nightly` and `cargo fuzz` are there and `--rounds` is not 0:
//!    each target runs under libFuzzer for `rounds x 10 s` (`-seed`, libFuzzer's own limits
//!    `-rss_limit_mb=2048 -timeout=1`), from the committed corpus `fuzz/corpus/TARGET`,
//!    into a corpus of its own in a temporary directory (removed afterwards); findings go to
//!    `fuzz/artifacts/TARGET`.
//! 2. The replay, on stable (the check CI relies on): every input of the committed corpus,
//!    of that run's corpus and of `fuzz/artifacts` through its target, in a child process
//!    (`xtask chaos-replay`), each input on a 2 MiB stack (a tokio worker's, where the
//!    server parses; 16 MiB in a debug build) with its CPU time (counted by the kernel, to
//!    a scheduler tick where it counts so) and its peak heap measured (the counting
//!    allocator in `main.rs`). Broken: a panic, a process that dies or hangs, an input over 100 ms (the
//!    least of three runs when the first is over; release builds only) or over 64 MiB of
//!    heap. Inputs: the corpus files, then big generated ones ([`generated`]).
//!
//! The API's own contract (schemathesis against a running server) is
//! `scripts/schemathesis.sh`, run by `scripts/test.sh`: not run again here.
//!
//! `xtask chaos-seed` writes the seed corpus from the repository's fixtures (see [`seed`]).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Opts;

#[path = "../../../fuzz/src/lib.rs"]
mod harness;

/// Each input is refused (or accepted) within this...
const TIME_LIMIT: Duration = Duration::from_millis(100);
/// ...in a release build: a debug one (as in `scripts/test.sh`) shows the times only.
const TIME_HELD: bool = !cfg!(debug_assertions);
/// ...and with at most this much heap at its peak.
const HEAP_LIMIT: usize = 64 << 20;
/// An input still running after this is hung: the replay stops there.
const HANG_AFTER: Duration = Duration::from_secs(10);
/// Seconds of fuzzing per target and round.
const ROUND_SECS: u32 = 10;
/// The stack each input is parsed on: a tokio worker's, where the server parses, in a
/// release build; a debug build's frames are many times bigger.
const STACK: usize = if cfg!(debug_assertions) {
    16 << 20
} else {
    2 << 20
};

fn fuzz_dir() -> PathBuf {
    crate::root().join("fuzz")
}

pub fn run(opts: &Opts) -> Result<Vec<String>> {
    let mut broken = Vec::new();
    let fuzzing = opts.rounds > 0 && fuzzer_available();
    if opts.rounds == 0 {
        println!("hostile: --rounds 0: the replay only");
    } else if !fuzzing {
        println!(
            "hostile: no `cargo +nightly fuzz` here (rustup toolchain install nightly; cargo install cargo-fuzz): the replay only"
        );
    }
    if !TIME_HELD {
        println!(
            "hostile: a debug build: times are shown, not held to 100 ms (--release holds them)"
        );
    }
    let work = std::env::temp_dir().join(format!("drover-chaos-hostile-{}", std::process::id()));
    if fuzzing {
        build_fuzzers()?;
    }
    let result = (|| -> Result<()> {
        for (target, _) in harness::TARGETS {
            let mut dirs = vec![fuzz_dir().join("corpus").join(target)];
            let mut slow = Vec::new();
            if fuzzing {
                let corpus = work.join(target);
                std::fs::create_dir_all(&corpus)?;
                let (found, timeouts) = fuzz(target, &corpus, opts)?;
                broken.extend(found);
                slow = timeouts;
                dirs.push(corpus);
            }
            let artifacts = fuzz_dir().join("artifacts").join(target);
            if artifacts.is_dir() {
                dirs.push(artifacts);
            }
            let replayed = replay(target, &dirs)?;
            // libFuzzer's timeouts are wall-clock seconds of an instrumented build on a
            // machine that may be busy: the replay's CPU time judges them.
            for path in slow {
                let shown = path.display().to_string();
                if replayed.iter().any(|b| b.contains(&shown)) {
                    broken.push(format!(
                        "{target}: libFuzzer timed out on {shown} (seed {}), and so did the replay",
                        opts.seed
                    ));
                } else {
                    println!(
                        "hostile fuzz {target}: libFuzzer timed out on {} (1 s of wall clock); its replay kept within the limits: not a finding, removed",
                        short(&shown)
                    );
                    let _ = std::fs::remove_file(&path);
                }
            }
            broken.extend(replayed);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&work);
    result?;
    println!(
        "hostile: the API's contract (schemathesis against a running server, every check) is scripts/schemathesis.sh, run by scripts/test.sh"
    );
    Ok(broken)
}

fn fuzzer_available() -> bool {
    let ok = |args: &[&str]| {
        Command::new("cargo")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(&["+nightly", "--version"]) && ok(&["+nightly", "fuzz", "--version"])
}

fn build_fuzzers() -> Result<()> {
    println!("hostile: building the fuzz targets (cargo +nightly fuzz build)");
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "build"])
        .current_dir(crate::root())
        .stdout(Stdio::null())
        .status()
        .context("cargo +nightly fuzz build")?;
    if !status.success() {
        bail!("cargo +nightly fuzz build failed ({status})");
    }
    Ok(())
}

/// Runs `target` under libFuzzer: its findings as broken invariants, and apart from them
/// the inputs it found slow (`timeout-*`, `slow-unit-*`), which the replay judges.
fn fuzz(target: &str, corpus: &Path, opts: &Opts) -> Result<(Vec<String>, Vec<PathBuf>)> {
    let artifacts = fuzz_dir().join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let before = list(&artifacts);
    // libFuzzer's seed is 32 bits, and 0 would be a random one.
    let seed = (opts.seed % u64::from(u32::MAX)).max(1);
    let secs = opts.rounds * ROUND_SECS;
    let out = Command::new("cargo")
        .args(["+nightly", "fuzz", "run", target])
        .arg(corpus)
        .arg(fuzz_dir().join("corpus").join(target))
        .arg("--")
        .arg(format!("-seed={seed}"))
        .arg(format!("-max_total_time={secs}"))
        .args(["-rss_limit_mb=2048", "-timeout=1", "-print_final_stats=1"])
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(crate::root())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cargo fuzz run {target}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (slow, found): (Vec<PathBuf>, Vec<PathBuf>) = list(&artifacts)
        .into_iter()
        .filter(|p| !before.contains(p))
        .partition(|p| {
            let name = file_name(p);
            name.starts_with("timeout-") || name.starts_with("slow-unit-")
        });
    println!(
        "hostile fuzz {target:<12} {secs} s, libFuzzer seed {seed}: {} executions, {} new corpus entries, {} crashes, {} timeouts",
        stat("number_of_executed_units"),
        stat("new_units_added"),
        found.len(),
        slow.len()
    );
    let mut broken: Vec<String> = found
        .iter()
        .map(|p| {
            format!(
                "{target}: libFuzzer found {} (seed {seed}; reproduce: cargo +nightly fuzz run {target} {})",
                p.display(),
                p.display()
            )
        })
        .collect();
    if !out.status.success() && found.is_empty() && slow.is_empty() {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        broken.push(format!(
            "{target}: libFuzzer failed ({}) without an artifact (seed {seed}):\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok((broken, slow))
}

/// The files of `dir`, sorted (none when it does not exist).
fn list(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// What the replay saw of one input.
struct Seen {
    path: String,
    nanos: u64,
    bytes: u64,
}

/// Replays every file of `dirs` through `target` in a child process; prints the figures
/// and returns what broke.
fn replay(target: &str, dirs: &[PathBuf]) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("the xtask binary")?;
    let mut child = Command::new(exe)
        .arg("chaos-replay")
        .arg(target)
        .args(dirs)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the replay")?;
    let stdout = child.stdout.take().context("the replay's output")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut broken = Vec::new();
    let mut seen: Vec<Seen> = Vec::new();
    let mut current: Option<String> = None;
    let mut panics = 0;
    loop {
        match rx.recv_timeout(HANG_AFTER) {
            Ok(line) => {
                if let Some(path) = line.strip_prefix("> ") {
                    current = Some(path.to_string());
                    continue;
                }
                let path = current.take().unwrap_or_default();
                let mut parts = line.splitn(4, ' ');
                let (kind, nanos, bytes, message) =
                    (parts.next(), parts.next(), parts.next(), parts.next());
                let nanos: u64 = nanos.and_then(|n| n.parse().ok()).unwrap_or(0);
                let bytes: u64 = bytes.and_then(|n| n.parse().ok()).unwrap_or(0);
                if kind == Some("!") {
                    panics += 1;
                    broken.push(format!(
                        "{target}: {path}: panicked: {}",
                        message.unwrap_or("")
                    ));
                }
                if TIME_HELD && Duration::from_nanos(nanos) > TIME_LIMIT {
                    broken.push(format!(
                        "{target}: {path}: took {:.1} ms of CPU (limit {} ms)",
                        nanos as f64 / 1e6,
                        TIME_LIMIT.as_millis()
                    ));
                }
                if bytes > HEAP_LIMIT as u64 {
                    broken.push(format!(
                        "{target}: {path}: peaked at {:.1} MiB of heap (limit {} MiB)",
                        bytes as f64 / 1048576.0,
                        HEAP_LIMIT >> 20
                    ));
                }
                seen.push(Seen { path, nanos, bytes });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                broken.push(format!(
                    "{target}: {}: still running after {} s",
                    current.as_deref().unwrap_or("?"),
                    HANG_AFTER.as_secs()
                ));
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait().context("waiting for the replay")?;
    let _ = reader.join();
    if !status.success() {
        if let Some(path) = current {
            broken.push(format!("{target}: {path}: the process died ({status})"));
        } else if broken.is_empty() {
            broken.push(format!("{target}: the replay failed ({status})"));
        }
    }
    let slowest = seen.iter().max_by_key(|s| s.nanos);
    let biggest = seen.iter().max_by_key(|s| s.bytes);
    println!(
        "hostile replay {target:<12} {:>5} inputs, {panics} panics, max {:>6.2} ms CPU{}, max heap {:>6.2} MiB{}",
        seen.len(),
        slowest.map_or(0.0, |s| s.nanos as f64 / 1e6),
        slowest.map_or(String::new(), |s| format!(" ({})", short(&s.path))),
        biggest.map_or(0.0, |s| s.bytes as f64 / 1048576.0),
        biggest.map_or(String::new(), |s| format!(" ({})", short(&s.path))),
    );
    Ok(broken)
}

/// A path as the figures show it: relative to the repository when inside it.
fn short(path: &str) -> String {
    let root = crate::root();
    Path::new(path)
        .strip_prefix(&root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// The last panic's message, kept by the replay's panic hook.
static PANIC: Mutex<String> = Mutex::new(String::new());

/// `xtask chaos-replay TARGET DIR...`: the child process of [`replay`]. For each file:
/// `> PATH`, then `= NANOS BYTES` or `! NANOS BYTES MESSAGE` (a panic).
pub fn worker(args: &[String]) -> Result<()> {
    let Some((target, dirs)) = args.split_first() else {
        bail!("usage: chaos-replay TARGET DIR...");
    };
    let Some(&(_, parse)) = harness::TARGETS.iter().find(|(n, _)| n == target) else {
        bail!("no fuzz target {target}");
    };
    let files: Vec<PathBuf> = dirs.iter().flat_map(|d| list(Path::new(d))).collect();
    let generated = generated(target);
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut m) = PANIC.lock() {
            *m = info.to_string().replace('\n', " | ");
        }
    }));
    let thread = std::thread::Builder::new()
        .name("replay".into())
        .stack_size(STACK)
        .spawn(move || -> Result<()> {
            let mut out = std::io::stdout().lock();
            let read = files.into_iter().map(|f| {
                let data = std::fs::read(&f);
                (f.display().to_string(), data)
            });
            let made = generated
                .into_iter()
                .map(|(name, data)| (format!("generated:{name}"), Ok(data)));
            for (name, data) in read.chain(made) {
                let data = data.with_context(|| format!("reading {name}"))?;
                writeln!(out, "> {name}")?;
                out.flush()?;
                let (mut nanos, bytes, panicked) = measure(parse, &data);
                // A slow first run may be the machine: the least of three decides.
                if !panicked && nanos > TIME_LIMIT.as_nanos() as u64 {
                    for _ in 0..2 {
                        nanos = nanos.min(measure(parse, &data).0);
                    }
                }
                if panicked {
                    let message = PANIC.lock().map(|m| m.clone()).unwrap_or_default();
                    writeln!(out, "! {nanos} {bytes} {message}")?;
                } else {
                    writeln!(out, "= {nanos} {bytes}")?;
                }
                out.flush()?;
            }
            Ok(())
        })
        .context("the replay thread")?;
    match thread.join() {
        Ok(result) => result,
        Err(_) => bail!("the replay thread panicked"),
    }
}

/// CPU time of the calling thread so far (`/proc/thread-self/schedstat`).
fn thread_cpu_nanos() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Hostile inputs too big for a corpus (and for libFuzzer's input sizes), made afresh for
/// each replay: up to the limits the real callers allow (compose files 4 MiB, request
/// bodies 8 MiB, agent messages 16 MiB), built to hit what a parser repeats or nests.
fn generated(target: &str) -> Vec<(&'static str, Vec<u8>)> {
    let nest = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
    let unset_names = |n: usize| {
        (0..n)
            .map(|i| format!("$v{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match target {
        "compose" => {
            let mut bomb =
                String::from("x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
            for i in 1..10 {
                let refs = vec![format!("*l{}", i - 1); 10].join(", ");
                bomb.push_str(&format!("x-l{i}: &l{i} [{refs}]\n"));
            }
            bomb.push_str("services:\n  web:\n    image: nginx\n    x-boom: *l9\n");
            vec![
                ("alias-bomb-1e9", bomb.into_bytes()),
                (
                    "deep-flow-10000",
                    format!("services: {}\n", nest("[", "]", 10_000)).into_bytes(),
                ),
                (
                    "deep-map-10000",
                    format!("services: {}\n", nest("{a: ", "}", 10_000)).into_bytes(),
                ),
                (
                    "scalars-1.9M",
                    format!("x-many: [{}]\nservices: {{}}\n", "1,".repeat(1_900_000)).into_bytes(),
                ),
                ("over-4MiB", "#".repeat(4 * 1024 * 1024 + 1).into_bytes()),
                (
                    "interpolation-nested-600000",
                    format!(
                        "services:\n  web:\n    image: \"{}\"\n",
                        nest("${A:-", "}", 600_000)
                    )
                    .into_bytes(),
                ),
                (
                    "interpolation-unset-300000",
                    format!(
                        "services:\n  web:\n    image: \"{}\"\n",
                        unset_names(300_000)
                    )
                    .into_bytes(),
                ),
                (
                    "scalar-3.9MB",
                    format!("services:\n  web:\n    image: {}\n", "a".repeat(3_900_000))
                        .into_bytes(),
                ),
            ]
        }
        "dotenv" => vec![
            ("over-4MiB", "#".repeat(4 * 1024 * 1024 + 1).into_bytes()),
            (
                "line-3.9MB",
                format!("A={}\n", "a".repeat(3_900_000)).into_bytes(),
            ),
            (
                "lines-400000",
                (0..400_000)
                    .map(|i| format!("A{i}=1\n"))
                    .collect::<String>()
                    .into_bytes(),
            ),
            (
                "unterminated-quote",
                format!("A=\"{}", "x\n".repeat(1_900_000)).into_bytes(),
            ),
            (
                "escapes-1.9M",
                format!("A=\"{}\"\n", "\\n".repeat(1_900_000)).into_bytes(),
            ),
        ],
        "interpolate" => vec![
            (
                "nested-700000",
                format!("{}\0", nest("${A:-", "}", 700_000)).into_bytes(),
            ),
            (
                "nested-required-700000",
                format!("{}\0", nest("${A:?", "}", 700_000)).into_bytes(),
            ),
            (
                "unset-400000",
                format!("{}\0", unset_names(400_000)).into_bytes(),
            ),
            (
                "dollars-2M",
                format!("{}\0", "$$".repeat(2_000_000)).into_bytes(),
            ),
        ],
        "agent_msg" => vec![
            ("deep-array-1M", nest("[", "]", 1_000_000).into_bytes()),
            (
                "deep-msg-1M",
                format!(
                    "{{\"type\":\"observed\",\"msg\":{}}}",
                    nest("{\"a\":", "}", 1_000_000)
                )
                .into_bytes(),
            ),
            (
                "log-data-15MiB",
                format!(
                    "{{\"type\":\"log_data\",\"msg\":{{\"req\":1,\"data\":\"{}\"}}}}",
                    "\\u0041".repeat(15 << 20 >> 3)
                )
                .into_bytes(),
            ),
        ],
        "api_bodies" => {
            let deploy = |compose: String| {
                let mut b = vec![0u8];
                b.extend(
                    serde_json::to_vec(&serde_json::json!({ "name": "x", "compose": compose }))
                        .unwrap_or_default(),
                );
                b
            };
            let mut many = String::from("\0{\"project\":{\"name\":\"x\",\"services\":{");
            let services: Vec<String> = (0..200_000).map(|i| format!("\"s{i}\":{{}}")).collect();
            many.push_str(&services.join(","));
            many.push_str("}}}");
            vec![
                (
                    "deploy-interpolation-nested",
                    deploy(format!(
                        "services:\n  web:\n    image: \"{}\"\n",
                        nest("${A:-", "}", 600_000)
                    )),
                ),
                (
                    "deploy-deep-json",
                    format!("\0{}", nest("{\"project\":", "}", 1_000_000)).into_bytes(),
                ),
                ("deploy-project-200000-services", many.into_bytes()),
                ("deploy-environment-300000", {
                    let vars: Vec<String> =
                        (0..300_000).map(|i| format!("\"V{i}\":\"x\"")).collect();
                    format!(
                        "\0{{\"compose\":\"services: {{}}\",\"environment\":{{{}}}}}",
                        vars.join(",")
                    )
                    .into_bytes()
                }),
            ]
        }
        "expose" => vec![
            (
                "entries-100000",
                format!(
                    "[{}]",
                    (0..100_000)
                        .map(|i| format!("{{\"host\":\"h{i}.example.com\",\"port\":80}}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )
                .into_bytes(),
            ),
            (
                "host-1MB",
                format!("[{{\"host\":\"{}\",\"port\":80}}]", "a.".repeat(500_000)).into_bytes(),
            ),
            (
                "path-1MB",
                format!("[{{\"path\":\"/{}\",\"port\":80}}]", "a/".repeat(500_000)).into_bytes(),
            ),
        ],
        _ => Vec::new(),
    }
}

/// One run of `parse` on `data`: its time, its peak heap above what was in use before,
/// whether it panicked. The time is the thread's CPU time (the scheduler's count, in
/// nanoseconds) where Linux gives it, so that other work on the machine does not count;
/// else the wall clock's.
fn measure(parse: harness::Target, data: &[u8]) -> (u64, u64, bool) {
    let base = crate::ALLOC.current_usage();
    crate::ALLOC.reset_peak_usage();
    let start = Instant::now();
    let cpu_start = thread_cpu_nanos();
    let result = std::panic::catch_unwind(|| parse(data));
    let nanos = match (cpu_start, thread_cpu_nanos()) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => start.elapsed().as_nanos() as u64,
    };
    let bytes = crate::ALLOC.peak_usage().saturating_sub(base) as u64;
    (nanos, bytes, result.is_err())
}

/// `xtask chaos-seed`: writes `fuzz/corpus/TARGET/` from the repository's own fixtures
/// (files it wrote before are replaced; others, such as minimised crashes, stay):
/// - compose: `crates/compose/tests/fixtures`, the built-in catalog's compose files, the
///   compose files of the end-to-end tests, inputs of several files (`#@file NAME`:
///   `.env`, `-f` files, `env_file`, `include`, `extends`) and the hostile documents of
///   `crates/compose/tests/hostile.rs` (smaller);
/// - dotenv, interpolate: hand-written files and every `$` line of those compose files;
/// - agent_msg: sessions of real messages (a hello, reports and their patches, desired
///   states of the fixtures, exec and log traffic, an ingress table);
/// - api_bodies: one body of each request type (the first byte picks it), deploys of the
///   fixtures as compose text and as projects;
/// - expose: the lists of `crates/ingress/src/tests.rs` and of the end-to-end tests.
pub fn seed() -> Result<()> {
    let root = crate::root();
    let mut seeds: BTreeMap<&str, BTreeMap<String, Vec<u8>>> = BTreeMap::new();

    // Compose files: the fixtures, the built-in catalog, the end-to-end tests.
    let mut composes: Vec<(String, String)> = Vec::new();
    for path in list(&root.join("crates/compose/tests/fixtures")) {
        if path.extension().is_none_or(|e| e != "yml") {
            continue;
        }
        let name = file_name(&path);
        composes.push((format!("fixture-{name}"), std::fs::read_to_string(&path)?));
    }
    for tpl in list_dirs(&root.join("catalog/builtin/templates")) {
        for version in list_dirs(&tpl) {
            let file = version.join("compose.yaml");
            if file.is_file() {
                composes.push((
                    format!("catalog-{}-{}.yaml", file_name(&tpl), file_name(&version)),
                    std::fs::read_to_string(&file)?,
                ));
            }
        }
    }
    let e2e = root.join("crates/drover/tests/e2e");
    let mut e2e_strings = Vec::new();
    for path in list(&e2e) {
        if path.extension().is_some_and(|e| e == "rs") {
            e2e_strings.extend(string_literals(&std::fs::read_to_string(&path)?));
        }
    }
    let mut e2e_seen = std::collections::BTreeSet::new();
    for s in &e2e_strings {
        if s.contains("services:") && e2e_seen.insert(s.clone()) {
            composes.push((format!("e2e-{:02}.yml", e2e_seen.len()), s.clone()));
        }
    }
    let compose = seeds.entry("compose").or_default();
    for (name, text) in &composes {
        compose.insert(name.clone(), text.clone().into_bytes());
    }
    let mark = harness::FILE_MARK;
    for (name, text) in [
        (
            "files-env-file.yml",
            format!(
                "services:\n  web:\n    image: nginx:${{TAG}}\n    env_file: [web.env, common.env]\n\
                 {mark}web.env\nA=1\nexport C=\"quoted value\"\n{mark}common.env\nLOG_LEVEL=info\n\
                 {mark}.env\nTAG=1.25\nCOMPOSE_PROFILES=debug\n"
            ),
        ),
        (
            "files-include-extends.yml",
            format!(
                "include: [inc.yml]\nservices:\n  web:\n    extends: {{service: app, file: base.yml}}\n    networks: [back]\n\
                 {mark}base.yml\nservices:\n  app:\n    image: app:1\n    environment: [MODE=prod]\n    ports: [\"80:8080\"]\n\
                 {mark}inc.yml\nservices:\n  cache:\n    image: redis:7\n    networks: [back]\nnetworks:\n  back: {{}}\n"
            ),
        ),
        (
            "files-override.yml",
            format!(
                "services:\n  web:\n    image: nginx\n    environment: {{A: \"1\"}}\n    ports: [\"80:80\"]\n\
                 {mark}-f override.yml\nservices:\n  web:\n    image: nginx:1.27\n    environment: {{B: \"2\"}}\n    command: [nginx, -g, daemon off;]\n\
                 {mark}.env\nCOMPOSE_PROJECT_NAME=shop\n"
            ),
        ),
    ] {
        compose.insert(name.to_string(), text.into_bytes());
    }
    let mut bomb = String::from("x-l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..6 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("x-l{i}: &l{i} [{refs}]\n"));
    }
    bomb.push_str("services:\n  web:\n    image: nginx\n    x-boom: *l5\n");
    let mut merges = String::from("x-m0: &m0 {a: 1, b: 2, c: 3}\n");
    for level in 1..5 {
        merges.push_str(&format!("x-m{level}: &m{level} {{"));
        for k in 0..4 {
            merges.push_str(&format!("k{k}: {{<<: *m{}}}, ", level - 1));
        }
        merges.push_str("z: 0}\n");
    }
    merges.push_str("services:\n  web:\n    image: nginx\n");
    for (name, text) in [
        ("hostile-alias-bomb.yml", bomb),
        ("hostile-merge-bomb.yml", merges),
        (
            "hostile-deep-flow.yml",
            format!("services: {}{}\n", "[".repeat(200), "]".repeat(200)),
        ),
        (
            "hostile-deep-map.yml",
            format!("services: {}1{}\n", "{a: ".repeat(200), "}".repeat(200)),
        ),
    ] {
        compose.insert(name.to_string(), text.into_bytes());
    }

    // .env files.
    let dotenv = seeds.entry("dotenv").or_default();
    for (name, text) in [
        (
            "web.env",
            "# web settings\nA=1\nB=from-file\nexport C=\"quoted value\"\n",
        ),
        ("api.env", "SHARED=api\nAPI_KEY='abc$def'\n"),
        ("bad.env", "GOOD=1\nthis line is wrong\n"),
        (
            "bom-crlf.env",
            "\u{feff}A=1\r\nB = two words # a comment\r\n\r\n",
        ),
        (
            "quotes.env",
            "A=\"line one\nline two\"\nB='it''s'\nC=\"tab\\tnew\\nquote\\\"dollar\\$\"\nD=#not a comment\nE=x #comment\n",
        ),
        (
            "export.env",
            "export A=1\nexport\tB=2\nexport=3\n  C.d-e=4\n",
        ),
        ("unterminated.env", "A=\"never closed\nB=1\n"),
    ] {
        dotenv.insert(name.to_string(), text.as_bytes().to_vec());
    }

    // Interpolation: templates, then after a NUL the variables.
    let interpolate = seeds.entry("interpolate").or_default();
    for (i, text) in [
        "${A:-default}\0A=1\n",
        "${A-default} ${B:?B is required} ${C:+alt} ${D+alt}\0B=\nC=x\n",
        "$$literal $A ${A} ${A:-${B:-${C:-deep}}}\0",
        "${A:?${B:-nested message}}\0",
        "${}\0",
        "${A:-unclosed\0",
        "$1 ${1A} ${A B} $\0",
        "${HOME}/data:${TAG}\0",
    ]
    .iter()
    .enumerate()
    {
        interpolate.insert(format!("hand-{i:02}"), text.as_bytes().to_vec());
    }
    let mut dollar_lines = std::collections::BTreeSet::new();
    for (_, text) in &composes {
        for line in text.lines().filter(|l| l.contains('$')) {
            let value = line.split_once(": ").map_or(line, |(_, v)| v).trim();
            dollar_lines.insert(value.to_string());
        }
    }
    for (i, line) in dollar_lines.iter().take(120).enumerate() {
        interpolate.insert(format!("line-{i:03}"), format!("{line}\0").into_bytes());
    }

    // Agent protocol sessions.
    seeds.insert("agent_msg", agent_sessions(&composes)?);

    // REST bodies: the first byte picks the type (`harness::api_bodies`).
    let api = seeds.entry("api_bodies").or_default();
    let bodies: [(u8, &str, &str); 24] = [
        (1, "scale", r#"{"replicas": 3}"#),
        (2, "rollback", r#"{"revision": 2}"#),
        (
            3,
            "install",
            r#"{"stack": "redis", "version": "7.4.0", "answers": {"PASSWORD": "x"}, "dry_run": true}"#,
        ),
        (
            4,
            "upgrade",
            r#"{"version": "7.4.0", "answers": {}, "dry_run": false}"#,
        ),
        (
            5,
            "catalog",
            r#"{"name": "mine", "source": "https://example.com/c.git", "branch": "main"}"#,
        ),
        (6, "file", r#"{"name": "db_password", "data": "czNjcjN0"}"#),
        (
            7,
            "labels",
            r#"{"labels": {"region": "eu", "drover.ingress": "true"}}"#,
        ),
        (8, "drain", r#"{"drain": true}"#),
        (9, "host-token", r#"{"ttl_secs": 3600, "uses": 2}"#),
        (10, "environment", r#"{"name": "staging"}"#),
        (
            11,
            "login",
            r#"{"username": "admin", "password": "secret"}"#,
        ),
        (
            12,
            "apikey",
            r#"{"name": "ci", "env": "default", "expires_in_s": 86400}"#,
        ),
        (
            13,
            "user",
            r#"{"username": "alice", "password": "correct horse", "admin": false}"#,
        ),
        (
            14,
            "password",
            r#"{"password": "new one", "current": "old one"}"#,
        ),
        (
            15,
            "member",
            r#"{"subject": "group:cn=ops,dc=example,dc=com", "role": "member"}"#,
        ),
        (
            16,
            "policy",
            r#"{"allow_privileged": false, "allow_host_namespaces": false, "allow_binds": ["/srv"], "allow_caps": ["NET_ADMIN"]}"#,
        ),
        (
            17,
            "ldap",
            r#"{"url": "ldaps://ldap.example.com:636", "starttls": false, "bind_dn": "cn=svc,dc=example,dc=com", "bind_password": "pw", "user_base": "ou=people,dc=example,dc=com", "user_filter": "(uid={username})", "group_base": "ou=groups,dc=example,dc=com", "group_filter": "(member={dn})"}"#,
        ),
        (
            18,
            "ldap-test",
            r#"{"username": "alice", "password": "pw"}"#,
        ),
        (19, "network", r#"{"name": "shared"}"#),
        (
            20,
            "registry",
            r#"{"host": "ghcr.io", "username": "me", "password": "token"}"#,
        ),
        (
            21,
            "cert",
            r#"{"name": "shop", "cert": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"}"#,
        ),
        (
            22,
            "exec",
            r#"{"cmd": ["sh", "-c", "ls"], "tty": true, "stdin": true, "user": "root", "workdir": "/", "env": ["A=1"], "cols": 80, "rows": 24}"#,
        ),
        (
            23,
            "exec-resize",
            r#"{"type": "resize", "cols": 120, "rows": 40}"#,
        ),
        (
            0,
            "deploy-compose",
            r#"{"name": "shop", "compose": "services:\n  web:\n    image: nginx:${TAG}\n", "environment": {"TAG": "1.27"}, "profiles": []}"#,
        ),
    ];
    for (which, name, body) in bodies {
        let mut data = vec![which];
        data.extend_from_slice(body.as_bytes());
        api.insert(format!("{which:02}-{name}"), data);
    }
    let variables: BTreeMap<String, String> = [("TAG", "1.25"), ("HOME", "/home/dev")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (name, text) in composes.iter().filter(|(n, _)| n.starts_with("fixture-")) {
        let req = serde_json::json!({"name": "fixture", "compose": text, "environment": variables});
        let mut data = vec![0u8];
        data.extend(serde_json::to_vec(&req)?);
        api.insert(format!("00-deploy-{name}"), data);
        if let Some(project) = load(text) {
            let req = serde_json::json!({ "project": project });
            let mut data = vec![0u8];
            data.extend(serde_json::to_vec(&req)?);
            api.insert(format!("00-project-{name}"), data);
        }
    }

    // Expose lists.
    let expose = seeds.entry("expose").or_default();
    let tests = std::fs::read_to_string(root.join("crates/ingress/src/tests.rs"))?;
    let mut lists = std::collections::BTreeSet::new();
    for line in tests.lines().map(str::trim) {
        if let Some(json) = line
            .strip_prefix("check ")
            .or_else(|| line.strip_prefix("parse "))
            .or_else(|| {
                line.splitn(4, ' ')
                    .nth(3)
                    .filter(|_| line.starts_with("expose "))
            })
            && json.starts_with('[')
        {
            lists.insert(json.to_string());
        }
    }
    for (name, text) in &composes {
        if let Some(loaded) = load(text) {
            for service in loaded.services.values() {
                if let Some(x) = service.extensions.get("x-drover")
                    && let Some(list) = x.get("expose")
                {
                    lists.insert(list.to_string());
                }
            }
        } else if name.starts_with("e2e-") {
            continue;
        }
    }
    for (i, list) in lists.iter().enumerate() {
        expose.insert(format!("list-{i:03}.json"), list.clone().into_bytes());
    }

    let mut total = 0;
    for (target, files) in &seeds {
        let dir = fuzz_dir().join("corpus").join(target);
        std::fs::create_dir_all(&dir)?;
        for (name, data) in files {
            std::fs::write(dir.join(name), data)?;
            total += data.len();
        }
        println!("chaos-seed: {} seeds in fuzz/corpus/{target}", files.len());
    }
    println!("chaos-seed: {:.1} KiB in all", total as f64 / 1024.0);
    Ok(())
}

/// A compose text loaded as the fuzz target loads it, or `None`.
fn load(text: &str) -> Option<compose::Project> {
    let vars: BTreeMap<String, String> = [("TAG", "1.25"), ("HOME", "/home/dev")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    compose::load(&compose::Input {
        file_name: "compose.yaml",
        text,
        project_name: Some("seed"),
        default_name: "seed",
        variables: &vars,
        profiles: &[],
        base_dir: Some("/srv/app"),
        files: &compose::NoFiles,
        overrides: &[],
    })
    .ok()
    .map(|l| l.project)
}

/// Sessions of the agent protocol, one JSON message a line: what an agent sends, and what
/// a server sends, for a few fixture projects.
fn agent_sessions(composes: &[(String, String)]) -> Result<BTreeMap<String, Vec<u8>>> {
    use proto::{AgentMsg, ServerMsg};
    let mut out = BTreeMap::new();
    let engine = proto::EngineStatus {
        up: true,
        version: Some("26.1.5".into()),
        cpus: Some(2),
        memory: Some(4 << 30),
        ..Default::default()
    };
    let line = |msg: &dyn erased::Json| msg.json();
    for (name, text) in composes
        .iter()
        .filter(|(n, _)| n.starts_with("fixture-"))
        .take(8)
    {
        let Some(project) = load(text) else { continue };
        let slots: Vec<(String, u32)> = project.services.keys().map(|s| (s.clone(), 1)).collect();
        let part = proto::desired_for_stack("default", &project, &slots);
        let containers: Vec<proto::ObservedContainer> = part
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| proto::ObservedContainer {
                id: format!("{i:064x}"),
                name: c.name.clone(),
                env: c.env.clone(),
                stack: c.stack.clone(),
                service: c.service.clone(),
                slot: c.slot,
                spec_hash: c.spec_hash.clone(),
                state: proto::ContainerState::Running,
                health: None,
                exit_code: None,
                image: c.spec.image.clone().unwrap_or_default(),
                status: "Up 3 seconds".into(),
                addrs: BTreeMap::from([(
                    "default".to_string(),
                    std::net::Ipv4Addr::new(10, 192, 1, 2),
                )]),
                network_of: None,
            })
            .collect();
        let first = proto::Observed {
            generation: 1,
            engine: engine.clone(),
            containers: Vec::new(),
            errors: Vec::new(),
            waiting: Vec::new(),
            networks: Vec::new(),
        };
        let second = proto::Observed {
            generation: 2,
            containers,
            ..first.clone()
        };
        let agent = [
            line(&AgentMsg::Hello(proto::Hello {
                protocol: proto::PROTOCOL_VERSION,
                host_id: "host-1".into(),
                hostname: "node1".into(),
                agent_version: "0.1.0".into(),
                labels: BTreeMap::from([("region".to_string(), "eu".to_string())]),
                credential_hash: Some("ab".repeat(32)),
                mesh: None,
            })),
            line(&AgentMsg::Observed(first.clone())),
            line(&AgentMsg::ObservedChanges(second.changes_since(&first))),
            line(&AgentMsg::Heartbeat),
        ];
        let desired = proto::Desired::from_parts(1, vec![part.clone()]);
        let server = [
            line(&ServerMsg::Welcome {
                cluster_id: "c0ffee".into(),
                env: "default".into(),
                lease_ms: proto::LEASE_MS,
            }),
            line(&ServerMsg::Desired(desired)),
            line(&ServerMsg::DesiredStacks(proto::DesiredPatch {
                generation: 2,
                stacks: vec![part],
            })),
            line(&ServerMsg::HeartbeatAck),
        ];
        let mut session = agent.join("\n");
        session.push('\n');
        session.push_str(&server.join("\n"));
        out.insert(format!("session-{name}.jsonl"), session.into_bytes());
    }
    let exposed = vec![
        ingress::Expose::Http(ingress::HttpExpose {
            host: Some("shop.example.com".into()),
            path: Some("/api".into()),
            port: 8080,
            ..Default::default()
        }),
        ingress::Expose::Tcp(ingress::TcpExpose {
            tcp: 5432,
            port: 5432,
            ..Default::default()
        }),
    ];
    let (table, _) = ingress::table(&ingress::Input {
        services: vec![ingress::Service {
            stack: "shop",
            service: "web",
            expose: &exposed,
        }],
        containers: vec![ingress::Container {
            name: "shop-web-1",
            stack: "shop",
            service: "web",
            host: "host-1",
            ready: true,
            ip: Some(std::net::Ipv4Addr::new(10, 192, 1, 2)),
        }],
        ..Default::default()
    });
    let traffic = [
        line(&ServerMsg::Logs {
            req: 7,
            container: "shop-web-1".into(),
            follow: true,
            tail: Some(100),
        }),
        line(&AgentMsg::LogData {
            req: 7,
            data: "GET / 200\n".into(),
        }),
        line(&AgentMsg::LogEnd {
            req: 7,
            error: None,
        }),
        line(&ServerMsg::Exec(proto::ExecStart {
            req: 8,
            container: "shop-web-1".into(),
            cmd: vec!["sh".into()],
            tty: true,
            stdin: true,
            user: None,
            workdir: None,
            env: vec!["A=1".into()],
            cols: Some(80),
            rows: Some(24),
        })),
        line(&AgentMsg::ExecStarted { req: 8 }),
        line(&ServerMsg::ExecInput {
            req: 8,
            data: b"ls\n".to_vec(),
            eof: false,
        }),
        line(&AgentMsg::ExecOutput {
            req: 8,
            stream: proto::ExecStream::Stdout,
            data: b"bin etc\r\n".to_vec(),
        }),
        line(&AgentMsg::ExecAck { req: 8, bytes: 3 }),
        line(&ServerMsg::ExecResize {
            req: 8,
            cols: 100,
            rows: 30,
        }),
        line(&AgentMsg::ExecEnd {
            req: 8,
            exit_code: Some(0),
            error: None,
        }),
        line(&ServerMsg::Ingress(Some(table))),
        line(&ServerMsg::Ingress(None)),
        line(&ServerMsg::Revoked {
            reason: "host removed".into(),
        }),
    ];
    out.insert(
        "session-traffic.jsonl".into(),
        traffic.join("\n").into_bytes(),
    );
    Ok(out)
}

/// Messages of either direction, as JSON text.
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

fn list_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The string literals of Rust source (`"..."` and `r#"..."#`), unescaped, with `format!`'s
/// `{{`/`}}` undone and its `{name}` holes filled: good enough for seeds.
fn string_literals(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"r#\"") {
            let start = i + 3;
            let Some(len) = src[start..].find("\"#") else {
                break;
            };
            out.push(unformat(&src[start..start + len]));
            i = start + len + 2;
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            let mut s = String::new();
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                if b[j] == b'\\' && j + 1 < b.len() {
                    match b[j + 1] {
                        b'n' => s.push('\n'),
                        b't' => s.push('\t'),
                        b'\n' => {
                            // A line continuation: the next line's indentation is skipped.
                            j += 2;
                            while j < b.len() && b[j].is_ascii_whitespace() {
                                j += 1;
                            }
                            continue;
                        }
                        c => s.push(c as char),
                    }
                    j += 2;
                    continue;
                }
                let ch_len = src[j..].chars().next().map_or(1, char::len_utf8);
                s.push_str(&src[j..j + ch_len]);
                j += ch_len;
            }
            out.push(unformat(&s));
            i = j + 1;
        } else if b[i..].starts_with(b"//") {
            i += src[i..].find('\n').unwrap_or(src.len() - i);
        } else {
            i += 1;
        }
    }
    out
}

fn unformat(s: &str) -> String {
    // Only a `format!` string has `{{`; in one without, only `{name}` is a hole.
    let format = s.contains("{{") || s.contains("}}");
    let mut out = String::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        if format && (c == '{' || c == '}') && rest.starts_with(c) {
            rest = &rest[1..];
            out.push(c);
            continue;
        }
        if c == '{' {
            let hole = rest.find('}').filter(|&end| {
                rest[..end]
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':' || ch == '.')
            });
            if let Some(end) = hole.filter(|&end| format || end > 0) {
                // A plausible value instead.
                out.push_str("8080");
                rest = &rest[end + 1..];
                continue;
            }
        }
        out.push(c);
    }
    out
}
