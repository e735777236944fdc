//! Shared server state: the store, live agent sessions and what each host last reported, and
//! the computation of the desired state each host receives.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use proto::{Desired, Observed, ServerMsg};
use tokio::sync::mpsc;

use crate::model::{Model, Name, SlotId, StackKey};

/// How long the scheduler remembers that a service failed on a host.
pub const FAILURE_MEMORY_MS: u64 = 5 * 60 * 1000;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a new agent needs to join this server.
#[derive(Debug, Clone, Default)]
pub struct JoinInfo {
    /// The URL agents should use (`--advertise`), when known.
    pub url: Option<String>,
    /// `sha256:HEX` of the CA certificate when the server speaks TLS.
    pub ca_hash: Option<String>,
}

/// A connected agent.
pub struct AgentConn {
    pub session: u64,
    pub env: String,
    pub tx: mpsc::UnboundedSender<ServerMsg>,
    /// What changed in the host's desired state since the session last sent it. The
    /// session computes the message when it is ready to send, so a slow agent gets the
    /// latest state once, never a backlog.
    pub changes: Arc<Changes>,
}

/// Changes to one host's desired state not yet sent: everything, or some stacks.
#[derive(Default)]
pub struct Changes {
    pending: Mutex<Option<Pending>>,
    pub wake: tokio::sync::Notify,
}

pub enum Pending {
    All,
    Stacks(BTreeSet<StackKey>),
}

impl Changes {
    pub fn all(&self) {
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(Pending::All);
        self.wake.notify_one();
    }

    pub fn stacks(&self, keys: BTreeSet<StackKey>) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *p {
            Some(Pending::All) => {}
            Some(Pending::Stacks(s)) => s.extend(keys),
            None => *p = Some(Pending::Stacks(keys)),
        }
        drop(p);
        self.wake.notify_one();
    }

    pub fn take(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// What a host last told us, kept after it disconnects (shown as stale). Cheap to clone.
#[derive(Default, Clone)]
pub struct HostReport {
    body: Arc<ReportBody>,
    pub last_seen_ms: u64,
}

#[derive(Default, Clone)]
struct ReportBody {
    engine: proto::EngineStatus,
    containers: HashMap<String, proto::ObservedContainer>,
    errors: Vec<proto::ContainerError>,
    waiting: Vec<proto::ContainerError>,
    networks: Vec<proto::ObservedNetwork>,
}

impl HostReport {
    pub fn new(observed: Observed, last_seen_ms: u64) -> Self {
        HostReport {
            body: Arc::new(ReportBody {
                engine: observed.engine,
                containers: observed
                    .containers
                    .into_iter()
                    .map(|c| (c.name.clone(), c))
                    .collect(),
                errors: observed.errors,
                waiting: observed.waiting,
                networks: observed.networks,
            }),
            last_seen_ms,
        }
    }

    /// Brings the report up to date with the changes an agent sent.
    fn apply(&mut self, patch: proto::ObservedPatch, now: u64) {
        let body = Arc::make_mut(&mut self.body);
        for name in &patch.gone {
            body.containers.remove(name);
        }
        for c in patch.containers {
            body.containers.insert(c.name.clone(), c);
        }
        body.engine = patch.engine;
        body.errors = patch.errors;
        body.waiting = patch.waiting;
        if let Some(n) = patch.networks {
            body.networks = n;
        }
        self.last_seen_ms = now;
    }

    pub fn engine(&self) -> &proto::EngineStatus {
        &self.body.engine
    }

    pub fn container(&self, name: &str) -> Option<&proto::ObservedContainer> {
        self.body.containers.get(name)
    }

    pub fn containers(&self) -> impl Iterator<Item = &proto::ObservedContainer> {
        self.body.containers.values()
    }

    /// This cluster's networks on the host, with their subnets.
    pub fn networks(&self) -> &[proto::ObservedNetwork] {
        &self.body.networks
    }

    /// Containers that failed, with the last error and how many times in a row.
    pub fn errors(&self) -> &[proto::ContainerError] {
        &self.body.errors
    }

    pub fn error(&self, name: &str) -> Option<&proto::ContainerError> {
        self.body.errors.iter().find(|e| e.name == name)
    }

    pub fn waiting(&self, name: &str) -> Option<&str> {
        self.body
            .waiting
            .iter()
            .find(|e| e.name == name)
            .map(|w| w.message.as_str())
    }
}

/// An audit event owned, to hand to blocking store work.
pub struct Audit {
    pub env: String,
    pub actor: String,
    pub kind: &'static str,
    pub subject: String,
    pub detail: String,
    /// The caller's address.
    pub source: String,
}

impl Audit {
    /// An event of `caller`'s.
    pub fn by(
        caller: &crate::auth::Caller,
        env: &str,
        kind: &'static str,
        subject: &str,
        detail: impl Into<String>,
    ) -> Audit {
        Audit {
            env: env.to_string(),
            actor: caller.actor(),
            kind,
            subject: subject.to_string(),
            detail: detail.into(),
            source: caller.source.clone(),
        }
    }

    pub fn event(&self) -> store::NewEvent<'_> {
        store::NewEvent {
            env: &self.env,
            actor: &self.actor,
            kind: self.kind,
            subject: &self.subject,
            detail: &self.detail,
            source: &self.source,
            result: "ok",
        }
    }
}

