//! Sidekicks: containers that run beside each replica of another service, on its host,
//! sharing its network or volumes, and replaced with it.

use std::time::Duration;

use crate::harness::*;

/// `{{.Id}} {{.HostConfig.NetworkMode}}` of a container, if it exists.
fn inspect(name: &str) -> Option<(String, String)> {
    let out = docker(&[
        "inspect",
        "--format",
        "{{.Id}} {{.HostConfig.NetworkMode}}",
        name,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (id, mode) = text.trim().split_once(' ')?;
    out.status
        .success()
        .then(|| (id.to_string(), mode.to_string()))
}

fn id_of(name: &str) -> String {
    inspect(name).map(|(id, _)| id).unwrap_or_default()
}

#[test]
fn sidekicks_run_beside_each_replica_and_follow_it() {
    let mut d = Drover::up();
    let stack = unique("side");
    let compose = |env: &str| {
        format!(
            "services:
  web:
    image: drover-test/app:1
    stop_grace_period: 1s
    environment: {{VERSION: \"{env}\"}}
    volumes: [/shared]
    deploy:
      replicas: 2
      update_config: {{order: start-first}}
  log:
    image: drover-test/busybox:1
    command: [\"/bin/busybox\", \"sleep\", \"3600\"]
    stop_grace_period: 1s
    network_mode: service:web
  backup:
    image: drover-test/busybox:1
    command: [\"/bin/busybox\", \"sleep\", \"3600\"]
    stop_grace_period: 1s
    volumes_from: [\"web:ro\"]
"
        )
    };
    let file = d.write("side.yaml", &compose("1"));
    d.deploy(&stack, &file);

    // One of each sidekick per replica, numbered like it.
    let names = |svc: &str| -> Vec<String> {
        stack_containers(&stack)
            .into_iter()
            .filter(|n| n.starts_with(&format!("{stack}-{svc}-")))
            .collect()
    };
    assert_eq!(
        names("web"),
        [format!("{stack}-web-1"), format!("{stack}-web-2")]
    );
    assert_eq!(
        names("log"),
        [format!("{stack}-log-1"), format!("{stack}-log-2")]
    );
    assert_eq!(
        names("backup"),
        [format!("{stack}-backup-1"), format!("{stack}-backup-2")]
    );

    // The log sidekick shares its replica's network: the app answers on its loopback.
    let reach = |d: &Drover, n: u32| {
        d.cli(&[
            "exec",
            &format!("{stack}-log-{n}"),
            "wget",
            "-q",
            "-O-",
            "http://127.0.0.1:8080/",
        ])
    };
    let r = reach(&d, 1);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(!r.stdout.is_empty(), "the app answered nothing");
    let joined = inspect(&format!("{stack}-log-2")).map(|(_, mode)| mode);
    assert_eq!(
        joined,
        Some(format!("container:{}", id_of(&format!("{stack}-web-2"))))
    );
    // The backup sidekick sees its replica's volume, read-only.
    let r = d.cli(&[
        "exec",
        &format!("{stack}-backup-1"),
        "sh",
        "-c",
        "test -d /shared && ! touch /shared/y",
    ]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);

    // Both show in stack ps, with their primary's replica count in the services.
    let ps = d.ok(&["stack", "ps", &stack]);
    assert!(
        ps.contains(&format!("{stack}-log-1")) && ps.contains(&format!("{stack}-backup-2")),
        "{ps}"
    );

    // A sidekick is scaled through its primary.
    let r = d.cli(&["service", "scale", &format!("{stack}/log=3")]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("sidekick") && r.stderr.contains(&format!("{stack}/web")),
        "{}",
        r.stderr
    );
    d.ok(&["service", "scale", &format!("{stack}/web=3")]);
    wait_for(
        Duration::from_secs(30),
        "a third replica with its sidekicks",
        || (names("log").len() == 3 && names("backup").len() == 3).then_some(()),
    );

    // An upgrade of the primary (start-first: new replicas, new slot numbers) replaces its
    // sidekicks with it: each log sidekick joins its own new replica's network.
    let old_logs: Vec<String> = names("log").iter().map(|n| id_of(n)).collect();
    std::fs::write(&file, compose("2").replace("replicas: 2", "replicas: 3")).expect("write");
    d.deploy(&stack, &file);
    let logs = wait_for(
        Duration::from_secs(30),
        "sidekicks replaced with their primaries",
        || {
            let logs = names("log");
            let paired = logs.iter().all(|log| {
                let web = log.replace("-log-", "-web-");
                match (inspect(log), inspect(&web)) {
                    (Some((id, mode)), Some((web_id, _))) => {
                        mode == format!("container:{web_id}") && !old_logs.contains(&id)
                    }
                    _ => false,
                }
            });
            (logs.len() == 3 && names("web").len() == 3 && paired).then_some(logs)
        },
    );
    let n: u32 = logs[0]
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("slot");
    let r = reach(&d, n);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);

    // A sidekick naming a service that is not there is refused at file:line:column.
    let bad = d.write("bad.yaml", "services:\n  web:\n    image: drover-test/app:1\n  log:\n    image: drover-test/busybox:1\n    network_mode: service:db\n");
    let r = d.try_deploy(&stack, &bad);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.yaml:6:19") && r.stderr.contains("undefined service 'db'"),
        "{}",
        r.stderr
    );
}
