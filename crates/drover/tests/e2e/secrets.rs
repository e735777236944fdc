//! Secrets and configs: made with the CLI or taken from the compose file, delivered as
//! files on a tmpfs, never shown, never on a disk, and rolled when they change.

use std::time::Duration;

use crate::harness::*;

/// Runs `sh -c SCRIPT` in `container`; its exit code.
fn sh(d: &Drover, container: &str, script: &str) -> i32 {
    let r = d.cli(&["exec", container, "sh", "-c", script]);
    assert!(r.code != 125, "exec failed: {}", r.stderr);
    r.code
}

/// The running container of `service` in `stack` (there is one).
fn one(stack: &str, service: &str) -> String {
    let names: Vec<String> = stack_containers(stack)
        .into_iter()
        .filter(|n| n.starts_with(&format!("{stack}-{service}-")))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    names[0].clone()
}

/// Every place a value could leak to on this host, searched for `needle`: the container's
/// engine record (inspect) and files, and the server's data directory.
fn leaks(d: &Drover, container: &str, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let inspect = docker_ok(&["inspect", container]);
    if inspect.contains(needle) {
        found.push("docker inspect".to_string());
    }
    let id = docker_ok(&["inspect", "--format", "{{.Id}}", container]);
    let roots = [
        format!("/var/lib/docker/containers/{}", id.trim()),
        d.data_dir().display().to_string(),
    ];
    for root in roots {
        let out = std::process::Command::new("grep")
            .args(["-r", "-l", "-a", "-F", needle, &root])
            .output()
            .expect("grep");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        found.extend(text.lines().map(str::to_string));
    }
    found
}

