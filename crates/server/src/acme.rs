//! ACME (RFC 8555) for `tls: auto`: every 10 s, the hosts `ingress::acme_wanted` names (no
//! `acme:HOST` certificate, or one expiring within 30 days) get one by HTTP-01 from the
//! directory given by `--acme-directory` (Let's Encrypt by default), with instant-acme. The
//! challenge is answered by the environment's ingress hosts: its key authorization goes into
//! their route table, and the order is told to validate once the table was sent. The
//! account's credentials are kept sealed in the store's settings; a host whose order failed
//! is tried again after 5 minutes, and why it failed shows in `drover ingress ls`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use crate::state::{AppState, Audit, now_ms};

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
const SETTING: &str = "acme_account";
const RETRY_AFTER_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub directory: String,
    pub email: Option<String>,
    /// A root to trust for the directory's own TLS (a test CA such as pebble's), PEM.
    pub ca_file: Option<std::path::PathBuf>,
}

/// Runs forever: obtains and renews certificates for `tls: auto` routes.
pub async fn run(state: Arc<AppState>, cfg: Config) {
    let mut account: Option<Account> = None;
    let mut failed: HashMap<(String, String), u64> = HashMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        let wanted = wanted(&state);
        let now = now_ms();
        for (env, host) in wanted {
            let key = (env.clone(), host.clone());
            if failed.get(&key).is_some_and(|at| now < at + RETRY_AFTER_MS) {
                continue;
            }
            if account.is_none() {
                match open_account(&state, &cfg).await {
                    Ok(a) => account = Some(a),
                    Err(e) => {
                        tracing::warn!("acme: account at {}: {e}", cfg.directory);
                        state.ingress.set_acme_error(
                            &env,
                            &host,
                            Some(format!("ACME account: {e}")),
                        );
                        failed.insert(key, now);
                        continue;
                    }
                }
            }
            let Some(acct) = &account else { continue };
            match obtain(&state, acct, &env, &host).await {
                Ok(()) => {
                    failed.remove(&key);
                    state.ingress.set_acme_error(&env, &host, None);
                }
                Err(e) => {
                    tracing::warn!(env = %env, host = %host, "acme: {e}");
                    state.ingress.set_acme_error(&env, &host, Some(e));
                    failed.insert(key, now_ms());
                }
            }
        }
    }
}

/// (env, host) pairs that need a certificate now.
fn wanted(state: &AppState) -> Vec<(String, String)> {
    let envs = state.store().environments().unwrap_or_default();
    let now_s = now_ms() / 1000;
    let mut out = Vec::new();
    for env in envs {
        let exposed = crate::ingress::exposed(state, &env);
        let services: Vec<ingress::Service<'_>> = exposed
            .iter()
            .map(|(stack, service, expose)| ingress::Service {
                stack,
                service,
                expose,
            })
            .collect();
        let stored = state.ingress.certs(&env);
        let certs: Vec<ingress::Cert> = stored.iter().map(|s| s.cert.clone()).collect();
        let expiry = |c: &ingress::Cert| {
            stored
                .iter()
                .find(|s| s.cert.name == c.name)
                .map(|s| s.not_after_s)
        };
        for host in ingress::acme_wanted(&services, &certs, now_s, expiry) {
            out.push((env.clone(), host));
        }
    }
    out
}

async fn open_account(state: &Arc<AppState>, cfg: &Config) -> Result<Account, String> {
    let builder = || match &cfg.ca_file {
        Some(ca) => Account::builder_with_root(ca).map_err(|e| e.to_string()),
        None => Account::builder().map_err(|e| e.to_string()),
    };
    let saved = state
        .blocking(|s| s.store().setting(SETTING))
        .await
        .map_err(|e| e.to_string())?;
    if let Some(sealed) = saved {
        let creds = state
            .vault
            .unseal(SETTING, &sealed)
            .ok()
            .and_then(|b| serde_json::from_slice::<AccountCredentials>(&b).ok());
        if let Some(creds) = creds {
            return builder()?
                .from_credentials(creds)
                .await
                .map_err(|e| e.to_string());
        }
    }
    let contact: Vec<String> = cfg.email.iter().map(|e| format!("mailto:{e}")).collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, creds) = builder()?
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&creds).map_err(|e| e.to_string())?;
    let sealed = state
        .vault
        .seal(SETTING, &json)
        .map_err(|e| e.to_string())?;
    let event_detail = format!("at {}", cfg.directory);
    state
        .blocking(move |s| {
            let audit = Audit {
                env: String::new(),
                actor: "acme".into(),
                source: String::new(),
                kind: "acme.account",
                subject: String::new(),
                detail: event_detail,
            };
            s.store()
                .put_setting(SETTING, Some(&sealed), &audit.event(), now_ms())
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(account)
}

/// One order for `host`: the HTTP-01 challenge published to the ingress hosts, validated,
/// the certificate stored as `acme:HOST`.
async fn obtain(
    state: &Arc<AppState>,
    account: &Account,
    env: &str,
    host: &str,
) -> Result<(), String> {
    let ids = [Identifier::Dns(host.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .map_err(|e| format!("new order: {e}"))?;
    let mut tokens = Vec::new();
    {
        let mut authorizations = order.authorizations();
        while let Some(a) = authorizations.next().await {
            let mut authz = a.map_err(|e| format!("authorization: {e}"))?;
            if authz.status == AuthorizationStatus::Valid {
                continue;
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("the directory offers no http-01 challenge")?;
            let token = challenge.token.clone();
            let key_auth = challenge.key_authorization().as_str().to_string();
            state.ingress.set_challenge(env, &token, Some(key_auth));
            state.mesh.changed(env);
            // The mesh push coalesces over 30 ms; give the ingress hosts time to get it.
            tokio::time::sleep(Duration::from_millis(500)).await;
            tokens.push(token);
            challenge
                .set_ready()
                .await
                .map_err(|e| format!("challenge: {e}"))?;
        }
    }
    let retry = RetryPolicy::new().timeout(Duration::from_secs(60));
    let status = order.poll_ready(&retry).await;
    for t in &tokens {
        state.ingress.set_challenge(env, t, None);
    }
    state.mesh.changed(env);
    let status = status.map_err(|e| format!("validation: {e}"))?;
    if status != OrderStatus::Ready {
        return Err(format!("validation: the order is {status:?}"));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| format!("finalize: {e}"))?;
    let chain_pem = order
        .poll_certificate(&retry)
        .await
        .map_err(|e| format!("certificate: {e}"))?;
    let info = tls::cert_info(&chain_pem, &key_pem)?;
    let name = ingress::acme_cert_name(host);
    let cert = ingress::Cert {
        name: name.clone(),
        domains: info.domains.clone(),
        chain_pem,
        key_pem,
    };
    let audit = Audit {
        env: env.to_string(),
        actor: "acme".into(),
        source: String::new(),
        kind: "cert.acme",
        subject: name,
        detail: format!("for {host}, expires {}", info.not_after_s),
    };
    let e = env.to_string();
    state
        .blocking(move |s| -> Result<(), String> {
            let (row, stored) = s
                .ingress
                .row(&e, cert, info.not_after_s, "acme", now_ms())?;
            s.store()
                .put_cert(&row, &audit.event(), now_ms())
                .map_err(|e| e.to_string())?;
            s.ingress.remember(&e, stored);
            s.mesh.changed(&e);
            Ok(())
        })
        .await?;
    tracing::info!(env = %env, host = %host, "acme: certificate obtained");
    Ok(())
}
