//! Hostile input must be refused quickly, with bounded memory, before big structures exist.
//! (Timing is measured separately; these tests only pin the errors.)

mod common;

use std::fmt::Write as _;

use expect_test::{Expect, expect};

fn check_error(text: &str, want: Expect) {
    match common::load_text("evil.yml", text) {
        Ok(_) => panic!("hostile input was accepted"),
        Err(e) => want.assert_eq(&e.to_string()),
    }
}

#[test]
fn billion_laughs() {
    // 9 levels of 10x aliases: 10^9 nodes once expanded.
    let mut text = String::from("x-lol0: &l0 \"lol\"\n");
    for level in 1..=9 {
        let prev = level - 1;
        let refs = vec![format!("*l{prev}"); 10].join(", ");
        let _ = writeln!(text, "x-lol{level}: &l{level} [{refs}]");
    }
    text.push_str("services:\n  web:\n    image: nginx\n    x-boom: *l9\n");
    check_error(
        &text,
        expect![
            "evil.yml:6:49: document too large: it expands to more than 100000 nodes (through aliases or merge keys?)"
        ],
    );
}

#[test]
fn merge_key_bomb() {
    // Each level merges the previous map under 10 new keys: exponential through merges.
    let mut text = String::from("x-m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n");
    for level in 1..=12 {
        let prev = level - 1;
        let _ = write!(text, "x-m{level}: &m{level} {{");
        for k in 0..10 {
            let _ = write!(text, "k{k}: {{<<: *m{prev}}}, ");
        }
        text.push_str("z: 0}\n");
    }
    text.push_str("services:\n  web:\n    image: nginx\n");
    check_error(
        &text,
        expect![
            "evil.yml:4:42: document too large: it expands to more than 100000 nodes (through aliases or merge keys?)"
        ],
    );
}

