//! The host's ingress, when its host is labelled `drover.ingress=true`: the proxy (the
//! `proxy` crate) started on the first route table the server sends, given every later one,
//! and stopped (open connections given time to finish) when the server says this host runs
//! no ingress. A host that loses the server keeps serving its last table.

use std::sync::Arc;
use std::time::Duration;

use crate::Shared;

/// How long open connections get to finish when the ingress stops.
const GRACE: Duration = Duration::from_secs(10);

pub async fn run(shared: Arc<Shared>, cfg: proxy::Config) {
    let mut tables = shared.ingress.subscribe();
    let mut running: Option<proxy::Workers> = None;
    // One worker per core (each a thread with its own runtime and SO_REUSEPORT listeners),
    // at most 4.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    loop {
        let want = tables.borrow_and_update().clone();
        match (want, running.take()) {
            (None, None) => {}
            (None, Some(p)) => {
                tracing::info!("ingress: this host no longer runs it; stopping");
                p.shutdown(GRACE).await;
            }
            (Some(table), Some(p)) => {
                for e in p.update(table) {
                    tracing::warn!("ingress: {e}");
                }
                running = Some(p);
            }
            (Some(table), None) => match proxy::Workers::start(cfg, workers) {
                Ok(p) => {
                    tracing::info!(http = %cfg.http, https = %cfg.https, workers, "ingress started");
                    for e in p.update(table) {
                        tracing::warn!("ingress: {e}");
                    }
                    running = Some(p);
                }
                Err(e) => {
                    tracing::error!("ingress not started: {e}; trying again in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            },
        }
        if tables.changed().await.is_err() {
            return;
        }
    }
}
