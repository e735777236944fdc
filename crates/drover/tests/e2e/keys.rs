//! Service keys of the compose specification that map onto the engine, checked on what the
//! engine was given.

use crate::harness::*;

#[test]
fn service_keys_reach_the_engine() {
    let mut d = Drover::up();
    let stack = unique("keys");
    let fixed = format!("{stack}-fixed-db");
    let file = d.write(
        "keys.yaml",
        &format!(
            "services:
  db:
    image: drover-test/busybox:1
    command: [\"/bin/busybox\", \"sleep\", \"3600\"]
    container_name: {fixed}
    platform: linux
    expose: [\"3306\", \"5000-5001/udp\"]
    stop_signal: SIGINT
    stop_grace_period: 1s
    sysctls: {{net.core.somaxconn: \"1024\"}}
    ulimits: {{nofile: {{soft: 2000, hard: 4000}}}}
    tty: true
    stdin_open: true
    init: true
    shm_size: 32m
    read_only: true
    dns_search: [example.test]
    dns_opt: [\"ndots:2\"]
    runtime: runc
    logging: {{driver: json-file, options: {{max-size: 1m}}}}
    group_add: [\"4242\"]
    oom_score_adj: 300
"
        ),
    );
    d.deploy(&stack, &file);
    let f = |tmpl: &str| {
        docker_ok(&["inspect", "--format", tmpl, &fixed])
            .trim()
            .to_string()
    };
    assert_eq!(f("{{.Name}}"), format!("/{fixed}"));
    assert_eq!(
        f("{{json .Config.ExposedPorts}}"),
        r#"{"3306/tcp":{},"5000/udp":{},"5001/udp":{}}"#
    );
    assert_eq!(f("{{.Config.StopSignal}}"), "SIGINT");
    assert_eq!(
        f("{{index .HostConfig.Sysctls \"net.core.somaxconn\"}}"),
        "1024"
    );
    assert_eq!(
        f("{{json .HostConfig.Ulimits}}"),
        r#"[{"Name":"nofile","Hard":4000,"Soft":2000}]"#
    );
    assert_eq!(
        f("{{.Config.Tty}} {{.Config.OpenStdin}} {{.HostConfig.Init}}"),
        "true true true"
    );
    assert_eq!(
        f("{{.HostConfig.ShmSize}} {{.HostConfig.ReadonlyRootfs}}"),
        "33554432 true"
    );
    assert_eq!(
        f("{{json .HostConfig.DnsSearch}} {{json .HostConfig.DnsOptions}}"),
        r#"["example.test"] ["ndots:2"]"#
    );
    assert_eq!(
        f(
            "{{.HostConfig.Runtime}} {{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}}"
        ),
        "runc json-file 1m"
    );
    assert_eq!(
        f("{{json .HostConfig.GroupAdd}} {{.HostConfig.OomScoreAdj}}"),
        r#"["4242"] 300"#
    );

    // Drover still knows it by its slot: ps, exec and logs use that name.
    let ps = d.ok(&["stack", "ps", &stack]);
    assert!(
        ps.contains(&format!("{stack}-db-1")) && ps.contains("running"),
        "{ps}"
    );
    let r = d.cli(&[
        "exec",
        &format!("{stack}-db-1"),
        "cat",
        "/proc/sys/net/core/somaxconn",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (0, "1024"), "{}", r.stderr);
    // A fixed name with more replicas is refused, at the key.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).expect("read") + "    deploy: {replicas: 2}\n",
    )
    .expect("write");
    let r = d.try_deploy(&stack, &file);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("keys.yaml:5:21: services.db.container_name"),
        "{}",
        r.stderr
    );

    // Several -f files merge, and extends and include read files beside the first.
    d.write(
        "base.yaml",
        "services:\n  app:\n    image: drover-test/app:1\n    environment: [A=1]\n",
    );
    d.write(
        "inc.yaml",
        "services:\n  cache:\n    image: drover-test/busybox:1\n",
    );
    let main = d.write(
        "main.yaml",
        "include: [inc.yaml]\nservices:\n  web:\n    extends: {service: app, file: base.yaml}\n    environment: [B=2]\n",
    );
    let over = d.write(
        "over.yaml",
        "services:\n  web:\n    environment: [A=override]\n",
    );
    let out = d.ok(&[
        "stack",
        "config",
        "-f",
        &main.to_string_lossy(),
        "-f",
        &over.to_string_lossy(),
    ]);
    assert!(
        out.contains("cache:") && out.contains("A: \"override\"") && out.contains("B: \"2\""),
        "{out}"
    );

    // A platform no host has: pending, saying why.
    let other = unique("plat");
    let f = d.write(
        "plat.yaml",
        "services:\n  odd:\n    image: drover-test/app:1\n    platform: linux/s390x\n",
    );
    d.track(&other);
    let r = d.cli(&[
        "stack",
        "deploy",
        "-f",
        &f.to_string_lossy(),
        "-p",
        &other,
        "--detach",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ps = wait_for(
        std::time::Duration::from_secs(10),
        "the pending reason",
        || {
            let ps = d.ok(&["stack", "ps", &other]);
            ps.contains("node.platform.arch == s390x").then_some(ps)
        },
    );
    assert!(ps.contains("pending"), "{ps}");
}

/// The keys a container policy judges (the admin deploying here is allowed all of them).
#[test]
fn privilege_keys_reach_the_engine() {
    let mut d = Drover::up();
    let stack = unique("privs");
    let sleep = "    image: drover-test/busybox:1
    command: [\"/bin/busybox\", \"sleep\", \"3600\"]
    stop_grace_period: 1s
";
    let file = d.write(
        "privs.yaml",
        &format!(
            "services:
  root:
{sleep}    pid: host
  dev:
{sleep}    devices: [\"/dev/null:/dev/xnull:rwm\"]
    cap_add: [NET_ADMIN, cap_sys_time]
    cap_drop: [MKNOD]
    security_opt: [\"no-new-privileges:true\"]
    ipc: shareable
  hostnet:
{sleep}    network_mode: host
    ipc: host
"
        ),
    );
    d.deploy(&stack, &file);
    let f = |service: &str, tmpl: &str| {
        let name = format!("{stack}-{service}-1");
        docker_ok(&["inspect", "--format", tmpl, &name])
            .trim()
            .to_string()
    };
    assert_eq!(
        f("root", "{{.HostConfig.Privileged}} {{.HostConfig.PidMode}}"),
        "false host"
    );
    assert_eq!(
        f(
            "dev",
            "{{json .HostConfig.Devices}} {{json .HostConfig.SecurityOpt}} {{.HostConfig.IpcMode}} {{.HostConfig.Privileged}}"
        ),
        r#"[{"PathOnHost":"/dev/null","PathInContainer":"/dev/xnull","CgroupPermissions":"rwm"}] ["no-new-privileges:true"] shareable false"#
    );
    let caps = f(
        "dev",
        "{{json .HostConfig.CapAdd}} {{json .HostConfig.CapDrop}}",
    );
    assert!(
        caps.contains("NET_ADMIN")
            && caps.to_ascii_uppercase().contains("SYS_TIME")
            && caps.contains("MKNOD"),
        "{caps}"
    );
    assert_eq!(
        f(
            "hostnet",
            "{{.HostConfig.NetworkMode}} {{.HostConfig.IpcMode}} {{len .NetworkSettings.Networks}}"
        ),
        "host host 1"
    );
    assert_eq!(
        f(
            "hostnet",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"
        ),
        "host"
    );

    // What the containers see: the host's processes, the mapped device, the host's network.
    let exec = |service: &str, args: &[&str]| {
        let name = format!("{stack}-{service}-1");
        let mut all = vec!["exec", name.as_str()];
        all.extend_from_slice(args);
        let r = d.cli(&all);
        assert_eq!(r.code, 0, "exec {service} {args:?}: {}", r.stderr);
        r.stdout
    };
    let pid1 = exec("root", &["cat", "/proc/1/cmdline"]);
    assert!(!pid1.contains("sleep"), "PID 1 is the host's: {pid1:?}");
    exec("dev", &["sh", "-c", "echo x > /dev/xnull"]);
    let host_links = std::fs::read_to_string("/proc/net/dev").expect("this host's links");
    let seen = exec("hostnet", &["cat", "/proc/net/dev"]);
    let names = |t: &str| -> Vec<String> {
        let mut v: Vec<String> = t
            .lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&seen), names(&host_links));

    // The ps view is as for any service.
    let ps = d.ok(&["stack", "ps", &stack]);
    for service in ["root", "dev", "hostnet"] {
        assert!(ps.contains(&format!("{stack}-{service}-1")), "{ps}");
    }
    // Contradictions are refused at the key.
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).expect("read") + "    ports: [\"8080\"]\n",
    )
    .expect("write");
    let r = d.try_deploy(&stack, &file);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("services.hostnet.ports: 'ports' cannot be set with network_mode 'host'"),
        "{}",
        r.stderr
    );

    // A privileged container, in a stack of its own: some engines cannot start one (this
    // machine's: the host's capability bounding set lacks one that runc grants), but the
    // engine is given it either way.
    let privileged = unique("privd");
    let file = d.write(
        "privileged.yaml",
        &format!("services:\n  root:\n{sleep}    privileged: true\n    pid: host\n"),
    );
    d.track(&privileged);
    let r = d.try_deploy(&privileged, &file);
    assert!(
        r.code == 0 || r.stderr.contains("unable to apply caps"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    let name = format!("{privileged}-root-1");
    assert_eq!(
        docker_ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.Privileged}} {{.HostConfig.PidMode}}",
            &name
        ]),
        "true host"
    );
}
