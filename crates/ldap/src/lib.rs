//! Login against an LDAP directory or Active Directory (`drover auth ldap`).
//!
//! [`authenticate`]: bind as the service account, find the one entry the user filter
//! matches under the user base, bind as that entry with the password given, then (as the
//! service account again) collect the DNs of the groups the group filter matches.
//! [`lookup`] does the same without the user's bind: what the server asks every minute to
//! learn whether a user still exists, is still enabled (Active Directory's
//! `userAccountControl` bit 0x2) and is still in the same groups.
//!
//! Plain `ldap://`, StartTLS on it, or `ldaps://`; TLS by rustls with the ring provider,
//! trusting the configuration's CA (`ca_pem`) or else the system's roots. Every connection
//! and operation has a deadline, so a directory that does not answer never holds a login.

mod filter;

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ldap3::result::LdapError;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Scope, SearchEntry, SearchOptions};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

pub use filter::{
    MAX_USERNAME, check_filter, escape_filter_value, normalize_dn, render_filter, valid_username,
};

/// How long connecting (TCP, TLS, StartTLS) and each operation may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long one whole [`authenticate`] or [`lookup`] may take.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(12);

/// Active Directory's "account disabled" bit of `userAccountControl`.
const ACCOUNTDISABLE: i64 = 0x2;

/// A directory to log in against. Stored sealed by the server: `bind_password` is a secret,
/// and `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// `ldap://HOST[:PORT]` or `ldaps://HOST[:PORT]`.
    pub url: String,
    /// StartTLS on an `ldap://` connection.
    pub starttls: bool,
    /// CA certificates (PEM) to trust for `ldaps://` or StartTLS, instead of the system's.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// The service account that searches the directory.
    pub bind_dn: String,
    pub bind_password: String,
    /// Where users are searched (whole subtree).
    pub user_base: String,
    /// Finds one user; holds `{username}`, e.g. `(uid={username})` or
    /// `(sAMAccountName={username})`.
    pub user_filter: String,
    /// Where groups are searched (whole subtree); no groups without it.
    #[serde(default)]
    pub group_base: Option<String>,
    /// Finds a user's groups; holds `{dn}` and/or `{username}`, e.g. `(member={dn})`.
    #[serde(default)]
    pub group_filter: Option<String>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("url", &self.url)
            .field("starttls", &self.starttls)
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "…"))
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"***")
            .field("user_base", &self.user_base)
            .field("user_filter", &self.user_filter)
            .field("group_base", &self.group_base)
            .field("group_filter", &self.group_filter)
            .finish()
    }
}

/// A directory user: the name they logged in with, their entry, and the DNs of their groups
/// as the directory spells them (compare with [`normalize_dn`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub username: String,
    pub dn: String,
    pub groups: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Wrong password, unknown or disabled user, empty password: one message for all.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// No connection, TLS failure, or no answer in time.
    #[error("directory unreachable: {0}")]
    Unreachable(String),
    #[error("ldap {field}: {reason}")]
    Config { field: &'static str, reason: String },
    /// The directory answered, but not as expected (service account refused, base missing,
    /// ambiguous user filter…).
    #[error("directory: {0}")]
    Directory(String),
}

fn config_error(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Config {
        field,
        reason: reason.into(),
    }
}

impl Config {
    /// Checks the configuration; the error names the field.
    pub fn check(&self) -> Result<(), Error> {
        let tls = self.check_url()?;
        if let Some(pem) = &self.ca_pem {
            if !tls {
                return Err(config_error(
                    "ca_pem",
                    "a CA is only used with ldaps:// or StartTLS",
                ));
            }
            roots_from_pem(pem)?;
        }
        if self.bind_dn.trim().is_empty() {
            return Err(config_error("bind_dn", "is empty"));
        }
        if self.bind_password.is_empty() {
            // An empty password makes a simple bind anonymous, whatever the DN.
            return Err(config_error("bind_password", "is empty"));
        }
        if self.user_base.trim().is_empty() {
            return Err(config_error("user_base", "is empty"));
        }
        check_filter(&self.user_filter, &["{username}"])
            .map_err(|r| config_error("user_filter", r))?;
        match (&self.group_base, &self.group_filter) {
            (None, None) => {}
            (Some(base), Some(f)) => {
                if base.trim().is_empty() {
                    return Err(config_error("group_base", "is empty"));
                }
                check_filter(f, &["{dn}", "{username}"])
                    .map_err(|r| config_error("group_filter", r))?;
            }
            (Some(_), None) => {
                return Err(config_error("group_filter", "is needed with group_base"));
            }
            (None, Some(_)) => {
                return Err(config_error("group_base", "is needed with group_filter"));
            }
        }
        Ok(())
    }

