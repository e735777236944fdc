//! Data-driven tests: each fixture line is a question, the expectation one answer per line.
//!
//! ```text
//! CALLER env ENV | read|write|exec ENV | routes user|agent | blobs known|unknown | hello HOST [HASH]
//! auth none|long|unknown|KIND[:usable|:unusable]
//! ```
//! CALLER is `admin@ENV`, `member@ENV`, `reg@ENV`, `host:ID@ENV` or `local` (the server's own
//! agent). HASH `ok` stands for a well-formed one.

use super::*;
use expect_test::{Expect, expect};

fn caller(spec: &str) -> Caller {
    if spec == "local" {
        return local_agent();
    }
    let (who, env) = spec.split_once('@').unwrap_or((spec, "default"));
    let (kind, host) = match who.split_once(':') {
        Some(("host", id)) => (Kind::Host, Some(id.to_string())),
        _ => match who {
            "admin" => (Kind::Admin, None),
            "member" => (Kind::Member, None),
            _ => (Kind::Registration, None),
        },
    };
    Caller {
        name: who.to_string(),
        kind,
        env: env.to_string(),
        host,
        token_hash: Some("h".repeat(64)),
    }
}

fn answer<T: std::fmt::Debug>(r: Result<T, impl std::fmt::Display>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("no: {e}"),
    }
}

fn authenticate_line(what: &str) -> String {
    let long = "x".repeat(MAX_TOKEN_LEN + 1);
    let token = |kind: &str, usable: bool| Token {
        name: "t1".into(),
        kind: kind.into(),
        env: "default".into(),
        host: (kind == "host").then(|| "h1".to_string()),
        usable,
    };
    let (presented, found) = match what {
        "none" => (None, None),
        "long" => (Some(long.as_str()), Some(token("admin", true))),
        "unknown" => (Some("drv_x"), None),
        other => {
            let (kind, usable) = other.split_once(':').unwrap_or((other, "usable"));
            (Some("drv_x"), Some(token(kind, usable == "usable")))
        }
    };
    match authenticate(presented, "hash", found) {
        Ok(c) => format!("{:?} env={} host={:?}", c.kind, c.env, c.host),
        Err(e) => format!("{e:?}"),
    }
}

