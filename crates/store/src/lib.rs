//! The durable state store. One SQLite file in WAL mode; every state change is one transaction
//! together with its audit-log event, so a `kill -9` at any moment leaves either the old or
//! the new state, never a mix.
//!
//! The server owns the only connection; callers serialise access (the server wraps it in a
//! mutex). Times are passed in by the caller (`now_ms`): the store never reads the clock.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

/// Audit-log retention's hard limit: events beyond this count are deleted on append,
/// whatever the configured retention (`prune_events` applies that).
pub const MAX_EVENTS: i64 = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("store: corrupt record {what}: {why}")]
    Corrupt { what: String, why: String },
    #[error("store was written by a newer Drover (schema {found}, this binary knows {known})")]
    TooNew { found: i64, known: i64 },
    /// A change made from a revision that is no longer the current one.
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the write failed for want of space: SQLite's `SQLITE_FULL` (the disk holding
    /// the data directory is full). Nothing was written; reads still work.
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            Error::Sql(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull
        )
    }
}

mod accounts;
mod catalogs;
mod certs;
pub use accounts::{AuditFilter, MemberRow, NewUserToken, UserRow};
pub use catalogs::CatalogRow;
pub use certs::CertRow;

const SCHEMA: &[&str] = &[
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE environments (name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL);
CREATE TABLE tokens (
    hash TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, env TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE hosts (
    id TEXT PRIMARY KEY, env TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL,
    created_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL
);
CREATE TABLE stacks (
    env TEXT NOT NULL, name TEXT NOT NULL, project TEXT NOT NULL, revision INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (env, name)
);
CREATE TABLE placements (
    env TEXT NOT NULL, stack TEXT NOT NULL, service TEXT NOT NULL, slot INTEGER NOT NULL,
    host TEXT, PRIMARY KEY (env, stack, service, slot)
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, env TEXT NOT NULL,
    actor TEXT NOT NULL, kind TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE INDEX events_env ON events (env, id);
INSERT INTO environments (name, created_ms) VALUES ('default', 0);
"#,
    r#"
ALTER TABLE hosts ADD COLUMN user_labels TEXT NOT NULL DEFAULT '{}';
ALTER TABLE hosts ADD COLUMN draining INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
ALTER TABLE tokens ADD COLUMN expires_ms INTEGER;
ALTER TABLE tokens ADD COLUMN uses_left INTEGER;
ALTER TABLE tokens ADD COLUMN host TEXT;
CREATE INDEX tokens_host ON tokens (host);
CREATE TABLE removed_hosts (id TEXT PRIMARY KEY, removed_ms INTEGER NOT NULL);
"#,
    r#"
ALTER TABLE hosts ADD COLUMN mesh_index INTEGER;
CREATE TABLE networks (
    env TEXT NOT NULL, name TEXT NOT NULL, created_ms INTEGER NOT NULL,
    PRIMARY KEY (env, name)
);
"#,
    r#"
CREATE TABLE registries (
    env TEXT NOT NULL, host TEXT NOT NULL, username TEXT NOT NULL, sealed TEXT NOT NULL,
    created_ms INTEGER NOT NULL, PRIMARY KEY (env, host)
);
"#,
    r#"
ALTER TABLE environments ADD COLUMN mesh_index INTEGER;
UPDATE environments SET mesh_index = rowid - 1;
CREATE TABLE revisions (
    env TEXT NOT NULL, stack TEXT NOT NULL, revision INTEGER NOT NULL, project TEXT NOT NULL,
    actor TEXT NOT NULL, time_ms INTEGER NOT NULL, summary TEXT NOT NULL,
    PRIMARY KEY (env, stack, revision)
);
"#,
    r#"
ALTER TABLE placements ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
UPDATE placements SET rev = COALESCE((SELECT revision FROM stacks
    WHERE stacks.env = placements.env AND stacks.name = placements.stack), 0);
CREATE TABLE rolls (
    env TEXT NOT NULL, stack TEXT NOT NULL, service TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (env, stack, service)
);
"#,
    r#"
CREATE TABLE files (
    env TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, stack TEXT,
    sealed TEXT NOT NULL, version INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,
    PRIMARY KEY (env, kind, name)
);
"#,
    r#"
CREATE TABLE users (
    name TEXT PRIMARY KEY, password_hash TEXT, admin INTEGER NOT NULL DEFAULT 0,
    source TEXT NOT NULL DEFAULT 'local', created_ms INTEGER NOT NULL
);
CREATE TABLE members (
    env TEXT NOT NULL, subject TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (env, subject)
);
ALTER TABLE tokens ADD COLUMN user TEXT;
ALTER TABLE tokens ADD COLUMN last_used_ms INTEGER;
CREATE INDEX tokens_user ON tokens (user);
ALTER TABLE environments ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN result TEXT NOT NULL DEFAULT 'ok';
CREATE INDEX events_time ON events (time_ms);
INSERT INTO users (name, admin, created_ms)
    SELECT 'admin', 1, 0 WHERE EXISTS (SELECT 1 FROM tokens WHERE kind = 'admin');
UPDATE tokens SET user = 'admin' WHERE kind = 'admin';
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"#,
    r#"
CREATE TABLE catalogs (
    env TEXT NOT NULL, name TEXT NOT NULL, source TEXT NOT NULL, branch TEXT,
    created_ms INTEGER NOT NULL, PRIMARY KEY (env, name)
);
CREATE TABLE template_copies (digest TEXT PRIMARY KEY, template TEXT NOT NULL);
"#,
    r#"
CREATE TABLE certs (
    env TEXT NOT NULL, name TEXT NOT NULL, domains TEXT NOT NULL, chain_pem TEXT NOT NULL,
    key_sealed TEXT NOT NULL, not_after_s INTEGER NOT NULL, source TEXT NOT NULL,
    created_ms INTEGER NOT NULL, PRIMARY KEY (env, name)
);
"#,
];

/// A secret or config of an environment (`kind`: `secret` or `config`); the value only
/// sealed (see the `vault` crate). `stack`: the stack it belongs to and goes with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRow {
    pub env: String,
    pub kind: String,
    pub name: String,
    pub stack: Option<String>,
    pub sealed: String,
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// A service's rolling upgrade, as the roller keeps it (JSON of its own making).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollRow {
    pub env: String,
    pub stack: String,
    pub service: String,
    /// `None`: the service has no roll (any stored one is deleted).
    pub state: Option<String>,
}

/// Revisions kept per stack (older ones are dropped as new ones come).
pub const REVISIONS_KEPT: i64 = 50;

/// One deploy of a stack (its project is read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionRow {
    pub revision: u64,
    pub actor: String,
    pub time_ms: u64,
    pub summary: String,
}

/// A registry login of an environment; the password only sealed (see the `vault` crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRow {
    pub env: String,
    pub host: String,
    pub username: String,
    pub sealed: String,
    pub created_ms: u64,
}

