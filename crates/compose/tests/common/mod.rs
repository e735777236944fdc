//! Shared test harness: a fixed environment, a fixed set of env files, and `check`, which
//! prints either the normalised project (as compose YAML, plus warnings) or the error, and
//! checks that the printed YAML loads back to the same project.

#![allow(dead_code)]

use std::collections::BTreeMap;

use compose::{Input, Loaded, load, to_compose_yaml};
use expect_test::Expect;

pub fn variables() -> BTreeMap<String, String> {
    [
        ("HOME", "/home/dev"),
        ("TAG", "1.25"),
        ("DB_PASSWORD", "s3cr3t"),
        ("GITLAB_HOME", "/srv/gitlab"),
        ("DOMAIN", "example.com"),
        ("EMPTY", ""),
        ("GF_INSTALL_PLUGINS", "grafana-clock-panel"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn files() -> BTreeMap<String, String> {
    [
        (
            "web.env",
            "# web settings\nA=1\nB=from-file\nexport C=\"quoted value\"\n",
        ),
        ("common.env", "LOG_LEVEL=info\nSHARED=common\n"),
        ("api.env", "SHARED=api\nAPI_KEY='abc$def'\n"),
        ("bad.env", "GOOD=1\nthis line is wrong\n"),
        (
            "base.yml",
            "services:\n  app:\n    image: app:1\n    environment: [MODE=prod, LOG=info]\n    ports: [\"80:8080\"]\n  broken:\n    image: x\n    extends: nowhere\n",
        ),
        (
            "inc.yml",
            "services:\n  cache:\n    image: redis:7\n    networks: [back]\nnetworks:\n  back: {}\n",
        ),
        ("dup.yml", "services:\n  web:\n    image: other\n"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Active profiles from a `# test-profiles: a, b` first line.
pub fn profiles_of(text: &str) -> Vec<String> {
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# test-profiles:"))
        .map(|p| p.split(',').map(|s| s.trim().to_owned()).collect())
        .unwrap_or_default()
}

pub fn load_text(file_name: &str, text: &str) -> Result<Loaded, compose::Error> {
    let variables = variables();
    let files = files();
    let profiles = profiles_of(text);
    load(&Input {
        file_name,
        text,
        project_name: None,
        default_name: "My Stack",
        variables: &variables,
        profiles: &profiles,
        base_dir: Some("/srv/stack"),
        files: &files,
        overrides: &[],
    })
}

/// Loads `to_compose_yaml(project)` back and checks it gives the same project, no warnings,
/// and the same YAML again.
pub fn assert_round_trip(file_name: &str, original_text: &str, loaded: &Loaded) {
    let yaml = to_compose_yaml(&loaded.project);
    let variables = variables();
    let files = files();
    let profiles = profiles_of(original_text);
    let again = load(&Input {
        file_name: "exported.yml",
        text: &yaml,
        project_name: None,
        default_name: "unused",
        variables: &variables,
        profiles: &profiles,
        base_dir: Some("/elsewhere"),
        files: &files,
        overrides: &[],
    });
    let again = match again {
        Ok(again) => again,
        Err(e) => panic!("{file_name}: exported YAML does not load: {e}\n{yaml}"),
    };
    assert_eq!(
        again.project, loaded.project,
        "{file_name}: round trip changed the project\n{yaml}"
    );
    assert!(
        again.warnings.is_empty(),
        "{file_name}: exported YAML gives warnings: {:?}\n{yaml}",
        again.warnings
    );
    assert_eq!(
        to_compose_yaml(&again.project),
        yaml,
        "{file_name}: not idempotent"
    );
}

pub fn render(file_name: &str, text: &str) -> String {
    match load_text(file_name, text) {
        Ok(loaded) => {
            assert_round_trip(file_name, text, &loaded);
            let mut out = to_compose_yaml(&loaded.project);
            if !loaded.warnings.is_empty() {
                out.push_str("--- warnings\n");
                for w in &loaded.warnings {
                    out.push_str(&format!("{w}\n"));
                }
            }
            out
        }
        Err(e) => format!("error: {e}\n"),
    }
}

pub fn check(text: &str, expect: Expect) {
    expect.assert_eq(&render("docker-compose.yml", text));
}
