//! TLS certificates the ingress serves: added by users (`drover cert add`) or obtained by
//! ACME (`tls: auto`, named `acme:HOST`). The private key only sealed (see the `vault` crate).

use rusqlite::params;

use crate::{NewEvent, Result, Store};

#[derive(Clone, PartialEq, Eq)]
pub struct CertRow {
    pub env: String,
    pub name: String,
    /// The names the certificate is valid for.
    pub domains: Vec<String>,
    /// PEM, leaf first.
    pub chain_pem: String,
    /// The private key, sealed.
    pub key_sealed: String,
    /// Expiry, seconds since the epoch.
    pub not_after_s: u64,
    /// `file` (added) or `acme`.
    pub source: String,
    pub created_ms: u64,
}

impl std::fmt::Debug for CertRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertRow")
            .field("env", &self.env)
            .field("name", &self.name)
            .field("domains", &self.domains)
            .field("not_after_s", &self.not_after_s)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Every environment's certificates.
    pub fn certs(&self) -> Result<Vec<CertRow>> {
        let mut st = self.conn.prepare(
            "SELECT env, name, domains, chain_pem, key_sealed, not_after_s, source, created_ms
             FROM certs ORDER BY env, name",
        )?;
        let rows = st.query_map([], |r| {
            let domains: String = r.get(2)?;
            Ok(CertRow {
                env: r.get(0)?,
                name: r.get(1)?,
                domains: domains
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect(),
                chain_pem: r.get(3)?,
                key_sealed: r.get(4)?,
                not_after_s: r.get::<_, i64>(5)?.max(0) as u64,
                source: r.get(6)?,
                created_ms: r.get::<_, i64>(7)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Adds or replaces a certificate (a renewal replaces it).
    pub fn put_cert(&mut self, c: &CertRow, event: &NewEvent<'_>, now_ms: u64) -> Result<bool> {
        self.audited_change(
            "INSERT OR REPLACE INTO certs
             (env, name, domains, chain_pem, key_sealed, not_after_s, source, created_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                c.env,
                c.name,
                c.domains.join(","),
                c.chain_pem,
                c.key_sealed,
                c.not_after_s.min(i64::MAX as u64) as i64,
                c.source,
                now_ms as i64
            ],
            event,
            now_ms,
        )
    }

    /// Removes a certificate; false when there was none.
    pub fn remove_cert(
        &mut self,
        env: &str,
        name: &str,
        event: &NewEvent<'_>,
        now_ms: u64,
    ) -> Result<bool> {
        self.audited_change(
            "DELETE FROM certs WHERE env = ?1 AND name = ?2",
            params![env, name],
            event,
            now_ms,
        )
    }
}
