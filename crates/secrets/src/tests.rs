//! Fixture tests: a compose file, what is stored (`stored KIND NAME vN [stack=S]`) and what
//! was sent (`sent KIND KEY same|changed`) → what a deploy writes and the versions its
//! services run, or why it is refused.

use super::*;
use expect_test::{Expect, expect};

fn project(yaml: &str) -> Project {
    let vars = BTreeMap::new();
    let input = compose::Input {
        file_name: "c.yml",
        text: yaml,
        project_name: Some("shop"),
        default_name: "shop",
        variables: &vars,
        profiles: &[],
        base_dir: None,
        files: &compose::NoFiles,
        overrides: &[],
    };
    match compose::load(&input) {
        Ok(l) => l.project,
        Err(e) => panic!("fixture: {e}"),
    }
}

fn kind(word: &str) -> FileKind {
    if word == "config" {
        FileKind::Config
    } else {
        FileKind::Secret
    }
}

fn check(yaml: &str, state: &str, expected: Expect) {
    let mut p = project(yaml);
    let mut stored = BTreeMap::new();
    let mut sent = BTreeMap::new();
    for line in state.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "stored" => {
                let version = w[3].trim_start_matches('v').parse().unwrap_or(0);
                let stack = w
                    .get(4)
                    .and_then(|s| s.strip_prefix("stack="))
                    .map(str::to_owned);
                stored.insert((kind(w[1]), w[2].to_owned()), Stored { stack, version });
            }
            "sent" => {
                sent.insert((kind(w[1]), w[2].to_owned()), w[3] == "changed");
            }
            other => panic!("unknown line {other}"),
        }
    }
    let out = match resolve(&mut p, &stored, &sent) {
        Err(r) => format!("refused {}: {}\n", r.path, r.message),
        Ok(writes) => {
            let mut out = String::new();
            for w in writes {
                out += &format!("write {} {} v{}\n", w.kind.as_str(), w.name, w.version);
            }
            for (name, svc) in &p.services {
                for f in files_of(&p, name) {
                    let u = svc
                        .file_uses(f.kind)
                        .iter()
                        .find(|u| u.path(f.kind) == f.path)
                        .and_then(|u| u.version);
                    out += &format!(
                        "{name}: {} {} at {} mode {:o} v{}\n",
                        f.kind.as_str(),
                        f.name,
                        f.path,
                        f.mode,
                        u.unwrap_or(0)
                    );
                }
            }
            out
        }
    };
    expected.assert_eq(&out);
}

const DB: &str = "services:
  db:
    image: mariadb
    secrets: [pw, {source: key, target: api.key, mode: 0400}]
    configs: [{source: cnf, target: /etc/my.cnf}]
secrets:
  pw: {file: ./pw.txt}
  key: {external: true, name: api-key}
configs:
  cnf: {content: hello}
";

#[test]
fn a_first_deploy_stores_what_it_sent() {
    check(
        DB,
        "stored secret api-key v3\nsent secret pw changed\nsent config cnf changed",
        expect![[r#"
            write secret shop_pw v1
            write config shop_cnf v1
            db: secret shop_pw at /run/secrets/pw mode 444 v1
            db: secret api-key at /run/secrets/api.key mode 400 v3
            db: config shop_cnf at /etc/my.cnf mode 444 v1
        "#]],
    );
}

#[test]
fn unchanged_values_keep_their_version_and_changed_ones_roll() {
    check(
        DB,
        "stored secret api-key v3\nstored secret shop_pw v1 stack=shop\nstored config shop_cnf v2 stack=shop
         sent secret pw same\nsent config cnf same",
        expect![[r#"
            db: secret shop_pw at /run/secrets/pw mode 444 v1
            db: secret api-key at /run/secrets/api.key mode 400 v3
            db: config shop_cnf at /etc/my.cnf mode 444 v2
        "#]],
    );
    check(
        DB,
        "stored secret api-key v3\nstored secret shop_pw v1 stack=shop\nstored config shop_cnf v2 stack=shop
         sent secret pw changed",
        expect![[r#"
            write secret shop_pw v2
            db: secret shop_pw at /run/secrets/pw mode 444 v2
            db: secret api-key at /run/secrets/api.key mode 400 v3
            db: config shop_cnf at /etc/my.cnf mode 444 v2
        "#]],
    );
}

#[test]
fn what_cannot_be_resolved_is_refused() {
    check(
        DB,
        "sent secret pw changed",
        expect![[r#"
        refused secrets.key: external secret 'api-key' does not exist in this environment (drover secret create api-key)
    "#]],
    );
    check(
        DB,
        "stored secret api-key v3\nsent config cnf changed",
        expect![[r#"
            refused secrets.pw: the value of secret 'pw' (file ./pw.txt) was not sent with the deploy: drover stack deploy reads it
        "#]],
    );
    check(
        DB,
        "stored secret api-key v3\nstored secret shop_pw v1 stack=other\nsent secret pw changed",
        expect![[r#"
            refused secrets.pw: secret 'shop_pw' belongs to stack 'other'
        "#]],
    );
    check(
        DB,
        "stored secret api-key v3\nstored secret shop_pw v1\nsent secret pw changed",
        expect![[r#"
            refused secrets.pw: secret 'shop_pw' was made with drover secret create: declare it external: true
        "#]],
    );
}

#[test]
fn used_by_and_owned() {
    let p = project(DB);
    let used: Vec<String> = used_by(&p)
        .into_iter()
        .map(|((k, n), by)| format!("{} {n}: {by:?}", k.as_str()))
        .collect();
    expect![[r#"
        [
            "secret api-key: {\"shop/db\"}",
            "secret shop_pw: {\"shop/db\"}",
            "config shop_cnf: {\"shop/db\"}",
        ]
    "#]]
    .assert_debug_eq(&used);
    let owned: Vec<String> = owned(&p).into_iter().map(|(_, n)| n).collect();
    assert_eq!(owned, ["shop_pw", "shop_cnf"]);
}
