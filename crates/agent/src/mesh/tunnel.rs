//! The host's WireGuard tunnel: boringtun's userspace implementation, in process, over a TUN
//! device, configured through its UAPI on one end of a socket pair (no control socket in the
//! file system; closing our end stops the device).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

use boringtun::device::{DeviceConfig, DeviceHandle};
use boringtun::x25519::{PublicKey, StaticSecret};

pub struct Tunnel {
    // Dropped last: stops the device threads.
    _device: DeviceHandle,
    uapi: Mutex<BufReader<UnixStream>>,
    /// What the device is configured with: public key (hex) → (endpoint, allowed IPs).
    peers: Mutex<BTreeMap<String, String>>,
}

/// A private key and its public key, hex.
pub fn public_key(private_hex: &str) -> Option<String> {
    let bytes: [u8; 32] = hex::decode(private_hex).ok()?.try_into().ok()?;
    let secret = StaticSecret::from(bytes);
    Some(hex::encode(PublicKey::from(&secret).as_bytes()))
}

pub fn new_private_key() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| e.to_string())?;
    // Clamped as X25519 wants; StaticSecret clamps on use, stored clamped for `wg` tools.
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
    Ok(hex::encode(bytes))
}

impl Tunnel {
    /// Creates the TUN device `name` and its tunnel, listening on UDP `port`.
    pub fn start(name: &str, private_hex: &str, port: u16) -> Result<Tunnel, String> {
        let (ours, theirs) = UnixStream::pair().map_err(|e| format!("socket pair: {e}"))?;
        // One event thread on one TUN queue: measured on 2 cores, it moves ~700 Mbit/s
        // host to host where two threads on two queues moved ~490 (packets reordered across
        // queues make TCP retransmit).
        let config = DeviceConfig {
            n_threads: 1,
            use_connected_socket: true,
            use_multi_queue: false,
            uapi_fd: theirs.into_raw_fd(),
        };
        let device =
            DeviceHandle::new(name, config).map_err(|e| format!("tunnel device {name}: {e:?}"))?;
        let t = Tunnel {
            _device: device,
            uapi: Mutex::new(BufReader::new(ours)),
            peers: Mutex::new(BTreeMap::new()),
        };
        t.set(&format!("private_key={private_hex}\nlisten_port={port}\n"))?;
        Ok(t)
    }

    /// One UAPI `set` operation; the device answers `errno=N`.
    fn set(&self, body: &str) -> Result<(), String> {
        let mut conn = self
            .uapi
            .lock()
            .map_err(|_| "tunnel control poisoned".to_string())?;
        let request = format!("set=1\n{body}\n");
        conn.get_mut()
            .write_all(request.as_bytes())
            .map_err(|e| format!("tunnel control: {e}"))?;
        let mut errno = None;
        loop {
            let mut line = String::new();
            let n = conn
                .read_line(&mut line)
                .map_err(|e| format!("tunnel control: {e}"))?;
            let line = line.trim();
            if n == 0 || line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("errno=") {
                errno = v.parse::<i32>().ok();
            }
        }
        match errno {
            Some(0) => Ok(()),
            Some(e) => Err(format!("tunnel refused configuration (errno {e})")),
            None => Err("tunnel control closed".into()),
        }
    }

    /// Makes the device's peers exactly `peers`, touching only those that changed.
    pub fn set_peers(&self, peers: &[mesh::Peer]) -> Result<(), String> {
        let wanted: BTreeMap<String, String> = peers
            .iter()
            // A key is written into the configuration text: nothing but hex goes there.
            .filter(|p| mesh::valid_key(&p.public_key))
            .map(|p| {
                let mut cfg = format!("endpoint={}\nreplace_allowed_ips=true\n", p.endpoint);
                for a in &p.allowed {
                    cfg += &format!("allowed_ip={a}\n");
                }
                (p.public_key.clone(), cfg)
            })
            .collect();
        let mut current = self
            .peers
            .lock()
            .map_err(|_| "tunnel peers poisoned".to_string())?;
        let mut body = String::new();
        for key in current.keys().filter(|k| !wanted.contains_key(*k)) {
            body += &format!("public_key={key}\nremove=true\n");
        }
        for (key, cfg) in &wanted {
            if current.get(key) != Some(cfg) {
                body += &format!("public_key={key}\n{cfg}");
            }
        }
        if body.is_empty() {
            return Ok(());
        }
        self.set(&body)?;
        *current = wanted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hex_and_public_keys_derive() {
        let k = new_private_key().expect("key");
        assert_eq!(k.len(), 64);
        let p = public_key(&k).expect("public");
        assert_eq!(p.len(), 64);
        assert_ne!(p, k);
        assert_eq!(public_key(&k), Some(p));
        assert_eq!(public_key("nothex"), None);
    }
}
