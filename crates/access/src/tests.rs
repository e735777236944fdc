//! Data-driven tests: each fixture line is a question, the expectation one answer per line.
//!
//! ```text
//! CALLER env|read|write|exec ENV | environments | routes user|agent | blobs known|unknown | hello HOST [HASH]
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
        user: None,
        source: String::new(),
    }
}

fn answer<T: std::fmt::Debug>(r: Result<T, impl std::fmt::Display>) -> String {
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("no: {e}"),
    }
}

/// What a caller's token may do as a user (tokens from before users carry their identity).
fn as_user(c: &Caller, action: Action, env: Option<&str>) -> String {
    match c.identity(None) {
        Ok(who) => format!("{:?}", authorize(&who, action, env, true)),
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
        user: matches!(kind, "apikey" | "session").then(|| "ann".to_string()),
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
                "env" | "read" => as_user(&c, Action::Read, Some(arg)),
                "write" => as_user(&c, Action::Deploy, Some(arg)),
                "exec" => as_user(&c, Action::Exec, Some(arg)),
                "routes" => answer(c.may_use(if arg == "user" {
                    Routes::User
                } else {
                    Routes::Agent
                })),
                "blobs" => answer(c.may_fetch_blobs(arg == "known")),
                "environments" => as_user(&c, Action::Admin, None),
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
         auth apikey
         auth apikey:unusable
         auth session:unusable
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
            auth apikey => ApiKey env=default host=None
            auth apikey:unusable => Unauthenticated("token 't1' has expired")
            auth session:unusable => Unauthenticated("session expired: run `drover login`")
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
            admin@default env prod => Allow
            member@default env default => Allow
            member@default env prod => Hidden
            reg@default env default => no: agent tokens and host credentials may not use the API
            host:h1@default env default => no: agent tokens and host credentials may not use the API
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
            admin@default exec prod => Allow
            member@default exec default => Allow
            member@default read default => Allow
            member@default write default => Allow
            member@default exec prod => Hidden
            member@prod read default => Hidden
            reg@default exec default => no: agent tokens and host credentials may not use the API
            host:h1@default exec default => no: agent tokens and host credentials may not use the API
            local exec default => no: agent tokens and host credentials may not use the API
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
            admin@default environments => Allow
            member@default environments => Deny("user 'member' may not administer Drover: that needs an admin")
            member@team environments => Deny("user 'member' may not administer Drover: that needs an admin")
            reg@default environments => no: agent tokens and host credentials may not use the API
            host:h1@default environments => no: agent tokens and host credentials may not use the API
        "#]],
    );
}

fn identity(spec: &str) -> Identity {
    // `admin`, `USER:ROLE@ENV[,ROLE@ENV...]`, optionally `/SCOPE` for a narrowed API key.
    let (spec, scope) = match spec.split_once('/') {
        Some((s, scope)) => (s, Some(scope.to_string())),
        None => (spec, None),
    };
    if spec == "admin" {
        return Identity {
            user: "root".into(),
            admin: true,
            roles: Default::default(),
            scope,
        };
    }
    let (user, roles) = spec.split_once(':').unwrap_or((spec, ""));
    let roles = roles
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (role, env) = r.split_once('@').expect("ROLE@ENV");
            (env.to_string(), Role::parse(role).expect("role"))
        })
        .collect();
    Identity {
        user: user.into(),
        admin: false,
        roles,
        scope,
    }
}

