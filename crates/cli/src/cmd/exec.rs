//! `drover exec [-i] [-t] [-u USER] [-w DIR] [-e K=V]... CONTAINER CMD...`: a command in a
//! container on whichever host runs it, through the server (the wire format is in
//! `api_types::exec`).
//!
//! With `-t` the command gets a TTY; when this terminal is one, it is put in raw mode for
//! the session and its size is sent at the start and on every SIGWINCH. With `-i` standard
//! input goes to the command (its end closes the command's). The exit code is the
//! command's; 126 when it could not be run, 127 when it was not found, 125 when `drover
//! exec` itself failed (unknown container, host not connected, server unreachable...).

use std::io::{IsTerminal, Read, Write};

use api_types::{ExecControl, ExecEvent, ExecRequest};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::Failure;
use crate::client::Client;

/// What `drover exec` itself failing exits with (as `docker exec` does).
pub const FAILED: i32 = 125;

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Send standard input to the command
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command a TTY (this terminal goes into raw mode while it runs, when it is one)
    #[arg(short, long)]
    pub tty: bool,
    /// Run as USER, USER:GROUP, UID or UID:GID [default: the container's user]
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory, absolute [default: the container's]
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Set an environment variable of the command (repeatable)
    #[arg(id = "exec_env", short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Environment to act in (here `-e` sets a variable: use `drover -e ENV exec ...` or
    /// this)
    // Same id as the global `--environment`, so that one (with its `-e`) is not added here;
    // the value reaches the global one.
    #[arg(id = "env", long = "environment", value_name = "ENVIRONMENT")]
    pub environment: Option<String>,
    /// Container name, as `drover ps` shows it (e.g. shop-web-1)
    pub container: String,
    /// The command and its arguments (not run through a shell)
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub cmd: Vec<String>,
}

impl ExecArgs {
    /// The request for the server; `size` the terminal's (columns, rows) when known.
    pub fn request(&self, size: Option<(u16, u16)>) -> ExecRequest {
        ExecRequest {
            cmd: self.cmd.clone(),
            tty: self.tty,
            stdin: self.interactive,
            user: self.user.clone(),
            workdir: self.workdir.clone(),
            env: self.env.clone(),
            cols: size.map(|s| s.0),
            rows: size.map(|s| s.1),
        }
    }
}

/// Runs the command; `Ok` only when it exited 0.
pub async fn run(client: &Client, args: &ExecArgs) -> Result<(), Failure> {
    let failed = |f: Failure| Failure {
        code: FAILED,
        message: f.message,
    };
    let terminal = args.tty && std::io::stdin().is_terminal();
    let req = args.request(if args.tty { size() } else { None });
    req.check().map_err(|e| Failure {
        code: FAILED,
        message: format!("{}: {}", e.field, e.message),
    })?;
    let path = format!("/containers/{}/exec", args.container);
    let ws = client.websocket(&path).await.map_err(failed)?;
    let (mut tx, mut rx) = ws.split();
    let first = serde_json::to_string(&req).map_err(|e| Failure {
        code: FAILED,
        message: format!("request: {e}"),
    })?;
    tx.send(Message::Text(first.into()))
        .await
        .map_err(|e| lost(&e))?;

    // Raw mode for as long as the session lasts (restored when this is dropped).
    let _raw = if terminal { RawMode::enter() } else { None };
    let mut input = if args.interactive {
        read_stdin()
    } else {
        tokio::sync::mpsc::channel(1).1
    };
    let mut input_open = args.interactive;
    let mut winch = if terminal {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok()
    } else {
        None
    };
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(frame))) => {
                    if let Some((&stream, data)) = frame.split_first()
                        && write_out(stream, data).is_err()
                    {
                        // Nobody reads the output any more (`| head`): done, as other
                        // commands end on a closed pipe.
                        return Ok(());
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let event: ExecEvent = serde_json::from_str(&t).map_err(|e| Failure {
                        code: FAILED,
                        message: format!("bad message from server: {e}"),
                    })?;
                    return ended(event);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(lost(&e)),
                None => return Err(Failure {
                    code: FAILED,
                    message: "the server closed the exec session without the command's exit code".into(),
                }),
            },
            chunk = input.recv(), if input_open => {
                let msg = match chunk {
                    Some(data) => Message::Binary(data.into()),
                    None => {
                        input_open = false;
                        control(&ExecControl::Eof)
                    }
                };
                tx.send(msg).await.map_err(|e| lost(&e))?;
            }
            Some(()) = async { winch.as_mut()?.recv().await } => {
                if let Some((cols, rows)) = size() {
                    tx.send(control(&ExecControl::Resize { cols, rows }))
                        .await
                        .map_err(|e| lost(&e))?;
                }
            }
        }
    }
}

/// The exit the session's last word stands for.
fn ended(event: ExecEvent) -> Result<(), Failure> {
    match event {
        ExecEvent::Exit { code: 0, message } => {
            if let Some(m) = message {
                let _ = writeln!(std::io::stderr(), "drover: {m}");
            }
            Ok(())
        }
        ExecEvent::Exit { code, message } => Err(Failure {
            code: i32::try_from(code).unwrap_or(FAILED),
            message: message.unwrap_or_default(),
        }),
        ExecEvent::Error { message, .. } => Err(Failure {
            code: FAILED,
            message,
        }),
    }
}

