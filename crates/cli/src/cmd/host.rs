//! `drover host inspect|label|drain|rm|token create`. A host is named by its id, a unique
//! id prefix, or its name.

use api_types::{
    DrainRequest, HostDetail, HostInfo, HostLabels, HostToken, HostTokenInfo, NewHostToken,
};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

/// Resolves a host argument to its id.
async fn resolve(client: &Client, arg: &str) -> Result<HostInfo, Failure> {
    let hosts: Vec<HostInfo> = client.get("/hosts").await?;
    if let Some(h) = hosts.iter().find(|h| h.id == arg) {
        return Ok(h.clone());
    }
    let matches: Vec<&HostInfo> = hosts
        .iter()
        .filter(|h| h.name == arg || h.id.starts_with(arg))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Failure::input(format!(
            "no host '{arg}' in environment '{}'",
            client.env
        ))),
        many => Err(Failure::input(format!(
            "'{arg}' matches {} hosts: use the id",
            many.len()
        ))),
    }
}

pub async fn inspect(client: &Client, arg: &str) -> Result<(), Failure> {
    let h = resolve(client, arg).await?;
    let detail: HostDetail = client.get(&format!("/hosts/{}", h.id)).await?;
    let text = serde_json::to_string_pretty(&detail).map_err(|e| Failure::failed(e.to_string()))?;
    outln!("{text}");
    Ok(())
}

pub async fn label(client: &Client, arg: &str, changes: &[String]) -> Result<(), Failure> {
    let h = resolve(client, arg).await?;
    let mut labels = h.user_labels.clone();
    for c in changes {
        if let Some((k, v)) = c.split_once('=') {
            labels.insert(k.to_string(), v.to_string());
        } else if let Some(k) = c.strip_suffix('-') {
            labels.remove(k);
        } else {
            return Err(Failure::input(format!(
                "label change {c:?}: use KEY=VALUE to set or KEY- to remove"
            )));
        }
    }
    let h: HostInfo = client
        .put(&format!("/hosts/{}/labels", h.id), &HostLabels { labels })
        .await?;
    let shown: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    outln!("host {} labels: {}", h.name, shown.join(" "));
    Ok(())
}

pub async fn drain(client: &Client, arg: &str, drain: bool) -> Result<(), Failure> {
    let h = resolve(client, arg).await?;
    let h: HostInfo = client
        .post(&format!("/hosts/{}/drain", h.id), &DrainRequest { drain })
        .await?;
    if drain {
        outln!(
            "host {} is draining: its containers move to other hosts",
            h.name
        );
    } else {
        outln!("host {} is schedulable again", h.name);
    }
    Ok(())
}

pub async fn rm(client: &Client, arg: &str) -> Result<(), Failure> {
    let h = resolve(client, arg).await?;
    client.delete(&format!("/hosts/{}", h.id)).await?;
    outln!("host {} removed", h.name);
    Ok(())
}

pub async fn token_create(
    client: &Client,
    url: &str,
    ttl: Option<&str>,
    uses: Option<u64>,
) -> Result<(), Failure> {
    let ttl_secs = match ttl {
        None => None,
        Some(t) => {
            let ns =
                compose::parse_duration(t).map_err(|e| Failure::input(format!("--ttl: {e}")))?;
            if ns < 1_000_000_000 {
                return Err(Failure::input(format!(
                    "--ttl: {t} is shorter than a second"
                )));
            }
            Some(ns / 1_000_000_000)
        }
    };
    let body = NewHostToken { ttl_secs, uses };
    let t: HostToken = client.post("/hosts/tokens", &body).await?;
    let server = t.server.as_deref().unwrap_or(url);
    let mut limits = Vec::new();
    if let Some(e) = t.expires_ms {
        limits.push(format!("expires {}", crate::cmd::time(e)));
    }
    if let Some(u) = t.uses {
        limits.push(format!("{u} use(s)"));
    }
    let limits = if limits.is_empty() {
        String::new()
    } else {
        format!(" ({})", limits.join(", "))
    };
    let hint = if t.server.is_some() {
        ""
    } else {
        " (replace the URL with an address the host can reach, or start the server with --advertise)"
    };
    outln!(
        "Registration token {}{limits}. Run this on each host to add{hint}:",
        t.id
    );
    let pin = t
        .ca_hash
        .map(|h| format!(" --ca-hash {h}"))
        .unwrap_or_default();
    outln!("drover agent --server {server} --token {}{pin}", t.token);
    Ok(())
}

pub async fn token_ls(client: &Client) -> Result<(), Failure> {
    let tokens: Vec<HostTokenInfo> = client.get("/hosts/tokens").await?;
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                crate::cmd::time(t.created_ms),
                t.expires_ms.map_or("never".into(), crate::cmd::time),
                t.uses_left.map_or("unlimited".into(), |u| u.to_string()),
            ]
        })
        .collect();
    table(&["ID", "CREATED", "EXPIRES", "USES LEFT"], &rows);
    Ok(())
}

pub async fn token_rm(client: &Client, id: &str) -> Result<(), Failure> {
    client.delete(&format!("/hosts/tokens/{id}")).await?;
    outln!("token {id} removed");
    Ok(())
}
