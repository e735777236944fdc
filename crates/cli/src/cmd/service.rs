//! `drover service ls [STACK]` and `drover service scale STACK/SERVICE=N ...`.

use std::time::Duration;

use api_types::{DeployResponse, ScaleRequest, StackDetail, StackSummary};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

pub async fn ls(client: &Client, stack: Option<&str>) -> Result<(), Failure> {
    let stacks: Vec<String> = match stack {
        Some(s) => vec![s.to_string()],
        None => {
            let all: Vec<StackSummary> = client.get("/stacks").await?;
            all.into_iter().map(|s| s.name).collect()
        }
    };
    let mut rows = Vec::new();
    for name in stacks {
        let detail: StackDetail = client.get(&format!("/stacks/{name}")).await?;
        for svc in &detail.services {
            let healthy = svc
                .containers
                .iter()
                .filter(|c| c.health.as_deref() == Some("healthy"))
                .count();
            let checked = svc.containers.iter().any(|c| c.health.is_some());
            rows.push(vec![
                format!("{name}/{}", svc.name),
                format!("{}/{}", svc.running, svc.containers.len()),
                if checked {
                    format!("{healthy}/{}", svc.containers.len())
                } else {
                    "-".into()
                },
                svc.image.clone(),
            ]);
        }
    }
    table(&["SERVICE", "RUNNING", "HEALTHY", "IMAGE"], &rows);
    Ok(())
}

/// `STACK/SERVICE=N` → its parts.
pub fn parse_target(arg: &str) -> Result<(String, String, u32), Failure> {
    let bad = || {
        Failure::input(format!(
            "'{arg}': expected STACK/SERVICE=REPLICAS, e.g. shop/web=3"
        ))
    };
    let (target, n) = arg.split_once('=').ok_or_else(bad)?;
    let (stack, service) = target.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    if stack.is_empty() || service.is_empty() {
        return Err(bad());
    }
    Ok((stack.to_string(), service.to_string(), n))
}

pub async fn scale(
    client: &Client,
    targets: &[String],
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    let parsed = targets
        .iter()
        .map(|t| parse_target(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut stacks = Vec::new();
    for (stack, service, n) in parsed {
        let resp: DeployResponse = client
            .post(
                &format!("/stacks/{stack}/services/{service}/scale"),
                &ScaleRequest { replicas: n },
            )
            .await?;
        outln!(
            "{stack}/{service} scaled to {n} (stack revision {})",
            resp.stack.revision
        );
        stacks.retain(|(s, _)| *s != stack);
        stacks.push((stack, resp.stack.revision));
    }
    if detach {
        return Ok(());
    }
    for (stack, revision) in stacks {
        crate::cmd::stack_deploy::wait(client, &stack, revision, Duration::from_secs(timeout))
            .await?;
    }
    Ok(())
}

/// `drover service restart STACK/SERVICE`: every container replaced, rolled like an upgrade.
pub async fn restart(
    client: &Client,
    target: &str,
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    act(client, target, "restart", "restarting", detach, timeout).await
}

/// `drover service rollback STACK/SERVICE`: the service as in the previous revision.
pub async fn rollback(
    client: &Client,
    target: &str,
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    let said = "back to its previous revision";
    act(client, target, "rollback", said, detach, timeout).await
}

/// Posts `action` on a service, says what it made, and follows the stack unless `detach`.
async fn act(
    client: &Client,
    target: &str,
    action: &str,
    said: &str,
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    let (stack, service) = target
        .split_once('/')
        .filter(|(s, v)| !s.is_empty() && !v.is_empty())
        .ok_or_else(|| Failure::input(format!("'{target}': expected STACK/SERVICE")))?;
    let resp: DeployResponse = client
        .post_empty(&format!("/stacks/{stack}/services/{service}/{action}"))
        .await?;
    outln!(
        "{stack}/{service} {said} (stack revision {})",
        resp.stack.revision
    );
    if detach {
        return Ok(());
    }
    let timeout = Duration::from_secs(timeout);
    crate::cmd::stack_deploy::wait(client, stack, resp.stack.revision, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_targets() {
        assert_eq!(
            parse_target("shop/web=3").ok(),
            Some(("shop".into(), "web".into(), 3))
        );
        for bad in [
            "shop/web",
            "web=3",
            "shop/web=x",
            "/web=1",
            "shop/=1",
            "shop/web=-1",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
