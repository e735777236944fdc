//! The web UI: the files `ui/` builds (`ui/dist`, found by `build.rs`, or a placeholder page
//! when it was not built) embedded in the binary and served outside `/v1`. They are public:
//! the UI signs in through `POST /v1/sessions` and uses only the REST API. A path that names
//! no file is a client-side route and gets `index.html`; `/v1/...` never comes here (unknown
//! API routes stay JSON 404s).

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

static FILES: include_dir::Dir<'_> = include_dir::include_dir!("$DROVER_UI_DIR");

/// Every UI response's security headers: only this origin's scripts, styles, images and
/// connections (the API); inline styles too (xterm.js writes its own `<style>` elements
/// and the UI sets positions through `style`), never inline scripts; never framed; no
/// referrer sent anywhere.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Whether a path belongs to the API (answered by the API's own 404 when unknown).
pub fn is_api(path: &str) -> bool {
    path == "/v1" || path.starts_with("/v1/")
}

/// The fallback of the router: API paths are 404 JSON, others the UI.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    if is_api(uri.path()) {
        return ApiError::not_found("no such route").into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on the web UI (allowed: GET,HEAD)"),
        )
        .into_response();
    }
    serve(uri.path())
}

/// The file at `path`, or `index.html` for a client-side route.
pub fn serve(path: &str) -> Response {
    let rel = path.trim_start_matches('/');
    let (file, fresh) = match FILES.get_file(rel).filter(|_| !rel.is_empty()) {
        Some(f) => (f, false),
        None => match FILES.get_file("index.html") {
            Some(f) => (f, true),
            None => return ApiError::not_found("the web UI is not built").into_response(),
        },
    };
    let name = file.path().to_string_lossy();
    // Vite names assets by content hash: they may be cached for good; index.html never.
    let cache = if !fresh && name.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut res = Response::new(Body::from(file.contents()));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(&name)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    for (k, v) in SECURITY_HEADERS {
        h.insert(k, HeaderValue::from_static(v));
    }
    res
}

fn mime(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, e)| e) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_are_not_the_ui() {
        assert!(is_api("/v1"));
        assert!(is_api("/v1/nope"));
        assert!(!is_api("/v1x"));
        assert!(!is_api("/stacks/web"));
    }

    #[test]
    fn client_routes_get_the_index_with_security_headers() {
        for path in ["/", "/stacks/shop", "/no/such/file.js"] {
            let res = serve(path);
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            let h = res.headers();
            assert_eq!(h["content-type"], "text/html; charset=utf-8", "{path}");
            assert_eq!(h["x-frame-options"], "DENY");
            assert_eq!(h["referrer-policy"], "no-referrer");
            assert!(
                h["content-security-policy"]
                    .to_str()
                    .expect("ascii")
                    .starts_with("default-src 'self'")
            );
        }
    }
}
