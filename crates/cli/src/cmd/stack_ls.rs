//! `drover stack ls`

use api_types::StackSummary;

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

pub async fn run(client: &Client) -> Result<(), Failure> {
    let stacks: Vec<StackSummary> = client.get("/stacks").await?;
    let rows: Vec<Vec<String>> = stacks
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.status.clone(),
                s.services.to_string(),
                format!("{}/{}", s.running, s.containers),
                s.revision.to_string(),
                s.catalog
                    .as_ref()
                    .map(|c| {
                        let newer = c
                            .newer
                            .as_ref()
                            .map(|n| format!(" (upgrade: {n})"))
                            .unwrap_or_default();
                        format!("{}/{}:{}{newer}", c.catalog, c.template, c.version)
                    })
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "STATUS", "SERVICES", "RUNNING", "REVISION", "TEMPLATE",
        ],
        &rows,
    );
    Ok(())
}
