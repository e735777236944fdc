//! The OpenAPI document served at `/v1/openapi.json`, generated from the handlers' annotations
//! and the DTOs in `api-types`.

use axum::Json;
use utoipa::OpenApi;

use crate::auth::User;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Drover API",
        description = "Every route needs `Authorization: Bearer <token>`."
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
    ),
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail))
)]
pub struct ApiDoc;

pub async fn document(_user: User) -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
