//! Authentication and authorisation over the HTTP layer, without sockets: the whole router
//! (`server::router`) on an in-memory store, driven with `tower::ServiceExt::oneshot`.
//!
//! Most cases are tables of (request, expected status, expected error code, expected
//! message fragment) run through [`check`]. Agent routes cannot be upgraded to a WebSocket
//! here: a caller the server accepts on `GET /v1/agent/connect` gets as far as the upgrade
//! and is answered 426 (no upgradable connection under `oneshot`), which is how the tests
//! tell "accepted" from 401/403.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The server's request body limit (`api::MAX_BODY`).
const MAX_BODY: usize = 8 * 1024 * 1024;

const STACKS: &str = "/v1/environments/default/stacks";
const TOKENS: &str = "/v1/environments/default/hosts/tokens";
const CONNECT: &str = "/v1/agent/connect";
const NETWORKS: &str = "/v1/environments/default/networks";
const REGISTRIES: &str = "/v1/environments/default/registries";

/// A digest no blob has.
const MISSING: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn blob_url(digest: &str) -> String {
    format!("/v1/agent/blobs/{digest}")
}

/// The server with one credential of every kind, plus some that must not work.
struct Fixture {
    app: Router,
    state: Arc<server::AppState>,
    /// `admin` token.
    admin: String,
    /// `member` of `default`.
    member: String,
    /// `member` of `staging` (an environment with no row).
    staging_member: String,
    /// Registration token of `default` (kind `agent`, no limits).
    agent: String,
    /// Credential of host `h1` in `default` (kind `host`).
    host: String,
    /// Credential of host `s1`, registered in `staging`.
    staging_host: String,
    /// Registration token whose `expires_ms` has passed.
    expired: String,
    /// Registration token with one use, used by host `h2`.
    used_up: String,
    /// Registration token removed from the store before the server started.
    deleted: String,
    /// An admin token 257 characters long (its hash is stored).
    long_admin: String,
    /// An admin token exactly 256 characters long (its hash is stored).
    edge_admin: String,
    _blobs: tempfile::TempDir,
}

fn host_row(id: &str, env: &str) -> store::HostRow {
    store::HostRow {
        id: id.into(),
        env: env.into(),
        name: format!("{id}.example"),
        labels: Default::default(),
        last_seen_ms: 0,
    }
}

fn registration(
    s: &mut store::Store,
    name: &str,
    expires_ms: Option<u64>,
    uses: Option<u64>,
) -> String {
    let token = server::new_token();
    let hash = server::hash_token(&token);
    s.create_token(
        &store::NewToken {
            hash: &hash,
            name,
            kind: "agent",
            env: "default",
            expires_ms,
            uses,
        },
        "test",
        now_ms(),
    )
    .expect("create registration token");
    token
}

fn fixture() -> Fixture {
    let now = now_ms();
    let mut s = store::Store::open_in_memory().expect("open store");
    let mut add = |kind: &str, name: &str, env: &str, token: String| -> String {
        s.add_token(&server::hash_token(&token), name, kind, env, now)
            .expect("add token");
        token
    };
    let admin = add("admin", "admin", "default", server::new_token());
    let member = add("member", "dev", "default", server::new_token());
    let staging_member = add("member", "stager", "staging", server::new_token());
    let long_admin = add("admin", "long-admin", "default", "x".repeat(257));
    let edge_admin = add("admin", "edge-admin", "default", "y".repeat(256));

    let agent = registration(&mut s, "agent-main", None, None);
    let expired = registration(&mut s, "agent-expired", Some(now - 1_000), None);
    let used_up = registration(&mut s, "agent-once", None, Some(1));
    let deleted = registration(&mut s, "agent-deleted", None, None);

    let host = server::new_token();
    s.register_host(
        &host_row("h1", "default"),
        Some(&server::hash_token(&agent)),
        &server::hash_token(&host),
        false,
        now,
    )
    .expect("register h1")
    .expect("h1 admitted");
    s.register_host(
        &host_row("h2", "default"),
        Some(&server::hash_token(&used_up)),
        &server::hash_token(&server::new_token()),
        false,
        now,
    )
    .expect("register h2")
    .expect("h2 admitted with the last use");
    let staging_host = server::new_token();
    s.register_host(
        &host_row("s1", "staging"),
        None,
        &server::hash_token(&staging_host),
        false,
        now,
    )
    .expect("register s1")
    .expect("s1 admitted");
    let event = store::NewEvent {
        env: "default",
        actor: "test",
        kind: "token.removed",
        subject: "agent-deleted",
        detail: "agent",
        source: "",
        result: "ok",
    };
    let removed = s
        .delete_token("default", "agent", "agent-deleted", &event, now)
        .expect("delete token");
    assert!(removed.is_some(), "agent-deleted was in the store");

    let blobs = tempfile::tempdir().expect("temp dir");
    let state = Arc::new(
        server::AppState::new(
            s,
            "test-cluster".into(),
            blobs.path(),
            server::scheduling::Timing::default(),
        )
        .expect("app state"),
    );
    Fixture {
        app: server::router(state.clone()),
        state,
        admin,
        member,
        staging_member,
        agent,
        host,
        staging_host,
        expired,
        used_up,
        deleted,
        long_admin,
        edge_admin,
        _blobs: blobs,
    }
}

/// What goes into the `Authorization` header.
#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    Raw(HeaderValue),
}

fn bearer(token: &str) -> Auth {
    Auth::Bearer(token.to_string())
}

fn request(method: Method, uri: &str, auth: &Auth, json: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri);
    match auth {
        Auth::None => {}
        Auth::Bearer(t) => b = b.header(header::AUTHORIZATION, format!("Bearer {t}")),
        Auth::Raw(v) => b = b.header(header::AUTHORIZATION, v.clone()),
    }
    let body = match json {
        Some(j) => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from(j.to_string())
        }
        None => Body::empty(),
    };
    b.body(body).expect("request")
}

fn get(uri: &str, auth: &Auth) -> Request<Body> {
    request(Method::GET, uri, auth, None)
}

fn post(uri: &str, auth: &Auth, json: &str) -> Request<Body> {
    request(Method::POST, uri, auth, Some(json))
}

fn delete(uri: &str, auth: &Auth) -> Request<Body> {
    request(Method::DELETE, uri, auth, None)
}

/// `GET /v1/agent/connect` as a WebSocket client sends it.
fn connect(auth: &Auth) -> Request<Body> {
    connect_to(CONNECT, auth)
}

