//! The host side of the mesh: the tunnel device's address and route (iproute2) and the
//! isolation and masquerading rules (iptables), applied idempotently. Drover's rules live in
//! chains of its own (`DROVER-MESH*`), each jumped to from one rule, so nothing else on the
//! host is touched and rewriting them never disturbs anyone's rules.

use tokio::process::Command;

/// Forwarded traffic from the tunnel.
const FORWARD_CHAIN: &str = "DROVER-MESH";
/// Traffic from the tunnel to the host itself.
const INPUT_CHAIN: &str = "DROVER-MESH-IN";
/// Masquerading of what leaves the environment.
const NAT_CHAIN: &str = "DROVER-MESH-NAT";
/// Packets with an environment source address that came in on the wrong interface (a
/// container sending with another network's address).
const RAW_CHAIN: &str = "DROVER-MESH-RAW";

async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Address, MTU, state and the environment's route of the tunnel device.
pub async fn configure_device(dev: &str, place: &mesh::Place) -> Result<(), String> {
    let addr = format!("{}/32", place.ip);
    run("ip", &["-4", "addr", "replace", &addr, "dev", dev]).await?;
    run("ip", &["link", "set", "dev", dev, "mtu", "1420", "up"]).await?;
    let env = place.env.to_string();
    let src = place.ip.to_string();
    run(
        "ip",
        &["-4", "route", "replace", &env, "dev", dev, "src", &src],
    )
    .await?;
    Ok(())
}

/// The rules for this host: from the tunnel, established traffic and the allowed
/// (same network) subnet pairs are forwarded, everything else dropped; to the host, only
/// probes and pings; leaving the environment from its subnets, masqueraded; an environment
/// source address arriving on an interface that is not its route (spoofed by a container)
/// dropped before anything else sees it. Written as
/// `iptables -S` lists them, so that an unchanged chain is recognised and left alone.
pub fn rules(allows: &[mesh::Allow], env: mesh::Ipv4Net) -> Rules {
    let mut forward = vec!["-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string()];
    for a in allows {
        forward.push(format!("-s {} -d {} -j ACCEPT", a.src, a.dst));
    }
    forward.push("-j DROP".into());
    let input = vec![
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT".to_string(),
        format!("-p udp -m udp --dport {} -j ACCEPT", mesh::PROBE_PORT),
        // Ping a peer's mesh address, for diagnosis.
        "-p icmp -m icmp --icmp-type 8 -j ACCEPT".to_string(),
        "-j DROP".into(),
    ];
    let nat = vec![format!("-s {env} ! -d {env} -j MASQUERADE")];
    let raw = vec![format!("-s {env} -m rpfilter --invert -j DROP")];
    Rules {
        forward,
        input,
        nat,
        raw,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    forward: Vec<String>,
    input: Vec<String>,
    nat: Vec<String>,
    raw: Vec<String>,
}

/// Makes Drover's chains hold exactly `rules` and be jumped to, rewriting a chain only when
/// it differs.
pub async fn apply_rules(dev: &str, rules: &Rules) -> Result<(), String> {
    sync_chain("filter", FORWARD_CHAIN, &rules.forward).await?;
    sync_chain("filter", INPUT_CHAIN, &rules.input).await?;
    sync_chain("nat", NAT_CHAIN, &rules.nat).await?;
    sync_chain("raw", RAW_CHAIN, &rules.raw).await?;
    ensure_jump("filter", "FORWARD", &["-i", dev, "-j", FORWARD_CHAIN], true).await?;
    ensure_jump("filter", "INPUT", &["-i", dev, "-j", INPUT_CHAIN], true).await?;
    ensure_jump("nat", "POSTROUTING", &["-j", NAT_CHAIN], false).await?;
    ensure_jump("raw", "PREROUTING", &["-j", RAW_CHAIN], true).await?;
    Ok(())
}

async fn sync_chain(table: &str, chain: &str, rules: &[String]) -> Result<(), String> {
    let listed = match run("iptables", &["-w", "-t", table, "-S", chain]).await {
        Ok(s) => s,
        Err(_) => {
            run("iptables", &["-w", "-t", table, "-N", chain]).await?;
            String::new()
        }
    };
    let prefix = format!("-A {chain} ");
    let current: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    if current == rules.iter().map(String::as_str).collect::<Vec<_>>() {
        return Ok(());
    }
    tracing::debug!(table, chain, "mesh: rewriting chain");
    run("iptables", &["-w", "-t", table, "-F", chain]).await?;
    for r in rules {
        let mut args = vec!["-w", "-t", table, "-A", chain];
        args.extend(r.split_whitespace());
        run("iptables", &args).await?;
    }
    Ok(())
}

async fn ensure_jump(table: &str, chain: &str, rule: &[&str], first: bool) -> Result<(), String> {
    let mut check = vec!["-w", "-t", table, "-C", chain];
    check.extend(rule);
    if run("iptables", &check).await.is_ok() {
        return Ok(());
    }
    let mut add = vec!["-w", "-t", table];
    if first {
        add.extend(["-I", chain, "1"]);
    } else {
        add.extend(["-A", chain]);
    }
    add.extend(rule);
    run("iptables", &add).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_allows() {
        let allows = vec![mesh::Allow {
            network: "shop_default".into(),
            src: "10.192.8.0/27".parse().expect("net"),
            dst: "10.192.4.0/27".parse().expect("net"),
        }];
        let r = rules(&allows, "10.192.0.0/16".parse().expect("net"));
        assert_eq!(
            r.forward,
            vec![
                "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "-s 10.192.8.0/27 -d 10.192.4.0/27 -j ACCEPT",
                "-j DROP"
            ]
        );
        assert_eq!(
            r.nat,
            vec!["-s 10.192.0.0/16 ! -d 10.192.0.0/16 -j MASQUERADE"]
        );
    }
}
