//! Data-driven tests: a fixture declares services, containers and certificates, one per
//! line, and asks questions, one per line; the expectation is the answers.
//!
//! ```text
//! parse JSON                  how an expose list reads (JSON, as the server receives it)
//! check JSON                  expose::check on it: ok, or the error
//! check-long host|path LEN    expose::check on an entry whose host or path is LEN long
//! expose STACK SERVICE JSON   (declares) a service's expose list
//! container NAME STACK SERVICE HOST ready|down IP|-   (declares) a container
//! cert NAME DOMAIN,.. [expires=UNIX]                 (declares) a certificate
//! challenge TOKEN KEY_AUTHORIZATION                   (declares) an ACME challenge
//! table                       the table of what is declared, and its problems
//! conflicts                   conflicts between the declared services
//! tunnel HOST=IP,..           what each backend host lets through its tunnel from these
//!                             ingress hosts (their mesh addresses)
//! acme NOW                    the hosts ACME should get a certificate for at NOW
//! route HOST|- PATH           the route a request reaches
//! sni NAME                    the certificate a TLS client hello for NAME gets
//! tcp PORT                    the TCP route listening on PORT
//! answer PATH                 the ACME HTTP-01 answer for PATH
//! pick HOST|- PATH [rr=N] [load=CONTAINER:N,..] [cookie=VALUE|@CONTAINER] [exclude=CONTAINER,..]
//!                             the backend of a request (load: requests in flight, 0 if not
//!                             given; @CONTAINER: the sticky value naming that container)
//! set-cookie HOST PATH CONTAINER [secure]   the sticky cookie keeping a client there
//! cookie NAME HEADER          the value of cookie NAME in a Cookie header
//! forwarded CLIENT PROTO HOST|- [X-FORWARDED-FOR]   the headers a forwarded request gets
//! idempotent METHOD..         which methods may be sent again
//! ```

use super::*;
use expect_test::{Expect, expect};
use std::collections::HashMap;
use std::net::Ipv4Addr;

#[derive(Default)]
struct World {
    services: Vec<(String, String, Vec<Expose>)>,
    /// name, stack, service, host, ready, ip
    containers: Vec<(String, String, String, String, bool, Option<Ipv4Addr>)>,
    certs: Vec<Cert>,
    expiry: HashMap<String, u64>,
    challenges: BTreeMap<String, String>,
}

impl World {
    fn services(&self) -> Vec<Service<'_>> {
        self.services
            .iter()
            .map(|(stack, service, expose)| Service {
                stack,
                service,
                expose,
            })
            .collect()
    }

    fn table(&self) -> (Table, Vec<String>) {
        table(&Input {
            services: self.services(),
            containers: self
                .containers
                .iter()
                .map(|(name, stack, service, host, ready, ip)| Container {
                    name,
                    stack,
                    service,
                    host,
                    ready: *ready,
                    ip: *ip,
                })
                .collect(),
            certs: self.certs.clone(),
            challenges: self.challenges.clone(),
        })
    }
}

fn backends(list: &[Backend]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    let list: Vec<String> = list
        .iter()
        .map(|b| format!("{}@{}={}", b.container, b.host, b.addr))
        .collect();
    list.join(",")
}

fn http_route(r: &HttpRoute) -> String {
    let tls = match &r.tls {
        Tls::None => "none".to_string(),
        Tls::Cert(name) => name.clone(),
    };
    format!(
        "{} {} -> {}/{} tls={tls} balance={:?} sticky={} backends={}",
        r.host.as_deref().unwrap_or("-"),
        r.path,
        r.stack,
        r.service,
        r.balance,
        r.sticky.as_deref().unwrap_or("-"),
        backends(&r.backends)
    )
}

fn tcp_route(t: &TcpRoute) -> String {
    format!(
        "{}/{} proxy_protocol={} backends={}",
        t.stack,
        t.service,
        t.proxy_protocol,
        backends(&t.backends)
    )
}

fn parse(json: &str) -> Result<Vec<Expose>, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// `HOST|- PATH`.
fn host_path(rest: &str) -> (Option<&str>, &str) {
    let (host, path) = rest.split_once(' ').expect("HOST PATH");
    ((host != "-").then_some(host), path)
}

