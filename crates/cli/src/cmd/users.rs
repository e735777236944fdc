//! Users and who one is: `drover login|logout|whoami`, `drover user`, `drover apikey`,
//! `drover session`, `drover env member`, `drover audit`.

use std::collections::BTreeMap;
use std::io::BufRead;

use api_types::{
    EnvPolicy, Event, Login, Member, NewApiKey, NewPassword, NewSecretToken, NewUser, TokenInfo,
    UserInfo, WhoAmI,
};

use crate::Failure;
use crate::client::Client;
use crate::cmd::{table, time};

/// Reads a password: one line of standard input (`--password-stdin`), or a prompt without
/// echo in a terminal.
pub fn read_password(prompt: &str, from_stdin: bool) -> Result<String, Failure> {
    use std::io::{IsTerminal, Write};
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::input(format!("reading the password from stdin: {e}")))?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        if pw.is_empty() {
            return Err(Failure::input("no password on stdin"));
        }
        return Ok(pw);
    }
    eprint!("{prompt}: ");
    let _ = std::io::stderr().flush();
    let saved = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, t);
    }
    eprintln!();
    read.map_err(|e| Failure::input(format!("reading the password: {e}")))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Signs in and keeps the session's token in the CLI config.
pub async fn login(
    client: &Client,
    cfg: &crate::config::CliConfig,
    username: Option<String>,
    password_stdin: bool,
) -> Result<(), Failure> {
    let username = match username {
        Some(u) => u,
        None => {
            use std::io::Write;
            eprint!("user name: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::input(format!("reading the user name: {e}")))?;
            line.trim().to_string()
        }
    };
    let password = read_password("password", password_stdin)?;
    let session: NewSecretToken = client
        .post_v1(
            "/sessions",
            &Login {
                username: username.clone(),
                password,
            },
        )
        .await?;
    let mut kept = cfg.clone();
    kept.token = session.token;
    let path = crate::config::save(&kept)
        .map_err(|e| Failure::failed(format!("writing the CLI config: {e}")))?;
    let until = session.expires_ms.map(time).unwrap_or_default();
    outln!(
        "signed in to {} as {username} (session {}, ends {until}; kept in {})",
        cfg.url,
        session.id,
        path.display()
    );
    Ok(())
}

/// Ends the session the CLI config holds and forgets its token.
pub async fn logout(client: &Client) -> Result<(), Failure> {
    let mut cfg =
        crate::config::load().ok_or_else(|| Failure::input("not signed in: no CLI config"))?;
    client.delete_v1("/sessions/current").await?;
    cfg.token.clear();
    crate::config::save(&cfg)
        .map_err(|e| Failure::failed(format!("writing the CLI config: {e}")))?;
    outln!("signed out of {}", cfg.url);
    Ok(())
}

pub async fn whoami(client: &Client) -> Result<(), Failure> {
    let w: WhoAmI = client.get_v1("/whoami").await?;
    let mut line = format!("{}{}", w.user, if w.admin { " (admin)" } else { "" });
    if let Some(s) = &w.scope {
        line.push_str(&format!(", API key limited to environment {s}"));
    }
    outln!("{line}");
    let rows: Vec<Vec<String>> = w.roles.into_iter().map(|(e, r)| vec![e, r]).collect();
    table(&["ENVIRONMENT", "ROLE"], &rows);
    Ok(())
}

pub async fn user_create(
    client: &Client,
    name: &str,
    admin: bool,
    password_stdin: bool,
) -> Result<(), Failure> {
    let password = read_password(&format!("password for {name}"), password_stdin)?;
    let req = NewUser {
        name: name.to_string(),
        password,
        admin,
    };
    let _: UserInfo = client.post_v1("/users", &req).await?;
    outln!("user {name} created{}", if admin { " (admin)" } else { "" });
    Ok(())
}

pub async fn user_ls(client: &Client) -> Result<(), Failure> {
    let users: Vec<UserInfo> = client.get_v1("/users").await?;
    let rows: Vec<Vec<String>> = users
        .into_iter()
        .map(|u| {
            vec![
                u.name,
                if u.admin { "admin" } else { "user" }.to_string(),
                u.source,
                time(u.created_ms),
            ]
        })
        .collect();
    table(&["NAME", "ROLE", "SOURCE", "CREATED"], &rows);
    Ok(())
}

pub async fn user_rm(client: &Client, name: &str) -> Result<(), Failure> {
    client.delete_v1(&format!("/users/{name}")).await?;
    outln!("user {name} removed (with their API keys, sessions and memberships)");
    Ok(())
}

/// One's own password (with the current one), or another user's (admins).
pub async fn passwd(
    client: &Client,
    name: Option<&str>,
    password_stdin: bool,
) -> Result<(), Failure> {
    match name {
        Some(n) => {
            let password = read_password(&format!("new password for {n}"), password_stdin)?;
            client
                .put_v1_empty(
                    &format!("/users/{n}/password"),
                    &NewPassword {
                        password,
                        current: None,
                    },
                )
                .await?;
            outln!("password of {n} changed; their sessions ended");
        }
        None => {
            let current = read_password("current password", password_stdin)?;
            let password = read_password("new password", password_stdin)?;
            client
                .put_v1_empty(
                    "/password",
                    &NewPassword {
                        password,
                        current: Some(current),
                    },
                )
                .await?;
            outln!("password changed; your sessions ended (drover login again)");
        }
    }
    Ok(())
}

pub async fn apikey_create(
    client: &Client,
    name: Option<String>,
    env: Option<String>,
    expires: Option<&str>,
    metrics: bool,
) -> Result<(), Failure> {
    let expires_in_s = expires
        .map(|d| {
            compose::parse_duration(d)
                .map(|ns| (ns / 1_000_000_000).max(1))
                .map_err(|e| Failure::input(format!("--expires: {e}")))
        })
        .transpose()?;
    let key: NewSecretToken = client
        .post_v1(
            "/apikeys",
            &NewApiKey {
                name,
                env: env.clone(),
                expires_in_s,
                metrics,
            },
        )
        .await?;
    outln!("{}", key.token);
    eprintln!(
        "API key {} for {}{}{} (shown once; use it as DROVER_TOKEN or --token)",
        key.id,
        key.user,
        env.map(|e| format!(", limited to environment {e}"))
            .unwrap_or_default(),
        key.expires_ms
            .map(|e| format!(", expires {}", time(e)))
            .unwrap_or_default()
    );
    Ok(())
}

/// `apikey ls` and `session ls`.
pub async fn tokens_ls(client: &Client, what: &str, all: bool) -> Result<(), Failure> {
    let list: Vec<TokenInfo> = client
        .get_v1(&format!("/{what}{}", if all { "?all=true" } else { "" }))
        .await?;
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|t| {
            vec![
                t.id,
                t.user,
                t.env.unwrap_or_else(|| "*".into()),
                time(t.created_ms),
                t.expires_ms.map_or("never".into(), time),
                t.last_used_ms.map_or("never".into(), time),
            ]
        })
        .collect();
    table(
        &["ID", "USER", "SCOPE", "CREATED", "EXPIRES", "LAST USED"],
        &rows,
    );
    Ok(())
}