fn lost(e: &dyn std::fmt::Display) -> Failure {
    Failure {
        code: FAILED,
        message: format!("exec session lost: {e}"),
    }
}

fn control(c: &ExecControl) -> Message {
    Message::Text(serde_json::to_string(c).unwrap_or_default().into())
}

fn write_out(stream: u8, data: &[u8]) -> std::io::Result<()> {
    if stream == api_types::exec::STDERR {
        let mut e = std::io::stderr().lock();
        e.write_all(data)?;
        e.flush()
    } else {
        let mut o = std::io::stdout().lock();
        o.write_all(data)?;
        o.flush()
    }
}

/// Standard input, read on a thread of its own (reads block), in chunks as they come; the
/// channel closes at its end.
fn read_stdin() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let spawned = std::thread::Builder::new()
        .name("exec-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            let mut stdin = std::io::stdin().lock();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    if spawned.is_err() {
        // No thread, no input: the command sees its input closed.
        return tokio::sync::mpsc::channel(1).1;
    }
    rx
}

/// This terminal's size (columns, rows), if standard output or input is one.
fn size() -> Option<(u16, u16)> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout())
        .or_else(|_| rustix::termios::tcgetwinsize(std::io::stdin()))
        .ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// The terminal in raw mode: keys go to the command as typed (Ctrl-C included), and its
/// output is shown as it comes. Restored when dropped.
struct RawMode {
    saved: rustix::termios::Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// The command line as `drover` reads it: global connection options, subcommands.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        conn: crate::cmd::Conn,
        #[command(subcommand)]
        cmd: crate::Command,
    }

    fn parse(line: &str) -> Result<(String, ExecArgs), String> {
        let words = std::iter::once("drover").chain(line.split_whitespace());
        let cli = Cli::try_parse_from(words).map_err(|e| e.kind().to_string())?;
        match cli.cmd {
            crate::Command::Exec(a) => Ok((cli.conn.env.unwrap_or_else(|| "default".into()), a)),
            _ => Err("not exec".into()),
        }
    }

    #[test]
    fn flags_are_read_up_to_the_container_and_the_rest_is_the_command() {
        let (env, a) =
            parse("exec -it -u 1000:1000 -w /tmp -e A=1 -e B=2 shop-web-1 sh -c ls -e X")
                .expect("parses");
        assert_eq!(env, "default");
        assert!(a.interactive && a.tty);
        assert_eq!(a.user.as_deref(), Some("1000:1000"));
        assert_eq!(a.workdir.as_deref(), Some("/tmp"));
        assert_eq!(a.env, ["A=1", "B=2"]);
        assert_eq!(a.container, "shop-web-1");
        assert_eq!(a.cmd, ["sh", "-c", "ls", "-e", "X"]);
        let r = a.request(Some((80, 24)));
        assert!(r.tty && r.stdin && r.cols == Some(80) && r.rows == Some(24));
    }

    #[test]
    fn the_environment_is_still_chosen_before_the_subcommand_or_by_its_long_name() {
        let (env, a) = parse("-e prod exec -e A=1 web-1 true").expect("parses");
        assert_eq!(
            (env.as_str(), a.env.as_slice()),
            ("prod", ["A=1".to_string()].as_slice())
        );
        let (env, a) = parse("exec --environment staging -i web-1 cat").expect("parses");
        assert_eq!(env, "staging");
        assert!(a.interactive && !a.tty);
        // Other subcommands keep `-e` for the environment.
        let cli = Cli::try_parse_from(["drover", "ps", "-e", "prod"]).expect("parses");
        assert_eq!(cli.conn.env.as_deref(), Some("prod"));
        let cli = Cli::try_parse_from(["drover", "--env", "qa", "stack", "ls"]).expect("parses");
        assert_eq!(cli.conn.env.as_deref(), Some("qa"));
        let cli = Cli::try_parse_from(["drover", "env", "use", "qa"]).expect("parses");
        assert!(cli.conn.env.is_none());
    }

    #[test]
    fn a_command_is_required() {
        assert!(parse("exec web-1").is_err());
        assert!(parse("exec").is_err());
    }

    #[test]
    fn the_last_word_gives_the_exit_code() {
        let code = |e| match ended(e) {
            Ok(()) => 0,
            Err(f) => f.code,
        };
        assert_eq!(
            code(ExecEvent::Exit {
                code: 0,
                message: None
            }),
            0
        );
        assert_eq!(
            code(ExecEvent::Exit {
                code: 3,
                message: None
            }),
            3
        );
        assert_eq!(
            code(ExecEvent::Exit {
                code: 127,
                message: Some("could not run the command: not found".into())
            }),
            127
        );
        assert_eq!(
            code(ExecEvent::Error {
                code: "ended".into(),
                message: "host went away".into(),
                field: None
            }),
            FAILED
        );
    }
}
