//! Users, roles, API keys, the container policy and the audit log, end to end against
//! `drover up` and the real engine.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;

/// A user with their own CLI config.
struct Person {
    name: &'static str,
    password: String,
    config: PathBuf,
}

impl Person {
    fn new(d: &Drover, name: &'static str) -> Person {
        Person {
            name,
            password: format!("pw-{name}-canary-7f3a9c"),
            config: d.dir.path().join(format!("{name}.json")),
        }
    }

    fn run(&self, d: &Drover, args: &[&str]) -> Run {
        d.cli_as(&self.config, args, "")
    }

    fn ok(&self, d: &Drover, args: &[&str]) -> String {
        let r = self.run(d, args);
        assert_eq!(r.code, 0, "{} {args:?}: {}", self.name, r.stderr);
        r.stdout
    }

    /// A command that must be refused, with a message containing `why`.
    fn refused(&self, d: &Drover, args: &[&str], why: &str) -> Run {
        let r = self.run(d, args);
        assert_ne!(
            r.code, 0,
            "{} {args:?} should be refused: {}",
            self.name, r.stdout
        );
        assert!(
            r.stderr.contains(why),
            "{} {args:?}: {}",
            self.name,
            r.stderr
        );
        r
    }
}

#[test]
fn users_roles_keys_policy_and_audit() {
    let mut d = Drover::up();
    let prod = unique("prod");
    d.ok(&["env", "create", &prod]);
    let people: Vec<(Person, &str)> = [
        ("ann", "owner"),
        ("bob", "member"),
        ("cat", "restricted"),
        ("dan", "read-only"),
    ]
    .into_iter()
    .map(|(n, r)| (Person::new(&d, n), r))
    .collect();
    for (p, role) in &people {
        let r = d.cli_as(
            &d.dir.path().join("admin.json"),
            &[
                "--token",
                &d.token,
                "user",
                "create",
                p.name,
                "--password-stdin",
            ],
            &format!("{}\n", p.password),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        d.ok(&["env", "member", "add", "default", p.name, role]);
        let r = d.cli_as(
            &p.config,
            &["login", &d.url, "--username", p.name, "--password-stdin"],
            &format!("{}\n", p.password),
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let [ann, bob, cat, dan] = [0, 1, 2, 3].map(|i| &people[i].0);
    assert!(ann.ok(&d, &["whoami"]).contains("default      owner"));
    let members = d.ok(&["env", "member", "ls", "default"]);
    assert!(members.contains("cat     restricted"), "{members}");

    // The table at work: reads for all, hosts for owners and members, changes not for
    // read-only users, members for owners.
    for p in [ann, bob, cat, dan] {
        p.ok(&d, &["stack", "ls"]);
    }
    bob.ok(&d, &["host", "ls"]);
    cat.refused(
        &d,
        &["host", "ls"],
        "is restricted in environment 'default'",
    );
    cat.refused(
        &d,
        &["host", "token", "create"],
        "may not manage registration tokens",
    );
    bob.refused(
        &d,
        &["env", "member", "add", "default", "dan", "owner"],
        "needs owner",
    );
    ann.ok(&d, &["env", "member", "ls", "default"]);
    // A foreign environment is answered as one that does not exist; so is a missing one.
    bob.refused(
        &d,
        &["-e", &prod, "stack", "ls"],
        &format!("environment '{prod}' does not exist"),
    );
    bob.refused(
        &d,
        &["-e", "nowhere", "stack", "ls"],
        "environment 'nowhere' does not exist",
    );
    assert!(!bob.ok(&d, &["env", "ls"]).contains(&prod));
    bob.refused(&d, &["user", "ls"], "needs an admin");

    // Deploys: a restricted user deploys; a read-only one may not, nor exec.
    let stack = unique("roles");
    d.track(&stack);
    let plain = d.write(
        "plain.yaml",
        "services:\n  web:\n    image: drover-test/busybox:1\n    command: [\"/bin/busybox\", \"sleep\", \"3600\"]\n    stop_grace_period: 1s\n",
    );
    let f = plain.to_string_lossy().to_string();
    cat.ok(
        &d,
        &["stack", "deploy", "-f", &f, "-p", &stack, "--timeout", "90"],
    );
    dan.refused(
        &d,
        &["stack", "deploy", "-f", &f, "-p", &stack],
        "is read-only",
    );
    let web = format!("{stack}-web-1");
    dan.refused(
        &d,
        &["exec", &web, "sh", "-c", "exit 0"],
        "may not run commands",
    );
    cat.ok(&d, &["exec", &web, "sh", "-c", "exit 0"]);
    dan.ok(&d, &["logs", &web]);

    // The container policy: members and restricted users are bound, owners are not; the
    // refusal names the service, the key and the rule; it holds for JSON projects too.
    let hostile = d.write(
        "hostile.yaml",
        "services:\n  root:\n    image: drover-test/app:1\n    privileged: true\n    \
         volumes:\n      - /var/run/docker.sock:/var/run/docker.sock\n",
    );
    let h = hostile.to_string_lossy().to_string();
    let bad = unique("bad");
    let r = cat.refused(
        &d,
        &["stack", "deploy", "-f", &h, "-p", &bad],
        "service 'root': privileged",
    );
    assert!(r.stderr.contains("volumes[0]"), "{}", r.stderr);
    bob.refused(
        &d,
        &["stack", "deploy", "-f", &h, "-p", &bad],
        "container policy of environment 'default'",
    );
    let session = std::fs::read_to_string(&cat.config).expect("cat's config");
    let cat_token = serde_json::from_str::<serde_json::Value>(&session).expect("json")["token"]
        .as_str()
        .expect("token")
        .to_string();
    let body = format!(
        r#"{{"name":"{bad}","project":{{"name":"{bad}","services":{{"root":{{"image":"drover-test/app:1","pid":"host"}}}}}}}}"#
    );
    let (status, text) = api(
        &d.url,
        "POST",
        "/v1/environments/default/stacks",
        Some(&cat_token),
        Some(&body),
    );
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("pid"), "{text}");
    assert!(!d.ok(&["stack", "ls"]).contains(&bad), "nothing half-done");
    // The owner lets binds under one directory through, and then they deploy.
    let data = d.dir.path().join("shared-data");
    std::fs::create_dir_all(&data).expect("dir");
    ann.ok(
        &d,
        &[
            "env",
            "policy",
            "default",
            "--allow-bind",
            &data.to_string_lossy(),
        ],
    );
    assert!(
        dan.ok(&d, &["env", "policy", "default"])
            .contains("shared-data")
    );
    let binds = d.write(
        "binds.yaml",
        &format!(
            "services:\n  web:\n    image: drover-test/app:1\n    volumes:\n      - {}:/data\n",
            data.display()
        ),
    );
    let b = binds.to_string_lossy().to_string();
    let bound = unique("bound");
    d.track(&bound);
    cat.ok(
        &d,
        &["stack", "deploy", "-f", &b, "-p", &bound, "--timeout", "90"],
    );
    cat.ok(&d, &["stack", "rm", &bound]);

    // API keys: shown once, act with their user's rights, narrowed to an environment,
    // revoked at once, refused once expired.
    let key = bob
        .ok(&d, &["apikey", "create", "--name", "ci"])
        .trim()
        .to_string();
    assert!(key.starts_with("drv_"), "{key}");
    let with_key = |token: &str, args: &[&str]| {
        let mut all = vec!["--token", token];
        all.extend(args);
        d.cli_as(&d.dir.path().join("nobody.json"), &all, "")
    };
    assert_eq!(with_key(&key, &["host", "ls"]).code, 0);
    let listed = bob.ok(&d, &["apikey", "ls"]);
    assert!(listed.contains("ci") && !listed.contains(&key), "{listed}");
    let id = listed
        .lines()
        .find(|l| l.contains("_ci"))
        .and_then(|l| l.split_whitespace().next())
        .expect("key id")
        .to_string();
    bob.ok(&d, &["apikey", "rm", &id]);
    let r = with_key(&key, &["host", "ls"]);
    assert_ne!(r.code, 0, "revoked key still works");
    assert!(r.stderr.contains("invalid token"), "{}", r.stderr);
    let scoped = bob
        .ok(&d, &["-e", "default", "apikey", "create"])
        .trim()
        .to_string();
    assert_eq!(with_key(&scoped, &["stack", "ls"]).code, 0);
    let short = bob
        .ok(&d, &["apikey", "create", "--expires", "1s"])
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let r = with_key(&short, &["stack", "ls"]);
    assert!(r.stderr.contains("has expired"), "{}", r.stderr);

    // Logins are limited: after 5 wrong passwords the next is refused with when to retry,
    // even with the right password.
    let nobody = d.dir.path().join("guess.json");
    for _ in 0..5 {
        let r = d.cli_as(
            &nobody,
            &["login", &d.url, "--username", "dan", "--password-stdin"],
            "wrong-guess\n",
        );
        assert!(
            r.stderr.contains("wrong user name or password"),
            "{}",
            r.stderr
        );
    }
    let r = d.cli_as(
        &nobody,
        &["login", &d.url, "--username", "dan", "--password-stdin"],
        &format!("{}\n", dan.password),
    );
    assert!(
        r.stderr
            .contains("too many failed logins for user 'dan': retry in"),
        "{}",
        r.stderr
    );

    // Hosts' resource figures go only to those who may see hosts.
    let token_of = |p: &Person| -> String {
        let cfg = std::fs::read_to_string(&p.config).expect("config");
        serde_json::from_str::<serde_json::Value>(&cfg).expect("json")["token"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let stats = |token: &str| -> serde_json::Value {
        let (status, body) = api(
            &d.url,
            "GET",
            "/v1/environments/default/stats",
            Some(token),
            None,
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("stats json")
    };
    let bob_token = token_of(bob);
    wait_for(Duration::from_secs(30), "host samples", || {
        stats(&bob_token)["hosts"]
            .as_object()
            .is_some_and(|h| !h.is_empty())
            .then_some(())
    });
    assert_eq!(stats(&cat_token)["hosts"], serde_json::json!({}));

    // Sessions end on logout; a removed user's sessions and keys stop at once.
    dan.ok(&d, &["logout"]);
    dan.refused(&d, &["stack", "ls"], "token");
    d.ok(&["user", "rm", "bob"]);
    bob.refused(&d, &["stack", "ls"], "invalid token");
    assert_ne!(with_key(&scoped, &["stack", "ls"]).code, 0);

    // The audit log says who, from where, and what was refused.
    let (status, _) = api(&d.url, "GET", "/v1/whoami", Some("drv_not-a-token"), None);
    assert_eq!(status, 401);
    let audit = d.ok(&["audit", "--limit", "500", "--json"]);
    let events: Vec<serde_json::Value> = serde_json::from_str(&audit).expect("audit json");
    let has = |actor: &str, kind: &str, result: &str| {
        events.iter().any(|e| {
            e["actor"].as_str().unwrap_or("").starts_with(actor)
                && e["kind"] == kind
                && e["result"] == result
                && e["source"] == "127.0.0.1"
        })
    };
    assert!(has("cat", "stack.created", "ok"), "{audit}");
    assert!(has("cat", "request.denied", "denied"), "{audit}");
    assert!(has("dan", "user.login", "denied"), "{audit}");
    assert!(has("bob", "apikey.created", "ok"), "{audit}");
    assert!(
        has("unauthenticated", "request.denied", "denied"),
        "{audit}"
    );
    let cats = d.ok(&["audit", "--user", "cat", "--action", "stack."]);
    assert!(
        cats.contains("stack.created") && !cats.contains("user.login"),
        "{cats}"
    );
    // A user who is not an admin reads their environment's log only if they may.
    ann.ok(&d, &["audit", "--limit", "5"]);
    dan.refused(&d, &["audit"], "token");

    // Canaries: no password, key or secret value in the log, the audit log or answers.
    let secret = "canary-secret-value-51c2";
    let r = d.cli_as(
        &d.dir.path().join("admin.json"),
        &["--token", &d.token, "secret", "create", "canary"],
        secret,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Error bodies do not echo what was sent.
    let mut answers = String::new();
    for body in [
        format!(r#"{{"username":"nobody","password":"{}"}}"#, ann.password),
        format!(
            r#"{{"username":"ann","password":"{}","x":1}}"#,
            ann.password
        ),
        format!(r#"{{"username":"ann","password":["{}"]}}"#, ann.password),
    ] {
        answers.push_str(&api(&d.url, "POST", "/v1/sessions", None, Some(&body)).1);
    }
    let body = format!(
        r#"{{"name":"eve","password":"{}","admin":"{}"}}"#,
        ann.password, ann.password
    );
    answers.push_str(&api(&d.url, "POST", "/v1/users", Some(&d.token), Some(&body)).1);
    assert!(!answers.contains(&ann.password), "{answers}");
    let audit = d.ok(&["audit", "--limit", "1000", "--json"]);
    let (_, metrics) = api(&d.url, "GET", "/metrics", Some(&d.token), None);
    let everything = format!("{}\n{audit}\n{metrics}", d.log());
    for (p, _) in &people {
        assert!(
            !everything.contains(&p.password),
            "{}'s password leaked",
            p.name
        );
    }
    for canary in [&key, &scoped, &short, &cat_token, &secret.to_string()] {
        assert!(!everything.contains(canary.as_str()), "{canary} leaked");
    }
    d.ok(&["stack", "rm", &stack]);
}
