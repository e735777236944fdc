//! The web UI in a real browser: `drover up` on loopback, an admin and a read-only user made
//! through the API, then `ui/tests/browser.mjs` (playwright-core driving Debian's chromium,
//! headless, reaching only 127.0.0.1) through the main flows — sign in, deploy a file with an
//! error then fixed, watch it become healthy, its logs, `echo` in the browser shell, scale,
//! the audit entry, API keys, the catalog, the hosts page (drain and undo, labels, live CPU
//! and memory charts), a phone-sized screen, a read-only user who sees no change buttons and
//! a restricted one who is told it may not list hosts — with an axe-core check of each page and a screenshot of each
//! under `target/ui-screenshots/`. Needs `scripts/build-ui.sh` first (scripts/test.sh runs
//! it) and `apt-get install chromium fonts-liberation`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::harness::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn web_ui_main_flows_in_a_browser() {
    let ui = repo_root().join("ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir(),
        "the UI's packages are not installed: run scripts/build-ui.sh"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "no chromium at {chromium}: apt-get install chromium fonts-liberation"
    );
    let mut d = Drover::up();

    // The binary serves the built UI (not the placeholder), with its security headers.
    let (code, page) = api(&d.url, "GET", "/stacks/anything", None, None);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("/assets/index-"),
        "the server embeds no built UI (run scripts/build-ui.sh, then build again): {page}"
    );
    let (code, body) = api(&d.url, "GET", "/v1/no-such-route", None, None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"not_found\""), "{body}");

    let admin = ("uiadmin", "correct horse battery 1");
    let viewer = ("uiviewer", "correct horse battery 2");
    let restricted = ("uirestricted", "correct horse battery 3");
    for (user, pw, is_admin) in [
        (admin.0, admin.1, true),
        (viewer.0, viewer.1, false),
        (restricted.0, restricted.1, false),
    ] {
        let body = format!(r#"{{"name":"{user}","password":"{pw}","admin":{is_admin}}}"#);
        let (code, out) = api(&d.url, "POST", "/v1/users", Some(&d.token), Some(&body));
        assert_eq!(code, 201, "{out}");
    }
    for (user, role) in [(viewer.0, "read-only"), (restricted.0, "restricted")] {
        let member = format!(r#"{{"subject":"{user}","role":"{role}"}}"#);
        let (code, out) = api(
            &d.url,
            "PUT",
            "/v1/environments/default/members",
            Some(&d.token),
            Some(&member),
        );
        assert_eq!(code, 200, "{out}");
    }

    let stack = unique("ui");
    d.track(&stack);
    let shots = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("ui-screenshots");
    let started = Instant::now();
    let status = Command::new("node")
        .arg("tests/browser.mjs")
        .current_dir(&ui)
        .env("DROVER_URL", &d.url)
        .env("DROVER_ADMIN", format!("{}:{}", admin.0, admin.1))
        .env("DROVER_VIEWER", format!("{}:{}", viewer.0, viewer.1))
        .env(
            "DROVER_RESTRICTED",
            format!("{}:{}", restricted.0, restricted.1),
        )
        .env("STACK", &stack)
        .env("SCREENSHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .status()
        .expect("run node");
    println!(
        "browser flows took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
    assert!(
        status.success(),
        "browser test failed; server log:\n{}",
        d.log_tail()
    );
}
