//! Environments (tenants): made and removed by admins, each with its own stacks; one is
//! removed only once it holds nothing; the CLI can act in one by default.

use crate::harness::*;

#[test]
fn environments_are_made_listed_used_and_removed_when_empty() {
    let mut d = Drover::up();
    let team = unique("team");
    d.ok(&["env", "create", &team]);
    let ls = d.ok(&["env", "ls"]);
    assert!(ls.contains("default") && ls.contains(&team), "{ls}");
    // Names are checked; a second one of a name is refused.
    let r = d.cli(&["env", "create", "Not_Valid!"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("invalid environment name"),
        "{}",
        r.stderr
    );
    let r = d.cli(&["env", "create", &team]);
    assert_eq!(r.code, 1, "{}", r.stderr);

    // A stack in the new environment is its own: the default one does not see it (and, with
    // no host of its own yet, it waits for one).
    let stack = unique("tenant");
    d.track(&stack);
    let file = d.write(
        "t.yaml",
        "services:\n  web:\n    image: drover-test/app:1\n",
    );
    let f = file.to_string_lossy().to_string();
    let deploy = |env: &[&str]| {
        let mut args = env.to_vec();
        args.extend(["stack", "deploy", "-f", &f, "-p", &stack, "--detach"]);
        let r = d.cli(&args);
        assert_eq!(r.code, 0, "{}", r.stderr);
    };
    deploy(&["-e", &team]);
    assert!(d.ok(&["-e", &team, "stack", "ls"]).contains(&stack));
    assert!(!d.ok(&["stack", "ls"]).contains(&stack));

    // Not removed while it holds a stack; removed once empty. `default` stays.
    let r = d.cli(&["env", "rm", &team]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("still has 1 stacks"), "{}", r.stderr);
    // --force removes what it holds first, saying each, then the environment.
    d.ok(&["-e", &team, "network", "create", "shared"]);
    let r = d.cli_as(
        &d.dir.path().join("admin.json"),
        &["--token", &d.token, "-e", &team, "secret", "create", "s1"],
        "value",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let gone = d.ok(&["env", "rm", &team, "--force"]);
    for what in [stack.as_str(), "shared", "secret s1 removed", &team] {
        assert!(gone.contains(what), "{what}: {gone}");
    }
    assert!(!d.ok(&["env", "ls"]).contains(&team));
    let r = d.cli(&["env", "rm", "default"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = d.cli(&["-e", &team, "stack", "ls"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);

    // `env use` makes one the default for later commands; -e still wins.
    let other = unique("other");
    d.ok(&["env", "create", &other]);
    d.ok(&["env", "use", &other]);
    deploy(&[]);
    assert!(d.ok(&["-e", &other, "stack", "ls"]).contains(&stack));
    assert!(!d.ok(&["-e", "default", "stack", "ls"]).contains(&stack));
    d.ok(&["stack", "rm", &stack]);
    d.ok(&["env", "use", "default"]);
    d.ok(&["env", "rm", &other]);
}
