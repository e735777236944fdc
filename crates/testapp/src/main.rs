//! `app`: a tiny threaded HTTP/1.1 server used as a test workload (std only, no dependencies).
//!
//! Built statically and imported as the `drover-test/app:1` image by
//! `scripts/build-test-images.sh` (entrypoint `/app`, default command `serve`).
//!
//! Endpoints (`serve`, listening on `0.0.0.0:$PORT`, default 8080):
//! - `GET /health`: 200 `ok`, or 500 `unhealthy` while `/tmp/unhealthy` exists;
//! - `GET /unhealthy`, `GET /healthy`: create / remove `/tmp/unhealthy` (a scratch image has no
//!   shell to `touch` it);
//! - `GET /`: 200 `hostname=<hostname> name=<$NAME>`;
//! - `GET /call/<host>:<port>/<path>`: GETs `http://<host>:<port>/<path>` (name resolved by the
//!   system resolver, so Docker network DNS works) and answers 200 `called <host>: <their body>`,
//!   or 502 with the error;
//! - `GET /env/<NAME>`: the variable's value, or 404;
//! - `GET /exit/<code>`: answers, then exits the process with `<code>`.
//!
//! Every request is logged as one line on stdout.
//!
//! `tcp`: a TCP server on `$PORT` (default 5432) that answers each connection with one line —
//! `proxy src=IP:PORT dst=IP:PORT` when it starts with a PROXY protocol v2 header (IPv4),
//! else `no proxy` — and then echoes what it reads. `GET /headers` (in `serve`): the
//! request's headers, lowercase, one per line.
//!
//! Subcommands (`argv[1]`): `serve` (default), `health <url>` (exit 0 on a 200, else 1; for a
//! HEALTHCHECK in an image without curl), `sleep <secs>`, `exit <code>`, `echo <args...>`.
//!
//! Signals: there is no signal handler (that needs `unsafe` or a dependency). As PID 1 in a
//! container the kernel therefore drops SIGTERM and the engine has to SIGKILL after the stop
//! timeout; run with `--init` / compose `init: true`, or a short stop timeout, when that matters.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const UNHEALTHY_FLAG: &str = "/tmp/unhealthy";
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: u64 = 16 * 1024;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("serve", &[][..]),
    };
    match cmd {
        "serve" => serve(),
        "health" => match rest.first() {
            Some(url) => health(url),
            None => usage("health <url>"),
        },
        "sleep" => match rest.first().and_then(|s| s.parse::<f64>().ok()) {
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                std::thread::sleep(Duration::from_secs_f64(secs));
                ExitCode::SUCCESS
            }
            _ => usage("sleep <secs>"),
        },
        "exit" => match rest.first().and_then(|s| s.parse::<i32>().ok()) {
            Some(code) => std::process::exit(code),
            None => usage("exit <code>"),
        },
        "tcp" => tcp_echo(),
        "echo" => {
            println!("{}", rest.join(" "));
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("app: unknown command {other:?}");
            usage("[serve | tcp | health <url> | sleep <secs> | exit <code> | echo <args...>]")
        }
    }
}

fn usage(what: &str) -> ExitCode {
    eprintln!("usage: app {what}");
    ExitCode::from(2)
}

// ---------------------------------------------------------------------------------------------
// Server

fn serve() -> ExitCode {
    let port = match std::env::var("PORT") {
        Ok(p) => match p.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("app: invalid PORT {p:?}");
                return ExitCode::from(2);
            }
        },
        Err(_) => 8080,
    };
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("app: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log(&format!(
        "listening on 0.0.0.0:{port} hostname={} name={}",
        hostname(),
        std::env::var("NAME").unwrap_or_default()
    ));
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                std::thread::spawn(move || handle(stream));
            }
            Err(e) => eprintln!("app: accept: {e}"),
        }
    }
    ExitCode::SUCCESS
}

/// `tcp`: see the module comment.
fn tcp_echo() -> ExitCode {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(5432);
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("app: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log(&format!("tcp echo on 0.0.0.0:{port}"));
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = echo_conn(conn);
        });
    }
    ExitCode::SUCCESS
}

/// The PROXY protocol v2 signature.
const PROXY_V2: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

fn echo_conn(mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut head = [0u8; 16];
    conn.read_exact(&mut head)?;
    let mut rest = Vec::new();
    if head[..12] == PROXY_V2 {
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut addrs = vec![0u8; len];
        conn.read_exact(&mut addrs)?;
        // Family/protocol 0x11: TCP over IPv4, then src, dst, src port, dst port.
        if head[13] == 0x11 && len >= 12 {
            let ip = |b: &[u8]| std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]);
            let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
            conn.write_all(
                format!(
                    "proxy src={}:{} dst={}:{}\n",
                    ip(&addrs[0..4]),
                    port(&addrs[8..10]),
                    ip(&addrs[4..8]),
                    port(&addrs[10..12])
                )
                .as_bytes(),
            )?;
        } else {
            conn.write_all(b"proxy other\n")?;
        }
    } else {
        conn.write_all(b"no proxy\n")?;
        rest.extend_from_slice(&head);
    }
    conn.write_all(&rest)?;
    conn.set_read_timeout(None)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        conn.write_all(&buf[..n])?;
    }
}

fn log(line: &str) {
    let mut out = io::stdout().lock();
    // Nothing useful to do if stdout is gone.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

struct Response {
    status: u16,
    body: String,
    /// Exit the process with this code once the response is sent.
    exit: Option<i32>,
}

impl Response {
    fn new(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            body: body.into(),
            exit: None,
        }
    }
}

