//! The ingress, on the cluster of `cluster.rs`: host 1 is labelled `drover.ingress=true`
//! and serves on its bridge address (ports 80 and 443 of its namespace); backends run on
//! every host and are reached over the mesh. Checked: routing by host and path to backends
//! on other hosts, the client's address reaching the backend, 404 and the HTTPS redirect,
//! TLS by SNI with two certificates, TCP with a PROXY v2 header, `drover ingress ls`, a
//! backend killed mid-traffic and a rolling redeploy under load without a failed request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::harness::*;
use crate::mesh::host_ip;

/// A GET of `path` with `Host: host` to the ingress on host 1: (status, headers, body).
fn get(host: &str, path: &str) -> Option<(u16, String, String)> {
    let mut s = TcpStream::connect((host_ip(1).as_str(), 80)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    parse(&buf)
}

fn parse(buf: &str) -> Option<(u16, String, String)> {
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    Some((status, head.to_ascii_lowercase(), body.to_string()))
}

/// A GET over TLS to the ingress's 443 with SNI `host`, trusting only `ca_pem`.
fn get_tls(host: &str, path: &str, ca_pem: &str) -> Result<(u16, String), String> {
    get_tls_at(&format!("{}:443", host_ip(1)), host, path, ca_pem)
}

/// A GET over TLS to `addr` with SNI `host`, trusting only `ca_pem`.
fn get_tls_at(addr: &str, host: &str, path: &str, ca_pem: &str) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // A peer closing without close_notify ends the read with an error after the data.
    let _ = tls.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).to_string();
    let (status, _, body) = parse(&text).ok_or_else(|| format!("no response: {text:?}"))?;
    Ok((status, body))
}