    /// Checks `url` and `starttls`; says whether the connection uses TLS.
    fn check_url(&self) -> Result<bool, Error> {
        let url = url::Url::parse(&self.url).map_err(|e| config_error("url", e.to_string()))?;
        let shape = "must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]";
        let ldaps = match url.scheme() {
            "ldap" => false,
            "ldaps" => true,
            other => return Err(config_error("url", format!("scheme {other}: {shape}"))),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(config_error("url", format!("has no host: {shape}")));
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || !matches!(url.path(), "" | "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(config_error("url", shape));
        }
        if self.starttls && ldaps {
            return Err(config_error(
                "starttls",
                "is for ldap:// URLs (ldaps:// is TLS from the start)",
            ));
        }
        Ok(ldaps || self.starttls)
    }
}

/// Logs `username` in with `password`: their identity, or [`Error::InvalidCredentials`]
/// for a wrong password, an unknown or disabled user, or an empty username or password.
pub async fn authenticate(cfg: &Config, username: &str, password: &str) -> Result<Identity, Error> {
    cfg.check()?;
    if !valid_username(username) || password.is_empty() {
        // An empty password makes an unauthenticated bind (RFC 4513, 5.1.2), which many
        // directories (Active Directory among them) answer with success.
        return Err(Error::InvalidCredentials);
    }
    within_total(async {
        let mut s = Session::open(cfg).await?;
        let Some(user) = s.find_user(cfg, username).await? else {
            tracing::debug!(username, "ldap login refused: no such user");
            return Err(Error::InvalidCredentials);
        };
        if user.disabled {
            tracing::debug!(
                username,
                dn = user.dn,
                "ldap login refused: account disabled"
            );
            return Err(Error::InvalidCredentials);
        }
        let res = s.bind(&user.dn, password).await?;
        match res.rc {
            0 => {}
            49 => {
                tracing::debug!(username, dn = user.dn, "ldap login refused: wrong password");
                return Err(Error::InvalidCredentials);
            }
            _ => return Err(Error::Directory(format!("bind as {}: {res}", user.dn))),
        }
        s.service_bind(cfg).await?;
        let groups = s.groups(cfg, username, &user.dn).await?;
        s.close().await;
        Ok(Identity {
            username: username.to_string(),
            dn: user.dn,
            groups,
        })
    })
    .await
}

/// What the directory says of `username` now, without their password: `None` when there is
/// no such user (or the name could not be one) or the account is disabled.
pub async fn lookup(cfg: &Config, username: &str) -> Result<Option<Identity>, Error> {
    cfg.check()?;
    if !valid_username(username) {
        return Ok(None);
    }
    within_total(async {
        let mut s = Session::open(cfg).await?;
        let user = match s.find_user(cfg, username).await? {
            Some(u) if !u.disabled => u,
            _ => return Ok(None),
        };
        let groups = s.groups(cfg, username, &user.dn).await?;
        s.close().await;
        Ok(Some(Identity {
            username: username.to_string(),
            dn: user.dn,
            groups,
        }))
    })
    .await
}

async fn within_total<T>(f: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    tokio::time::timeout(TOTAL_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Unreachable(format!(
                "no answer within {} s",
                TOTAL_TIMEOUT.as_secs()
            )))
        })
}

/// The user entry the user filter found.
struct User {
    dn: String,
    disabled: bool,
}

/// One connection, bound as the service account.
struct Session {
    ldap: Ldap,
}