/// `IDENTITY ACTION [ENV|-] [missing]` → the decision.
fn check_authorize(fixture: &str, expect: Expect) {
    let mut out = String::new();
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let who = identity(w[0]);
        let action = match w[1] {
            "public" => Action::Public,
            "agent" => Action::Agent,
            "own" => Action::Own,
            "admin" => Action::Admin,
            "read" => Action::Read,
            "read-hosts" => Action::ReadHosts,
            "deploy" => Action::Deploy,
            "exec" => Action::Exec,
            "hosts" => Action::Hosts,
            "tokens" => Action::Tokens,
            "networks" => Action::Networks,
            "registries" => Action::Registries,
            "certs" => Action::Certs,
            "members" => Action::Members,
            "metrics" => Action::Metrics,
            "govern" => Action::Govern,
            other => panic!("unknown action {other}"),
        };
        let env = w.get(2).copied().filter(|e| *e != "-");
        let exists = w.get(3) != Some(&"missing");
        let d = authorize(&who, action, env, exists);
        out.push_str(&format!("{line} => {d:?}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn the_role_table() {
    let mut out = String::from("action       owner member restricted read-only\n");
    for action in [
        Action::Read,
        Action::ReadHosts,
        Action::Deploy,
        Action::Exec,
        Action::Hosts,
        Action::Tokens,
        Action::Networks,
        Action::Registries,
        Action::Certs,
        Action::Members,
        Action::Govern,
        Action::Admin,
        Action::Own,
    ] {
        let mut row = format!("{:<12}", format!("{action:?}"));
        for role in Role::ALL {
            row.push_str(&format!(
                " {:<width$}",
                if role_allows(role, action) {
                    "yes"
                } else {
                    "-"
                },
                width = role.as_str().len()
            ));
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    expect![[r#"
        action       owner member restricted read-only
        Read         yes   yes    yes        yes
        ReadHosts    yes   yes    -          yes
        Deploy       yes   yes    yes        -
        Exec         yes   yes    yes        -
        Hosts        yes   yes    -          -
        Tokens       yes   yes    -          -
        Networks     yes   yes    -          -
        Registries   yes   yes    -          -
        Certs        yes   yes    -          -
        Members      yes   yes    -          -
        Govern       yes   -      -          -
        Admin        -     -      -          -
        Own          yes   yes    yes        yes
    "#]]
    .assert_eq(&out);
}

#[test]
fn users_act_by_their_role_in_the_route_environment() {
    check_authorize(
        "admin deploy dev
         admin govern dev
         admin admin -
         admin/dev deploy dev
         admin/dev deploy prod
         admin/dev admin -
         admin deploy dev missing
         ann:owner@dev govern dev
         ann:owner@dev deploy prod
         ann:owner@dev admin -
         bob:member@dev hosts dev
         bob:member@dev govern dev
         bob:member@dev members dev
         cat:restricted@dev deploy dev
         cat:restricted@dev exec dev
         cat:restricted@dev hosts dev
         cat:restricted@dev read-hosts dev
         cat:restricted@dev tokens dev
         dan:read-only@dev read dev
         dan:read-only@dev exec dev
         dan:read-only@dev deploy dev
         dan:read-only@dev,owner@prod govern prod
         dan:read-only@dev,owner@prod/dev govern prod
         admin metrics -
         admin/#metrics metrics -
         admin/#metrics read dev
         ann:owner@dev metrics -
         eve deploy dev
         eve deploy dev missing
         eve own -
         eve public -
         eve agent -
         eve read -",
        expect![[r#"
            admin deploy dev => Allow
            admin govern dev => Allow
            admin admin - => Allow
            admin/dev deploy dev => Allow
            admin/dev deploy prod => Hidden
            admin/dev admin - => Deny("this API key is limited to environment 'dev': administering Drover needs an unlimited one")
            admin deploy dev missing => Hidden
            ann:owner@dev govern dev => Allow
            ann:owner@dev deploy prod => Hidden
            ann:owner@dev admin - => Deny("user 'ann' may not administer Drover: that needs an admin")
            bob:member@dev hosts dev => Allow
            bob:member@dev govern dev => Deny("user 'bob' is member in environment 'dev' and may not change members or the container policy: that needs owner")
            bob:member@dev members dev => Allow
            cat:restricted@dev deploy dev => Allow
            cat:restricted@dev exec dev => Allow
            cat:restricted@dev hosts dev => Deny("user 'cat' is restricted in environment 'dev' and may not manage hosts: that needs owner or member")
            cat:restricted@dev read-hosts dev => Deny("user 'cat' is restricted in environment 'dev' and may not see hosts: that needs owner or member or read-only")
            cat:restricted@dev tokens dev => Deny("user 'cat' is restricted in environment 'dev' and may not manage registration tokens: that needs owner or member")
            dan:read-only@dev read dev => Allow
            dan:read-only@dev exec dev => Deny("user 'dan' is read-only in environment 'dev' and may not run commands in containers: that needs owner or member or restricted")
            dan:read-only@dev deploy dev => Deny("user 'dan' is read-only in environment 'dev' and may not change stacks: that needs owner or member or restricted")
            dan:read-only@dev,owner@prod govern prod => Allow
            dan:read-only@dev,owner@prod/dev govern prod => Hidden
            admin metrics - => Allow
            admin/#metrics metrics - => Allow
            admin/#metrics read dev => Hidden
            ann:owner@dev metrics - => Deny("'ann' may not read metrics: that needs an admin or an API key made with `drover apikey create --metrics`")
            eve deploy dev => Hidden
            eve deploy dev missing => Hidden
            eve own - => Allow
            eve public - => Allow
            eve agent - => Deny("this route is for agents")
            eve read - => Deny("this route names no environment")
        "#]],
    );
}

#[test]
fn policy_binds_everyone_but_owners() {
    let mut out = String::new();
    for spec in [
        "admin",
        "ann:owner@dev",
        "bob:member@dev",
        "cat:restricted@dev",
    ] {
        out.push_str(&format!(
            "{spec} => {}\n",
            identity(spec).policy_applies("dev")
        ));
    }
    expect![[r#"
        admin => false
        ann:owner@dev => false
        bob:member@dev => true
        cat:restricted@dev => true
    "#]]
    .assert_eq(&out);
}

#[test]
fn every_route_is_in_the_table_once() {
    let mut seen = std::collections::HashSet::new();
    for (m, p, _) in ROUTES {
        assert!(seen.insert((m, p)), "{m} {p} twice");
        assert!(action_of(m, p).is_some());
    }
    assert_eq!(action_of("GET", "/v1/nowhere"), None);
    assert_eq!(
        env_of(
            "/v1/environments/{env}/stacks",
            "/v1/environments/dev/stacks"
        ),
        Some("dev")
    );
    assert_eq!(env_of("/v1/environments", "/v1/environments"), None);
}

#[test]
fn logins_are_limited_per_user_and_per_address() {
    let mut l = LoginLimiter::default();
    let mut out = String::new();
    for i in 0..limit::USER_FAILURES {
        l.failed("ann", "10.0.0.1", 1000 + u64::from(i));
    }
    out.push_str(&format!(
        "ann after 5: {:?}\n",
        l.check("ann", "10.0.0.2", 2000).map_err(|e| e.to_string())
    ));
    out.push_str(&format!(
        "bob same address: {:?}\n",
        l.check("bob", "10.0.0.1", 2000).map_err(|e| e.to_string())
    ));
    out.push_str(&format!(
        "ann after window: {:?}\n",
        l.check("ann", "10.0.0.2", 1000 + limit::WINDOW_MS)
            .map_err(|e| e.to_string())
    ));
    for i in 0..limit::ADDRESS_FAILURES {
        l.failed(&format!("u{i}"), "10.0.0.9", 5000);
    }
    out.push_str(&format!(
        "anyone from .9: {:?}\n",
        l.check("zed", "10.0.0.9", 6000).map_err(|e| e.to_string())
    ));
    l.succeeded("ann");
    out.push_str(&format!(
        "ann after success: {:?}\n",
        l.check("ann", "10.0.0.2", 2000).map_err(|e| e.to_string())
    ));
    expect![[r#"
        ann after 5: Err("too many failed logins for user 'ann': retry in 299 s")
        bob same address: Ok(())
        ann after window: Ok(())
        anyone from .9: Err("too many failed logins from 10.0.0.9: retry in 299 s")
        ann after success: Ok(())
    "#]]
    .assert_eq(&out);
}

#[test]
fn api_keys_reach_no_further_than_the_token_that_makes_them() {
    let mut out = String::new();
    for (spec, env, metrics, exists) in [
        ("admin", None, false, true),
        ("admin", Some("dev"), false, true),
        ("admin", Some("gone"), false, false),
        ("admin", None, true, true),
        ("admin", Some("dev"), true, true),
        ("admin/dev", None, true, true),
        ("admin/dev", None, false, true),
        ("bob:member@dev", Some("prod"), false, true),
        ("bob:member@dev", None, true, true),
    ] {
        let r = key_scope(&identity(spec), env, metrics, exists);
        out.push_str(&format!("{spec} env={env:?} metrics={metrics} => {r:?}\n"));
    }
    expect![[r##"
        admin env=None metrics=false => Ok("*")
        admin env=Some("dev") metrics=false => Ok("dev")
        admin env=Some("gone") metrics=false => Err(Hidden("gone"))
        admin env=None metrics=true => Ok("#metrics")
        admin env=Some("dev") metrics=true => Err(Metrics)
        admin/dev env=None metrics=true => Err(Metrics)
        admin/dev env=None metrics=false => Ok("dev")
        bob:member@dev env=Some("prod") metrics=false => Err(Hidden("prod"))
        bob:member@dev env=None metrics=true => Err(Metrics)
    "##]]
    .assert_eq(&out);
}
