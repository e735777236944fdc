//! `drover ps` and `drover stack ps NAME`.

use api_types::{ContainerInfo, StackDetail};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

pub async fn run(client: &Client, stack: Option<&str>) -> Result<(), Failure> {
    let mut rolls = Vec::new();
    let containers: Vec<ContainerInfo> = match stack {
        Some(name) => {
            let d: StackDetail = client.get(&format!("/stacks/{name}")).await?;
            // Rolls under way or stopped (a paused roll says why); finished ones say nothing.
            for s in &d.services {
                if let Some(r) = s.roll.as_ref().filter(|r| r.phase != "done") {
                    rolls.push(crate::cmd::stack_deploy::roll_line(&s.name, r));
                }
            }
            d.services.into_iter().flat_map(|s| s.containers).collect()
        }
        None => client.get("/containers").await?,
    };
    let rows: Vec<Vec<String>> = containers
        .iter()
        .map(|c| {
            let mut state = c.state.clone();
            if let Some(h) = &c.health {
                state.push_str(&format!(" ({h})"));
            }
            let note = c
                .error
                .clone()
                .or_else(|| c.waiting.clone())
                .unwrap_or_else(|| c.status.clone());
            vec![
                c.name.clone(),
                c.stack.clone(),
                c.service.clone(),
                state,
                c.host
                    .clone()
                    .map(|h| h.chars().take(12).collect())
                    .unwrap_or_else(|| "-".into()),
                note,
            ]
        })
        .collect();
    table(
        &["NAME", "STACK", "SERVICE", "STATE", "HOST", "STATUS"],
        &rows,
    );
    for line in rolls {
        outln!("{line}");
    }
    Ok(())
}