/// A network made with `drover network create`, which stacks join as `external: true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRow {
    pub env: String,
    pub name: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenRow {
    /// The token's public id (never the secret).
    pub name: String,
    /// `apikey`, `session`, `agent` (registers new hosts), `host` (one host's credential),
    /// or from before users: `admin`, `member`.
    pub kind: String,
    pub env: String,
    pub created_ms: u64,
    /// Registration tokens: refused from this time on.
    pub expires_ms: Option<u64>,
    /// Registration tokens: how many more hosts may register with it (`None`: no limit).
    pub uses_left: Option<u64>,
    /// Host credentials: the host it belongs to.
    pub host: Option<String>,
    /// API keys and sessions: the user they act for.
    pub user: Option<String>,
    /// API keys and sessions: when last used (recorded at most once a minute).
    pub last_used_ms: Option<u64>,
}

/// A registration token to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewToken<'a> {
    pub hash: &'a str,
    pub name: &'a str,
    pub kind: &'a str,
    pub env: &'a str,
    pub expires_ms: Option<u64>,
    pub uses: Option<u64>,
}

/// Why a new host was not registered.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The registration token is unknown, removed, expired or used up.
    Token,
    /// A host with this id exists: only its credential may speak for it.
    HostExists,
    /// A host with this id was removed: it never comes back under that id.
    Removed,
}

pub(crate) const TOKEN_COLUMNS: &str =
    "name, kind, env, created_ms, expires_ms, uses_left, host, user, last_used_ms";

pub(crate) fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    let opt = |i| -> rusqlite::Result<Option<u64>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
    };
    Ok(TokenRow {
        name: r.get(0)?,
        kind: r.get(1)?,
        env: r.get(2)?,
        created_ms: r.get::<_, i64>(3)?.max(0) as u64,
        expires_ms: opt(4)?,
        uses_left: opt(5)?,
        host: r.get(6)?,
        user: r.get(7)?,
        last_used_ms: opt(8)?,
    })
}

