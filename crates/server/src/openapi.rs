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
        document,
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
        crate::api::watch::watch,
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
        crate::api::ingress::list_certs,
        crate::api::ingress::add_cert,
        crate::api::ingress::remove_cert,
        crate::api::ingress::view,
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
        crate::api::metrics::metrics,
        crate::api::metrics::series,
        crate::api::catalog::list,
        crate::api::catalog::add,
        crate::api::catalog::remove,
        crate::api::catalog::refresh,
        crate::api::catalog::search,
        crate::api::catalog::show,
        crate::api::catalog::install,
        crate::api::catalog::upgrade_plan,
        crate::api::catalog::upgrade,
    ),
    components(schemas(api_types::ErrorBody, api_types::ErrorDetail)),
    modifiers(&Edge)
)]
pub struct ApiDoc;

/// What every route answers besides its own responses, written into the document from the
/// same table the edge (`auth::edge`) works from, `access::ROUTES`: the bearer token on every
/// route that is not public; 401 (no usable token) and 403 (refused) on each of those; 404 on
/// every route under `/v1/environments/{env}` (an environment that does not exist, or that the
/// caller may not see); 400 where a path, query or body can fail to be read (`error.rs`
/// answers each of those as `ErrorBody`); 413 on every route with a body (the body limit),
/// and on JSON bodies 415 (not sent as JSON) and 422 (JSON of the wrong shape), which
/// `JsonBody` answers as axum does.
/// Unsigned integers are written with their real range (utoipa gives `u64` the `int64`
/// format, whose range is the signed one).
struct Edge;

const BEARER: &str = "bearer";

impl utoipa::Modify for Edge {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`drover apikey create`) or a session's token (`POST /v1/sessions`)",
                    ))
                    .build(),
            ),
        );
        for schema in components.schemas.values_mut() {
            unsigned_ranges(schema);
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                name_operation(op);
                for p in op.parameters.iter_mut().flatten() {
                    if let Some(schema) = p.schema.as_mut() {
                        unsigned_ranges(schema);
                    }
                }
                edge_responses(method, path, op);
            }
        }
    }
}

/// Tags each operation with its resource (`stacks`, from the handler's module
/// `crate::api::stacks`) and makes its id unique across the document (`stacks_list`): utoipa
/// names an operation after its function alone, and several modules have a `list`.
fn name_operation(op: &mut utoipa::openapi::path::Operation) {
    let Some(tag) = op.tags.as_mut().and_then(|t| t.first_mut()) else {
        return;
    };
    let short = tag.rsplit("::").next().unwrap_or(tag.as_str()).to_string();
    *tag = short.clone();
    if let Some(id) = op.operation_id.as_mut() {
        *id = format!("{short}_{id}");
    }
}

/// The operations of a path item, with their methods as `access::ROUTES` spells them.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> Vec<(&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("GET", item.get.as_mut()),
        ("PUT", item.put.as_mut()),
        ("POST", item.post.as_mut()),
        ("DELETE", item.delete.as_mut()),
        ("PATCH", item.patch.as_mut()),
        ("HEAD", item.head.as_mut()),
        ("OPTIONS", item.options.as_mut()),
        ("TRACE", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .into()
}

fn edge_responses(method: &str, path: &str, op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::security::SecurityRequirement;
    let action = access::action_of(method, path);
    let public = matches!(action, Some(access::Action::Public));
    let params = op.parameters.as_deref().unwrap_or_default();
    let readable = !params.is_empty() || op.request_body.is_some();
    let has_path = params
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(description));
    };
    if readable {
        add(
            "400",
            if json_body {
                "the request is malformed: a path or query parameter, or the body is not JSON; \
                 or a value is refused (the field named in `error.field`)"
            } else {
                "the request is malformed: a path or query parameter; or a value is refused"
            },
        );
    }
    if json_body {
        add(
            "415",
            "the body is not sent as `Content-Type: application/json`",
        );
        add(
            "422",
            "the body is JSON of the wrong shape: a field missing, unknown or of the wrong \
             type (named in `error.field`)",
        );
    }
    if op.request_body.is_some() {
        add("413", "the body is larger than the server takes");
    }
    if !public {
        add(
            "401",
            "no token, or one that is unknown, expired or revoked",
        );
        add(
            "403",
            "the caller's role may not do this (the reason is the message)",
        );
        op.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    } else {
        op.security = Some(Vec::new());
    }
    if path.starts_with("/v1/environments/{env}") {
        add(
            "404",
            "the environment does not exist, or the caller may not see it; or what the path \
             names is not there",
        );
    } else if has_path {
        add("404", "what the path names is not there");
    }
}

