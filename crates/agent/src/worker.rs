//! Observe -> reconcile -> act -> report, level-triggered. Woken by a new desired state, by
//! engine events, by each completed action, and at least every 5 s. Acts only once the server has sent a desired state
//! in this process's life: a restarted agent that cannot reach the server changes nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::collections::BTreeSet;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt, join_all};
use futures_util::stream::FuturesUnordered;
use proto::{ContainerError, Observed};
use reconciler::{Action, Failure};

use crate::Shared;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub async fn run(shared: Arc<Shared>) {
    let mut cluster_rx = shared.cluster.subscribe();
    let cluster = loop {
        if let Some(c) = cluster_rx.borrow_and_update().clone() {
            break c;
        }
        if cluster_rx.changed().await.is_err() {
            return;
        }
    };
    let mut failures: BTreeMap<String, Failure> = BTreeMap::new();
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let engine = match engine::Engine::connect(&cluster).await {
            Ok(e) => e,
            Err(e) => {
                report_engine_down(&shared, e.to_string());
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        tracing::info!("engine connected");
        let events = watch_events(engine.clone(), shared.clone());
        if let Err(e) = drive(&shared, &engine, &mut failures, &mut errors).await {
            report_engine_down(&shared, e.to_string());
        }
        events.abort();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

type Done = (Action, Result<(), engine::Error>);

/// Reconciles continuously while the engine answers. Container actions run concurrently and
/// the state is looked at again as soon as any one of them completes, so a dependent starts
/// the moment its dependency is up, not when a whole batch is done. Returns when the engine
/// is gone.
async fn drive(
    shared: &Shared,
    engine: &engine::Engine,
    failures: &mut BTreeMap<String, Failure>,
    errors: &mut BTreeMap<String, String>,
) -> Result<(), engine::Error> {
    let mut inflight: FuturesUnordered<BoxFuture<'_, Done>> = FuturesUnordered::new();
    let mut inflight_names: BTreeSet<String> = BTreeSet::new();
    let mut unhealthy_since: BTreeMap<String, u64> = BTreeMap::new();
    let mut status = engine.status().await;
    let mut status_at = Instant::now();
    loop {
        if status_at.elapsed() > Duration::from_secs(5) {
            status = engine.status().await;
            status_at = Instant::now();
        }
        if !status.up {
            return Err(engine::Error::Unreachable(
                status.error.clone().unwrap_or_default(),
            ));
        }
        let mut containers = engine.containers().await?;
        {
            // The agent's own checks stand in for the engine's health.
            let probed = shared.probed.borrow();
            for c in &mut containers {
                if let Some(h) = probed.get(&c.name)
                    && c.state == proto::ContainerState::Running
                {
                    c.health = Some(*h);
                }
            }
        }
        healthy_again(&containers, failures, errors);
        let now = now_ms();
        unhealthy_since.retain(|n, _| {
            containers
                .iter()
                .any(|c| &c.name == n && c.health == Some(proto::Health::Unhealthy))
        });
        for c in containers
            .iter()
            .filter(|c| c.health == Some(proto::Health::Unhealthy))
        {
            unhealthy_since.entry(c.name.clone()).or_insert(now);
        }
        let seen = engine.networks_seen().await?;
        let desired = meshed(shared, shared.desired.borrow().clone());
        let waiting = match &desired {
            None => Vec::new(),
            Some(desired) => {
                let networks = &seen.names;
                let volumes = engine.volumes().await?;
                let now = now_ms();
                let fenced = now > shared.lease_deadline();
                let plan = reconciler::reconcile(&reconciler::Input {
                    desired,
                    observed: &containers,
                    networks,
                    volumes: &volumes,
                    failures,
                    unhealthy_since: &unhealthy_since,
                    now_ms: now,
                    fenced,
                });
                failures.retain(|n, _| desired.containers.iter().any(|c| &c.name == n));
                errors.retain(|n, _| desired.containers.iter().any(|c| &c.name == n));
                let (infra, rest): (Vec<Action>, Vec<Action>) = plan
                    .actions
                    .into_iter()
                    .filter(|a| !inflight_names.contains(a.target()))
                    .partition(|a| a.is_infra());
                if !infra.is_empty() {
                    // Networks and volumes before any container that needs them.
                    let done =
                        join_all(infra.into_iter().map(|a| apply_owned(shared, engine, a))).await;
                    for d in done {
                        record(d, failures, errors, now)?;
                    }
                    continue;
                }
                for a in rest {
                    inflight_names.insert(a.target().to_string());
                    inflight.push(Box::pin(apply_owned(shared, engine, a)));
                }
                plan.waiting
            }
        };
        let generation = desired.as_ref().map(|d| d.generation).unwrap_or(0);
        let seen_now = Observed {
            generation,
            engine: status.clone(),
            containers,
            networks: seen.owned,
            ..Default::default()
        };
        publish(shared, seen_now, errors, failures, waiting);
        if inflight.is_empty() {
            // Look again within 5 s, and right when the lease would run out.
            let until_fence = shared.lease_deadline().saturating_sub(now_ms()) + 50;
            let mut wait = Duration::from_millis(until_fence.clamp(50, 5000));
            if !unhealthy_since.is_empty() {
                // An unhealthy container may be due for recreation any moment.
                wait = wait.min(Duration::from_millis(500));
            }
            let _ = tokio::time::timeout(wait, shared.wake.notified()).await;
            continue;
        }
        tokio::select! {
            Some(done) = inflight.next() => {
                inflight_names.remove(done.0.target());
                record(done, failures, errors, now_ms())?;
                // Take every other completion that is already there.
                while let Some(Some(done)) = inflight.next().now_or_never() {
                    inflight_names.remove(done.0.target());
                    record(done, failures, errors, now_ms())?;
                }
            }
            _ = shared.wake.notified() => {}
        }
    }
}

/// The error a container carries after being recreated for being unhealthy, until it is
/// healthy again.
const UNHEALTHY_NOTE: &str = "was unhealthy: recreated";

/// Forgets the recreations of containers that are healthy again.
fn healthy_again(
    containers: &[proto::ObservedContainer],
    failures: &mut BTreeMap<String, Failure>,
    errors: &mut BTreeMap<String, String>,
) {
    for c in containers {
        if c.health == Some(proto::Health::Healthy)
            && errors
                .get(&c.name)
                .is_some_and(|e| e.starts_with(UNHEALTHY_NOTE))
        {
            errors.remove(&c.name);
            failures.remove(&c.name);
        }
    }
}

/// Notes an action's outcome; an unreachable engine ends the drive.
fn record(
    (action, result): Done,
    failures: &mut BTreeMap<String, Failure>,
    errors: &mut BTreeMap<String, String>,
    now: u64,
) -> Result<(), engine::Error> {
    let name = action.target().to_string();
    match result {
        Ok(()) if matches!(action, Action::Recreate { .. }) => {
            // A recreation is a failure of the container: in a row, they back off, and the
            // server may move the replica to another host.
            tracing::warn!("{}", describe(&action));
            let f = failures.entry(name.clone()).or_default();
            f.count += 1;
            f.last_ms = now;
            errors.insert(name, format!("{UNHEALTHY_NOTE} ({} in a row)", f.count));
        }
        Ok(()) => {
            tracing::info!("{}", describe(&action));
            failures.remove(&name);
            errors.remove(&name);
        }
        Err(e) => {
            tracing::warn!("{} failed: {e}", describe(&action));
            if matches!(e, engine::Error::Unreachable(_)) {
                return Err(e);
            }
            if matches!(e, engine::Error::MissingNetwork(_)) {
                // The next look at the engine makes the network again; no backoff.
                return Ok(());
            }
            let f = failures.entry(name.clone()).or_default();
            f.count += 1;
            f.last_ms = now;
            errors.insert(name, e.to_string());
        }
    }
    Ok(())
}

async fn apply_owned(shared: &Shared, engine: &engine::Engine, action: Action) -> Done {
    let result = apply(shared, engine, &action).await;
    (action, result)
}

fn report_engine_down(shared: &Shared, error: String) {
    tracing::warn!("engine unreachable: {error}");
    shared.observed.send_modify(|o| {
        o.get_or_insert_with(Observed::default).engine = proto::EngineStatus {
            up: false,
            error: Some(error),
            ..Default::default()
        };
    });
}

/// The desired state as this host runs it. A network made with `drover network create`
/// (`external` in the stacks joining it) is created on each host that needs it, once
/// however many stacks join it. On the mesh, containers ask the mesh DNS and carry no engine
/// aliases (the mesh answers service names with every ready replica on every host; the
/// engine would answer local ones only), and nothing is acted on until the server has sent
/// the mesh state (subnets come from it).
fn meshed(shared: &Shared, desired: Option<proto::Desired>) -> Option<proto::Desired> {
    let mut d = desired?;
    let mut names = BTreeSet::new();
    d.networks.retain(|n| names.insert(n.name.clone()));
    for n in &mut d.networks {
        n.external = false;
    }
    let Some(mesh) = shared.mesh.as_ref().filter(|m| m.on()) else {
        return Some(d);
    };
    let place = mesh.place()?;
    // An internal network reaches nothing outside its bridge, the mesh DNS included: its
    // names stay the engine's (and it stays on its host).
    let internal: BTreeSet<String> = d
        .networks
        .iter()
        .filter(|n| n.internal)
        .map(|n| n.name.clone())
        .collect();
    for c in &mut d.containers {
        c.dns = vec![place.ip.to_string()];
        for att in &mut c.networks {
            if !internal.contains(&att.network) {
                att.aliases.clear();
            }
        }
    }
    Some(d)
}

/// Wakes the worker on every engine event about our objects.
/// The engine announces some changes (a container's `die`) a moment before its listings
/// show them, so the worker looks again this long after the last event.
const LOOK_AGAIN: Duration = Duration::from_millis(250);

fn watch_events(engine: engine::Engine, shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let again = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let mut s = std::pin::pin!(engine.events());
            while let Some(ev) = s.next().await {
                if ev.is_err() {
                    break;
                }
                shared.wake.notify_one();
                if !again.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    let (shared, again) = (shared.clone(), again.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep(LOOK_AGAIN).await;
                        again.store(false, std::sync::atomic::Ordering::Release);
                        shared.wake.notify_one();
                    });
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Publishes what was `seen` on the engine with the worker's errors and waits.
fn publish(
    shared: &Shared,
    seen: Observed,
    errors: &BTreeMap<String, String>,
    failures: &BTreeMap<String, Failure>,
    waiting: Vec<(String, String)>,
) {
    let observed = Observed {
        errors: errors
            .iter()
            .map(|(name, message)| ContainerError {
                name: name.clone(),
                message: message.clone(),
                count: failures.get(name).map(|f| f.count).unwrap_or(1),
            })
            .collect(),
        waiting: waiting
            .into_iter()
            .map(|(name, message)| ContainerError {
                name,
                message,
                count: 0,
            })
            .collect(),
        ..seen
    };
    shared.observed.send_if_modified(|o| {
        if o.as_ref() == Some(&observed) {
            false
        } else {
            *o = Some(observed);
            true
        }
    });
}

async fn apply(
    shared: &Shared,
    engine: &engine::Engine,
    action: &Action,
) -> Result<(), engine::Error> {
    match action {
        Action::CreateNetwork(n) => match shared.mesh.as_ref().filter(|m| m.on()) {
            None => engine.create_network(n, None).await,
            Some(mesh) => {
                // One at a time: each takes the lowest subnet of the host's block not in use.
                let _one = mesh.alloc.lock().await;
                let place = mesh.place().ok_or_else(|| {
                    engine::Error::Engine("mesh: no address block from the server yet".into())
                })?;
                let seen = engine.networks_seen().await?;
                // Created meanwhile (two stacks joining one network): the engine would
                // make a second network of the same name.
                if seen.names.contains_key(&n.name) {
                    return Ok(());
                }
                let subnet = mesh::free_subnet(place.block, &seen.subnets).ok_or_else(|| {
                    engine::Error::Engine(format!(
                        "mesh: no free subnet left in this host's block {}",
                        place.block
                    ))
                })?;
                engine.create_network(n, Some(subnet)).await
            }
        },
        Action::CreateVolume(v) => engine.create_volume(v).await,
        Action::Run(c) => {
            ensure_built(shared, engine, c).await?;
            let c = with_files(shared, c)?;
            engine.run(&c).await.map(|_| ())
        }
        Action::Create(c) => {
            ensure_built(shared, engine, c).await?;
            let c = with_files(shared, c)?;
            engine.create(&c).await.map(|_| ())
        }
        Action::Replace { old_id, container } | Action::Recreate { old_id, container } => {
            ensure_built(shared, engine, container).await?;
            engine.remove(old_id).await?;
            let c = with_files(shared, container)?;
            engine.run(&c).await.map(|_| ())
        }
        Action::Start { id, .. } => engine.start(id).await,
        Action::Remove { id, name } => {
            engine.remove(id).await?;
            shared.files.clear(name);
            Ok(())
        }
        Action::Kill { id, name } => {
            engine.kill_remove(id).await?;
            shared.files.clear(name);
            Ok(())
        }
        Action::RemoveNetwork { name } => engine.remove_network(name).await,
    }
}

/// `c` with its secrets and configs written where the engine mounts them from.
fn with_files(
    shared: &Shared,
    c: &proto::DesiredContainer,
) -> Result<proto::DesiredContainer, engine::Error> {
    let mut c = c.clone();
    shared
        .files
        .place(&mut c)
        .map_err(|e| engine::Error::Engine(format!("secrets and configs: {e}")))?;
    Ok(c)
}

fn describe(a: &Action) -> String {
    match a {
        Action::CreateNetwork(n) => format!("create network {}", n.name),
        Action::CreateVolume(v) => format!("create volume {}", v.name),
        Action::Run(c) => format!("run {}", c.name),
        Action::Create(c) => format!("create {}", c.name),
        Action::Replace { container, .. } => format!("replace {}", container.name),
        Action::Recreate { container, .. } => {
            format!("recreate {} (it was unhealthy)", container.name)
        }
        Action::Start { name, .. } => format!("start {name}"),
        Action::Remove { name, .. } => format!("remove {name}"),
        Action::Kill { name, .. } => format!("kill {name} (lease expired: fenced)"),
        Action::RemoveNetwork { name } => format!("remove network {name}"),
    }
}

/// Downloaded content whose SHA-256 is not the digest it was asked for by.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("content has SHA-256 {actual}, not the digest asked for: refusing to build from it")]
struct DigestMismatch {
    actual: String,
}

/// Checks that `content` hashes to `digest` (hex SHA-256, as the server names blobs).
fn verify_digest(digest: &str, content: &[u8]) -> Result<(), DigestMismatch> {
    use sha2::{Digest, Sha256};
    let actual = hex::encode(Sha256::digest(content));
    if actual.eq_ignore_ascii_case(digest) {
        Ok(())
    } else {
        Err(DigestMismatch { actual })
    }
}

/// One build at a time on a host: replicas of a `build:` service share one image.
static BUILDS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// For a `build:` service whose image the engine lacks: fetch the build context the client
/// uploaded to the server and build the image here.
async fn ensure_built(
    shared: &Shared,
    engine: &engine::Engine,
    c: &proto::DesiredContainer,
) -> Result<(), engine::Error> {
    let Some(build) = &c.spec.build else {
        return Ok(());
    };
    let Some(image) = c.spec.image_ref(&c.stack, &c.service) else {
        return Ok(());
    };
    let _one_at_a_time = BUILDS.lock().await;
    if engine.image_exists(&image).await? {
        return Ok(());
    }
    let digest = build.context_digest.as_deref().ok_or_else(|| {
        engine::Error::Engine(format!(
            "image {image} must be built but no build context was uploaded (deploy with `drover stack deploy`)"
        ))
    })?;
    let url = format!("{}/v1/agent/blobs/{digest}", shared.server);
    let fetch_err =
        |e: String| engine::Error::Engine(format!("fetching build context {digest}: {e}"));
    let resp = shared
        .http
        .get(&url)
        .bearer_auth(&shared.credential)
        .send()
        .await
        .map_err(|e| fetch_err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fetch_err(format!("server answered {}", resp.status())));
    }
    let tar = resp.bytes().await.map_err(|e| fetch_err(e.to_string()))?;
    verify_digest(digest, &tar).map_err(|e| fetch_err(e.to_string()))?;
    tracing::info!("building {image} ({} byte context)", tar.len());
    engine.build(&image, build, tar).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_contexts_must_match_their_digest() {
        // SHA-256 of "abc".
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(verify_digest(abc, b"abc"), Ok(()));
        assert_eq!(verify_digest(&abc.to_uppercase(), b"abc"), Ok(()));
        let err = verify_digest(abc, b"abd").expect_err("tampered content");
        assert_ne!(err.actual, abc);
        assert!(err.to_string().contains("refusing to build"), "{err}");
        assert!(verify_digest("", b"").is_err());
        assert!(verify_digest("not hex", b"abc").is_err());
    }
}