impl TokenRow {
    /// Whether a registration token may still register a host at `now`.
    pub fn usable(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| now_ms < e) && self.uses_left != Some(0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRow {
    pub id: String,
    pub env: String,
    pub name: String,
    /// Labels the agent reports (`drover agent --label`).
    pub labels: BTreeMap<String, String>,
    pub last_seen_ms: u64,
}

/// A host as the server manages it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRecord {
    pub id: String,
    pub env: String,
    pub name: String,
    /// Agent labels overlaid with labels set through the API (`drover host label`).
    pub labels: BTreeMap<String, String>,
    /// Labels set through the API only.
    pub user_labels: BTreeMap<String, String>,
    pub draining: bool,
    pub created_ms: u64,
    pub last_seen_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackRow {
    pub env: String,
    pub project: compose::Project,
    pub revision: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placement {
    pub env: String,
    pub stack: String,
    pub service: String,
    pub slot: u32,
    pub host: Option<String>,
    /// The stack revision whose spec of the service this slot runs (the current one but
    /// during a rolling upgrade).
    pub rev: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent<'a> {
    pub env: &'a str,
    pub actor: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub detail: &'a str,
    /// The caller's address (empty when not from the API).
    pub source: &'a str,
    /// `ok` or `denied`.
    pub result: &'a str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub time_ms: u64,
    pub env: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    /// The caller's address, when the change came through the API.
    pub source: String,
    /// `ok` or `denied`.
    pub result: String,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)?;
        Self::init(conn)
    }

    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = SCHEMA.len() as i64;
        if version > known {
            return Err(Error::TooNew {
                found: version,
                known,
            });
        }
        let tx = self.conn.transaction()?;
        for (i, step) in SCHEMA.iter().enumerate().skip(version as usize) {
            tx.execute_batch(step)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets `key` only if it has no value yet; returns the value now stored.
    pub fn meta_init(&mut self, key: &str, value: &str) -> Result<String> {
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(self.meta(key)?.unwrap_or_else(|| value.to_string()))
    }

    pub fn environments(&self) -> Result<Vec<String>> {
        let mut st = self
            .conn
            .prepare("SELECT name FROM environments ORDER BY name")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The environment's place in the mesh range, given on first use (the lowest free one);
    /// `None` for an unknown environment.
    pub fn environment_index(&mut self, env: &str) -> Result<Option<u32>> {
        let tx = self.conn.transaction()?;
        let row: Option<Option<i64>> = tx
            .query_row(
                "SELECT mesh_index FROM environments WHERE name = ?1",
                [env],
                |r| r.get(0),
            )
            .optional()?;
        let Some(current) = row else {
            return Ok(None);
        };
        if let Some(i) = current {
            return Ok(u32::try_from(i).ok());
        }
        let used: std::collections::BTreeSet<i64> = {
            let mut st =
                tx.prepare("SELECT mesh_index FROM environments WHERE mesh_index IS NOT NULL")?;
            let rows = st.query_map([], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let free = (0..).find(|i| !used.contains(i)).unwrap_or(0);
        tx.execute(
            "UPDATE environments SET mesh_index = ?1 WHERE name = ?2",
            params![free, env],
        )?;
        tx.commit()?;
        Ok(u32::try_from(free).ok())
    }

    /// The host's index on its environment's mesh, given on first use (the lowest free one;
    /// `None` when all are taken).
    pub fn mesh_index(&mut self, host: &str, max: u32) -> Result<Option<u32>> {
        let tx = self.conn.transaction()?;
        let row: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT env, mesh_index FROM hosts WHERE id = ?1",
                [host],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((env, current)) = row else {
            return Ok(None);
        };
        if let Some(i) = current {
            return Ok(u32::try_from(i).ok());
        }
        let used: std::collections::BTreeSet<i64> = {
            let mut st = tx.prepare(
                "SELECT mesh_index FROM hosts WHERE env = ?1 AND mesh_index IS NOT NULL",
            )?;
            let rows = st.query_map([&env], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let Some(free) = (1..=i64::from(max)).find(|i| !used.contains(i)) else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE hosts SET mesh_index = ?1 WHERE id = ?2",
            params![free, host],
        )?;
        tx.commit()?;
        Ok(u32::try_from(free).ok())
    }

    /// Every environment's secrets and configs.
    pub fn files(&self) -> Result<Vec<FileRow>> {
        let mut st = self.conn.prepare(
            "SELECT env, kind, name, stack, sealed, version, created_ms, updated_ms FROM files
             ORDER BY env, kind, name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(FileRow {
                env: r.get(0)?,
                kind: r.get(1)?,
                name: r.get(2)?,
                stack: r.get(3)?,
                sealed: r.get(4)?,
                version: r.get::<_, i64>(5)? as u64,
                created_ms: r.get::<_, i64>(6)? as u64,
                updated_ms: r.get::<_, i64>(7)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds or replaces secrets or configs, with their audit event.
    pub fn put_files(&mut self, rows: &[FileRow], event: &NewEvent<'_>, now_ms: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        put_file_rows(&tx, rows)?;
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(())
    }

    /// Removes a secret or config; false when there was none.
    pub fn delete_file(
        &mut self,
        env: &str,
        kind: &str,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "DELETE FROM files WHERE env = ?1 AND kind = ?2 AND name = ?3",
            params![env, kind, name],
            event,
            now_ms,
        )
    }

    /// Every environment's registry logins.
    pub fn registries(&self) -> Result<Vec<RegistryRow>> {
        let mut st = self.conn.prepare(
            "SELECT env, host, username, sealed, created_ms FROM registries ORDER BY env, host",
        )?;
        let rows = st.query_map([], |r| {
            Ok(RegistryRow {
                env: r.get(0)?,
                host: r.get(1)?,
                username: r.get(2)?,
                sealed: r.get(3)?,
                created_ms: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds or replaces a registry login.
    pub fn put_registry(&mut self, row: &RegistryRow, event: &NewEvent<'_>) -> Result<bool> {
        self.audited_change(
            "INSERT OR REPLACE INTO registries (env, host, username, sealed, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                row.env,
                row.host,
                row.username,
                row.sealed,
                row.created_ms as i64
            ],
            event,
            row.created_ms,
        )
    }

    /// Removes a registry login; false when there was none.
    pub fn delete_registry(
        &mut self,
        env: &str,
        host: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "DELETE FROM registries WHERE env = ?1 AND host = ?2",
            params![env, host],
            event,
            now_ms,
        )
    }

    pub fn networks(&self, env: &str) -> Result<Vec<NetworkRow>> {
        let mut st = self
            .conn
            .prepare("SELECT env, name, created_ms FROM networks WHERE env = ?1 ORDER BY name")?;
        let rows = st.query_map([env], |r| {
            Ok(NetworkRow {
                env: r.get(0)?,
                name: r.get(1)?,
                created_ms: r.get::<_, i64>(2)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Creates a network; false when it exists already.
    pub fn create_network(&mut self, row: &NetworkRow, event: &NewEvent<'_>) -> Result<bool> {
        self.audited_change(
            "INSERT OR IGNORE INTO networks (env, name, created_ms) VALUES (?1, ?2, ?3)",
            params![row.env, row.name, row.created_ms as i64],
            event,
            row.created_ms,
        )
    }

    /// Deletes a network; false when there was none.
    pub fn delete_network(
        &mut self,
        env: &str,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "DELETE FROM networks WHERE env = ?1 AND name = ?2",
            params![env, name],
            event,
            now_ms,
        )
    }

    /// Adds an environment; false when it exists.
    pub fn create_environment(
        &mut self,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "INSERT OR IGNORE INTO environments (name, created_ms) VALUES (?1, ?2)",
            params![name, now_ms as i64],
            event,
            now_ms,
        )
    }

    /// Removes an empty environment (with its unused registration tokens); refused, saying
    /// what it holds, while it has hosts, stacks, networks, secrets, configs, registry
    /// logins or certificates. False when there is no such environment.
    pub fn delete_environment(
        &mut self,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let mut held = Vec::new();
        for (table, what) in [
            ("hosts", "hosts"),
            ("stacks", "stacks"),
            ("networks", "networks"),
            ("files", "secrets and configs"),
            ("registries", "registry logins"),
            ("certs", "certificates"),
        ] {
            let n: i64 = tx.query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE env = ?1"),
                [name],
                |r| r.get(0),
            )?;
            if n > 0 {
                held.push(format!("{n} {what}"));
            }
        }
        if !held.is_empty() {
            return Err(Error::Conflict(format!(
                "environment '{name}' still has {}: remove them first",
                held.join(", ")
            )));
        }
        tx.execute("DELETE FROM tokens WHERE env = ?1", [name])?;
        tx.execute("DELETE FROM members WHERE env = ?1", [name])?;
        let n = tx.execute("DELETE FROM environments WHERE name = ?1", [name])?;
        if n > 0 {
            append_event(&tx, now_ms, event)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    pub fn environment_exists(&self, env: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT 1 FROM environments WHERE name = ?1", [env], |_| {
                Ok(())
            })
            .optional()?
            .is_some())
    }

    pub fn add_token(
        &mut self,
        hash: &str,
        name: &str,
        kind: &str,
        env: &str,
        now_ms: u64,
    ) -> Result<()> {
        let t = NewToken {
            hash,
            name,
            kind,
            env,
            expires_ms: None,
            uses: None,
        };
        self.create_token(&t, "system", now_ms)
    }

    /// Adds a token, with its audit event (which names the token's id, never the secret).
    pub fn create_token(&mut self, t: &NewToken<'_>, actor: &str, now_ms: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO tokens (hash, name, kind, env, created_ms, expires_ms, uses_left)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                t.hash,
                t.name,
                t.kind,
                t.env,
                now_ms as i64,
                t.expires_ms.map(|v| v as i64),
                t.uses.map(|v| v as i64)
            ],
        )?;
        append_event(
            &tx,
            now_ms,
            &NewEvent {
                env: t.env,
                actor,
                kind: "token.created",
                subject: t.name,
                detail: t.kind,
                source: "",
                result: "ok",
            },
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE hash = ?1"),
                [hash],
                token_row,
            )
            .optional()?)
    }

    /// Tokens of one kind in an environment, oldest first.
    pub fn tokens(&self, env: &str, kind: &str) -> Result<Vec<TokenRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens WHERE env = ?1 AND kind = ?2 ORDER BY created_ms, name"
        ))?;
        let rows = st.query_map([env, kind], token_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes the token `name` of `kind` in `env`; returns its hash if there was one.
    pub fn delete_token(
        &mut self,
        env: &str,
        kind: &str,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<Option<String>> {
        let tx = self.conn.transaction()?;
        let hash: Option<String> = tx
            .query_row(
                "SELECT hash FROM tokens WHERE env = ?1 AND kind = ?2 AND name = ?3",
                [env, kind, name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(h) = &hash {
            tx.execute("DELETE FROM tokens WHERE hash = ?1", [h])?;
            append_event(&tx, now_ms, event)?;
        }
        tx.commit()?;
        Ok(hash)
    }

    /// Registers a host in one transaction: uses up one use of the registration token
    /// `via` (none for the server's own local agent), records the host and its credential
    /// (`credential_hash`, kind `host`), and the audit event.
    ///
    /// A host id that exists already is refused, except a host registered before hosts had
    /// credentials, claimed by a token of its environment, and `reclaim` (the local agent,
    /// which is the server itself), which replaces the credential. A removed host's id is
    /// refused for good (but for `reclaim`).
    pub fn register_host(
        &mut self,
        host: &HostRow,
        via: Option<&str>,
        credential_hash: &str,
        reclaim: bool,
        now_ms: u64,
    ) -> Result<std::result::Result<(), Refusal>> {
        let tx = self.conn.transaction()?;
        let existing: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT h.env, t.hash FROM hosts h
                 LEFT JOIN tokens t ON t.kind = 'host' AND t.host = h.id
                 WHERE h.id = ?1",
                [&host.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let removed = tx
            .query_row(
                "SELECT 1 FROM removed_hosts WHERE id = ?1",
                [&host.id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if removed && !reclaim {
            return Ok(Err(Refusal::Removed));
        }
        tx.execute("DELETE FROM removed_hosts WHERE id = ?1", [&host.id])?;
        if let Some((env, cred)) = &existing {
            let legacy = cred.is_none() && *env == host.env;
            if !reclaim && !legacy {
                return Ok(Err(Refusal::HostExists));
            }
        }
        if let Some(hash) = via {
            let used = tx.execute(
                "UPDATE tokens SET uses_left = uses_left - 1
                 WHERE hash = ?1 AND kind = 'agent' AND env = ?2
                   AND (expires_ms IS NULL OR expires_ms > ?3)
                   AND (uses_left IS NULL OR uses_left > 0)",
                params![hash, host.env, now_ms as i64],
            )?;
            if used == 0 {
                return Ok(Err(Refusal::Token));
            }
        }
        put_host(&tx, host, existing.is_some(), now_ms)?;
        tx.execute(
            "DELETE FROM tokens WHERE kind = 'host' AND host = ?1",
            [&host.id],
        )?;
        tx.execute(
            "INSERT INTO tokens (hash, name, kind, env, created_ms, host)
             VALUES (?1, ?2, 'host', ?3, ?4, ?5)",
            params![
                credential_hash,
                format!("host-{}", host.id),
                host.env,
                now_ms as i64,
                host.id
            ],
        )?;
        tx.commit()?;
        Ok(Ok(()))
    }

    /// Refreshes a host's name, labels and last-seen time (its agent reconnected), only
    /// while `credential_hash` is still its credential; false when it is not (the host was
    /// removed meanwhile), and then nothing is written.
    pub fn refresh_host(
        &mut self,
        host: &HostRow,
        credential_hash: &str,
        now_ms: u64,
    ) -> Result<bool> {
        let labels = labels_json(host)?;
        let n = self.conn.execute(
            "UPDATE hosts SET name = ?2, labels = ?3, last_seen_ms = ?4
             WHERE id = ?1 AND EXISTS (
                 SELECT 1 FROM tokens WHERE kind = 'host' AND host = ?1 AND hash = ?5)",
            params![host.id, host.name, labels, now_ms as i64, credential_hash],
        )?;
        Ok(n > 0)
    }

    pub fn count_tokens(&self, kind: &str) -> Result<u64> {
        let n: i64 =
            self.conn
                .query_row("SELECT COUNT(*) FROM tokens WHERE kind = ?1", [kind], |r| {
                    r.get(0)
                })?;
        Ok(n as u64)
    }

    /// Records a host (first registration) or refreshes it; returns true when it is new.
    pub fn upsert_host(&mut self, host: &HostRow, now_ms: u64) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let existed = host_exists(&tx, &host.id)?;
        put_host(&tx, host, existed, now_ms)?;
        tx.commit()?;
        Ok(!existed)
    }

    pub fn hosts(&self, env: &str) -> Result<Vec<HostRecord>> {
        self.query_hosts("WHERE env = ?1", env)
    }

    pub fn host(&self, id: &str) -> Result<Option<HostRecord>> {
        Ok(self.query_hosts("WHERE id = ?1", id)?.into_iter().next())
    }

    fn query_hosts(&self, filter: &str, arg: &str) -> Result<Vec<HostRecord>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT id, env, name, labels, user_labels, draining, created_ms, last_seen_ms
             FROM hosts {filter} ORDER BY name, id"
        ))?;
        let rows = st.query_map([arg], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, env, name, labels, user_labels, draining, created, seen) = row?;
            let decode = |text: &str| -> Result<BTreeMap<String, String>> {
                serde_json::from_str(text).map_err(|e| Error::Corrupt {
                    what: format!("host {id} labels"),
                    why: e.to_string(),
                })
            };
            let user_labels = decode(&user_labels)?;
            let mut labels = decode(&labels)?;
            labels.extend(user_labels.clone());
            out.push(HostRecord {
                id,
                env,
                name,
                labels,
                user_labels,
                draining,
                created_ms: created as u64,
                last_seen_ms: seen as u64,
            });
        }
        Ok(out)
    }

    /// Replaces the API-set labels of a host.
    pub fn set_host_labels(
        &mut self,
        id: &str,
        labels: &BTreeMap<String, String>,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        let json = serde_json::to_string(labels).map_err(|e| Error::Corrupt {
            what: format!("host {id}"),
            why: e.to_string(),
        })?;
        self.audited_change(
            "UPDATE hosts SET user_labels = ?2 WHERE id = ?1",
            params![id, json],
            event,
            now_ms,
        )
    }

    pub fn set_draining(
        &mut self,
        id: &str,
        draining: bool,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "UPDATE hosts SET draining = ?2 WHERE id = ?1",
            params![id, draining],
            event,
            now_ms,
        )
    }

    /// One statement and, when it changed a row, its audit event, in one transaction;
    /// false if it changed nothing.
    fn audited_change(
        &mut self,
        sql: &str,
        args: impl rusqlite::Params,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(sql, args)?;
        if n > 0 {
            append_event(&tx, now_ms, event)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// Forgets a host; its placements become unplaced (to be placed again).
    pub fn delete_host(&mut self, id: &str, event: &NewEvent<'_>, now_ms: u64) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM hosts WHERE id = ?1", [id])?;
        tx.execute("DELETE FROM tokens WHERE kind = 'host' AND host = ?1", [id])?;
        if n > 0 {
            tx.execute(
                "INSERT OR REPLACE INTO removed_hosts (id, removed_ms) VALUES (?1, ?2)",
                params![id, now_ms as i64],
            )?;
        }
        tx.execute("UPDATE placements SET host = NULL WHERE host = ?1", [id])?;
        if n > 0 {
            append_event(&tx, now_ms, event)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    pub fn touch_host(&mut self, id: &str, now_ms: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE hosts SET last_seen_ms = ?2 WHERE id = ?1",
            params![id, now_ms as i64],
        )?;
        Ok(())
    }

    /// Moves placements in one transaction: each given placement's host and revision are set
    /// as given (`None` unplaces it), `remove` placements are deleted, and rolls are stored
    /// (or deleted). One audit event.
    pub fn move_placements(
        &mut self,
        set: &[Placement],
        remove: &[Placement],
        rolls: &[RollRow],
        event: Option<&NewEvent<'_>>,
        now_ms: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut up = tx.prepare(
                "INSERT INTO placements (env, stack, service, slot, host, rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (env, stack, service, slot) DO UPDATE SET host = ?5, rev = ?6",
            )?;
            for p in set {
                up.execute(params![
                    p.env,
                    p.stack,
                    p.service,
                    p.slot,
                    p.host,
                    p.rev as i64
                ])?;
            }
            put_rolls(&tx, rolls)?;
            let mut del = tx.prepare(
                "DELETE FROM placements WHERE env = ?1 AND stack = ?2 AND service = ?3 AND slot = ?4",
            )?;
            for p in remove {
                del.execute(params![p.env, p.stack, p.service, p.slot])?;
            }
        }
        if let Some(e) = event {
            append_event(&tx, now_ms, e)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn stack(&self, env: &str, name: &str) -> Result<Option<StackRow>> {
        let row = self
            .conn
            .query_row(
                "SELECT project, revision, created_ms, updated_ms FROM stacks
                 WHERE env = ?1 AND name = ?2",
                params![env, name],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(p, rev, c, u)| decode_stack(env, name, &p, rev, c, u))
            .transpose()
    }

    pub fn stacks(&self, env: &str) -> Result<Vec<StackRow>> {
        let mut st = self.conn.prepare(
            "SELECT name, project, revision, created_ms, updated_ms FROM stacks
             WHERE env = ?1 ORDER BY name",
        )?;
        let rows = st.query_map([env], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (name, p, rev, c, u) = row?;
            out.push(decode_stack(env, &name, &p, rev, c, u)?);
        }
        Ok(out)
    }

    /// Writes a stack's new desired state and its placements in one transaction: the
    /// placements of the stack are replaced by `placements` (a placement of revision 0 gets
    /// the new revision), and its rolls by `rolls` (the same). Returns the new revision.
    #[allow(clippy::too_many_arguments)]
    pub fn put_stack(
        &mut self,
        env: &str,
        project: &compose::Project,
        placements: &[Placement],
        rolls: &[RollRow],
        files: &[FileRow],
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<u64> {
        let json = serde_json::to_string(project).map_err(|e| Error::Corrupt {
            what: format!("stack {}", project.name),
            why: e.to_string(),
        })?;
        let tx = self.conn.transaction()?;
        let rev: Option<i64> = tx
            .query_row(
                "SELECT revision FROM stacks WHERE env = ?1 AND name = ?2",
                params![env, project.name],
                |r| r.get(0),
            )
            .optional()?;
        let revision = rev.unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO stacks (env, name, project, revision, created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?5)
             ON CONFLICT (env, name) DO UPDATE SET project = ?3, revision = ?4, updated_ms = ?5",
            params![env, project.name, json, revision, now_ms as i64],
        )?;
        tx.execute(
            "DELETE FROM placements WHERE env = ?1 AND stack = ?2",
            params![env, project.name],
        )?;
        {
            let mut ins = tx.prepare(
                "INSERT INTO placements (env, stack, service, slot, host, rev)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for p in placements {
                let rev = if p.rev == 0 { revision } else { p.rev as i64 };
                ins.execute(params![p.env, p.stack, p.service, p.slot, p.host, rev])?;
            }
        }
        tx.execute(
            "DELETE FROM rolls WHERE env = ?1 AND stack = ?2",
            params![env, project.name],
        )?;
        put_rolls(&tx, rolls)?;
        put_file_rows(&tx, files)?;
        tx.execute(
            "INSERT OR REPLACE INTO revisions (env, stack, revision, project, actor, time_ms, summary)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                env,
                project.name,
                revision,
                json,
                event.actor,
                now_ms as i64,
                event.detail
            ],
        )?;
        // Old revisions go, but never one a slot still runs.
        tx.execute(
            "DELETE FROM revisions WHERE env = ?1 AND stack = ?2 AND revision <= ?3
             AND revision NOT IN (SELECT rev FROM placements WHERE env = ?1 AND stack = ?2)",
            params![env, project.name, revision - REVISIONS_KEPT],
        )?;
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(revision as u64)
    }

    /// A stack's kept revisions, newest first.
    pub fn revisions(&self, env: &str, stack: &str) -> Result<Vec<RevisionRow>> {
        let mut st = self.conn.prepare(
            "SELECT revision, actor, time_ms, summary FROM revisions
             WHERE env = ?1 AND stack = ?2 ORDER BY revision DESC",
        )?;
        let rows = st.query_map(params![env, stack], |r| {
            Ok(RevisionRow {
                revision: r.get::<_, i64>(0)? as u64,
                actor: r.get(1)?,
                time_ms: r.get::<_, i64>(2)? as u64,
                summary: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The project a stack had at `revision`, if that revision is kept.
    pub fn revision_project(
        &self,
        env: &str,
        stack: &str,
        revision: u64,
    ) -> Result<Option<compose::Project>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT project FROM revisions WHERE env = ?1 AND stack = ?2 AND revision = ?3",
                params![env, stack, revision as i64],
                |r| r.get(0),
            )
            .optional()?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| Error::Corrupt {
                what: format!("stack {stack} revision {revision}"),
                why: e.to_string(),
            })
        })
        .transpose()
    }

    /// Deletes a stack and its placements; returns false if there was none.
    pub fn delete_stack(
        &mut self,
        env: &str,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM stacks WHERE env = ?1 AND name = ?2",
            params![env, name],
        )?;
        tx.execute(
            "DELETE FROM placements WHERE env = ?1 AND stack = ?2",
            params![env, name],
        )?;
        tx.execute(
            "DELETE FROM revisions WHERE env = ?1 AND stack = ?2",
            params![env, name],
        )?;
        tx.execute(
            "DELETE FROM rolls WHERE env = ?1 AND stack = ?2",
            params![env, name],
        )?;
        tx.execute(
            "DELETE FROM files WHERE env = ?1 AND stack = ?2",
            params![env, name],
        )?;
        if n > 0 {
            append_event(&tx, now_ms, event)?;
        }
        tx.commit()?;
        Ok(n > 0)
    }

    /// All placements, across environments.
    pub fn placements(&self) -> Result<Vec<Placement>> {
        let mut st = self.conn.prepare(
            "SELECT env, stack, service, slot, host, rev FROM placements
             ORDER BY env, stack, service, slot",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Placement {
                env: r.get(0)?,
                stack: r.get(1)?,
                service: r.get(2)?,
                slot: r.get(3)?,
                host: r.get(4)?,
                rev: r.get::<_, i64>(5)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every stored roll, across environments.
    pub fn rolls(&self) -> Result<Vec<RollRow>> {
        let mut st = self
            .conn
            .prepare("SELECT env, stack, service, state FROM rolls ORDER BY env, stack, service")?;
        let rows = st.query_map([], |r| {
            Ok(RollRow {
                env: r.get(0)?,
                stack: r.get(1)?,
                service: r.get(2)?,
                state: Some(r.get(3)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn append_event(&mut self, now_ms: u64, event: &NewEvent<'_>) -> Result<()> {
        let tx = self.conn.transaction()?;
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(())
    }

    /// Newest first.
    pub fn events(&self, env: &str, limit: u32) -> Result<Vec<EventRow>> {
        self.audit(&AuditFilter {
            envs: Some(vec![env.to_string()]),
            limit,
            ..Default::default()
        })
    }
}

fn decode_stack(
    env: &str,
    name: &str,
    project: &str,
    rev: i64,
    c: i64,
    u: i64,
) -> Result<StackRow> {
    let project = serde_json::from_str(project).map_err(|e| Error::Corrupt {
        what: format!("stack {env}/{name}"),
        why: e.to_string(),
    })?;
    Ok(StackRow {
        env: env.to_string(),
        project,
        revision: rev as u64,
        created_ms: c as u64,
        updated_ms: u as u64,
    })
}

fn put_rolls(tx: &rusqlite::Transaction<'_>, rolls: &[RollRow]) -> Result<()> {
    let mut up = tx.prepare(
        "INSERT INTO rolls (env, stack, service, state) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (env, stack, service) DO UPDATE SET state = ?4",
    )?;
    let mut del = tx.prepare("DELETE FROM rolls WHERE env = ?1 AND stack = ?2 AND service = ?3")?;
    for r in rolls {
        match &r.state {
            Some(state) => up.execute(params![r.env, r.stack, r.service, state])?,
            None => del.execute(params![r.env, r.stack, r.service])?,
        };
    }
    Ok(())
}

fn host_exists(tx: &rusqlite::Transaction<'_>, id: &str) -> Result<bool> {
    Ok(tx
        .query_row("SELECT 1 FROM hosts WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Inserts or refreshes a host row, with the registration event when it is new.
fn labels_json(host: &HostRow) -> Result<String> {
    serde_json::to_string(&host.labels).map_err(|e| Error::Corrupt {
        what: format!("host {}", host.id),
        why: e.to_string(),
    })
}

fn put_host(
    tx: &rusqlite::Transaction<'_>,
    host: &HostRow,
    existed: bool,
    now_ms: u64,
) -> Result<()> {
    let labels = labels_json(host)?;
    tx.execute(
        "INSERT INTO hosts (id, env, name, labels, created_ms, last_seen_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)
         ON CONFLICT (id) DO UPDATE SET name = ?3, labels = ?4, last_seen_ms = ?5",
        params![host.id, host.env, host.name, labels, now_ms as i64],
    )?;
    if !existed {
        append_event(
            tx,
            now_ms,
            &NewEvent {
                env: &host.env,
                actor: "agent",
                kind: "host.registered",
                subject: &host.name,
                detail: &host.id,
                source: "",
                result: "ok",
            },
        )?;
    }
    Ok(())
}

pub(crate) fn append_event(
    tx: &rusqlite::Transaction<'_>,
    now_ms: u64,
    e: &NewEvent<'_>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO events (time_ms, env, actor, kind, subject, detail, source, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            now_ms as i64,
            e.env,
            e.actor,
            e.kind,
            e.subject,
            e.detail,
            e.source,
            e.result
        ],
    )?;
    let id = tx.last_insert_rowid();
    if id % 1000 == 0 {
        tx.execute("DELETE FROM events WHERE id <= ?1", [id - MAX_EVENTS])?;
    }
    Ok(())
}

fn put_file_rows(tx: &rusqlite::Transaction<'_>, rows: &[FileRow]) -> Result<()> {
    let mut st = tx.prepare(
        "INSERT INTO files (env, kind, name, stack, sealed, version, created_ms, updated_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (env, kind, name) DO UPDATE SET
             stack = ?4, sealed = ?5, version = ?6, updated_ms = ?8",
    )?;
    for r in rows {
        st.execute(params![
            r.env,
            r.kind,
            r.name,
            r.stack,
            r.sealed,
            r.version as i64,
            r.created_ms as i64,
            r.updated_ms as i64
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart() {
        let full = Error::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        assert!(full.is_full());
        let busy = Error::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        ));
        assert!(!busy.is_full());
        assert!(!Error::Conflict("x".into()).is_full());
    }

    fn ev(kind: &str) -> NewEvent<'_> {
        NewEvent {
            env: "default",
            actor: "test",
            kind,
            subject: "s",
            detail: "",
            source: "",
            result: "ok",
        }
    }

    fn project(name: &str) -> compose::Project {
        let mut p = compose::Project {
            name: name.into(),
            ..Default::default()
        };
        p.services.insert(
            "web".into(),
            compose::Service {
                image: Some("nginx".into()),
                replicas: 2,
                ..Default::default()
            },
        );
        p
    }

    fn slot(stack: &str, slot: u32, host: Option<&str>) -> Placement {
        Placement {
            env: "default".into(),
            stack: stack.into(),
            service: "web".into(),
            slot,
            host: host.map(str::to_string),
            rev: 0,
        }
    }

    #[test]
    fn environments_and_hosts_get_lasting_mesh_places() {
        let mut s = Store::open_in_memory().expect("store");
        assert_eq!(s.environment_index("default").expect("index"), Some(0));
        assert_eq!(s.environment_index("default").expect("index"), Some(0));
        assert_eq!(s.environment_index("nope").expect("index"), None);
        for id in ["h1", "h2"] {
            let row = HostRow {
                id: id.into(),
                env: "default".into(),
                name: id.into(),
                labels: BTreeMap::new(),
                last_seen_ms: 0,
            };
            s.upsert_host(&row, 1).expect("host");
        }
        assert_eq!(s.mesh_index("h1", 63).expect("index"), Some(1));
        assert_eq!(s.mesh_index("h2", 63).expect("index"), Some(2));
        assert_eq!(s.mesh_index("h1", 63).expect("index"), Some(1));
        assert_eq!(s.mesh_index("ghost", 63).expect("index"), None);
        // Removed hosts free their place; a full environment gives none.
        assert!(s.delete_host("h1", &ev("host.removed"), 2).expect("rm"));
        let row = HostRow {
            id: "h3".into(),
            env: "default".into(),
            name: "h3".into(),
            labels: BTreeMap::new(),
            last_seen_ms: 0,
        };
        s.upsert_host(&row, 3).expect("host");
        assert_eq!(s.mesh_index("h3", 63).expect("index"), Some(1));
        let row = HostRow {
            id: "h4".into(),
            ..row
        };
        s.upsert_host(&row, 4).expect("host");
        assert_eq!(s.mesh_index("h4", 2).expect("index"), None);
    }

    #[test]
    fn revisions_keep_each_deploy_and_go_with_the_stack() {
        let mut s = Store::open_in_memory().expect("store");
        let mut p = project("shop");
        for (i, replicas) in [1u32, 3, 2].into_iter().enumerate() {
            p.services.get_mut("web").expect("web").replicas = replicas;
            let event = NewEvent {
                detail: "changed: [web]",
                ..ev("stack.updated")
            };
            s.put_stack("default", &p, &[], &[], &[], &event, 10 + i as u64)
                .expect("put");
        }
        let revs = s.revisions("default", "shop").expect("revisions");
        let numbers: Vec<u64> = revs.iter().map(|r| r.revision).collect();
        assert_eq!(numbers, [3, 2, 1]);
        assert_eq!(revs[0].actor, "test");
        assert_eq!(revs[0].summary, "changed: [web]");
        let second = s
            .revision_project("default", "shop", 2)
            .expect("read")
            .expect("kept");
        assert_eq!(second.services["web"].replicas, 3);
        assert_eq!(
            s.revision_project("default", "shop", 9).expect("read"),
            None
        );
        assert!(
            s.delete_stack("default", "shop", &ev("stack.removed"), 20)
                .expect("rm")
        );
        assert!(
            s.revisions("default", "shop")
                .expect("revisions")
                .is_empty()
        );
    }

    #[test]
    fn a_revision_a_slot_still_runs_is_never_pruned() {
        let mut s = Store::open_in_memory().expect("store");
        let p = project("shop");
        // Revision 1's slot stays on revision 1 (a roll under way) through many deploys.
        let old_slot = Placement {
            rev: 1,
            ..slot("shop", 1, Some("h1"))
        };
        for i in 0..(REVISIONS_KEPT as u64 + 5) {
            let placed = if i == 0 {
                vec![slot("shop", 1, Some("h1"))]
            } else {
                vec![old_slot.clone()]
            };
            s.put_stack("default", &p, &placed, &[], &[], &ev("stack.updated"), i)
                .expect("put");
        }
        let revs: Vec<u64> = s
            .revisions("default", "shop")
            .expect("revisions")
            .into_iter()
            .map(|r| r.revision)
            .collect();
        assert_eq!(revs.len(), REVISIONS_KEPT as usize + 1, "{revs:?}");
        assert_eq!(revs.last(), Some(&1));
        assert!(
            s.revision_project("default", "shop", 1)
                .expect("read")
                .is_some()
        );
        assert!(
            s.revision_project("default", "shop", 2)
                .expect("read")
                .is_none()
        );
    }

    #[test]
    fn stacks_survive_reopen_with_revisions_and_placements() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("drover.db");
        {
            let mut s = Store::open(&path).expect("open");
            assert_eq!(s.meta_init("cluster_id", "abc").expect("meta"), "abc");
            let p = project("shop");
            let r1 = s
                .put_stack(
                    "default",
                    &p,
                    &[slot("shop", 1, None)],
                    &[],
                    &[],
                    &ev("stack.deployed"),
                    10,
                )
                .expect("put");
            let r2 = s
                .put_stack(
                    "default",
                    &p,
                    &[
                        Placement {
                            rev: 1,
                            ..slot("shop", 1, Some("h1"))
                        },
                        slot("shop", 2, None),
                    ],
                    &[RollRow {
                        env: "default".into(),
                        stack: "shop".into(),
                        service: "web".into(),
                        state: Some("{}".into()),
                    }],
                    &[FileRow {
                        env: "default".into(),
                        kind: "secret".into(),
                        name: "shop_pw".into(),
                        stack: Some("shop".into()),
                        sealed: "sealed".into(),
                        version: 2,
                        created_ms: 20,
                        updated_ms: 20,
                    }],
                    &ev("stack.deployed"),
                    20,
                )
                .expect("put");
            assert_eq!((r1, r2), (1, 2));
        }
        let mut s = Store::open(&path).expect("reopen");
        assert_eq!(s.meta_init("cluster_id", "other").expect("meta"), "abc");
        let row = s.stack("default", "shop").expect("get").expect("exists");
        assert_eq!(row.revision, 2);
        assert_eq!((row.created_ms, row.updated_ms), (10, 20));
        assert_eq!(row.project, project("shop"));
        // Revision 0 means the one written; a slot keeps the older spec it runs.
        let revs: Vec<(Option<String>, u64)> = s
            .placements()
            .expect("placements")
            .into_iter()
            .map(|p| (p.host, p.rev))
            .collect();
        assert_eq!(revs, [(Some("h1".into()), 1), (None, 2)]);
        assert_eq!(s.rolls().expect("rolls").len(), 1);
        // A stack's own secrets are written with it.
        let files = s.files().expect("files");
        assert_eq!((files.len(), files[0].version), (1, 2));
        s.move_placements(
            &[Placement {
                rev: 2,
                ..slot("shop", 2, Some("h2"))
            }],
            &[],
            &[RollRow {
                env: "default".into(),
                stack: "shop".into(),
                service: "web".into(),
                state: None,
            }],
            None,
            25,
        )
        .expect("move");
        assert_eq!(s.placements().expect("p")[1].host.as_deref(), Some("h2"));
        assert!(s.rolls().expect("rolls").is_empty());
        assert!(
            s.delete_stack("default", "shop", &ev("stack.removed"), 30)
                .expect("rm")
        );
        assert!(
            !s.delete_stack("default", "shop", &ev("stack.removed"), 31)
                .expect("rm")
        );
        assert!(s.placements().expect("p").is_empty());
        assert!(
            s.files().expect("files").is_empty(),
            "secrets go with their stack"
        );
        let kinds: Vec<String> = s
            .events("default", 10)
            .expect("events")
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(kinds, ["stack.removed", "stack.deployed", "stack.deployed"]);
    }

    #[test]
    fn tokens_are_found_by_hash_only() {
        let mut s = Store::open_in_memory().expect("open");
        s.add_token("h1", "admin", "admin", "default", 1)
            .expect("add");
        assert_eq!(
            s.token("h1").expect("get").map(|t| t.kind),
            Some("admin".into())
        );
        assert_eq!(s.token("nope").expect("get"), None);
        assert_eq!(s.count_tokens("admin").expect("count"), 1);
    }

    #[test]
    fn registration_uses_a_token_once_and_binds_the_host_to_its_credential() {
        let mut s = Store::open_in_memory().expect("open");
        let t = NewToken {
            hash: "reg",
            name: "agent-1",
            kind: "agent",
            env: "default",
            expires_ms: Some(100),
            uses: Some(1),
        };
        s.create_token(&t, "admin", 1).expect("token");
        let host = |id: &str| HostRow {
            id: id.into(),
            env: "default".into(),
            name: "node".into(),
            labels: BTreeMap::new(),
            last_seen_ms: 0,
        };
        assert_eq!(
            s.register_host(&host("h1"), Some("reg"), "cred1", false, 2)
                .expect("register"),
            Ok(())
        );
        let cred = s.token("cred1").expect("get").expect("credential");
        assert_eq!(
            (cred.kind.as_str(), cred.host.as_deref()),
            ("host", Some("h1"))
        );
        let reg = s.token("reg").expect("get").expect("token");
        assert_eq!(reg.uses_left, Some(0));
        assert!(!reg.usable(2));
        // Used up: a second host is refused, and nothing is written.
        assert_eq!(
            s.register_host(&host("h2"), Some("reg"), "cred2", false, 3)
                .expect("register"),
            Err(Refusal::Token)
        );
        assert_eq!(s.hosts("default").expect("hosts").len(), 1);
        assert_eq!(s.token("cred2").expect("get"), None);

        // An existing host id is refused even with a good token; expiry is honoured.
        let t2 = NewToken {
            hash: "reg2",
            name: "agent-2",
            uses: None,
            ..t
        };
        s.create_token(&t2, "admin", 4).expect("token");
        assert_eq!(
            s.register_host(&host("h1"), Some("reg2"), "evil", false, 5)
                .expect("register"),
            Err(Refusal::HostExists)
        );
        assert_eq!(s.token("evil").expect("get"), None);
        assert_eq!(
            s.register_host(&host("h3"), Some("reg2"), "cred3", false, 100)
                .expect("register"),
            Err(Refusal::Token)
        );
        // Knowing a host's credential hash and holding a token is not enough: the hash
        // is no password.
        assert_eq!(
            s.register_host(&host("h1"), Some("reg2"), "cred1", false, 5)
                .expect("register"),
            Err(Refusal::HostExists)
        );
        // Refreshing needs the host's current credential.
        assert!(s.refresh_host(&host("h1"), "cred1", 5).expect("refresh"));
        assert!(!s.refresh_host(&host("h1"), "evil", 5).expect("refresh"));
        // Reclaiming (the server's own agent) replaces the credential.
        assert_eq!(
            s.register_host(&host("h1"), None, "cred1b", true, 6)
                .expect("register"),
            Ok(())
        );
        assert_eq!(s.token("cred1").expect("get"), None);
        assert!(!s.refresh_host(&host("h1"), "cred1", 6).expect("refresh"));
        // Listing shows ids, never hashes; removal forgets the token.
        let names: Vec<String> = s
            .tokens("default", "agent")
            .expect("ls")
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["agent-1", "agent-2"]);
        let removed = s
            .delete_token("default", "agent", "agent-2", &ev("token.removed"), 7)
            .expect("rm");
        assert_eq!(removed.as_deref(), Some("reg2"));
        assert_eq!(s.token("reg2").expect("get"), None);
        // Removing a host revokes its credential.
        assert!(s.delete_host("h1", &ev("host.removed"), 8).expect("rm"));
        assert_eq!(s.token("cred1b").expect("get"), None);
        // Removed: a reconnect's refresh writes nothing, so it cannot bring the host back.
        assert!(!s.refresh_host(&host("h1"), "cred1b", 9).expect("refresh"));
        assert!(s.host("h1").expect("get").is_none());
        // Nor can a registration under its id, whatever the token; only the server's own
        // agent takes it back.
        let t4 = NewToken {
            hash: "reg4",
            name: "agent-4",
            kind: "agent",
            env: "default",
            expires_ms: None,
            uses: None,
        };
        s.create_token(&t4, "admin", 9).expect("token");
        assert_eq!(
            s.register_host(&host("h1"), Some("reg4"), "new", false, 9)
                .expect("register"),
            Err(Refusal::Removed)
        );
        assert_eq!(
            s.register_host(&host("h1"), None, "local", true, 9)
                .expect("register"),
            Ok(())
        );
        assert!(s.delete_host("h1", &ev("host.removed"), 9).expect("rm"));

        // A host from before credentials is claimed once, by a token of its environment.
        assert!(s.upsert_host(&host("old"), 10).expect("upsert"));
        let t3 = NewToken {
            hash: "reg3",
            name: "agent-3",
            kind: "agent",
            env: "default",
            expires_ms: None,
            uses: None,
        };
        s.create_token(&t3, "admin", 11).expect("token");
        assert_eq!(
            s.register_host(&host("old"), Some("reg3"), "old-cred", false, 12)
                .expect("register"),
            Ok(())
        );
        assert_eq!(
            s.register_host(&host("old"), Some("reg3"), "other-cred", false, 13)
                .expect("register"),
            Err(Refusal::HostExists)
        );
    }

    #[test]
    fn hosts_upsert_reports_first_registration() {
        let mut s = Store::open_in_memory().expect("open");
        let mut h = HostRow {
            id: "h1".into(),
            env: "default".into(),
            name: "node1".into(),
            labels: BTreeMap::from([("region".into(), "eu".into())]),
            last_seen_ms: 0,
        };
        assert!(s.upsert_host(&h, 5).expect("upsert"));
        h.name = "node1b".into();
        assert!(!s.upsert_host(&h, 6).expect("upsert"));
        let hosts = s.hosts("default").expect("hosts");
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].name, "node1b");
        assert_eq!(hosts[0].last_seen_ms, 6);
        assert!(s.environment_exists("default").expect("env"));

        // API labels overlay agent labels and survive the agent re-registering.
        let user = BTreeMap::from([
            ("region".to_string(), "us".to_string()),
            ("tier".to_string(), "gold".to_string()),
        ]);
        assert!(
            s.set_host_labels("h1", &user, &ev("host.labelled"), 7)
                .expect("label")
        );
        s.upsert_host(&h, 8).expect("upsert");
        let rec = s.host("h1").expect("host").expect("exists");
        assert_eq!(rec.labels.get("region").map(String::as_str), Some("us"));
        assert_eq!(rec.labels.get("tier").map(String::as_str), Some("gold"));
        assert!(!rec.draining);
        assert!(
            s.set_draining("h1", true, &ev("host.drained"), 9)
                .expect("drain")
        );
        assert!(s.host("h1").expect("host").expect("exists").draining);

        // Deleting a host unplaces its slots.
        let p = project("shop");
        let placed = [slot("shop", 1, Some("h1")), slot("shop", 2, Some("h2"))];
        s.put_stack("default", &p, &placed, &[], &[], &ev("stack.created"), 10)
            .expect("put");
        assert!(s.delete_host("h1", &ev("host.removed"), 11).expect("rm"));
        assert_eq!(s.host("h1").expect("host"), None);
        let hosts: Vec<Option<String>> = s
            .placements()
            .expect("p")
            .into_iter()
            .map(|p| p.host)
            .collect();
        assert_eq!(hosts, [None, Some("h2".to_string())]);
        s.move_placements(&[], &[slot("shop", 2, None)], &[], None, 12)
            .expect("remove");
        assert_eq!(s.placements().expect("p").len(), 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.db");
        drop(Store::open(&path).expect("open"));
        let c = Connection::open(&path).expect("raw");
        c.pragma_update(None, "user_version", 99).expect("bump");
        drop(c);
        assert!(matches!(
            Store::open(&path),
            Err(Error::TooNew { found: 99, .. })
        ));
    }
}