fn check(fixture: &str, expected: Expect) {
    let mut world = World::default();
    let mut out = String::new();
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "parse" => match parse(rest) {
                Ok(list) => {
                    out += &format!("{line}\n");
                    for e in list {
                        out += &format!("  {e:?}\n");
                    }
                }
                Err(e) => out += &format!("{line}\n  error: {e}\n"),
            },
            "check" => {
                let answer = match parse(rest) {
                    Ok(list) => match expose::check(&list) {
                        Ok(()) => "ok".to_string(),
                        Err(e) => e,
                    },
                    Err(e) => format!("unreadable: {e}"),
                };
                out += &format!("{line}\n  {answer}\n");
            }
            "check-long" => {
                let (field, len) = rest.split_once(' ').expect("check-long FIELD LEN");
                let len: usize = len.parse().expect("length");
                let entry = match field {
                    // Labels of 50 characters: `aaa.aaa.…`, cut to the length.
                    "host" => HttpExpose {
                        host: Some(
                            format!("{}.", "a".repeat(50)).repeat(len / 51 + 1)[..len].into(),
                        ),
                        port: 80,
                        ..Default::default()
                    },
                    "path" => HttpExpose {
                        path: Some(format!("/{}", "a".repeat(len - 1))),
                        port: 80,
                        ..Default::default()
                    },
                    other => panic!("check-long {other}"),
                };
                let answer = expose::check(&[Expose::Http(entry)]).err();
                out += &format!("{line}\n  {}\n", answer.as_deref().unwrap_or("ok"));
            }
            "expose" => {
                let w: Vec<&str> = rest.splitn(3, ' ').collect();
                let list = parse(w[2]).expect("expose list in fixture");
                world.services.push((w[0].into(), w[1].into(), list));
            }
            "container" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                world.containers.push((
                    w[0].into(),
                    w[1].into(),
                    w[2].into(),
                    w[3].into(),
                    w[4] == "ready",
                    (w[5] != "-").then(|| w[5].parse().expect("ip")),
                ));
            }
            "cert" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                world.certs.push(Cert {
                    name: w[0].into(),
                    domains: w[1].split(',').map(String::from).collect(),
                    chain_pem: format!("chain of {}", w[0]),
                    key_pem: format!("key of {}", w[0]),
                });
                if let Some(t) = w.get(2).and_then(|e| e.strip_prefix("expires=")) {
                    world
                        .expiry
                        .insert(w[0].into(), t.parse().expect("unix time"));
                }
            }
            "challenge" => {
                let (token, auth) = rest.split_once(' ').expect("challenge TOKEN AUTH");
                world.challenges.insert(token.into(), auth.into());
            }
            "table" => {
                let (t, problems) = world.table();
                out += "table:\n";
                for r in &t.http {
                    out += &format!("  http {}\n", http_route(r));
                }
                for r in &t.tcp {
                    out += &format!("  tcp {} -> {}\n", r.listen, tcp_route(r));
                }
                for c in &t.certs {
                    out += &format!("  cert {} {}\n", c.name, c.domains.join(","));
                }
                for (token, auth) in &t.challenges {
                    out += &format!("  challenge {token} {auth}\n");
                }
                for p in problems {
                    out += &format!("  problem {p}\n");
                }
            }
            "tunnel" => {
                // tunnel HOST=IP,..: the ingress hosts and their mesh addresses.
                let hosts: Vec<(&str, std::net::Ipv4Addr)> = rest
                    .split(',')
                    .filter_map(|p| p.split_once('='))
                    .map(|(h, ip)| (h, ip.parse().expect("ingress host ip")))
                    .collect();
                let (t, _) = world.table();
                out += &format!("{line}\n");
                for (host, pairs) in tunnel_allows(&t, &hosts) {
                    for (src, dst) in pairs {
                        out += &format!("  {host}: {src} -> {dst}\n");
                    }
                }
            }
            "conflicts" => {
                out += "conflicts:\n";
                for c in conflicts(&world.services()) {
                    out += &format!("  {c}\n");
                }
            }
            "acme" => {
                let now: u64 = rest.parse().expect("now");
                let hosts = acme_wanted(&world.services(), &world.certs, now, |c| {
                    world.expiry.get(&c.name).copied()
                });
                let hosts = if hosts.is_empty() {
                    "nothing".to_string()
                } else {
                    hosts.join(" ")
                };
                out += &format!("{line} -> {hosts}\n");
            }
            "route" => {
                let (host, path) = host_path(rest);
                let router = Router::from(world.table().0);
                let answer = match router.route(host, path) {
                    Some(r) => format!(
                        "{}/{} {} {}",
                        r.stack,
                        r.service,
                        r.host.as_deref().unwrap_or("-"),
                        r.path
                    ),
                    None => "none".into(),
                };
                out += &format!("{line} -> {answer}\n");
            }
            "sni" => {
                let router = Router::from(world.table().0);
                let answer = router.cert_for(rest).map_or("none", |c| c.name.as_str());
                out += &format!("{line} -> {answer}\n");
            }
            "tcp" => {
                let router = Router::from(world.table().0);
                let answer = router
                    .tcp(rest.parse().expect("port"))
                    .map_or("none".into(), tcp_route);
                out += &format!("{line} -> {answer}\n");
            }
            "answer" => {
                let router = Router::from(world.table().0);
                out += &format!("{line} -> {}\n", router.challenge(rest).unwrap_or("none"));
            }
            "pick" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                let router = Router::from(world.table().0);
                let host = (w[0] != "-").then_some(w[0]);
                let route = router.route(host, w[1]).expect("a route to pick from");
                let by_name = |name: &str| {
                    route
                        .backends
                        .iter()
                        .find(|b| b.container == name)
                        .expect("a backend of the route")
                };
                let (mut rr, mut load, mut cookie, mut exclude) =
                    (0, HashMap::new(), None, Vec::new());
                for opt in &w[2..] {
                    let (k, v) = opt.split_once('=').expect("KEY=VALUE");
                    match k {
                        "rr" => rr = v.parse().expect("rr"),
                        "load" => {
                            for pair in v.split(',') {
                                let (c, n) = pair.split_once(':').expect("CONTAINER:N");
                                load.insert(c.to_string(), n.parse::<usize>().expect("n"));
                            }
                        }
                        "cookie" => {
                            cookie = Some(match v.strip_prefix('@') {
                                Some(name) => router::sticky_value(by_name(name)),
                                None => v.to_string(),
                            })
                        }
                        "exclude" => exclude = v.split(',').map(|c| by_name(c).addr).collect(),
                        other => panic!("pick option {other}"),
                    }
                }
                let in_flight = |b: &Backend| load.get(&b.container).copied().unwrap_or(0);
                let picked = pick(route, rr, &in_flight, cookie.as_deref(), &exclude);
                let answer = picked.map_or("none", |b| b.container.as_str());
                out += &format!("{line} -> {answer}\n");
            }
            "set-cookie" => {
                let w: Vec<&str> = rest.split_whitespace().collect();
                let router = Router::from(world.table().0);
                let route = router
                    .route(Some(w[0]), w[1])
                    .expect("a route for set-cookie");
                let backend = route
                    .backends
                    .iter()
                    .find(|b| b.container == w[2])
                    .expect("a backend of the route");
                let secure = w.get(3) == Some(&"secure");
                let answer = router::sticky_cookie(route, backend, secure);
                out += &format!("{line} -> {}\n", answer.as_deref().unwrap_or("none"));
            }
            "cookie" => {
                let (name, header) = rest.split_once(' ').expect("cookie NAME HEADER");
                let answer =
                    router::cookie(header, name).map_or("none".into(), |v| format!("{v:?}"));
                out += &format!("{line} -> {answer}\n");
            }
            "forwarded" => {
                let w: Vec<&str> = rest.splitn(4, ' ').collect();
                let host = (w[2] != "-").then_some(w[2]);
                out += &format!("{line}\n");
                for (name, value) in
                    forwarded_headers(w[0].parse().expect("client"), w[1], host, w.get(3).copied())
                {
                    out += &format!("  {name}: {value}\n");
                }
            }
            "idempotent" => {
                let answers: Vec<String> = rest
                    .split_whitespace()
                    .map(|m| format!("{m}={}", if is_idempotent(m) { "yes" } else { "no" }))
                    .collect();
                out += &format!("{line} -> {}\n", answers.join(" "));
            }
            other => panic!("unknown fixture word {other}"),
        }
    }
    expected.assert_eq(&out);
}

