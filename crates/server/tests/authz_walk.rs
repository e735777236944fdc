//! The authorisation walk: every operation of the OpenAPI document, called by every kind of
//! caller, in the caller's own environment and in a foreign one, against the whole router (on
//! an in-memory store, through `tower::ServiceExt::oneshot`). Each answer is compared with
//! what `access::authorize` decides for that identity, action and environment:
//!
//! - Allow: the edge let the request through: neither 401 nor 403, nor the "does not exist"
//!   404 the edge gives a hidden environment, nor a 405 or "no such route".
//! - Deny: 403.
//! - Hidden: 404 with "environment 'X' does not exist", alike for an environment that exists
//!   but may not be seen and one that does not exist.
//!
//! First, the document and `access::ROUTES` must list the same routes (agent routes aside,
//! which are not for API clients): a route missing from either fails the test.
//!
//! The identities are written here by hand (user, admin flag, roles, API key scope) rather
//! than derived by the server, so the walk also checks how the edge derives them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use access::{Action, Decision, Identity, Role};
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The caller's own environment, and another that exists.
const OWN: &str = "dev";
const FOREIGN: &str = "prod";

/// Routes `access::ROUTES` lists that the server does not serve yet. Each must still be
/// unserved ("no such route"): once one is served, it must be documented and taken off
/// this list.
const PENDING: &[(&str, &str)] = &[];

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One caller: its bearer token and the identity the decision is asked about.
struct Caller {
    label: &'static str,
    token: String,
    identity: Identity,
}

fn event<'a>(kind: &'a str, subject: &'a str) -> store::NewEvent<'a> {
    store::NewEvent {
        env: "",
        actor: "test",
        kind,
        subject,
        detail: "",
        source: "",
        result: "ok",
    }
}

fn identity(user: &str, admin: bool, roles: &[(&str, Role)], scope: Option<&str>) -> Identity {
    Identity {
        user: user.to_string(),
        admin,
        roles: roles
            .iter()
            .map(|(e, r)| (e.to_string(), *r))
            .collect::<BTreeMap<_, _>>(),
        scope: scope.map(str::to_string),
    }
}

/// An API key of `user`, narrowed to `scope` if given.
fn api_key(s: &mut store::Store, user: &str, name: &str, scope: Option<&str>) -> String {
    let token = server::new_token();
    let hash = server::hash_token(&token);
    s.create_user_token(
        &store::NewUserToken {
            hash: &hash,
            name,
            kind: "apikey",
            user,
            env: scope.unwrap_or("*"),
            expires_ms: None,
        },
        None,
        now_ms(),
    )
    .expect("create API key");
    token
}

fn user(s: &mut store::Store, name: &str, admin: bool) {
    let row = store::UserRow {
        name: name.to_string(),
        password_hash: None,
        admin,
        source: "local".into(),
        created_ms: 0,
    };
    assert!(
        s.create_user(&row, None, &event("user.created", name), now_ms())
            .expect("create user"),
        "user {name} is new"
    );
}

fn member(s: &mut store::Store, env: &str, subject: &str, role: Role) {
    let m = store::MemberRow {
        env: env.into(),
        subject: subject.into(),
        role: role.as_str().into(),
    };
    s.set_member(&m, &event("member.set", subject), now_ms())
        .expect("set member");
}

struct Fixture {
    app: Router,
    callers: Vec<Caller>,
    _blobs: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let now = now_ms();
    let mut s = store::Store::open_in_memory().expect("open store");
    for env in [OWN, FOREIGN] {
        assert!(
            s.create_environment(env, &event("environment.created", env), now)
                .expect("create environment")
        );
        // A host in each, so that an admin's `DELETE /v1/environments/{env}` during the walk
        // is refused (not empty) and the environment stays for the calls after it.
        s.register_host(
            &store::HostRow {
                id: format!("{env}-h1"),
                env: env.into(),
                name: format!("{env}-h1.example"),
                labels: Default::default(),
                last_seen_ms: 0,
            },
            None,
            &server::hash_token(&server::new_token()),
            false,
            now,
        )
        .expect("register host")
        .expect("host admitted");
    }
    let mut callers = Vec::new();
    user(&mut s, "root", true);
    callers.push(Caller {
        label: "admin",
        token: api_key(&mut s, "root", "k", None),
        identity: identity("root", true, &[], None),
    });
    callers.push(Caller {
        label: "admin, key narrowed to prod",
        token: api_key(&mut s, "root", "k-prod", Some(FOREIGN)),
        identity: identity("root", true, &[], Some(FOREIGN)),
    });
    for (name, role) in [
        ("olive", Role::Owner),
        ("mia", Role::Member),
        ("rita", Role::Restricted),
        ("rhea", Role::ReadOnly),
    ] {
        user(&mut s, name, false);
        member(&mut s, OWN, name, role);
        callers.push(Caller {
            label: match role {
                Role::Owner => "owner of dev",
                Role::Member => "member of dev",
                Role::Restricted => "restricted in dev",
                Role::ReadOnly => "read-only in dev",
            },
            token: api_key(&mut s, name, "k", None),
            identity: identity(name, false, &[(OWN, role)], None),
        });
    }
    // An owner of dev whose key is narrowed to another environment, where it has no role.
    callers.push(Caller {
        label: "owner of dev, key narrowed to prod",
        token: api_key(&mut s, "olive", "k-prod", Some(FOREIGN)),
        identity: identity("olive", false, &[(OWN, Role::Owner)], Some(FOREIGN)),
    });
    user(&mut s, "nora", false);
    callers.push(Caller {
        label: "user with no role",
        token: api_key(&mut s, "nora", "k", None),
        identity: identity("nora", false, &[], None),
    });

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
        app: server::router(state),
        callers,
        _blobs: blobs,
    }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.expect("router answers");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}

