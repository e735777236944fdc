//! Certificates by SNI: parsed once per table, looked up per handshake.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;
use crate::table::Compiled;

/// The certificates of one table, by the names they serve.
#[derive(Default)]
pub(crate) struct Certs {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` is kept under `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Certs {
    /// Parses every certificate; one that does not parse, or whose key does not match, is
    /// skipped and reported (its key never is). The first certificate naming a domain
    /// serves it.
    pub(crate) fn new(certs: &[ingress::Cert], provider: &CryptoProvider) -> (Certs, Vec<Error>) {
        let mut out = Certs::default();
        let mut problems = Vec::new();
        for cert in certs {
            let key = match parse(cert, provider) {
                Ok(key) => Arc::new(key),
                Err(reason) => {
                    problems.push(Error::Cert {
                        name: cert.name.clone(),
                        reason,
                    });
                    continue;
                }
            };
            for domain in &cert.domains {
                let domain = domain.to_ascii_lowercase();
                let (map, name) = match domain.strip_prefix("*.") {
                    Some(parent) => (&mut out.wildcard, parent.to_owned()),
                    None => (&mut out.exact, domain),
                };
                map.entry(name).or_insert_with(|| key.clone());
            }
        }
        (out, problems)
    }

    /// The certificate for a server name: an exact name, else a wildcard one label up.
    pub(crate) fn get(&self, sni: &str) -> Option<&Arc<CertifiedKey>> {
        let sni = sni.strip_suffix('.').unwrap_or(sni);
        self.exact.get(sni).or_else(|| {
            let (_, parent) = sni.split_once('.')?;
            self.wildcard.get(parent)
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }
}

fn parse(cert: &ingress::Cert, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("its chain is not PEM certificates ({e})"))?;
    if chain.is_empty() {
        return Err("its chain holds no certificate".into());
    }
    // No detail from the key's parser: it could quote the key.
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|_| "its key is not a PEM private key".to_owned())?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| format!("{e}"))
}

/// rustls' certificate choice: by SNI from the current table. No SNI, or a name no
/// certificate serves, fails the handshake (no certificate is shown to a client that did
/// not name its host).
pub(crate) struct Resolver(pub(crate) Arc<ArcSwap<Compiled>>);

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(sni) = hello.server_name() else {
            tracing::debug!("TLS handshake without SNI refused");
            return None;
        };
        let table = self.0.load();
        let found = if sni.bytes().any(|b| b.is_ascii_uppercase()) {
            table.certs.get(&sni.to_ascii_lowercase()).cloned()
        } else {
            table.certs.get(sni).cloned()
        };
        if found.is_none() {
            tracing::debug!(sni, "no certificate for this name");
        }
        found
    }
}