#[test]
fn secrets_and_configs_are_files_on_a_tmpfs_never_shown_and_rolled_when_changed() {
    let mut d = Drover::up();
    let stack = unique("sec");
    let external = format!("ext-value-{stack}");
    let r = d.cli(&[
        "secret",
        "create",
        &format!("{stack}-key"),
        "--from-env",
        "DROVER_TEST_NEVER_SET",
    ]);
    assert_eq!(r.code, 2, "no such variable: {}", r.stdout);
    let ext = d.write("ext.txt", &external);
    d.ok(&[
        "secret",
        "create",
        &format!("{stack}-key"),
        "-f",
        &ext.to_string_lossy(),
    ]);
    let pw = format!("pw-value-{stack}");
    d.write("pw.txt", &pw);
    let file = d.write(
        "sec.yaml",
        &format!(
            "services:
  db:
    image: drover-test/busybox:1
    command: [\"/bin/busybox\", \"sleep\", \"3600\"]
    stop_grace_period: 1s
    secrets:
      - pw
      - {{source: key, target: api.key, mode: 0400, uid: \"1000\"}}
    configs:
      - {{source: cnf, target: /etc/app.conf}}
secrets:
  pw: {{file: ./pw.txt}}
  key: {{external: true, name: {stack}-key}}
configs:
  cnf: {{content: \"hello ${{WHO:-world}}\"}}
"
        ),
    );
    d.deploy(&stack, &file);
    let c = one(&stack, "db");

    // Files with their modes and owners, holding the values.
    assert_eq!(d.cli(&["exec", &c, "cat", "/run/secrets/pw"]).stdout, pw);
    assert_eq!(
        d.cli(&["exec", &c, "cat", "/run/secrets/api.key"]).stdout,
        external
    );
    let r = d.cli(&[
        "exec",
        &c,
        "/bin/busybox",
        "stat",
        "-c",
        "%a %u",
        "/run/secrets/api.key",
        "/run/secrets/pw",
    ]);
    assert_eq!(r.stdout, "400 1000\n444 0\n", "{}", r.stderr);
    assert_eq!(
        d.cli(&["exec", &c, "cat", "/etc/app.conf"]).stdout,
        "hello world"
    );
    // Read-only, and on a tmpfs on the host.
    assert_ne!(sh(&d, &c, "echo x > /run/secrets/pw"), 0);
    let source = docker_ok(&[
        "inspect",
        "--format",
        "{{range .Mounts}}{{if eq .Destination \"/run/secrets/pw\"}}{{.Source}}{{end}}{{end}}",
        &c,
    ]);
    let source = source.trim().to_string();
    assert!(source.starts_with("/dev/shm/drover/"), "{source}");
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T", &source])
        .output()
        .expect("stat");
    assert_eq!(String::from_utf8_lossy(&fs.stdout).trim(), "tmpfs");

    // Never shown: not in the engine's record, the server's files, the API, the export,
    // the environment of the container, the logs or the audit log.
    for v in [&pw, &external] {
        assert_eq!(leaks(&d, &c, v), Vec::<String>::new(), "{v} leaked");
        for args in [
            vec!["secret", "ls"],
            vec!["stack", "export", &stack],
            vec!["stack", "ps", &stack],
            vec!["events"],
        ] {
            let out = d.ok(&args);
            assert!(!out.contains(v.as_str()), "{args:?} shows a secret: {out}");
        }
        assert!(
            !d.log().contains(v.as_str()),
            "the server log shows a secret"
        );
    }
    assert!(!d.cli(&["exec", &c, "env"]).stdout.contains(&pw));
    let ls = d.ok(&["secret", "ls"]);
    assert!(
        ls.contains(&format!("{stack}_pw")) && ls.contains(&format!("{stack}/db")),
        "{ls}"
    );
    assert_eq!(
        d.ok(&["config", "inspect", &format!("{stack}_cnf")]),
        "hello world"
    );
    let r = d.cli(&["secret", "inspect", &format!("{stack}-key")]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // In use: not removed.
    let r = d.cli(&["secret", "rm", &format!("{stack}-key")]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("in use") && r.stderr.contains(&format!("{stack}/db")),
        "{}",
        r.stderr
    );

    // A new value of the external secret rolls the service: a new container with it.
    let rotated = format!("rotated-{stack}");
    let ext = d.write("ext.txt", &rotated);
    d.ok(&[
        "secret",
        "update",
        &format!("{stack}-key"),
        "-f",
        &ext.to_string_lossy(),
    ]);
    wait_for(
        Duration::from_secs(60),
        "the service rolled to the new value",
        || {
            let names = stack_containers(&stack);
            let c = names.iter().find(|n| n.contains("-db-"))?;
            let now = d.cli(&["exec", c, "cat", "/run/secrets/api.key"]).stdout;
            (names.len() == 1 && now == rotated).then_some(())
        },
    );
    // So does a changed file, on the next deploy; an unchanged one does not.
    let before = one(&stack, "db");
    let out = d.deploy(&stack, &file);
    assert!(out.contains("0 changed"), "{out}");
    assert_eq!(one(&stack, "db"), before);
    let pw2 = format!("pw2-{stack}");
    d.write("pw.txt", &pw2);
    d.deploy(&stack, &file);
    let c = one(&stack, "db");
    assert_eq!(d.cli(&["exec", &c, "cat", "/run/secrets/pw"]).stdout, pw2);
    let dir = std::path::Path::new(&source)
        .parent()
        .expect("dir")
        .parent()
        .expect("host dir")
        .to_path_buf();

    // A stack's own secrets go with it, and so do the files.
    d.ok(&["stack", "rm", &stack]);
    let ls = d.ok(&["secret", "ls"]);
    assert!(!ls.contains(&format!("{stack}_pw")), "{ls}");
    assert!(ls.contains(&format!("{stack}-key")), "{ls}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !left.iter().any(|n| n.to_string_lossy().starts_with(&stack)),
        "files left on the host: {left:?}"
    );
    d.ok(&["secret", "rm", &format!("{stack}-key")]);

    // A missing external secret is refused, naming it.
    let r = d.try_deploy(&stack, &file);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("external secret '{stack}-key' does not exist")),
        "{}",
        r.stderr
    );
}
