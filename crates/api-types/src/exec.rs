//! `GET /v1/environments/{env}/containers/{name}/exec`, upgraded to a WebSocket.
//!
//! The client's first message is an [`ExecRequest`] (JSON text). Then:
//! - client → server: binary frames are standard input (with `stdin`), text frames are
//!   [`ExecControl`] (resize, end of input);
//! - server → client: binary frames are output, their first byte the stream
//!   ([`STDOUT`] or [`STDERR`]; with a TTY everything is [`STDOUT`]), the rest the bytes;
//!   the last frame is an [`ExecEvent`] (JSON text): the exit code, or why it failed.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// First byte of an output frame from standard output (or the TTY).
pub const STDOUT: u8 = 1;
/// First byte of an output frame from standard error.
pub const STDERR: u8 = 2;

/// Most arguments of a command.
pub const MAX_EXEC_ARGS: usize = 256;
/// Most environment entries.
pub const MAX_EXEC_ENV: usize = 256;
/// Longest argument, environment entry, user or working directory, in bytes.
pub const MAX_EXEC_ITEM: usize = 4096;
/// Most bytes of all arguments and environment entries together.
pub const MAX_EXEC_TOTAL: usize = 64 * 1024;

/// The first message of an exec session: what to run and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The command and its arguments (not run through a shell).
    pub cmd: Vec<String>,
    /// Allocate a TTY (standard error then comes through it too).
    #[serde(default)]
    pub tty: bool,
    /// Keep the command's standard input open, fed by the client's binary frames.
    #[serde(default)]
    pub stdin: bool,
    /// `user`, `user:group`, `uid` or `uid:gid` [default: the container's].
    #[serde(default)]
    pub user: Option<String>,
    /// Absolute working directory [default: the container's].
    #[serde(default)]
    pub workdir: Option<String>,
    /// Extra environment, `KEY=VALUE` each.
    #[serde(default)]
    pub env: Vec<String>,
    /// Terminal size at start, with `tty`.
    #[serde(default)]
    pub cols: Option<u16>,
    #[serde(default)]
    pub rows: Option<u16>,
}

/// A control message from the client (text frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecControl {
    /// The client's terminal changed size.
    Resize { cols: u16, rows: u16 },
    /// No more standard input: the command's is closed.
    Eof,
}

/// How an exec session ended (the server's last text frame).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    /// The command ran and exited with `code`; or could not be run (`code` 126, or 127 when
    /// it was not found) and `message` says why.
    Exit {
        code: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Drover could not run it: a bad request (`field` names what is wrong), the host went
    /// away, the reader was too slow...
    Error {
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        field: Option<String>,
    },
}

/// What is wrong with a request, and in which field (`cmd`, `cmd[2]`, `env[0]`, `user`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Whether `key` may name an environment variable: a letter or `_`, then letters, digits
/// or `_`.
pub fn valid_env_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ExecRequest {
    /// Checks every bound: the first problem, naming its field.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.cmd.is_empty() {
            return Err(invalid("cmd", "a command is needed"));
        }
        if self.cmd.len() > MAX_EXEC_ARGS {
            return Err(invalid(
                "cmd",
                format!(
                    "{} arguments: at most {MAX_EXEC_ARGS} are accepted",
                    self.cmd.len()
                ),
            ));
        }
        if self.cmd[0].is_empty() {
            return Err(invalid("cmd[0]", "the command name is empty"));
        }
        for (i, a) in self.cmd.iter().enumerate() {
            plain(&format!("cmd[{i}]"), a, "argument")?;
        }
        if self.env.len() > MAX_EXEC_ENV {
            return Err(invalid(
                "env",
                format!(
                    "{} entries: at most {MAX_EXEC_ENV} are accepted",
                    self.env.len()
                ),
            ));
        }
        for (i, e) in self.env.iter().enumerate() {
            let field = format!("env[{i}]");
            plain(&field, e, "entry")?;
            let Some((key, _)) = e.split_once('=') else {
                return Err(invalid(field, format!("{e:?} is not KEY=VALUE")));
            };
            if !valid_env_key(key) {
                return Err(invalid(
                    field,
                    format!(
                        "{key:?} is not a variable name: a letter or '_', then letters, digits or '_'"
                    ),
                ));
            }
        }
        let total: usize = self.cmd.iter().chain(&self.env).map(String::len).sum();
        if total > MAX_EXEC_TOTAL {
            return Err(invalid(
                "cmd",
                format!(
                    "arguments and environment are {total} bytes: at most {MAX_EXEC_TOTAL} together"
                ),
            ));
        }
        if let Some(u) = &self.user {
            let ok = !u.is_empty()
                && u.len() <= 256
                && u.split(':').count() <= 2
                && u.split(':').all(|p| {
                    !p.is_empty()
                        && p.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                });
            if !ok {
                return Err(invalid(
                    "user",
                    format!(
                        "{u:?} is not USER, USER:GROUP, UID or UID:GID (letters, digits, '_', '.', '-')"
                    ),
                ));
            }
        }
        if let Some(w) = &self.workdir {
            plain("workdir", w, "directory")?;
            if !w.starts_with('/') {
                return Err(invalid("workdir", format!("{w:?} is not an absolute path")));
            }
        }
        for (field, v) in [("cols", self.cols), ("rows", self.rows)] {
            if v == Some(0) {
                return Err(invalid(field, "a terminal size is at least 1"));
            }
        }
        Ok(())
    }
}