fn handle(stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| "?".into());
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut reader = BufReader::new((&stream).take(MAX_HEAD));

    let mut request_line = String::new();
    match reader.read_line(&mut request_line) {
        Ok(0) | Err(_) => return,
        Ok(_) => {}
    }
    // Keep the headers (for `/headers`); a GET has no body worth reading.
    let mut headers = String::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => headers.push_str(&line),
        }
    }

    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let resp = if method.is_empty() || !target.starts_with('/') {
        Response::new(400, "bad request")
    } else if method != "GET" && method != "HEAD" {
        Response::new(405, "method not allowed")
    } else if target == "/headers" {
        Response::new(200, headers.replace("\r\n", "\n").to_ascii_lowercase())
    } else {
        route(target)
    };

    let mut out = &stream;
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.body.len()
    );
    let mut written = out.write_all(head.as_bytes());
    if method != "HEAD" && written.is_ok() {
        written = out.write_all(resp.body.as_bytes());
    }
    let _ = out.flush();
    let _ = stream.shutdown(Shutdown::Write);
    let note = match written {
        Ok(()) => String::new(),
        Err(e) => format!(" (write failed: {e})"),
    };
    log(&format!(
        "{peer} {method} {target} -> {}{note}",
        resp.status
    ));

    if let Some(code) = resp.exit {
        log(&format!("exiting with code {code}"));
        std::process::exit(code);
    }
}

fn route(target: &str) -> Response {
    let path = target.split('?').next().unwrap_or(target);
    if path == "/" {
        let name = std::env::var("NAME").unwrap_or_default();
        return Response::new(200, format!("hostname={} name={name}", hostname()));
    }
    if path == "/health" {
        return if std::path::Path::new(UNHEALTHY_FLAG).exists() {
            Response::new(500, "unhealthy")
        } else {
            Response::new(200, "ok")
        };
    }
    if path == "/unhealthy" {
        return match std::fs::write(UNHEALTHY_FLAG, b"") {
            Ok(()) => Response::new(200, "now unhealthy"),
            Err(e) => Response::new(500, format!("cannot create {UNHEALTHY_FLAG}: {e}")),
        };
    }
    if path == "/healthy" {
        return match std::fs::remove_file(UNHEALTHY_FLAG) {
            Ok(()) => Response::new(200, "now healthy"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Response::new(200, "now healthy"),
            Err(e) => Response::new(500, format!("cannot remove {UNHEALTHY_FLAG}: {e}")),
        };
    }
    if let Some(name) = path.strip_prefix("/env/") {
        return match std::env::var_os(name) {
            Some(v) => Response::new(200, v.to_string_lossy()),
            None => Response::new(404, format!("{name} is not set")),
        };
    }
    if let Some(code) = path.strip_prefix("/exit/") {
        return match code.parse::<i32>() {
            Ok(code) => Response {
                exit: Some(code),
                ..Response::new(200, format!("exiting with {code}"))
            },
            Err(_) => Response::new(400, format!("bad exit code {code:?}")),
        };
    }
    if let Some(rest) = target.strip_prefix("/call/") {
        // <host>:<port>/<path...> (the query string, if any, goes along)
        let (authority, rest_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Some((host, port)) = split_host_port(authority) else {
            return Response::new(400, format!("bad target {authority:?}, want <host>:<port>"));
        };
        return match http_get(host, port, rest_path) {
            Ok((200, body)) => Response::new(200, format!("called {host}: {body}")),
            Ok((status, body)) => Response::new(
                502,
                format!("call {host}:{port}{rest_path}: status {status}: {body}"),
            ),
            Err(e) => Response::new(502, format!("call {host}:{port}{rest_path}: {e}")),
        };
    }
    Response::new(404, format!("no route for {path}"))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}

fn hostname() -> String {
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            return h.to_string();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------------------------
// Client

fn health(url: &str) -> ExitCode {
    let parsed = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = match parsed.find('/') {
        Some(i) => (&parsed[..i], &parsed[i..]),
        None => (parsed, "/"),
    };
    let (host, port) = match split_host_port(authority) {
        Some(hp) => hp,
        None if !authority.is_empty() && !authority.contains(':') => (authority, 80),
        None => {
            eprintln!("app health: bad url {url:?}");
            return ExitCode::from(2);
        }
    };
    match http_get(host, port, path) {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((status, body)) => {
            eprintln!("app health: {url}: status {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("app health: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `host:port`, `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = authority.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    Some((host, port.parse().ok()?))
}

/// A plain HTTP/1.1 GET; returns the status and the body.
fn http_get(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host}: {e}"))?
        .collect();
    let mut last_err = format!("resolve {host}: no addresses");
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_err = format!("connect {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last_err)?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let host_header = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: drover-testapp\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("malformed response ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("malformed status line {status_line:?}"))?;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            if let Ok(n) = value.parse::<usize>() {
                body = &body[..n.min(body.len())];
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size_line = String::from_utf8_lossy(&data[..eol]);
        let size_hex = size_line.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || size > data.len() {
            out.extend_from_slice(&data[..size.min(data.len())]);
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = data.get(size + 2..).unwrap_or(&[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("web:8080"), Some(("web", 8080)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("web"), None);
        assert_eq!(split_host_port(":80"), None);
    }

    #[test]
    fn responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
        assert_eq!(r, Ok((200, "ok".to_string())));
        let r = parse_response(
            b"HTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(r, Ok((500, "abcde".to_string())));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn routes() {
        assert_eq!(route("/nope").status, 404);
        assert_eq!(route("/exit/3").exit, Some(3));
        assert_eq!(route("/exit/x").status, 400);
        assert_eq!(route("/call/nocolon/x").status, 400);
        assert_eq!(route("/env/DROVER_TESTAPP_SURELY_UNSET").status, 404);
    }
}
