//! Data-driven tests: a scenario is a few lines run in order against one roll; each `at`
//! line runs a step and prints what it did. Actions are applied to the slot table as the
//! server would (an added slot is pending and current, a replaced one starting and current,
//! a removed one gone), so a scenario reads like a roll's timeline.
//!
//! ```text
//! config [order=start-first|stop-first] [parallelism=N] [delay=MS] [monitor=MS]
//!        [action=pause|continue|rollback] [ratio=F] [rollback]
//! replicas N        drain MS
//! old ID...         (slots running the previous spec, ready)
//! current ID...     (slots running the target spec, ready)
//! ready ID...       starting ID...       fail ID WHY       gone ID
//! at MS             (one step; prints `MS: actions | batch [..] draining [..] phase`)
//! restart           (the roll state goes through serde, as across a server restart)
//! ```

use super::*;
use expect_test::{Expect, expect};

fn run(script: &str) -> String {
    let mut settings = Settings::of(None);
    let mut rollback = false;
    let mut replicas = 1;
    let mut drain_ms = 0;
    let mut slots: Vec<Slot> = Vec::new();
    let mut roll: Option<Roll> = None;
    let mut out = String::new();
    let ids =
        |words: &[&str]| -> Vec<u32> { words.iter().filter_map(|w| w.parse().ok()).collect() };
    for line in script.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let find = |slots: &mut Vec<Slot>, id: u32| -> usize {
            match slots.iter().position(|s| s.id == id) {
                Some(i) => i,
                None => panic!("no slot {id} in `{line}`"),
            }
        };
        match words[0] {
            "config" => {
                for w in &words[1..] {
                    let (k, v) = w.split_once('=').unwrap_or((w, ""));
                    match k {
                        "order" if v == "start-first" => settings.order = UpdateOrder::StartFirst,
                        "order" => settings.order = UpdateOrder::StopFirst,
                        "parallelism" => settings.parallelism = v.parse().unwrap_or(1),
                        "delay" => settings.delay_ms = v.parse().unwrap_or(0),
                        "monitor" => settings.monitor_ms = v.parse().unwrap_or(0),
                        "ratio" => settings.max_failure_ratio = v.parse().unwrap_or(0.0),
                        "action" => {
                            settings.failure_action = match v {
                                "continue" => FailureAction::Continue,
                                "rollback" => FailureAction::Rollback,
                                _ => FailureAction::Pause,
                            }
                        }
                        "rollback" => rollback = true,
                        _ => panic!("unknown config {k}"),
                    }
                }
            }
            "replicas" => replicas = words[1].parse().unwrap_or(1),
            "drain" => drain_ms = words[1].parse().unwrap_or(0),
            "old" | "current" => {
                for id in ids(&words[1..]) {
                    slots.push(Slot {
                        id,
                        name: format!("s-web-{id}"),
                        current: words[0] == "current",
                        state: State::Ready,
                    });
                }
            }
            "ready" | "starting" => {
                for id in ids(&words[1..]) {
                    let i = find(&mut slots, id);
                    slots[i].state = if words[0] == "ready" {
                        State::Ready
                    } else {
                        State::Starting
                    };
                }
            }
            "fail" => {
                let id = ids(&words[1..2])[0];
                let i = find(&mut slots, id);
                slots[i].state = State::Failed(words[2..].join(" "));
            }
            "gone" => {
                let id = ids(&words[1..2])[0];
                slots.retain(|s| s.id != id);
            }
            "restart" => {
                let r = roll.take().expect("a roll to restart");
                let json = serde_json::to_string(&r).expect("serialises");
                roll = Some(serde_json::from_str(&json).expect("deserialises"));
            }
            "at" => {
                let now: u64 = words[1].parse().unwrap_or(0);
                let r =
                    roll.get_or_insert_with(|| Roll::new(2, 1, rollback, settings.clone(), now));
                let actions = step(
                    r,
                    &Input {
                        replicas,
                        slots: &slots,
                        drain_ms,
                        now,
                    },
                );
                let mut said = Vec::new();
                for a in &actions {
                    match *a {
                        Action::Add(id) => {
                            said.push(format!("add {id}"));
                            slots.push(Slot {
                                id,
                                name: format!("s-web-{id}"),
                                current: true,
                                state: State::Pending,
                            });
                        }
                        Action::Replace(id) => {
                            said.push(format!("replace {id}"));
                            let i = find(&mut slots, id);
                            slots[i].current = true;
                            slots[i].state = State::Starting;
                        }
                        Action::Remove(id) => {
                            said.push(format!("remove {id}"));
                            slots.retain(|s| s.id != id);
                        }
                    }
                }
                slots.sort_by_key(|s| s.id);
                let phase = match &r.phase {
                    Phase::Rolling => "rolling".to_string(),
                    Phase::Done => "done".to_string(),
                    Phase::Paused { reason } => format!("paused ({reason})"),
                    Phase::RollingBack { reason } => format!("rolling back ({reason})"),
                };
                out.push_str(&format!(
                    "{now}: {} | batch {:?} draining {:?} updated {} {phase}\n",
                    if said.is_empty() {
                        "-".to_string()
                    } else {
                        said.join(", ")
                    },
                    r.batch,
                    r.draining.keys().collect::<Vec<_>>(),
                    r.updated,
                ));
            }
            other => panic!("unknown line {other}"),
        }
    }
    out
}

