//! TCP routes: a listener per port, each connection to the next backend that accepts it,
//! bytes copied both ways, optionally after a PROXY protocol v2 header.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ppp::v2::{Builder, Command, Protocol, Version};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::{CLOSED, CONNECT_TIMEOUT, Error, Shared, stopping};

/// Binds `tcp_ip:port` and accepts on it until the task is aborted.
pub(crate) fn listen(shared: &Arc<Shared>, port: u16) -> Result<JoinHandle<()>, Error> {
    // `update` may be called off the runtime: the listener registers with its reactor.
    let _runtime = shared.runtime.enter();
    let listener = crate::bind(SocketAddr::new(shared.tcp_ip, port), shared.reuse_port)?;
    Ok(shared.runtime.spawn(accept(shared.clone(), listener, port)))
}

async fn accept(shared: Arc<Shared>, listener: TcpListener, port: u16) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve(shared.clone(), port, stream, peer));
            }
            Err(e) => {
                tracing::debug!(port, "accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, port: u16, mut client: TcpStream, peer: SocketAddr) {
    let mut stop = shared.stop.subscribe();
    let Ok(local) = client.local_addr() else {
        return;
    };
    let (backends, proxy_protocol, start) = {
        let table = shared.table.load();
        let (Some(route), Some(rr)) = (table.router.tcp(port), table.tcp_rr.get(&port)) else {
            return;
        };
        let start = rr.fetch_add(1, Ordering::Relaxed);
        let addrs: Vec<SocketAddr> = route.backends.iter().map(|b| b.addr).collect();
        (addrs, route.proxy_protocol, start)
    };
    if backends.is_empty() {
        tracing::debug!(port, %peer, "TCP route without a ready backend: connection closed");
        return;
    }
    let mut upstream = None;
    for k in 0..backends.len() {
        let addr = backends[start.wrapping_add(k) % backends.len()];
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                upstream = Some(stream);
                break;
            }
            Ok(Err(e)) => tracing::warn!(port, backend = %addr, "TCP backend refused: {e}"),
            Err(_) => tracing::warn!(port, backend = %addr, "TCP backend did not answer in time"),
        }
    }
    let Some(mut upstream) = upstream else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if proxy_protocol {
        let header = match proxy_v2(peer, local) {
            Ok(header) => header,
            Err(e) => {
                tracing::warn!(port, "PROXY header: {e}");
                return;
            }
        };
        if let Err(e) = upstream.write_all(&header).await {
            tracing::debug!(port, "PROXY header not sent: {e}");
            return;
        }
    }
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = r {
                tracing::debug!(port, %peer, "TCP connection ended: {e}");
            }
        }
        () = stopping(&mut stop, CLOSED) => {}
    }
}

/// A PROXY protocol v2 header: the client's address and the one it connected to (IPv4
/// beside IPv6 is sent as IPv4-mapped IPv6).
pub(crate) fn proxy_v2(client: SocketAddr, local: SocketAddr) -> std::io::Result<Vec<u8>> {
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    let addresses = if client.is_ipv4() == local.is_ipv4() {
        (client, local)
    } else {
        (v6(client), v6(local))
    };
    Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers_carry_both_addresses() {
        let header = proxy_v2(
            "192.0.2.1:5000".parse().expect("addr"),
            "[2001:db8::2]:5432".parse().expect("addr"),
        )
        .expect("header");
        let parsed = ppp::v2::Header::try_from(header.as_slice()).expect("parses");
        assert_eq!(
            parsed.addresses,
            ppp::v2::Addresses::from((
                "[::ffff:192.0.2.1]:5000"
                    .parse::<SocketAddr>()
                    .expect("addr"),
                "[2001:db8::2]:5432".parse::<SocketAddr>().expect("addr"),
            ))
        );
        assert_eq!(parsed.command, Command::Proxy);
    }
}
