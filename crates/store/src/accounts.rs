//! Users, their API keys and sessions (rows of `tokens` with a `user`), environment
//! members, container policies, settings, and the audit log's queries and retention.

use rusqlite::{OptionalExtension, params};

use crate::{
    Error, EventRow, NewEvent, Result, Store, TOKEN_COLUMNS, TokenRow, append_event, token_row,
};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub name: String,
    /// The argon2id PHC string; `None` for directory users and an admin made before users.
    pub password_hash: Option<String>,
    pub admin: bool,
    /// `local` or `ldap`.
    pub source: String,
    pub created_ms: u64,
}

/// A member of an environment: a user name or `group:DN`, with a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub env: String,
    pub subject: String,
    pub role: String,
}

/// An API key or session to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewUserToken<'a> {
    pub hash: &'a str,
    pub name: &'a str,
    /// `apikey` or `session`.
    pub kind: &'a str,
    pub user: &'a str,
    /// The environment an API key is narrowed to, or `*`.
    pub env: &'a str,
    pub expires_ms: Option<u64>,
}

/// Which audit events to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only these environments (`None`: all).
    pub envs: Option<Vec<String>>,
    /// Actors starting with this (a user's name matches their keys too).
    pub actor: Option<String>,
    /// Actions starting with this (`stack.` matches every stack action).
    pub action: Option<String>,
    pub since_ms: Option<u64>,
    /// Events older than this id (the next page).
    pub before_id: Option<i64>,
    pub limit: u32,
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        name: r.get(0)?,
        password_hash: r.get(1)?,
        admin: r.get::<_, i64>(2)? != 0,
        source: r.get(3)?,
        created_ms: r.get::<_, i64>(4)?.max(0) as u64,
    })
}

const USER_COLUMNS: &str = "name, password_hash, admin, source, created_ms";

pub(crate) fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        id: r.get(0)?,
        time_ms: r.get::<_, i64>(1)?.max(0) as u64,
        env: r.get(2)?,
        actor: r.get(3)?,
        kind: r.get(4)?,
        subject: r.get(5)?,
        detail: r.get(6)?,
        source: r.get(7)?,
        result: r.get(8)?,
    })
}

pub(crate) const EVENT_COLUMNS: &str =
    "id, time_ms, env, actor, kind, subject, detail, source, result";

fn like_prefix(p: &str) -> String {
    let escaped: String = p
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("{escaped}%")
}

