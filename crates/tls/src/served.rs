//! Certificates Drover serves for users (the ingress): what a PEM chain and key hold, checked
//! before they are stored.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What a served certificate is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// DNS names of the leaf (its subject alternative names, else its common name),
    /// lowercase.
    pub domains: Vec<String>,
    /// Validity, seconds since the epoch.
    pub not_before_s: u64,
    pub not_after_s: u64,
}

/// Reads a certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1 or
/// SEC1), and checks that the key is the leaf's. The error says which part is wrong,
/// never quoting the key.
pub fn cert_info(chain_pem: &str, key_pem: &str) -> Result<CertInfo, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate: not PEM ({e})"))?;
    let leaf = chain
        .first()
        .ok_or_else(|| "certificate: no CERTIFICATE block found".to_string())?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|_| "key: no private key found (PEM PKCS#8, RSA or EC)".to_string())?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| "key: not a supported key type (RSA, ECDSA P-256/P-384, Ed25519)")?;
    let certified = rustls::sign::CertifiedKey::new(chain.clone(), signing);
    certified
        .keys_match()
        .map_err(|_| "key: it is not the certificate's key".to_string())?;
    let (_, x509) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("certificate: not a valid X.509 certificate ({e})"))?;
    let mut domains: Vec<String> = Vec::new();
    if let Ok(Some(san)) = x509.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                domains.push(d.to_ascii_lowercase());
            }
        }
    }
    if domains.is_empty() {
        for cn in x509.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                domains.push(s.to_ascii_lowercase());
            }
        }
    }
    if domains.is_empty() {
        return Err("certificate: it names no DNS name (subject alternative names)".into());
    }
    domains.sort();
    domains.dedup();
    let validity = x509.validity();
    Ok(CertInfo {
        domains,
        not_before_s: validity.not_before.timestamp().max(0) as u64,
        not_after_s: validity.not_after.timestamp().max(0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn reads_names_and_expiry_and_checks_the_key() {
        let (cert, key) = make(&["Shop.example.com", "*.example.com"]);
        let info = cert_info(&cert, &key).expect("valid");
        assert_eq!(info.domains, vec!["*.example.com", "shop.example.com"]);
        assert!(info.not_after_s > info.not_before_s);

        let (_, other_key) = make(&["x.example.com"]);
        assert_eq!(
            cert_info(&cert, &other_key),
            Err("key: it is not the certificate's key".to_string())
        );
        assert!(cert_info("hello", &key).is_err_and(|e| e.starts_with("certificate:")));
        assert!(cert_info(&cert, "hello").is_err_and(|e| e.starts_with("key:")));
        // The error never quotes the key.
        let broken = key.replace('A', "B");
        assert!(cert_info(&cert, &broken).is_err_and(|e| !e.contains("BEGIN")));
    }
}
