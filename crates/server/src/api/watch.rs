//! `GET /v1/environments/{env}/watch`: server-sent events saying when what the environment's
//! stacks, containers or hosts look like has changed, so a client (the web UI) fetches again
//! only then instead of polling every route.
//!
//! Once a second the stream takes a fingerprint of each part (the same views the list
//! routes answer with) and sends `event: change` with which parts differ from the last one
//! (all of them first). A comment line every 15 s keeps proxies from closing an idle stream.
//! The stream ends after [`MAX_STREAM`]: the client connects again, and the edge checks its
//! token and role again then. A request that does not say `Accept: text/event-stream` (as
//! browsers' `EventSource` and the web UI do) gets the first event alone: a client that
//! cannot follow a stream is never left hanging.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::api::check_env;
use crate::api::hosts::host_info;
use crate::api::stacks::container_infos;
use crate::auth::User;
use crate::error::ApiError;
use crate::state::AppState;

/// How often the environment is looked at.
const TICK: Duration = Duration::from_secs(1);
/// A keep-alive comment is sent after this long without an event.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long one stream lasts before the client must connect (and be authorised) again.
const MAX_STREAM: Duration = Duration::from_secs(300);

/// Fingerprints of the three parts a client shows.
#[derive(Clone, Copy, Default, PartialEq)]
struct Prints {
    stacks: u64,
    containers: u64,
    hosts: u64,
}

fn print_of(v: &impl serde::Serialize) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(v).unwrap_or_default().hash(&mut h);
    h.finish()
}

fn prints(state: &AppState, env: &str) -> Prints {
    let stacks: Vec<(String, u64)> = state
        .model()
        .stacks(env)
        .map(|e| (e.row.project.name.clone(), e.row.revision))
        .collect();
    let hosts: Vec<store::HostRecord> = state.model().hosts(env).into_iter().cloned().collect();
    let hosts: Vec<_> = hosts.into_iter().map(|h| host_info(state, h)).collect();
    let containers = container_infos(state, env, None);
    Prints {
        stacks: print_of(&stacks),
        containers: print_of(&containers),
        hosts: print_of(&hosts),
    }
}

/// The `change` event between two fingerprints, if anything changed.
fn change(seq: u64, old: Option<Prints>, new: Prints) -> Option<String> {
    let differs = |f: fn(&Prints) -> u64| old.is_none_or(|o| f(&o) != f(&new));
    let (stacks, containers, hosts) = (
        differs(|p| p.stacks),
        differs(|p| p.containers),
        differs(|p| p.hosts),
    );
    (stacks || containers || hosts).then(|| {
        format!(
            "id: {seq}\nevent: change\ndata: {{\"stacks\":{stacks},\"containers\":{containers},\"hosts\":{hosts}}}\n\n"
        )
    })
}

struct Watch {
    state: Arc<AppState>,
    env: String,
    last: Option<Prints>,
    seq: u64,
    quiet_since: Instant,
    started: Instant,
    /// The client follows the stream (else it gets the first event alone).
    follow: bool,
}

#[utoipa::path(get, path = "/v1/environments/{env}/watch",
    params(("env" = String, Path, description = "environment name")),
    responses((status = 200, description = "server-sent events: `event: change` with `data: {\"stacks\": bool, \"containers\": bool, \"hosts\": bool}` (which parts changed; all true first), checked every second; a comment every 15 s; the stream ends after 5 minutes (connect again); without `Accept: text/event-stream`, only the first event", content_type = "text/event-stream")))]
pub async fn watch(
    State(state): State<Arc<AppState>>,
    User(caller): User,
    Path(env): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    check_env(&state, &caller, &env)?;
    let follow = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"));
    let now = Instant::now();
    let w = Watch {
        state,
        env,
        last: None,
        seq: 0,
        quiet_since: now,
        started: now,
        follow,
    };
    let stream = futures_util::stream::unfold(w, |mut w| async move {
        loop {
            if w.started.elapsed() >= MAX_STREAM || (!w.follow && w.last.is_some()) {
                return None;
            }
            if w.last.is_some() {
                tokio::time::sleep(TICK).await;
            }
            let env = w.env.clone();
            let new = w.state.blocking(move |s| prints(s, &env)).await;
            if let Some(ev) = change(w.seq, w.last, new) {
                w.seq += 1;
                w.last = Some(new);
                w.quiet_since = Instant::now();
                return Some((Ok::<_, std::io::Error>(ev), w));
            }
            if w.quiet_since.elapsed() >= KEEPALIVE {
                w.quiet_since = Instant::now();
                return Some((Ok(": keep-alive\n\n".to_string()), w));
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_event_names_everything_then_only_what_changed() {
        let a = Prints {
            stacks: 1,
            containers: 2,
            hosts: 3,
        };
        let first = change(0, None, a).expect("a first event");
        assert!(first.contains("\"stacks\":true,\"containers\":true,\"hosts\":true"));
        assert_eq!(change(1, Some(a), a), None);
        let b = Prints { containers: 9, ..a };
        let ev = change(1, Some(a), b).expect("a change");
        assert_eq!(
            ev,
            "id: 1\nevent: change\ndata: {\"stacks\":false,\"containers\":true,\"hosts\":false}\n\n"
        );
    }
}
