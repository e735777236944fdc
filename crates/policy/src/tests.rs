//! Fixture tests: a compose file (read from `/home/me/shop`, so relative binds are
//! absolute) and a policy (`privileged host-namespaces bind=PATH cap=CAP`, or nothing for
//! the default) → the violations, one line each, or `ok`.

use super::*;
use expect_test::{Expect, expect};

fn project(yaml: &str, base_dir: Option<&str>) -> Project {
    let vars = std::collections::BTreeMap::new();
    let input = compose::Input {
        file_name: "c.yml",
        text: yaml,
        project_name: Some("shop"),
        default_name: "shop",
        variables: &vars,
        profiles: &[],
        base_dir,
        files: &compose::NoFiles,
        overrides: &[],
    };
    match compose::load(&input) {
        Ok(l) => l.project,
        Err(e) => panic!("fixture: {e}"),
    }
}

fn policy(words: &str) -> Policy {
    let mut p = Policy::default();
    for w in words.split_whitespace() {
        match w.split_once('=') {
            Some(("bind", path)) => p.allow_binds.push(path.to_owned()),
            Some(("cap", cap)) => p.allow_caps.push(cap.to_owned()),
            _ if w == "privileged" => p.allow_privileged = true,
            _ if w == "host-namespaces" => p.allow_host_namespaces = true,
            _ => panic!("unknown policy word {w}"),
        }
    }
    p
}

fn render(project: &Project, words: &str) -> String {
    let found = check(project, &policy(words));
    if found.is_empty() {
        return "ok\n".to_owned();
    }
    found.iter().map(|v| format!("{v}\n")).collect()
}

fn check_with(yaml: &str, words: &str, expected: Expect) {
    expected.assert_eq(&render(&project(yaml, Some("/home/me/shop")), words));
}

const PLAIN: &str = "services:
  web:
    image: nginx
    cap_add: [chown, CAP_NET_BIND_SERVICE]
    cap_drop: [ALL]
    security_opt: [no-new-privileges:true, no-new-privileges]
    ipc: shareable
    sysctls: {net.core.somaxconn: 1024}
    volumes: [data:/data, {type: tmpfs, target: /tmp}]
    tmpfs: /run
volumes:
  data: {}
";