impl Store {
    pub fn users(&self) -> Result<Vec<UserRow>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
        let rows = st.query_map([], user_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRow>> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                user_row,
            )
            .optional()?)
    }

    pub fn count_users(&self) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    /// Adds a user (and, for the first admin, its first API key in the same transaction);
    /// false when the name is taken.
    pub fn create_user(
        &mut self,
        u: &UserRow,
        key: Option<&NewUserToken<'_>>,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO users (name, password_hash, admin, source, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                u.name,
                u.password_hash,
                u.admin as i64,
                u.source,
                now_ms as i64
            ],
        )?;
        if n == 0 {
            return Ok(false);
        }
        if let Some(k) = key {
            insert_user_token(&tx, k, now_ms)?;
        }
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(true)
    }

    /// Records a directory user at their first login (no event: the login has its own).
    pub fn ensure_directory_user(&mut self, name: &str, now_ms: u64) -> Result<()> {
        self.conn.execute(
            "INSERT OR IGNORE INTO users (name, admin, source, created_ms) VALUES (?1, 0, 'ldap', ?2)",
            params![name, now_ms as i64],
        )?;
        Ok(())
    }

    /// Sets a user's password and ends their sessions (not their API keys); the hashes of
    /// the ended sessions, or `None` when there is no such user.
    pub fn set_password(
        &mut self,
        name: &str,
        hash: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<Option<Vec<String>>> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1 AND source = 'local'",
            params![name, hash],
        )?;
        if n == 0 {
            return Ok(None);
        }
        let ended = token_hashes(&tx, "user = ?1 AND kind = 'session'", name)?;
        tx.execute(
            "DELETE FROM tokens WHERE user = ?1 AND kind = 'session'",
            [name],
        )?;
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(Some(ended))
    }

    /// Removes a user with their keys, sessions and memberships; the removed tokens'
    /// hashes, `None` when there is no such user. The last admin is never removed.
    pub fn delete_user(
        &mut self,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<Option<Vec<String>>> {
        let tx = self.conn.transaction()?;
        let admin: Option<i64> = tx
            .query_row("SELECT admin FROM users WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(admin) = admin else {
            return Ok(None);
        };
        if admin != 0 {
            let admins: i64 =
                tx.query_row("SELECT COUNT(*) FROM users WHERE admin = 1", [], |r| {
                    r.get(0)
                })?;
            if admins <= 1 {
                return Err(Error::Conflict(format!(
                    "user '{name}' is the last admin: make another admin first"
                )));
            }
        }
        let removed = token_hashes(&tx, "user = ?1", name)?;
        tx.execute("DELETE FROM tokens WHERE user = ?1", [name])?;
        tx.execute("DELETE FROM members WHERE subject = ?1", [name])?;
        tx.execute("DELETE FROM users WHERE name = ?1", [name])?;
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(Some(removed))
    }

    /// Every environment's members.
    pub fn members(&self) -> Result<Vec<MemberRow>> {
        let mut st = self
            .conn
            .prepare("SELECT env, subject, role FROM members ORDER BY env, subject")?;
        let rows = st.query_map([], |r| {
            Ok(MemberRow {
                env: r.get(0)?,
                subject: r.get(1)?,
                role: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds a member or changes its role.
    pub fn set_member(&mut self, m: &MemberRow, event: &NewEvent<'_>, now_ms: u64) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO members (env, subject, role) VALUES (?1, ?2, ?3)
             ON CONFLICT (env, subject) DO UPDATE SET role = ?3",
            params![m.env, m.subject, m.role],
        )?;
        append_event(&tx, now_ms, event)?;
        tx.commit()?;
        Ok(())
    }

    pub fn remove_member(
        &mut self,
        env: &str,
        subject: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "DELETE FROM members WHERE env = ?1 AND subject = ?2",
            params![env, subject],
            event,
            now_ms,
        )
    }

    /// Adds an API key or session; API keys are audited, sessions by their login.
    pub fn create_user_token(
        &mut self,
        t: &NewUserToken<'_>,
        event: Option<&NewEvent<'_>>,
        now_ms: u64,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        insert_user_token(&tx, t, now_ms)?;
        if let Some(e) = event {
            append_event(&tx, now_ms, e)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// API keys or sessions (`kind`) of one user, or of all (`None`), oldest first.
    pub fn user_tokens(&self, user: Option<&str>, kind: &str) -> Result<Vec<TokenRow>> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {TOKEN_COLUMNS} FROM tokens
             WHERE kind = ?1 AND (?2 IS NULL OR user = ?2) ORDER BY created_ms, name"
        ))?;
        let rows = st.query_map(params![kind, user], token_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Removes the API key or session `name` (of `user` when given); its hash if it was
    /// there.
    pub fn delete_user_token(
        &mut self,
        kind: &str,
        name: &str,
        user: Option<&str>,
        event: Option<&NewEvent<'_>>,
        now_ms: u64,
    ) -> Result<Option<String>> {
        let tx = self.conn.transaction()?;
        let hash: Option<String> = tx
            .query_row(
                "SELECT hash FROM tokens WHERE kind = ?1 AND name = ?2 AND (?3 IS NULL OR user = ?3)",
                params![kind, name, user],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(h) = &hash {
            tx.execute("DELETE FROM tokens WHERE hash = ?1", [h])?;
            if let Some(e) = event {
                append_event(&tx, now_ms, e)?;
            }
        }
        tx.commit()?;
        Ok(hash)
    }

    /// Records when a key or session was last used.
    pub fn touch_token(&mut self, hash: &str, now_ms: u64) -> Result<()> {
        self.conn.execute(
            "UPDATE tokens SET last_used_ms = ?2 WHERE hash = ?1",
            params![hash, now_ms as i64],
        )?;
        Ok(())
    }

    /// Removes sessions and API keys that expired before `now`; their hashes.
    pub fn prune_expired_tokens(&mut self, now_ms: u64) -> Result<Vec<String>> {
        let tx = self.conn.transaction()?;
        let cond = "kind IN ('session', 'apikey') AND expires_ms IS NOT NULL AND expires_ms <= ?1";
        let mut st = tx.prepare(&format!("SELECT hash FROM tokens WHERE {cond}"))?;
        let hashes = st
            .query_map([now_ms as i64], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(st);
        tx.execute(&format!("DELETE FROM tokens WHERE {cond}"), [now_ms as i64])?;
        tx.commit()?;
        Ok(hashes)
    }

    /// An environment's container policy (JSON; `{}` is the default policy).
    pub fn policy(&self, env: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT policy FROM environments WHERE name = ?1",
                [env],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn set_policy(
        &mut self,
        env: &str,
        policy: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "UPDATE environments SET policy = ?2 WHERE name = ?1",
            params![env, policy],
            event,
            now_ms,
        )
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets (`Some`) or removes (`None`) a setting, with its event.
    pub fn put_setting(
        &mut self,
        key: &str,
        value: Option<&str>,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        match value {
            Some(v) => self.audited_change(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = ?2",
                params![key, v],
                event,
                now_ms,
            ),
            None => self.audited_change(
                "DELETE FROM settings WHERE key = ?1",
                params![key],
                event,
                now_ms,
            ),
        }
    }

    /// Audit events matching `f`, newest first.
    pub fn audit(&self, f: &AuditFilter) -> Result<Vec<EventRow>> {
        let mut sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(envs) = &f.envs {
            if envs.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = envs
                .iter()
                .map(|e| {
                    args.push(e.clone().into());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND env IN ({})", marks.join(", ")));
        }
        for (column, prefix) in [("actor", &f.actor), ("kind", &f.action)] {
            if let Some(p) = prefix {
                args.push(like_prefix(p).into());
                sql.push_str(&format!(" AND {column} LIKE ?{} ESCAPE '\\'", args.len()));
            }
        }
        if let Some(since) = f.since_ms {
            args.push((since as i64).into());
            sql.push_str(&format!(" AND time_ms >= ?{}", args.len()));
        }
        if let Some(before) = f.before_id {
            args.push(before.into());
            sql.push_str(&format!(" AND id < ?{}", args.len()));
        }
        args.push(i64::from(f.limit).into());
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ?{}", args.len()));
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), event_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes events older than `before_ms` and beyond the newest `max_rows`; how many.
    pub fn prune_events(&mut self, before_ms: u64, max_rows: u64) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let mut n = tx.execute("DELETE FROM events WHERE time_ms < ?1", [before_ms as i64])?;
        let newest: Option<i64> = tx.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?;
        if let Some(newest) = newest {
            n += tx.execute(
                "DELETE FROM events WHERE id <= ?1",
                [newest - max_rows.min(i64::MAX as u64) as i64],
            )?;
        }
        tx.commit()?;
        Ok(n as u64)
    }
}

fn insert_user_token(
    tx: &rusqlite::Transaction<'_>,
    t: &NewUserToken<'_>,
    now_ms: u64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO tokens (hash, name, kind, env, created_ms, expires_ms, user)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            t.hash,
            t.name,
            t.kind,
            t.env,
            now_ms as i64,
            t.expires_ms.map(|v| v as i64),
            t.user
        ],
    )?;
    Ok(())
}

fn token_hashes(tx: &rusqlite::Transaction<'_>, cond: &str, arg: &str) -> Result<Vec<String>> {
    let mut st = tx.prepare(&format!("SELECT hash FROM tokens WHERE {cond}"))?;
    let rows = st.query_map([arg], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
