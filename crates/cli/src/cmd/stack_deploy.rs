//! `drover stack deploy -f FILE [-p NAME] [--env-file F]`: parse locally, send the normalised
//! project, then follow progress until every container runs, or one fails (with why).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use api_types::{DeployRequest, DeployResponse, StackDetail};

use crate::Failure;
use crate::client::Client;
use crate::cmd::FileArgs;

/// A problem must persist this long before the deploy is declared failed (errors from a
/// previous revision clear on the agent's next attempt; a pending reason may clear on the
/// next scheduling pass).
const ERROR_GRACE: Duration = Duration::from_secs(3);
/// A container that keeps exiting is given this long (a restart or two while starting up is
/// not yet a failure).
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// Why a container cannot converge without the user acting, if it cannot: a replica that
/// fits no host, an error creating or starting it, or exiting with an error.
fn problem(c: &api_types::ContainerInfo) -> Option<(String, Duration)> {
    if let Some(e) = &c.error {
        // "waiting to be placed" is the moment before the first scheduling pass; a container
        // recreated for being unhealthy gets its start period before it counts.
        let recreated_starting =
            e.starts_with("was unhealthy") && c.health.as_deref() != Some("unhealthy");
        if (c.host.is_some() || !e.starts_with("waiting")) && !recreated_starting {
            return Some((e.clone(), ERROR_GRACE));
        }
    }
    match (c.state.as_str(), c.exit_code) {
        ("exited", Some(code)) if code != 0 => Some((
            format!("exited with code {code} ({})", c.status),
            EXIT_GRACE,
        )),
        ("restarting", _) => Some((
            format!("keeps exiting and restarting ({})", c.status),
            EXIT_GRACE,
        )),
        _ => None,
    }
}

pub async fn run(
    client: &Client,
    file: &FileArgs,
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    let loaded = crate::local::load(&file.options())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let name = loaded.project.name.clone();
    let mut project = loaded.project;
    upload_build_contexts(client, &mut project, &file.options()).await?;
    let dir = crate::local::compose_dir(&file.options())?;
    let vars = crate::local::variables(&file.options(), &dir)?;
    let files = crate::cmd::files::stack_values(&project, &dir, &vars)?;
    let req = DeployRequest {
        project: Some(project),
        files,
        ..Default::default()
    };
    let resp: DeployResponse = client.post("/stacks", &req).await?;
    for w in &resp.warnings {
        eprintln!("warning: {w}");
    }
    applied(client, &name, &resp, detach, timeout).await
}

/// Says what a new revision changed, then follows the stack unless `detach`.
pub async fn applied(
    client: &Client,
    name: &str,
    resp: &DeployResponse,
    detach: bool,
    timeout: u64,
) -> Result<(), Failure> {
    outln!(
        "stack {name} revision {}: {} changed, {} unchanged, {} removed",
        resp.stack.revision,
        resp.changed.len(),
        resp.unchanged.len(),
        resp.removed.len()
    );
    if detach {
        return Ok(());
    }
    wait(
        client,
        name,
        resp.stack.revision,
        Duration::from_secs(timeout),
    )
    .await
}

/// One line on a service's roll, as shown while following a deploy.
pub fn roll_line(service: &str, r: &api_types::RollStatus) -> String {
    let what = if r.rollback {
        "rolling back"
    } else {
        "rolling"
    };
    let mut line = match r.phase.as_str() {
        "rolling" => format!(
            "{service}: {what} to revision {} ({}, {} at a time): {} updated",
            r.revision,
            r.order,
            if r.parallelism == 0 {
                "all".to_string()
            } else {
                r.parallelism.to_string()
            },
            r.updated
        ),
        "done" => format!(
            "{service}: revision {} rolled out ({} updated in {:.1}s)",
            r.revision,
            r.updated,
            r.ended_ms
                .unwrap_or(r.started_ms)
                .saturating_sub(r.started_ms) as f64
                / 1000.0
        ),
        "paused" => format!("{service}: roll to revision {} paused", r.revision),
        _ => format!("{service}: roll to revision {} failed", r.revision),
    };
    if let Some(why) = &r.reason {
        line.push_str(&format!(": {why}"));
    }
    if !r.draining.is_empty() {
        line.push_str(&format!(" (draining {})", r.draining.join(", ")));
    }
    line
}

/// How the rolls of a deploy of `revision` ended, if one failed: paused, or rolled back.
fn roll_failure(detail: &StackDetail, revision: u64) -> Option<String> {
    for svc in &detail.services {
        let Some(r) = &svc.roll else { continue };
        if r.revision < revision {
            continue;
        }
        match (r.phase.as_str(), r.rollback && r.revision > revision) {
            ("paused", _) => {
                return Some(format!(
                    "roll of {} paused: {}",
                    svc.name,
                    r.reason.as_deref().unwrap_or("failures")
                ));
            }
            ("done", true) => {
                return Some(format!(
                    "roll of {} to revision {revision} failed ({}); it was rolled back (revision {})",
                    svc.name,
                    r.cause.as_deref().unwrap_or("failures"),
                    r.revision
                ));
            }
            _ => {}
        }
    }
    None
}