#[test]
fn what_docker_allows_by_default_is_allowed() {
    check_with(
        PLAIN,
        "",
        expect![[r#"
        ok
    "#]],
    );
}

const EVERYTHING: &str = "services:
  agent:
    image: portainer/agent
    privileged: true
    network_mode: host
    pid: host
    ipc: host
    devices: [/dev/fuse, \"/dev/null:/dev/xnull\"]
    cap_add: [SYS_ADMIN, net_admin, ALL, KILL]
    security_opt: [seccomp=unconfined, \"no-new-privileges:true\", label=disable]
    volumes:
      - /var/run/docker.sock:/var/run/docker.sock
      - ./conf:/conf:ro
      - type: bind
        source: /srv/data
        target: /data
";

#[test]
fn nothing_is_allowed_by_default() {
    check_with(
        EVERYTHING,
        "",
        expect![[r#"
            service 'agent': privileged: privileged containers are not allowed in this environment (drover env policy ENV --allow-privileged)
            service 'agent': network_mode: the host's network namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
            service 'agent': pid: the host's process (PID) namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
            service 'agent': ipc: the host's IPC namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
            service 'agent': devices[0]: device /dev/fuse is not allowed in this environment: a host device needs the trust a privileged container does (drover env policy ENV --allow-privileged)
            service 'agent': devices[1]: device /dev/null is not allowed in this environment: a host device needs the trust a privileged container does (drover env policy ENV --allow-privileged)
            service 'agent': cap_add[0]: capability SYS_ADMIN is beyond Docker's defaults and not allowed in this environment (drover env policy ENV --allow-cap SYS_ADMIN)
            service 'agent': cap_add[1]: capability NET_ADMIN is beyond Docker's defaults and not allowed in this environment (drover env policy ENV --allow-cap NET_ADMIN)
            service 'agent': cap_add[2]: capability ALL (every capability) is not allowed in this environment (drover env policy ENV --allow-privileged)
            service 'agent': security_opt[0]: security option 'seccomp=unconfined' is not allowed in this environment (only no-new-privileges is; drover env policy ENV --allow-privileged)
            service 'agent': security_opt[2]: security option 'label=disable' is not allowed in this environment (only no-new-privileges is; drover env policy ENV --allow-privileged)
            service 'agent': volumes[0]: bind of /var/run/docker.sock gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
            service 'agent': volumes[0]: bind of /var/run/docker.sock is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
            service 'agent': volumes[1]: bind of /home/me/shop/conf is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
            service 'agent': volumes[2]: bind of /srv/data is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
        "#]],
    );
}

#[test]
fn privileged_allows_devices_capabilities_options_and_the_socket() {
    check_with(
        EVERYTHING,
        "privileged",
        expect![[r#"
            service 'agent': network_mode: the host's network namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
            service 'agent': pid: the host's process (PID) namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
            service 'agent': ipc: the host's IPC namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
            service 'agent': volumes[0]: bind of /var/run/docker.sock is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
            service 'agent': volumes[1]: bind of /home/me/shop/conf is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
            service 'agent': volumes[2]: bind of /srv/data is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
        "#]],
    );
    check_with(
        EVERYTHING,
        "privileged host-namespaces bind=/var/run bind=/srv bind=/home/me/shop",
        expect![[r#"
            ok
        "#]],
    );
}

#[test]
fn capabilities_are_allowed_one_by_one() {
    let yaml = "services:
  vpn:
    image: wg
    cap_add: [NET_ADMIN, cap_sys_module, SYS_TIME]
";
    check_with(
        yaml,
        "",
        expect![[r#"
        service 'vpn': cap_add[0]: capability NET_ADMIN is beyond Docker's defaults and not allowed in this environment (drover env policy ENV --allow-cap NET_ADMIN)
        service 'vpn': cap_add[1]: capability SYS_MODULE is beyond Docker's defaults and not allowed in this environment (drover env policy ENV --allow-cap SYS_MODULE)
        service 'vpn': cap_add[2]: capability SYS_TIME is beyond Docker's defaults and not allowed in this environment (drover env policy ENV --allow-cap SYS_TIME)
    "#]],
    );
    check_with(
        yaml,
        "cap=net_admin cap=CAP_SYS_MODULE",
        expect![[r#"
            service 'vpn': cap_add[2]: capability SYS_TIME is beyond Docker's defaults and not allowed in this environment (drover env policy ENV --allow-cap SYS_TIME)
        "#]],
    );
    check_with(
        yaml,
        "cap=ALL",
        expect![[r#"
        ok
    "#]],
    );
}

#[test]
fn binds_lie_under_an_allowed_path_compared_lexically() {
    let yaml = "services:
  app:
    image: app
    volumes:
      - /srv/data:/a
      - /srv/data/x/:/b
      - /srv/database:/c
      - /srv/data/../database:/d
      - /srv/./data/./y:/e
      - /srv:/f
      - ../other:/g
";
    check_with(
        yaml,
        "bind=/srv/data",
        expect![[r#"
        service 'app': volumes[2]: bind of /srv/database is outside the host paths this environment allows (/srv/data; drover env policy ENV --allow-bind PATH)
        service 'app': volumes[3]: bind of /srv/database is outside the host paths this environment allows (/srv/data; drover env policy ENV --allow-bind PATH)
        service 'app': volumes[5]: bind of /srv is outside the host paths this environment allows (/srv/data; drover env policy ENV --allow-bind PATH)
        service 'app': volumes[6]: bind of /home/me/other is outside the host paths this environment allows (/srv/data; drover env policy ENV --allow-bind PATH)
    "#]],
    );
    // The allowed path is normalised too.
    let p = project(yaml, Some("/home/me/shop"));
    for same in ["bind=/srv/data/", "bind=/srv/data/x/../../data"] {
        assert_eq!(render(&p, same), render(&p, "bind=/srv/data"), "{same}");
    }
    check_with(
        yaml,
        "bind=/",
        expect![[r#"
        ok
    "#]],
    );
}

#[test]
fn the_engine_socket_needs_privileged_even_under_an_allowed_path() {
    let yaml = "services:
  ci:
    image: runner
    volumes:
      - /run/docker.sock:/var/run/docker.sock
      - /var/run:/host/run
      - /:/host
      - /var/run/../run/./docker.sock:/s
      - /var/run/docker.sock.d:/t
      - /run/containerd:/c
";
    check_with(
        yaml,
        "bind=/",
        expect![[r#"
        service 'ci': volumes[0]: bind of /run/docker.sock gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[1]: bind of /var/run (which holds /var/run/docker.sock) gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[2]: bind of / (which holds /var/run/docker.sock) gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[3]: bind of /var/run/docker.sock gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[5]: bind of /run/containerd (which holds /run/containerd/containerd.sock) gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
    "#]],
    );
    check_with(
        yaml,
        "bind=/ privileged",
        expect![[r#"
        ok
    "#]],
    );
    // Outside every allowed path and the socket: both rules say so.
    check_with(
        yaml,
        "bind=/home",
        expect![[r#"
        service 'ci': volumes[0]: bind of /run/docker.sock gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[0]: bind of /run/docker.sock is outside the host paths this environment allows (/home; drover env policy ENV --allow-bind PATH)
        service 'ci': volumes[1]: bind of /var/run (which holds /var/run/docker.sock) gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[1]: bind of /var/run is outside the host paths this environment allows (/home; drover env policy ENV --allow-bind PATH)
        service 'ci': volumes[2]: bind of / (which holds /var/run/docker.sock) gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[2]: bind of / is outside the host paths this environment allows (/home; drover env policy ENV --allow-bind PATH)
        service 'ci': volumes[3]: bind of /var/run/docker.sock gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[3]: bind of /var/run/docker.sock is outside the host paths this environment allows (/home; drover env policy ENV --allow-bind PATH)
        service 'ci': volumes[4]: bind of /var/run/docker.sock.d is outside the host paths this environment allows (/home; drover env policy ENV --allow-bind PATH)
        service 'ci': volumes[5]: bind of /run/containerd (which holds /run/containerd/containerd.sock) gives control of the container engine, so of the host: not allowed in this environment (drover env policy ENV --allow-privileged)
        service 'ci': volumes[5]: bind of /run/containerd is outside the host paths this environment allows (/home; drover env policy ENV --allow-bind PATH)
    "#]],
    );
}

#[test]
fn sidekicks_are_services_too() {
    let yaml = "services:
  web:
    image: nginx
  shell:
    image: busybox
    network_mode: service:web
    pid: host
    volumes: [/etc:/host-etc:ro]
  watch:
    image: busybox
    x-drover: {sidekick_of: web}
    privileged: true
";
    check_with(
        yaml,
        "",
        expect![[r#"
        service 'shell': pid: the host's process (PID) namespace is not allowed in this environment (drover env policy ENV --allow-host-namespaces)
        service 'shell': volumes[0]: bind of /etc is outside the host paths this environment allows (none; drover env policy ENV --allow-bind PATH)
        service 'watch': privileged: privileged containers are not allowed in this environment (drover env policy ENV --allow-privileged)
    "#]],
    );
}

#[test]
fn relative_binds_cannot_be_allowed() {
    // A project whose binds were not made absolute (JSON through the API, say).
    let p = project(
        "services:\n  app:\n    image: app\n    volumes: [./data:/data]\n",
        None,
    );
    expect![[r#"
        service 'app': volumes[0]: bind of './data' is not allowed: only absolute host paths can be allowed (drover env policy ENV --allow-bind PATH)
    "#]].assert_eq(&render(&p, "bind=/"));
}

#[test]
fn a_policy_is_stored_as_json_and_read_back_with_defaults() {
    let p = Policy {
        allow_privileged: true,
        allow_binds: vec!["/srv".into()],
        ..Policy::default()
    };
    let json = serde_json::to_string(&p).expect("json");
    expect![[r#"{"allow_privileged":true,"allow_host_namespaces":false,"allow_binds":["/srv"],"allow_caps":[]}"#]].assert_eq(&json);
    assert_eq!(serde_json::from_str::<Policy>(&json).ok(), Some(p));
    assert_eq!(
        serde_json::from_str::<Policy>("{}").ok(),
        Some(Policy::default())
    );
}

#[test]
fn a_policy_is_normalised_or_refused() {
    let p =
        policy("bind=/srv/data/ bind=/srv/./data bind=/mnt/../opt cap=cap_net_admin cap=NET_ADMIN");
    expect![[r#"Ok(Policy { allow_privileged: false, allow_host_namespaces: false, allow_binds: ["/srv/data", "/opt"], allow_caps: ["NET_ADMIN"] })"#]].assert_eq(&format!("{:?}", p.normalised()));
    expect![[r#"Err("allowed bind path 'srv' must be absolute")"#]]
        .assert_eq(&format!("{:?}", policy("bind=srv").normalised()));
    expect![[r#"Err("invalid capability 'NET-ADMIN'")"#]]
        .assert_eq(&format!("{:?}", policy("cap=NET-ADMIN").normalised()));
}
