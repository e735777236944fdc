use super::*;

fn config() -> Config {
    Config {
        url: "ldap://127.0.0.1:3389".into(),
        starttls: false,
        ca_pem: None,
        bind_dn: "cn=drover,dc=example,dc=org".into(),
        bind_password: "s3cret-service".into(),
        user_base: "ou=people,dc=example,dc=org".into(),
        user_filter: "(uid={username})".into(),
        group_base: Some("ou=groups,dc=example,dc=org".into()),
        group_filter: Some("(member={dn})".into()),
    }
}

#[test]
fn escapes_filter_values() {
    assert_eq!(escape_filter_value("alice"), "alice");
    assert_eq!(escape_filter_value("*"), "\\2a");
    assert_eq!(escape_filter_value("a*)(uid=*"), "a\\2a\\29\\28uid=\\2a");
    assert_eq!(escape_filter_value("back\\slash"), "back\\5cslash");
    assert_eq!(escape_filter_value("nul\0byte"), "nul\\00byte");
    assert_eq!(escape_filter_value("Zoë 名前"), "Zoë 名前");
    assert_eq!(escape_filter_value(""), "");
}

#[test]
fn renders_templates_in_one_pass() {
    assert_eq!(
        render_filter("(uid={username})", "alice", ""),
        "(uid=alice)"
    );
    assert_eq!(
        render_filter("(&(objectClass=user)(sAMAccountName={username}))", "*", ""),
        "(&(objectClass=user)(sAMAccountName=\\2a))"
    );
    assert_eq!(
        render_filter(
            "(|(member={dn})(memberUid={username}))",
            "bob",
            "cn=Bob (ops),ou=people"
        ),
        "(|(member=cn=Bob \\28ops\\29,ou=people)(memberUid=bob))"
    );
    // A value that reads like a placeholder is not filled again.
    assert_eq!(
        render_filter("(&(uid={username})(x={dn}))", "{dn}", "D"),
        "(&(uid={dn})(x=D))"
    );
    assert_eq!(render_filter("(cn=a{b)", "u", "d"), "(cn=a{b)");
}

#[test]
fn usernames() {
    assert!(!valid_username(""));
    assert!(valid_username("a"));
    assert!(valid_username(&"a".repeat(MAX_USERNAME)));
    assert!(!valid_username(&"a".repeat(MAX_USERNAME + 1)));
    // Bytes, not characters: 128 two-byte characters fit, 129 do not.
    assert!(valid_username(&"é".repeat(128)));
    assert!(!valid_username(&"é".repeat(129)));
}

#[test]
fn checks_filters() {
    let user = &["{username}"][..];
    assert_eq!(check_filter("(uid={username})", user), Ok(()));
    assert_eq!(
        check_filter(
            "(&(objectClass=person)(|(uid={username})(mail={username})))",
            user
        ),
        Ok(())
    );
    let refused = |f: &str| check_filter(f, user).err().unwrap_or_default();
    assert_eq!(refused(""), "is empty");
    assert_eq!(
        refused("uid={username}"),
        "must be enclosed in parentheses, like (uid={username})"
    );
    assert_eq!(refused("(&(uid={username})"), "has a '(' without its ')'");
    assert_eq!(refused("(uid={username}))"), "has a ')' without its '('");
    assert_eq!(refused("(uid=x))(()"), "has a ')' without its '('");
    assert_eq!(refused("(uid=alice)"), "must contain {username}");
    assert!(refused("(uid={user})").starts_with("has an unknown placeholder"));
    assert_eq!(
        refused("(uid{username})"),
        "is not a valid LDAP filter (RFC 4515)"
    );
    let group = &["{dn}", "{username}"][..];
    assert_eq!(check_filter("(member={dn})", group), Ok(()));
    assert_eq!(check_filter("(memberUid={username})", group), Ok(()));
    assert_eq!(
        check_filter("(cn=ops)", group),
        Err("must contain {dn} or {username}".into())
    );
}

