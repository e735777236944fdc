//! Private registry logins of each environment (`drover registry add|ls|rm`): passwords
//! sealed at rest with the data directory's key (`vault`), kept open in memory for the
//! desired states, and sent only with the containers whose image comes from that registry
//! (to the hosts that run them, over the agents' channel). Never returned by the API.

use std::collections::HashMap;
use std::sync::RwLock;

/// `(env, registry host)` → `(username, password)`.
type Logins = HashMap<(String, String), (String, String)>;

pub struct Registries {
    vault: std::sync::Arc<vault::Vault>,
    logins: RwLock<Logins>,
}

/// The name a login's password is sealed under.
fn sealed_name(env: &str, host: &str) -> String {
    format!("registry:{env}/{host}")
}

impl Registries {
    /// Opens the data directory's vault and every stored login.
    pub fn load(
        vault: std::sync::Arc<vault::Vault>,
        store: &store::Store,
    ) -> Result<Registries, String> {
        let mut logins = Logins::new();
        for r in store.registries().map_err(|e| e.to_string())? {
            let password = vault
                .unseal(&sealed_name(&r.env, &r.host), &r.sealed)
                .map_err(|e| format!("registry {} of {}: {e}", r.host, r.env))?;
            let password = String::from_utf8(password)
                .map_err(|_| format!("registry {} of {}: password is not UTF-8", r.host, r.env))?;
            logins.insert((r.env, r.host), (r.username, password));
        }
        Ok(Registries {
            vault,
            logins: RwLock::new(logins),
        })
    }

    /// The row to store for a new login (the password sealed).
    pub fn row(
        &self,
        env: &str,
        host: &str,
        username: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<store::RegistryRow, String> {
        Ok(store::RegistryRow {
            env: env.to_string(),
            host: host.to_string(),
            username: username.to_string(),
            sealed: self
                .vault
                .seal(&sealed_name(env, host), password.as_bytes())
                .map_err(|e| e.to_string())?,
            created_ms: now_ms,
        })
    }

    /// After the store committed a login.
    pub fn remember(&self, env: &str, host: &str, username: &str, password: &str) {
        self.write().insert(
            (env.to_string(), host.to_string()),
            (username.to_string(), password.to_string()),
        );
    }

    /// After the store removed a login.
    pub fn forget(&self, env: &str, host: &str) {
        self.write().remove(&(env.to_string(), host.to_string()));
    }

    /// The login for `image`'s registry in `env`, if there is one.
    pub fn auth_for(&self, env: &str, image: &str) -> Option<proto::RegistryAuth> {
        let host = proto::registry_of(image);
        let logins = self.logins.read().unwrap_or_else(|p| p.into_inner());
        let (username, password) = logins.get(&(env.to_string(), host.to_string()))?;
        Some(proto::RegistryAuth {
            server: host.to_string(),
            username: username.clone(),
            password: password.clone(),
        })
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Logins> {
        self.logins.write().unwrap_or_else(|p| p.into_inner())
    }
}