#[test]
fn deep_flow_sequences() {
    let text = format!("services: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    check_error(&text, expect!["evil.yml:1:266: recursion limit exceeded"]);
}

#[test]
fn deep_flow_mappings() {
    let text = format!("{}{}\n", "a: {".repeat(10_000), "}".repeat(10_000));
    check_error(
        &text,
        expect!["evil.yml:1:256: nesting too deep: more than 64 levels"],
    );
}

#[test]
fn deep_block_mappings() {
    let mut text = String::new();
    for depth in 0..2_000 {
        let _ = writeln!(text, "{}a:", " ".repeat(depth));
    }
    check_error(
        &text,
        expect!["evil.yml:65:65: nesting too deep: more than 64 levels"],
    );
}

#[test]
fn deep_through_aliases() {
    // Each anchor is 40 levels deep; nesting it under another 40 exceeds the limit even
    // though no single written structure does.
    let deep = format!("{}x{}", "[".repeat(40), "]".repeat(40));
    let text = format!(
        "x-a: &a {deep}\nx-b: {}*a{}\n",
        "[".repeat(40),
        "]".repeat(40)
    );
    check_error(
        &text,
        expect!["evil.yml:2:46: nesting too deep: more than 64 levels once aliases are expanded"],
    );
}

#[test]
fn too_big() {
    let text = format!(
        "services:\n  web:\n    image: nginx\n# {}\n",
        "x".repeat(5 << 20)
    );
    check_error(
        &text,
        expect!["evil.yml:0:0: file too large: 5242917 bytes, the limit is 4194304"],
    );
}

#[test]
fn too_many_nodes() {
    // 1.1 million tiny scalars in under 4 MiB.
    let text = format!("x-many: [{}]\n", "1,".repeat(1_100_000));
    check_error(
        &text,
        expect![
            "evil.yml:1:200004: document too large: it expands to more than 100000 nodes (through aliases or merge keys?)"
        ],
    );
}

#[test]
fn garbage() {
    for text in [
        "\0\0\0",
        "{{{{",
        "]]]]",
        ": : :",
        "- - - -",
        "\u{feff}",
        "&a *a",
        "!!binary aGVsbG8=",
        "services: !!set {a, b}",
        "%YAML 9.9\n---\nservices: {}",
        "\"\\uD800\"",
        "services:\n  web:\n    image: \"\\xff\"\n",
    ] {
        // Any result is fine as long as it is not a panic.
        let _ = common::load_text("garbage.yml", text);
    }
}

#[test]
fn port_range_amplification() {
    let text = "x-p: &p [\"1-65535:1-65535\"]\nservices:\n  a:\n    image: x\n    ports: *p\n  b:\n    image: x\n    ports: *p\n";
    check_error(
        text,
        expect![
            "evil.yml:1:10: services.b.ports[0]: too many ports: the project's ports expand to more than 65536"
        ],
    );
}

#[test]
fn env_file_amplification() {
    let mut text = String::from(
        "x-e: &e [web.env, web.env, web.env, web.env, web.env, web.env, web.env, web.env]\nx-s: &s {image: x, env_file: *e}\nservices:\n",
    );
    for i in 0..2000 {
        let _ = writeln!(text, "  s{i}: *s");
    }
    // web.env is tiny, so this loads; the budget only counts.
    assert!(common::load_text("evil.yml", &text).is_ok());
    let big = format!("K={}\n", "v".repeat(3 << 20));
    let files: std::collections::BTreeMap<String, String> = [("big.env".to_owned(), big)].into();
    let vars = std::collections::BTreeMap::new();
    let text =
        "x-s: &s {image: x, env_file: [big.env, big.env]}\nservices:\n  a: *s\n  b: *s\n  c: *s\n";
    let err = compose::load(&compose::Input {
        file_name: "evil.yml",
        text,
        project_name: None,
        default_name: "x",
        variables: &vars,
        profiles: &[],
        base_dir: None,
        files: &files,
        overrides: &[],
    })
    .err()
    .map(|e| e.to_string());
    expect!["evil.yml:1:40: services.c.env_file[1]: env_file contents too large: more than 16777216 bytes in total"].assert_eq(&err.unwrap_or_default());
}

/// chaos hostile, target api_bodies, generated input `deploy-project-200000-services`: a
/// deploy's project of 200,000 empty services (`"s1":{}`, 8 MiB) took 300 MB to read.
#[test]
fn project_200000_services_is_refused_while_read() {
    let services: Vec<String> = (0..200_000).map(|i| format!("\"s{i}\":{{}}")).collect();
    let json = format!("{{\"name\":\"x\",\"services\":{{{}}}}}", services.join(","));
    let err = serde_json::from_str::<compose::Project>(&json)
        .err()
        .map(|e| e.to_string());
    expect!["more than 10000 services at line 1 column 108922"].assert_eq(&err.unwrap_or_default());
    let at_most = format!(
        "{{\"name\":\"x\",\"services\":{{{}}}}}",
        services[..compose::MAX_SERVICES].join(",")
    );
    let project: compose::Project = serde_json::from_str(&at_most).expect("10,000 services");
    assert_eq!(project.services.len(), compose::MAX_SERVICES);
}

#[test]
fn compose_of_10001_services_is_refused() {
    let mut text = String::from("x-s: &s {image: x}\nservices:\n");
    for i in 0..=compose::MAX_SERVICES {
        let _ = writeln!(text, "  s{i}: *s");
    }
    check_error(
        &text,
        expect!["evil.yml:2:1: services: more than 10000 services"],
    );
}

/// chaos hostile, target compose, generated input `interpolation-unset-300000`: a string
/// naming 300,000 unset variables made a warning for each (130 MB).
#[test]
fn unset_300000_variables_warn_101_times() {
    let names: Vec<String> = (0..300_000).map(|i| format!("$v{i}")).collect();
    let text = format!("services:\n  web:\n    image: \"x{}\"\n", names.join(""));
    let loaded = common::load_text("evil.yml", &text).expect("loads");
    assert_eq!(
        loaded.warnings.len(),
        compose::interpolate::MAX_UNSET_WARNINGS + 1
    );
    expect!["evil.yml:3:12: services.web.image: more than 100 variables are not set, using empty strings (the others are not listed)"]
        .assert_eq(&loaded.warnings[100].to_string());
}