pub async fn tokens_rm(client: &Client, what: &str, id: &str) -> Result<(), Failure> {
    client.delete_v1(&format!("/{what}/{id}")).await?;
    outln!("{id} removed");
    Ok(())
}

pub async fn member_add(
    client: &Client,
    env: &str,
    subject: &str,
    role: &str,
) -> Result<(), Failure> {
    let m: Member = client
        .put_v1(
            &format!("/environments/{env}/members"),
            &Member {
                subject: subject.to_string(),
                role: role.to_string(),
            },
        )
        .await?;
    outln!("{} is {} in environment {env}", m.subject, m.role);
    Ok(())
}

pub async fn member_ls(client: &Client, env: &str) -> Result<(), Failure> {
    let list: Vec<Member> = client
        .get_v1(&format!("/environments/{env}/members"))
        .await?;
    let rows: Vec<Vec<String>> = list.into_iter().map(|m| vec![m.subject, m.role]).collect();
    table(&["MEMBER", "ROLE"], &rows);
    Ok(())
}

pub async fn member_rm(client: &Client, env: &str, subject: &str) -> Result<(), Failure> {
    client
        .delete_v1(&format!(
            "/environments/{env}/members/{}",
            crate::cmd::encode(subject)
        ))
        .await?;
    outln!("{subject} removed from environment {env}");
    Ok(())
}

/// `drover audit` filters.
pub struct AuditArgs<'a> {
    pub env: Option<&'a str>,
    pub user: Option<&'a str>,
    pub action: Option<&'a str>,
    pub since: Option<&'a str>,
    pub limit: u32,
    pub json: bool,
}

