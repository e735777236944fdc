//! REST routes under `/v1`, one file per resource.

pub mod blobs;
pub mod containers;
pub mod environments;
pub mod exec;
pub mod files;
pub mod hosts;
pub mod networks;
pub mod registries;
pub mod stacks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::state::AppState;

/// Largest request body: a compose file is capped lower by the parser itself.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub fn routes(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/openapi.json", get(crate::openapi::document))
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
        .route("/v1/environments/{env}/events", get(hosts::events))
        .route("/v1/agent/connect", get(crate::agents::connect))
        .route(
            "/v1/environments/{env}/blobs",
            post(blobs::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/agent/blobs/{digest}", get(blobs::download))
        .fallback(|| async { crate::error::ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Checks the environment exists and the caller may act in it.
pub fn check_env(
    state: &AppState,
    caller: &crate::auth::Caller,
    env: &str,
) -> Result<(), crate::error::ApiError> {
    caller.may_use_env(env)?;
    if !state.environment_exists(env)? {
        return Err(crate::error::ApiError::not_found(format!(
            "environment '{env}' does not exist"
        )));
    }
    Ok(())
}
