//! Drover's DNS on each host, at the host's mesh address, port 53 (UDP). Containers ask the
//! engine's embedded resolver, which forwards what it does not know here (the agent sets
//! this address as each container's name server). Drover's names are answered from the
//! environment's directory as seen by the asking container ([`mesh::Names`]); other names
//! are relayed to the host's own name servers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// Largest DNS message over UDP we read or relay.
const MAX_UDP: usize = 4096;
/// Queries relayed to the host's resolver at once; more are dropped (the asker retries).
const MAX_RELAYS: usize = 64;

pub type Table = Arc<RwLock<mesh::Names>>;

/// What to send back for one query packet: an answer, or `None` to relay it. The
/// addresses are rotated by `turn`, which counts the A answers given, so that clients
/// taking the first address spread over all.
pub fn answer(
    names: &mesh::Names,
    asker: Ipv4Addr,
    packet: &[u8],
    turn: &mut usize,
) -> Option<Vec<u8>> {
    let req = Message::from_vec(packet).ok()?;
    if req.metadata.message_type != MessageType::Query {
        return None;
    }
    let query = req.queries.first()?.clone();
    let mut ips = match names.resolve(asker, &query.name().to_ascii()) {
        mesh::Resolution::Elsewhere => return None,
        mesh::Resolution::Drover(ips) => ips,
    };
    if !ips.is_empty() && query.query_type() == RecordType::A {
        let n = *turn % ips.len();
        ips.rotate_left(n);
        *turn = turn.wrapping_add(1);
    }
    let mut resp = Message::response(req.metadata.id, req.metadata.op_code);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.add_query(query.clone());
    if ips.is_empty() {
        resp.metadata.response_code = ResponseCode::NXDomain;
    } else if query.query_type() == RecordType::A {
        for ip in ips {
            resp.add_answer(Record::from_rdata(
                query.name().clone(),
                mesh::TTL_SECS,
                RData::A(A(ip)),
            ));
        }
    }
    resp.to_vec().ok()
}

/// The host's first name server (from /etc/resolv.conf), where other names are relayed.
pub fn upstream() -> Option<SocketAddr> {
    let conf = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    conf.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|v| v.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Serves on `addr`, port 53, until the task is dropped.
pub async fn serve(addr: Ipv4Addr, table: Table) -> std::io::Result<()> {
    let sock = UdpSocket::bind((addr, 53)).await?;
    serve_on(sock, table, upstream()).await
}

/// Serves on `sock`, relaying other names to `upstream`.
async fn serve_on(
    sock: UdpSocket,
    table: Table,
    upstream: Option<SocketAddr>,
) -> std::io::Result<()> {
    let sock = Arc::new(sock);
    let relays = Arc::new(tokio::sync::Semaphore::new(MAX_RELAYS));
    let mut buf = vec![0u8; MAX_UDP];
    let mut turn: usize = 0;
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("dns: {e}");
                continue;
            }
        };
        let IpAddr::V4(asker) = from.ip() else {
            continue;
        };
        let packet = &buf[..n];
        let reply = match table.read() {
            Ok(names) => answer(&names, asker, packet, &mut turn),
            Err(_) => None,
        };
        match reply {
            Some(r) => {
                let _ = sock.send_to(&r, from).await;
            }
            None => {
                if let Some(up) = upstream
                    && let Ok(permit) = relays.clone().try_acquire_owned()
                {
                    let (sock, packet) = (sock.clone(), packet.to_vec());
                    tokio::spawn(async move {
                        relay(sock, packet, from, up).await;
                        drop(permit);
                    });
                }
            }
        }
    }
}