/// One operation of the document.
struct Operation {
    method: String,
    path: String,
    /// The body it takes (`application/json` or another type), if any.
    body: Option<String>,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if ![
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                continue;
            }
            let body = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            ops.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                body,
            });
        }
    }
    ops
}

/// The path with `{env}` as `env` and every other parameter a name nothing has.
fn concrete(template: &str, env: &str) -> String {
    template
        .split('/')
        .map(|seg| match seg {
            "{env}" => env.to_string(),
            s if s.starts_with('{') => "nothing-here".to_string(),
            s => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn request(op: &Operation, uri: &str, token: &str) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::from_bytes(op.method.as_bytes()).expect("method"))
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match op.body.as_deref() {
        // A minimal body: the edge decides before the body is read, so what is in it
        // matters only to handlers the edge let through.
        Some("application/json") => {
            b = b.header(header::CONTENT_TYPE, "application/json");
            Body::from("{}")
        }
        Some(other) => {
            b = b.header(header::CONTENT_TYPE, other);
            Body::empty()
        }
        None => Body::empty(),
    };
    b.body(body).expect("request")
}

#[tokio::test]
async fn every_route_with_every_role_in_own_and_foreign_environments() {
    let f = fixture();
    let admin = &f.callers[0].token;

    // The document, as clients get it.
    let (status, doc) = call(
        &f.app,
        Request::get("/v1/openapi.json")
            .body(Body::empty())
            .expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "the document is served");
    let ops = operations(&doc);

    // The document and the table list the same routes.
    let documented: BTreeSet<(String, String)> = ops
        .iter()
        .map(|o| (o.method.clone(), o.path.clone()))
        .collect();
    let pending: BTreeSet<(String, String)> = PENDING
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let table: BTreeSet<(String, String)> = access::ROUTES
        .iter()
        .filter(|(_, _, a)| *a != Action::Agent)
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .filter(|r| !pending.contains(r))
        .collect();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unlisted: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty() && unlisted.is_empty(),
        "routes in access::ROUTES but not in the OpenAPI document: {undocumented:?}; \
         in the document but not in access::ROUTES: {unlisted:?}"
    );
    for (method, path) in PENDING {
        let op = Operation {
            method: method.to_string(),
            path: path.to_string(),
            body: None,
        };
        let (status, body) = call(&f.app, request(&op, &concrete(path, OWN), admin)).await;
        assert!(
            status == StatusCode::NOT_FOUND && message(&body) == "no such route",
            "{method} {path} is served now ({status} {body}): document it and take it off PENDING"
        );
    }

    // Every operation, every caller, both environments.
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut mismatches = Vec::new();
    // Removing an environment last: the walk's other calls must find both still there.
    let mut ordered: Vec<&Operation> = ops.iter().collect();
    ordered.sort_by_key(|o| o.method == "DELETE" && o.path == "/v1/environments/{env}");
    for op in ordered {
        let action = access::action_of(&op.method, &op.path)
            .unwrap_or_else(|| panic!("{} {} has no action", op.method, op.path));
        for caller in &f.callers {
            for env in [OWN, FOREIGN] {
                let uri = concrete(&op.path, env);
                let route_env = access::env_of(&op.path, &uri);
                let decision = access::authorize(&caller.identity, action, route_env, true);
                let (status, body) = call(&f.app, request(op, &uri, &caller.token)).await;
                let msg = message(&body);
                let hidden_msg =
                    format!("environment '{}' does not exist", route_env.unwrap_or(""));
                let (kind, ok) = match &decision {
                    Decision::Allow => (
                        "allowed",
                        !matches!(
                            status,
                            StatusCode::UNAUTHORIZED
                                | StatusCode::FORBIDDEN
                                | StatusCode::METHOD_NOT_ALLOWED
                        ) && !(status == StatusCode::NOT_FOUND
                            && (msg == hidden_msg || msg == "no such route")),
                    ),
                    Decision::Deny(_) => ("denied", status == StatusCode::FORBIDDEN),
                    Decision::Hidden => (
                        "hidden",
                        status == StatusCode::NOT_FOUND && msg == hidden_msg,
                    ),
                };
                *counts.entry(kind).or_default() += 1;
                if !ok {
                    mismatches.push(format!(
                        "{} {uri} as {}: expected {decision:?}, got {status} {body}",
                        op.method, caller.label
                    ));
                }
                // Nothing reachable across environments: an environment the caller has no
                // role in (or that its key is not narrowed to) is never allowed.
                if let Some(e) = route_env
                    && caller.identity.role(e).is_none()
                    && decision == Decision::Allow
                {
                    mismatches.push(format!(
                        "{} {uri} as {}: allowed in an environment it may not see",
                        op.method, caller.label
                    ));
                }
            }
        }
    }
    let total: usize = counts.values().sum();
    println!(
        "authorisation walk: {} operations x {} callers x 2 environments = {total} calls; \
         {counts:?}; {} mismatches",
        ops.len(),
        f.callers.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // Every kind of decision was walked.
    for kind in ["allowed", "denied", "hidden"] {
        assert!(counts.get(kind).is_some_and(|n| *n > 0), "no {kind} calls");
    }
}
