//! Networks: those made with `drover network create`, which stacks join with
//! `external: true`, and every stack's own. Each spans every host of the environment: a
//! host's agent makes its subnet of a network when a container there first joins it, and the
//! mesh joins the subnets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use api_types::{NetworkDetail, NetworkHost, NetworkInfo, NetworkMember, NewNetwork};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use mesh::catalog::{Known, check_name};

use crate::api::check_env;
use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, HostReport, now_ms};

/// Every network of `env` by engine name: the ones in `created` and those of its stacks.
fn known(state: &AppState, env: &str, created: &[store::NetworkRow]) -> BTreeMap<String, Known> {
    let made: Vec<(String, u64)> = created
        .iter()
        .map(|r| (r.name.clone(), r.created_ms))
        .collect();
    let mut uses: Vec<mesh::catalog::Use> = Vec::new();
    let model = state.model();
    for entry in model.stacks(env) {
        let p = &entry.row.project;
        let mut keys: BTreeSet<&str> = p.networks.keys().map(String::as_str).collect();
        keys.extend(
            p.services
                .values()
                .flat_map(|s| s.networks.keys().map(String::as_str)),
        );
        for key in keys {
            let net = p.networks.get(key);
            uses.push((
                p.name.clone(),
                proto::network_name(&p.name, key, net),
                net.is_some_and(|n| n.external),
            ));
        }
    }
    mesh::catalog::catalog(&made, &uses)
}

/// A host of the environment as its report shows it.
struct HostView {
    id: String,
    name: String,
    report: Option<HostReport>,
    /// Containers of the environment with an address, by network.
    members: HashMap<String, usize>,
}

fn host_views(state: &AppState, env: &str) -> Vec<HostView> {
    let hosts: Vec<(String, String)> = state
        .model()
        .hosts(env)
        .iter()
        .map(|h| (h.id.clone(), h.name.clone()))
        .collect();
    hosts
        .into_iter()
        .map(|(id, name)| {
            let report = state.report(&id);
            let mut members: HashMap<String, usize> = HashMap::new();
            for c in report.iter().flat_map(|r| r.containers()) {
                if c.env == env {
                    for n in c.addrs.keys() {
                        *members.entry(n.clone()).or_default() += 1;
                    }
                }
            }
            HostView {
                id,
                name,
                report,
                members,
            }
        })
        .collect()
}

/// Network `name` as the API shows it: on the hosts that report it.
fn info(name: &str, k: &Known, hosts: &[HostView]) -> NetworkInfo {
    let on_hosts = hosts
        .iter()
        .filter_map(|h| {
            let seen = h
                .report
                .as_ref()
                .and_then(|r| r.networks().iter().find(|n| n.name == name));
            let containers = h.members.get(name).copied().unwrap_or(0);
            (seen.is_some() || containers > 0).then(|| NetworkHost {
                host: h.id.clone(),
                host_name: h.name.clone(),
                subnet: seen.and_then(|n| n.subnet).map(|s| s.to_string()),
                containers,
            })
        })
        .collect();
    NetworkInfo {
        name: name.to_string(),
        kind: k.kind().to_string(),
        stacks: k.stacks(),
        hosts: on_hosts,
        created_ms: k.created_ms,
    }
}

/// The placed containers of `k`'s stacks that join network `name`, with their addresses on
/// it as their hosts report them.
fn members(
    state: &AppState,
    env: &str,
    name: &str,
    k: &Known,
    hosts: &[HostView],
) -> Vec<NetworkMember> {
    let by_id: HashMap<&str, &HostView> = hosts.iter().map(|h| (h.id.as_str(), h)).collect();
    let model = state.model();
    let mut out = Vec::new();
    for stack in k.joined.union(&k.owners) {
        let Some(entry) = model.stack(env, stack) else {
            continue;
        };
        let p = &entry.row.project;
        let joins: BTreeSet<&str> = p
            .services
            .iter()
            .filter(|(_, s)| {
                s.networks
                    .keys()
                    .any(|key| proto::network_name(&p.name, key, p.networks.get(key)) == name)
            })
            .map(|(n, _)| n.as_str())
            .collect();
        for ((service, slot), host) in entry.containers() {
            let Some(host) = host else {
                continue;
            };
            if !joins.contains(&*service) {
                continue;
            }
            let container = proto::container_name(&p.name, &service, slot);
            let view = by_id.get(&**host);
            let address = view
                .and_then(|h| h.report.as_ref())
                .and_then(|r| r.container(&container))
                .and_then(|c| c.addrs.get(name))
                .filter(|a| !a.is_unspecified())
                .map(|a| a.to_string());
            out.push(NetworkMember {
                container,
                stack: p.name.clone(),
                service: service.to_string(),
                host: host.to_string(),
                host_name: view.map(|h| h.name.clone()).unwrap_or_default(),
                address,
            });
        }
    }
    out
}

