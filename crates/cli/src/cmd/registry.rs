//! `drover registry add HOST -u USER --password-stdin | ls | rm HOST`: private registry
//! logins of the environment. The password is read from standard input and never shown.

use api_types::{NewRegistry, RegistryInfo};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

/// The longest password read from standard input.
const MAX_PASSWORD: u64 = 4096;

pub async fn add(client: &Client, host: &str, username: &str) -> Result<(), Failure> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin(), MAX_PASSWORD + 1),
        &mut text,
    )
    .map_err(|e| Failure::input(format!("reading the password from standard input: {e}")))?;
    let password = text.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(Failure::input("no password on standard input"));
    }
    let req = NewRegistry {
        host: host.to_string(),
        username: username.to_string(),
        password,
    };
    let info: RegistryInfo = client.post("/registries", &req).await?;
    outln!("registry {} login saved for {}", info.host, info.username);
    Ok(())
}

pub async fn ls(client: &Client) -> Result<(), Failure> {
    let list: Vec<RegistryInfo> = client.get("/registries").await?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|r| {
            vec![
                r.host.clone(),
                r.username.clone(),
                crate::cmd::time(r.created_ms),
            ]
        })
        .collect();
    table(&["REGISTRY", "USERNAME", "ADDED"], &rows);
    Ok(())
}

pub async fn rm(client: &Client, host: &str) -> Result<(), Failure> {
    client.delete(&format!("/registries/{host}")).await?;
    outln!("registry {host} login removed");
    Ok(())
}
