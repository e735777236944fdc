//! Resource use, sampled every [`EVERY`]: the host's CPU and memory (from `/proc`) and each
//! running container of the cluster (the engine's stats API, a few at a time), sent to the
//! server as one `Stats` message. A sample that cannot be taken is skipped, never retried in
//! a loop; the message never waits for the session (it is dropped when the session is busy).

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use proto::{AgentMsg, ContainerStats, HostStats, Stats};

/// How often the agent samples.
pub const EVERY: Duration = Duration::from_secs(10);
/// Containers sampled at once (each sample takes the engine about a second).
const AT_ONCE: usize = 8;

/// CPU time counters of `/proc/stat`'s first line: (busy, total) jiffies.
pub fn cpu_times(proc_stat: &str) -> Option<(u64, u64)> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy.
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// (used, total) bytes from `/proc/meminfo` (used: total minus available).
pub fn memory(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        meminfo
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kib| kib * 1024)
    };
    let total = field("MemTotal:")?;
    let available = field("MemAvailable:")?;
    Some((total.saturating_sub(available), total))
}

/// Percent busy between two `cpu_times` samples.
pub fn cpu_percent(before: (u64, u64), after: (u64, u64)) -> f64 {
    let busy = after.0.saturating_sub(before.0);
    let total = after.1.saturating_sub(before.1);
    if total == 0 {
        0.0
    } else {
        busy as f64 / total as f64 * 100.0
    }
}

/// Samples until the session ends (`tx` closed).
pub async fn run(cluster: String, tx: mpsc::Sender<AgentMsg>) {
    let mut tick = tokio::time::interval(EVERY);
    let mut last_cpu = read_cpu();
    loop {
        tick.tick().await;
        if tx.is_closed() {
            return;
        }
        let Ok(engine) = engine::Engine::connect(&cluster).await else {
            continue;
        };
        let running: Vec<proto::ObservedContainer> = match engine.containers().await {
            Ok(cs) => cs
                .into_iter()
                .filter(|c| c.state == proto::ContainerState::Running)
                .collect(),
            Err(_) => continue,
        };
        let containers: Vec<ContainerStats> = futures_util::stream::iter(running)
            .map(|c| {
                let engine = &engine;
                async move {
                    let mut s = engine.stats(&c.id, &c.name).await.ok()?;
                    s.env = c.env;
                    s.stack = c.stack;
                    s.service = c.service;
                    Some(s)
                }
            })
            .buffer_unordered(AT_ONCE)
            .filter_map(|s| async move { s })
            .collect()
            .await;
        let cpu = read_cpu();
        let host_cpu = match (last_cpu, cpu) {
            (Some(a), Some(b)) => cpu_percent(a, b),
            _ => 0.0,
        };
        last_cpu = cpu;
        let (mem_used, mem_total) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| memory(&t))
            .unwrap_or((0, 0));
        let msg = AgentMsg::Stats(Stats {
            at_ms: now_ms(),
            host: HostStats {
                cpu_percent: host_cpu,
                mem_used,
                mem_total,
            },
            containers,
        });
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(msg) {
            return;
        }
    }
}

fn read_cpu() -> Option<(u64, u64)> {
    cpu_times(&std::fs::read_to_string("/proc/stat").ok()?)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_figures_come_from_proc() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_times(stat), Some((150, 1000)));
        assert_eq!(cpu_percent((150, 1000), (250, 1200)), 50.0);
        assert_eq!(cpu_percent((1, 1), (1, 1)), 0.0);
        let mem = "MemTotal:       2048 kB\nMemFree:  100 kB\nMemAvailable:   1024 kB\n";
        assert_eq!(memory(mem), Some((1024 * 1024, 2048 * 1024)));
        assert_eq!(memory("nothing"), None);
    }
}