pub struct AppState {
    store: Mutex<store::Store>,
    /// The in-memory mirror of the store that every read is served from.
    model: RwLock<Model>,
    /// Serialises placement-changing writes with scheduling passes (which decide from the
    /// model, then write): a pass never works from a model a deploy changed under it.
    writes: Mutex<()>,
    /// Requests for a scheduling pass, and the last request a finished pass covered.
    requested: AtomicU64,
    wake: tokio::sync::Notify,
    passed: tokio::sync::watch::Sender<u64>,
    pub cluster_id: String,
    /// Uploaded build contexts, by SHA-256.
    pub blobs_dir: std::path::PathBuf,
    agents: RwLock<HashMap<String, AgentConn>>,
    reports: RwLock<HashMap<String, HostReport>>,
    /// Tokens and credentials.
    pub keys: crate::auth::Keys,
    /// Users and members as the API edge reads them.
    pub accounts: crate::accounts::Accounts,
    /// The LDAP / Active Directory configuration.
    pub directory: crate::directory::Directory,
    /// App catalogs, indexed.
    pub catalogs: crate::catalogs::Catalogs,
    /// Resource use and the server's own figures.
    pub monitor: crate::stats::Monitor,
    /// Seals catalog answers.
    pub(crate) vault: Arc<vault::Vault>,
    /// What an agent needs to join: set once the listener is bound.
    join: std::sync::OnceLock<JoinInfo>,
    /// Environments found in the store, so requests do not wait for the store while it
    /// writes. Never deleted.
    known_envs: RwLock<HashSet<String>>,
    pub(crate) log_streams: crate::logs::Streams,
    /// Exec sessions relayed between API clients and agents.
    pub(crate) execs: crate::exec::Execs,
    next_id: AtomicU64,
    /// Recent failures of a service on a host: (group, host) -> (count, when last seen).
    failure_memory: Mutex<HashMap<(String, String), (u32, u64)>>,
    /// Why replicas are unplaced, per environment and container name.
    pending: RwLock<HashMap<String, HashMap<String, String>>>,
    pub timing: crate::scheduling::Timing,
    /// The mesh: hosts' tunnels, their health, and what each host is sent.
    pub mesh: crate::mesh::Hub,
    /// Private registry logins.
    pub registries: crate::registries::Registries,
    /// The ingress: certificates, ACME challenges, what each ingress host was sent.
    pub ingress: crate::ingress::Ingress,
    /// Secrets and configs.
    pub files: crate::files::Files,
    /// When this server process started: hosts count as seen then, so a restart of the
    /// control plane never fails hosts over before their agents had time to reconnect.
    pub started_ms: u64,
}

