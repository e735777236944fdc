//! Monitoring: the resource use agents sample (kept for an hour per host and container, in
//! bounded rings), and the server's own figures (API latency by route, scheduling pass
//! time), exposed as the Prometheus text format at `/metrics` and as series at
//! `/v1/environments/{env}/stats`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Samples kept per host and per container: an hour at the agents' 10 s.
pub const HISTORY: usize = 360;
/// A container not reported for this long is forgotten.
const FORGET_MS: u64 = 3600 * 1000;

/// One sample of a container (compact: 1,000 containers for an hour is about 20 MB).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    pub at_ms: u64,
    pub cpu_percent: f32,
    pub mem_bytes: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub blk_read: u64,
    pub blk_write: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct HostSample {
    pub at_ms: u64,
    pub cpu_percent: f32,
    pub mem_used: u64,
    pub mem_total: u64,
}

#[derive(Debug, Clone)]
pub struct Series {
    pub env: String,
    pub stack: String,
    pub service: String,
    pub mem_limit: u64,
    pub samples: VecDeque<Sample>,
}

#[derive(Debug, Default)]
struct HostHistory {
    samples: VecDeque<HostSample>,
    containers: HashMap<String, Series>,
}

fn push<T>(q: &mut VecDeque<T>, v: T) {
    if q.len() >= HISTORY {
        q.pop_front();
    }
    q.push_back(v);
}

type Labels = Vec<(String, String)>;
type Latency = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.1 ms to about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// A guard of the store that records, when dropped, how long it was held: each store
/// transaction (and read) is one hold.
pub struct Held<'a, T> {
    guard: std::sync::MutexGuard<'a, T>,
    since: std::time::Instant,
    into: &'a Histogram,
}

impl<'a, T> Held<'a, T> {
    pub fn new(guard: std::sync::MutexGuard<'a, T>, into: &'a Histogram) -> Self {
        Held {
            guard,
            since: std::time::Instant::now(),
            into,
        }
    }
}

impl<T> std::ops::Deref for Held<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> std::ops::DerefMut for Held<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for Held<'_, T> {
    fn drop(&mut self) {
        self.into.observe(self.since.elapsed().as_secs_f64());
    }
}

/// Everything monitoring keeps.
pub struct Monitor {
    hosts: RwLock<HashMap<String, HostHistory>>,
    pub api_latency: Latency,
    /// How long each use of the store held it (transactions and reads).
    pub store_held: Histogram,
    /// The last scheduling pass, in microseconds.
    pub pass_us: AtomicU64,
    /// `/metrics` needs no token (`--metrics-public`).
    pub public: std::sync::atomic::AtomicBool,
    /// How long each desired container took to settle, from when it was first seen not
    /// settled (a deploy, a scale, a failover, a crash).
    pub reconcile_seconds: Histogram,
    lag: Mutex<Lag>,
    registry_lock: Mutex<()>,
}

/// Since when each desired container has not been settled, per environment.
#[derive(Default)]
struct Lag {
    since: HashMap<String, HashMap<String, u64>>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            hosts: RwLock::default(),
            api_latency: Family::new_with_constructor(latency_histogram),
            store_held: latency_histogram(),
            pass_us: AtomicU64::new(0),
            public: std::sync::atomic::AtomicBool::new(false),
            // 0.1 s to about 30 min.
            reconcile_seconds: Histogram::new(exponential_buckets(0.1, 2.0, 15)),
            lag: Mutex::default(),
            registry_lock: Mutex::new(()),
        }
    }
}

impl Monitor {
    /// Notes which desired containers of each environment are not settled at `now_ms`
    /// (`unsettled`: every environment's, complete): a container settling records how long
    /// it took; environments not listed are forgotten.
    pub fn observe_unsettled(&self, unsettled: HashMap<String, Vec<String>>, now_ms: u64) {
        let mut lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        lag.since.retain(|env, _| unsettled.contains_key(env));
        for (env, names) in unsettled {
            let since = lag.since.entry(env).or_default();
            let now: std::collections::HashSet<String> = names.into_iter().collect();
            since.retain(|name, at| {
                let still = now.contains(name);
                if !still {
                    self.reconcile_seconds
                        .observe(now_ms.saturating_sub(*at) as f64 / 1000.0);
                }
                still
            });
            for name in now {
                since.entry(name).or_insert(now_ms);
            }
        }
    }