/// A self-signed certificate for `name` and its key (PEM), written under the cluster's dir.
fn cert_files(c: &Cluster, name: &str) -> (String, std::path::PathBuf, std::path::PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let cert_path = c.dir.path().join(format!("{name}.crt"));
    let key_path = c.dir.path().join(format!("{name}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert.pem(), cert_path, key_path)
}

const STACK: &str = "shop";

fn compose(web_version: &str) -> String {
    format!(
        "services:
  web:
    image: drover-test/app:1
    stop_grace_period: 1s
    environment: {{NAME: web, VERSION: '{web_version}'}}
    deploy:
      replicas: 3
      update_config: {{order: start-first, parallelism: 1}}
    healthcheck:
      test: [\"CMD\", \"/app\", \"health\", \"http://127.0.0.1:8080/health\"]
      interval: 1s
      timeout: 1s
      retries: 1
    x-drover:
      expose:
        - host: plain.test
          port: 8080
        - host: shop.test
          port: 8080
          tls: shop
  api:
    image: drover-test/app:1
    stop_grace_period: 1s
    environment: {{NAME: api}}
    deploy:
      placement:
        constraints: [node.labels.region == us]
    x-drover:
      expose:
        - host: plain.test
          path: /env
          port: 8080
  blog:
    image: drover-test/app:1
    stop_grace_period: 1s
    environment: {{NAME: blog}}
    x-drover:
      expose:
        - host: blog.test
          port: 8080
          tls: blog
  db:
    image: drover-test/app:1
    command: [tcp]
    stop_grace_period: 1s
    environment: {{PORT: '5432'}}
    deploy:
      placement:
        constraints: [node.labels.region == us]
    x-drover:
      expose:
        - tcp: 15432
          port: 5432
          proxy_protocol: true
"
    )
}

/// GETs `plain.test/` in a loop until `stop`, counting answers other than 200.
fn load(stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, Vec<String>)> {
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            match get("plain.test", "/") {
                Some((200, _, _)) => ok += 1,
                Some((code, _, body)) => failed.push(format!("{code} {body}")),
                None => failed.push("no answer".into()),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (ok, failed)
    })
}

pub fn routes_across_hosts(c: &Cluster) {
    c.ok(&["host", "label", &c.host_id(1), "drover.ingress=true"]);
    let (shop_pem, shop_crt, shop_key) = cert_files(c, "shop.test");
    let (blog_pem, blog_crt, blog_key) = cert_files(c, "blog.test");
    for (name, crt, key) in [
        ("shop", &shop_crt, &shop_key),
        ("blog", &blog_crt, &blog_key),
    ] {
        let (crt, key) = (crt.display().to_string(), key.display().to_string());
        c.ok(&["cert", "add", name, "--cert", &crt, "--key", &key]);
    }
    let certs = c.ok(&["cert", "ls"]);
    assert!(
        certs.contains("shop.test") && certs.contains("blog.test") && !certs.contains("PRIVATE"),
        "{certs}"
    );
    // A key that is not the certificate's is refused, naming the field.
    let bad = c.cli(&[
        "cert",
        "add",
        "mixed",
        "--cert",
        &shop_crt.display().to_string(),
        "--key",
        &blog_key.display().to_string(),
    ]);
    assert!(
        bad.code != 0 && bad.stderr.contains("not the certificate's key"),
        "{} {}",
        bad.code,
        bad.stderr
    );

    c.deploy_ok(STACK, &compose("1"));
    let (_, _, body) = wait_for(Duration::from_secs(60), "the ingress answers", || {
        get("plain.test", "/").filter(|(code, _, _)| *code == 200)
    });
    assert!(body.contains("name=web"), "{body}");

    // Round robin over the three replicas, one per host.
    wait_for(Duration::from_secs(30), "all three web backends", || {
        let seen: std::collections::BTreeSet<String> = (0..9)
            .filter_map(|_| get("plain.test", "/"))
            .filter_map(|(_, _, b)| b.split_whitespace().next().map(str::to_string))
            .collect();
        (seen.len() == 3).then_some(())
    });
    // The longest prefix: /env goes to api, on host 3.
    let (code, _, body) = get("plain.test", "/env/NAME").expect("answer");
    assert_eq!((code, body.as_str()), (200, "api"));
    // The client's address reaches the backend.
    let (_, _, headers) = get("plain.test", "/headers").expect("answer");
    assert!(
        headers.contains("x-forwarded-for: 10.77.0.1\n")
            && headers.contains("x-forwarded-proto: http")
            && headers.contains("x-forwarded-host: plain.test")
            && headers.contains("forwarded: for=10.77.0.1"),
        "{headers}"
    );
    // An unknown host is Drover's 404; a TLS route's plain HTTP is redirected.
    assert_eq!(get("nothing.test", "/").map(|r| r.0), Some(404));
    let (code, head, _) = get("shop.test", "/a?b=1").expect("answer");
    assert!(
        code == 308 && head.contains("location: https://shop.test/a?b=1"),
        "{code} {head}"
    );

    // TLS by SNI: each name gets its own certificate (each client trusts only its own).
    let (code, body) = wait_for(Duration::from_secs(20), "HTTPS for shop.test", || {
        get_tls("shop.test", "/", &shop_pem).ok()
    });
    assert!(code == 200 && body.contains("name=web"), "{code} {body}");
    let (code, body) = get_tls("blog.test", "/", &blog_pem).expect("HTTPS for blog.test");
    assert!(code == 200 && body.contains("name=blog"), "{code} {body}");
    assert!(
        get_tls("blog.test", "/", &shop_pem).is_err(),
        "blog.test must not be served with shop.test's certificate"
    );

    // TCP with a PROXY v2 header: the backend (on host 3) sees the client's address.
    let line = wait_for(Duration::from_secs(30), "TCP through the ingress", || {
        let mut s = TcpStream::connect((host_ip(1).as_str(), 15432)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut r = BufReader::new(s.try_clone().ok()?);
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        s.write_all(b"ping\n").ok()?;
        let mut echo = String::new();
        r.read_line(&mut echo).ok()?;
        (echo == "ping\n").then_some(line)
    });
    assert!(line.starts_with("proxy src=10.77.0.1:"), "{line}");

    let ls = c.ok(&["ingress", "ls"]);
    for want in [
        "plain.test/env",
        "shop.test/",
        "tcp :15432",
        "shop/web:8080",
        "running",
    ] {
        assert!(ls.contains(want), "{want} missing from ingress ls:\n{ls}");
    }

    // A backend killed mid-traffic: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let victim = c.running(2, STACK, Some("web"));
    assert_eq!(victim.len(), 1, "{victim:?}");
    let sock = c.dir.path().join("hosts/h2/docker.sock");
    let killed = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(["kill", &victim[0]])
        .output()
        .expect("docker kill");
    assert!(killed.status.success());
    std::thread::sleep(Duration::from_secs(6));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.join().expect("load thread");
    println!(
        "backend killed under load: {ok} requests answered, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "{} failed: {:?}", failed.len(), failed);

    // A rolling redeploy under load: no request fails.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(stop.clone());
    let started = Instant::now();
    // Waits until the roll is done.
    c.deploy_ok(STACK, &compose("2"));
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = traffic.join().expect("load thread");
    println!(
        "rolling redeploy of 3 replicas under load in {:.1}s: {ok} requests answered, {} failed",
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    assert!(failed.is_empty(), "{} failed: {:?}", failed.len(), failed);

    // Fails safe: host 1 loses the server (its agent's connection dropped, the tunnel to
    // the other hosts kept); its ingress keeps serving the last table it had.
    let port = c
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("server port");
    let rule = |op: &str| {
        let st = Command::new("nsenter")
            .arg("--net=/var/run/netns/drvh1")
            .args([
                "iptables",
                "-w",
                op,
                "OUTPUT",
                "-d",
                "10.77.0.1",
                "-p",
                "tcp",
            ])
            .args(["--dport", &port.to_string(), "-j", "DROP"])
            .status()
            .expect("iptables");
        assert!(st.success(), "iptables {op}");
    };
    rule("-I");
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(stop.clone());
    let h1 = c.host_id(1);
    wait_for(Duration::from_secs(40), "host 1 seen as down", || {
        let ls = c.ok(&["host", "ls"]);
        ls.lines()
            .any(|l| l.starts_with(&h1[..12]) && l.contains(" down"))
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    rule("-D");
    let (ok, failed) = traffic.join().expect("load thread");
    println!(
        "ingress host cut off from the server: {ok} requests answered, {} failed",
        failed.len()
    );
    assert!(failed.is_empty(), "{} failed: {:?}", failed.len(), failed);
    wait_for(Duration::from_secs(40), "host 1 back", || {
        (c.ok(&["host", "ls"]).matches(" up ").count() == 3).then_some(())
    });

    c.ok(&["stack", "rm", STACK]);
    c.ok(&["cert", "rm", "shop"]);
    c.ok(&["cert", "rm", "blog"]);
    c.ok(&["host", "label", &c.host_id(1), "drover.ingress-"]);
}

/// Pebble, an ACME test directory (Debian's `pebble`), with `pebble-challtestsrv` as its DNS:
/// every name resolves to host 1, the ingress host, whose port 80 answers the HTTP-01
/// challenges. Its own HTTPS certificate is made here; the ports are chosen when the
/// cluster starts (the server is pointed at it then), the processes when a scenario needs
/// them, and killed on drop.
pub(crate) struct Pebble {
    dir: std::path::PathBuf,
    port: u16,
    management: u16,
    dns: u16,
    dns_management: u16,
    children: std::sync::Mutex<Vec<std::process::Child>>,
}

impl Pebble {
    pub(crate) fn prepare(dir: &std::path::Path) -> Pebble {
        std::fs::create_dir_all(dir).expect("pebble dir");
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params.is_ca = rcgen::IsCa::NoCa;
        let cert = params.self_signed(&key).expect("cert");
        std::fs::write(dir.join("cert.pem"), cert.pem()).expect("cert");
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("key");
        Pebble {
            dir: dir.to_path_buf(),
            port: free_port(),
            management: free_port(),
            dns: free_port(),
            dns_management: free_port(),
            children: std::sync::Mutex::default(),
        }
    }

    pub(crate) fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    pub(crate) fn ca_file(&self) -> std::path::PathBuf {
        self.dir.join("cert.pem")
    }

    fn start(&self) {
        let config = format!(
            r#"{{"pebble":{{"listenAddress":"127.0.0.1:{}","managementListenAddress":"127.0.0.1:{}","certificate":"{}","privateKey":"{}","httpPort":80,"tlsPort":443,"ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#,
            self.port,
            self.management,
            self.dir.join("cert.pem").display(),
            self.dir.join("key.pem").display()
        );
        std::fs::write(self.dir.join("config.json"), config).expect("config");
        let log = |name: &str| std::fs::File::create(self.dir.join(name)).expect("log");
        let dns = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", &host_ip(1), "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{}", self.dns)])
            .args(["-http01", "", "-tlsalpn01", "", "-https01", ""])
            .args(["-management", &format!("127.0.0.1:{}", self.dns_management)])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv (apt-get install pebble)");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(self.dir.join("config.json"))
            .args(["-dnsserver", &format!("127.0.0.1:{}", self.dns)])
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Pebble rejects 5% of nonces by default, to test clients' retries.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble (apt-get install pebble)");
        let mut children = self.children.lock().expect("children");
        children.push(dns);
        children.push(pebble);
    }

    /// The root pebble's issued certificates chain to (its management API).
    fn root(&self) -> String {
        let ca = std::fs::read_to_string(self.ca_file()).expect("ca");
        let (code, body) = get_tls_at(
            &format!("127.0.0.1:{}", self.management),
            "localhost",
            "/roots/0",
            &ca,
        )
        .expect("pebble's root");
        assert_eq!(code, 200, "{body}");
        body
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        if let Ok(mut children) = self.children.lock() {
            for c in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// `tls: auto`: the server gets a certificate from the ACME test directory by HTTP-01
/// (answered by the ingress on host 1), stores it as `acme:HOST` and the ingress serves it.
pub fn acme_with_pebble(c: &Cluster) {
    c.acme.start();
    c.ok(&["host", "label", &c.host_id(1), "drover.ingress=true"]);
    c.deploy_ok(
        "autotls",
        "services:
  web:
    image: drover-test/app:1
    stop_grace_period: 1s
    environment: {NAME: auto}
    x-drover:
      expose:
        - host: auto.test
          port: 8080
          tls: auto
",
    );
    let started = Instant::now();
    // Until the certificate is there, the route is served over plain HTTP.
    wait_for(Duration::from_secs(30), "plain HTTP for auto.test", || {
        get("auto.test", "/").filter(|(code, _, _)| *code == 200)
    });
    wait_for(Duration::from_secs(90), "an ACME certificate", || {
        let ls = c.ok(&["cert", "ls"]);
        ls.contains("acme:auto.test").then_some(ls)
    });
    println!(
        "tls: auto: certificate obtained from pebble in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let root = c.acme.root();
    let (code, body) = wait_for(
        Duration::from_secs(20),
        "HTTPS with the ACME certificate",
        || get_tls("auto.test", "/", &root).ok(),
    );
    assert!(code == 200 && body.contains("name=auto"), "{code} {body}");
    let (code, head, _) = get("auto.test", "/").expect("answer");
    assert!(
        code == 308 && head.contains("location: https://auto.test/"),
        "{code} {head}"
    );
    c.ok(&["stack", "rm", "autotls"]);
    c.ok(&["cert", "rm", "acme:auto.test"]);
    c.ok(&["host", "label", &c.host_id(1), "drover.ingress-"]);
}
