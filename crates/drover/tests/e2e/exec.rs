//! `drover exec`: commands in containers through the server and the host's agent.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::harness::*;

/// Runs `drover ARGS` with `input` on its standard input (no terminal); (code, stdout bytes,
/// stderr).
fn cli_with_input(d: &Drover, args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .env("DROVER_URL", &d.url)
        .env("DROVER_TOKEN", &d.token)
        .env("DROVER_CONFIG", d.dir.path().join("cli.json"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("drover output");
    let _ = writer.join();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn exec_runs_commands_in_containers_with_their_exit_codes_input_and_a_tty() {
    let mut d = Drover::up();
    let stack = unique("exec");
    let file = d.write(
        "exec.yaml",
        "services:\n  box:\n    image: drover-test/busybox:1\n    command: [\"/bin/busybox\", \"sleep\", \"3600\"]\n    stop_grace_period: 1s\n",
    );
    d.deploy(&stack, &file);
    let c = format!("{stack}-box-1");
    let show = |r: &Run| format!("stdout: {}\nstderr: {}", r.stdout, r.stderr);

    // The command's exit code is the CLI's.
    let r = d.cli(&["exec", &c, "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3, "{}", show(&r));
    assert_eq!(r.stderr, "", "nothing of drover's own on a plain exit");

    // Output comes back, standard output and error apart (no TTY).
    let r = d.cli(&["exec", &c, "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!(r.code, 0, "{}", show(&r));
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("out\n", "err\n"));

    // Environment, working directory and user.
    let r = d.cli(&[
        "exec",
        "-e",
        "GREETING=hi there",
        "-w",
        "/tmp",
        "-u",
        "1234:5678",
        &c,
        "sh",
        "-c",
        "echo \"$GREETING\"; pwd; while read k v rest; do [ \"$k\" = Uid: ] && echo $v; done < /proc/self/status; true",
    ]);
    assert_eq!(r.code, 0, "{}", show(&r));
    assert_eq!(r.stdout, "hi there\n/tmp\n1234\n");

    // Standard input reaches the command (-i), every byte of it, and its end closes it.
    let input: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let (code, out, err) = cli_with_input(&d, &["exec", "-i", &c, "cat"], &input);
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(out.len(), input.len(), "stderr: {err}");
    assert!(
        out == input,
        "the bytes that came back differ from those sent"
    );
    // Without -i the command's input is closed: `cat` ends at once.
    let (code, out, _) = cli_with_input(&d, &["exec", &c, "cat"], b"not sent\n");
    assert_eq!((code, out.as_slice()), (0, &b""[..]));

    // With -t the command gets a terminal (the CLI's own input is not one here).
    let r = d.cli(&[
        "exec",
        "-t",
        &c,
        "sh",
        "-c",
        "test -t 0 && test -t 1 && echo on-a-tty",
    ]);
    assert_eq!(r.code, 0, "{}", show(&r));
    assert!(r.stdout.contains("on-a-tty"), "{}", show(&r));
    let r = d.cli(&["exec", &c, "sh", "-c", "test -t 1"]);
    assert_eq!(r.code, 1, "no TTY without -t: {}", show(&r));
    let (code, out, err) = cli_with_input(
        &d,
        &["exec", "-it", &c, "sh", "-c", "read line; echo got $line"],
        b"typed\n",
    );
    assert_eq!(code, 0, "stderr: {err}");
    assert!(
        String::from_utf8_lossy(&out).contains("got typed"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    // A command that cannot run: 126 (or 127), saying why.
    let r = d.cli(&["exec", &c, "no-such-command"]);
    assert!(matches!(r.code, 126 | 127), "{}", show(&r));
    assert!(
        format!("{}{}", r.stdout, r.stderr).contains("not found"),
        "{}",
        show(&r)
    );

    // A container of an unknown name: a clear error, exit 125.
    let r = d.cli(&["exec", &format!("{stack}-nope-1"), "true"]);
    assert_eq!(r.code, 125, "{}", show(&r));
    assert!(
        r.stderr.contains(&format!(
            "container '{stack}-nope-1' not found in environment 'default'"
        )),
        "{}",
        show(&r)
    );
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);

    // A bad request is refused before anything runs, naming the field.
    let r = d.cli(&["exec", "-e", "1BAD=x", &c, "true"]);
    assert_eq!(r.code, 125, "{}", show(&r));
    assert!(r.stderr.contains("env[0]"), "{}", show(&r));

    // The audit log holds the command lines, never their output.
    let events = d.ok(&["events", "--limit", "200"]);
    assert!(events.contains("container.exec"), "{events}");
    assert!(events.contains("sh -c 'exit 3'"), "{events}");
    assert!(events.contains("env GREETING"), "{events}");
    assert!(!events.contains("hi there"), "{events}");
    assert!(!events.contains("on-a-tty\n"), "{events}");
}
