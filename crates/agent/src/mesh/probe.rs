//! Each host probes every peer through the tunnel once a second (a UDP datagram to the
//! peer's mesh address, port [`mesh::PROBE_PORT`], which the peer's agent echoes). A pair is
//! up while an answer came in the last [`DOWN_AFTER`]; the results go to the server.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::watch;

const MAGIC: &[u8; 4] = b"DRVP";
const PING: u8 = 0;
const PONG: u8 = 1;
const EVERY: Duration = Duration::from_secs(1);
pub const DOWN_AFTER: Duration = Duration::from_secs(3);
/// Results are sent at least this often (latencies change without state changes).
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Default)]
struct PeerState {
    ip: Option<Ipv4Addr>,
    last_ok: Option<Instant>,
    rtt: Option<Duration>,
    ok: bool,
    since: Option<Instant>,
}

fn packet(kind: u8, seq: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..4].copy_from_slice(MAGIC);
    p[4] = kind;
    p[8..].copy_from_slice(&seq.to_be_bytes());
    p
}

fn parse(p: &[u8]) -> Option<(u8, u64)> {
    if p.len() != 16 || &p[..4] != MAGIC {
        return None;
    }
    let seq = u64::from_be_bytes(p[8..16].try_into().ok()?);
    Some((p[4], seq))
}

/// Probes `peers` (host id → mesh address, updated as the mesh changes) from `addr`,
/// answering theirs, and publishes the results.
pub async fn run(
    addr: Ipv4Addr,
    mut peers: watch::Receiver<BTreeMap<String, Ipv4Addr>>,
    out: watch::Sender<Vec<proto::PeerHealth>>,
) -> std::io::Result<()> {
    let sock = Arc::new(UdpSocket::bind((addr, mesh::PROBE_PORT)).await?);
    let mut state: BTreeMap<String, PeerState> = BTreeMap::new();
    let mut sent: HashMap<u64, (String, Instant)> = HashMap::new();
    let mut seq: u64 = 0;
    let mut tick = tokio::time::interval(EVERY);
    let mut last_report = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let wanted = peers.borrow_and_update().clone();
                state.retain(|h, _| wanted.contains_key(h));
                let now = Instant::now();
                sent.retain(|_, (_, at)| now.duration_since(*at) < DOWN_AFTER * 2);
                for (host, ip) in &wanted {
                    let s = state.entry(host.clone()).or_default();
                    if s.ip != Some(*ip) {
                        *s = PeerState { ip: Some(*ip), since: Some(now), ..Default::default() };
                    }
                    seq += 1;
                    sent.insert(seq, (host.clone(), now));
                    let _ = sock.send_to(&packet(PING, seq), SocketAddr::from((*ip, mesh::PROBE_PORT))).await;
                }
                let mut changed = false;
                for s in state.values_mut() {
                    let ok = s.last_ok.is_some_and(|t| now.duration_since(t) < DOWN_AFTER);
                    if ok != s.ok {
                        s.ok = ok;
                        s.since = Some(now);
                        changed = true;
                    }
                }
                if changed || last_report.elapsed() >= REPORT_EVERY {
                    last_report = Instant::now();
                    out.send_replace(report(&state, now));
                }
            }
            got = sock.recv_from(&mut buf) => {
                let Ok((n, from)) = got else { continue };
                match parse(&buf[..n]) {
                    Some((PING, s)) => {
                        let _ = sock.send_to(&packet(PONG, s), from).await;
                    }
                    Some((PONG, s)) => {
                        let from_peer = |host: &String| {
                            state.get(host).and_then(|st| st.ip)
                                .is_some_and(|ip| from == SocketAddr::from((ip, mesh::PROBE_PORT)))
                        };
                        if let Some((host, at)) = sent.get(&s).cloned()
                            && from_peer(&host)
                            && let Some(st) = state.get_mut(&host)
                        {
                            sent.remove(&s);
                            let now = Instant::now();
                            st.last_ok = Some(now);
                            st.rtt = Some(now.duration_since(at));
                            if !st.ok {
                                st.ok = true;
                                st.since = Some(now);
                                out.send_replace(report(&state, now));
                                last_report = now;
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn report(state: &BTreeMap<String, PeerState>, now: Instant) -> Vec<proto::PeerHealth> {
    let ms = |d: Duration| d.as_millis() as u64;
    state
        .iter()
        .map(|(host, s)| proto::PeerHealth {
            host: host.clone(),
            ok: s.ok,
            rtt_us: s.rtt.map(|d| d.as_micros() as u64),
            last_ok_ms_ago: s.last_ok.map(|t| ms(now.duration_since(t))),
            for_ms: s.since.map(|t| ms(now.duration_since(t))).unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_packets_round_trip() {
        assert_eq!(parse(&packet(PONG, 42)), Some((PONG, 42)));
        assert_eq!(parse(b"DRVP"), None);
        assert_eq!(parse(&[0u8; 16]), None);
    }
}