fn check(fixture: &str, expect: Expect) {
    let mut out = String::new();
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let result = if words[0] == "auth" {
            authenticate_line(words.get(1).copied().unwrap_or("none"))
        } else {
            let c = caller(words[0]);
            let arg = words.get(2).copied().unwrap_or("");
            match words.get(1).copied().unwrap_or("") {
                "env" => answer(c.may_use_env(arg)),
                "read" => answer(c.may(arg, Class::Read)),
                "write" => answer(c.may(arg, Class::Write)),
                "exec" => answer(c.may(arg, Class::Exec)),
                "routes" => answer(c.may_use(if arg == "user" {
                    Routes::User
                } else {
                    Routes::Agent
                })),
                "blobs" => answer(c.may_fetch_blobs(arg == "known")),
                "environments" => answer(c.may_manage_environments()),
                "hello" => {
                    let hash = words.get(3).map(|h| match *h {
                        "ok" => "AB".repeat(32),
                        other => other.to_string(),
                    });
                    match admit(&c, arg, hash.as_deref()) {
                        Ok(Admit::Refresh { .. }) => "refresh".into(),
                        Ok(Admit::Register {
                            credential_hash,
                            reclaim,
                        }) => format!("register {} reclaim={reclaim}", &credential_hash[..4]),
                        Err(e) => format!(
                            "refused{}: {e}",
                            if e.is_impostor() { " (audit)" } else { "" }
                        ),
                    }
                }
                other => format!("unknown question {other}"),
            }
        };
        out.push_str(&format!("{line} => {result}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn tokens_authenticate_by_kind_and_registration_tokens_only_while_usable() {
    check(
        "auth none
         auth long
         auth unknown
         auth weird
         auth admin
         auth member
         auth agent:usable
         auth agent:unusable
         auth host",
        expect![[r#"
            auth none => Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
            auth long => Unauthenticated("invalid token")
            auth unknown => Unauthenticated("invalid token")
            auth weird => Unauthenticated("invalid token")
            auth admin => Admin env=default host=None
            auth member => Member env=default host=None
            auth agent:usable => Registration env=default host=None
            auth agent:unusable => Unauthenticated("registration token 't1' has expired or is used up")
            auth host => Host env=default host=Some("h1")
        "#]],
    );
}

#[test]
fn users_and_agents_keep_to_their_routes_and_environments() {
    check(
        "admin@default routes user
         admin@default routes agent
         member@default routes user
         reg@default routes user
         reg@default routes agent
         host:h1@default routes user
         host:h1@default routes agent
         admin@default env prod
         member@default env default
         member@default env prod
         reg@default env default
         host:h1@default env default",
        expect![[r#"
            admin@default routes user => ()
            admin@default routes agent => no: only agents may use /v1/agent routes (use a registration token)
            member@default routes user => ()
            reg@default routes user => no: agent tokens and host credentials may not use the API
            reg@default routes agent => ()
            host:h1@default routes user => no: agent tokens and host credentials may not use the API
            host:h1@default routes agent => ()
            admin@default env prod => ()
            member@default env default => ()
            member@default env prod => no: token 'member' may not act in environment 'prod'
            reg@default env default => no: token 'reg' may not act in environment 'default'
            host:h1@default env default => no: token 'host:h1' may not act in environment 'default'
        "#]],
    );
}

#[test]
fn only_callers_that_may_change_an_environment_run_commands_in_its_containers() {
    check(
        "admin@default exec prod
         member@default exec default
         member@default read default
         member@default write default
         member@default exec prod
         member@prod read default
         reg@default exec default
         host:h1@default exec default
         local exec default",
        expect![[r#"
            admin@default exec prod => ()
            member@default exec default => ()
            member@default read default => ()
            member@default write default => ()
            member@default exec prod => no: token 'member' may not act in environment 'prod'
            member@prod read default => no: token 'member' may not act in environment 'default'
            reg@default exec default => no: token 'reg' may not act in environment 'default'
            host:h1@default exec default => no: token 'host:h1' may not act in environment 'default'
            local exec default => no: token 'local-agent' may not act in environment 'default'
        "#]],
    );
}

#[test]
fn build_contexts_go_to_known_hosts_only() {
    check(
        "host:h1@default blobs known
         host:h1@default blobs unknown
         reg@default blobs known
         admin@default blobs known",
        expect![[r#"
            host:h1@default blobs known => ()
            host:h1@default blobs unknown => no: build contexts are for registered hosts: use the host's credential
            reg@default blobs known => no: build contexts are for registered hosts: use the host's credential
            admin@default blobs known => no: build contexts are for registered hosts: use the host's credential
        "#]],
    );
}

#[test]
fn a_hello_speaks_for_its_own_host_or_registers_a_credential() {
    check(
        "host:h1@default hello h1
         host:h1@default hello h2
         reg@default hello h3 ok
         reg@default hello h3
         reg@default hello h3 nothex
         local hello h4 ok
         admin@default hello h5 ok
         reg@default hello hôst ok
         reg@default hello ../x ok",
        expect![[r#"
            host:h1@default hello h1 => refresh
            host:h1@default hello h2 => refused (audit): this credential belongs to another host, not h2
            reg@default hello h3 ok => register abab reclaim=false
            reg@default hello h3 => refused: registering needs the hash of the agent's credential in its hello: upgrade the agent
            reg@default hello h3 nothex => refused: registering needs the hash of the agent's credential in its hello: upgrade the agent
            local hello h4 ok => register abab reclaim=true
            admin@default hello h5 ok => refused: only agents may connect
            reg@default hello hôst ok => refused: invalid host id: 1-128 letters, digits, '-', '_' or '.'
            reg@default hello ../x ok => refused: invalid host id: 1-128 letters, digits, '-', '_' or '.'
        "#]],
    );
}

#[test]
fn host_ids_are_plain_names() {
    for ok in ["0123abcdef", "node-1.eu_west", &"a".repeat(128)] {
        assert!(valid_host_id(ok), "{ok}");
    }
    for bad in [
        "",
        "hôst",
        "日本",
        "a/b",
        "../x",
        "a b",
        "x\n",
        &"a".repeat(129),
    ] {
        assert!(!valid_host_id(bad), "{bad:?}");
    }
}

#[test]
fn a_throttle_lets_one_event_per_key_through_per_period() {
    let mut t = Throttle::default();
    assert!(t.allow("h1", 1_000, 60_000));
    assert!(!t.allow("h1", 2_000, 60_000));
    assert!(t.allow("h2", 2_000, 60_000));
    assert!(!t.allow("h1", 60_999, 60_000));
    assert!(t.allow("h1", 61_000, 60_000));
}

#[test]
fn only_admins_make_and_remove_environments() {
    check(
        "
        admin@default environments
        member@default environments
        member@team environments
        reg@default environments
        host:h1@default environments
        ",
        expect![[r#"
            admin@default environments => ()
            member@default environments => no: token 'member' may not create or remove environments: that needs an admin
            member@team environments => no: token 'member' may not create or remove environments: that needs an admin
            reg@default environments => no: token 'reg' may not create or remove environments: that needs an admin
            host:h1@default environments => no: token 'host:h1' may not create or remove environments: that needs an admin
        "#]],
    );
}
