//! Data-driven tests: a fixture declares services, containers and certificates, one per
//! line, and asks questions, one per line; the expectation is the answers.
//!
//! ```text
//! parse JSON                  how an expose list reads (JSON, as the server receives it)
//! check JSON                  expose::check on it: ok, or the error
//! check-long host|path LEN    expose::check on an entry whose host or path is LEN long
//! ```

use super::*;
use expect_test::{Expect, expect};

fn parse(json: &str) -> Result<Vec<Expose>, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

fn check(fixture: &str, expected: Expect) {
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
