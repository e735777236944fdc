//! `drover stack history NAME` and `drover stack rollback NAME [--revision N]`.

use api_types::{DeployResponse, Revision, RollbackRequest};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

pub async fn history(client: &Client, name: &str) -> Result<(), Failure> {
    let revs: Vec<Revision> = client.get(&format!("/stacks/{name}/history")).await?;
    let rows: Vec<Vec<String>> = revs
        .iter()
        .map(|r| {
            vec![
                format!("{}{}", r.revision, if r.current { " *" } else { "" }),
                crate::cmd::time(r.time_ms),
                r.actor.clone(),
                r.summary.clone(),
            ]
        })
        .collect();
    table(&["REVISION", "WHEN", "BY", "WHAT"], &rows);
    Ok(())
}

pub async fn rollback(
    client: &Client,
    name: &str,
    revision: Option<u64>,
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    let resp: DeployResponse = client
        .post(
            &format!("/stacks/{name}/rollback"),
            &RollbackRequest { revision },
        )
        .await?;
    crate::cmd::stack_deploy::applied(client, name, &resp, detach, timeout).await
}
