//! REST routes under `/v1`, one file per resource.

pub mod blobs;
pub mod catalog;
pub mod containers;
pub mod environments;
pub mod exec;
pub mod files;
pub mod hosts;
pub mod ingress;
pub mod ldap;
pub mod members;
pub mod metrics;
pub mod networks;
pub mod policy;
pub mod registries;
pub mod stacks;
pub mod users;
pub mod watch;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

/// Largest request body: a compose file is capped lower by the parser itself.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn routes(state: Arc<AppState>) -> Router {
    finish(
        table().route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::edge,
        )),
        state,
    )
}

/// The routes without the edge: every request acts as `as_caller`. Only for measuring what
/// the edge costs (`xtask bench-auth`); the server never serves this.
pub fn routes_without_edge(state: Arc<AppState>, as_caller: crate::auth::Authorized) -> Router {
    finish(table().route_layer(axum::Extension(as_caller)), state)
}

fn finish(table: Router<Arc<AppState>>, state: Arc<AppState>) -> Router {
    table
        // Outside `/v1`, the web UI; unknown API routes are JSON 404s.
        .fallback(crate::ui::fallback)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(crate::error::json_errors))
        .with_state(state)
}

fn table() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/openapi.json", get(crate::openapi::document))
        .route("/v1/sessions", get(users::list_sessions).post(users::login))
        .route(
            "/v1/sessions/{id}",
            axum::routing::delete(users::end_session),
        )
        .route("/v1/whoami", get(users::whoami))
        .route("/v1/password", axum::routing::put(users::own_password))
        .route("/v1/apikeys", get(users::list_keys).post(users::create_key))
        .route("/v1/apikeys/{id}", axum::routing::delete(users::remove_key))
        .route("/v1/users", get(users::list_users).post(users::create_user))
        .route(
            "/v1/users/{user}",
            axum::routing::delete(users::remove_user),
        )
        .route(
            "/v1/users/{user}/password",
            axum::routing::put(users::set_password),
        )
        .route("/v1/audit", get(members::all))
        .route(
            "/v1/auth/ldap",
            get(ldap::get).put(ldap::set).delete(ldap::remove),
        )
        .route("/v1/auth/ldap/test", post(ldap::test))
        .route(
            "/v1/environments/{env}/members",
            get(members::list).put(members::set),
        )
        .route(
            "/v1/environments/{env}/members/{subject}",
            axum::routing::delete(members::remove),
        )
        .route("/v1/environments/{env}/audit", get(members::of_env))
        .route("/metrics", get(metrics::metrics))
        .route("/v1/environments/{env}/stats", get(metrics::series))
        .route(
            "/v1/environments/{env}/catalogs",
            get(catalog::list).post(catalog::add),
        )
        .route(
            "/v1/environments/{env}/catalogs/{name}",
            axum::routing::delete(catalog::remove),
        )
        .route(
            "/v1/environments/{env}/catalogs/{name}/refresh",
            post(catalog::refresh),
        )
        .route("/v1/environments/{env}/templates", get(catalog::search))
        .route(
            "/v1/environments/{env}/templates/{catalog}/{template}",
            get(catalog::show),
        )
        .route(
            "/v1/environments/{env}/templates/{catalog}/{template}/install",
            post(catalog::install),
        )
        .route(
            "/v1/environments/{env}/stacks/{name}/upgrade",
            get(catalog::upgrade_plan).post(catalog::upgrade),
        )
        .route(
            "/v1/environments/{env}/policy",
            get(policy::get).put(policy::set),
        )
        .route(
            "/v1/environments",
            get(hosts::environments).post(environments::create),
        )
        .route(
            "/v1/environments/{env}",
            axum::routing::delete(environments::remove),
        )
        .route(
            "/v1/environments/{env}/stacks",
            get(stacks::list).post(stacks::deploy),
        )
        .route(
            "/v1/environments/{env}/stacks/{name}",
            get(stacks::get).delete(stacks::remove),
        )
        .route(
            "/v1/environments/{env}/stacks/{name}/compose",
            get(stacks::export),
        )
        .route("/v1/environments/{env}/containers", get(containers::list))
        .route(
            "/v1/environments/{env}/containers/{name}/logs",
            get(containers::logs),
        )
        .route(
            "/v1/environments/{env}/containers/{name}/exec",
            get(exec::exec),
        )
        .route("/v1/environments/{env}/hosts", get(hosts::list))
        .route(
            "/v1/environments/{env}/hosts/tokens",
            get(hosts::list_tokens).post(hosts::create_token),
        )
        .route(
            "/v1/environments/{env}/hosts/tokens/{id}",
            axum::routing::delete(hosts::remove_token),
        )
        .route(
            "/v1/environments/{env}/hosts/{id}",
            get(hosts::inspect).delete(hosts::remove),
        )
        .route(
            "/v1/environments/{env}/hosts/{id}/labels",
            axum::routing::put(hosts::set_labels),
        )
        .route(
            "/v1/environments/{env}/hosts/{id}/drain",
            post(hosts::drain),
        )
        .route(
            "/v1/environments/{env}/networks",
            get(networks::list).post(networks::create),
        )
        .route(
            "/v1/environments/{env}/stacks/{name}/history",
            get(stacks::history),
        )
        .route(
            "/v1/environments/{env}/stacks/{name}/rollback",
            axum::routing::post(stacks::rollback),
        )
        .route(
            "/v1/environments/{env}/stacks/{stack}/services/{service}/scale",
            axum::routing::post(stacks::scale),
        )
        .route(
            "/v1/environments/{env}/stacks/{stack}/services/{service}/rollback",
            axum::routing::post(stacks::rollback_service),
        )
        .route(
            "/v1/environments/{env}/stacks/{stack}/services/{service}/restart",
            axum::routing::post(stacks::restart_service),
        )
        .route(
            "/v1/environments/{env}/secrets",
            get(files::list_secrets).post(files::create_secret),
        )
        .route(
            "/v1/environments/{env}/secrets/{name}",
            axum::routing::put(files::update_secret).delete(files::remove_secret),
        )
        .route(
            "/v1/environments/{env}/configs",
            get(files::list_configs).post(files::create_config),
        )
        .route(
            "/v1/environments/{env}/configs/{name}",
            get(files::get_config)
                .put(files::update_config)
                .delete(files::remove_config),
        )
        .route(
            "/v1/environments/{env}/registries",
            get(registries::list).post(registries::add),
        )
        .route(
            "/v1/environments/{env}/registries/{host}",
            axum::routing::delete(registries::remove),
        )
        .route(
            "/v1/environments/{env}/networks/{name}",
            get(networks::inspect).delete(networks::remove),
        )
        .route(
            "/v1/environments/{env}/certs",
            get(ingress::list_certs).post(ingress::add_cert),
        )
        .route(
            "/v1/environments/{env}/certs/{name}",
            axum::routing::delete(ingress::remove_cert),
        )
        .route("/v1/environments/{env}/ingress", get(ingress::view))
        .route("/v1/environments/{env}/events", get(hosts::events))
        .route("/v1/environments/{env}/watch", get(watch::watch))
        .route("/v1/agent/connect", get(crate::agents::connect))
        .route(
            "/v1/environments/{env}/blobs",
            post(blobs::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/agent/blobs/{digest}", get(blobs::download))
}

/// Checks the environment exists (the edge, `auth::edge`, has checked the caller may act
/// in it; this answers a removal that raced the request).
pub fn check_env(
    state: &AppState,
    _caller: &crate::auth::Caller,
    env: &str,
) -> Result<(), crate::error::ApiError> {
    if !state.environment_exists(env)? {
        return Err(crate::error::ApiError::not_found(format!(
            "environment '{env}' does not exist"
        )));
    }
    Ok(())
}
