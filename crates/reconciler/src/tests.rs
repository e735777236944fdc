//! Data-driven tests: a fixture is a few lines describing desired and observed state,
//! the expectation is the plan, one line per action or wait.
//!
//! ```text
//! want NAME hash=H [restart=always] [dep=SVC:started|healthy|done] [healthcheck] [singleton]
//!      [recreate-unhealthy] [netof=SVC] [volfrom=SVC]   (sidekicks of SVC)
//! have NAME hash=H state=running|exited|created|dead [health=healthy|starting|unhealthy]
//!      [exit=N] [on=NET,NET] [joined=NAME]  (shares the network of container NAME)
//! net NAME owned|foreign        vol NAME        fail NAME count=N last=MS        now MS
//! unhealthy NAME since=MS (seen unhealthy since)
//! fenced
//! ```
//! Container names are `s-<service>-1` in stack `s`; the service is the middle part.

use super::*;
use expect_test::{Expect, expect};

fn parse(fixture: &str) -> (Desired, Vec<ObservedContainer>, Env) {
    let mut desired = Desired::default();
    let mut observed = Vec::new();
    let mut env = Env::default();
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let kind = words.next().unwrap_or_default();
        let name = words.next().unwrap_or_default().to_string();
        let kv: BTreeMap<&str, &str> = words
            .map(|w| w.split_once('=').unwrap_or((w, "")))
            .collect();
        let service = name.split('-').nth(1).unwrap_or_default().to_string();
        match kind {
            "want" => {
                let mut spec = compose::Service {
                    image: Some("img".into()),
                    ..Default::default()
                };
                if kv.contains_key("singleton") {
                    spec.extensions
                        .insert("x-drover".into(), serde_json::json!({"singleton": true}));
                }
                if kv.get("restart") == Some(&"always") {
                    spec.restart = RestartPolicy::Always;
                }
                if kv.contains_key("healthcheck") {
                    spec.healthcheck = Some(compose::Healthcheck {
                        test: vec!["CMD".into(), "true".into()],
                        ..Default::default()
                    });
                }
                if let Some(svc) = kv.get("netof") {
                    spec.network_mode = Some(format!("service:{svc}"));
                }
                if let Some(svc) = kv.get("volfrom") {
                    spec.volumes_from.push(svc.to_string());
                }
                if let Some(dep) = kv.get("dep") {
                    let (svc, cond) = dep.split_once(':').unwrap_or((dep, "started"));
                    let condition = match cond {
                        "healthy" => Condition::ServiceHealthy,
                        "done" => Condition::ServiceCompletedSuccessfully,
                        _ => Condition::ServiceStarted,
                    };
                    spec.depends_on.insert(
                        svc.to_string(),
                        compose::Dependency {
                            condition,
                            required: true,
                        },
                    );
                }
                desired.containers.push(DesiredContainer {
                    name: name.clone(),
                    env: "default".into(),
                    stack: "s".into(),
                    service,
                    slot: 1,
                    spec_hash: kv.get("hash").unwrap_or(&"h").to_string(),
                    spec,
                    networks: vec![],
                    volume_names: BTreeMap::new(),
                    dns: vec![],
                    replace_unhealthy: kv.contains_key("recreate-unhealthy"),
                    registry_auth: None,
                    files: Vec::new(),
                    file_binds: Vec::new(),
                });
            }
            "have" => observed.push(ObservedContainer {
                id: format!("id-{name}"),
                name: name.clone(),
                env: "default".into(),
                stack: "s".into(),
                service,
                slot: 1,
                spec_hash: kv.get("hash").unwrap_or(&"h").to_string(),
                state: match kv.get("state").copied().unwrap_or("running") {
                    "exited" => ContainerState::Exited,
                    "created" => ContainerState::Created,
                    "dead" => ContainerState::Dead,
                    _ => ContainerState::Running,
                },
                health: match kv.get("health").copied() {
                    Some("healthy") => Some(Health::Healthy),
                    Some("starting") => Some(Health::Starting),
                    Some(_) => Some(Health::Unhealthy),
                    None => None,
                },
                exit_code: kv.get("exit").and_then(|e| e.parse().ok()),
                image: "img".into(),
                status: String::new(),
                addrs: kv
                    .get("on")
                    .map(|n| {
                        n.split(',')
                            .map(|n| (n.to_string(), std::net::Ipv4Addr::UNSPECIFIED))
                            .collect()
                    })
                    .unwrap_or_default(),
                network_of: kv.get("joined").map(|n| format!("id-{n}")),
            }),
            "dnet" => desired.networks.push(DesiredNetwork {
                name,
                env: "default".into(),
                stack: "s".into(),
                driver: None,
                internal: false,
                external: kv.contains_key("external"),
                labels: BTreeMap::new(),
            }),
            "dvol" => desired.volumes.push(DesiredVolume {
                name,
                env: "default".into(),
                stack: "s".into(),
                driver: None,
                external: false,
                labels: BTreeMap::new(),
            }),
            "net" => {
                env.networks.insert(name, kv.contains_key("owned"));
            }
            "vol" => {
                env.volumes.insert(name);
            }
            "fail" => {
                env.failures.insert(
                    name,
                    Failure {
                        count: kv.get("count").and_then(|c| c.parse().ok()).unwrap_or(1),
                        last_ms: kv.get("last").and_then(|c| c.parse().ok()).unwrap_or(0),
                    },
                );
            }
            "now" => env.now_ms = name.parse().unwrap_or(0),
            "unhealthy" => {
                let since = kv.get("since").and_then(|c| c.parse().ok()).unwrap_or(0);
                env.unhealthy_since.insert(name, since);
            }
            "fenced" => env.fenced = true,
            other => panic!("unknown fixture line kind {other:?}"),
        }
    }
    (desired, observed, env)
}

