use super::*;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

/// Runs one TLS handshake between `server` and a client with `client` configuration for
/// `name`, over loopback, and returns the client's result.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let srv = std::thread::spawn(move || {
        let Ok((mut tcp, _)) = listener.accept() else {
            return;
        };
        let Ok(mut conn) = rustls::ServerConnection::new(server) else {
            return;
        };
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut buf = [0u8; 5];
        if tls.read_exact(&mut buf).is_ok() {
            let _ = tls.write_all(b"world");
        }
    });
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut conn = rustls::ClientConnection::new(client, server_name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    let result = (|| {
        tls.write_all(b"hello").map_err(|e| e.to_string())?;
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).map_err(|e| e.to_string())?;
        if &buf != b"world" {
            return Err("wrong answer".to_string());
        }
        Ok(())
    })();
    drop(tcp);
    let _ = srv.join();
    result
}

fn identity(dir: &Path) -> Identity {
    self_managed(dir, &["127.0.0.1".into(), "localhost".into()]).expect("identity")
}

#[test]
fn the_ca_is_made_once_and_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = identity(dir.path());
    let b = identity(dir.path());
    assert_eq!(a.ca_hash(), b.ca_hash());
    assert_ne!(
        a.chain[0], b.chain[0],
        "a new server certificate at every start"
    );
    assert!(a.ca_hash().starts_with("sha256:") && a.ca_hash().len() == 71);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CA_KEY))
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn a_pinned_client_accepts_the_right_ca_only() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = identity(dir.path());
    let server = server_config(&id).expect("server");
    let good = pinned_client_config(&id.ca_hash()).expect("client");
    assert_eq!(handshake(server.clone(), good.clone(), "127.0.0.1"), Ok(()));
    assert_eq!(handshake(server.clone(), good, "localhost"), Ok(()));

    let other = tempfile::tempdir().expect("tmp");
    let wrong = pinned_client_config(&identity(other.path()).ca_hash()).expect("client");
    let err = handshake(server.clone(), wrong, "127.0.0.1").expect_err("wrong pin");
    assert!(err.contains(PIN_MISMATCH), "{err}");

    // The right CA, but a name the certificate was not issued for.
    let good = pinned_client_config(&id.ca_hash()).expect("client");
    assert!(handshake(server, good, "example.org").is_err());
}

#[test]
fn a_client_trusting_the_ca_pem_connects() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = identity(dir.path());
    let server = server_config(&id).expect("server");
    let client = trusting_client_config(&id.ca_pem()).expect("client");
    assert_eq!(handshake(server, client, "127.0.0.1"), Ok(()));
}

#[test]
fn operator_files_are_read_leaf_first() {
    let dir = tempfile::tempdir().expect("tmp");
    let id = identity(&dir.path().join("ca"));
    let chain: String = id.chain.iter().map(|c| to_pem(c)).collect();
    std::fs::write(dir.path().join("chain.pem"), chain).expect("write");
    let key = pem::encode(&pem::Pem::new("PRIVATE KEY", id.key.secret_der().to_vec()));
    std::fs::write(dir.path().join("key.pem"), key).expect("write");
    let loaded =
        from_files(&dir.path().join("chain.pem"), &dir.path().join("key.pem")).expect("load");
    assert_eq!(loaded.ca_hash(), id.ca_hash());
    let missing = from_files(&dir.path().join("nope.pem"), &dir.path().join("key.pem"));
    assert!(matches!(missing, Err(Error::Pem { .. })));
}

#[test]
fn pins_are_parsed_strictly() {
    assert!(parse_pin(&format!("sha256:{}", "ab".repeat(32))).is_ok());
    for bad in [
        "",
        "sha256:",
        "abcd",
        &format!("sha1:{}", "ab".repeat(32)),
        &format!("sha256:{}", "zz".repeat(32)),
    ] {
        assert!(matches!(parse_pin(bad), Err(Error::Pin(_))), "{bad}");
    }
}