/// Gives unsigned integer schemas their real range: utoipa writes `u64` as `int64` with a
/// minimum of 0, and a client reading the format would refuse values the server takes.
fn unsigned_ranges(schema: &mut utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayItems, KnownFormat, Schema, SchemaFormat,
    };
    let RefOr::T(schema) = schema else { return };
    match schema {
        Schema::Object(o) => {
            let unsigned = o.minimum.as_ref().is_some_and(|m| match m {
                utoipa::Number::Int(i) => *i == 0,
                utoipa::Number::UInt(u) => *u == 0,
                utoipa::Number::Float(f) => *f == 0.0,
            });
            if unsigned && o.maximum.is_none() {
                match o.format {
                    Some(SchemaFormat::KnownFormat(KnownFormat::Int64)) => {
                        o.format = Some(SchemaFormat::Custom("uint64".into()));
                        o.maximum = Some(utoipa::Number::UInt(u64::MAX as usize));
                    }
                    Some(SchemaFormat::KnownFormat(KnownFormat::Int32)) => {
                        o.format = Some(SchemaFormat::Custom("uint32".into()));
                        o.maximum = Some(utoipa::Number::UInt(u32::MAX as usize));
                    }
                    _ => {}
                }
            }
            for p in o.properties.values_mut() {
                unsigned_ranges(p);
            }
            if let Some(ap) = o.additional_properties.as_deref_mut()
                && let AdditionalProperties::RefOr(r) = ap
            {
                unsigned_ranges(r);
            }
        }
        Schema::Array(a) => {
            if let ArrayItems::RefOrSchema(r) = &mut a.items {
                unsigned_ranges(r);
            }
        }
        Schema::OneOf(c) => c.items.iter_mut().for_each(unsigned_ranges),
        Schema::AllOf(c) => c.items.iter_mut().for_each(unsigned_ranges),
        Schema::AnyOf(c) => c.items.iter_mut().for_each(unsigned_ranges),
        _ => {}
    }
}

/// This document. Open to anyone (`access::ROUTES` says so): the contract is no secret.
#[utoipa::path(get, path = "/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI document of this API", content_type = "application/json", body = Object)))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation declares each parameter of its path, and every operation but the
    /// public ones says what the edge answers.
    #[test]
    fn every_path_parameter_and_edge_status_is_declared() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("document as JSON");
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let wanted: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item.as_object().expect("path item") {
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                for w in &wanted {
                    if !declared.contains(w) {
                        missing.push(format!("{method} {path}: path parameter {w}"));
                    }
                }
                let public = matches!(
                    access::action_of(&method.to_uppercase(), path),
                    Some(access::Action::Public)
                );
                for status in ["401", "403"] {
                    if !public && op["responses"][status].is_null() {
                        missing.push(format!("{method} {path}: response {status}"));
                    }
                }
            }
        }
        assert!(missing.is_empty(), "undeclared:\n{}", missing.join("\n"));
    }

    /// Generated clients name their methods after operation ids: each is unique.
    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("document as JSON");
        let mut seen = std::collections::BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let id = op["operationId"]
                    .as_str()
                    .expect("operation id")
                    .to_string();
                if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                    panic!("{id} names both {other} and {method} {path}");
                }
            }
        }
    }
}