#[derive(Default)]
struct Env {
    networks: BTreeMap<String, bool>,
    volumes: BTreeSet<String>,
    failures: BTreeMap<String, Failure>,
    now_ms: u64,
    fenced: bool,
    unhealthy_since: BTreeMap<String, u64>,
}

fn check(fixture: &str, expect: Expect) {
    let (desired, observed, env) = parse(fixture);
    let plan = reconcile(&Input {
        desired: &desired,
        observed: &observed,
        networks: &env.networks,
        volumes: &env.volumes,
        failures: &env.failures,
        unhealthy_since: &env.unhealthy_since,
        now_ms: env.now_ms,
        fenced: env.fenced,
    });
    let mut out = String::new();
    for a in &plan.actions {
        let line = match a {
            Action::CreateNetwork(n) => format!("create-network {}", n.name),
            Action::CreateVolume(v) => format!("create-volume {}", v.name),
            Action::Run(c) => format!("run {}", c.name),
            Action::Create(c) => format!("create {}", c.name),
            Action::Replace { old_id, container } => {
                format!("replace {old_id} with {}", container.name)
            }
            Action::Recreate { old_id, container } => {
                format!("recreate {old_id} as {} (unhealthy)", container.name)
            }
            Action::Start { id, .. } => format!("start {id}"),
            Action::Remove { id, .. } => format!("remove {id}"),
            Action::Kill { id, .. } => format!("kill {id}"),
            Action::RemoveNetwork { name } => format!("remove-network {name}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    for (name, why) in &plan.waiting {
        out.push_str(&format!("wait {name}: {why}\n"));
    }
    expect.assert_eq(&out);
}

#[test]
fn converged_state_needs_nothing() {
    check(
        "want s-web-1 hash=a\nhave s-web-1 hash=a state=running\ndnet s_default\nnet s_default owned",
        expect![""],
    );
}

#[test]
fn missing_container_is_run_after_its_network() {
    check(
        "want s-web-1\ndnet s_default",
        expect![[r#"
            create-network s_default
            run s-web-1
        "#]],
    );
    check(
        "want s-web-1\ndnet s_default\nnet s_default owned",
        expect![[r#"
            run s-web-1
        "#]],
    );
}

#[test]
fn external_network_is_never_created() {
    check(
        "want s-web-1\ndnet shared external",
        expect![[r#"
            run s-web-1
        "#]],
    );
}

#[test]
fn volumes_are_created_but_never_removed() {
    check(
        "want s-db-1\ndvol s_data",
        expect![[r#"
            create-volume s_data
            run s-db-1
        "#]],
    );
    check("vol s_data\nvol other", expect![""]);
}

#[test]
fn changed_spec_is_replaced_and_unchanged_left_alone() {
    check(
        "want s-web-1 hash=new\nwant s-db-1 hash=same\nhave s-web-1 hash=old\nhave s-db-1 hash=same",
        expect![[r#"
            replace id-s-web-1 with s-web-1
        "#]],
    );
}

#[test]
fn dead_container_is_replaced() {
    check(
        "want s-web-1\nhave s-web-1 state=dead",
        expect![[r#"
            replace id-s-web-1 with s-web-1
        "#]],
    );
}

#[test]
fn exited_container_follows_restart_policy() {
    check(
        "want s-web-1 restart=always\nhave s-web-1 state=exited exit=137",
        expect![[r#"
            start id-s-web-1
        "#]],
    );
    // `restart: no` (the compose default): an exited container stays exited.
    check(
        "want s-job-1\nhave s-job-1 state=exited exit=0",
        expect![""],
    );
}

#[test]
fn created_container_is_started() {
    check(
        "want s-web-1\nhave s-web-1 state=created",
        expect![[r#"
            start id-s-web-1
        "#]],
    );
}

#[test]
fn undesired_containers_and_networks_are_removed() {
    check(
        "have s-old-1 on=s_default\nnet s_default owned\nnet bridge",
        expect![[r#"
            remove id-s-old-1
        "#]],
    );
    // Once no container is attached to it, an owned network goes; foreign ones stay.
    check(
        "net s_default owned\nnet bridge",
        expect![[r#"
            remove-network s_default
        "#]],
    );
    // Another stack's containers on the host do not keep it; one still attached does.
    check(
        "want t-web-1\nhave t-web-1 on=t_default\ndnet t_default\nnet t_default owned\n\
         net s_default owned\nnet u_default owned\nhave u-old-1 state=exited on=u_default",
        expect![[r#"
            remove id-u-old-1
            remove-network s_default
        "#]],
    );
}

#[test]
fn depends_on_conditions_gate_start() {
    let base = "want s-db-1 healthcheck\nwant s-web-1 dep=db:healthy\n";
    check(
        base,
        expect![[r#"
            run s-db-1
            create s-web-1
            wait s-web-1: waiting for db to be healthy
        "#]],
    );
    check(
        &format!("{base}have s-db-1 health=starting"),
        expect![[r#"
            create s-web-1
            wait s-web-1: waiting for db to be healthy
        "#]],
    );
    check(
        &format!("{base}have s-db-1 health=healthy"),
        expect![[r#"
            run s-web-1
        "#]],
    );
    check(
        "want s-migrate-1\nwant s-app-1 dep=migrate:done\nhave s-migrate-1 state=running",
        expect![[r#"
            create s-app-1
            wait s-app-1: waiting for migrate to complete successfully
        "#]],
    );
    check(
        "want s-migrate-1\nwant s-app-1 dep=migrate:done\nhave s-migrate-1 state=exited exit=0",
        expect![[r#"
            run s-app-1
        "#]],
    );
    check(
        "want s-db-1\nwant s-web-1 dep=db:started\nhave s-db-1 state=running",
        expect![[r#"
            run s-web-1
        "#]],
    );
}

#[test]
fn dependency_with_stale_spec_does_not_count() {
    check(
        "want s-db-1 hash=new\nwant s-web-1 dep=db:started\nhave s-db-1 hash=old",
        expect![[r#"
            replace id-s-db-1 with s-db-1
            create s-web-1
            wait s-web-1: waiting for db to start
        "#]],
    );
}

#[test]
fn failures_back_off_exponentially() {
    check(
        "want s-web-1\nfail s-web-1 count=3 last=1000\nnow 3000",
        expect![[r#"
            wait s-web-1: retrying in 2s after 3 failure(s)
        "#]],
    );
    check(
        "want s-web-1\nfail s-web-1 count=3 last=1000\nnow 5000",
        expect![[r#"
            run s-web-1
        "#]],
    );
}

#[test]
fn backoff_is_capped() {
    assert_eq!(backoff_ms(1), 1000);
    assert_eq!(backoff_ms(2), 2000);
    assert_eq!(backoff_ms(50), 60_000);
}

#[test]
fn a_fenced_agent_removes_its_singletons_and_keeps_the_rest() {
    check(
        "want s-db-1 singleton\nwant s-web-1\nhave s-db-1\nhave s-web-1\nfenced",
        expect![[r#"
            kill id-s-db-1
        "#]],
    );
    check("want s-db-1 singleton\nfenced", expect![""]);
    check("want s-db-1 singleton\nhave s-db-1", expect![""]);
}

#[test]
fn unhealthy_containers_are_recreated_as_their_policy_says_with_backoff() {
    // Unhealthy for 2 s: recreated; not asked to: left; starting: left.
    check(
        "want s-web-1 recreate-unhealthy\nhave s-web-1 state=running health=unhealthy\n\
         unhealthy s-web-1 since=1000\nnow 3000\n\
         want s-db-1\nhave s-db-1 state=running health=unhealthy\nunhealthy s-db-1 since=0\n\
         want s-api-1 recreate-unhealthy\nhave s-api-1 state=running health=starting",
        expect![[r#"
            recreate id-s-web-1 as s-web-1 (unhealthy)
        "#]],
    );
    // Just turned unhealthy: it settles first (its siblings may be failing too).
    check(
        "want s-web-1 recreate-unhealthy\nhave s-web-1 state=running health=unhealthy\n\
         unhealthy s-web-1 since=1000\nnow 1500",
        expect![[r#"
            wait s-web-1: unhealthy: recreating in 2s
        "#]],
    );
    // Recreated twice already, 1.5 s ago: the next waits for the backoff (2 s).
    check(
        "want s-web-1 recreate-unhealthy\nhave s-web-1 state=running health=unhealthy\n\
         unhealthy s-web-1 since=0\nfail s-web-1 count=2 last=1000\nnow 2500",
        expect![[r#"
            wait s-web-1: unhealthy: recreating in 1s after 2 recreation(s)
        "#]],
    );
    check(
        "want s-web-1 recreate-unhealthy\nhave s-web-1 state=running health=unhealthy\n\
         unhealthy s-web-1 since=0\nfail s-web-1 count=2 last=1000\nnow 3000",
        expect![[r#"
            recreate id-s-web-1 as s-web-1 (unhealthy)
        "#]],
    );
    // A new spec replaces it anyway (and an old-spec unhealthy one is not "recreated").
    check(
        "want s-web-1 hash=b recreate-unhealthy\nhave s-web-1 hash=a state=running health=unhealthy",
        expect![[r#"
            replace id-s-web-1 with s-web-1
        "#]],
    );
}

#[test]
fn sidekicks_wait_for_their_primary_and_follow_it() {
    // Neither exists: the primary runs, the sidekicks wait (not even created: the engine
    // resolves the primary's name at creation).
    check(
        "want s-web-1 hash=w\nwant s-log-1 hash=l netof=web\nwant s-bak-1 hash=b volfrom=web",
        expect![[r#"
            run s-web-1
            wait s-log-1: waiting for s-web-1 to run
            wait s-bak-1: waiting for s-web-1 to exist
        "#]],
    );
    // The primary exists but is not running yet: volumes may be shared, the network not.
    check(
        "want s-web-1 hash=w\nwant s-log-1 hash=l netof=web\nwant s-bak-1 hash=b volfrom=web
         have s-web-1 hash=w state=created",
        expect![[r#"
            start id-s-web-1
            run s-bak-1
            wait s-log-1: waiting for s-web-1 to run
        "#]],
    );
    // The primary runs an old spec (about to be replaced): wait for the new one.
    check(
        "want s-web-1 hash=w2\nwant s-log-1 hash=l netof=web
         have s-web-1 hash=w1",
        expect![[r#"
            replace id-s-web-1 with s-web-1
            wait s-log-1: waiting for s-web-1 to run
        "#]],
    );
    // Running, and the sidekick joined it: nothing to do.
    check(
        "want s-web-1 hash=w\nwant s-log-1 hash=l netof=web
         have s-web-1 hash=w\nhave s-log-1 hash=l joined=s-web-1",
        expect![[r#""#]],
    );
    // The primary's replica was replaced: the sidekick joined a container that is gone.
    check(
        "want s-web-1 hash=w\nwant s-log-1 hash=l netof=web
         have s-web-1 hash=w\nhave s-log-1 hash=l joined=s-old-1",
        expect![[r#"
            replace id-s-log-1 with s-log-1
        "#]],
    );
}