#[test]
fn checks_configs() {
    const SHAPE: &str = "must be ldap://HOST[:PORT] or ldaps://HOST[:PORT]";
    type Change = fn(&mut Config);
    let cases: Vec<(Change, String)> = vec![
        (|_| {}, "ok".into()),
        (|c| c.url = "ldaps://dc1.example.org".into(), "ok".into()),
        (|c| c.starttls = true, "ok".into()),
        (
            |c| {
                c.group_base = None;
                c.group_filter = None;
            },
            "ok".into(),
        ),
        (
            |c| c.url = "http://dc1.example.org".into(),
            format!("url: scheme http: {SHAPE}"),
        ),
        (
            |c| c.url = "dc1.example.org:389".into(),
            format!("url: scheme dc1.example.org: {SHAPE}"),
        ),
        (
            |c| c.url = "ldap://".into(),
            format!("url: has no host: {SHAPE}"),
        ),
        (
            |c| c.url = "ldap://h/dc=example,dc=org?uid".into(),
            format!("url: {SHAPE}"),
        ),
        (
            |c| c.url = "not a url".into(),
            "url: relative URL without a base".into(),
        ),
        (
            |c| {
                c.url = "ldaps://h".into();
                c.starttls = true;
            },
            "starttls: is for ldap:// URLs (ldaps:// is TLS from the start)".into(),
        ),
        (
            |c| c.ca_pem = Some("x".into()),
            "ca_pem: a CA is only used with ldaps:// or StartTLS".into(),
        ),
        (
            |c| {
                c.starttls = true;
                c.ca_pem = Some("no pem here".into());
            },
            "ca_pem: holds no CERTIFICATE".into(),
        ),
        (|c| c.bind_dn = " ".into(), "bind_dn: is empty".into()),
        (
            |c| c.bind_password.clear(),
            "bind_password: is empty".into(),
        ),
        (|c| c.user_base.clear(), "user_base: is empty".into()),
        (
            |c| c.user_filter = "(uid=*)".into(),
            "user_filter: must contain {username}".into(),
        ),
        (
            |c| c.group_filter = Some("(member={dn}".into()),
            "group_filter: has a '(' without its ')'".into(),
        ),
        (
            |c| c.group_filter = None,
            "group_filter: is needed with group_base".into(),
        ),
        (
            |c| c.group_base = None,
            "group_base: is needed with group_filter".into(),
        ),
        (
            |c| c.group_base = Some("".into()),
            "group_base: is empty".into(),
        ),
    ];
    for (i, (change, want)) in cases.into_iter().enumerate() {
        let mut c = config();
        change(&mut c);
        let got = match c.check() {
            Ok(()) => "ok".into(),
            Err(Error::Config { field, reason }) => format!("{field}: {reason}"),
            Err(e) => format!("unexpected {e}"),
        };
        assert_eq!(got, want, "case {i}: {c:?}");
    }
}

#[test]
fn debug_hides_the_bind_password() {
    let c = config();
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cret-service"), "{shown}");
    assert!(shown.contains("bind_password: \"***\""), "{shown}");
    assert!(shown.contains("cn=drover,dc=example,dc=org"), "{shown}");
}

#[test]
fn config_round_trips_through_serde() {
    let c = config();
    let Ok(json) = serde_json::to_string(&c) else {
        panic!("serialize");
    };
    let back: Config = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, c);
    // Optional fields may be left out.
    let minimal = r#"{"url":"ldap://h","starttls":false,"bind_dn":"cn=a","bind_password":"p",
        "user_base":"dc=x","user_filter":"(uid={username})"}"#;
    let m: Config = serde_json::from_str(minimal).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((m.ca_pem, m.group_base, m.group_filter), (None, None, None));
}

#[test]
fn normalizes_dns() {
    assert_eq!(
        normalize_dn("CN=Ops, OU=Groups,dc=Example , dc=org"),
        "cn=ops,ou=groups,dc=example,dc=org"
    );
    assert_eq!(
        normalize_dn("cn=Smith\\, John,ou=People"),
        "cn=smith\\, john,ou=people"
    );
    // An escaped trailing space belongs to the value.
    assert_eq!(normalize_dn("cn=a\\ ,dc=x"), "cn=a\\ ,dc=x");
    assert_eq!(normalize_dn("cn=a+sn=B,dc=x"), "cn=a+sn=b,dc=x");
    assert_eq!(normalize_dn(""), "");
}

#[test]
fn user_account_control() {
    let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(!account_disabled(&v(&["512"])));
    assert!(account_disabled(&v(&["514"])));
    assert!(account_disabled(&v(&["2"])));
    assert!(!account_disabled(&v(&["66048"])));
    assert!(account_disabled(&v(&["66050"])));
    assert!(account_disabled(&v(&["garbage"])));
    assert!(!account_disabled(&v(&[])));
}

#[tokio::test]
async fn refuses_before_connecting() {
    // Nothing listens on port 1: each of these must be refused without trying.
    let mut c = config();
    c.url = "ldap://127.0.0.1:1".into();
    assert!(matches!(
        authenticate(&c, "alice", "").await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        authenticate(&c, "", "pw").await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(
        authenticate(&c, &"a".repeat(MAX_USERNAME + 1), "pw").await,
        Err(Error::InvalidCredentials)
    ));
    assert!(matches!(lookup(&c, "").await, Ok(None)));
    c.user_filter = "(uid=alice)".into();
    assert!(matches!(
        authenticate(&c, "alice", "pw").await,
        Err(Error::Config {
            field: "user_filter",
            ..
        })
    ));
}

#[tokio::test]
async fn an_unreachable_directory_is_said_so() {
    let mut c = config();
    c.url = "ldap://127.0.0.1:1".into();
    match authenticate(&c, "alice", "pw").await {
        Err(Error::Unreachable(why)) => assert!(why.contains("127.0.0.1:1"), "{why}"),
        other => panic!("{other:?}"),
    }
}
