//! `authenticate` and `lookup` against a real slapd on loopback (see `support`).

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ldap::{Config, Error, Identity, authenticate, lookup};
use ldap3::Mod;
use support::{ALICE, BOB, DEVS, OPS, SUFFIX, Slapd, WEB};

fn identity(username: &str, dn: &str, groups: &[&str]) -> Identity {
    Identity {
        username: username.into(),
        dn: dn.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn refused(r: Result<Identity, Error>) -> bool {
    matches!(r, Err(Error::InvalidCredentials))
}

#[tokio::test]
async fn login_gives_the_user_and_their_groups() {
    let s = Slapd::start();
    let cfg = s.config();
    assert_eq!(
        authenticate(&cfg, "alice", "alice-pw").await.ok(),
        Some(identity("alice", ALICE, &[DEVS, OPS])),
        "{}",
        s.log()
    );
    assert_eq!(
        authenticate(&cfg, "bob", "bob-pw").await.ok(),
        Some(identity("bob", BOB, &[DEVS]))
    );
    // Groups found by username as well as by DN (posixGroup memberUid).
    let mut both = cfg.clone();
    both.group_filter = Some("(|(member={dn})(memberUid={username}))".into());
    assert_eq!(
        authenticate(&both, "bob", "bob-pw").await.ok(),
        Some(identity("bob", BOB, &[DEVS, WEB]))
    );
    // Without groups configured: none.
    let mut none = cfg.clone();
    none.group_base = None;
    none.group_filter = None;
    assert_eq!(
        authenticate(&none, "alice", "alice-pw").await.ok(),
        Some(identity("alice", ALICE, &[]))
    );
}

#[tokio::test]
async fn wrong_password_unknown_user_and_empty_password_are_refused_alike() {
    let s = Slapd::start();
    let cfg = s.config();
    let wrong = authenticate(&cfg, "alice", "bob-pw").await;
    let unknown = authenticate(&cfg, "mallory", "alice-pw").await;
    let empty = authenticate(&cfg, "alice", "").await;
    assert!(refused(wrong), "wrong password");
    assert!(refused(unknown), "unknown user");
    assert!(refused(empty), "empty password");
    assert_eq!(
        Error::InvalidCredentials.to_string(),
        "invalid username or password"
    );
    // Filter metacharacters in a username are escaped, not obeyed: `*` matches no one
    // (unescaped it would match both users).
    assert!(refused(authenticate(&cfg, "*", "alice-pw").await));
    assert!(refused(
        authenticate(&cfg, "alice)(uid=*", "alice-pw").await
    ));
    assert_eq!(lookup(&cfg, "*").await.ok(), Some(None));
}

#[tokio::test]
async fn a_user_removed_from_a_group_loses_it() {
    let s = Slapd::start();
    let cfg = s.config();
    assert_eq!(
        lookup(&cfg, "alice").await.ok(),
        Some(Some(identity("alice", ALICE, &[DEVS, OPS])))
    );
    // bob takes over ops (a groupOfNames may not be left without members).
    let mut admin = s.admin().await;
    admin
        .modify(
            OPS,
            vec![
                Mod::Add("member", HashSet::from([BOB])),
                Mod::Delete("member", HashSet::from([ALICE])),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("remove alice from ops");
    assert_eq!(
        lookup(&cfg, "alice").await.ok(),
        Some(Some(identity("alice", ALICE, &[DEVS])))
    );
    assert_eq!(
        authenticate(&cfg, "alice", "alice-pw").await.ok(),
        Some(identity("alice", ALICE, &[DEVS]))
    );
    assert_eq!(
        lookup(&cfg, "bob").await.ok(),
        Some(Some(identity("bob", BOB, &[DEVS, OPS])))
    );
}

#[tokio::test]
async fn a_deleted_user_is_gone() {
    let s = Slapd::start();
    let cfg = s.config();
    assert!(matches!(lookup(&cfg, "bob").await, Ok(Some(_))));
    let mut admin = s.admin().await;
    admin
        .delete(BOB)
        .await
        .and_then(|r| r.success())
        .expect("delete bob");
    assert_eq!(lookup(&cfg, "bob").await.ok(), Some(None));
    assert!(refused(authenticate(&cfg, "bob", "bob-pw").await));
    assert_eq!(lookup(&cfg, "nobody").await.ok(), Some(None));
}

#[tokio::test]
async fn a_disabled_account_is_gone() {
    let s = Slapd::start();
    let cfg = s.config();
    let mut admin = s.admin().await;
    admin
        .modify(
            ALICE,
            vec![Mod::Replace("userAccountControl", HashSet::from(["514"]))],
        )
        .await
        .and_then(|r| r.success())
        .expect("disable alice");
    assert_eq!(lookup(&cfg, "alice").await.ok(), Some(None));
    assert!(refused(authenticate(&cfg, "alice", "alice-pw").await));
    // bob (512: a normal, enabled account) is untouched.
    assert!(matches!(lookup(&cfg, "bob").await, Ok(Some(_))));
}

#[tokio::test]
async fn directory_side_problems_say_what_is_wrong() {
    let s = Slapd::start();
    let base = s.config();

    let mut ambiguous = base.clone();
    ambiguous.user_filter = "(|(uid={username})(sn={username}))".into();
    match lookup(&ambiguous, "Example").await {
        Err(Error::Directory(why)) => assert!(why.contains("ambiguous"), "{why}"),
        other => panic!("{other:?}"),
    }
    match authenticate(&ambiguous, "Example", "alice-pw").await {
        Err(Error::Directory(why)) => assert!(why.contains("ambiguous"), "{why}"),
        other => panic!("{other:?}"),
    }

    let mut service = base.clone();
    service.bind_password = "wrong".into();
    match authenticate(&service, "alice", "alice-pw").await {
        Err(Error::Directory(why)) => assert!(why.contains("service account"), "{why}"),
        other => panic!("{other:?}"),
    }

    let mut missing = base.clone();
    missing.user_base = format!("ou=nowhere,{SUFFIX}");
    match lookup(&missing, "alice").await {
        Err(Error::Directory(why)) => assert!(why.contains("does not exist"), "{why}"),
        other => panic!("{other:?}"),
    }
}

fn tls(s: &Slapd, url: String, starttls: bool, ca_pem: Option<&str>) -> Config {
    Config {
        url,
        starttls,
        ca_pem: ca_pem.map(str::to_string),
        ..s.config()
    }
}

#[tokio::test]
async fn starttls_with_the_configured_ca() {
    let s = Slapd::start();
    let plain = s.config().url;
    let good = tls(&s, plain.clone(), true, Some(&s.certs.ca_pem));
    assert_eq!(
        authenticate(&good, "alice", "alice-pw").await.ok(),
        Some(identity("alice", ALICE, &[DEVS, OPS])),
        "{}",
        s.log()
    );
    for bad in [
        tls(&s, plain.clone(), true, Some(&s.certs.other_ca_pem)),
        tls(&s, plain.clone(), true, None),
    ] {
        match lookup(&bad, "alice").await {
            Err(Error::Unreachable(why)) => assert!(why.contains("certificate"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn ldaps_with_the_configured_ca() {
    let s = Slapd::start();
    let good = tls(&s, s.ldaps_url(), false, Some(&s.certs.ca_pem));
    assert_eq!(
        authenticate(&good, "bob", "bob-pw").await.ok(),
        Some(identity("bob", BOB, &[DEVS])),
        "{}",
        s.log()
    );
    let bad = tls(&s, s.ldaps_url(), false, Some(&s.certs.other_ca_pem));
    match authenticate(&bad, "bob", "bob-pw").await {
        Err(Error::Unreachable(why)) => assert!(why.contains("certificate"), "{why}"),
        other => panic!("{other:?}"),
    }
    // The name in the URL is checked against the certificate too.
    let mut renamed = good.clone();
    renamed.url = format!("ldaps://127.0.0.2:{}", s.tls_port);
    assert!(matches!(
        lookup(&renamed, "bob").await,
        Err(Error::Unreachable(_))
    ));
}

#[tokio::test]
async fn a_directory_that_never_answers_does_not_hold_a_login() {
    // Accepts connections (the kernel's backlog does) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = silent.local_addr().expect("addr").port();
    let cfg = Config {
        url: format!("ldap://127.0.0.1:{port}"),
        starttls: false,
        ca_pem: None,
        bind_dn: "cn=drover,dc=example,dc=org".into(),
        bind_password: "service-pw".into(),
        user_base: "dc=example,dc=org".into(),
        user_filter: "(uid={username})".into(),
        group_base: None,
        group_filter: None,
    };
    let started = Instant::now();
    match authenticate(&cfg, "alice", "alice-pw").await {
        Err(Error::Unreachable(why)) => assert!(why.contains("no answer"), "{why}"),
        other => panic!("{other:?}"),
    }
    let took = started.elapsed();
    assert!(
        took >= ldap::TIMEOUT && took < ldap::TIMEOUT + Duration::from_secs(2),
        "{took:?}"
    );
}
