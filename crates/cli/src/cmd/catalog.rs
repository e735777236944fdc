//! `drover catalog ...` (catalogs, search, show, install) and `drover stack upgrade`.

use std::collections::BTreeMap;
use std::path::Path;

use api_types::{
    CatalogInfo, InstallRequest, InstallResponse, NewCatalog, QuestionInfo, TemplateDetail,
    TemplateSummary, UpgradePlan, UpgradeRequest,
};

use crate::Failure;
use crate::client::Client;
use crate::cmd::{table, time};

pub async fn add(
    client: &Client,
    name: &str,
    source: &str,
    branch: Option<String>,
) -> Result<(), Failure> {
    // A directory is sent as the absolute path the server will read.
    let source = if is_dir_source(source) {
        std::fs::canonicalize(source)
            .map(|p| p.to_string_lossy().to_string())
            .unwrap_or_else(|_| source.to_string())
    } else {
        source.to_string()
    };
    let c: CatalogInfo = client
        .post(
            "/catalogs",
            &NewCatalog {
                name: name.to_string(),
                source,
                branch,
            },
        )
        .await?;
    outln!("catalog {} added: {} templates", c.name, c.templates);
    for p in c.problems {
        eprintln!("warning: {p}");
    }
    Ok(())
}

fn is_dir_source(source: &str) -> bool {
    Path::new(source).is_dir()
}

pub async fn ls(client: &Client) -> Result<(), Failure> {
    let list: Vec<CatalogInfo> = client.get("/catalogs").await?;
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|c| {
            vec![
                c.name,
                c.templates.to_string(),
                c.problems.len().to_string(),
                if c.refreshed_ms == 0 {
                    "-".into()
                } else {
                    time(c.refreshed_ms)
                },
                c.error.unwrap_or_else(|| "ok".into()),
                format!(
                    "{}{}",
                    c.source,
                    c.branch.map(|b| format!(" ({b})")).unwrap_or_default()
                ),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "TEMPLATES",
            "PROBLEMS",
            "REFRESHED",
            "STATE",
            "SOURCE",
        ],
        &rows,
    );
    Ok(())
}

pub async fn refresh(client: &Client, name: Option<&str>) -> Result<(), Failure> {
    let names: Vec<String> = match name {
        Some(n) => vec![n.to_string()],
        None => {
            let list: Vec<CatalogInfo> = client.get("/catalogs").await?;
            list.into_iter().map(|c| c.name).collect()
        }
    };
    let mut failed = Vec::new();
    for n in names {
        let c: CatalogInfo = client.post_empty(&format!("/catalogs/{n}/refresh")).await?;
        match c.error {
            Some(e) => {
                eprintln!("catalog {n}: {e} (its last index is kept)");
                failed.push(n);
            }
            None => outln!("catalog {n}: {} templates", c.templates),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "could not refresh {}",
            failed.join(", ")
        )))
    }
}

pub async fn rm(client: &Client, name: &str) -> Result<(), Failure> {
    client.delete(&format!("/catalogs/{name}")).await?;
    outln!("catalog {name} removed (stacks installed from it keep running and stay upgradable)");
    Ok(())
}

pub async fn search(
    client: &Client,
    text: Option<&str>,
    category: Option<&str>,
) -> Result<(), Failure> {
    let mut q = Vec::new();
    if let Some(t) = text {
        q.push(format!("q={}", crate::cmd::encode(t)));
    }
    if let Some(c) = category {
        q.push(format!("category={}", crate::cmd::encode(c)));
    }
    let list: Vec<TemplateSummary> = client.get(&format!("/templates?{}", q.join("&"))).await?;
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|t| {
            vec![
                format!("{}/{}", t.catalog, t.name),
                t.versions.last().cloned().unwrap_or_default(),
                t.categories.join(","),
                t.description,
            ]
        })
        .collect();
    table(&["TEMPLATE", "LATEST", "CATEGORY", "DESCRIPTION"], &rows);
    Ok(())
}

/// `CATALOG/TEMPLATE[:VERSION]`.
fn parse_ref(r: &str) -> Result<(String, String, Option<String>), Failure> {
    let (path, version) = match r.split_once(':') {
        Some((p, v)) => (p, Some(v.to_string())),
        None => (r, None),
    };
    let (cat, name) = path.split_once('/').ok_or_else(|| {
        Failure::input(format!(
            "{r}: expected CATALOG/TEMPLATE[:VERSION], e.g. library/redis"
        ))
    })?;
    Ok((cat.to_string(), name.to_string(), version))
}

async fn detail(client: &Client, r: &str) -> Result<TemplateDetail, Failure> {
    let (cat, name, version) = parse_ref(r)?;
    let q = version
        .map(|v| format!("?version={}", crate::cmd::encode(&v)))
        .unwrap_or_default();
    client.get(&format!("/templates/{cat}/{name}{q}")).await
}

