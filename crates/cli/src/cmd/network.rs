//! `drover network ls|create|rm|inspect`. A network spans every host of the environment;
//! stacks join one made with `network create` with `external: true`.

use api_types::{NetworkDetail, NetworkInfo, NewNetwork};

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

/// `/networks/NAME`, the name percent-encoded (a stack's network may have any `name:`).
fn path(name: &str) -> String {
    let mut p = String::from("/networks/");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            p.push(char::from(b));
        } else {
            p.push_str(&format!("%{b:02X}"));
        }
    }
    p
}

pub async fn ls(client: &Client) -> Result<(), Failure> {
    let networks: Vec<NetworkInfo> = client.get("/networks").await?;
    let rows: Vec<Vec<String>> = networks.iter().map(row).collect();
    table(&["NAME", "KIND", "STACKS", "HOSTS", "SUBNETS"], &rows);
    Ok(())
}

fn row(n: &NetworkInfo) -> Vec<String> {
    let or_dash = |s: String| if s.is_empty() { "-".into() } else { s };
    let subnets: Vec<&str> = n.hosts.iter().filter_map(|h| h.subnet.as_deref()).collect();
    vec![
        n.name.clone(),
        n.kind.clone(),
        or_dash(n.stacks.join(",")),
        n.hosts.len().to_string(),
        or_dash(subnets.join(",")),
    ]
}

pub async fn create(client: &Client, name: &str) -> Result<(), Failure> {
    let body = NewNetwork {
        name: name.to_string(),
    };
    let n: NetworkInfo = client.post("/networks", &body).await?;
    outln!("{}", n.name);
    Ok(())
}

pub async fn rm(client: &Client, name: &str) -> Result<(), Failure> {
    client.delete(&path(name)).await?;
    outln!("{name}");
    Ok(())
}

pub async fn inspect(client: &Client, name: &str) -> Result<(), Failure> {
    let detail: NetworkDetail = client.get(&path(name)).await?;
    let text = serde_json::to_string_pretty(&detail).map_err(|e| Failure::failed(e.to_string()))?;
    outln!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commands_parse() {
        use crate::cmd::{Command, NetworkCmd};
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Top {
            #[command(subcommand)]
            cmd: Command,
        }
        Top::command().debug_assert();
        let parse = |args: &[&str]| {
            Top::try_parse_from(std::iter::once("drover").chain(args.iter().copied()))
                .map(|t| t.cmd)
        };
        assert!(matches!(
            parse(&["network", "ls"]),
            Ok(Command::Network(NetworkCmd::Ls))
        ));
        for (verb, expect) in [("create", 0), ("rm", 1), ("inspect", 2)] {
            let got = match parse(&["network", verb, "shared"]) {
                Ok(Command::Network(NetworkCmd::Create { name })) => (0, name),
                Ok(Command::Network(NetworkCmd::Rm { name })) => (1, name),
                Ok(Command::Network(NetworkCmd::Inspect { name })) => (2, name),
                other => panic!("{verb}: {other:?}"),
            };
            assert_eq!(got, (expect, "shared".to_string()), "{verb}");
        }
        assert!(parse(&["network", "create"]).is_err(), "NAME is required");
    }

    #[test]
    fn names_are_one_path_segment() {
        assert_eq!(path("shared"), "/networks/shared");
        assert_eq!(path("shop_back.v-1"), "/networks/shop_back.v-1");
        assert_eq!(path("a/b c?#%"), "/networks/a%2Fb%20c%3F%23%25");
        assert_eq!(path("né"), "/networks/n%C3%A9");
    }

    #[test]
    fn rows_show_stacks_hosts_and_subnets() {
        let host = |id: &str, subnet: Option<&str>| api_types::NetworkHost {
            host: id.into(),
            host_name: format!("{id}.example"),
            subnet: subnet.map(str::to_string),
            containers: 1,
        };
        let n = NetworkInfo {
            name: "shared".into(),
            kind: "external".into(),
            stacks: vec!["back".into(), "front".into()],
            hosts: vec![
                host("h1", Some("10.192.4.0/27")),
                host("h2", None),
                host("h3", Some("10.192.12.0/27")),
            ],
            created_ms: Some(1),
        };
        assert_eq!(
            row(&n),
            [
                "shared",
                "external",
                "back,front",
                "3",
                "10.192.4.0/27,10.192.12.0/27"
            ]
        );
        let empty = NetworkInfo {
            stacks: Vec::new(),
            hosts: Vec::new(),
            ..n
        };
        assert_eq!(row(&empty), ["shared", "external", "-", "0", "-"]);
    }
}
