//! One error type at the HTTP edge: every failure becomes a status and
//! `{"error": {"code", "message", "field"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_string()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        if let store::Error::Conflict(message) = e {
            return Self::conflict(message);
        }
        tracing::error!("{e}");
        if e.is_full() {
            // Found by the chaos suite (`xtask chaos --scenario disk`): a full data directory
            // was an "internal store error"; the operator must know what to free.
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "store_full",
                "the server's data directory is full: nothing was written; reads still work, writes resume once space is freed",
            );
        }
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal store error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = api_types::ErrorBody {
            error: api_types::ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// JSON body extractor whose rejections use the common error shape, naming the field.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        // Every body of the API is a JSON object: serde would also read a struct from an
        // array of its fields, which the document does not allow.
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), body),
            state,
        )
        .await
        {
            Ok(b) => b,
            Err(rejection) => {
                return Err(ApiError::new(
                    rejection.status(),
                    "invalid_request",
                    rejection.body_text(),
                ));
            }
        };
        let is_object = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_none_or(|b| *b == b'{');
        let req = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        match Json::<T>::from_request(req, state).await {
            Ok(_) if !is_object => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                "the body must be a JSON object",
            )),
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => {
                let text = redact(&rejection.body_text());
                let mut e = ApiError::new(rejection.status(), "invalid_request", text.clone());
                e.field = json_error_field(&text).map(str::to_string);
                Err(e)
            }
        }
    }
}

/// A JSON error without the values it quotes (serde says `invalid type: string "…"`): a
/// password sent in the wrong place must not come back in the answer, or go to a log.
fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => {
                    quoted = false;
                    out.push_str("…\"");
                }
                _ => escaped = false,
            }
        } else {
            out.push(c);
            quoted = c == '"';
        }
    }
    out
}

/// Every error in the common shape: a response of 400 or more that is not JSON (axum's own
/// rejections of a query string or path it cannot read, a body over the limit, a method a
/// route does not have) is answered as `ErrorBody`, its text the message. Runs on every
/// response; only error responses without a JSON body are touched.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if status.as_u16() < 400 {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 64 * 1024).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // Keep what the original said besides its body (`Allow` on a 405, for one).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// The field a JSON body error names: axum reports `...target type: PATH: what`.
fn json_error_field(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("target type: ")?;
    let (path, _) = rest.split_once(": ")?;
    (!path.is_empty() && path != "." && !path.contains(' ')).then_some(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_full_store_says_so() {
        let full = store::Error::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        let e = super::ApiError::from(full);
        assert_eq!(e.status, axum::http::StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(e.code, "store_full");
        assert!(
            e.message.contains("data directory is full"),
            "{}",
            e.message
        );
        let other = super::ApiError::from(store::Error::Corrupt {
            what: "x".into(),
            why: "y".into(),
        });
        assert_eq!(other.status, axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn json_errors_do_not_quote_values() {
        assert_eq!(
            super::redact(
                r#"admin: invalid type: string "hunter\"2", expected a boolean at line 1"#
            ),
            r#"admin: invalid type: string "…", expected a boolean at line 1"#
        );
        assert_eq!(super::redact("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn json_errors_name_their_field() {
        use super::json_error_field as f;
        assert_eq!(
            f(
                "Failed to deserialize the JSON body into the target type: scope: unknown field `scope`, expected `ttl_secs` or `uses` at line 1 column 8"
            ),
            Some("scope")
        );
        assert_eq!(
            f(
                "Failed to deserialize the JSON body into the target type: services.web.image: invalid type"
            ),
            Some("services.web.image")
        );
        assert_eq!(
            f("Failed to parse the request body as JSON: EOF while parsing"),
            None
        );
    }
}
