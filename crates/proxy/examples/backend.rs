//! A minimal HTTP/1.1 backend for benchmarking the proxy (and the proxies it is compared
//! with): answers every request with a fixed small body, keep-alive.
//!
//! ```text
//! cargo run --release -p proxy --example backend -- --addr 127.0.0.1:9001 [--threads 1] [--size 13]
//! ```
//!
//! Prints `ready` once it listens.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:9001".parse()?;
    let (mut threads, mut size) = (1usize, 13usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--addr" => addr = value.parse()?,
            "--threads" => threads = value.parse()?,
            "--size" => size = value.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let body = Bytes::from("hello, world\n".repeat(size.div_ceil(13))[..size].to_owned());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = TcpListener::bind(addr).await?;
            println!("ready");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_req| {
                        let body = body.clone();
                        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
}
