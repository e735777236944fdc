//! `GET /metrics` (Prometheus text format: Drover's own figures and every container's
//! resource use, labelled by environment, stack, service and host) and
//! `GET /v1/environments/{env}/stats` (the last hour of samples, for charts).
//! `/metrics` needs an admin or an API key made with `--metrics`, unless the server runs
//! with `--metrics-public`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::auth::Who;
use crate::error::ApiError;
use crate::state::AppState;

type Labels = Vec<(String, String)>;
type FGauge = Family<Labels, Gauge<f64, AtomicU64>>;
type IGauge = Family<Labels, Gauge<i64, AtomicI64>>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The text of `/metrics`.
pub fn render(state: &AppState) -> Result<String, std::fmt::Error> {
    let _one = state.monitor.scrape_lock();
    let mut reg = Registry::default();
    let hosts = IGauge::default();
    let containers = IGauge::default();
    let pending = IGauge::default();
    let sessions = IGauge::default();
    reg.register("drover_hosts", "Hosts by state", hosts.clone());
    reg.register(
        "drover_containers",
        "Desired containers by state",
        containers.clone(),
    );
    reg.register(
        "drover_pending_replicas",
        "Replicas placed on no host",
        pending.clone(),
    );
    reg.register(
        "drover_agent_sessions",
        "Connected agents",
        sessions.clone(),
    );
    let envs = state.store().environments().unwrap_or_default();
    for env in &envs {
        let infos: Vec<store::HostRecord> = state.model().hosts(env).into_iter().cloned().collect();
        for h in infos {
            let info = crate::api::hosts::host_info(state, h);
            hosts
                .get_or_create(&labels(&[("env", env), ("state", &info.state)]))
                .inc();
        }
        for c in crate::api::stacks::container_infos(state, env, None) {
            containers
                .get_or_create(&labels(&[("env", env), ("state", &c.state)]))
                .inc();
            if c.host.is_none() {
                pending.get_or_create(&labels(&[("env", env)])).inc();
            }
        }
        sessions
            .get_or_create(&labels(&[("env", env)]))
            .set(state.connected_hosts(env).len() as i64);
    }
    let pass = Gauge::<f64, AtomicU64>::default();
    pass.set(
        state
            .monitor
            .pass_us
            .load(std::sync::atomic::Ordering::Relaxed) as f64
            / 1e6,
    );
    reg.register(
        "drover_scheduling_pass_seconds",
        "How long the last scheduling pass took",
        pass,
    );
    let lag = FGauge::default();
    for (env, secs) in state.monitor.reconcile_lag(crate::state::now_ms()) {
        lag.get_or_create(&labels(&[("env", &env)])).set(secs);
    }
    reg.register(
        "drover_reconcile_lag_seconds",
        "How long the longest-waiting desired container has not run as desired (0: all do)",
        lag,
    );
    reg.register(
        "drover_reconcile_seconds",
        "How long desired containers took to run as desired, from when each was seen not to",
        state.monitor.reconcile_seconds.clone(),
    );
    reg.register(
        "drover_store_hold_seconds",
        "How long each store transaction (or read) held the store",
        state.monitor.store_held.clone(),
    );
    reg.register(
        "drover_api_request_duration_seconds",
        "API request latency by route",
        state.monitor.api_latency.clone(),
    );

    let cpu = FGauge::default();
    let mem = IGauge::default();
    let mem_limit = IGauge::default();
    // Counters of the engine that restart with the container: gauges (`rate()` still works
    // between restarts), so the exposition stays plain text format 0.0.4.
    let rx = IGauge::default();
    let tx = IGauge::default();
    let rd = IGauge::default();
    let wr = IGauge::default();
    let host_cpu = FGauge::default();
    let host_mem = IGauge::default();
    let host_total = IGauge::default();
    reg.register(
        "drover_container_cpu_percent",
        "CPU use, percent of one CPU",
        cpu.clone(),
    );
    reg.register(
        "drover_container_memory_bytes",
        "Memory use without page cache",
        mem.clone(),
    );
    reg.register(
        "drover_container_memory_limit_bytes",
        "Memory limit",
        mem_limit.clone(),
    );
    reg.register(
        "drover_container_network_receive_bytes",
        "Bytes received",
        rx.clone(),
    );
    reg.register(
        "drover_container_network_transmit_bytes",
        "Bytes sent",
        tx.clone(),
    );
    reg.register(
        "drover_container_blkio_read_bytes",
        "Bytes read from block devices",
        rd.clone(),
    );
    reg.register(
        "drover_container_blkio_write_bytes",
        "Bytes written to block devices",
        wr.clone(),
    );
    reg.register(
        "drover_host_cpu_percent",
        "Host CPU busy, percent of all CPUs",
        host_cpu.clone(),
    );
    reg.register(
        "drover_host_memory_used_bytes",
        "Host memory in use",
        host_mem.clone(),
    );
    reg.register(
        "drover_host_memory_bytes",
        "Host memory",
        host_total.clone(),
    );
    state.monitor.read(|hosts| {
        for (host, samples, series) in hosts {
            if let Some(s) = samples.back() {
                let l = labels(&[("host", host)]);
                host_cpu.get_or_create(&l).set(f64::from(s.cpu_percent));
                host_mem.get_or_create(&l).set(s.mem_used as i64);
                host_total.get_or_create(&l).set(s.mem_total as i64);
            }
            for (name, c) in series {
                let Some(s) = c.samples.back() else { continue };
                let l = labels(&[
                    ("env", &c.env),
                    ("stack", &c.stack),
                    ("service", &c.service),
                    ("host", host),
                    ("container", name),
                ]);
                cpu.get_or_create(&l).set(f64::from(s.cpu_percent));
                mem.get_or_create(&l).set(s.mem_bytes as i64);
                mem_limit.get_or_create(&l).set(c.mem_limit as i64);
                rx.get_or_create(&l).set(s.net_rx as i64);
                tx.get_or_create(&l).set(s.net_tx as i64);
                rd.get_or_create(&l).set(s.blk_read as i64);
                wr.get_or_create(&l).set(s.blk_write as i64);
            }
        }
    });
    let mut out = String::new();
    encode(&mut out, &reg)?;
    Ok(out)
}

