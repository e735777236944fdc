//! `drover logs [-f] NAME`: one container's logs, or every container of a stack with a
//! `name | ` prefix per line.

use api_types::ContainerInfo;
use futures_util::StreamExt;

use crate::Failure;
use crate::client::Client;

pub async fn run(
    client: &Client,
    name: &str,
    follow: bool,
    tail: Option<u64>,
) -> Result<(), Failure> {
    let containers: Vec<ContainerInfo> = client.get("/containers").await?;
    let targets: Vec<String> = if containers.iter().any(|c| c.name == name) {
        vec![name.to_string()]
    } else {
        containers
            .iter()
            .filter(|c| c.stack == name)
            .map(|c| c.name.clone())
            .collect()
    };
    if targets.is_empty() {
        return Err(Failure::input(format!(
            "no container or stack named '{name}' in environment '{}'",
            client.env
        )));
    }
    let prefix = targets.len() > 1;
    let mut query = format!("?follow={follow}");
    if let Some(t) = tail {
        query.push_str(&format!("&tail={t}"));
    }
    let streams = targets.iter().map(|t| {
        let path = format!("/containers/{t}/logs{query}");
        async move {
            let resp = client.stream(&path).await?;
            let mut body = resp.bytes_stream();
            let mut pending = String::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Failure::failed(format!("log stream: {e}")))?;
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    if prefix {
                        out!("{t} | {line}");
                    } else {
                        out!("{line}");
                    }
                }
            }
            if !pending.is_empty() {
                if prefix {
                    outln!("{t} | {pending}");
                } else {
                    outln!("{pending}");
                }
            }
            Ok::<(), Failure>(())
        }
    });
    for r in futures_util::future::join_all(streams).await {
        r?;
    }
    Ok(())
}
