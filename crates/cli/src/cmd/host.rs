//! `drover host inspect|label|drain|rm|token create`. A host is named by its id, a unique
//! id prefix, or its name.

use api_types::{DrainRequest, HostDetail, HostInfo, HostLabels, HostToken};

use crate::Failure;
use crate::client::Client;

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

pub async fn rm(client: &Client, arg: &str, force: bool) -> Result<(), Failure> {
    let h = resolve(client, arg).await?;
    client
        .delete(&format!("/hosts/{}?force={force}", h.id))
        .await?;
    outln!("host {} removed", h.name);
    Ok(())
}

pub async fn token_create(client: &Client, url: &str) -> Result<(), Failure> {
    let t: HostToken = client.post("/hosts/tokens", &serde_json::json!({})).await?;
    outln!("Run this on the host to add (replace the URL with an address the host can reach):");
    outln!("drover agent --server {url} --token {}", t.token);
    Ok(())
}