    /// Per environment, how long the longest-waiting desired container has not been settled
    /// (0 when every one is).
    pub fn reconcile_lag(&self, now_ms: u64) -> Vec<(String, f64)> {
        let lag = self.lag.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(String, f64)> = lag
            .since
            .iter()
            .map(|(env, since)| {
                let oldest = since
                    .values()
                    .min()
                    .map_or(0, |at| now_ms.saturating_sub(*at));
                (env.clone(), oldest as f64 / 1000.0)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Keeps host `host`'s report.
    pub fn record(&self, host: &str, s: proto::Stats) {
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        let h = hosts.entry(host.to_string()).or_default();
        push(
            &mut h.samples,
            HostSample {
                at_ms: s.at_ms,
                cpu_percent: s.host.cpu_percent as f32,
                mem_used: s.host.mem_used,
                mem_total: s.host.mem_total,
            },
        );
        for c in s.containers {
            let series = h
                .containers
                .entry(c.name.clone())
                .or_insert_with(|| Series {
                    env: c.env.clone(),
                    stack: c.stack.clone(),
                    service: c.service.clone(),
                    mem_limit: c.mem_limit,
                    samples: VecDeque::new(),
                });
            series.mem_limit = c.mem_limit;
            push(
                &mut series.samples,
                Sample {
                    at_ms: s.at_ms,
                    cpu_percent: c.cpu_percent as f32,
                    mem_bytes: c.mem_bytes,
                    net_rx: c.net_rx,
                    net_tx: c.net_tx,
                    blk_read: c.blk_read,
                    blk_write: c.blk_write,
                },
            );
        }
        let at = s.at_ms;
        h.containers.retain(|_, series| {
            series
                .samples
                .back()
                .is_some_and(|l| at.saturating_sub(l.at_ms) < FORGET_MS)
        });
    }

    /// Forgets a removed host.
    pub fn forget_host(&self, host: &str) {
        self.hosts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(host);
    }

    /// Each host's samples and its containers' series, as `f` reads them.
    pub fn read<T>(
        &self,
        f: impl FnOnce(
            &mut dyn Iterator<Item = (&str, &VecDeque<HostSample>, &HashMap<String, Series>)>,
        ) -> T,
    ) -> T {
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner());
        let mut it = hosts
            .iter()
            .map(|(k, h)| (k.as_str(), &h.samples, &h.containers));
        f(&mut it)
    }

    /// Serialises `/metrics` renders (the registry is built per scrape).
    pub fn scrape_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.registry_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records how long a request to `route` took.
    pub fn observe(&self, method: &str, route: &str, secs: f64) {
        self.api_latency
            .get_or_create(&vec![
                ("method".to_string(), method.to_string()),
                ("route".to_string(), route.to_string()),
            ])
            .observe(secs);
    }

    pub fn set_pass(&self, us: u64) {
        self.pass_us.store(us, Ordering::Relaxed);
    }
}

/// Every second: which desired containers are not settled, for the reconcile lag.
pub async fn watch_reconcile(state: std::sync::Arc<crate::state::AppState>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let st = state.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let envs = st.store().environments()?;
            let unsettled = envs
                .into_iter()
                .map(|env| {
                    let names = crate::api::stacks::unsettled(&st, &env);
                    (env, names)
                })
                .collect();
            st.monitor
                .observe_unsettled(unsettled, crate::state::now_ms());
            Ok::<_, store::Error>(())
        })
        .await;
        match looked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("reconcile lag: {e}"),
            Err(e) => tracing::warn!("reconcile lag: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsettled(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(env, names)| {
                (
                    env.to_string(),
                    names.iter().map(|n| n.to_string()).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn reconcile_lag_is_the_oldest_unsettled_container_and_settling_is_timed() {
        let m = Monitor::default();
        m.observe_unsettled(unsettled(&[("a", &["a-web-1"]), ("b", &[])]), 1_000);
        m.observe_unsettled(
            unsettled(&[("a", &["a-web-1", "a-web-2"]), ("b", &[])]),
            3_000,
        );
        assert_eq!(
            m.reconcile_lag(4_000),
            vec![("a".to_string(), 3.0), ("b".to_string(), 0.0)]
        );
        // web-1 settles after 5 s; web-2 is now the oldest.
        m.observe_unsettled(unsettled(&[("a", &["a-web-2"]), ("b", &[])]), 6_000);
        assert_eq!(m.reconcile_lag(6_000)[0], ("a".to_string(), 3.0));
        let mut text = String::new();
        let mut reg = prometheus_client::registry::Registry::default();
        reg.register("settle", "", m.reconcile_seconds.clone());
        prometheus_client::encoding::text::encode(&mut text, &reg).expect("encode");
        assert!(text.contains("settle_count 1"), "{text}");
        assert!(text.contains("settle_sum 5.0"), "{text}");
        // An environment gone is forgotten.
        m.observe_unsettled(unsettled(&[("b", &[])]), 7_000);
        assert_eq!(m.reconcile_lag(7_000), vec![("b".to_string(), 0.0)]);
    }
}