impl Session {
    async fn open(cfg: &Config) -> Result<Session, Error> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(TIMEOUT)
            .set_starttls(cfg.starttls);
        if cfg.check_url()? {
            settings = settings.set_config(client_config(cfg)?);
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &cfg.url)
            .await
            .map_err(|e| ldap_error(&format!("connect to {}", cfg.url), e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!("ldap connection ended: {e}");
            }
        });
        let mut s = Session { ldap };
        s.service_bind(cfg).await?;
        Ok(s)
    }

    async fn service_bind(&mut self, cfg: &Config) -> Result<(), Error> {
        let res = self.bind(&cfg.bind_dn, &cfg.bind_password).await?;
        if res.rc != 0 {
            return Err(Error::Directory(format!(
                "bind as the service account {}: {res}",
                cfg.bind_dn
            )));
        }
        Ok(())
    }

    /// A simple bind; the result says whether it was accepted.
    async fn bind(&mut self, dn: &str, password: &str) -> Result<LdapResult, Error> {
        if password.is_empty() {
            return Err(Error::InvalidCredentials);
        }
        self.ldap
            .with_timeout(TIMEOUT)
            .simple_bind(dn, password)
            .await
            .map_err(|e| ldap_error("bind", e))
    }

    /// Searches `base`'s subtree; the DNs and attributes of the entries found (referrals
    /// left out).
    async fn search(
        &mut self,
        what: &str,
        base: &str,
        filter: &str,
        attrs: &[&str],
        sizelimit: i32,
    ) -> Result<Vec<SearchEntry>, Error> {
        let res = self
            .ldap
            .with_timeout(TIMEOUT)
            .with_search_options(SearchOptions::new().sizelimit(sizelimit))
            .search(base, Scope::Subtree, filter, attrs)
            .await
            .map_err(|e| ldap_error(what, e))?;
        let entries: Vec<SearchEntry> = res
            .0
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(SearchEntry::construct)
            .collect();
        match res.1.rc {
            0 => Ok(entries),
            // The user search asks for at most two: enough to see that one is too many.
            4 if sizelimit > 0 && entries.len() >= sizelimit as usize => Ok(entries),
            32 => Err(Error::Directory(format!(
                "{what}: the base {base} does not exist"
            ))),
            _ => Err(Error::Directory(format!("{what} under {base}: {}", res.1))),
        }
    }

    async fn find_user(&mut self, cfg: &Config, username: &str) -> Result<Option<User>, Error> {
        let filter = render_filter(&cfg.user_filter, username, "");
        let mut found = self
            .search(
                "user search",
                &cfg.user_base,
                &filter,
                &["userAccountControl"],
                2,
            )
            .await?;
        if found.len() > 1 {
            return Err(Error::Directory(format!(
                "the user filter {filter} matches more than one entry under {}: it is ambiguous",
                cfg.user_base
            )));
        }
        let Some(entry) = found.pop() else {
            return Ok(None);
        };
        let disabled = entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("userAccountControl"))
            .map(|(_, v)| account_disabled(v));
        Ok(Some(User {
            dn: entry.dn,
            disabled: disabled.unwrap_or(false),
        }))
    }

    async fn groups(
        &mut self,
        cfg: &Config,
        username: &str,
        dn: &str,
    ) -> Result<Vec<String>, Error> {
        let (Some(base), Some(template)) = (&cfg.group_base, &cfg.group_filter) else {
            return Ok(Vec::new());
        };
        let filter = render_filter(template, username, dn);
        let found = self
            .search("group search", base, &filter, &["1.1"], 0)
            .await?;
        let mut groups: Vec<String> = found.into_iter().map(|e| e.dn).collect();
        groups.sort();
        groups.dedup();
        Ok(groups)
    }

    async fn close(mut self) {
        let _ = tokio::time::timeout(TIMEOUT, self.ldap.unbind()).await;
    }
}

/// Whether `userAccountControl` values say the account is disabled; a value that is not a
/// number counts as disabled.
fn account_disabled(values: &[String]) -> bool {
    values.iter().any(|v| {
        v.trim()
            .parse::<i64>()
            .map_or(true, |flags| flags & ACCOUNTDISABLE != 0)
    })
}

/// An ldap3 error as ours: no connection or no answer is `Unreachable`, the rest `Directory`.
fn ldap_error(what: &str, e: LdapError) -> Error {
    match e {
        LdapError::Timeout { .. } => {
            Error::Unreachable(format!("{what}: no answer within {} s", TIMEOUT.as_secs()))
        }
        LdapError::Io { .. }
        | LdapError::OpSend { .. }
        | LdapError::ResultRecv { .. }
        | LdapError::IdScrubSend { .. }
        | LdapError::MiscSend { .. }
        | LdapError::EndOfStream
        | LdapError::Rustls { .. }
        | LdapError::DNSName { .. } => Error::Unreachable(format!("{what}: {e}")),
        LdapError::LdapResult { result } if result.rc == 52 || result.rc == 51 => {
            Error::Unreachable(format!("{what}: {result}"))
        }
        e => Error::Directory(format!("{what}: {e}")),
    }
}

/// The CA certificates of a PEM text, as a root store.
fn roots_from_pem(pem: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let cert = cert.map_err(|e| config_error("ca_pem", format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| config_error("ca_pem", format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(config_error("ca_pem", "holds no CERTIFICATE"));
    }
    Ok(roots)
}

/// The system's trusted roots, read once.
fn system_roots() -> RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!("loading the system's CA certificates: {e}");
            }
            roots.add_parsable_certificates(found.certs);
            roots
        })
        .clone()
}

fn client_config(cfg: &Config) -> Result<Arc<rustls::ClientConfig>, Error> {
    let roots = match &cfg.ca_pem {
        Some(pem) => roots_from_pem(pem)?,
        None => system_roots(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Unreachable(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests;
