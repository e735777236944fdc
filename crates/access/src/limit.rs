//! Login attempts, limited per user and per address: a guesser is slowed down whichever it
//! varies. Failures are counted in fixed windows; a key past its limit is refused until its
//! window ends, and the refusal says when to retry.

use std::collections::HashMap;

/// Failed logins allowed per user name per window.
pub const USER_FAILURES: u32 = 5;
/// Failed logins allowed per source address per window.
pub const ADDRESS_FAILURES: u32 = 20;
/// The window.
pub const WINDOW_MS: u64 = 5 * 60_000;
/// Keys remembered before expired ones are swept.
const MAX_KEYS: usize = 10_000;

/// A refused attempt: who is limited and for how long.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins {who}: retry in {retry_after_s} s")]
pub struct Limited {
    pub who: String,
    pub retry_after_s: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: u64,
    failures: u32,
}

#[derive(Debug, Default)]
pub struct LoginLimiter {
    users: HashMap<String, Window>,
    addresses: HashMap<String, Window>,
}

fn over(map: &HashMap<String, Window>, key: &str, limit: u32, now: u64) -> Option<u64> {
    let w = map.get(key)?;
    let end = w.start + WINDOW_MS;
    (w.failures >= limit && now < end).then(|| (end - now).div_ceil(1000))
}

fn count(map: &mut HashMap<String, Window>, key: &str, now: u64) {
    if map.len() >= MAX_KEYS {
        map.retain(|_, w| now < w.start + WINDOW_MS);
    }
    let w = map.entry(key.to_string()).or_insert(Window {
        start: now,
        failures: 0,
    });
    if now >= w.start + WINDOW_MS {
        *w = Window {
            start: now,
            failures: 0,
        };
    }
    w.failures += 1;
}

impl LoginLimiter {
    /// Whether an attempt for `user` from `address` may be tried at `now`.
    pub fn check(&self, user: &str, address: &str, now: u64) -> Result<(), Limited> {
        if let Some(s) = over(&self.addresses, address, ADDRESS_FAILURES, now) {
            return Err(Limited {
                who: format!("from {address}"),
                retry_after_s: s,
            });
        }
        if let Some(s) = over(&self.users, user, USER_FAILURES, now) {
            return Err(Limited {
                who: format!("for user '{user}'"),
                retry_after_s: s,
            });
        }
        Ok(())
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, user: &str, address: &str, now: u64) {
        count(&mut self.users, user, now);
        count(&mut self.addresses, address, now);
    }

    /// A successful login clears the user's failures (not the address's).
    pub fn succeeded(&mut self, user: &str) {
        self.users.remove(user);
    }
}
