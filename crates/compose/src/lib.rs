//! Compose-spec parsing, interpolation, validation and normalisation.
//!
//! Pure: no file system, no environment, no clock. The caller passes the file text, the
//! variables for interpolation and a [`Files`] source for `env_file` contents.
//!
//! The pipeline of [`load`] is:
//!
//! 1. [`yaml`]: saphyr-parser events → our own positioned tree, with size, depth and alias
//!    budgets enforced as events arrive, and `<<` merge keys resolved.
//! 2. [`interpolate`]: `${VAR}` substitution on every string scalar (not on keys).
//! 3. `load`: typed conversion into [`Project`], with `file:line:col` errors naming the path.
//! 4. [`validate`]: cross-references (networks, volumes, depends_on, cycles).

use std::collections::BTreeMap;

mod dotenv;
mod emit;
pub mod interpolate;
mod load;
mod merge;
pub mod model;
mod sidekick;
mod units;
mod validate;
mod yaml;

pub use dotenv::parse_dotenv;
pub use emit::to_compose_yaml;
pub use load::is_service_key;
pub use model::*;
pub use sidekick::{
    NETWORK_HOST, NETWORK_NONE, SIDEKICK_OF, SidekickError, Units, check_sidekicks,
};
/// A compose duration (`1h30m`, `90s`) in nanoseconds.
pub use units::{normalise_path, parse_duration};
pub use validate::{dependency_order, is_valid_project_name, validate};

/// Largest compose file accepted, in bytes. Bigger input is refused before parsing.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Deepest nesting of mappings and sequences accepted (counting alias expansions).
pub const MAX_DEPTH: usize = 64;
/// Most nodes a document may expand to, counting every copy made by aliases and merge keys.
/// Real compose files have a few thousand at most; this bound keeps a hostile document's
/// parse under ~100 ms and ~20 MB.
pub const MAX_NODES: usize = 100_000;

/// Source of `env_file` contents.
pub trait Files {
    /// Reads `path` as written in the compose file (relative to the compose file's
    /// directory). `Err` carries the reason, e.g. "no such file".
    fn read(&self, path: &str) -> Result<String, String>;
}

/// A [`Files`] with no files at all: every read fails.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFiles;

impl Files for NoFiles {
    fn read(&self, _path: &str) -> Result<String, String> {
        Err("no such file".to_owned())
    }
}

impl Files for BTreeMap<String, String> {
    fn read(&self, path: &str) -> Result<String, String> {
        self.get(path)
            .cloned()
            .ok_or_else(|| "no such file".to_owned())
    }
}

/// Everything [`load`] needs.
pub struct Input<'a> {
    /// Used in error messages, e.g. `docker-compose.yml`.
    pub file_name: &'a str,
    pub text: &'a str,
    /// `-p` flag; wins over the top-level `name:`.
    pub project_name: Option<&'a str>,
    /// Used when neither `project_name` nor `name:` is given (e.g. the directory name).
    /// Normalised: lowercased, characters not allowed in project names dropped.
    pub default_name: &'a str,
    /// Variables for interpolation (the caller merges the process environment over `.env`).
    pub variables: &'a BTreeMap<String, String>,
    /// Active profiles. `*` enables all.
    pub profiles: &'a [String],
    /// Absolute directory of the compose file, to make relative bind sources absolute.
    pub base_dir: Option<&'a str>,
    pub files: &'a dyn Files,
    /// Further `-f` files (name, text), merged over this one in order, as compose merges.
    pub overrides: &'a [(String, String)],
}

/// Result of a successful [`load`].
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub project: Project,
    pub warnings: Vec<Warning>,
}

/// A fatal problem, with its position in the source (`0:0` when not from a file).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{}", self.render())]
pub struct Error {
    pub file: String,
    pub location: Location,
    /// Dotted path of the offending value, e.g. `services.web.ports[1]`; may be empty.
    pub path: String,
    pub message: String,
}

impl Error {
    pub(crate) fn new(
        file: &str,
        location: Location,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Error {
        Error {
            file: file.to_owned(),
            location,
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error, at another path.
    pub fn with_path(self, path: impl Into<String>) -> Error {
        Error {
            path: path.into(),
            ..self
        }
    }

    fn render(&self) -> String {
        let Location { line, column, .. } = self.location;
        if self.path.is_empty() {
            format!("{}:{line}:{column}: {}", self.file, self.message)
        } else {
            format!(
                "{}:{line}:{column}: {}: {}",
                self.file, self.path, self.message
            )
        }
    }
}

/// Parses, interpolates, validates and normalises a compose file.
pub fn load(input: &Input) -> Result<Loaded, Error> {
    load::load(input)
}