fn check(script: &str, expected: Expect) {
    expected.assert_eq(&run(script));
}

#[test]
fn start_first_adds_before_it_drains_and_never_runs_short() {
    check(
        "config order=start-first parallelism=2
         replicas 4
         drain 1000
         old 1 2 3 4
         at 0
         at 100
         ready 5
         at 200
         ready 6
         at 300
         ready 7 8
         at 400
         at 1300
         at 1400
         at 2400",
        expect![[r#"
            0: add 5, add 6 | batch {5, 6} draining [] updated 0 rolling
            100: - | batch {5, 6} draining [] updated 0 rolling
            200: - | batch {6} draining [] updated 1 rolling
            300: add 7, add 8 | batch {7, 8} draining [3, 4] updated 2 rolling
            400: - | batch {} draining [1, 2, 3, 4] updated 4 rolling
            1300: remove 3, remove 4 | batch {} draining [1, 2] updated 4 rolling
            1400: remove 1, remove 2 | batch {} draining [] updated 4 done
            2400: - | batch {} draining [] updated 4 done
        "#]],
    );
}

#[test]
fn stop_first_drains_then_replaces_in_place() {
    check(
        "config parallelism=1
         replicas 2
         drain 500
         old 1 2
         at 0
         at 499
         at 500
         at 600
         ready 1
         at 700
         at 1200
         ready 2
         at 1300",
        expect![[r#"
            0: - | batch {} draining [1] updated 0 rolling
            499: - | batch {} draining [1] updated 0 rolling
            500: replace 1 | batch {1} draining [] updated 0 rolling
            600: - | batch {1} draining [] updated 0 rolling
            700: - | batch {} draining [2] updated 1 rolling
            1200: replace 2 | batch {2} draining [] updated 1 rolling
            1300: - | batch {} draining [] updated 2 done
        "#]],
    );
}

#[test]
fn delay_and_monitor_hold_the_next_step() {
    check(
        "config order=start-first parallelism=1 delay=1000 monitor=500
         replicas 2
         old 1 2
         at 0
         ready 3
         at 100
         at 599
         at 600
         at 1599
         at 1600",
        expect![[r#"
            0: add 3 | batch {3} draining [] updated 0 rolling
            100: - | batch {3} draining [] updated 0 rolling
            599: - | batch {3} draining [] updated 0 rolling
            600: - | batch {} draining [2] updated 1 rolling
            1599: remove 2 | batch {} draining [] updated 1 rolling
            1600: add 2 | batch {2} draining [] updated 1 rolling
        "#]],
    );
}

#[test]
fn a_failed_container_pauses_by_default_and_rolls_back_when_asked() {
    check(
        "config order=start-first
         replicas 2
         old 1 2
         at 0
         fail 3 unhealthy
         at 100
         at 200",
        expect![[r#"
            0: add 3 | batch {3} draining [] updated 0 rolling
            100: - | batch {3} draining [] updated 0 paused (s-web-3: unhealthy)
            200: - | batch {3} draining [] updated 0 paused (s-web-3: unhealthy)
        "#]],
    );
    check(
        "config order=start-first action=rollback
         replicas 2
         old 1 2
         at 0
         fail 3 exited with code 1
         at 100",
        expect![[r#"
            0: add 3 | batch {3} draining [] updated 0 rolling
            100: - | batch {3} draining [] updated 0 rolling back (s-web-3: exited with code 1)
        "#]],
    );
    // A rollback that fails itself pauses: no rollback of a rollback.
    check(
        "config action=rollback rollback
         replicas 1
         old 1
         at 0
         at 1
         fail 1 unhealthy
         at 2",
        expect![[r#"
            0: - | batch {} draining [1] updated 0 rolling
            1: replace 1 | batch {1} draining [] updated 0 rolling
            2: - | batch {1} draining [] updated 0 paused (s-web-1: unhealthy)
        "#]],
    );
}

#[test]
fn failures_within_the_ratio_or_with_continue_let_the_roll_go_on() {
    check(
        "config order=start-first parallelism=2 ratio=0.5
         replicas 4
         old 1 2 3 4
         at 0
         fail 5 exited with code 2
         ready 6
         at 10
         ready 5
         at 20",
        expect![[r#"
            0: add 5, add 6 | batch {5, 6} draining [] updated 0 rolling
            10: - | batch {5} draining [] updated 1 rolling
            20: add 7, add 8 | batch {7, 8} draining [3, 4] updated 2 rolling
        "#]],
    );
    check(
        "config order=start-first action=continue
         replicas 2
         old 1 2
         at 0
         fail 3 unhealthy
         at 10",
        expect![[r#"
            0: add 3 | batch {3} draining [] updated 0 rolling
            10: add 4 | batch {4} draining [2] updated 1 rolling
        "#]],
    );
}

#[test]
fn replica_changes_ride_along() {
    // Fewer replicas: extra old slots leave at the first step boundary.
    check(
        "config order=start-first parallelism=1
         replicas 1
         old 1 2 3
         at 0
         ready 4
         at 10
         at 20",
        expect![[r#"
            0: add 4 | batch {4} draining [2, 3] updated 0 rolling
            10: remove 2, remove 3 | batch {} draining [1] updated 1 rolling
            20: remove 1 | batch {} draining [] updated 1 done
        "#]],
    );
    // More replicas, stop-first: missing ones are added, then old ones replaced.
    check(
        "config parallelism=2
         replicas 3
         old 1
         at 0
         ready 2 3
         at 10
         at 20
         ready 1
         at 30",
        expect![[r#"
            0: add 2, add 3 | batch {2, 3} draining [] updated 0 rolling
            10: - | batch {} draining [1] updated 2 rolling
            20: replace 1 | batch {1} draining [] updated 2 rolling
            30: - | batch {} draining [] updated 3 done
        "#]],
    );
}

#[test]
fn a_restarted_server_resumes_the_roll_where_it_was() {
    check(
        "config order=start-first parallelism=1
         replicas 2
         drain 100
         old 1 2
         at 0
         ready 3
         at 10
         restart
         at 20
         at 110
         restart
         ready 4
         at 120
         at 220",
        expect![[r#"
            0: add 3 | batch {3} draining [] updated 0 rolling
            10: add 4 | batch {4} draining [2] updated 1 rolling
            20: - | batch {4} draining [2] updated 1 rolling
            110: remove 2 | batch {4} draining [] updated 1 rolling
            120: - | batch {} draining [1] updated 2 rolling
            220: remove 1 | batch {} draining [] updated 2 done
        "#]],
    );
}

#[test]
fn gone_slots_are_forgotten_and_parallelism_zero_does_all() {
    check(
        "config order=start-first parallelism=0
         replicas 3
         old 1 2 3
         at 0
         gone 5
         ready 4 6
         at 10",
        expect![[r#"
            0: add 4, add 5, add 6 | batch {4, 5, 6} draining [] updated 0 rolling
            10: add 5 | batch {5} draining [2, 3] updated 2 rolling
        "#]],
    );
}

#[test]
fn fewer_replicas_drain_before_they_go() {
    // Every slot runs the target spec; two are too many: they leave the names, wait their
    // drain, then go; the roll is done once they have.
    check(
        "replicas 1\ndrain 2000\ncurrent 1 2 3\nat 0\nat 1000\nat 2000\nat 2100",
        expect![[r#"
            0: - | batch {} draining [2, 3] updated 0 rolling
            1000: - | batch {} draining [2, 3] updated 0 rolling
            2000: remove 2, remove 3 | batch {} draining [] updated 0 done
            2100: - | batch {} draining [] updated 0 done
        "#]],
    );
}
