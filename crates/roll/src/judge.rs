//! How one container of a slot looks to its roll, from what its host reports: failed (an
//! error creating or starting it, exited, unhealthy, restarting), ready (running the spec it
//! is given, and healthy when it has a check), or still starting.

use proto::{ContainerState as S, Health as H, ObservedContainer};

use crate::State;

/// `spec`: what the container is given (`None`: unknown yet); `failed`: the host's error for
/// it, if any; `seen`: the container as reported.
pub fn judge(
    spec: Option<&compose::Service>,
    failed: Option<&str>,
    seen: Option<&ObservedContainer>,
) -> State {
    if let Some(why) = failed {
        return State::Failed(why.to_string());
    }
    let (Some(c), Some(spec)) = (seen, spec) else {
        return State::Starting;
    };
    if spec.spec_hash() != c.spec_hash {
        return State::Starting;
    }
    // A container with a check is ready once the check says healthy, not before.
    let checked = spec
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.test.first().is_some_and(|t| t != "NONE"))
        || proto::x_drover(spec).is_ok_and(|x| x.probe().is_ok_and(|p| p.is_some()));
    match (c.state, c.health) {
        (S::Running, Some(H::Unhealthy)) => State::Failed("unhealthy".into()),
        (S::Running, Some(H::Healthy)) => State::Ready,
        (S::Running, None) if !checked => State::Ready,
        (S::Running, _) => State::Starting,
        (S::Exited | S::Dead, _) => State::Failed(match c.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => "exited".into(),
        }),
        (S::Restarting, _) => State::Failed("restarting".into()),
        _ => State::Starting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A case: `checked|plain`, then `error:WHY`, `none` (not reported), `other-spec`, or a
    /// state (`running`, `exited:CODE`, `restarting`, `created`) with `+healthy`,
    /// `+unhealthy` or `+starting` → the state the roll sees.
    fn check(spec: &str, seen: &str) -> String {
        let mut s = compose::Service {
            image: Some("app:1".into()),
            ..Default::default()
        };
        if spec == "checked" {
            s.healthcheck = Some(compose::Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                ..Default::default()
            });
        }
        let (state, health) = seen.split_once('+').unwrap_or((seen, ""));
        let (state, code) = state.split_once(':').unwrap_or((state, ""));
        let c = ObservedContainer {
            spec_hash: if state == "other-spec" {
                "old".into()
            } else {
                s.spec_hash()
            },
            state: match state {
                "exited" => S::Exited,
                "restarting" => S::Restarting,
                "created" => S::Created,
                _ => S::Running,
            },
            health: match health {
                "healthy" => Some(H::Healthy),
                "unhealthy" => Some(H::Unhealthy),
                "starting" => Some(H::Starting),
                _ => None,
            },
            exit_code: code.parse().ok(),
            id: "id".into(),
            name: "s-web-1".into(),
            env: "default".into(),
            stack: "s".into(),
            service: "web".into(),
            slot: 1,
            image: "app:1".into(),
            status: String::new(),
            addrs: Default::default(),
            network_of: None,
        };
        let failed = seen.strip_prefix("error:");
        let seen = (state != "none" && failed.is_none()).then_some(&c);
        format!("{:?}", judge(Some(&s), failed, seen))
    }

    #[test]
    fn containers_are_ready_once_running_and_healthy_if_checked() {
        let cases = [
            ("plain", "running", "Ready"),
            ("checked", "running", "Starting"),
            ("checked", "running+starting", "Starting"),
            ("checked", "running+healthy", "Ready"),
            ("plain", "running+unhealthy", "Failed(\"unhealthy\")"),
            ("plain", "exited:3", "Failed(\"exited with code 3\")"),
            ("plain", "restarting", "Failed(\"restarting\")"),
            ("plain", "created", "Starting"),
            ("plain", "none", "Starting"),
            ("plain", "other-spec", "Starting"),
            (
                "plain",
                "error:pull access denied",
                "Failed(\"pull access denied\")",
            ),
        ];
        for (spec, seen, want) in cases {
            assert_eq!(check(spec, seen), want, "{spec} {seen}");
        }
    }
}
