//! Values kept encrypted at rest (registry passwords; later secrets): ChaCha20-Poly1305
//! (ring) under a key made on first use and kept in the data directory (`secrets.key`,
//! mode 0600). A sealed value is `hex(nonce ‖ ciphertext ‖ tag)`; the name it is stored
//! under is bound to it (additional data), so a sealed value copied to another row does not
//! open.

use std::path::Path;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const KEY_FILE: &str = "secrets.key";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("secrets key {path}: {why}")]
    Key { path: String, why: String },
    #[error("randomness unavailable")]
    Random,
    #[error(
        "a stored secret does not open with this data directory's key (tampered, or another key)"
    )]
    Open,
}

pub struct Vault {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl Vault {
    /// The vault of `dir`: its key (`secrets.key`) is made on first use.
    pub fn open(dir: &Path) -> Result<Vault, Error> {
        Vault::open_key(&dir.join(KEY_FILE))
    }

    /// The vault whose key is the file `path` (made on first use, mode 0600).
    pub fn open_key(path: &Path) -> Result<Vault, Error> {
        let path = path.to_path_buf();
        let dir = path.parent().unwrap_or(Path::new("."));
        let err = |why: String| Error::Key {
            path: path.display().to_string(),
            why,
        };
        let rng = SystemRandom::new();
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => hex::decode(b.trim_ascii()).map_err(|e| err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; KEY_LEN];
                rng.fill(&mut k).map_err(|_| Error::Random)?;
                tls::write_private(&path, hex::encode(k).as_bytes())
                    .map_err(|e| err(e.to_string()))?;
                k.to_vec()
            }
            Err(e) => return Err(err(e.to_string())),
        };
        if bytes.len() != KEY_LEN {
            return Err(err(format!(
                "expected {KEY_LEN} bytes, found {}",
                bytes.len()
            )));
        }
        let key =
            UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| err("unusable".into()))?;
        Ok(Vault {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    /// Encrypts `value`, bound to `name`.
    pub fn seal(&self, name: &str, value: &[u8]) -> Result<String, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Error::Random)?;
        let mut data = value.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut data,
            )
            .map_err(|_| Error::Random)?;
        let mut out = nonce.to_vec();
        out.extend(data);
        Ok(hex::encode(out))
    }

    /// Decrypts what [`Vault::seal`] made for `name`.
    pub fn unseal(&self, name: &str, sealed: &str) -> Result<Vec<u8>, Error> {
        let bytes = hex::decode(sealed).map_err(|_| Error::Open)?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::Open);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Open)?;
        let mut data = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut data)
            .map_err(|_| Error::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_under_their_name_and_key() {
        let dir = tempfile::tempdir().expect("dir");
        let v = Vault::open(dir.path()).expect("vault");
        let sealed = v
            .seal("default/registry.example", b"hunter2")
            .expect("seal");
        assert!(!sealed.contains(&hex::encode(b"hunter2")));
        assert_eq!(
            v.unseal("default/registry.example", &sealed).expect("open"),
            b"hunter2"
        );
        assert!(v.unseal("other/registry.example", &sealed).is_err());
        // The same key after a restart; another directory's key does not open it.
        let again = Vault::open(dir.path()).expect("vault again");
        assert!(again.unseal("default/registry.example", &sealed).is_ok());
        let other = tempfile::tempdir().expect("dir");
        let v2 = Vault::open(other.path()).expect("vault");
        assert!(v2.unseal("default/registry.example", &sealed).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
