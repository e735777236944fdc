//! Build contexts: the CLI uploads a `build:` service's context as a tarball
//! (`POST /v1/environments/{env}/blobs`, content-addressed by SHA-256); the agent that
//! builds the image fetches it (`GET /v1/agent/blobs/{digest}`).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::api::check_env;
use crate::auth::{AgentCaller, User};
use crate::error::ApiError;
use crate::state::AppState;

/// Largest build context accepted.
pub const MAX_BLOB: u64 = 512 * 1024 * 1024;

#[derive(Serialize, utoipa::ToSchema)]
pub struct BlobCreated {
    /// Hex SHA-256 of the uploaded bytes.
    pub digest: String,
    pub size: u64,
}

#[utoipa::path(post, path = "/v1/environments/{env}/blobs",
    params(("env" = String, Path, description = "environment name")), request_body(description = "the build context, a tar archive (any content type is taken; the CLI says `application/x-tar`)", content((Vec<u8> = "application/octet-stream"), (Vec<u8> = "application/x-tar"))),
    responses((status = 200, body = BlobCreated), (status = 400, body = api_types::ErrorBody, description = "an empty body"), (status = 413, body = api_types::ErrorBody)))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    body: Body,
) -> Result<Json<BlobCreated>, ApiError> {
    check_env(&state, &caller, &env)?;
    let dir = blob_dir(&state, &env);
    let io = |e: std::io::Error| {
        tracing::error!("blob store: {e}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot store upload",
        )
    };
    tokio::fs::create_dir_all(&dir).await.map_err(io)?;
    let tmp = dir.join(format!("upload-{}.tmp", state.next_id()));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = body.into_data_stream();
    let result: Result<(), ApiError> = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ApiError::bad_request("body", e.to_string()))?;
            size += chunk.len() as u64;
            if size > MAX_BLOB {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("build context larger than {MAX_BLOB} bytes"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    if size == 0 {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(ApiError::bad_request(
            "body",
            "an empty build context: send the tar archive",
        ));
    }
    let digest = hex::encode(hasher.finalize());
    tokio::fs::rename(&tmp, dir.join(&digest))
        .await
        .map_err(io)?;
    Ok(Json(BlobCreated { digest, size }))
}

/// Build contexts of one environment: an agent fetches only its own environment's.
fn blob_dir(state: &AppState, env: &str) -> std::path::PathBuf {
    state.blobs_dir.join(hex::encode(env.as_bytes()))
}

pub async fn download(
    State(state): State<Arc<AppState>>,
    AgentCaller(caller): AgentCaller,
    Path(digest): Path<String>,
) -> Result<Response, ApiError> {
    let registered = caller
        .host
        .as_deref()
        .is_some_and(|h| state.model().host(h).is_some());
    caller.may_fetch_blobs(registered)?;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "digest",
            "expected 64 hex characters",
        ));
    }
    let path = blob_dir(&state, &caller.env).join(&digest);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // Uploaded before contexts were kept per environment (<blobs>/<digest>).
        Err(_) => {
            let legacy = state.blobs_dir.join(&digest);
            let is_file = tokio::fs::metadata(&legacy)
                .await
                .is_ok_and(|m| m.is_file());
            let found = match is_file {
                true => tokio::fs::File::open(&legacy).await.ok(),
                false => None,
            };
            found.ok_or_else(|| ApiError::not_found(format!("no build context {digest}")))?
        }
    };
    let stream = tokio_util_stream(file);
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

/// A file as a stream of chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(Some(file), |f| async move {
        let mut f = f?;
        let mut buf = vec![0u8; 64 * 1024];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(f)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}
