//! `drover cert add NAME --cert FILE --key FILE | ls | rm NAME`: the ingress's certificates
//! (the key is sent once and never shown), and `drover ingress ls`: every route, its
//! backends and their health.

use api_types::{CertInfo, IngressView, NewCert};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

/// The largest certificate chain and key files read.
const MAX_CERT: u64 = 64 * 1024;
const MAX_KEY: u64 = 16 * 1024;

fn read_pem(path: &std::path::Path, max: u64, what: &str) -> Result<String, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, max + 1), &mut text)
        .map_err(|e| Failure::input(format!("{}: {e}", path.display())))?;
    if text.len() as u64 > max {
        return Err(Failure::input(format!(
            "{}: a {what} file is at most {} KiB",
            path.display(),
            max / 1024
        )));
    }
    Ok(text)
}

pub async fn cert_add(
    client: &Client,
    name: &str,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(), Failure> {
    let req = NewCert {
        name: name.to_string(),
        cert_pem: read_pem(cert, MAX_CERT, "certificate")?,
        key_pem: read_pem(key, MAX_KEY, "key")?,
    };
    let info: CertInfo = client.post("/certs", &req).await?;
    outln!(
        "certificate {} added for {} (expires {})",
        info.name,
        info.domains.join(", "),
        crate::cmd::time(info.expires_ms)
    );
    Ok(())
}

pub async fn cert_ls(client: &Client) -> Result<(), Failure> {
    let list: Vec<CertInfo> = client.get("/certs").await?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.domains.join(","),
                crate::cmd::time(c.expires_ms),
                c.source.clone(),
            ]
        })
        .collect();
    table(&["NAME", "DOMAINS", "EXPIRES", "SOURCE"], &rows);
    Ok(())
}

pub async fn cert_rm(client: &Client, name: &str) -> Result<(), Failure> {
    client.delete(&format!("/certs/{name}")).await?;
    outln!("certificate {name} removed");
    Ok(())
}

pub async fn ls(client: &Client, json: bool) -> Result<(), Failure> {
    let view: IngressView = client.get("/ingress").await?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&view).map_err(|e| Failure::input(e.to_string()))?
        );
        return Ok(());
    }
    if view.hosts.is_empty() {
        outln!("no ingress host: label one with `drover host label HOST drover.ingress=true`");
    } else {
        let hosts: Vec<String> = view
            .hosts
            .iter()
            .map(|h| format!("{} ({})", h.name, h.state))
            .collect();
        outln!("ingress hosts: {}", hosts.join(", "));
    }
    let rows: Vec<Vec<String>> = view
        .routes
        .iter()
        .map(|r| {
            let front = match r.kind.as_str() {
                "tcp" => format!("tcp :{}", r.listen.unwrap_or_default()),
                _ => format!(
                    "{}{}",
                    r.host.as_deref().unwrap_or("*"),
                    r.path.as_deref().unwrap_or("/")
                ),
            };
            let backends: Vec<String> = r
                .backends
                .iter()
                .map(|b| {
                    let health = b
                        .health
                        .as_deref()
                        .map(|h| format!(" {h}"))
                        .unwrap_or_default();
                    let mark = if b.in_rotation { "" } else { " (out)" };
                    format!("{} {}{health}{mark}", b.container, b.state)
                })
                .collect();
            vec![
                front,
                format!("{}/{}:{}", r.stack, r.service, r.port),
                r.tls.clone().unwrap_or_else(|| "-".into()),
                if backends.is_empty() {
                    "none".into()
                } else {
                    backends.join(", ")
                },
                r.problem.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["ROUTE", "SERVICE", "TLS", "BACKENDS", "PROBLEM"], &rows);
    Ok(())
}
