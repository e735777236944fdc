//! `drover stack rm NAME [--detach] [--timeout SECS]`: removes the stack and waits until its
//! containers and networks are gone from the connected hosts; named volumes stay.

use std::time::Instant;

use crate::Failure;
use crate::client::Client;

pub async fn run(client: &Client, name: &str, detach: bool, timeout: u64) -> Result<(), Failure> {
    if detach {
        client.delete(&format!("/stacks/{name}")).await?;
        outln!("stack {name} removed (containers stopping)");
        return Ok(());
    }
    let start = Instant::now();
    let left: Option<api_types::Remaining> = client
        .delete_waiting(&format!("/stacks/{name}?wait={timeout}"))
        .await?;
    match left {
        None => {
            outln!(
                "stack {name} removed: its containers and networks are gone ({:.1}s)",
                start.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(r) => Err(Failure::failed(format!(
            "stack {name} removed, but after {timeout}s these are still there: {}",
            r.containers.join(", ")
        ))),
    }
}
