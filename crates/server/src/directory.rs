//! LDAP / Active Directory: the configuration (sealed in the store's settings, open in
//! memory; the bind password is never returned), sign-in of directory users, and the
//! refresh that keeps each directory user's groups current: a user removed or disabled in
//! the directory, or moved out of a group, loses that access at the next refresh (every
//! 30 s), API keys and sessions included.

use std::sync::{Arc, RwLock};

use crate::state::AppState;

/// The settings key and the name the configuration is sealed under.
const KEY: &str = "ldap";
/// How often directory users are looked up again.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub struct Directory {
    vault: Arc<vault::Vault>,
    config: RwLock<Option<ldap::Config>>,
}

impl Directory {
    /// Opens the stored configuration, if any.
    pub fn load(vault: Arc<vault::Vault>, store: &store::Store) -> Result<Directory, String> {
        let config = match store.setting(KEY).map_err(|e| e.to_string())? {
            Some(sealed) => {
                let json = vault
                    .unseal(KEY, &sealed)
                    .map_err(|e| format!("LDAP settings: {e}"))?;
                Some(serde_json::from_slice(&json).map_err(|e| format!("LDAP settings: {e}"))?)
            }
            None => None,
        };
        Ok(Directory {
            vault,
            config: RwLock::new(config),
        })
    }

    pub fn config(&self) -> Option<ldap::Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The sealed form of `cfg`, to store.
    pub fn seal(&self, cfg: &ldap::Config) -> Result<String, String> {
        let json = serde_json::to_vec(cfg).map_err(|e| e.to_string())?;
        self.vault.seal(KEY, &json).map_err(|e| e.to_string())
    }

    /// Stores (or with `None` removes) the configuration.
    pub fn put(
        &self,
        store: &mut store::Store,
        cfg: Option<ldap::Config>,
        event: &store::NewEvent<'_>,
        now: u64,
    ) -> Result<(), crate::error::ApiError> {
        let sealed = cfg
            .as_ref()
            .map(|c| self.seal(c))
            .transpose()
            .map_err(|e| crate::error::ApiError::bad_request("ldap", e))?;
        store.put_setting(KEY, sealed.as_deref(), event, now)?;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = cfg;
        Ok(())
    }
}

/// A directory group's DN as members name it (`group:` + the normalised DN).
pub fn group_subject(dn: &str) -> String {
    format!("group:{}", ldap::normalize_dn(dn))
}

/// Looks every directory user up again, every [`REFRESH_EVERY`]: their groups follow the
/// directory, and a user gone (removed, disabled, or the directory no longer configured)
/// loses access. A directory that cannot be reached keeps what was last known.
pub async fn refresh(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(REFRESH_EVERY).await;
        refresh_once(&state).await;
    }
}

pub async fn refresh_once(state: &Arc<AppState>) {
    let users: Vec<String> = match state.store().users() {
        Ok(u) => u
            .into_iter()
            .filter(|u| u.source == "ldap")
            .map(|u| u.name)
            .collect(),
        Err(e) => {
            tracing::warn!("directory refresh: {e}");
            return;
        }
    };
    let Some(cfg) = state.directory.config() else {
        for u in &users {
            state.accounts.set_groups(u, None);
        }
        return;
    };
    for u in users {
        match ldap::lookup(&cfg, &u).await {
            Ok(found) => state.accounts.set_groups(
                &u,
                found.map(|id| id.groups.iter().map(|g| group_subject(g)).collect()),
            ),
            Err(e) => tracing::warn!(user = %u, "directory refresh: {e}"),
        }
    }
}
