//! The health of a container as the agent's own checks (`x-drover.health` http/tcp) judge
//! it: starting until the first success or the end of the start period, unhealthy after
//! `retries` failures in a row (failures during the start period do not count), healthy on
//! a success.

use proto::{Health, Probe};

/// One container's check results so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    started_ms: u64,
    failures_in_row: u32,
    ever_ok: bool,
    last_ok: bool,
}

impl Tracker {
    /// A container first seen running at `now_ms`.
    pub fn new(now_ms: u64) -> Tracker {
        Tracker {
            started_ms: now_ms,
            failures_in_row: 0,
            ever_ok: false,
            last_ok: false,
        }
    }

    pub fn record(&mut self, probe: &Probe, ok: bool, now_ms: u64) {
        self.last_ok = ok;
        if ok {
            self.ever_ok = true;
            self.failures_in_row = 0;
        } else if self.ever_ok || now_ms >= self.started_ms + probe.start_period_ms {
            self.failures_in_row += 1;
        }
    }

    pub fn health(&self, probe: &Probe) -> Health {
        if self.failures_in_row >= probe.retries {
            Health::Unhealthy
        } else if self.last_ok || (self.ever_ok && self.failures_in_row > 0) {
            Health::Healthy
        } else {
            Health::Starting
        }
    }
}

/// Whether a service may recreate its unhealthy replicas under `recreate_on_quorum`: more
/// than half of its replicas (each `None` when not seen) run and are not unhealthy.
pub fn quorum<'a>(
    replicas: impl IntoIterator<Item = Option<&'a proto::ObservedContainer>>,
) -> bool {
    let (mut total, mut healthy) = (0usize, 0usize);
    for c in replicas {
        total += 1;
        healthy += usize::from(c.is_some_and(|c| {
            c.state == proto::ContainerState::Running && c.health != Some(Health::Unhealthy)
        }));
    }
    healthy * 2 > total
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::ProbeKind;

    fn probe(start_period_ms: u64, retries: u32) -> Probe {
        Probe {
            kind: ProbeKind::Tcp,
            port: 1,
            expect: (200, 399),
            interval_ms: 1000,
            timeout_ms: 100,
            start_period_ms,
            retries,
        }
    }

    /// Runs a sequence of results (`+` ok, `-` failed), one per second from t=0, and gives
    /// the health after each.
    fn run(p: &Probe, results: &str) -> String {
        let mut t = Tracker::new(0);
        results
            .chars()
            .enumerate()
            .map(|(i, r)| {
                t.record(p, r == '+', i as u64 * 1000);
                match t.health(p) {
                    Health::Starting => 's',
                    Health::Healthy => 'H',
                    Health::Unhealthy => 'U',
                }
            })
            .collect()
    }

    #[test]
    fn quorum_is_more_than_half_running_and_not_unhealthy() {
        let c = |state: proto::ContainerState, health: Option<Health>| proto::ObservedContainer {
            id: String::new(),
            name: String::new(),
            env: String::new(),
            stack: String::new(),
            service: String::new(),
            slot: 1,
            spec_hash: String::new(),
            state,
            health,
            exit_code: None,
            image: String::new(),
            status: String::new(),
            addrs: Default::default(),
            network_of: None,
        };
        use proto::ContainerState::{Exited, Running};
        let ok = c(Running, Some(Health::Healthy));
        let starting = c(Running, Some(Health::Starting));
        let bad = c(Running, Some(Health::Unhealthy));
        let down = c(Exited, None);
        assert!(quorum([Some(&ok), Some(&starting), Some(&bad)]));
        assert!(!quorum([Some(&ok), Some(&bad), Some(&bad)]));
        assert!(!quorum([Some(&ok), Some(&bad)]));
        assert!(!quorum([Some(&ok), None, Some(&down)]));
        assert!(quorum([Some(&ok)]));
        assert!(!quorum(std::iter::empty()));
    }

    #[test]
    fn checks_make_health() {
        assert_eq!(run(&probe(0, 3), "--+--+---+"), "ssHHHHHHUH");
        assert_eq!(run(&probe(0, 1), "+-+"), "HUH");
        // Failures in the start period (3 s) do not count; after it they do.
        assert_eq!(run(&probe(3000, 2), "-----"), "ssssU");
        assert_eq!(run(&probe(3000, 2), "--+--"), "ssHHU");
    }
}
