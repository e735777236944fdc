//! Slow and stuck clients: 1,000 `logs -f` followers (200 in a short run) of a chatty
//! container that stop reading after their request, and 1,000 half-open connections (TCP
//! connected, not a byte sent; opened again when the server drops them). Meanwhile the
//! other hosts' heartbeats (how old each host's last-seen is), API reads and deploys must
//! be unaffected: p99 within 2x of the same measures on the idle server (10 ms floor, below
//! which differences are noise on a loaded machine), and no host leaves `up`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::cluster::{Api, Cluster, Expect, Report, Rng, differences, pct, sleeper, wait_for};

const CHAT: &str = "slowchat";
const DEP: &str = "slowdep";
const FLOOR_MS: f64 = 10.0;

/// Latencies measured over `window`: API reads, deploys (to acknowledgement), and the
/// oldest last-seen of hosts 2 and 3; plus how many host states other than `up` were seen.
struct Measure {
    reads: Vec<f64>,
    deploys: Vec<f64>,
    heartbeat_age_ms: f64,
    not_up: usize,
}

fn measure(api: &Api, host_ids: &[String], window: Duration, version: &mut u64) -> Result<Measure> {
    let mut m = Measure {
        reads: Vec::new(),
        deploys: Vec::new(),
        heartbeat_age_ms: 0.0,
        not_up: 0,
    };
    let t = Instant::now();
    let mut k = 0u64;
    while t.elapsed() < window {
        k += 1;
        let path = if k.is_multiple_of(2) {
            "~/stacks"
        } else {
            "~/containers"
        };
        let r = Instant::now();
        let a = api.call("GET", path, None)?;
        if !a.ok() {
            bail!("GET {path}: {}", a.status);
        }
        m.reads.push(r.elapsed().as_secs_f64() * 1000.0);
        if k.is_multiple_of(10) {
            let hosts = api.call("GET", "~/hosts", None)?.json()?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as f64;
            for h in hosts.as_array().into_iter().flatten() {
                let id = h["id"].as_str().unwrap_or("");
                if h["state"].as_str() != Some("up") {
                    m.not_up += 1;
                }
                if host_ids[1..].iter().any(|x| x == id)
                    && let Some(seen) = h["last_seen_ms"].as_f64()
                {
                    m.heartbeat_age_ms = m.heartbeat_age_ms.max(now - seen);
                }
            }
        }
        if k.is_multiple_of(40) {
            *version += 1;
            let d = Instant::now();
            let a = api.call(
                "POST",
                "~/stacks",
                Some(serde_json::json!({"name": DEP, "compose": format!("services:\n{}", sleeper("d", 1, *version, ""))})),
            )?;
            if !a.ok() {
                bail!("deploy: {} {}", a.status, a.body);
            }
            m.deploys.push(d.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(m)
}

pub fn run(c: &mut Cluster, rep: &mut Report, _rounds: u32, short: bool) -> Result<()> {
    let mut rng = Rng::new(rep.seed);
    let n = if short { 200 } else { 1000 };
    let window = if short {
        Duration::from_secs(8)
    } else {
        Duration::from_secs(20)
    };
    c.deploy_ok(
        CHAT,
        "services:\n  chat:\n    image: drover-test/busybox:1\n    command: [/bin/busybox, sh, -c, 'i=0; while true; do echo \"chatter line $$i: the quick brown fox jumps over the lazy dog\"; i=$$((i+1)); /bin/busybox usleep 20000; done']\n    network_mode: none\n    stop_grace_period: 1s\n    deploy:\n      placement:\n        constraints: [node.labels.chaos == h1]\n",
    )?;
    let mut version = rng.range(1, 1000);
    c.deploy_ok(DEP, &format!("services:\n{}", sleeper("d", 1, version, "")))?;
    let mut expect = Expect::new();
    expect.insert((CHAT.into(), "chat".into()), (1, String::new()));
    let stacks = [CHAT.to_string()];
    if wait_for(Duration::from_secs(60), || {
        differences(&c.all_ps(), &stacks, &expect)
            .is_empty()
            .then_some(())
    })
    .is_none()
    {
        bail!("the chatty container never ran");
    }
    let api = c.api_handle()?;
    let idle = measure(&api, &c.host_ids, window, &mut version)?;

    // The stuck clients.
    let pem = std::fs::read_to_string(c.server_data().join("tls/ca.pem"))?;
    let tls = tls::trusting_client_config(&pem)?;
    let connector = tokio_rustls::TlsConnector::from(tls);
    let addr = format!("10.77.0.1:{}", c.port);
    let request = format!(
        "GET /v1/environments/default/containers/{CHAT}-chat-1/logs?follow=true HTTP/1.1\r\nHost: 10.77.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        api.token
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let followers = Arc::new(AtomicUsize::new(0));
    let half_open = Arc::new(AtomicUsize::new(0));
    let reopened = Arc::new(AtomicUsize::new(0));
    let rt = api.rt.clone();
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (connector, to, request, mut stop, followers) = (
            connector.clone(),
            addr.clone(),
            request.clone(),
            stop_rx.clone(),
            followers.clone(),
        );
        tasks.push(rt.spawn(async move {
            let tcp = tokio::net::TcpStream::connect(&to).await.ok()?;
            let name = rustls::pki_types::ServerName::try_from("10.77.0.1").ok()?;
            let mut s = connector.connect(name, tcp).await.ok()?;
            s.write_all(request.as_bytes()).await.ok()?;
            // Read the answer's first bytes, then never again.
            let mut buf = [0u8; 64];
            let k = s.read(&mut buf).await.ok()?;
            if buf[..k].starts_with(b"HTTP/1.1 200") {
                followers.fetch_add(1, Ordering::Relaxed);
            }
            let _ = stop.changed().await;
            drop(s);
            Some(())
        }));
        let (addr, mut stop, half_open, reopened) = (
            addr.clone(),
            stop_rx.clone(),
            half_open.clone(),
            reopened.clone(),
        );
        tasks.push(rt.spawn(async move {
            let mut first = true;
            loop {
                let Ok(mut tcp) = tokio::net::TcpStream::connect(&addr).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                if first {
                    half_open.fetch_add(1, Ordering::Relaxed);
                    first = false;
                } else {
                    reopened.fetch_add(1, Ordering::Relaxed);
                }
                let mut buf = [0u8; 16];
                tokio::select! {
                    _ = tcp.read(&mut buf) => {}
                    _ = stop.changed() => return Some(()),
                }
            }
        }));
    }
    let t = Instant::now();
    let established = wait_for(Duration::from_secs(60), || {
        (followers.load(Ordering::Relaxed) >= n && half_open.load(Ordering::Relaxed) >= n)
            .then(|| t.elapsed())
    });
    let (f, h) = (
        followers.load(Ordering::Relaxed),
        half_open.load(Ordering::Relaxed),
    );
    if established.is_none() {
        rep.figure(format!(
            "only {f} followers answered and {h} half-open connections made within 60 s"
        ));
    }
    // Let the followers' buffers fill up.
    std::thread::sleep(Duration::from_secs(3));
    let loaded = measure(&api, &c.host_ids, window, &mut version);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = rt.block_on(t);
    }
    let mut loaded = loaded.context("measuring under load")?;
    let mut idle = idle;
    let (ri, rl) = (pct(&mut idle.reads, 0.99), pct(&mut loaded.reads, 0.99));
    let (di, dl) = (pct(&mut idle.deploys, 0.99), pct(&mut loaded.deploys, 0.99));
    let within = |idle: f64, load: f64| load <= 2.0 * idle.max(FLOOR_MS);
    rep.target(1, within(ri, rl), || {
        format!("API read p99 {rl:.1} ms under stuck clients, {ri:.1} ms idle")
    });
    rep.target(1, within(di, dl), || {
        format!("deploy p99 {dl:.1} ms under stuck clients, {di:.1} ms idle")
    });
    let (hi, hl) = (idle.heartbeat_age_ms, loaded.heartbeat_age_ms);
    rep.target(1, hl <= 2.0 * hi.max(proto::HEARTBEAT_SECS as f64 * 1000.0), || {
        format!("other hosts' last heartbeat up to {hl:.0} ms old under stuck clients, {hi:.0} ms idle")
    });
    rep.check(1, loaded.not_up == 0, || {
        format!(
            "{} host states other than up seen under stuck clients",
            loaded.not_up
        )
    });
    rep.figure(format!(
        "{f} stuck logs -f followers and {h} half-open connections ({} reopened after the server dropped them): API reads p50/p99 {:.1}/{rl:.1} ms (idle {:.1}/{ri:.1} ms, {} and {} reads), deploys p99 {dl:.0} ms (idle {di:.0} ms), other hosts' heartbeat age max {:.1} s (idle {:.1} s), hosts not up {}",
        reopened.load(Ordering::Relaxed),
        pct(&mut loaded.reads, 0.5),
        pct(&mut idle.reads, 0.5),
        loaded.reads.len(),
        idle.reads.len(),
        hl / 1000.0,
        hi / 1000.0,
        loaded.not_up
    ));
    c.remove_stacks(&[CHAT.to_string(), DEP.to_string()])?;
    Ok(())
}
