//! Disk full: the server's data directory is a small tmpfs of the harness; a file fills it
//! to the last byte. Writes must then fail with a clear error (never an acknowledged write
//! that is not kept), reads must keep working, running containers and hosts must not
//! notice, and once the file is gone writes must work again without a restart. After a
//! `kill -9` and restart every acknowledged write is there and SQLite's own
//! `integrity_check` says `ok`.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::cluster::{Cluster, Expect, HOSTS, Report, Rng, differences, sleeper, wait_for};
use super::server_kill::{State, api_state};

const STACK: &str = "dsk";

/// Fills the filesystem of `dir` with `dir/filler`; the bytes written.
fn fill(dir: &std::path::Path) -> Result<u64> {
    let mut f = std::fs::File::create(dir.join("filler"))?;
    let chunk = vec![0x5au8; 1 << 20];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // The last few bytes too.
    let small = [0u8; 512];
    while let Ok(k) = f.write(&small) {
        if k == 0 {
            break;
        }
        n += k as u64;
    }
    let _ = f.flush();
    Ok(n)
}

/// A deploy that writes a good deal: a label of `kb` KiB.
fn big(version: u64, kb: usize) -> String {
    let pad = "x".repeat(kb * 1024);
    format!(
        "services:\n{}",
        sleeper("s", 2, version, &format!("    x-pad: {pad}\n"))
    )
}

pub fn run(c: &mut Cluster, rep: &mut Report, rounds: u32, _short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    let data = c.server_data();
    let mut version = rng.range(1, 1000);
    c.deploy_ok(STACK, &big(version, 1))?;
    let stacks = [STACK.to_string()];
    let mut expect = Expect::new();
    expect.insert((STACK.into(), "s".into()), (2, version.to_string()));
    if wait_for(Duration::from_secs(60), || {
        differences(&c.all_ps(), &stacks, &expect)
            .is_empty()
            .then_some(())
    })
    .is_none()
    {
        bail!("the stack never ran");
    }
    let api = c.api_handle()?;
    let mut acked = State::Present {
        version,
        replicas: 2,
    };
    for round in 1..=rounds {
        let ids: Vec<String> = c
            .all_ps()
            .into_iter()
            .filter(|x| x.stack == STACK && x.running)
            .map(|x| x.id)
            .collect();
        let filled = fill(&data)?;
        // Writes: each either acknowledged (and then kept) or refused with a clear error.
        let (mut refused, mut ok_writes) = (0, 0);
        let mut messages = std::collections::BTreeSet::new();
        for _ in 0..20 {
            version += 1;
            let a = c.deploy(STACK, &big(version, 256))?;
            if a.ok() {
                ok_writes += 1;
                acked = State::Present {
                    version,
                    replicas: 2,
                };
                continue;
            }
            refused += 1;
            let msg = a
                .json()
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| a.body.clone());
            messages.insert(format!("{} {msg}", a.status));
            let clear = a.status == 507
                || ["full", "space"]
                    .iter()
                    .any(|w| msg.to_lowercase().contains(w));
            rep.check(round, clear, || {
                format!(
                    "a write refused with a full disk says {} {msg:?}, not that the disk is full",
                    a.status
                )
            });
            if refused >= 3 {
                break;
            }
        }
        rep.check(round, refused > 0, || {
            format!("{ok_writes} writes of 256 KiB acknowledged with the data directory full, none refused")
        });
        // Reads keep working, hosts stay up, containers keep running.
        let t = Instant::now();
        let mut reads_failed = 0;
        while t.elapsed() < Duration::from_secs(4) {
            for path in [
                "~/stacks",
                &format!("~/stacks/{STACK}"),
                "~/hosts",
                "~/containers",
            ] {
                match api.call("GET", path, None) {
                    Ok(a) if a.ok() => {}
                    Ok(a) => {
                        reads_failed += 1;
                        rep.broken(
                            round,
                            format!("GET {path} with a full disk: {} {}", a.status, a.body),
                        );
                    }
                    Err(e) => {
                        reads_failed += 1;
                        rep.broken(round, format!("GET {path} with a full disk: {e}"));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let up = c.hosts_up().unwrap_or(0);
        rep.check(round, up == HOSTS, || {
            format!("{up} of {HOSTS} hosts up with the disk full")
        });
        let now: Vec<String> = c
            .all_ps()
            .into_iter()
            .filter(|x| x.stack == STACK && x.running)
            .map(|x| x.id)
            .collect();
        // An acknowledged redeploy replaces containers: only compare when none was.
        if ok_writes == 0 {
            rep.check(round, now == ids, || {
                "containers changed with the disk full".into()
            });
        }
        // Space returns: writes work again, without a restart.
        std::fs::remove_file(data.join("filler"))?;
        let t = Instant::now();
        let back = wait_for(Duration::from_secs(20), || {
            version += 1;
            let a = c.deploy(STACK, &big(version, 1)).ok()?;
            a.ok().then(|| {
                acked = State::Present {
                    version,
                    replicas: 2,
                };
                t.elapsed()
            })
        });
        if back.is_none() {
            rep.broken(
                round,
                "writes still refused 20 s after space returned".to_string(),
            );
        }
        // kill -9 and restart: every acknowledged write kept, the database intact.
        c.kill_server();
        let integrity = crate::run(
            std::process::Command::new("sqlite3")
                .arg(data.join("drover.db"))
                .arg("PRAGMA integrity_check;"),
        )
        .unwrap_or_else(|e| format!("{e}"));
        rep.check(round, integrity.trim() == "ok", || {
            format!(
                "integrity_check after the disk was full: {}",
                integrity.trim()
            )
        });
        c.start_server()?;
        let seen = api_state(&api, STACK)?;
        rep.check(round, seen == acked, || {
            format!(
                "after the restart the stack is {seen:?}, the last acknowledged write {acked:?}"
            )
        });
        if let State::Present { version, .. } = seen {
            expect.insert((STACK.into(), "s".into()), (2, version.to_string()));
        }
        let conv = wait_for(Duration::from_secs(60), || {
            differences(&c.all_ps(), &stacks, &expect)
                .is_empty()
                .then_some(())
        });
        rep.check(round, conv.is_some(), || {
            "engines did not converge after the disk scenario".into()
        });
        rep.figure(format!(
            "round {round}: data directory filled ({:.0} MiB): {ok_writes} writes still acknowledged, then refused with {:?}; {reads_failed} reads failed while full; writes back {} after space returned; integrity_check {}",
            filled as f64 / 1048576.0,
            messages,
            back.map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "never".into()),
            integrity.trim()
        ));
    }
    c.remove_stacks(&stacks)?;
    Ok(())
}