fn not_found(env: &str, name: &str) -> ApiError {
    ApiError::not_found(format!("network '{name}' not found in environment '{env}'"))
}

/// Why network `name` cannot be removed, if it cannot.
fn check_removable(name: &str, k: &Known) -> Result<(), ApiError> {
    mesh::catalog::check_removable(name, k).map_err(ApiError::conflict)
}

#[utoipa::path(get, path = "/v1/environments/{env}/networks",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<NetworkInfo>)))]
pub async fn list(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<NetworkInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    let networks = state
        .blocking(move |s| -> Result<Vec<NetworkInfo>, ApiError> {
            let created = s.store().networks(&env)?;
            let hosts = host_views(s, &env);
            Ok(known(s, &env, &created)
                .iter()
                .map(|(name, k)| info(name, k, &hosts))
                .collect())
        })
        .await?;
    Ok(Json(networks))
}

#[utoipa::path(get, path = "/v1/environments/{env}/networks/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "network name")), responses((status = 200, body = NetworkDetail), (status = 404, body = api_types::ErrorBody)))]
pub async fn inspect(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<Json<NetworkDetail>, ApiError> {
    check_env(&state, &caller, &env)?;
    let detail = state
        .blocking(move |s| -> Result<NetworkDetail, ApiError> {
            let created = s.store().networks(&env)?;
            let all = known(s, &env, &created);
            let k = all.get(&name).ok_or_else(|| not_found(&env, &name))?;
            let hosts = host_views(s, &env);
            Ok(NetworkDetail {
                network: info(&name, k, &hosts),
                containers: members(s, &env, &name, k, &hosts),
            })
        })
        .await?;
    Ok(Json(detail))
}

#[utoipa::path(post, path = "/v1/environments/{env}/networks",
    params(("env" = String, Path, description = "environment name")), request_body = NewNetwork,
    responses((status = 201, body = NetworkInfo), (status = 400, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewNetwork>,
) -> Result<(StatusCode, Json<NetworkInfo>), ApiError> {
    check_env(&state, &caller, &env)?;
    check_name(&req.name).map_err(|e| ApiError::bad_request("name", e))?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "network.create",
        subject: req.name.clone(),
        detail: String::new(),
    };
    let name = req.name;
    let made = state
        .blocking(move |s| -> Result<NetworkInfo, ApiError> {
            // A stack's own network has this engine name: stacks joining an external network
            // of the name (deployed before it had to be created) are what creating it is for.
            if let Some(k) = known(s, &env, &[]).get(&name)
                && !k.owners.is_empty()
            {
                let owners: Vec<&str> = k.owners.iter().map(String::as_str).collect();
                return Err(ApiError::conflict(format!(
                    "network '{name}' exists already in environment '{env}': it belongs to stack {}",
                    owners.join(", ")
                )));
            }
            let row = store::NetworkRow {
                env: env.clone(),
                name: name.clone(),
                created_ms: now_ms(),
            };
            if !s.store().create_network(&row, &audit.event())? {
                return Err(ApiError::conflict(format!(
                    "network '{name}' exists already in environment '{env}'"
                )));
            }
            let created = s.store().networks(&env)?;
            let all = known(s, &env, &created);
            let k = all.get(&name).ok_or_else(|| not_found(&env, &name))?;
            Ok(info(&name, k, &host_views(s, &env)))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(made)))
}

#[utoipa::path(delete, path = "/v1/environments/{env}/networks/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "network name")), responses((status = 204), (status = 404, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "network.rm",
        subject: name.clone(),
        detail: String::new(),
    };
    state
        .blocking(move |s| -> Result<(), ApiError> {
            let created = s.store().networks(&env)?;
            let all = known(s, &env, &created);
            let k = all.get(&name).ok_or_else(|| not_found(&env, &name))?;
            check_removable(&name, k)?;
            if !s
                .store()
                .delete_network(&env, &name, &audit.event(), now_ms())?
            {
                return Err(not_found(&env, &name));
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