/// Tars each `build:` context (relative to the compose file's directory), uploads it, and
/// records its digest in the project so the agent can fetch it and build.
async fn upload_build_contexts(
    client: &Client,
    project: &mut compose::Project,
    opts: &crate::local::LoadOptions,
) -> Result<(), Failure> {
    let base = crate::local::compose_dir(opts)?;
    for (name, svc) in project.services.iter_mut() {
        let Some(build) = svc.build.as_mut() else {
            continue;
        };
        let dir = base.join(&build.context);
        if !dir.is_dir() {
            return Err(Failure::input(format!(
                "service {name}: build context {} is not a directory",
                dir.display()
            )));
        }
        let mut tar = tar::Builder::new(Vec::new());
        tar.follow_symlinks(false);
        tar.append_dir_all(".", &dir).map_err(|e| {
            Failure::input(format!(
                "service {name}: reading build context {}: {e}",
                dir.display()
            ))
        })?;
        let bytes = tar
            .into_inner()
            .map_err(|e| Failure::input(format!("service {name}: build context: {e}")))?;
        let size = bytes.len();
        let created: BlobCreated = client.post_bytes("/blobs", bytes).await?;
        outln!("service {name}: uploaded build context ({size} bytes)");
        build.context_digest = Some(created.digest);
    }
    Ok(())
}

#[derive(serde::Deserialize)]
struct BlobCreated {
    digest: String,
}

/// Follows the stack until it converged; fails as soon as some container cannot converge
/// without the user acting (naming each such container and why), or after `timeout`.
pub async fn wait(
    client: &Client,
    name: &str,
    revision: u64,
    timeout: Duration,
) -> Result<(), Failure> {
    let start = Instant::now();
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    // Each container's current problem and since when (a new problem starts anew).
    let mut error_since: BTreeMap<String, (String, Instant)> = BTreeMap::new();
    let mut matured_at: Option<Instant> = None;
    loop {
        let detail: StackDetail = client.get(&format!("/stacks/{name}")).await?;
        // Every container with a problem; whether one has had it for its grace time; and
        // whether the others are done (running, or with a problem), so that all are named.
        let mut stuck: Vec<String> = Vec::new();
        let mut matured = false;
        let mut in_progress = false;
        let mut rolling = false;
        for svc in &detail.services {
            // A service in a roll: the roll judges its containers (and may roll back).
            let in_roll = svc
                .roll
                .as_ref()
                .filter(|r| r.revision >= revision)
                .is_some_and(|r| r.phase == "rolling" || r.phase == "rolling_back");
            rolling |= in_roll;
            if let Some(r) = svc.roll.as_ref().filter(|r| r.revision >= revision) {
                let line = roll_line(&svc.name, r);
                let key = format!("roll {}", svc.name);
                if last.get(&key) != Some(&line) {
                    outln!("  {line}");
                    last.insert(key, line);
                }
            }
            for c in &svc.containers {
                let mut line = c.state.clone();
                if let Some(h) = &c.health {
                    line.push_str(&format!(" ({h})"));
                }
                if !c.up_to_date && c.state != "pending" {
                    line.push_str(" [old spec]");
                }
                if let Some(w) = &c.waiting {
                    line.push_str(&format!(": {w}"));
                }
                if let Some(e) = &c.error {
                    line.push_str(&format!(": error: {e}"));
                }
                if last.get(&c.name) != Some(&line) {
                    outln!("  {:<32} {line}", c.name);
                    last.insert(c.name.clone(), line);
                }
                match problem(c).filter(|_| !in_roll) {
                    Some((why, grace)) => {
                        let entry = error_since
                            .entry(c.name.clone())
                            .or_insert_with(|| (why.clone(), Instant::now()));
                        if entry.0 != why {
                            *entry = (why.clone(), Instant::now());
                        }
                        matured |= entry.1.elapsed() >= grace;
                        stuck.push(format!("{}: {why}", c.name));
                    }
                    None => {
                        error_since.remove(&c.name);
                        in_progress |= c.state != "running" && c.state != "exited";
                    }
                }
            }
        }
        if matured {
            matured_at.get_or_insert_with(Instant::now);
        } else {
            matured_at = None;
        }
        let settled = !in_progress || matured_at.is_some_and(|t| t.elapsed() >= EXIT_GRACE);
        if matured && settled {
            return Err(Failure::failed(format!(
                "stack {name} cannot converge: {}",
                stuck.join("; ")
            )));
        }
        if let Some(failed) = roll_failure(&detail, revision) {
            return Err(Failure::failed(format!("stack {name}: {failed}")));
        }
        if detail.stack.status == "converged" && !rolling {
            outln!(
                "stack {name} is running: {}/{} containers in {:.1}s",
                detail.stack.running,
                detail.stack.containers,
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(Failure::failed(format!(
                "stack {name} did not converge within {}s (status {}; `drover stack ps {name}` shows each container)",
                timeout.as_secs(),
                detail.stack.status
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