/// Asks the host's name server and passes its answer back (at most 3 s).
async fn relay(sock: Arc<UdpSocket>, packet: Vec<u8>, to: SocketAddr, up: SocketAddr) {
    let bind: SocketAddr = if up.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let Ok(out) = UdpSocket::bind(bind).await else {
        return;
    };
    if out.send_to(&packet, up).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; MAX_UDP];
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(3), out.recv(&mut buf)).await {
        let _ = sock.send_to(&buf[..n], to).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;

    fn ask(names: &mesh::Names, asker: &str, name: &str, kind: RecordType) -> Option<Message> {
        ask_turn(names, asker, name, kind, 0)
    }

    fn ask_turn(
        names: &mesh::Names,
        asker: &str,
        name: &str,
        kind: RecordType,
        turn: usize,
    ) -> Option<Message> {
        let mut q = Message::query();
        q.add_query(Query::query(Name::from_ascii(name).expect("name"), kind));
        let packet = q.to_vec().expect("encode");
        let mut turn = turn;
        let reply = answer(names, asker.parse().expect("ip"), &packet, &mut turn)?;
        Some(Message::from_vec(&reply).expect("decode"))
    }

    #[test]
    fn answers_drover_names_and_relays_the_rest() {
        let entries = vec![mesh::Entry {
            name: "shop-web-1".into(),
            stack: "shop".into(),
            service: "web".into(),
            ready: true,
            addrs: [(
                "shop_default".to_string(),
                "10.192.4.2".parse().expect("ip"),
            )]
            .into(),
            aliases: Default::default(),
            links: Vec::new(),
        }];
        let names = mesh::Names::build(&entries);
        let r = ask(&names, "10.192.4.2", "web.", RecordType::A).expect("answered");
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        let ips: Vec<String> = r.answers.iter().map(|a| a.data.to_string()).collect();
        assert_eq!(ips, vec!["10.192.4.2"]);
        assert_eq!(r.answers[0].ttl, mesh::TTL_SECS);
        let r = ask(&names, "10.192.4.2", "web.", RecordType::AAAA).expect("answered");
        assert!(r.answers.is_empty());
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        let r = ask(&names, "10.192.9.9", "web.", RecordType::A).expect("answered");
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(ask(&names, "10.192.4.2", "example.org.", RecordType::A).is_none());
        assert!(
            answer(
                &names,
                "10.192.4.2".parse().expect("ip"),
                b"garbage",
                &mut 0
            )
            .is_none()
        );
    }

    #[tokio::test]
    async fn other_names_are_relayed_to_the_hosts_resolver() {
        // A stand-in for the host's resolver on loopback: answers every query with 192.0.2.7.
        let upstream = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let up_addr = upstream.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = upstream.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::response(q.metadata.id, q.metadata.op_code);
                let query = q.queries[0].clone();
                r.add_answer(Record::from_rdata(
                    query.name().clone(),
                    60,
                    RData::A(A("192.0.2.7".parse().expect("ip"))),
                ));
                r.add_query(query);
                let _ = upstream.send_to(&r.to_vec().expect("encode"), from).await;
            }
        });
        let table: Table = Arc::new(RwLock::new(mesh::Names::default()));
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let dns_addr = sock.local_addr().expect("addr");
        tokio::spawn(serve_on(sock, table, Some(up_addr)));
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let mut q = Message::query();
        q.add_query(Query::query(
            Name::from_ascii("example.org.").expect("name"),
            RecordType::A,
        ));
        client
            .send_to(&q.to_vec().expect("encode"), dns_addr)
            .await
            .expect("send");
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
            .await
            .expect("answer in time")
            .expect("recv");
        let r = Message::from_vec(&buf[..n]).expect("decode");
        assert_eq!(r.metadata.id, q.metadata.id);
        assert_eq!(r.answers[0].data.to_string(), "192.0.2.7");
    }

    #[test]
    fn answers_rotate() {
        let entry = |name: &str, ip: &str| mesh::Entry {
            name: name.into(),
            stack: "shop".into(),
            service: "web".into(),
            ready: true,
            addrs: [("shop_default".to_string(), ip.parse().expect("ip"))].into(),
            aliases: Default::default(),
            links: Vec::new(),
        };
        let names = mesh::Names::build(&[
            entry("shop-web-1", "10.192.4.2"),
            entry("shop-web-2", "10.192.8.2"),
        ]);
        let first = |turn| {
            let r = ask_turn(&names, "10.192.4.2", "web.", RecordType::A, turn).expect("answer");
            r.answers[0].data.to_string()
        };
        assert_eq!(first(0), "10.192.4.2");
        assert_eq!(first(1), "10.192.8.2");
        assert_eq!(first(2), "10.192.4.2");
    }
}
