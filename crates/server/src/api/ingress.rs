//! `/v1/environments/{env}/certs`: the ingress's TLS certificates (the key goes in once and
//! never comes out: not in answers, audit entries or logs), and
//! `/v1/environments/{env}/ingress`: every route, its backends and their health.

use std::sync::Arc;

use api_types::{CertInfo, IngressBackend, IngressHost, IngressRoute, IngressView, NewCert};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use crate::api::check_env;
use crate::auth::User;
use crate::error::{ApiError, JsonBody};
use crate::state::{AppState, Audit, now_ms};

fn info(s: &crate::ingress::Stored) -> CertInfo {
    CertInfo {
        name: s.cert.name.clone(),
        domains: s.cert.domains.clone(),
        expires_ms: s.not_after_s.saturating_mul(1000),
        source: s.source.clone(),
        created_ms: s.created_ms,
    }
}

#[utoipa::path(get, path = "/v1/environments/{env}/certs",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = Vec<CertInfo>)))]
pub async fn list_certs(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<Vec<CertInfo>>, ApiError> {
    check_env(&state, &caller, &env)?;
    Ok(Json(state.ingress.certs(&env).iter().map(info).collect()))
}

#[utoipa::path(post, path = "/v1/environments/{env}/certs",
    params(("env" = String, Path, description = "environment name")), request_body = NewCert,
    responses((status = 201, body = CertInfo), (status = 400, body = api_types::ErrorBody), (status = 409, body = api_types::ErrorBody)))]
pub async fn add_cert(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    JsonBody(req): JsonBody<NewCert>,
) -> Result<(StatusCode, Json<CertInfo>), ApiError> {
    check_env(&state, &caller, &env)?;
    if !ingress::expose::is_cert_name(&req.name) {
        return Err(ApiError::bad_request(
            "name",
            "a certificate name is a lowercase letter or digit, then letters, digits, '_', '.' or '-', at most 63",
        ));
    }
    if req.cert_pem.len() > 65536 {
        return Err(ApiError::bad_request("cert_pem", "at most 64 KiB"));
    }
    if req.key_pem.len() > 16384 {
        return Err(ApiError::bad_request("key_pem", "at most 16 KiB"));
    }
    let parsed = tls::cert_info(&req.cert_pem, &req.key_pem).map_err(|e| {
        let field = if e.starts_with("key") {
            "key_pem"
        } else {
            "cert_pem"
        };
        ApiError::bad_request(field, e)
    })?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "cert.add",
        subject: req.name.clone(),
        detail: format!("for {}", parsed.domains.join(", ")),
    };
    let stored = state
        .blocking(move |s| -> Result<crate::ingress::Stored, ApiError> {
            if s.ingress.certs(&env).iter().any(|c| c.cert.name == req.name) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "exists",
                    format!(
                        "certificate '{}' exists in environment '{env}': remove it first (drover cert rm {})",
                        req.name, req.name
                    ),
                ));
            }
            let cert = ingress::Cert {
                name: req.name.clone(),
                domains: parsed.domains.clone(),
                chain_pem: req.cert_pem.clone(),
                key_pem: req.key_pem.clone(),
            };
            let (row, stored) = s
                .ingress
                .row(&env, cert, parsed.not_after_s, "file", now_ms())
                .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
            s.store().put_cert(&row, &audit.event(), now_ms())?;
            s.ingress.remember(&env, stored.clone());
            s.mesh.changed(&env);
            Ok(stored)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(info(&stored))))
}

#[utoipa::path(delete, path = "/v1/environments/{env}/certs/{name}",
    params(("env" = String, Path, description = "environment name"), ("name" = String, Path, description = "certificate name")), responses((status = 204), (status = 404, body = api_types::ErrorBody)))]
pub async fn remove_cert(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path((env, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    check_env(&state, &caller, &env)?;
    let audit = Audit {
        env: env.clone(),
        actor: caller.actor(),
        source: caller.source.clone(),
        kind: "cert.rm",
        subject: name.clone(),
        detail: String::new(),
    };
    state
        .blocking(move |s| -> Result<(), ApiError> {
            if !s
                .store()
                .remove_cert(&env, &name, &audit.event(), now_ms())?
            {
                return Err(ApiError::not_found(format!(
                    "no certificate '{name}' in environment '{env}'"
                )));
            }
            s.ingress.forget(&env, &name);
            s.mesh.changed(&env);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/environments/{env}/ingress",
    params(("env" = String, Path, description = "environment name")), responses((status = 200, body = IngressView)))]
pub async fn view(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
) -> Result<Json<IngressView>, ApiError> {
    check_env(&state, &caller, &env)?;
    let hosts: Vec<IngressHost> = {
        let records: Vec<store::HostRecord> = state
            .model()
            .hosts(&env)
            .into_iter()
            .filter(|h| crate::ingress::is_ingress(h))
            .cloned()
            .collect();
        records
            .into_iter()
            .map(|h| {
                let name = h.name.clone();
                let state = crate::api::hosts::host_info(&state, h).state;
                IngressHost { name, state }
            })
            .collect()
    };
    let (table, problems) = crate::mesh::ingress_table(&state, &env);
    let containers = crate::api::stacks::container_infos(&state, &env, None);
    let exposed = crate::ingress::exposed(&state, &env);
    let mut routes = Vec::new();
    for (stack, service, expose) in exposed {
        for e in expose {
            let (kind, host, path, listen, port, tls) = match &e {
                ingress::Expose::Http(h) => (
                    "http",
                    h.host.clone(),
                    Some(h.path.clone().unwrap_or_else(|| "/".into())),
                    None,
                    h.port,
                    Some(h.tls.clone().unwrap_or_else(|| "none".into())),
                ),
                ingress::Expose::Tcp(t) => ("tcp", None, None, Some(t.tcp), t.port, None),
            };
            let served: Vec<&ingress::Backend> = match &e {
                ingress::Expose::Http(h) => table
                    .http
                    .iter()
                    .filter(|r| {
                        r.stack == stack
                            && r.service == service
                            && r.host == h.host.as_ref().map(|x| x.to_ascii_lowercase())
                    })
                    .flat_map(|r| &r.backends)
                    .collect(),
                ingress::Expose::Tcp(t) => table
                    .tcp
                    .iter()
                    .filter(|r| r.listen == t.tcp)
                    .flat_map(|r| &r.backends)
                    .collect(),
            };
            let backends = containers
                .iter()
                .filter(|c| c.stack == stack && c.service == service)
                .map(|c| {
                    let b = served.iter().find(|b| b.container == c.name);
                    IngressBackend {
                        container: c.name.clone(),
                        host: c.host.clone(),
                        addr: b.map(|b| b.addr.to_string()),
                        state: c.state.clone(),
                        health: c.health.clone(),
                        in_rotation: b.is_some(),
                    }
                })
                .collect();
            let acme = match &e {
                ingress::Expose::Http(h) if h.tls.as_deref() == Some("auto") => h
                    .host
                    .as_deref()
                    .and_then(|host| state.ingress.acme_error(&env, host))
                    .map(|err| format!("ACME: {err}")),
                _ => None,
            };
            let problem = acme.or_else(|| {
                problems
                    .iter()
                    .find(|p| p.contains(&format!("{stack}/{service}")))
                    .cloned()
            });
            routes.push(IngressRoute {
                kind: kind.into(),
                host,
                path,
                listen,
                stack: stack.clone(),
                service: service.clone(),
                port,
                tls,
                problem,
                backends,
            });
        }
    }
    Ok(Json(IngressView { hosts, routes }))
}
