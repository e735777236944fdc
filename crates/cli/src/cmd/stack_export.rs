//! `drover stack export NAME [-o FILE]`: the stack as a compose file.

use std::path::Path;

use crate::Failure;
use crate::client::Client;

pub async fn run(client: &Client, name: &str, output: Option<&Path>) -> Result<(), Failure> {
    let text = client.get_text(&format!("/stacks/{name}/compose")).await?;
    match output {
        Some(p) => {
            std::fs::write(p, text).map_err(|e| Failure::failed(format!("{}: {e}", p.display())))?
        }
        None => out!("{text}"),
    }
    Ok(())
}
