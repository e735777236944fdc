//! `drover host ls`

use api_types::HostInfo;

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

pub async fn run(client: &Client) -> Result<(), Failure> {
    let hosts: Vec<HostInfo> = client.get("/hosts").await?;
    let rows: Vec<Vec<String>> = hosts
        .iter()
        .map(|h| {
            vec![
                h.id.chars().take(12).collect(),
                h.name.clone(),
                h.state.clone(),
                h.engine_version.clone().unwrap_or_else(|| "-".into()),
                h.containers.to_string(),
                h.engine_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "STATE", "ENGINE", "CONTAINERS", "ERROR"],
        &rows,
    );
    Ok(())
}