impl AppState {
    /// The state of a server keeping its files (build contexts, the secrets key) in
    /// `data_dir`.
    pub fn new(
        store: store::Store,
        cluster_id: String,
        data_dir: &std::path::Path,
        timing: crate::scheduling::Timing,
    ) -> Result<Self, crate::Error> {
        Self::open(store, cluster_id, data_dir, None, timing)
    }

    /// [`AppState::new`], with the key that seals secrets in `key_file` rather than in
    /// `<data_dir>/secrets.key`.
    pub fn open(
        store: store::Store,
        cluster_id: String,
        data_dir: &std::path::Path,
        key_file: Option<&std::path::Path>,
        timing: crate::scheduling::Timing,
    ) -> Result<Self, crate::Error> {
        let model = Model::load(&store)?;
        let vault = match key_file {
            Some(k) => vault::Vault::open_key(k),
            None => vault::Vault::open(data_dir),
        };
        let vault = Arc::new(vault.map_err(|e| crate::Error::Secrets(e.to_string()))?);
        let registries = crate::registries::Registries::load(vault.clone(), &store)
            .map_err(crate::Error::Secrets)?;
        let ingress =
            crate::ingress::Ingress::load(vault.clone(), &store).map_err(crate::Error::Secrets)?;
        let vault_for_answers = vault.clone();
        let directory = crate::directory::Directory::load(vault.clone(), &store)
            .map_err(crate::Error::Secrets)?;
        let files = crate::files::Files::load(vault, &store).map_err(crate::Error::Secrets)?;
        let accounts = crate::accounts::Accounts::default();
        accounts.reload(&store)?;
        Ok(AppState {
            accounts,
            directory,
            catalogs: crate::catalogs::Catalogs::new(data_dir),
            monitor: crate::stats::Monitor::default(),
            vault: vault_for_answers,
            store: Mutex::new(store),
            model: RwLock::new(model),
            writes: Mutex::new(()),
            requested: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            passed: tokio::sync::watch::Sender::new(0),
            cluster_id,
            blobs_dir: data_dir.join("blobs"),
            registries,
            ingress,
            files,
            agents: RwLock::default(),
            reports: RwLock::default(),
            keys: crate::auth::Keys::default(),
            join: std::sync::OnceLock::new(),
            known_envs: RwLock::default(),
            log_streams: crate::logs::Streams::default(),
            execs: crate::exec::Execs::default(),
            next_id: AtomicU64::new(1),
            pending: RwLock::default(),
            failure_memory: Mutex::default(),
            timing,
            mesh: crate::mesh::Hub::default(),
            started_ms: now_ms(),
        })
    }