/// A WebSocket upgrade request for `uri`.
fn connect_to(uri: &str, auth: &Auth) -> Request<Body> {
    let mut req = get(uri, auth);
    let h = req.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    h.insert(
        header::SEC_WEBSOCKET_KEY,
        HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    req
}

/// What an accepted caller gets from `GET /v1/agent/connect` under `oneshot`.
const ACCEPTED_UPGRADE: StatusCode = StatusCode::UPGRADE_REQUIRED;

/// Sends `req`; returns the status, the body as text and the body as JSON (`Null` if not).
async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, Value) {
    let resp = app
        .clone()
        .oneshot(req)
        .await
        .expect("router is infallible");
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("response body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, text, json)
}

/// One expected outcome.
struct Case {
    label: String,
    req: Request<Body>,
    status: StatusCode,
    /// `error.code` of the body, when the status is an error of the API's own.
    code: Option<&'static str>,
    /// A fragment `error.message` must contain.
    message: Option<String>,
}

fn case(label: impl Into<String>, req: Request<Body>, status: StatusCode) -> Case {
    Case {
        label: label.into(),
        req,
        status,
        code: None,
        message: None,
    }
}

impl Case {
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    fn message(mut self, fragment: impl Into<String>) -> Self {
        self.message = Some(fragment.into());
        self
    }
}

/// Sends the request of `c` and asserts its status, error code and message; returns the
/// body as JSON for further checks.
async fn check(app: &Router, c: Case) -> Value {
    let (status, text, json) = send(app, c.req).await;
    assert_eq!(status, c.status, "{}: body {text}", c.label);
    if let Some(code) = c.code {
        assert_eq!(
            json["error"]["code"].as_str(),
            Some(code),
            "{}: body {text}",
            c.label
        );
        assert!(
            json["error"]["message"].is_string(),
            "{}: error without a message: {text}",
            c.label
        );
    }
    if let Some(fragment) = &c.message {
        let message = json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(fragment.as_str()),
            "{}: message {message:?} lacks {fragment:?}",
            c.label
        );
    }
    json
}

async fn check_all(app: &Router, cases: Vec<Case>) {
    for c in cases {
        check(app, c).await;
    }
}

/// Credentials that are no credential at all, with the message each must get.
fn bad_credentials(f: &Fixture) -> Vec<(&'static str, Auth, &'static str)> {
    const MISSING_TOKEN: &str = "missing bearer token";
    const INVALID: &str = "invalid token";
    let raw = |s: &str| Auth::Raw(HeaderValue::from_str(s).expect("header value"));
    let mut opaque = format!("Bearer {}", f.admin).into_bytes();
    opaque.push(0xff);
    vec![
        ("no header", Auth::None, MISSING_TOKEN),
        ("basic scheme", raw("Basic YWRtaW46YWRtaW4="), MISSING_TOKEN),
        ("scheme without token", raw("Bearer"), MISSING_TOKEN),
        ("token without scheme", raw(&f.admin), MISSING_TOKEN),
        (
            "token in another scheme",
            raw(&format!("Token {}", f.admin)),
            MISSING_TOKEN,
        ),
        (
            "non-text header bytes",
            Auth::Raw(HeaderValue::from_bytes(&opaque).expect("opaque header value")),
            MISSING_TOKEN,
        ),
        ("empty token", raw("Bearer "), INVALID),
        ("wrong token", bearer(&server::new_token()), INVALID),
        (
            "truncated token",
            bearer(&f.admin[..f.admin.len() - 1]),
            INVALID,
        ),
        (
            "token with a suffix",
            bearer(&format!("{}0", f.admin)),
            INVALID,
        ),
        (
            "doubled scheme",
            raw(&format!("Bearer Bearer {}", f.admin)),
            INVALID,
        ),
        (
            "the stored hash instead of the token",
            bearer(&server::hash_token(&f.admin)),
            INVALID,
        ),
        ("over-long unknown token", bearer(&"a".repeat(257)), INVALID),
        (
            "over-long token whose hash is stored as admin",
            bearer(&f.long_admin),
            INVALID,
        ),
        (
            "huge token",
            bearer(&format!("drv_{}", "f".repeat(64 * 1024))),
            INVALID,
        ),
        ("removed registration token", bearer(&f.deleted), INVALID),
    ]
}

