//! `drover stack rm NAME`: removes the stack; its containers go, named volumes stay.

use crate::Failure;
use crate::client::Client;

pub async fn run(client: &Client, name: &str) -> Result<(), Failure> {
    client.delete(&format!("/stacks/{name}")).await?;
    outln!("stack {name} removed");
    Ok(())
}
