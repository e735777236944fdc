//! Shared server state: the store, live agent sessions and what each host last reported, and
//! the computation of the desired state each host receives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use proto::{Desired, Observed, ServerMsg};
use tokio::sync::mpsc;

/// How long the scheduler remembers that a service failed on a host.
pub const FAILURE_MEMORY_MS: u64 = 5 * 60 * 1000;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A connected agent.
pub struct AgentConn {
    pub session: u64,
    pub env: String,
    pub tx: mpsc::UnboundedSender<ServerMsg>,
}

/// What a host last told us, kept after it disconnects (shown as stale).
#[derive(Default, Clone)]
pub struct HostReport {
    pub observed: Observed,
    pub last_seen_ms: u64,
}

pub enum LogEvent {
    Data(String),
    End(Option<String>),
}

pub struct AppState {
    store: Mutex<store::Store>,
    pub cluster_id: String,
    /// Uploaded build contexts, by SHA-256.
    pub blobs_dir: std::path::PathBuf,
    agents: RwLock<HashMap<String, AgentConn>>,
    reports: RwLock<HashMap<String, HostReport>>,
    ephemeral: RwLock<HashSet<String>>,
    pub(crate) log_streams: Mutex<HashMap<u64, mpsc::Sender<LogEvent>>>,
    next_id: AtomicU64,
    /// Recent failures of a service on a host: (group, host) -> (count, when last seen).
    failure_memory: Mutex<HashMap<(String, String), (u32, u64)>>,
    /// Why replicas are unplaced, per environment and container name.
    pending: RwLock<HashMap<String, HashMap<String, String>>>,
    pub timing: crate::scheduling::Timing,
    /// When this server process started: hosts count as seen then, so a restart of the
    /// control plane never fails hosts over before their agents had time to reconnect.
    pub started_ms: u64,
}

impl AppState {
    pub fn new(
        store: store::Store,
        cluster_id: String,
        blobs_dir: std::path::PathBuf,
        timing: crate::scheduling::Timing,
    ) -> Self {
        AppState {
            store: Mutex::new(store),
            cluster_id,
            blobs_dir,
            agents: RwLock::default(),
            reports: RwLock::default(),
            ephemeral: RwLock::default(),
            log_streams: Mutex::default(),
            next_id: AtomicU64::new(1),
            pending: RwLock::default(),
            failure_memory: Mutex::default(),
            timing,
            started_ms: now_ms(),
        }
    }

    /// The store. Held only for short, synchronous calls.
    pub fn store(&self) -> MutexGuard<'_, store::Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A token for an agent in this same process (`drover up`), valid until exit, never stored.
    pub fn issue_ephemeral_agent_token(&self) -> String {
        let token = crate::auth::new_token();
        write(&self.ephemeral).insert(crate::auth::hash_token(&token));
        token
    }

    pub fn is_ephemeral_agent_token(&self, hash: &str) -> bool {
        read(&self.ephemeral).contains(hash)
    }

    pub fn register_agent(&self, host: &str, conn: AgentConn) {
        write(&self.agents).insert(host.to_string(), conn);
    }

    pub fn unregister_agent(&self, host: &str, session: u64) {
        let mut agents = write(&self.agents);
        if agents.get(host).is_some_and(|c| c.session == session) {
            agents.remove(host);
        }
    }

    /// Ends a host's agent session (its host was removed).
    pub fn disconnect_agent(&self, host: &str) {
        write(&self.agents).remove(host);
    }

    pub fn connected_hosts(&self, env: &str) -> Vec<String> {
        let mut v: Vec<String> = read(&self.agents)
            .iter()
            .filter(|(_, c)| c.env == env)
            .map(|(h, _)| h.clone())
            .collect();
        v.sort();
        v
    }

    pub fn is_connected(&self, host: &str) -> bool {
        read(&self.agents).contains_key(host)
    }

    pub fn send_to(&self, host: &str, msg: ServerMsg) -> bool {
        read(&self.agents)
            .get(host)
            .is_some_and(|c| c.tx.send(msg).is_ok())
    }

    pub fn set_report(&self, host: &str, observed: Observed) {
        write(&self.reports).insert(
            host.to_string(),
            HostReport {
                observed,
                last_seen_ms: now_ms(),
            },
        );
    }

    pub fn touch(&self, host: &str) {
        if let Some(r) = write(&self.reports).get_mut(host) {
            r.last_seen_ms = now_ms();
        }
    }

