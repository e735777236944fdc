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
    registry_lock: Mutex<()>,
}

impl Default for Monitor {
    fn default() -> Self {
        Monitor {
            hosts: RwLock::default(),
            api_latency: Family::new_with_constructor(latency_histogram),
            store_held: latency_histogram(),
            pass_us: AtomicU64::new(0),
            public: std::sync::atomic::AtomicBool::new(false),
            registry_lock: Mutex::new(()),
        }
    }
}

impl Monitor {
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
