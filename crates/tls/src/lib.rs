//! TLS for every Drover connection that leaves the machine: the server's certificates
//! (a CA made on first start and kept in the data directory, a server certificate issued
//! from it at every start; or the operator's own files), the CA pin agents join with
//! (`sha256:` + hex SHA-256 of the CA certificate, like kubeadm's discovery hash), and the
//! rustls configurations of the server, of agents (trusting only the pinned CA) and of the
//! CLI (trusting the CA its config recorded).
//!
//! One crypto provider: ring. No OpenSSL.

pub mod names;
mod served;
pub use served::{CertInfo, cert_info};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Pem { path: PathBuf, why: String },
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid CA hash {0:?}: expected sha256: followed by 64 hex digits")]
    Pin(String),
}

/// The crypto provider every Drover TLS configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes [`provider`] the process's default, for TLS clients built without a Drover
/// configuration (an HTTP client trusting the system's roots). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// What the server presents: its certificate chain (leaf first, the CA last) and key.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Identity {
    /// The CA agents pin: the last certificate of the chain.
    pub fn ca(&self) -> Option<&CertificateDer<'static>> {
        self.chain.last()
    }

    /// `sha256:HEX` of the CA certificate.
    pub fn ca_hash(&self) -> String {
        self.ca().map(|c| ca_hash(c)).unwrap_or_default()
    }

    /// The CA certificate as PEM, for clients to trust.
    pub fn ca_pem(&self) -> String {
        self.ca().map(|c| to_pem(c)).unwrap_or_default()
    }
}

/// `sha256:` + hex SHA-256 of a certificate's DER bytes.
pub fn ca_hash(cert: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(cert)))
}

fn to_pem(cert: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", cert.to_vec()))
}

/// Files of the self-managed CA in a data directory.
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const CA_NAME: &str = "Drover CA";

/// The server's identity from its own CA in `dir` (created on first call, the key mode
/// 0600), with a server certificate issued now for `names` (DNS names or IP addresses).
pub fn self_managed(dir: &Path, names: &[String]) -> Result<Identity, Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    let ca_params = || -> Result<rcgen::CertificateParams, Error> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, CA_NAME);
        p.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        Ok(p)
    };
    let (ca_der, ca_key) = if key_path.exists() && cert_path.exists() {
        let key_pem = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| Error::Pem {
            path: key_path.clone(),
            why: e.to_string(),
        })?;
        let cert = read_certs(&cert_path)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Pem {
                path: cert_path.clone(),
                why: "no certificate".into(),
            })?;
        (cert, key)
    } else {
        let key = rcgen::KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&key_path, key.serialize_pem().as_bytes())?;
        write_private(&cert_path, cert.pem().as_bytes())?;
        (cert.der().clone(), key)
    };
    let issuer = rcgen::Issuer::new(ca_params()?, ca_key);
    let mut leaf = rcgen::CertificateParams::new(names.to_vec())?;
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "drover server");
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;
    Ok(Identity {
        chain: vec![leaf_cert.der().clone(), ca_der],
        key: PrivateKeyDer::try_from(leaf_key.serialize_der()).map_err(|e| Error::Pem {
            path: key_path,
            why: e.to_string(),
        })?,
    })
}

/// The operator's own certificate chain (leaf first; the last certificate is what agents
/// pin) and private key, as PEM files.
pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, Error> {
    let chain = read_certs(cert)?;
    if chain.is_empty() {
        return Err(Error::Pem {
            path: cert.to_path_buf(),
            why: "no certificate found".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Pem {
        path: key.to_path_buf(),
        why: e.to_string(),
    })?;
    Ok(Identity {
        chain,
        key: key_der,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem_err = |why: String| Error::Pem {
        path: path.to_path_buf(),
        why,
    };
    CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(e.to_string()))
}

/// Certificates in PEM text.
pub fn certs_from_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            path: PathBuf::from("<pem>"),
            why: e.to_string(),
        })
}

/// Writes `bytes` to `path` readable by the owner only, atomically.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    // The rename itself survives a power cut only once the directory is synced.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// The server's rustls configuration (HTTP/1.1 only).
pub fn server_config(id: &Identity) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Parses `sha256:HEX` into the 32 bytes it names.
pub fn parse_pin(pin: &str) -> Result<[u8; 32], Error> {
    let bad = || Error::Pin(pin.to_string());
    let hex_part = pin.strip_prefix("sha256:").ok_or_else(bad)?;
    let bytes = hex::decode(hex_part).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// A client configuration that trusts only a server whose chain holds the certificate
/// `pin` names, and whose certificate that CA issued for the name connected to.
pub fn pinned_client_config(pin: &str) -> Result<Arc<rustls::ClientConfig>, Error> {
    let verifier = Arc::new(Pinned {
        pin: parse_pin(pin)?,
        provider: provider(),
    });
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// A client configuration that trusts the CA certificates in `ca_pem` only.
pub fn trusting_client_config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots.add(c)?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// The message a pin mismatch fails with (agents recognise it to explain and stop).
pub const PIN_MISMATCH: &str = "the server's certificate chain does not match the pinned CA hash";

#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let anchor = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|c| Sha256::digest(c.as_ref()).as_slice() == self.pin)
            .ok_or_else(|| rustls::Error::General(PIN_MISMATCH.into()))?;
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests;
