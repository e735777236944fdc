//! `bench-auth`: what authorisation costs each request, and how many logins a second the
//! server takes with argon2id at its cost (19 MiB, 2 passes, 1 lane).
//!
//! In process, no sockets: the server's router on a fresh store, driven with
//! `tower::ServiceExt::oneshot`. A user with the `member` role reads its environment's
//! stacks with an API key, through the real edge (token lookup, identity, `authorize`) and
//! through the same routes with the edge replaced by a fixed caller, interleaved in blocks
//! so both see the same machine; p50/p99 of each and the difference. Logins: two clients
//! sign in as distinct users for a few seconds (each login also writes its session).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

const REQUESTS: usize = 20_000;
const BLOCK: usize = 500;
const LOGIN_SECS: u64 = 5;
const LOGIN_CLIENTS: usize = 2;

fn request(method: Method, uri: &str, token: Option<&str>, body: Option<String>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        r = r.header("content-type", "application/json");
    }
    r.body(body.map(Body::from).unwrap_or_else(Body::empty))
        .expect("request")
}

async fn send(app: &axum::Router, req: Request<Body>) -> Result<StatusCode> {
    let resp = app.clone().oneshot(req).await?;
    Ok(resp.status())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn bench() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run())
}

async fn run() -> Result<()> {
    let dir = tempdir()?;
    let mut store = store::Store::open(&dir.join("drover.db"))?;
    let admin = server::new_token();
    store.add_token(&server::hash_token(&admin), "admin", "admin", "default", 0)?;
    let state = Arc::new(server::AppState::open(
        store,
        "bench".into(),
        &dir,
        None,
        Default::default(),
    )?);
    let app = server::router(state.clone());

    // Users: one member reading stacks, and the ones that sign in.
    let users = 64;
    for i in 0..=users {
        let body = format!(r#"{{"name":"user{i}","password":"password-{i}-long"}}"#);
        let s = send(
            &app,
            request(Method::POST, "/v1/users", Some(&admin), Some(body)),
        )
        .await?;
        if s != StatusCode::CREATED {
            bail!("creating user{i}: {s}");
        }
    }
    let body = r#"{"subject":"user0","role":"member"}"#.to_string();
    let s = send(
        &app,
        request(
            Method::PUT,
            "/v1/environments/default/members",
            Some(&admin),
            Some(body),
        ),
    )
    .await?;
    if s != StatusCode::OK {
        bail!("adding the member: {s}");
    }
    let login = r#"{"username":"user0","password":"password-0-long"}"#.to_string();
    let resp = app
        .clone()
        .oneshot(request(Method::POST, "/v1/sessions", None, Some(login)))
        .await?;
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    let session: serde_json::Value = serde_json::from_slice(&bytes)?;
    let token = session["token"]
        .as_str()
        .context("session token")?
        .to_string();
    let body = "{}".to_string();
    let resp = app
        .clone()
        .oneshot(request(
            Method::POST,
            "/v1/apikeys",
            Some(&token),
            Some(body),
        ))
        .await?;
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await?;
    let key: serde_json::Value = serde_json::from_slice(&bytes)?;
    let key = key["token"].as_str().context("api key")?.to_string();
    let bare =
        server::router_without_edge_for_bench(state.clone(), &key).map_err(anyhow::Error::msg)?;

    // Authorisation overhead.
    let uri = "/v1/environments/default/stacks";
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        send(&app, request(Method::GET, uri, Some(&key), None)).await?;
        send(&bare, request(Method::GET, uri, None, None)).await?;
    }
    while with.len() < REQUESTS {
        for _ in 0..BLOCK {
            let t = Instant::now();
            let s = send(&app, request(Method::GET, uri, Some(&key), None)).await?;
            with.push(t.elapsed());
            if s != StatusCode::OK {
                bail!("checked request: {s}");
            }
        }
        for _ in 0..BLOCK {
            let t = Instant::now();
            let s = send(&bare, request(Method::GET, uri, None, None)).await?;
            without.push(t.elapsed());
            if s != StatusCode::OK {
                bail!("unchecked request: {s}");
            }
        }
    }
    with.sort();
    without.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "authorisation, GET {uri} as a member with an API key ({REQUESTS} requests each, in process):"
    );
    for (name, v) in [("with the edge", &with), ("without", &without)] {
        println!(
            "  {name:<14} p50 {:>7.1} us  p99 {:>7.1} us",
            us(percentile(v, 0.5)),
            us(percentile(v, 0.99))
        );
    }
    let (p99w, p99o) = (us(percentile(&with, 0.99)), us(percentile(&without, 0.99)));
    println!(
        "  overhead p99 {:.1} us ({:.2}x); p50 {:.1} us",
        p99w - p99o,
        p99w / p99o,
        us(percentile(&with, 0.5)) - us(percentile(&without, 0.5))
    );

    // Login throughput.
    let deadline = Instant::now() + Duration::from_secs(LOGIN_SECS);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..LOGIN_CLIENTS {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            let mut i = 1 + c;
            while Instant::now() < deadline {
                let body = format!(r#"{{"username":"user{i}","password":"password-{i}-long"}}"#);
                let s = send(
                    &app,
                    request(Method::POST, "/v1/sessions", None, Some(body)),
                )
                .await?;
                if s != StatusCode::CREATED {
                    bail!("login user{i}: {s}");
                }
                n += 1;
                i = 1 + (i + LOGIN_CLIENTS - 1) % users;
            }
            Ok::<u64, anyhow::Error>(n)
        }));
    }
    let mut logins = 0;
    for t in tasks {
        logins += t.await??;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "logins (argon2id m=19456 KiB t=2 p=1, {LOGIN_CLIENTS} clients, {} cores): {logins} in {secs:.1} s = {:.1}/s, {:.0} ms each",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        logins as f64 / secs,
        secs * 1000.0 * LOGIN_CLIENTS as f64 / logins as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempdir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("drover-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `bench-monitor`: the server's memory for an hour of samples (360 at 10 s) of 1,000
/// containers on 50 hosts, as the resident-set growth of filling the monitor in process.
pub fn bench_monitor() -> Result<()> {
    let before = rss_kib()?;
    let m = server::monitor_hour_for_bench(1000, 50);
    let after = rss_kib()?;
    println!(
        "monitoring history: 1,000 containers x 360 samples (1 h at 10 s) on 50 hosts: {:.1} MiB resident",
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    drop(m);
    Ok(())
}

fn rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS in /proc/self/status")
}