/// At most [`MAX_EXEC_ITEM`] bytes, no NUL (which no process can receive).
fn plain(field: &str, v: &str, what: &str) -> Result<(), Invalid> {
    if v.len() > MAX_EXEC_ITEM {
        return Err(invalid(
            field,
            format!("the {what} is {} bytes: at most {MAX_EXEC_ITEM}", v.len()),
        ));
    }
    if v.contains('\0') {
        return Err(invalid(field, format!("the {what} contains a NUL byte")));
    }
    Ok(())
}

/// The command line as one readable string for the audit log: arguments that need it are
/// single-quoted as a shell would take them.
pub fn command_line(cmd: &[String]) -> String {
    cmd.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if safe {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cmd: &[&str]) -> ExecRequest {
        ExecRequest {
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    fn err(r: &ExecRequest) -> String {
        match r.check() {
            Ok(()) => "ok".into(),
            Err(e) => format!("{}: {}", e.field, e.message),
        }
    }

    #[test]
    fn a_plain_request_passes() {
        let mut r = req(&["sh", "-c", "exit 3"]);
        r.env = vec!["A=1".into(), "_B2=x=y".into(), "EMPTY=".into()];
        r.user = Some("1000:1000".into());
        r.workdir = Some("/tmp".into());
        r.tty = true;
        r.cols = Some(80);
        r.rows = Some(24);
        assert_eq!(err(&r), "ok");
        assert_eq!(err(&req(&["www-data"])), "ok");
    }

    #[test]
    fn each_bad_field_is_named() {
        assert_eq!(err(&req(&[])), "cmd: a command is needed");
        assert_eq!(err(&req(&[""])), "cmd[0]: the command name is empty");
        let many: Vec<&str> = vec!["x"; MAX_EXEC_ARGS + 1];
        assert_eq!(
            err(&req(&many)),
            "cmd: 257 arguments: at most 256 are accepted"
        );
        let long = "x".repeat(MAX_EXEC_ITEM + 1);
        assert_eq!(
            err(&req(&["echo", &long])),
            "cmd[1]: the argument is 4097 bytes: at most 4096"
        );
        assert_eq!(
            err(&req(&["echo", "a\0b"])),
            "cmd[1]: the argument contains a NUL byte"
        );
        let item = "x".repeat(MAX_EXEC_ITEM);
        let big: Vec<&str> = vec![item.as_str(); 17];
        assert_eq!(
            err(&req(&big)),
            "cmd: arguments and environment are 69632 bytes: at most 65536 together"
        );

        let with = |f: &dyn Fn(&mut ExecRequest)| {
            let mut r = req(&["sh"]);
            f(&mut r);
            err(&r)
        };
        assert_eq!(
            with(&|r| r.env = vec!["A=1".into(), "NOVALUE".into()]),
            "env[1]: \"NOVALUE\" is not KEY=VALUE"
        );
        assert_eq!(
            with(&|r| r.env = vec!["1A=x".into()]),
            "env[0]: \"1A\" is not a variable name: a letter or '_', then letters, digits or '_'"
        );
        assert_eq!(
            with(&|r| r.env = vec!["=x".into()]),
            "env[0]: \"\" is not a variable name: a letter or '_', then letters, digits or '_'"
        );
        assert_eq!(
            with(&|r| r.env = vec!["A B=x".into()]),
            "env[0]: \"A B\" is not a variable name: a letter or '_', then letters, digits or '_'"
        );
        assert_eq!(
            with(&|r| r.env = vec!["A=1".into(); MAX_EXEC_ENV + 1]),
            "env: 257 entries: at most 256 are accepted"
        );
        for bad in ["", "a:b:c", "a b", "root;rm", ":0", "0:"] {
            assert!(
                with(&|r| r.user = Some(bad.into())).starts_with("user: "),
                "{bad:?}"
            );
        }
        assert_eq!(
            with(&|r| r.workdir = Some("tmp".into())),
            "workdir: \"tmp\" is not an absolute path"
        );
        assert_eq!(
            with(&|r| r.rows = Some(0)),
            "rows: a terminal size is at least 1"
        );
    }

    #[test]
    fn messages_have_their_wire_shape() {
        let r: ExecRequest = serde_json::from_str(r#"{"cmd":["ls"],"tty":true}"#).expect("req");
        assert!(r.tty && !r.stdin && r.env.is_empty());
        assert!(serde_json::from_str::<ExecRequest>(r#"{"cmd":["ls"],"ttty":true}"#).is_err());
        let c: ExecControl =
            serde_json::from_str(r#"{"type":"resize","cols":100,"rows":30}"#).expect("ctl");
        assert_eq!(
            c,
            ExecControl::Resize {
                cols: 100,
                rows: 30
            }
        );
        assert_eq!(
            serde_json::to_string(&ExecEvent::Exit {
                code: 3,
                message: None
            })
            .expect("json"),
            r#"{"type":"exit","code":3}"#
        );
    }

    #[test]
    fn command_lines_read_as_a_shell_would_take_them() {
        let cmd: Vec<String> = ["sh", "-c", "echo 'hi' > /tmp/x", "", "a=b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            command_line(&cmd),
            r#"sh -c 'echo '\''hi'\'' > /tmp/x' '' a=b"#
        );
    }
}
