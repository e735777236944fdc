//! `drover events`: the audit log, newest first.

use api_types::Event;

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

pub async fn run(client: &Client, limit: u32) -> Result<(), Failure> {
    let events: Vec<Event> = client.get(&format!("/events?limit={limit}")).await?;
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                e.time_ms.to_string(),
                e.actor.clone(),
                e.kind.clone(),
                e.subject.clone(),
                e.detail.clone(),
            ]
        })
        .collect();
    table(
        &["ID", "TIME_MS", "ACTOR", "KIND", "SUBJECT", "DETAIL"],
        &rows,
    );
    Ok(())
}