#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let text = state
        .blocking(render)
        .await
        .map_err(|e| ApiError::unavailable(format!("metrics: {e}")))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Only this stack's containers.
    #[serde(default)]
    stack: Option<String>,
    /// Only this service's (with `stack`).
    #[serde(default)]
    service: Option<String>,
    /// Hosts only, no container.
    #[serde(default)]
    hosts_only: bool,
}

/// The last hour of samples of an environment's containers and hosts (hosts only for
/// callers who may see hosts).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsSeries {
    /// Host id → samples (`at_ms`, `cpu_percent`, `mem_used`, `mem_total`).
    #[schema(value_type = Object)]
    pub hosts: BTreeMap<String, serde_json::Value>,
    /// Container name → stack, service, host, mem_limit and samples (`at_ms`,
    /// `cpu_percent`, `mem_bytes`, `net_rx`, `net_tx`, `blk_read`, `blk_write`).
    #[schema(value_type = Object)]
    pub containers: BTreeMap<String, serde_json::Value>,
}

#[utoipa::path(get, path = "/v1/environments/{env}/stats", tag = "metrics",
    params(("env" = String, Path, description = "environment"), StatsQuery),
    responses((status = 200, body = StatsSeries)))]
pub async fn series(
    State(state): State<Arc<AppState>>,
    Who(who): Who,
    Path(env): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Json<StatsSeries> {
    // Hosts' figures follow the right to see hosts (a restricted user has none).
    let sees_hosts = who
        .role(&env)
        .is_some_and(|r| access::role_allows(r, access::Action::ReadHosts));
    let env_hosts: std::collections::BTreeSet<String> = if sees_hosts {
        state
            .model()
            .hosts(&env)
            .into_iter()
            .map(|h| h.id.clone())
            .collect()
    } else {
        Default::default()
    };
    let mut out = StatsSeries {
        hosts: BTreeMap::new(),
        containers: BTreeMap::new(),
    };
    state.monitor.read(|hosts| {
        for (host, samples, series) in hosts {
            if env_hosts.contains(host) {
                out.hosts.insert(
                    host.to_string(),
                    serde_json::to_value(samples).unwrap_or_default(),
                );
            }
            for (name, c) in series {
                let wanted = !q.hosts_only
                    && c.env == env
                    && q.stack.as_ref().is_none_or(|s| *s == c.stack)
                    && q.service.as_ref().is_none_or(|s| *s == c.service);
                if wanted {
                    out.containers.insert(
                        name.clone(),
                        serde_json::json!({
                            "stack": c.stack, "service": c.service, "host": host,
                            "mem_limit": c.mem_limit, "samples": c.samples,
                        }),
                    );
                }
            }
        }
    });
    Json(out)
}