pub async fn audit(client: &Client, a: AuditArgs<'_>) -> Result<(), Failure> {
    let mut q: BTreeMap<&str, String> = BTreeMap::new();
    q.insert("limit", a.limit.to_string());
    if let Some(u) = a.user {
        q.insert("user", crate::cmd::encode(u));
    }
    if let Some(x) = a.action {
        q.insert("action", crate::cmd::encode(x));
    }
    if let Some(s) = a.since {
        let ns = compose::parse_duration(s).map_err(|e| Failure::input(format!("--since: {e}")))?;
        q.insert("since_s", (ns / 1_000_000_000).to_string());
    }
    let query: Vec<String> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let query = query.join("&");
    // Admins read the whole log; others their environment's.
    let events: Vec<Event> = match a.env {
        Some(e) => {
            client
                .get_v1(&format!("/environments/{e}/audit?{query}"))
                .await?
        }
        None => client.get_v1(&format!("/audit?{query}")).await?,
    };
    if a.json {
        let text = serde_json::to_string_pretty(&events)
            .map_err(|e| Failure::failed(format!("encoding: {e}")))?;
        outln!("{text}");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .into_iter()
        .map(|e| {
            vec![
                time(e.time_ms),
                if e.env.is_empty() { "-".into() } else { e.env },
                e.actor,
                if e.source.is_empty() {
                    "-".into()
                } else {
                    e.source
                },
                e.kind,
                e.subject,
                e.result,
                e.detail,
            ]
        })
        .collect();
    table(
        &[
            "TIME", "ENV", "ACTOR", "SOURCE", "ACTION", "RESOURCE", "RESULT", "DETAIL",
        ],
        &rows,
    );
    Ok(())
}

/// Shows an environment's container policy, or replaces it (`set`).
pub async fn policy(client: &Client, env: &str, set: Option<EnvPolicy>) -> Result<(), Failure> {
    let path = format!("/environments/{env}/policy");
    let p: EnvPolicy = match set {
        Some(p) => client.put_v1(&path, &p).await?,
        None => client.get_v1(&path).await?,
    };
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    outln!("environment {env}: members and restricted users may use");
    outln!(
        "  privileged, devices, security options: {}",
        if p.allow_privileged { "yes" } else { "no" }
    );
    outln!(
        "  host namespaces: {}",
        if p.allow_host_namespaces { "yes" } else { "no" }
    );
    outln!("  bind mounts under: {}", list(&p.allow_binds));
    outln!(
        "  capabilities beyond the defaults: {}",
        list(&p.allow_caps)
    );
    Ok(())
}

/// `drover auth ldap ...`.
pub async fn ldap(client: &Client, cmd: crate::cmd::LdapCmd) -> Result<(), Failure> {
    use crate::cmd::LdapCmd;
    use api_types::{LdapSettings, LdapTest, LdapUser};
    let show = |s: &LdapSettings| {
        outln!(
            "url: {}{}",
            s.url,
            if s.starttls { " (StartTLS)" } else { "" }
        );
        outln!("bind DN: {}", s.bind_dn);
        outln!("users: {} under {}", s.user_filter, s.user_base);
        if let (Some(f), Some(b)) = (&s.group_filter, &s.group_base) {
            outln!("groups: {f} under {b}");
        }
        if s.ca_pem.is_some() {
            outln!("CA: given");
        }
    };
    match cmd {
        LdapCmd::Set(a) => {
            let ca_pem =
                a.ca.as_ref()
                    .map(|p| {
                        std::fs::read_to_string(p)
                            .map_err(|e| Failure::input(format!("--ca {}: {e}", p.display())))
                    })
                    .transpose()?;
            let bind_password = read_password("bind password", a.bind_password_stdin)?;
            let req = LdapSettings {
                url: a.url,
                starttls: a.starttls,
                ca_pem,
                bind_dn: a.bind_dn,
                bind_password: Some(bind_password),
                user_base: a.user_base,
                user_filter: a.user_filter,
                group_base: a.group_base,
                group_filter: a.group_filter,
            };
            let s: LdapSettings = client.put_v1("/auth/ldap", &req).await?;
            outln!("directory users sign in through:");
            show(&s);
        }
        LdapCmd::Show => {
            let s: LdapSettings = client.get_v1("/auth/ldap").await?;
            show(&s);
        }
        LdapCmd::Test {
            user,
            password_stdin,
        } => {
            let password = if password_stdin {
                Some(read_password("password", true)?)
            } else {
                None
            };
            let u: LdapUser = client
                .post_v1(
                    "/auth/ldap/test",
                    &LdapTest {
                        username: user,
                        password,
                    },
                )
                .await?;
            outln!("{}", u.dn);
            for g in u.groups {
                outln!("  group: {g}");
            }
        }
        LdapCmd::Rm => {
            client.delete_v1("/auth/ldap").await?;
            outln!("directory sign-in removed; directory users lost their access");
        }
    }
    Ok(())
}