    /// The store. Held only for short, synchronous calls. Changes to hosts, stacks and
    /// placements go through the write-through methods below instead.
    pub fn store(&self) -> crate::stats::Held<'_, store::Store> {
        let guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        crate::stats::Held::new(guard, &self.monitor.store_held)
    }

    /// The in-memory model, for reading. Not held across awaits.
    pub fn model(&self) -> RwLockReadGuard<'_, Model> {
        read(&self.model)
    }

    /// Runs `commit` on the store and, once it committed, `apply` on the model, both under the
    /// store lock so the model sees changes in commit order.
    fn write_through<T>(
        &self,
        commit: impl FnOnce(&mut store::Store) -> Result<T, store::Error>,
        apply: impl FnOnce(&mut Model, &store::Store, &T) -> Result<(), store::Error>,
    ) -> Result<T, store::Error> {
        let _serial = self.serialise_writes();
        let mut store = self.store();
        let out = commit(&mut store)?;
        apply(&mut write(&self.model), &store, &out)?;
        Ok(out)
    }

    /// Held by whoever decides placements from the model and then writes them.
    pub(crate) fn serialise_writes(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs blocking work (store writes, which may wait for a scheduling pass) off the
    /// async workers.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&AppState) -> T + Send + 'static,
    ) -> T {
        let state = self.clone();
        match tokio::task::spawn_blocking(move || f(&state)).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Refreshes a host whose agent reconnected with `credential_hash`; false (and nothing
    /// written) when that is no longer the host's credential. Not serialised with passes: a
    /// pass that misses a refresh just sees it on the next one.
    pub fn refresh_host(
        &self,
        row: &store::HostRow,
        credential_hash: &str,
        now: u64,
    ) -> Result<bool, store::Error> {
        let mut store = self.store();
        if !store.refresh_host(row, credential_hash, now)? {
            return Ok(false);
        }
        let record = store.host(&row.id)?;
        write(&self.model).put_host(&row.id, record);
        Ok(true)
    }

    /// Registers a new host with its credential (see [`store::Store::register_host`]).
    pub fn register_new_host(
        &self,
        row: &store::HostRow,
        via: Option<&str>,
        credential_hash: &str,
        reclaim: bool,
    ) -> Result<Result<(), store::Refusal>, store::Error> {
        let mut store = self.store();
        let outcome = store.register_host(row, via, credential_hash, reclaim, now_ms())?;
        if outcome.is_ok() {
            let record = store.host(&row.id)?;
            write(&self.model).put_host(&row.id, record);
            self.keys.forget_host(&row.id);
        }
        if let Some(hash) = via {
            self.keys.forget(hash);
        }
        Ok(outcome)
    }

    /// A change to host `id` (labels, draining, removal), mirrored from the store's record.
    pub fn change_host(
        &self,
        id: &str,
        commit: impl FnOnce(&mut store::Store) -> Result<bool, store::Error>,
    ) -> Result<bool, store::Error> {
        self.write_through(commit, |m, s, _| {
            m.put_host(id, s.host(id)?);
            Ok(())
        })
    }

    /// A stack's new revision: `plan` decides, from the stack as it is (under the write
    /// serialisation, so nothing changes it meanwhile), the slots and rolls written with it.
    /// With `expected`, only if the stack is still at that revision (a change made from it
    /// must not undo one made meanwhile).
    #[allow(clippy::too_many_arguments)]
    pub fn put_stack(
        &self,
        env: &str,
        project: &compose::Project,
        files: &[(store::FileRow, Vec<u8>)],
        plan: impl FnOnce(Option<&crate::model::StackEntry>) -> crate::rolls::Deployed,
        event: &store::NewEvent<'_>,
        now: u64,
        expected: Option<u64>,
    ) -> Result<(), store::Error> {
        let _serial = self.serialise_writes();
        let (deployed, current) = {
            let model = self.model();
            let old = model.stack(env, &project.name);
            (plan(old), old.map(|e| e.row.revision))
        };
        if let Some(rev) = expected
            && current != Some(rev)
        {
            return Err(store::Error::Conflict(format!(
                "stack '{}' changed meanwhile (revision {}, not {rev}): try again",
                project.name,
                current.map_or("removed".to_string(), |c| c.to_string())
            )));
        }
        let rows: Vec<store::RollRow> = deployed
            .rolls
            .iter()
            .map(|(service, r)| store::RollRow {
                env: env.to_string(),
                stack: project.name.clone(),
                service: service.to_string(),
                state: serde_json::to_string(r).ok(),
            })
            .collect();
        let mut store = self.store();
        let file_rows: Vec<store::FileRow> = files.iter().map(|(r, _)| r.clone()).collect();
        let revision = store.put_stack(
            env,
            project,
            &deployed.placements,
            &rows,
            &file_rows,
            event,
            now,
        )?;
        self.files.remember(files);
        let mut m = write(&self.model);
        let created_ms = m
            .stack(env, &project.name)
            .map_or(now, |e| e.row.created_ms);
        let row = store::StackRow {
            env: env.to_string(),
            project: project.clone(),
            revision,
            created_ms,
            updated_ms: now,
        };
        m.put_stack(row, &deployed.placements, deployed.rolls);
        Ok(())
    }

    pub fn delete_stack(
        &self,
        env: &str,
        name: &str,
        event: &store::NewEvent<'_>,
        now: u64,
    ) -> Result<bool, store::Error> {
        self.write_through(
            |s| s.delete_stack(env, name, event, now),
            |m, _, _| {
                m.delete_stack(env, name);
                self.files.forget_stack(env, name);
                Ok(())
            },
        )
    }

    /// Placement moves, under the [`AppState::serialise_writes`] guard the caller holds (a
    /// pass decides from the model and writes under it).
    pub fn move_placements(
        &self,
        _serial: &MutexGuard<'_, ()>,
        set: &[store::Placement],
        remove: &[store::Placement],
        event: Option<&store::NewEvent<'_>>,
        now: u64,
    ) -> Result<(), store::Error> {
        let mut store = self.store();
        store.move_placements(set, remove, &[], event, now)?;
        write(&self.model).move_placements(set, remove);
        Ok(())
    }

    /// A roll step the store committed: its placement changes and the rolls' new states
    /// (draining containers leave the names at once).
    pub fn apply_roll_step(
        &self,
        _serial: &MutexGuard<'_, ()>,
        set: &[store::Placement],
        remove: &[store::Placement],
        rolls: Vec<(StackKey, Name, roll::Roll)>,
    ) {
        let envs: BTreeSet<Name> = rolls.iter().map(|(k, _, _)| k.0.clone()).collect();
        {
            let mut m = write(&self.model);
            m.move_placements(set, remove);
            for (key, service, r) in rolls {
                m.put_roll(&key, &service, Some(r));
            }
        }
        for env in envs {
            self.mesh.changed(&env);
        }
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn set_join_info(&self, info: JoinInfo) {
        let _ = self.join.set(info);
    }

    pub fn join_info(&self) -> JoinInfo {
        self.join.get().cloned().unwrap_or_default()
    }

    /// A token for an agent in this same process (`drover up`), valid until exit, never stored.
    pub fn issue_ephemeral_agent_token(&self) -> String {
        self.keys.issue_ephemeral()
    }

    /// Runs a change to users or members on the store and reloads what the edge reads.
    pub fn change_accounts<T>(
        &self,
        f: impl FnOnce(&mut store::Store) -> Result<T, store::Error>,
    ) -> Result<T, store::Error> {
        let mut store = self.store();
        let out = f(&mut store)?;
        self.accounts.reload(&store)?;
        Ok(out)
    }

    /// The token with this hash.
    pub fn token(&self, hash: &str) -> Result<Option<store::TokenRow>, store::Error> {
        self.keys.lookup(&self.store, hash)
    }

    /// Removes an empty environment (the store refuses one that holds anything), and
    /// forgets its tokens. False when there was none.
    pub fn delete_environment(
        &self,
        env: &str,
        event: &store::NewEvent<'_>,
        now: u64,
    ) -> Result<bool, store::Error> {
        let _serial = self.serialise_writes();
        // Forgotten while the store is held: a lookup cannot cache them again meanwhile.
        let mut store = self.store();
        let removed = store.delete_environment(env, event, now)?;
        self.keys.forget_env(env);
        self.accounts.reload(&store)?;
        write(&self.known_envs).remove(env);
        drop(store);
        Ok(removed)
    }

    pub fn environment_exists(&self, env: &str) -> Result<bool, store::Error> {
        if read(&self.known_envs).contains(env) {
            return Ok(true);
        }
        let exists = self.store().environment_exists(env)?;
        if exists {
            write(&self.known_envs).insert(env.to_string());
        }
        Ok(exists)
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

    /// Ends a host's agent session for good (its host was removed): the agent is told why,
    /// then the session closes.
    pub fn revoke_agent(&self, host: &str, reason: &str) {
        self.mesh.forget(host);
        if let Some(c) = write(&self.agents).remove(host) {
            let _ = c.tx.send(ServerMsg::Revoked {
                reason: reason.to_string(),
            });
        }
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

    /// Opens a stream (of logs, of an exec session) on `host`'s current agent session and
    /// sends that session the request `msg(req)` makes, both under one look at the sessions:
    /// the stream belongs to the session that got the request. `None` when the host is not
    /// connected.
    pub fn open_stream<T: crate::logs::Chunk>(
        &self,
        streams: &crate::logs::Streams<T>,
        host: &str,
        msg: impl FnOnce(u64) -> ServerMsg,
    ) -> Option<crate::logs::Reader<T>> {
        let agents = read(&self.agents);
        let conn = agents.get(host)?;
        let reader = streams.open(host, conn.session);
        if conn.tx.send(msg(reader.req)).is_err() {
            streams.end(None, reader.req, None);
            return None;
        }
        Some(reader)
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
        let report = HostReport::new(observed, now_ms());
        write(&self.reports).insert(host.to_string(), report);
    }

    /// Applies a report's changes; false if there is no report to apply them to.
    pub fn patch_report(&self, host: &str, patch: proto::ObservedPatch) -> bool {
        match write(&self.reports).get_mut(host) {
            Some(r) => {
                r.apply(patch, now_ms());
                true
            }
            None => false,
        }
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

    /// Asks for a scheduling pass soon (coalesced with other requests).
    pub fn schedule_soon(&self) -> u64 {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        ticket
    }

    /// Asks for a scheduling pass and waits until one that started after this call has
    /// finished (its placements written and desired states pushed).
    pub async fn schedule_now(&self) {
        let ticket = self.schedule_soon();
        let mut rx = self.passed.subscribe();
        let _ = rx.wait_for(|done| *done >= ticket).await;
    }

    /// For the scheduling loop: waits for a request or `tick`, whichever comes first, and
    /// returns the ticket the coming pass covers.
    pub(crate) async fn next_pass(&self, tick: std::time::Duration) -> u64 {
        let _ = tokio::time::timeout(tick, self.wake.notified()).await;
        self.requested.load(Ordering::SeqCst)
    }

    /// For the scheduling loop: the pass covering `ticket` has finished.
    pub(crate) fn pass_done(&self, ticket: u64) {
        self.passed.send_replace(ticket);
    }

    /// Host `host`'s share of the given stacks (of all its stacks when `only` is `None`);
    /// a listed stack with nothing on the host gives an empty part.
    pub fn desired_parts(
        &self,
        host: &str,
        only: Option<&BTreeSet<StackKey>>,
    ) -> Vec<proto::StackPart> {
        let model = self.model();
        let on_host = model.slots_on(host);
        let keys: Vec<&StackKey> = match only {
            Some(o) => o.iter().collect(),
            None => on_host.into_iter().flat_map(|m| m.keys()).collect(),
        };
        keys.into_iter()
            .map(|key| {
                let slots: Vec<&SlotId> = on_host
                    .and_then(|m| m.get(key))
                    .into_iter()
                    .flatten()
                    .collect();
                match model.stack_by_key(key) {
                    Some(entry) if !slots.is_empty() => {
                        // Slots by the revision they run (several during a roll).
                        let mut by_rev: BTreeMap<u64, Vec<(String, u32)>> = BTreeMap::new();
                        for s in slots {
                            by_rev
                                .entry(entry.rev_of(s))
                                .or_default()
                                .push((s.0.to_string(), s.1));
                        }
                        let mut part = proto::StackPart::default();
                        for (rev, slots) in by_rev {
                            let p = proto::desired_for_stack(&key.0, entry.project_of(rev), &slots);
                            part.merge(p);
                        }
                        // Judged once per service, not once per container.
                        let mut quorum: HashMap<String, bool> = HashMap::new();
                        for c in &mut part.containers {
                            if let Some(image) = &c.spec.image {
                                c.registry_auth = self.registries.auth_for(&key.0, image);
                            }
                            if !c.spec.secrets.is_empty() || !c.spec.configs.is_empty() {
                                let rev = entry.rev_of(&(c.service.as_str().into(), c.slot));
                                let project = entry.project_of(rev);
                                c.files = self.files.mounts(&key.0, project, &c.service);
                            }
                            if on_quorum(&c.spec) {
                                c.replace_unhealthy =
                                    *quorum.entry(c.service.clone()).or_insert_with(|| {
                                        self.quorum_healthy(&key.0, entry, &c.service)
                                    });
                            }
                        }
                        part
                    }
                    _ => proto::StackPart {
                        env: key.0.to_string(),
                        stack: key.1.to_string(),
                        ..Default::default()
                    },
                }
            })
            .collect()
    }

    /// Whether more than half of a service's replicas run and are not unhealthy (by what
    /// their hosts report).
    fn quorum_healthy(&self, env: &str, entry: &crate::model::StackEntry, service: &str) -> bool {
        let replicas: Vec<Option<proto::ObservedContainer>> = entry
            .slots
            .iter()
            .filter(|((svc, _), _)| &**svc == service)
            .map(|((_, slot), host)| {
                let name = proto::container_name(&entry.row.project.name, service, *slot);
                host.as_ref()
                    .and_then(|h| self.report(h))
                    .and_then(|r| r.container(&name).cloned())
                    .filter(|c| c.env == env)
            })
            .collect();
        reconciler::health::quorum(replicas.iter().map(Option::as_ref))
    }

    /// Every stack of `env` is sent to its hosts again (what goes with each container
    /// changed, e.g. a registry login).
    pub fn touch_environment(&self, env: &str) {
        {
            let mut m = write(&self.model);
            let keys: Vec<StackKey> = m
                .stacks(env)
                .map(|e| (Name::from(env), Name::from(e.row.project.name.as_str())))
                .collect();
            for k in &keys {
                m.touch_stack(k);
            }
        }
        self.push_dirty();
    }

    /// Containers' health changed: services that recreate on quorum are sent their desired
    /// state again, with the quorum as it is now.
    pub fn health_changed(&self, env: &str, changed: &[proto::ObservedContainer]) {
        if !changed.iter().any(|c| c.health.is_some()) {
            return;
        }
        let keys: BTreeSet<StackKey> = {
            let model = self.model();
            changed
                .iter()
                .filter(|c| {
                    model
                        .stack(env, &c.stack)
                        .and_then(|e| e.row.project.services.get(&c.service))
                        .is_some_and(on_quorum)
                })
                .filter_map(|c| {
                    model
                        .stack(env, &c.stack)
                        .map(|_| (Name::from(env), Name::from(c.stack.as_str())))
                })
                .collect()
        };
        if keys.is_empty() {
            return;
        }
        {
            let mut m = write(&self.model);
            for k in &keys {
                m.touch_stack(k);
            }
        }
        self.push_dirty();
    }

    /// The message that brings host `host`'s agent up to date with `pending`.
    pub fn desired_msg(&self, host: &str, pending: Pending) -> ServerMsg {
        match pending {
            Pending::All => ServerMsg::Desired(Desired::from_parts(
                now_ms(),
                self.desired_parts(host, None),
            )),
            Pending::Stacks(keys) => ServerMsg::DesiredStacks(proto::DesiredPatch {
                generation: now_ms(),
                stacks: self.desired_parts(host, Some(&keys)),
            }),
        }
    }

    /// Sends every connected host whose desired state changed its new desired state.
    pub fn push_dirty(&self) {
        let dirty: HashMap<Name, BTreeSet<StackKey>> = write(&self.model).take_dirty();
        // Placements moved: names follow them.
        let envs: BTreeSet<&str> = dirty.values().flatten().map(|k| &*k.0).collect();
        for env in envs {
            self.mesh.changed(env);
        }
        let agents = read(&self.agents);
        for (host, stacks) in dirty {
            if let Some(c) = agents.get(&*host) {
                c.changes.stacks(stacks);
            }
        }
    }
}

/// The service recreates unhealthy containers only while most of it is healthy.
fn on_quorum(spec: &compose::Service) -> bool {
    proto::x_drover(spec).is_ok_and(|x| x.on_unhealthy() == proto::OnUnhealthy::RecreateOnQuorum)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

/// A state on an empty in-memory store, for unit tests.
#[cfg(test)]
pub(crate) fn test_state() -> AppState {
    let store = store::Store::open_in_memory().expect("store");
    let dir = std::env::temp_dir().join(format!("drover-state-test-{}", std::process::id()));
    AppState::new(
        store,
        "c".into(),
        &dir,
        crate::scheduling::Timing::default(),
    )
    .expect("state")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_remembered_for_a_while_then_forgotten() {
        let state = test_state();
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
