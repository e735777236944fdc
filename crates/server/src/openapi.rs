//! The OpenAPI document served at `/v1/openapi.json`, generated from the handlers' annotations
//! and the DTOs in `api-types`.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Drover API",
        description = "Every route but `POST /v1/sessions` (sign in) and this document needs \
            `Authorization: Bearer <token>`: an API key or a session's token."
    ),
    paths(
        crate::api::hosts::environments,
        crate::api::hosts::list,
        crate::api::hosts::inspect,
        crate::api::hosts::set_labels,
        crate::api::hosts::drain,
        crate::api::hosts::remove,
        crate::api::hosts::create_token,
        crate::api::hosts::list_tokens,
        crate::api::hosts::remove_token,
        crate::api::hosts::events,
        crate::api::stacks::deploy,
        crate::api::stacks::list,
        crate::api::stacks::get,
        crate::api::stacks::export,
        crate::api::stacks::remove,
        crate::api::stacks::scale,
        crate::api::stacks::history,
        crate::api::stacks::rollback,
        crate::api::stacks::rollback_service,
        crate::api::stacks::restart_service,
        crate::api::networks::list,
        crate::api::networks::create,
        crate::api::networks::inspect,
        crate::api::networks::remove,
        crate::api::registries::list,
        crate::api::registries::add,
        crate::api::registries::remove,
        crate::api::environments::create,
        crate::api::environments::remove,
        crate::api::files::list_secrets,
        crate::api::files::create_secret,
        crate::api::files::update_secret,
        crate::api::files::remove_secret,
        crate::api::files::list_configs,
        crate::api::files::create_config,
        crate::api::files::get_config,
        crate::api::files::update_config,
        crate::api::files::remove_config,
        crate::api::containers::list,
        crate::api::containers::logs,
        crate::api::exec::exec,
        crate::api::blobs::upload,
        crate::api::users::login,
        crate::api::users::list_sessions,
        crate::api::users::end_session,
        crate::api::users::whoami,
        crate::api::users::own_password,
        crate::api::users::list_keys,
        crate::api::users::create_key,
        crate::api::users::remove_key,
        crate::api::users::list_users,
        crate::api::users::create_user,
        crate::api::users::remove_user,
        crate::api::users::set_password,
        crate::api::members::list,
        crate::api::members::set,
        crate::api::members::remove,
        crate::api::members::all,
        crate::api::members::of_env,
        crate::api::policy::get,
        crate::api::policy::set,
        crate::api::ldap::get,
        crate::api::ldap::set,
        crate::api::ldap::remove,
        crate::api::ldap::test,
    ),
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail))
)]
pub struct ApiDoc;

/// Open to anyone (`access::ROUTES` says so): the contract is no secret.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