#[test]
fn expose_entries_read_as_http_or_tcp() {
    check(
        r#"
        parse [{"host": "Shop.example.com", "path": "/api", "port": 8080, "tls": "auto"}]
        parse [{"port": 80}, {"tcp": 5432, "port": 5432, "proxy_protocol": true}]
        parse [{"port": 80, "host": null}]
        parse [{"hots": "shop.example.com", "port": 80}]
        parse [{"port": 80, "proxy_protocol": true}]
        parse [{"tcp": 5432, "port": 5432, "host": "db.example.com"}]
        parse [{"tcp": 5432, "port": 5432, "tsl": "auto"}]
        parse [{"host": "shop.example.com"}]
        parse [{"tcp": 5432}]
        parse [{"port": 70000}]
        parse [{"port": "80"}]
        parse ["shop.example.com"]
        "#,
        expect![[r#"
            parse [{"host": "Shop.example.com", "path": "/api", "port": 8080, "tls": "auto"}]
              Http(HttpExpose { host: Some("Shop.example.com"), path: Some("/api"), port: 8080, tls: Some("auto"), balance: None, sticky: None })
            parse [{"port": 80}, {"tcp": 5432, "port": 5432, "proxy_protocol": true}]
              Http(HttpExpose { host: None, path: None, port: 80, tls: None, balance: None, sticky: None })
              Tcp(TcpExpose { tcp: 5432, port: 5432, proxy_protocol: true })
            parse [{"port": 80, "host": null}]
              Http(HttpExpose { host: None, path: None, port: 80, tls: None, balance: None, sticky: None })
            parse [{"hots": "shop.example.com", "port": 80}]
              error: unknown field 'hots', expected one of host, path, port, tls, balance, sticky at line 1 column 41
            parse [{"port": 80, "proxy_protocol": true}]
              error: unknown field 'proxy_protocol', expected one of host, path, port, tls, balance, sticky at line 1 column 37
            parse [{"tcp": 5432, "port": 5432, "host": "db.example.com"}]
              error: unknown field 'host', expected one of tcp, port, proxy_protocol at line 1 column 54
            parse [{"tcp": 5432, "port": 5432, "tsl": "auto"}]
              error: unknown field 'tsl', expected one of tcp, port, proxy_protocol at line 1 column 43
            parse [{"host": "shop.example.com"}]
              error: missing field 'port' at line 1 column 29
            parse [{"tcp": 5432}]
              error: missing field 'port' at line 1 column 14
            parse [{"port": 70000}]
              error: invalid value: integer `70000`, expected u16 at line 1 column 15
            parse [{"port": "80"}]
              error: invalid type: string "80", expected u16 at line 1 column 14
            parse ["shop.example.com"]
              error: invalid type: string "shop.example.com", expected an expose entry: a map with port and host/path/tls, or with tcp at line 1 column 19
        "#]],
    );
}

#[test]
fn expose_rules() {
    check(
        r#"
        check [{"port": 80}, {"host": "Shop.Example.com", "path": "/api", "port": 8080, "tls": "auto", "balance": "least_conn", "sticky": "srv_id"}]
        check [{"host": "*.example.com", "port": 80, "tls": "wild-cert.2024"}, {"tcp": 5432, "port": 5432}, {"tcp": 5433, "port": 5432}]
        check [{"host": "", "port": 80}]
        check [{"host": "a..example.com", "port": 80}]
        check [{"host": "example.com.", "port": 80}]
        check [{"host": "*.*.example.com", "port": 80}]
        check [{"host": "shop.*.example.com", "port": 80}]
        check [{"host": "shop_1.example.com", "port": 80}]
        check [{"host": "-shop.example.com", "port": 80}]
        check [{"host": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", "port": 80}]
        check-long host 253
        check-long host 254
        check [{"port": 80}, {"path": "api", "port": 80}]
        check [{"path": "/my api", "port": 80}]
        check [{"path": "/api?x=1", "port": 80}]
        check-long path 1024
        check-long path 1025
        check [{"port": 0}]
        check [{"port": 80, "tls": "Shop"}]
        check [{"port": 80, "tls": "acme:shop.example.com"}]
        check [{"port": 80, "tls": "auto"}]
        check [{"host": "*.example.com", "port": 80, "tls": "auto"}]
        check [{"port": 80, "balance": "random"}]
        check [{"port": 80, "sticky": "my cookie"}]
        check [{"port": 80, "sticky": ""}]
        check [{"tcp": 0, "port": 5432}]
        check [{"tcp": 5432, "port": 0}]
        check [{"host": "shop.example.com", "port": 80}, {"host": "SHOP.example.com", "path": "/", "port": 81}]
        check [{"tcp": 5432, "port": 5432}, {"port": 80}, {"tcp": 5432, "port": 5433}]
        "#,
        expect![[r#"
            check [{"port": 80}, {"host": "Shop.Example.com", "path": "/api", "port": 8080, "tls": "auto", "balance": "least_conn", "sticky": "srv_id"}]
              ok
            check [{"host": "*.example.com", "port": 80, "tls": "wild-cert.2024"}, {"tcp": 5432, "port": 5432}, {"tcp": 5433, "port": 5432}]
              ok
            check [{"host": "", "port": 80}]
              expose[0].host: must not be empty (leave host out to match any host)
            check [{"host": "a..example.com", "port": 80}]
              expose[0].host: "a..example.com" has an empty label
            check [{"host": "example.com.", "port": 80}]
              expose[0].host: "example.com." has an empty label
            check [{"host": "*.*.example.com", "port": 80}]
              expose[0].host: "*.*.example.com": only one leading wildcard label is allowed (*.example.com)
            check [{"host": "shop.*.example.com", "port": 80}]
              expose[0].host: "shop.*.example.com": only one leading wildcard label is allowed (*.example.com)
            check [{"host": "shop_1.example.com", "port": 80}]
              expose[0].host: "shop_1.example.com": a label may hold only letters, digits and -
            check [{"host": "-shop.example.com", "port": 80}]
              expose[0].host: "-shop.example.com": a label may not start or end with -
            check [{"host": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", "port": 80}]
              expose[0].host: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com" has a label longer than 63 characters
            check-long host 253
              ok
            check-long host 254
              expose[0].host: longer than 253 characters
            check [{"port": 80}, {"path": "api", "port": 80}]
              expose[1].path: must start with /
            check [{"path": "/my api", "port": 80}]
              expose[0].path: must not contain whitespace or control characters
            check [{"path": "/api?x=1", "port": 80}]
              expose[0].path: must not contain ? or # (a path prefix, without query)
            check-long path 1024
              ok
            check-long path 1025
              expose[0].path: longer than 1024 characters
            check [{"port": 0}]
              expose[0].port: must be a port from 1 to 65535
            check [{"port": 80, "tls": "Shop"}]
              expose[0].tls: "Shop" is not auto, none or a certificate name ([a-z0-9][a-z0-9_.-]*, at most 63 characters)
            check [{"port": 80, "tls": "acme:shop.example.com"}]
              expose[0].tls: "acme:shop.example.com" is not auto, none or a certificate name ([a-z0-9][a-z0-9_.-]*, at most 63 characters)
            check [{"port": 80, "tls": "auto"}]
              expose[0].tls: auto needs a host (ACME issues certificates for a name)
            check [{"host": "*.example.com", "port": 80, "tls": "auto"}]
              expose[0].tls: auto cannot serve the wildcard host *.example.com (HTTP-01 cannot issue wildcard certificates): add one with drover cert add and name it
            check [{"port": 80, "balance": "random"}]
              expose[0].balance: "random" is not round_robin or least_conn
            check [{"port": 80, "sticky": "my cookie"}]
              expose[0].sticky: "my cookie" is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)
            check [{"port": 80, "sticky": ""}]
              expose[0].sticky: must be a cookie name, not empty
            check [{"tcp": 0, "port": 5432}]
              expose[0].tcp: must be a port from 1 to 65535
            check [{"tcp": 5432, "port": 0}]
              expose[0].port: must be a port from 1 to 65535
            check [{"host": "shop.example.com", "port": 80}, {"host": "SHOP.example.com", "path": "/", "port": 81}]
              expose[1]: host shop.example.com path / is already exposed by expose[0]
            check [{"tcp": 5432, "port": 5432}, {"port": 80}, {"tcp": 5432, "port": 5433}]
              expose[2]: tcp port 5432 is already exposed by expose[0]
        "#]],
    );
}

#[test]
fn the_table_routes_to_ready_containers() {
    check(
        r#"
        expose shop web [{"host": "Shop.Example.com", "port": 8080}, {"host": "shop.example.com", "path": "/static", "port": 8081, "balance": "least_conn", "sticky": "srv"}]
        expose shop api [{"host": "shop.example.com", "path": "/api", "port": 9000}]
        expose shop db [{"tcp": 5432, "port": 5432, "proxy_protocol": true}]
        expose blog web [{"port": 80}, {"host": "*.blog.example.com", "port": 80}]
        expose blog cache [{"tcp": 6379, "port": 6379}]
        container shop-web-2 shop web b ready 10.192.8.2
        container shop-web-1 shop web a ready 10.192.4.2
        container shop-web-3 shop web c down 10.192.12.2
        container shop-web-4 shop web c ready -
        container shop-api-1 shop api a down 10.192.4.3
        container shop-db-1 shop db b ready 10.192.8.3
        container blog-web-1 blog web a ready 10.192.4.34
        container other-web-1 other web a ready 10.192.4.66
        challenge tok3n tok3n.thumbprint
        table
        "#,
        expect![[r#"
            table:
              http - / -> blog/web tls=none balance=RoundRobin sticky=- backends=blog-web-1@a=10.192.4.34:80
              http *.blog.example.com / -> blog/web tls=none balance=RoundRobin sticky=- backends=blog-web-1@a=10.192.4.34:80
              http shop.example.com / -> shop/web tls=none balance=RoundRobin sticky=- backends=shop-web-1@a=10.192.4.2:8080,shop-web-2@b=10.192.8.2:8080
              http shop.example.com /api -> shop/api tls=none balance=RoundRobin sticky=- backends=none
              http shop.example.com /static -> shop/web tls=none balance=LeastConn sticky=srv backends=shop-web-1@a=10.192.4.2:8081,shop-web-2@b=10.192.8.2:8081
              tcp 5432 -> shop/db proxy_protocol=true backends=shop-db-1@b=10.192.8.3:5432
              tcp 6379 -> blog/cache proxy_protocol=false backends=none
              challenge tok3n tok3n.thumbprint
        "#]],
    );
}

#[test]
fn tls_named_auto_and_missing_certificates() {
    check(
        r#"
        expose shop web [{"host": "shop.example.com", "port": 80, "tls": "auto"}, {"host": "www.shop.example.com", "port": 80, "tls": "auto"}]
        expose shop admin [{"host": "admin.example.com", "port": 80, "tls": "auto"}]
        expose blog web [{"host": "*.blog.example.com", "port": 80, "tls": "blog-wild"}, {"host": "blog.example.com", "port": 80, "tls": "blog-wild"}]
        expose docs web [{"host": "docs.example.com", "port": 80, "tls": "docs"}, {"port": 80, "path": "/docs", "tls": "docs"}]
        expose plain web [{"host": "plain.example.com", "port": 80, "tls": "none"}]
        expose misc web [{"path": "/misc", "port": 80, "tls": "shop-wild"}]
        cert acme:shop.example.com shop.example.com
        cert shop-wild *.shop.example.com
        cert blog-wild *.blog.example.com
        cert unused other.example.com
        table
        "#,
        expect![[r#"
            table:
              http - /docs -> docs/web tls=none balance=RoundRobin sticky=- backends=none
              http - /misc -> misc/web tls=shop-wild balance=RoundRobin sticky=- backends=none
              http *.blog.example.com / -> blog/web tls=blog-wild balance=RoundRobin sticky=- backends=none
              http admin.example.com / -> shop/admin tls=none balance=RoundRobin sticky=- backends=none
              http blog.example.com / -> blog/web tls=none balance=RoundRobin sticky=- backends=none
              http docs.example.com / -> docs/web tls=none balance=RoundRobin sticky=- backends=none
              http plain.example.com / -> plain/web tls=none balance=RoundRobin sticky=- backends=none
              http shop.example.com / -> shop/web tls=acme:shop.example.com balance=RoundRobin sticky=- backends=none
              http www.shop.example.com / -> shop/web tls=shop-wild balance=RoundRobin sticky=- backends=none
              cert acme:shop.example.com shop.example.com
              cert blog-wild *.blog.example.com
              cert shop-wild *.shop.example.com
              problem blog/web: expose[1].tls: certificate blog-wild does not cover blog.example.com (it holds *.blog.example.com); served over plain HTTP
              problem docs/web: expose[0].tls: certificate docs does not exist; served over plain HTTP until it is added
              problem docs/web: expose[1].tls: certificate docs does not exist; served over plain HTTP until it is added
              problem shop/admin: expose[0].tls: auto: no certificate for admin.example.com yet; served over plain HTTP until ACME obtains acme:admin.example.com
        "#]],
    );
}

#[test]
fn claims_made_twice() {
    check(
        r#"
        expose shop web [{"host": "shop.example.com", "port": 80}, {"tcp": 5432, "port": 5432}, {"port": 80, "path": "/"}]
        expose blog web [{"host": "SHOP.example.com", "path": "/", "port": 80}, {"host": "shop.example.com", "path": "/blog", "port": 80}]
        expose blog db [{"tcp": 5432, "port": 5432}, {"host": "*.example.com", "port": 80}]
        expose alpha web [{"port": 81}, {"host": "shop.example.com", "port": 80}]
        expose broken web [{"path": "no-slash", "port": 80}, {"host": "ok.example.com", "port": 80}]
        conflicts
        table
        "#,
        expect![[r#"
            conflicts:
              alpha/web and shop/web both claim any host path /
              alpha/web and blog/web both claim host shop.example.com path /
              alpha/web and shop/web both claim host shop.example.com path /
              blog/db and shop/web both claim tcp port 5432
            table:
              http - / -> alpha/web tls=none balance=RoundRobin sticky=- backends=none
              http *.example.com / -> blog/db tls=none balance=RoundRobin sticky=- backends=none
              http ok.example.com / -> broken/web tls=none balance=RoundRobin sticky=- backends=none
              http shop.example.com / -> alpha/web tls=none balance=RoundRobin sticky=- backends=none
              http shop.example.com /blog -> blog/web tls=none balance=RoundRobin sticky=- backends=none
              tcp 5432 -> blog/db proxy_protocol=false backends=none
              problem blog/web: expose[0]: host shop.example.com path / is already routed to alpha/web; not routed
              problem broken/web: expose[0].path: must start with /; not routed
              problem shop/web: expose[0]: host shop.example.com path / is already routed to alpha/web; not routed
              problem shop/web: expose[1]: tcp port 5432 is already routed to blog/db; not routed
              problem shop/web: expose[2]: any host path / is already routed to alpha/web; not routed
        "#]],
    );
}

/// chaos hostile, target expose, generated input `entries-100000`: two stacks exposing the
/// same 100,000 routes; each conflict was compared with every one found before
/// (quadratic: minutes, in the deploy that checks them).
#[test]
fn entries_100000_conflicts_stay_linear() {
    let list: Vec<Expose> = (0..100_000)
        .map(|i| {
            Expose::Http(HttpExpose {
                host: Some(format!("h{i}.example.com")),
                port: 80,
                ..Default::default()
            })
        })
        .collect();
    let services = [
        Service {
            stack: "b",
            service: "web",
            expose: &list,
        },
        Service {
            stack: "a",
            service: "web",
            expose: &list,
        },
    ];
    let start = std::time::Instant::now();
    let found = conflicts(&services);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(found.len(), 100_000);
    assert_eq!(
        found[0],
        "a/web and b/web both claim host h0.example.com path /"
    );
}

/// chaos hostile, target expose, generated input `entries-100000`: a deploy's list of
/// 100,000 routes passed `check`, and its table took 110 MB.
#[test]
fn entries_100000_are_refused() {
    let list = |n: usize| -> Vec<Expose> {
        (0..n)
            .map(|i| {
                Expose::Http(HttpExpose {
                    host: Some(format!("h{i}.example.com")),
                    port: 80,
                    ..Default::default()
                })
            })
            .collect()
    };
    assert_eq!(
        expose::check(&list(100_000)),
        Err("expose: 100000 entries, at most 1000".to_string())
    );
    assert_eq!(expose::check(&list(expose::MAX_ENTRIES)), Ok(()));
}

#[test]
fn acme_asks_for_missing_and_expiring_certificates() {
    check(
        r#"
        expose shop web [{"host": "Shop.example.com", "port": 80, "tls": "auto"}, {"host": "www.shop.example.com", "port": 80, "tls": "auto"}]
        expose shop api [{"host": "api.example.com", "port": 80, "tls": "auto"}, {"host": "named.example.com", "port": 80, "tls": "named"}]
        expose blog web [{"host": "blog.example.com", "port": 80, "tls": "auto"}, {"host": "*.wild.example.com", "port": 80, "tls": "auto"}]
        cert acme:shop.example.com shop.example.com expires=10000000
        cert acme:api.example.com api.example.com
        cert acme:blog.example.com blog.example.com expires=5000000
        acme 1000000
        acme 7407999
        acme 7408000
        "#,
        expect![[r#"
            acme 1000000 -> api.example.com www.shop.example.com
            acme 7407999 -> api.example.com blog.example.com www.shop.example.com
            acme 7408000 -> api.example.com blog.example.com shop.example.com www.shop.example.com
        "#]],
    );
}

#[test]
fn exact_host_beats_wildcard_beats_any_host() {
    check(
        r#"
        expose shop web [{"host": "shop.example.com", "port": 80}, {"host": "shop.example.com", "path": "/api", "port": 81}]
        expose wild web [{"host": "*.example.com", "port": 80}, {"host": "*.example.com", "path": "/wild", "port": 80}]
        expose any web [{"port": 80}, {"path": "/api/v2", "port": 80}]
        expose alias web [{"host": "only-api.example.com", "path": "/api", "port": 80}]
        route shop.example.com /
        route shop.example.com /wild
        route SHOP.Example.COM:8443 /api/x
        route shop.example.com. /api
        route www.example.com /wild/x
        route a.www.example.com /
        route example.com /
        route .example.com /
        route - /api/v2/users
        route :8080 /
        route [::1]:8080 /api/v2
        route only-api.example.com /api/x
        route only-api.example.com /
        "#,
        expect![[r#"
            route shop.example.com / -> shop/web shop.example.com /
            route shop.example.com /wild -> shop/web shop.example.com /
            route SHOP.Example.COM:8443 /api/x -> shop/web shop.example.com /api
            route shop.example.com. /api -> shop/web shop.example.com /api
            route www.example.com /wild/x -> wild/web *.example.com /wild
            route a.www.example.com / -> any/web - /
            route example.com / -> any/web - /
            route .example.com / -> any/web - /
            route - /api/v2/users -> any/web - /api/v2
            route :8080 / -> any/web - /
            route [::1]:8080 /api/v2 -> any/web - /api/v2
            route only-api.example.com /api/x -> alias/web only-api.example.com /api
            route only-api.example.com / -> none
        "#]],
    );
}

#[test]
fn the_longest_path_prefix_wins_at_a_segment_boundary() {
    check(
        r#"
        expose shop web [{"port": 80}, {"path": "/api", "port": 80}, {"path": "/api/v2/", "port": 80}, {"path": "/static/img", "port": 80}]
        route - /
        route - /api
        route - /api/
        route - /api/x
        route - /api?q=1
        route - /apix
        route - /api/v2
        route - /api/v2/
        route - /api/v2/users?id=1
        route - /static
        route - /static/img/logo.png
        route - *
        "#,
        expect![[r#"
            route - / -> shop/web - /
            route - /api -> shop/web - /api
            route - /api/ -> shop/web - /api
            route - /api/x -> shop/web - /api
            route - /api?q=1 -> shop/web - /api
            route - /apix -> shop/web - /
            route - /api/v2 -> shop/web - /api
            route - /api/v2/ -> shop/web - /api/v2/
            route - /api/v2/users?id=1 -> shop/web - /api/v2/
            route - /static -> shop/web - /
            route - /static/img/logo.png -> shop/web - /static/img
            route - * -> none
        "#]],
    );
}

#[test]
fn certificates_tcp_routes_and_challenges() {
    check(
        r#"
        expose shop web [{"host": "shop.example.com", "port": 80, "tls": "auto"}, {"host": "www.shop.example.com", "port": 80, "tls": "shop-wild"}, {"host": "*.apps.example.com", "port": 80, "tls": "apps"}]
        expose shop db [{"tcp": 5432, "port": 5432, "proxy_protocol": true}]
        container shop-db-1 shop db a ready 10.192.4.9
        cert acme:shop.example.com shop.example.com
        cert shop-wild *.shop.example.com,shop.example.com
        cert apps *.apps.example.com
        challenge abc abc.key
        sni shop.example.com
        sni SHOP.example.com.
        sni www.shop.example.com
        sni a.www.shop.example.com
        sni x.apps.example.com
        sni apps.example.com
        sni other.example.com
        tcp 5432
        tcp 5433
        answer /.well-known/acme-challenge/abc
        answer /.well-known/acme-challenge/abd
        answer /.well-known/acme-challenge/
        answer /abc
        "#,
        expect![[r#"
            sni shop.example.com -> acme:shop.example.com
            sni SHOP.example.com. -> acme:shop.example.com
            sni www.shop.example.com -> shop-wild
            sni a.www.shop.example.com -> none
            sni x.apps.example.com -> apps
            sni apps.example.com -> none
            sni other.example.com -> none
            tcp 5432 -> shop/db proxy_protocol=true backends=shop-db-1@a=10.192.4.9:5432
            tcp 5433 -> none
            answer /.well-known/acme-challenge/abc -> abc.key
            answer /.well-known/acme-challenge/abd -> none
            answer /.well-known/acme-challenge/ -> none
            answer /abc -> none
        "#]],
    );
}

#[test]
fn picking_a_backend() {
    check(
        r#"
        expose shop web [{"port": 80}, {"path": "/lc", "port": 80, "balance": "least_conn"}, {"path": "/sticky", "port": 80, "sticky": "srv"}]
        expose shop down [{"host": "down.example.com", "port": 80}]
        container shop-web-1 shop web a ready 10.192.4.2
        container shop-web-2 shop web b ready 10.192.8.2
        container shop-web-3 shop web c ready 10.192.12.2
        container shop-down-1 shop down c down 10.192.12.3
        pick - / rr=0
        pick - / rr=1
        pick - / rr=5
        pick - / rr=0 exclude=shop-web-1
        pick - / rr=1 exclude=shop-web-1
        pick - / rr=0 exclude=shop-web-1,shop-web-2,shop-web-3
        pick down.example.com / rr=0
        pick - /lc rr=0 load=shop-web-1:3,shop-web-2:1,shop-web-3:2
        pick - /lc rr=0 load=shop-web-1:3,shop-web-2:1,shop-web-3:1
        pick - /lc rr=1 load=shop-web-1:3,shop-web-2:1,shop-web-3:1
        pick - /lc rr=0 load=shop-web-1:3,shop-web-2:1,shop-web-3:2 exclude=shop-web-2
        pick - /sticky rr=0 cookie=@shop-web-3
        pick - /sticky rr=0 cookie=@shop-web-3 exclude=shop-web-3
        pick - /sticky rr=1 cookie=0123456789abcdef
        pick - / rr=0 cookie=@shop-web-3
        set-cookie - /sticky shop-web-3
        set-cookie - /sticky/x shop-web-3 secure
        set-cookie - / shop-web-3
        cookie srv a=1; srv=abc; srv=def
        cookie srv srv="abc"
        cookie srv srvx=1; xsrv=2
        "#,
        expect![[r#"
            pick - / rr=0 -> shop-web-1
            pick - / rr=1 -> shop-web-2
            pick - / rr=5 -> shop-web-3
            pick - / rr=0 exclude=shop-web-1 -> shop-web-2
            pick - / rr=1 exclude=shop-web-1 -> shop-web-3
            pick - / rr=0 exclude=shop-web-1,shop-web-2,shop-web-3 -> none
            pick down.example.com / rr=0 -> none
            pick - /lc rr=0 load=shop-web-1:3,shop-web-2:1,shop-web-3:2 -> shop-web-2
            pick - /lc rr=0 load=shop-web-1:3,shop-web-2:1,shop-web-3:1 -> shop-web-2
            pick - /lc rr=1 load=shop-web-1:3,shop-web-2:1,shop-web-3:1 -> shop-web-3
            pick - /lc rr=0 load=shop-web-1:3,shop-web-2:1,shop-web-3:2 exclude=shop-web-2 -> shop-web-3
            pick - /sticky rr=0 cookie=@shop-web-3 -> shop-web-3
            pick - /sticky rr=0 cookie=@shop-web-3 exclude=shop-web-3 -> shop-web-1
            pick - /sticky rr=1 cookie=0123456789abcdef -> shop-web-2
            pick - / rr=0 cookie=@shop-web-3 -> shop-web-1
            set-cookie - /sticky shop-web-3 -> srv=3dc7800466d58962; Path=/sticky; HttpOnly; SameSite=Lax
            set-cookie - /sticky/x shop-web-3 secure -> srv=3dc7800466d58962; Path=/sticky; HttpOnly; SameSite=Lax; Secure
            set-cookie - / shop-web-3 -> none
            cookie srv a=1; srv=abc; srv=def -> "abc"
            cookie srv srv="abc" -> "abc"
            cookie srv srvx=1; xsrv=2 -> none
        "#]],
    );
}

#[test]
fn forwarded_headers_and_retries() {
    check(
        r#"
        forwarded 203.0.113.7:51000 https shop.example.com
        forwarded 203.0.113.7:51000 http shop.example.com:8080 198.51.100.1, 10.0.0.1
        forwarded [2001:db8::1]:51000 https - 198.51.100.1
        forwarded [::ffff:203.0.113.7]:51000 http shop.example.com
        forwarded 203.0.113.7:51000 http bad"host
        idempotent GET HEAD OPTIONS TRACE PUT DELETE POST PATCH CONNECT get
        "#,
        expect![[r#"
            forwarded 203.0.113.7:51000 https shop.example.com
              x-forwarded-for: 203.0.113.7
              x-forwarded-proto: https
              x-forwarded-host: shop.example.com
              forwarded: for=203.0.113.7;proto=https;host=shop.example.com
            forwarded 203.0.113.7:51000 http shop.example.com:8080 198.51.100.1, 10.0.0.1
              x-forwarded-for: 198.51.100.1, 10.0.0.1, 203.0.113.7
              x-forwarded-proto: http
              x-forwarded-host: shop.example.com:8080
              forwarded: for=203.0.113.7;proto=http;host="shop.example.com:8080"
            forwarded [2001:db8::1]:51000 https - 198.51.100.1
              x-forwarded-for: 198.51.100.1, 2001:db8::1
              x-forwarded-proto: https
              forwarded: for="[2001:db8::1]";proto=https
            forwarded [::ffff:203.0.113.7]:51000 http shop.example.com
              x-forwarded-for: 203.0.113.7
              x-forwarded-proto: http
              x-forwarded-host: shop.example.com
              forwarded: for=203.0.113.7;proto=http;host=shop.example.com
            forwarded 203.0.113.7:51000 http bad"host
              x-forwarded-for: 203.0.113.7
              x-forwarded-proto: http
              x-forwarded-host: bad"host
              forwarded: for=203.0.113.7;proto=http;host="bad\"host"
            idempotent GET HEAD OPTIONS TRACE PUT DELETE POST PATCH CONNECT get -> GET=yes HEAD=yes OPTIONS=yes TRACE=yes PUT=yes DELETE=yes POST=no PATCH=no CONNECT=no get=no
        "#]],
    );
}

#[test]
fn ingress_hosts_reach_backends_on_other_hosts_through_the_tunnel() {
    check(
        r#"
        expose shop web [{"host": "shop.test", "port": 8080}, {"tcp": 5432, "port": 5432}]
        container shop-web-1 shop web h1 ready 10.192.4.2
        container shop-web-2 shop web h2 ready 10.192.8.2
        container shop-web-3 shop web h3 down 10.192.12.2
        tunnel h1=10.192.0.1,h2=10.192.0.2
        "#,
        expect![[r#"
            tunnel h1=10.192.0.1,h2=10.192.0.2
              h1: 10.192.0.2 -> 10.192.4.2
              h2: 10.192.0.1 -> 10.192.8.2
        "#]],
    );
}
