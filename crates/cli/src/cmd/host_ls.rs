//! `drover host ls`

use api_types::HostInfo;

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

fn gib(bytes: u64) -> String {
    format!("{:.1}G", bytes as f64 / (1u64 << 30) as f64)
}

pub async fn run(client: &Client) -> Result<(), Failure> {
    let hosts: Vec<HostInfo> = client.get("/hosts").await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            let state = if h.draining {
                format!("{} (draining)", h.state)
            } else {
                h.state.clone()
            };
            let cpu = match h.free_cpu_milli {
                Some(free) => format!(
                    "{:.1}/{:.1}",
                    h.reserved_cpu_milli as f64 / 1000.0,
                    (free + h.reserved_cpu_milli) as f64 / 1000.0
                ),
                None => "-".into(),
            };
            let mem = match h.free_memory {
                Some(free) => format!(
                    "{}/{}",
                    gib(h.reserved_memory),
                    gib(free + h.reserved_memory)
                ),
                None => "-".into(),
            };
            let seen = h
                .last_seen_ms
                .map(|t| format!("{}s ago", now.saturating_sub(t) / 1000))
                .unwrap_or_else(|| "-".into());
            let labels: Vec<String> = h.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mesh = match &h.mesh {
                None => "-".to_string(),
                Some(m) => {
                    let broken: Vec<String> = m
                        .links
                        .iter()
                        .filter(|l| !l.ok)
                        .map(|l| {
                            let who = if l.peer_name.is_empty() || l.peer_name == h.name {
                                l.peer.chars().take(12).collect()
                            } else {
                                l.peer_name.clone()
                            };
                            format!("{who} for {}s", now.saturating_sub(l.since_ms) / 1000)
                        })
                        .collect();
                    if broken.is_empty() {
                        format!("{}/{}", m.reachable, m.peers)
                    } else {
                        format!(
                            "{}/{} (broken: {})",
                            m.reachable,
                            m.peers,
                            broken.join(", ")
                        )
                    }
                }
            };
            vec![
                h.id.chars().take(12).collect(),
                h.name.clone(),
                state,
                h.containers.to_string(),
                cpu,
                mem,
                seen,
                h.engine_version.clone().unwrap_or_else(|| "-".into()),
                mesh,
                labels.join(","),
                h.engine_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "STATE",
            "CONTAINERS",
            "CPU(RES/CAP)",
            "MEM(RES/CAP)",
            "LAST SEEN",
            "ENGINE",
            "MESH",
            "LABELS",
            "ERROR",
        ],
        &rows,
    );
    Ok(())
}
