//! Certificates: parsed once per table (`table.rs`), chosen per handshake by SNI through
//! `ingress::Router::cert_for`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::table::{Compiled, index_of};

/// The chain and key of a certificate, checked to match. The reason it does not parse
/// never quotes the key.
pub(crate) fn parse(
    cert: &ingress::Cert,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, String> {
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
        let found = table
            .router
            .cert_for(sni)
            .and_then(|cert| index_of(&table.router.table().certs, cert))
            .and_then(|i| table.certs.get(i))
            .cloned();
        if found.is_none() {
            tracing::debug!(sni, "no certificate for this name");
        }
        found
    }
}
