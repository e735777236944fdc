//! Monitoring: the agent's samples reach `/metrics` (labelled by environment, stack,
//! service and host) and the stats API; `/metrics` needs an admin or a metrics key.

use std::time::Duration;

use crate::harness::*;

#[test]
fn container_figures_reach_metrics_and_stats() {
    let mut d = Drover::up();
    let stack = unique("mon");
    let file = d.write(
        "mon.yaml",
        "services:\n  web:\n    image: drover-test/app:1\n    stop_grace_period: 1s\n",
    );
    d.deploy(&stack, &file);

    // Not without a token; a metrics key reads it and nothing else.
    let (status, _) = api(&d.url, "GET", "/metrics", None, None);
    assert_eq!(status, 401);
    let key = d.ok(&["apikey", "create", "--metrics"]).trim().to_string();
    let (status, body) = api(
        &d.url,
        "GET",
        "/v1/environments/default/stacks",
        Some(&key),
        None,
    );
    assert_eq!(status, 404, "{body}");

    let line = wait_for(Duration::from_secs(40), "a sample of the container", || {
        let (status, text) = api(&d.url, "GET", "/metrics", Some(&key), None);
        assert_eq!(status, 200, "{text}");
        text.lines()
            .find(|l| {
                l.starts_with("drover_container_memory_bytes{")
                    && l.contains(&format!("stack=\"{stack}\""))
            })
            .map(str::to_string)
    });
    assert!(
        line.contains("service=\"web\"") && line.contains("env=\"default\""),
        "{line}"
    );
    let (_, text) = api(&d.url, "GET", "/metrics", Some(&d.token), None);
    for family in [
        "drover_hosts{",
        "drover_containers{",
        "drover_agent_sessions{",
        "drover_scheduling_pass_seconds",
        "drover_api_request_duration_seconds_bucket{",
        "drover_store_hold_seconds_bucket{",
        "drover_host_memory_bytes{",
        "drover_container_cpu_percent{",
        "drover_reconcile_lag_seconds{env=\"default\"}",
        "drover_reconcile_seconds_bucket{",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    // The exposition is valid as Prometheus reads it.
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus)");
    {
        use std::io::Write;
        let mut stdin = promtool.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write");
    }
    let out = promtool.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    scraped_by_prometheus(&d, &key);

    let (status, body) = api(
        &d.url,
        "GET",
        &format!("/v1/environments/default/stats?stack={stack}"),
        Some(&d.token),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let series = &v["containers"][format!("{stack}-web-1")];
    assert_eq!(series["service"], "web", "{body}");
    assert!(
        series["samples"].as_array().is_some_and(|s| !s.is_empty()),
        "{body}"
    );
    d.ok(&["stack", "rm", &stack]);
}

/// A real Prometheus scrapes the server with the metrics key, and answers a query with it.
fn scraped_by_prometheus(d: &Drover, key: &str) {
    let dir = d.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("dir");
    let target = d.url.trim_start_matches("http://");
    let token_file = dir.join("token");
    std::fs::write(&token_file, key).expect("token");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: drover\n    \
             authorization:\n      credentials_file: {}\n    static_configs:\n      \
             - targets: ['{target}']\n",
            token_file.display()
        ),
    )
    .expect("config");
    let port = free_port();
    let mut prom = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus (apt-get install prometheus)");
    let url = format!("http://127.0.0.1:{port}");
    let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_for(
            Duration::from_secs(30),
            "prometheus to scrape drover",
            || {
                let (status, body) = std::panic::catch_unwind(|| {
                    api(
                        &url,
                        "GET",
                        "/api/v1/query?query=drover_agent_sessions",
                        None,
                        None,
                    )
                })
                .ok()?;
                (status == 200 && body.contains("\"value\"")).then_some(body)
            },
        )
    }));
    let _ = prom.kill();
    let _ = prom.wait();
    let body = found.expect("prometheus never had drover's figures");
    assert!(body.contains("drover_agent_sessions"), "{body}");
}
