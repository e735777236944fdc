//! The `drover` command-line client: one module per subcommand under `cmd/`, all talking to
//! the REST API through [`client::Client`] only. Compose files are parsed locally (so errors
//! point at the user's file) and sent as a normalised project.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 bad input (usage, invalid compose file),
//! 3 the server could not be reached or refused the token. A reader that closes standard output
//! early (`| head`) ends the command with 0.

// Standard output goes through `out!`/`outln!`, which end quietly on a closed pipe.
#![deny(clippy::print_stdout)]

#[macro_use]
pub mod out;

pub mod client;
pub mod cmd;
pub mod config;
pub mod local;

pub use cmd::{Command, run};

/// An error with the exit code the CLI should end with.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn failed(message: impl Into<String>) -> Self {
        Failure {
            code: 1,
            message: message.into(),
        }
    }
    pub fn input(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
    pub fn unreachable(message: impl Into<String>) -> Self {
        Failure {
            code: 3,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
