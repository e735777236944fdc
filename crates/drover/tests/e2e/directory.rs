//! Directory users (LDAP) sign in, get their groups' roles, and lose them when the
//! directory changes, against a real slapd on loopback.

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::*;

#[path = "../../../ldap/tests/support/mod.rs"]
#[allow(dead_code)]
mod slapd;

#[test]
fn directory_users_sign_in_get_group_roles_and_lose_them() {
    let s = slapd::Slapd::start();
    let cfg = s.config();
    let d = Drover::up();
    let admin_cfg = d.dir.path().join("admin.json");
    let as_admin = |args: &[&str], input: &str| {
        let mut all = vec!["--token", d.token.as_str()];
        all.extend(args);
        d.cli_as(&admin_cfg, &all, input)
    };
    let group_base = cfg.group_base.clone().unwrap_or_default();
    let group_filter = cfg.group_filter.clone().unwrap_or_default();
    let r = as_admin(
        &[
            "auth",
            "ldap",
            "set",
            "--url",
            &cfg.url,
            "--bind-dn",
            &cfg.bind_dn,
            "--bind-password-stdin",
            "--user-base",
            &cfg.user_base,
            "--user-filter",
            &cfg.user_filter,
            "--group-base",
            &group_base,
            "--group-filter",
            &group_filter,
        ],
        &format!("{}\n", cfg.bind_password),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown = d.ok(&["auth", "ldap", "show"]);
    assert!(!shown.contains(&cfg.bind_password), "{shown}");
    let (_, body) = api(&d.url, "GET", "/v1/auth/ldap", Some(&d.token), None);
    assert!(!body.contains(&cfg.bind_password), "{body}");
    let tested = d.ok(&["auth", "ldap", "test", "alice"]);
    assert!(tested.contains(slapd::OPS), "{tested}");

    // A directory group is a member of an environment (its DN in any case and spacing).
    d.ok(&[
        "env",
        "member",
        "add",
        "default",
        "group:CN=ops, OU=groups,DC=example,DC=org",
        "owner",
    ]);
    let alice = d.dir.path().join("alice.json");
    let login = |password: &str| {
        d.cli_as(
            &alice,
            &["login", &d.url, "--username", "alice", "--password-stdin"],
            &format!("{password}\n"),
        )
    };
    let r = login("wrong");
    assert!(
        r.stderr.contains("wrong user name or password"),
        "{}",
        r.stderr
    );
    let r = login("alice-pw");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let who = d.cli_as(&alice, &["whoami"], "");
    assert!(who.stdout.contains("default      owner"), "{}", who.stdout);
    let key = d
        .cli_as(&alice, &["apikey", "create"], "")
        .stdout
        .trim()
        .to_string();
    assert!(key.starts_with("drv_"), "{key}");
    let with_key = |args: &[&str]| {
        let mut all = vec!["--token", key.as_str()];
        all.extend(args);
        d.cli_as(&d.dir.path().join("key.json"), &all, "")
    };
    assert_eq!(with_key(&["stack", "ls"]).code, 0);
    assert!(d.ok(&["user", "ls"]).contains("ldap"));

    // Moved out of the group in the directory: the role goes within the refresh, for the
    // session and the key alike.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut root = s.admin().await;
        root.modify(
            slapd::OPS,
            vec![
                ldap3::Mod::Add("member", HashSet::from([slapd::BOB])),
                ldap3::Mod::Delete("member", HashSet::from([slapd::ALICE])),
            ],
        )
        .await
        .and_then(|r| r.success())
        .expect("move alice out of ops");
    });
    wait_for(
        Duration::from_secs(60),
        "alice to lose the group's role",
        || {
            let r = d.cli_as(&alice, &["stack", "ls"], "");
            (r.code != 0 && r.stderr.contains("environment 'default' does not exist")).then_some(())
        },
    );
    let r = with_key(&["stack", "ls"]);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);

    // No directory any more: its users are refused at once.
    d.ok(&["auth", "ldap", "rm"]);
    let r = d.cli_as(&alice, &["whoami"], "");
    assert!(
        r.stderr.contains("no longer exists or is disabled"),
        "{}",
        r.stderr
    );
    let log = d.log();
    assert!(!log.contains(&cfg.bind_password) && !log.contains("alice-pw"));
}
