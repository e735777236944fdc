//! The app catalog end to end: a git catalog served from a local bare repository, installs
//! with answers, a refused install that makes nothing, an upgrade that keeps the answers and
//! asks the new question, a rollback to the previous version, a Rancher 1.x template with a
//! `.tpl` file and a sidekick running, and stacks that outlive their catalog.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.org")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.org")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// The value of `key` in a container's environment.
fn env_of(container: &str, key: &str) -> Option<String> {
    let out = docker_ok(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        container,
    ]);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[test]
fn catalog_installs_upgrades_keeping_answers_and_rolls_back() {
    let mut d = Drover::up();
    // A git catalog: the fixture committed to a repository, served as a bare clone.
    let work = d.dir.path().join("catalog-src");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/catalog-fixture"),
        &work,
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "templates"]);
    let bare = d.dir.path().join("catalog.git");
    git(
        d.dir.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.to_string_lossy(),
            &bare.to_string_lossy(),
        ],
    );
    let url = format!("file://{}", bare.display());
    d.ok(&["catalog", "add", "t", &url, "--branch", "main"]);
    let ls = d.ok(&["catalog", "ls"]);
    assert!(
        ls.lines().any(|l| l.starts_with("t ") && l.contains(" 2 ")),
        "{ls}"
    );
    assert!(ls.contains("library"), "{ls}");
    assert!(d.ok(&["catalog", "search", "greeting"]).contains("t/web"));
    let show = d.ok(&["catalog", "show", "t/web:1.0.0"]);
    assert!(
        show.contains("GREETING") && show.contains("(generated)"),
        "{show}"
    );

    // Refused answers make nothing, and say which question.
    let r = d.cli(&[
        "catalog",
        "install",
        "t/web:1.0.0",
        "-p",
        "web1",
        "--set",
        "GREETING=hi",
        "--set",
        "WORKERS=many",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("WORKERS"), "{}", r.stderr);
    let r = d.cli(&["catalog", "install", "t/web:1.0.0", "-p", "web1"]);
    assert!(r.stderr.contains("GREETING"), "{}", r.stderr);
    assert!(!d.ok(&["stack", "ls"]).contains("web1"));
    // A dry run shows the file and makes nothing.
    let dry = d.ok(&[
        "catalog",
        "install",
        "t/web:1.0.0",
        "-p",
        "web1",
        "--set",
        "GREETING=hi",
        "--dry-run",
    ]);
    assert!(dry.contains("GREETING: \"hi\""), "{dry}");
    assert!(!d.ok(&["stack", "ls"]).contains("web1"));

    // Install: the answers reach the container, a password is generated.
    d.track("web1");
    d.ok(&[
        "catalog",
        "install",
        "t/web:1.0.0",
        "-p",
        "web1",
        "--set",
        "GREETING=hello",
        "--timeout",
        "90",
    ]);
    assert_eq!(env_of("web1-web-1", "GREETING").as_deref(), Some("hello"));
    let password = env_of("web1-web-1", "SECRET_PW").expect("generated password");
    assert!(password.len() >= 16, "{password}");
    let ls = d.ok(&["stack", "ls"]);
    assert!(ls.contains("t/web:1.0.0 (upgrade: 1.1.0)"), "{ls}");

    // Upgrade: the new question must be answered; the old answers stay.
    let r = d.cli(&["stack", "upgrade", "web1"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("COLOR"), "{}", r.stderr);
    d.ok(&[
        "stack",
        "upgrade",
        "web1",
        "--set",
        "COLOR=blue",
        "--timeout",
        "90",
    ]);
    assert_eq!(env_of("web1-web-1", "COLOR").as_deref(), Some("blue"));
    assert_eq!(env_of("web1-web-1", "GREETING").as_deref(), Some("hello"));
    assert_eq!(env_of("web1-web-1", "SECRET_PW"), Some(password.clone()));
    assert!(d.ok(&["stack", "ls"]).contains("t/web:1.1.0"));
    // The same version with a changed answer is an edit.
    d.ok(&[
        "stack",
        "upgrade",
        "web1",
        "--set",
        "GREETING=howdy",
        "--timeout",
        "90",
    ]);
    assert_eq!(env_of("web1-web-1", "GREETING").as_deref(), Some("howdy"));
    let history = d.ok(&["stack", "history", "web1"]);
    assert!(history.contains("answers changed (GREETING)"), "{history}");

    // Rollback returns to the previous revision, its version and answers.
    d.ok(&["stack", "rollback", "web1", "--timeout", "90"]);
    assert_eq!(env_of("web1-web-1", "GREETING").as_deref(), Some("hello"));
    d.ok(&[
        "stack",
        "rollback",
        "web1",
        "--revision",
        "1",
        "--timeout",
        "90",
    ]);
    assert_eq!(env_of("web1-web-1", "COLOR"), None);
    assert!(
        d.ok(&["stack", "ls"])
            .contains("t/web:1.0.0 (upgrade: 1.1.0)")
    );

    // A Rancher 1.x template: a .tpl file, rancher-compose.yml, a sidekick.
    d.track("ranch");
    d.ok(&[
        "catalog",
        "install",
        "t/ranch",
        "--set",
        "MODE=slow",
        "--timeout",
        "90",
    ]);
    assert_eq!(env_of("ranch-main-1", "MODE").as_deref(), Some("slow"));
    assert_eq!(env_of("ranch-main-1", "STACK").as_deref(), Some("ranch"));
    assert!(container_state("ranch-helper-1").ends_with(" true"));

    // Without its catalog, a stack keeps running and upgrades from its copy.
    d.ok(&["catalog", "rm", "t"]);
    assert!(!d.ok(&["catalog", "ls"]).contains("file://"));
    d.ok(&[
        "stack",
        "upgrade",
        "web1",
        "--version",
        "1.1.0",
        "--set",
        "COLOR=red",
        "--timeout",
        "90",
    ]);
    assert_eq!(env_of("web1-web-1", "COLOR").as_deref(), Some("red"));
    assert_eq!(env_of("web1-web-1", "SECRET_PW"), Some(password.clone()));

    // The generated password is in no answer, log or audit entry.
    let audit = d.ok(&["audit", "--limit", "500", "--json"]);
    assert!(audit.contains("catalog.added"), "{audit}");
    assert!(!audit.contains(&password) && !d.log().contains(&password));
    d.ok(&["stack", "rm", "web1"]);
    d.ok(&["stack", "rm", "ranch"]);
}