pub async fn show(client: &Client, r: &str) -> Result<(), Failure> {
    let d = detail(client, r).await?;
    let t = &d.template;
    outln!("{}/{}: {} {}", t.catalog, t.name, t.display_name, d.version);
    if !t.description.is_empty() {
        outln!("{}", t.description);
    }
    outln!("versions: {}", t.versions.join(", "));
    if let Some(h) = &d.homepage {
        outln!("homepage: {h}");
    }
    outln!("questions:");
    let rows: Vec<Vec<String>> = d
        .questions
        .iter()
        .map(|q| {
            vec![
                q.variable.clone(),
                q.kind.clone(),
                if q.required {
                    "yes".into()
                } else {
                    "no".into()
                },
                if q.generate {
                    "(generated)".into()
                } else {
                    q.default.clone().unwrap_or_default()
                },
                q.label.clone(),
            ]
        })
        .collect();
    table(&["VARIABLE", "TYPE", "REQUIRED", "DEFAULT", "LABEL"], &rows);
    if let Some(readme) = &d.readme {
        outln!("\n{readme}");
    }
    Ok(())
}

/// `--answers FILE` (a JSON object, or KEY=VALUE lines) then `--set KEY=VALUE`.
pub fn answers(file: Option<&Path>, sets: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .map_err(|e| Failure::input(format!("--answers {}: {e}", f.display())))?;
        if text.trim_start().starts_with('{') {
            let v: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
                .map_err(|e| Failure::input(format!("--answers {}: {e}", f.display())))?;
            for (k, v) in v {
                let s = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                out.insert(k, s);
            }
        } else {
            let parsed = compose::parse_dotenv(&f.to_string_lossy(), &text)
                .map_err(|e| Failure::input(e.to_string()))?;
            out.extend(parsed);
        }
    }
    for s in sets {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| Failure::input(format!("--set {s}: expected KEY=VALUE")))?;
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Asks, in a terminal, the questions that need an answer and have none.
fn prompt(
    questions: &[QuestionInfo],
    answers: &mut BTreeMap<String, String>,
) -> Result<(), Failure> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(());
    }
    for q in questions {
        if answers.contains_key(&q.variable) || !q.required || q.default.is_some() || q.generate {
            continue;
        }
        let label = format!("{} ({})", q.label, q.variable);
        let value = if q.kind == "password" {
            crate::cmd::users::read_password(&label, false)?
        } else {
            let options = if q.options.is_empty() {
                String::new()
            } else {
                format!(" [{}]", q.options.join("/"))
            };
            eprint!("{label}{options}: ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::input(format!("reading {}: {e}", q.variable)))?;
            line.trim_end_matches(['\n', '\r']).to_string()
        };
        answers.insert(q.variable.clone(), value);
    }
    Ok(())
}

fn print_rendered(r: &InstallResponse) {
    outln!("{}", r.compose.trim_end());
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
}

pub struct InstallArgs<'a> {
    pub reference: &'a str,
    pub stack: Option<String>,
    pub answers: BTreeMap<String, String>,
    pub dry_run: bool,
    pub detach: bool,
    pub timeout: u64,
}

pub async fn install(client: &Client, a: InstallArgs<'_>) -> Result<(), Failure> {
    let d = detail(client, a.reference).await?;
    let mut answers = a.answers;
    prompt(&d.questions, &mut answers)?;
    let req = InstallRequest {
        stack: a.stack,
        version: Some(d.version.clone()),
        answers,
        dry_run: a.dry_run,
    };
    let r: InstallResponse = client
        .post(
            &format!(
                "/templates/{}/{}/install",
                d.template.catalog, d.template.name
            ),
            &req,
        )
        .await?;
    if a.dry_run {
        print_rendered(&r);
        return Ok(());
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    outln!(
        "installing {}/{} {} as stack {}",
        d.template.catalog,
        d.template.name,
        r.version,
        r.stack
    );
    match &r.deployed {
        Some(dep) => {
            crate::cmd::stack_deploy::applied(client, &r.stack, dep, a.detach, a.timeout).await
        }
        None => Ok(()),
    }
}

pub struct UpgradeArgs<'a> {
    pub stack: &'a str,
    pub version: Option<String>,
    pub answers: BTreeMap<String, String>,
    pub dry_run: bool,
    pub detach: bool,
    pub timeout: u64,
}

pub async fn upgrade(client: &Client, a: UpgradeArgs<'_>) -> Result<(), Failure> {
    let q = a
        .version
        .as_ref()
        .map(|v| format!("?version={}", crate::cmd::encode(v)))
        .unwrap_or_default();
    let plan: UpgradePlan = client
        .get(&format!("/stacks/{}/upgrade{q}", a.stack))
        .await?;
    let mut answers = a.answers;
    prompt(&plan.questions, &mut answers)?;
    let req = UpgradeRequest {
        version: Some(plan.to.clone()),
        answers,
        dry_run: a.dry_run,
    };
    let r: InstallResponse = client
        .post(&format!("/stacks/{}/upgrade", a.stack), &req)
        .await?;
    if a.dry_run {
        print_rendered(&r);
        return Ok(());
    }
    if plan.from == plan.to {
        outln!("{}: new answers on version {}", a.stack, plan.to);
    } else {
        outln!("{}: {} -> {}", a.stack, plan.from, plan.to);
    }
    match &r.deployed {
        Some(dep) => {
            crate::cmd::stack_deploy::applied(client, a.stack, dep, a.detach, a.timeout).await
        }
        None => Ok(()),
    }
}