    pub fn report(&self, host: &str) -> Option<HostReport> {
        read(&self.reports).get(host).cloned()
    }

    pub fn set_pending_reasons(&self, env: &str, reasons: HashMap<String, String>) {
        write(&self.pending).insert(env.to_string(), reasons);
    }

    pub fn pending_reason(&self, env: &str, container: &str) -> Option<String> {
        read(&self.pending).get(env)?.get(container).cloned()
    }

    /// Notes that a service's container failed `count` times in a row on `host`.
    pub fn remember_failure(&self, group: &str, host: &str, count: u32, now: u64) {
        let mut m = self
            .failure_memory
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let e = m.entry((group.to_string(), host.to_string())).or_default();
        e.0 = e.0.max(count);
        e.1 = now;
    }

    /// Failures of a service on a host within [`FAILURE_MEMORY_MS`].
    pub fn failures_of(&self, group: &str, host: &str, now: u64) -> u32 {
        let m = self
            .failure_memory
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.get(&(group.to_string(), host.to_string()))
            .filter(|(_, at)| now.saturating_sub(*at) < FAILURE_MEMORY_MS)
            .map(|(n, _)| *n)
            .unwrap_or(0)
    }

    /// Every remembered failure still within [`FAILURE_MEMORY_MS`]; older ones are forgotten.
    pub fn recent_failures(&self, now: u64) -> Vec<(String, String, u32)> {
        let mut m = self
            .failure_memory
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        m.retain(|_, (_, at)| now.saturating_sub(*at) < FAILURE_MEMORY_MS);
        m.iter()
            .map(|((g, h), (n, _))| (g.clone(), h.clone(), *n))
            .collect()
    }

    /// Runs a scheduling pass over `env` and pushes desired states if placements changed.
    pub fn reschedule(&self, env: &str) -> Result<(), store::Error> {
        if crate::scheduling::pass(self, env, &self.timing)? {
            self.push_desired();
        }
        Ok(())
    }

    pub fn reports(&self) -> HashMap<String, HostReport> {
        read(&self.reports).clone()
    }

    /// The full desired state of one host, from the store.
    pub fn desired_for_host(&self, host: &str) -> Result<Desired, store::Error> {
        let store = self.store();
        let placements = store.placements()?;
        let mut by_stack: BTreeMap<(String, String), Vec<(String, u32)>> = BTreeMap::new();
        for p in placements
            .into_iter()
            .filter(|p| p.host.as_deref() == Some(host))
        {
            by_stack
                .entry((p.env, p.stack))
                .or_default()
                .push((p.service, p.slot));
        }
        let mut desired = Desired {
            generation: now_ms(),
            ..Default::default()
        };
        for ((env, stack), slots) in by_stack {
            let Some(row) = store.stack(&env, &stack)? else {
                continue;
            };
            let (c, n, v) = proto::desired_for_stack(&env, &row.project, &slots);
            desired.containers.extend(c);
            desired.networks.extend(n);
            desired.volumes.extend(v);
        }
        Ok(desired)
    }

    /// Sends every connected agent its current desired state.
    pub fn push_desired(&self) {
        let hosts: Vec<String> = read(&self.agents).keys().cloned().collect();
        for host in hosts {
            match self.desired_for_host(&host) {
                Ok(d) => {
                    self.send_to(&host, ServerMsg::Desired(d));
                }
                Err(e) => tracing::error!("desired state for {host}: {e}"),
            }
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_remembered_for_a_while_then_forgotten() {
        let store = store::Store::open_in_memory().expect("store");
        let state = AppState::new(
            store,
            "c".into(),
            std::env::temp_dir(),
            crate::scheduling::Timing::default(),
        );
        state.remember_failure("default/s/web", "h1", 2, 1_000);
        state.remember_failure("default/s/web", "h1", 4, 2_000);
        state.remember_failure("default/s/web", "h1", 1, 3_000);
        assert_eq!(state.failures_of("default/s/web", "h1", 3_000), 4);
        assert_eq!(state.failures_of("default/s/web", "h2", 3_000), 0);
        assert_eq!(state.failures_of("default/s/db", "h1", 3_000), 0);
        let later = 3_000 + FAILURE_MEMORY_MS;
        assert_eq!(state.failures_of("default/s/web", "h1", later), 0);
        assert_eq!(
            state.recent_failures(3_001),
            vec![("default/s/web".to_string(), "h1".to_string(), 4)]
        );
        assert!(state.recent_failures(later).is_empty());
    }
}