/// User routes (method, uri, JSON body) a valid admin token may call without side effects
/// that need the scheduling loop.
fn user_routes() -> Vec<(Method, String, Option<&'static str>)> {
    vec![
        (Method::GET, "/v1/environments".into(), None),
        (Method::GET, STACKS.into(), None),
        (Method::GET, "/v1/environments/default/hosts".into(), None),
        (
            Method::GET,
            "/v1/environments/default/hosts/h1".into(),
            None,
        ),
        (Method::GET, TOKENS.into(), None),
        (Method::POST, TOKENS.into(), Some("{}")),
        (Method::GET, "/v1/environments/default/events".into(), None),
        (Method::GET, NETWORKS.into(), None),
        (Method::POST, NETWORKS.into(), Some(r#"{"name":"shared"}"#)),
        (Method::GET, format!("{NETWORKS}/shared"), None),
        (Method::DELETE, format!("{NETWORKS}/shared"), None),
        (
            Method::GET,
            "/v1/environments/default/containers".into(),
            None,
        ),
        (
            Method::GET,
            "/v1/environments/default/containers/web-web-1/exec".into(),
            None,
        ),
        (
            Method::DELETE,
            "/v1/environments/default/hosts/tokens/agent-main".into(),
            None,
        ),
        (
            Method::DELETE,
            "/v1/environments/default/hosts/h1".into(),
            None,
        ),
        (
            Method::POST,
            STACKS.into(),
            Some(r#"{"name":"web","compose":"services:\n  web:\n    image: nginx\n"}"#),
        ),
    ]
}

/// Builds a request carrying the given credential.
type MakeRequest = fn(&Auth) -> Request<Body>;

fn agent_routes() -> Vec<(&'static str, MakeRequest)> {
    fn blob(auth: &Auth) -> Request<Body> {
        get(&blob_url(MISSING), auth)
    }
    vec![
        ("GET /v1/agent/connect", connect),
        ("GET /v1/agent/blobs", blob),
    ]
}

#[tokio::test]
async fn bad_credentials_are_401_on_user_routes() {
    let f = fixture();
    let mut cases = Vec::new();
    for (method, uri, body) in user_routes() {
        for (what, auth, message) in bad_credentials(&f) {
            cases.push(
                case(
                    format!("{method} {uri} with {what}"),
                    request(method.clone(), &uri, &auth, body),
                    StatusCode::UNAUTHORIZED,
                )
                .code("unauthorized")
                .message(message),
            );
        }
    }
    check_all(&f.app, cases).await;
    // Nothing above went through: the registration token and the host are still there.
    check(
        &f.app,
        case(
            "h1 still there",
            get("/v1/environments/default/hosts/h1", &bearer(&f.admin)),
            StatusCode::OK,
        ),
    )
    .await;
    check(
        &f.app,
        case(
            "agent-main still usable",
            connect(&bearer(&f.agent)),
            ACCEPTED_UPGRADE,
        ),
    )
    .await;
}

#[tokio::test]
async fn bad_credentials_are_401_on_agent_routes() {
    let f = fixture();
    let mut cases = Vec::new();
    for (route, make) in agent_routes() {
        for (what, auth, message) in bad_credentials(&f) {
            cases.push(
                case(
                    format!("{route} with {what}"),
                    make(&auth),
                    StatusCode::UNAUTHORIZED,
                )
                .code("unauthorized")
                .message(message),
            );
        }
    }
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn exec_names_an_unknown_container_before_the_upgrade() {
    let f = fixture();
    for token in [&f.admin, &f.member] {
        check(
            &f.app,
            case(
                "exec in an unknown container",
                connect_to(
                    "/v1/environments/default/containers/nope-web-1/exec",
                    &bearer(token),
                ),
                StatusCode::NOT_FOUND,
            )
            .code("not_found")
            .message("container 'nope-web-1' not found in environment 'default'"),
        )
        .await;
    }
}

/// A WebSocket upgrade of `uri` carrying `protocols` in `Sec-WebSocket-Protocol` and no
/// `Authorization` (what a browser sends).
fn browser_connect_to(uri: &str, protocols: &str) -> Request<Body> {
    let mut req = connect_to(uri, &Auth::None);
    req.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(protocols).expect("header"),
    );
    req
}

#[tokio::test]
async fn browsers_give_the_exec_route_their_token_as_a_subprotocol() {
    let f = fixture();
    let exec = "/v1/environments/default/containers/nope-web-1/exec";
    // Accepted (the unknown container is the next answer), on the exec route only.
    let (status, text, _) = send(
        &f.app,
        browser_connect_to(exec, &format!("drover.exec, bearer.{}", f.member)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("container 'nope-web-1' not found"), "{text}");
    for (what, req) in [
        (
            "another route",
            browser_connect_to(STACKS, &format!("bearer.{}", f.admin)),
        ),
        (
            "an agent route",
            browser_connect_to(CONNECT, &format!("bearer.{}", f.agent)),
        ),
        (
            "a token that is not one",
            browser_connect_to(exec, "drover.exec, bearer.drv_nope"),
        ),
        ("no token", browser_connect_to(exec, "drover.exec")),
    ] {
        let (status, text, _) = send(&f.app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {text}");
    }
    // Not an upgrade: the header is not read.
    let mut plain = get(exec, &Auth::None);
    plain.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_str(&format!("bearer.{}", f.admin)).expect("header"),
    );
    let (status, text, _) = send(&f.app, plain).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
}

#[tokio::test]
async fn the_web_ui_is_public_and_unknown_api_routes_stay_json() {
    let f = fixture();
    for path in ["/", "/stacks/shop", "/containers/x/logs"] {
        let (status, text, _) = send(&f.app, get(path, &Auth::None)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        assert!(text.contains("<html"), "{path}: {text}");
    }
    let (status, _, body) = send(&f.app, get("/v1/nope", &Auth::None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _, body) = send(&f.app, post("/anything", &Auth::None, "{}")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn watch_without_an_event_stream_accept_gets_the_first_event_alone() {
    let f = fixture();
    let (status, text, _) = send(
        &f.app,
        get("/v1/environments/default/watch", &bearer(&f.member)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        text,
        "id: 0\nevent: change\ndata: {\"stacks\":true,\"containers\":true,\"hosts\":true}\n\n"
    );
}

#[tokio::test]
async fn good_credentials_pass_where_they_belong() {
    let f = fixture();
    let cases = vec![
        case(
            "admin lists stacks",
            get(STACKS, &bearer(&f.admin)),
            StatusCode::OK,
        ),
        case(
            "member lists stacks",
            get(STACKS, &bearer(&f.member)),
            StatusCode::OK,
        ),
        case(
            "admin token of exactly 256 characters",
            get(STACKS, &bearer(&f.edge_admin)),
            StatusCode::OK,
        ),
        case(
            "the scheme is case-insensitive",
            request(
                Method::GET,
                STACKS,
                &Auth::Raw(HeaderValue::from_str(&format!("bearer {}", f.admin)).expect("header")),
                None,
            ),
            StatusCode::OK,
        ),
        case(
            "surrounding spaces are trimmed",
            request(
                Method::GET,
                STACKS,
                &Auth::Raw(
                    HeaderValue::from_str(&format!("Bearer   {}  ", f.admin)).expect("header"),
                ),
                None,
            ),
            StatusCode::OK,
        ),
        case(
            "member reads openapi",
            get("/v1/openapi.json", &bearer(&f.member)),
            StatusCode::OK,
        ),
        case(
            "registration token connects",
            connect(&bearer(&f.agent)),
            ACCEPTED_UPGRADE,
        ),
        case(
            "host credential connects",
            connect(&bearer(&f.host)),
            ACCEPTED_UPGRADE,
        ),
    ];
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn agent_credentials_are_403_on_user_routes() {
    let f = fixture();
    let mut cases = Vec::new();
    for (method, uri, body) in user_routes() {
        for (what, token) in [
            ("registration token", &f.agent),
            ("host credential", &f.host),
            ("host credential of staging", &f.staging_host),
        ] {
            cases.push(
                case(
                    format!("{method} {uri} with {what}"),
                    request(method.clone(), &uri, &bearer(token), body),
                    StatusCode::FORBIDDEN,
                )
                .code("forbidden")
                .message("may not use the API"),
            );
        }
    }
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn user_tokens_are_403_on_agent_routes() {
    let f = fixture();
    let mut cases = Vec::new();
    for (route, make) in agent_routes() {
        for (what, token) in [
            ("admin", &f.admin),
            ("member", &f.member),
            ("member of staging", &f.staging_member),
            ("256-character admin", &f.edge_admin),
        ] {
            cases.push(
                case(
                    format!("{route} with {what}"),
                    make(&bearer(token)),
                    StatusCode::FORBIDDEN,
                )
                .code("forbidden")
                .message("only agents may use /v1/agent routes"),
            );
        }
    }
    check_all(&f.app, cases).await;
}

/// Every environment-scoped route, for environment `env`.
fn env_routes(env: &str) -> Vec<(Method, String, Option<&'static str>)> {
    let e = format!("/v1/environments/{env}");
    vec![
        (Method::GET, format!("{e}/stacks"), None),
        (
            Method::POST,
            format!("{e}/stacks"),
            Some(r#"{"name":"web","compose":"services:\n  web:\n    image: nginx\n"}"#),
        ),
        (Method::GET, format!("{e}/stacks/web"), None),
        (Method::DELETE, format!("{e}/stacks/web"), None),
        (Method::GET, format!("{e}/stacks/web/compose"), None),
        (Method::GET, format!("{e}/containers"), None),
        (Method::GET, format!("{e}/containers/web-web-1/logs"), None),
        (Method::GET, format!("{e}/containers/web-web-1/exec"), None),
        (Method::GET, format!("{e}/hosts"), None),
        (Method::GET, format!("{e}/hosts/tokens"), None),
        (Method::POST, format!("{e}/hosts/tokens"), Some("{}")),
        (Method::DELETE, format!("{e}/hosts/tokens/agent-main"), None),
        (Method::GET, format!("{e}/hosts/s1"), None),
        (Method::DELETE, format!("{e}/hosts/s1"), None),
        (
            Method::PUT,
            format!("{e}/hosts/s1/labels"),
            Some(r#"{"labels":{}}"#),
        ),
        (
            Method::POST,
            format!("{e}/hosts/s1/drain"),
            Some(r#"{"drain":true}"#),
        ),
        (Method::GET, format!("{e}/events"), None),
        (Method::GET, format!("{e}/networks"), None),
        (
            Method::POST,
            format!("{e}/networks"),
            Some(r#"{"name":"shared"}"#),
        ),
        (Method::GET, format!("{e}/networks/shared"), None),
        (Method::DELETE, format!("{e}/networks/shared"), None),
        (
            Method::POST,
            format!("{e}/stacks/web/services/web/scale"),
            Some(r#"{"replicas":2}"#),
        ),
        (Method::GET, format!("{e}/stacks/web/history"), None),
        (Method::POST, format!("{e}/stacks/web/rollback"), Some("{}")),
        (
            Method::POST,
            format!("{e}/stacks/web/services/web/rollback"),
            None,
        ),
        (Method::GET, format!("{e}/registries"), None),
        (
            Method::POST,
            format!("{e}/registries"),
            Some(r#"{"host":"ghcr.io","username":"u","password":"p"}"#),
        ),
        (Method::DELETE, format!("{e}/registries/ghcr.io"), None),
        (
            Method::POST,
            format!("{e}/blobs"),
            Some("not really a tarball"),
        ),
    ]
}

#[tokio::test]
async fn members_stay_in_their_environment() {
    let f = fixture();
    let mut cases = Vec::new();
    // The store has no way to add an environment row: `staging` has tokens and a host but
    // no row, and `nope` has nothing. A member of `default` is answered for both as for an
    // environment that does not exist, so it never learns whether one does; so is an admin.
    for env in ["staging", "nope"] {
        for (method, uri, body) in env_routes(env) {
            cases.push(
                case(
                    format!("member of default: {method} {uri}"),
                    request(method.clone(), &uri, &bearer(&f.member), body),
                    StatusCode::NOT_FOUND,
                )
                .code("not_found")
                .message(format!("environment '{env}' does not exist")),
            );
            cases.push(
                case(
                    format!("admin: {method} {uri}"),
                    request(method.clone(), &uri, &bearer(&f.admin), body),
                    StatusCode::NOT_FOUND,
                )
                .code("not_found")
                .message(format!("environment '{env}' does not exist")),
            );
        }
    }
    // And a member of `staging` may not act in `default`.
    for (method, uri, body) in env_routes("default") {
        cases.push(
            case(
                format!("member of staging: {method} {uri}"),
                request(method.clone(), &uri, &bearer(&f.staging_member), body),
                StatusCode::NOT_FOUND,
            )
            .code("not_found")
            .message("environment 'default' does not exist"),
        );
    }
    check_all(&f.app, cases).await;

    // The environment list shows each caller only its own.
    let list = |token: &str| get("/v1/environments", &bearer(token));
    let admin = check(&f.app, case("admin envs", list(&f.admin), StatusCode::OK)).await;
    assert_eq!(admin, serde_json::json!([{"name": "default"}]));
    let member = check(&f.app, case("member envs", list(&f.member), StatusCode::OK)).await;
    assert_eq!(member, serde_json::json!([{"name": "default"}]));
    let stager = check(
        &f.app,
        case("staging envs", list(&f.staging_member), StatusCode::OK),
    )
    .await;
    assert_eq!(stager, serde_json::json!([]));

    // A host of `staging` cannot be reached through the path of `default`.
    let s1 = "/v1/environments/default/hosts/s1";
    let member = bearer(&f.member);
    let cases = vec![
        case(
            "inspect s1 via default",
            get(s1, &member),
            StatusCode::NOT_FOUND,
        ),
        case(
            "label s1 via default",
            request(
                Method::PUT,
                &format!("{s1}/labels"),
                &member,
                Some(r#"{"labels":{"a":"b"}}"#),
            ),
            StatusCode::NOT_FOUND,
        ),
        case(
            "drain s1 via default",
            post(&format!("{s1}/drain"), &member, r#"{"drain":true}"#),
            StatusCode::NOT_FOUND,
        ),
        case(
            "remove s1 via default",
            delete(s1, &member),
            StatusCode::NOT_FOUND,
        ),
    ];
    for c in cases {
        let c = c
            .code("not_found")
            .message("host 's1' not found in environment 'default'");
        check(&f.app, c).await;
    }
    check(
        &f.app,
        case(
            "s1 still there",
            connect(&bearer(&f.staging_host)),
            ACCEPTED_UPGRADE,
        ),
    )
    .await;
    // The registration token the member of staging tried to remove is still there.
    check(
        &f.app,
        case(
            "agent-main kept",
            connect(&bearer(&f.agent)),
            ACCEPTED_UPGRADE,
        ),
    )
    .await;
}

#[tokio::test]
async fn unusable_registration_tokens_are_401() {
    let f = fixture();
    let cases = vec![
        case(
            "expired",
            connect(&bearer(&f.expired)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("registration token 'agent-expired' has expired or is used up"),
        case(
            "used up",
            connect(&bearer(&f.used_up)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("registration token 'agent-once' has expired or is used up"),
        case(
            "removed",
            connect(&bearer(&f.deleted)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("invalid token"),
        case(
            "expired, on blobs",
            get(&blob_url(MISSING), &bearer(&f.expired)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized"),
        case(
            "used up, on a user route",
            get(STACKS, &bearer(&f.used_up)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized"),
        // The host that used the last use keeps its own credential.
        case(
            "fresh token still connects",
            connect(&bearer(&f.agent)),
            ACCEPTED_UPGRADE,
        ),
    ];
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn a_registration_token_expiring_while_cached_is_refused() {
    let f = fixture();
    let token = {
        let mut s = f.state.store();
        registration(&mut s, "agent-short", Some(now_ms() + 300), None)
    };
    // Looked up once, so the server holds it in its cache.
    check(
        &f.app,
        case("before expiry", connect(&bearer(&token)), ACCEPTED_UPGRADE),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    check(
        &f.app,
        case(
            "after expiry",
            connect(&bearer(&token)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("has expired or is used up"),
    )
    .await;
}

#[tokio::test]
async fn a_registration_token_used_up_while_cached_is_refused() {
    let f = fixture();
    let created = check(
        &f.app,
        case(
            "create",
            post(TOKENS, &bearer(&f.admin), r#"{"uses": 1}"#),
            StatusCode::OK,
        ),
    )
    .await;
    let token = created["token"]
        .as_str()
        .expect("token in reply")
        .to_string();
    assert_eq!(created["uses"], 1);
    check(
        &f.app,
        case("before use", connect(&bearer(&token)), ACCEPTED_UPGRADE),
    )
    .await;
    // What an agent's first connection does with it.
    let credential = server::new_token();
    f.state
        .register_new_host(
            &host_row("h9", "default"),
            Some(&server::hash_token(&token)),
            &server::hash_token(&credential),
            false,
        )
        .expect("store")
        .expect("h9 admitted");
    let cases = vec![
        case(
            "after its one use",
            connect(&bearer(&token)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("has expired or is used up"),
        case(
            "the new credential",
            connect(&bearer(&credential)),
            ACCEPTED_UPGRADE,
        ),
    ];
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn a_removed_registration_token_is_refused_at_once() {
    let f = fixture();
    let created = check(
        &f.app,
        case(
            "create",
            post(TOKENS, &bearer(&f.member), "{}"),
            StatusCode::OK,
        ),
    )
    .await;
    let token = created["token"]
        .as_str()
        .expect("token in reply")
        .to_string();
    let id = created["id"].as_str().expect("id in reply").to_string();
    assert_eq!(created["env"], "default");
    let by_id = format!("{TOKENS}/{id}");
    let cases = vec![
        // Used (and so cached) before it is removed.
        case("before removal", connect(&bearer(&token)), ACCEPTED_UPGRADE),
        case(
            "user route with it",
            get(STACKS, &bearer(&token)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
        case(
            "remove",
            delete(&by_id, &bearer(&f.member)),
            StatusCode::NO_CONTENT,
        ),
        case(
            "after removal",
            connect(&bearer(&token)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("invalid token"),
        case(
            "after removal, on blobs",
            get(&blob_url(MISSING), &bearer(&token)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized"),
        case(
            "remove again",
            delete(&by_id, &bearer(&f.admin)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found")
        .message(format!("no registration token '{id}'")),
    ];
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn the_token_route_removes_registration_tokens_only() {
    let f = fixture();
    // A registration token of `staging`.
    let staging_agent = server::new_token();
    f.state
        .store()
        .create_token(
            &store::NewToken {
                hash: &server::hash_token(&staging_agent),
                name: "agent-staging",
                kind: "agent",
                env: "staging",
                expires_ms: None,
                uses: None,
            },
            "test",
            now_ms(),
        )
        .expect("create token");
    // Other kinds of token share the table, and so do other environments' registration
    // tokens: none of them may be removed here.
    let cases = vec![
        case(
            "registration token of staging",
            delete(&format!("{TOKENS}/agent-staging"), &bearer(&f.member)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found"),
        case(
            "staging token still works",
            connect(&bearer(&staging_agent)),
            ACCEPTED_UPGRADE,
        ),
        case(
            "admin token",
            delete(&format!("{TOKENS}/admin"), &bearer(&f.member)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found"),
        case(
            "member token",
            delete(&format!("{TOKENS}/dev"), &bearer(&f.member)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found"),
        case(
            "host credential",
            delete(&format!("{TOKENS}/host-h1"), &bearer(&f.member)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found"),
        case(
            "admin still works",
            get(STACKS, &bearer(&f.admin)),
            StatusCode::OK,
        ),
        case(
            "member still works",
            get(STACKS, &bearer(&f.member)),
            StatusCode::OK,
        ),
        case(
            "host still works",
            connect(&bearer(&f.host)),
            ACCEPTED_UPGRADE,
        ),
    ];
    check_all(&f.app, cases).await;
}

#[tokio::test]
async fn a_removed_host_loses_its_credential_at_once() {
    let f = fixture();
    // Removing a host waits for a scheduling pass.
    let looping = tokio::spawn(server::scheduling::run_loop(
        f.state.clone(),
        server::scheduling::Timing::default(),
    ));
    let cases = vec![
        case(
            "before removal",
            connect(&bearer(&f.host)),
            ACCEPTED_UPGRADE,
        ),
        case(
            "remove h1",
            delete("/v1/environments/default/hosts/h1", &bearer(&f.admin)),
            StatusCode::NO_CONTENT,
        ),
        case(
            "after removal",
            connect(&bearer(&f.host)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized")
        .message("invalid token"),
        case(
            "after removal, on blobs",
            get(&blob_url(MISSING), &bearer(&f.host)),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized"),
    ];
    check_all(&f.app, cases).await;
    looping.abort();
}

#[tokio::test]
async fn registration_token_requests_are_validated() {
    let f = fixture();
    let admin = bearer(&f.admin);
    let cases = vec![
        case(
            "ttl 0",
            post(TOKENS, &admin, r#"{"ttl_secs": 0}"#),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request")
        .message("must be between 1 and"),
        case(
            "ttl too long",
            post(TOKENS, &admin, r#"{"ttl_secs": 999999999999}"#),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request"),
        case(
            "uses 0",
            post(TOKENS, &admin, r#"{"uses": 0}"#),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request")
        .message("must be between 1 and"),
        case(
            "uses too many",
            post(TOKENS, &admin, r#"{"uses": 1000001}"#),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request"),
    ];
    for (c, field) in cases
        .into_iter()
        .zip(["ttl_secs", "ttl_secs", "uses", "uses"])
    {
        let label = c.label.clone();
        let body = check(&f.app, c).await;
        assert_eq!(body["error"]["field"], field, "{label}: {body}");
    }

    // An unknown field is refused and named. Shape errors of a JSON body are 422, as
    // everywhere in the API (the CLI and the end-to-end tests rely on it).
    let body = check(
        &f.app,
        case(
            "unknown field",
            post(TOKENS, &admin, r#"{"ttl_secs": 60, "scope": "admin"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .code("invalid_request")
        .message("unknown field `scope`"),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expected `ttl_secs` or `uses`")),
        "the refusal names the accepted fields: {body}"
    );
    assert_eq!(body["error"]["field"], "scope", "{body}");
    let cases = vec![
        case(
            "wrong type",
            post(TOKENS, &admin, r#"{"uses": "many"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .code("invalid_request")
        .message("uses"),
        case(
            "not JSON",
            post(TOKENS, &admin, "{"),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request"),
        case(
            "no content type",
            Request::builder()
                .method(Method::POST)
                .uri(TOKENS)
                .header(header::AUTHORIZATION, format!("Bearer {}", f.admin))
                .body(Body::from("{}"))
                .expect("request"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        )
        .code("invalid_request"),
    ];
    check_all(&f.app, cases).await;

    // None of the refused requests made a token: only agent-main is listed.
    let list = check(&f.app, case("list", get(TOKENS, &admin), StatusCode::OK)).await;
    let mut ids: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["agent-expired", "agent-main", "agent-once"], "{list}");
}

#[tokio::test]
async fn listed_registration_tokens_never_show_the_secret() {
    let f = fixture();
    let created = check(
        &f.app,
        case(
            "create",
            post(
                TOKENS,
                &bearer(&f.admin),
                r#"{"ttl_secs": 3600, "uses": 3}"#,
            ),
            StatusCode::OK,
        ),
    )
    .await;
    let token = created["token"]
        .as_str()
        .expect("token in reply")
        .to_string();
    let id = created["id"].as_str().expect("id in reply").to_string();
    assert!(token.starts_with("drv_") && token.len() == 68, "{created}");
    assert!(
        id.strip_prefix("agent-")
            .is_some_and(|rest| !rest.is_empty() && !token.contains(rest)),
        "id is not part of the secret: {created}"
    );

    for who in [&f.admin, &f.member] {
        let (status, text, json) = send(&f.app, get(TOKENS, &bearer(who))).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let listed: Vec<&Value> = json.as_array().expect("a list").iter().collect();
        let mine = listed
            .iter()
            .find(|t| t["id"] == id.as_str())
            .expect("the new token is listed");
        assert_eq!(mine["uses_left"], 3, "{text}");
        assert!(mine["expires_ms"].as_u64().is_some(), "{text}");
        for secret in [
            &token, &f.agent, &f.expired, &f.used_up, &f.host, &f.admin, &f.member,
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret is listed: {text}"
            );
            let hash = server::hash_token(secret);
            assert!(!text.contains(&hash), "a token hash is listed: {text}");
            assert!(
                !text.contains(&secret[4..]),
                "part of a secret is listed: {text}"
            );
        }
        // Only registration tokens: no admin, member or host credential names.
        for other in ["\"admin\"", "\"dev\"", "host-h1", "stager"] {
            assert!(!text.contains(other), "{other} is listed: {text}");
        }
        // Every entry has only the documented keys.
        for t in &listed {
            let mut keys: Vec<&str> = t
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            keys.sort_unstable();
            assert_eq!(
                keys,
                ["created_ms", "expires_ms", "id", "uses_left"],
                "{text}"
            );
        }
    }
    // Nor does the audit log carry it.
    let (status, text, _) = send(
        &f.app,
        get("/v1/environments/default/events", &bearer(&f.admin)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains(&id), "the creation is audited: {text}");
    assert!(
        !text.contains(&token) && !text.contains(&server::hash_token(&token)),
        "{text}"
    );
}

#[tokio::test]
async fn build_contexts_are_for_hosts_of_their_environment() {
    let f = fixture();
    // An admin uploads a build context to `default`.
    let tarball = b"pretend this is a tarball".to_vec();
    let upload = Request::builder()
        .method(Method::POST)
        .uri("/v1/environments/default/blobs")
        .header(header::AUTHORIZATION, format!("Bearer {}", f.admin))
        .header(header::CONTENT_TYPE, "application/x-tar")
        .body(Body::from(tarball.clone()))
        .expect("request");
    let created = check(&f.app, case("upload", upload, StatusCode::OK)).await;
    let digest = created["digest"].as_str().expect("digest").to_string();
    assert_eq!(digest.len(), 64, "{created}");

    let cases = vec![
        case(
            "host, missing digest",
            get(&blob_url(MISSING), &bearer(&f.host)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found")
        .message("no build context"),
        case(
            "registration token, missing digest",
            get(&blob_url(MISSING), &bearer(&f.agent)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden")
        .message("use the host's credential"),
        case(
            "registration token, existing digest",
            get(&blob_url(&digest), &bearer(&f.agent)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
        // The fixture's `staging` has no environment row, so the server does not know its
        // host at all: refused before any lookup of the digest.
        case(
            "host of another environment",
            get(&blob_url(&digest), &bearer(&f.staging_host)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
        case(
            "host, not a digest",
            get(&blob_url("abc"), &bearer(&f.host)),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request"),
        case(
            "host, traversal",
            get(&blob_url("..%2F..%2F..%2Fetc%2Fpasswd"), &bearer(&f.host)),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request"),
        case(
            "host, uppercase hex",
            get(&blob_url(&MISSING.replace('0', "A")), &bearer(&f.host)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found"),
        case(
            "admin",
            get(&blob_url(&digest), &bearer(&f.admin)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
    ];
    for c in cases {
        let label = c.label.clone();
        let body = check(&f.app, c).await;
        if body["error"]["code"] == "invalid_request" {
            assert_eq!(body["error"]["field"], "digest", "{label}: {body}");
        }
    }

    // The host of `default` gets the bytes.
    let (status, text, _) = send(&f.app, get(&blob_url(&digest), &bearer(&f.host))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text.as_bytes(), tarball.as_slice());

    // Uploads are a user's: agents, hosts and other environments' members are refused.
    let upload_as = |auth: &Auth| {
        request(
            Method::POST,
            "/v1/environments/default/blobs",
            auth,
            Some("x"),
        )
    };
    let cases = vec![
        case(
            "upload, no token",
            upload_as(&Auth::None),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized"),
        case(
            "upload, registration token",
            upload_as(&bearer(&f.agent)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
        case(
            "upload, host credential",
            upload_as(&bearer(&f.host)),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
        case(
            "upload, member of staging",
            upload_as(&bearer(&f.staging_member)),
            StatusCode::NOT_FOUND,
        )
        .code("not_found"),
        case(
            "upload, member",
            upload_as(&bearer(&f.member)),
            StatusCode::OK,
        ),
    ];
    check_all(&f.app, cases).await;
}

/// A JSON deploy request `size` bytes long.
fn deploy_body(size: usize) -> Vec<u8> {
    let head = br#"{"name":"big","compose":""#;
    let tail = br#""}"#;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head);
    body.resize(size - tail.len(), b'a');
    body.extend_from_slice(tail);
    body
}

fn deploy_request(auth: &Auth, body: Vec<u8>, with_length: bool) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(STACKS)
        .header(header::CONTENT_TYPE, "application/json");
    if let Auth::Bearer(t) = auth {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if with_length {
        b = b.header(header::CONTENT_LENGTH, body.len());
        b.body(Body::from(body)).expect("request")
    } else {
        // Streamed in chunks, with no length announced.
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
            .chunks(256 * 1024)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        b.body(Body::from_stream(futures_util::stream::iter(chunks)))
            .expect("request")
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let f = fixture();
    let admin = bearer(&f.admin);
    let cases = vec![
        case(
            "one byte over, with length",
            deploy_request(&admin, deploy_body(MAX_BODY + 1), true),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .code("invalid_request"),
        case(
            "one byte over, streamed",
            deploy_request(&admin, deploy_body(MAX_BODY + 1), false),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .code("invalid_request"),
        case(
            "twice the limit",
            deploy_request(&admin, deploy_body(2 * MAX_BODY), false),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .code("invalid_request"),
        // At the limit the body is read: the compose file inside is what is refused then.
        case(
            "at the limit",
            deploy_request(&admin, deploy_body(MAX_BODY), true),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_compose"),
        // Authentication comes before the body is read.
        case(
            "oversized without a token",
            deploy_request(&Auth::None, deploy_body(MAX_BODY + 1), true),
            StatusCode::UNAUTHORIZED,
        )
        .code("unauthorized"),
        case(
            "oversized with a registration token",
            deploy_request(&bearer(&f.agent), deploy_body(MAX_BODY + 1), true),
            StatusCode::FORBIDDEN,
        )
        .code("forbidden"),
    ];
    check_all(&f.app, cases).await;

    // The same limit on the other JSON routes.
    let mut big = br#"{"uses": 1, "x": ""#.to_vec();
    big.resize(MAX_BODY + 1, b' ');
    let req = Request::builder()
        .method(Method::POST)
        .uri(TOKENS)
        .header(header::AUTHORIZATION, format!("Bearer {}", f.admin))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .expect("request");
    check(
        &f.app,
        case(
            "oversized token request",
            req,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    )
    .await;
}

/// `POST /stacks` with a compose file.
fn deploy_compose(auth: &Auth, name: &str, compose: &str) -> Request<Body> {
    let body = serde_json::json!({ "name": name, "compose": compose }).to_string();
    request(Method::POST, STACKS, auth, Some(&body))
}

#[tokio::test]
async fn networks_are_made_joined_by_stacks_and_removed() {
    let f = fixture();
    // Deploys and stack removals wait for a scheduling pass.
    let looping = tokio::spawn(server::scheduling::run_loop(
        f.state.clone(),
        server::scheduling::Timing::default(),
    ));
    let admin = bearer(&f.admin);
    let member = bearer(&f.member);
    let back = "services:\n  api:\n    image: nginx\n    networks: [shared]\nnetworks:\n  shared:\n    external: true\n";
    // `front` joins it under another key, and has its own `default` network.
    let front = "services:\n  gw:\n    image: nginx\n    networks: [default, common]\nnetworks:\n  common:\n    external: true\n    name: shared\n";

    let refused = check(
        &f.app,
        case(
            "deploy before the network exists",
            deploy_compose(&admin, "back", back),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_compose")
        .message(
            "networks.shared: external network 'shared' does not exist in environment \
             'default': create it with `drover network create shared`",
        ),
    )
    .await;
    assert_eq!(refused["error"]["field"], "project.networks.shared");

    // Names: refused with the field named; unknown fields refused.
    for bad in [
        r#"{"name": ""}"#,
        r#"{"name": "-net"}"#,
        r#"{"name": "a/b"}"#,
        r#"{"name": "net work"}"#,
    ] {
        let body = check(
            &f.app,
            case(
                format!("create {bad}"),
                post(NETWORKS, &admin, bad),
                StatusCode::BAD_REQUEST,
            )
            .code("invalid_request"),
        )
        .await;
        assert_eq!(body["error"]["field"], "name", "{bad}: {body}");
    }
    let long = serde_json::json!({ "name": "n".repeat(65) }).to_string();
    check(
        &f.app,
        case(
            "create, 65 characters",
            post(NETWORKS, &admin, &long),
            StatusCode::BAD_REQUEST,
        )
        .code("invalid_request")
        .message("at most 64"),
    )
    .await;
    let body = check(
        &f.app,
        case(
            "create, unknown field",
            post(NETWORKS, &admin, r#"{"name": "x", "driver": "overlay"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .code("invalid_request")
        .message("unknown field `driver`"),
    )
    .await;
    assert_eq!(body["error"]["field"], "driver", "{body}");

    let made = check(
        &f.app,
        case(
            "create",
            post(NETWORKS, &member, r#"{"name": "shared"}"#),
            StatusCode::CREATED,
        ),
    )
    .await;
    assert_eq!(made["name"], "shared", "{made}");
    assert_eq!(made["kind"], "external", "{made}");
    assert!(made["created_ms"].as_u64().is_some(), "{made}");
    check(
        &f.app,
        case(
            "create again",
            post(NETWORKS, &admin, r#"{"name": "shared"}"#),
            StatusCode::CONFLICT,
        )
        .code("conflict")
        .message("network 'shared' exists already in environment 'default'"),
    )
    .await;

    check_all(
        &f.app,
        vec![
            case(
                "deploy back",
                deploy_compose(&admin, "back", back),
                StatusCode::OK,
            ),
            case(
                "deploy front",
                deploy_compose(&admin, "front", front),
                StatusCode::OK,
            ),
            case(
                "create a stack's own network",
                post(NETWORKS, &admin, r#"{"name": "front_default"}"#),
                StatusCode::CONFLICT,
            )
            .code("conflict")
            .message("belongs to stack front"),
        ],
    )
    .await;

    let list = check(&f.app, case("list", get(NETWORKS, &member), StatusCode::OK)).await;
    let listed: Vec<(String, String, Vec<String>)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| {
            let stacks = n["stacks"]
                .as_array()
                .expect("stacks")
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            let text = |k: &str| n[k].as_str().unwrap_or_default().to_string();
            (text("name"), text("kind"), stacks)
        })
        .collect();
    let own = |s: &str| vec![s.to_string()];
    assert_eq!(
        listed,
        [
            ("front_default".into(), "stack".into(), own("front")),
            (
                "shared".into(),
                "external".into(),
                vec!["back".into(), "front".into()]
            ),
        ],
        "{list}"
    );

    let detail = check(
        &f.app,
        case(
            "inspect",
            get(&format!("{NETWORKS}/shared"), &member),
            StatusCode::OK,
        ),
    )
    .await;
    assert_eq!(detail["network"]["name"], "shared", "{detail}");
    assert!(detail["containers"].is_array(), "{detail}");

    check_all(
        &f.app,
        vec![
            case(
                "inspect unknown",
                get(&format!("{NETWORKS}/nope"), &member),
                StatusCode::NOT_FOUND,
            )
            .code("not_found")
            .message("network 'nope' not found in environment 'default'"),
            case(
                "remove while joined",
                delete(&format!("{NETWORKS}/shared"), &admin),
                StatusCode::CONFLICT,
            )
            .code("conflict")
            .message("joined by stacks back, front"),
            case(
                "remove a stack's own network",
                delete(&format!("{NETWORKS}/front_default"), &admin),
                StatusCode::CONFLICT,
            )
            .code("conflict")
            .message("belongs to stack front: it goes with `drover stack rm front`"),
            case(
                "remove unknown",
                delete(&format!("{NETWORKS}/nope"), &admin),
                StatusCode::NOT_FOUND,
            )
            .code("not_found"),
            case(
                "remove back",
                delete(&format!("{STACKS}/back"), &admin),
                StatusCode::NO_CONTENT,
            ),
            case(
                "remove while front joins",
                delete(&format!("{NETWORKS}/shared"), &admin),
                StatusCode::CONFLICT,
            )
            .code("conflict")
            .message("joined by stack front"),
            case(
                "remove front",
                delete(&format!("{STACKS}/front"), &admin),
                StatusCode::NO_CONTENT,
            ),
            case(
                "remove",
                delete(&format!("{NETWORKS}/shared"), &member),
                StatusCode::NO_CONTENT,
            ),
            case(
                "remove again",
                delete(&format!("{NETWORKS}/shared"), &admin),
                StatusCode::NOT_FOUND,
            )
            .code("not_found"),
        ],
    )
    .await;
    let list = check(
        &f.app,
        case("list, empty", get(NETWORKS, &admin), StatusCode::OK),
    )
    .await;
    assert_eq!(list, serde_json::json!([]));

    // Both are in the audit log.
    let events = check(
        &f.app,
        case(
            "events",
            get("/v1/environments/default/events", &admin),
            StatusCode::OK,
        ),
    )
    .await;
    let audited: Vec<(&str, &str)> = events
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|e| Some((e["kind"].as_str()?, e["subject"].as_str()?)))
        .filter(|(k, _)| k.starts_with("network."))
        .collect();
    let mut audited = audited;
    audited.sort_unstable();
    assert_eq!(
        audited,
        [("network.create", "shared"), ("network.rm", "shared")],
        "{events}"
    );
    looping.abort();
}

#[tokio::test]
async fn registry_logins_go_in_and_never_come_out() {
    let f = fixture();
    let admin = bearer(&f.admin);
    let body = r#"{"host":"127.0.0.1:5000","username":"ci","password":"s3cret-pass"}"#;
    let (status, text, _) = send(
        &f.app,
        request(Method::POST, REGISTRIES, &admin, Some(body)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert!(!text.contains("s3cret-pass"), "{text}");
    let (status, text, _) = send(&f.app, request(Method::GET, REGISTRIES, &admin, None)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        text.contains("127.0.0.1:5000") && text.contains("\"ci\""),
        "{text}"
    );
    assert!(!text.contains("s3cret-pass"), "{text}");
    // Sealed in the store; the audit entry names the user, not the password.
    let stored = f.state.store().registries().expect("rows");
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].sealed.contains("s3cret"), "{:?}", stored[0]);
    let events = f.state.store().events("default", 10).expect("events");
    assert!(
        events
            .iter()
            .any(|e| e.kind == "registry.add" && e.detail == "as ci")
    );
    assert!(events.iter().all(|e| !e.detail.contains("s3cret")));
    // Bad input names its field; an unknown registry is 404.
    let (status, text, _) = send(
        &f.app,
        request(
            Method::POST,
            REGISTRIES,
            &admin,
            Some(r#"{"host":"a/b","username":"u","password":"p"}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("\"field\":\"host\""), "{text}");
    let (status, text, _) = send(
        &f.app,
        request(
            Method::POST,
            REGISTRIES,
            &admin,
            Some(r#"{"host":"h","username":"u","password":""}"#),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("\"field\":\"password\""), "{text}");
    let uri = format!("{REGISTRIES}/127.0.0.1:5000");
    let (status, _, _) = send(&f.app, request(Method::DELETE, &uri, &admin, None)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = send(&f.app, request(Method::DELETE, &uri, &admin, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
