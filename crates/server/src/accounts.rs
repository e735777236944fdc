//! The shell of users and roles: passwords (argon2id), the cache of users and members the
//! API edge reads on every request, login limits, and when keys were last used. The
//! decisions are `access` (`authorize`, `LoginLimiter`); this gathers their inputs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock, RwLock};

use access::Role;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Longest password accepted (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Shortest password a local user may set.
pub const MIN_PASSWORD_LEN: usize = 8;
/// How long a session lasts.
pub const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;
/// A key's or session's last use is written at most this often.
const TOUCH_EVERY_MS: u64 = 60_000;

/// argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's recommendation).
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// The PHC string of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `password` matches `phc` (argon2's comparison is constant-time). An unknown
/// user is checked against a fixed hash, so a guesser cannot tell by the time taken.
pub fn verify_password(phc: Option<&str>, password: &str) -> bool {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password("no such user").unwrap_or_default());
    let (phc, real) = match phc {
        Some(p) => (p, true),
        None => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
        && real
}

/// A password a local user may set, or why not.
pub fn check_password(password: &str) -> Result<(), String> {
    // Characters, as the API document counts them (`minLength`, `maxLength`).
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(format!("too short: at least {MIN_PASSWORD_LEN} characters"));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(format!("too long: at most {MAX_PASSWORD_LEN} characters"));
    }
    Ok(())
}

/// A user name: 1 to 64 letters, digits, '-', '_', '.', '@', not starting with `group:`.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
}

#[derive(Debug, Clone)]
struct Account {
    admin: bool,
}

/// Users and members as the API edge needs them, loaded from the store and reloaded after
/// every change to them.
#[derive(Default)]
pub struct Accounts {
    users: RwLock<HashMap<String, Account>>,
    /// subject (a user name or `group:DN`) → environment → role.
    members: RwLock<HashMap<String, BTreeMap<String, Role>>>,
    /// Directory users' groups (as member subjects, `group:DN` normalised), as last looked
    /// up.
    groups: RwLock<HashMap<String, Vec<String>>>,
    /// Directory users the directory no longer has (or disabled): no access until they
    /// sign in again.
    gone: RwLock<std::collections::HashSet<String>>,
    limiter: Mutex<access::LoginLimiter>,
    touched: Mutex<access::Throttle>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

impl Accounts {
    /// Reloads users and members from the store (call with the store held, after a change).
    pub fn reload(&self, store: &store::Store) -> Result<(), store::Error> {
        let users = store
            .users()?
            .into_iter()
            .map(|u| (u.name, Account { admin: u.admin }))
            .collect();
        let mut members: HashMap<String, BTreeMap<String, Role>> = HashMap::new();
        for m in store.members()? {
            if let Some(role) = Role::parse(&m.role) {
                let subject = match m.subject.strip_prefix("group:") {
                    Some(dn) => crate::directory::group_subject(dn),
                    None => m.subject,
                };
                members.entry(subject).or_default().insert(m.env, role);
            }
        }
        *write(&self.users) = users;
        *write(&self.members) = members;
        Ok(())
    }

    /// A user's admin flag and roles (directly and through their directory groups; the
    /// higher role wins), or `None` when the user does not exist.
    pub fn account(&self, user: &str) -> Option<(bool, BTreeMap<String, Role>)> {
        if read(&self.gone).contains(user) {
            return None;
        }
        let admin = read(&self.users).get(user)?.admin;
        let members = read(&self.members);
        let mut roles = members.get(user).cloned().unwrap_or_default();
        if let Some(groups) = read(&self.groups).get(user) {
            for g in groups {
                for (env, role) in members.get(g).into_iter().flatten() {
                    let r = roles.entry(env.clone()).or_insert(*role);
                    *r = (*r).max(*role);
                }
            }
        }
        Some((admin, roles))
    }

    /// Sets a directory user's groups (member subjects, `group:DN`), or with `None` marks
    /// the user gone from the directory.
    pub fn set_groups(&self, user: &str, groups: Option<Vec<String>>) {
        match groups {
            Some(g) => {
                write(&self.groups).insert(user.to_string(), g);
                write(&self.gone).remove(user);
            }
            None => {
                write(&self.groups).remove(user);
                write(&self.gone).insert(user.to_string());
            }
        }
    }

    /// Whether a login for `user` from `address` may be tried now.
    pub fn may_try_login(
        &self,
        user: &str,
        address: &str,
        now: u64,
    ) -> Result<(), access::Limited> {
        lock(&self.limiter).check(user, address, now)
    }

    pub fn login_failed(&self, user: &str, address: &str, now: u64) {
        lock(&self.limiter).failed(user, address, now);
    }

    pub fn login_succeeded(&self, user: &str) {
        lock(&self.limiter).succeeded(user);
    }

    /// Whether the use of the key or session `hash` at `now` should be written (the first
    /// in a minute).
    pub fn should_touch(&self, hash: &str, now: u64) -> bool {
        lock(&self.touched).allow(hash, now, TOUCH_EVERY_MS)
    }
}

/// How often the audit log is pruned and expired sessions and keys removed.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Prunes the audit log (by age and count) and removes expired sessions and API keys, at
/// start and then every minute.
pub async fn sweep(state: std::sync::Arc<crate::AppState>, retention_ms: u64, max_rows: u64) {
    loop {
        let swept = state
            .blocking(move |s| {
                let now = crate::state::now_ms();
                let mut store = s.store();
                store.prune_events(now.saturating_sub(retention_ms), max_rows)?;
                for h in store.prune_expired_tokens(now)? {
                    s.keys.forget(&h);
                }
                Ok::<_, store::Error>(())
            })
            .await;
        if let Err(e) = swept {
            tracing::warn!("sweeping the audit log and expired sessions: {e}");
        }
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}
