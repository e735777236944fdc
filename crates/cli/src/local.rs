//! Loading a compose file on the user's machine: the file, `.env` beside it, `--env-file`,
//! the process environment, and `env_file` references, handed to the pure `compose` crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Failure;

/// Files larger than this are refused before reading (the parser has its own, lower cap).
const MAX_READ: u64 = 16 * 1024 * 1024;

pub struct LoadOptions {
    pub files: Vec<PathBuf>,
    pub project_name: Option<String>,
    pub env_files: Vec<PathBuf>,
    pub profiles: Vec<String>,
}

struct DirFiles {
    dir: PathBuf,
}

impl compose::Files for DirFiles {
    fn read(&self, path: &str) -> Result<String, String> {
        read_limited(&self.dir.join(path)).map_err(|e| e.to_string())
    }
}

fn read_limited(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > MAX_READ {
        return Err(std::io::Error::other(format!(
            "file is {} bytes, larger than the {MAX_READ} byte limit",
            meta.len()
        )));
    }
    std::fs::read_to_string(path)
}

fn default_file() -> Result<PathBuf, Failure> {
    for name in [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yml",
        "docker-compose.yaml",
    ] {
        let p = PathBuf::from(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(Failure::input(
        "no compose file: pass -f FILE or run where compose.yaml / docker-compose.yml is",
    ))
}

/// A directory name made into a valid project name (lowercase, [a-z0-9_-]).
pub fn sanitize_name(raw: &str) -> String {
    let s: String = raw
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    let s = s.trim_start_matches(['_', '-']).to_string();
    if s.is_empty() {
        "default".to_string()
    } else {
        s
    }
}

/// The directory of the compose file `load` would read.
pub fn compose_dir(opts: &LoadOptions) -> Result<PathBuf, Failure> {
    let file = match opts.files.first() {
        Some(f) => f.clone(),
        None => default_file()?,
    };
    let abs = std::path::absolute(&file)
        .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    Ok(abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/")))
}

/// The variables a compose file is read with: the `.env` beside it (or `--env-file`s),
/// with the process environment over them.
pub fn variables(opts: &LoadOptions, dir: &Path) -> Result<BTreeMap<String, String>, Failure> {
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let env_files = if opts.env_files.is_empty() {
        let dotenv = dir.join(".env");
        if dotenv.exists() {
            vec![dotenv]
        } else {
            vec![]
        }
    } else {
        opts.env_files.clone()
    };
    for f in &env_files {
        let t = read_limited(f).map_err(|e| Failure::input(format!("{}: {e}", f.display())))?;
        let parsed = compose::parse_dotenv(&f.display().to_string(), &t)
            .map_err(|e| Failure::input(e.to_string()))?;
        vars.extend(parsed);
    }
    vars.extend(std::env::vars());
    Ok(vars)
}

pub fn load(opts: &LoadOptions) -> Result<compose::Loaded, Failure> {
    let file = match opts.files.first() {
        Some(f) => f.clone(),
        None => default_file()?,
    };
    // Later -f files are merged over the first, as compose merges them.
    let mut overrides = Vec::new();
    for f in opts.files.iter().skip(1) {
        let t = read_limited(f).map_err(|e| Failure::input(format!("{}: {e}", f.display())))?;
        overrides.push((f.display().to_string(), t));
    }
    let text =
        read_limited(&file).map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    let abs = std::path::absolute(&file)
        .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
    let dir = abs
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let vars = variables(opts, &dir)?;
    let mut profiles = opts.profiles.clone();
    if profiles.is_empty()
        && let Some(p) = vars.get("COMPOSE_PROFILES")
    {
        profiles = p
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
    }
    let default_name = sanitize_name(
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("default"),
    );
    let project_name = opts
        .project_name
        .clone()
        .or_else(|| vars.get("COMPOSE_PROJECT_NAME").cloned());
    let base = dir.display().to_string();
    let file_name = file.display().to_string();
    compose::load(&compose::Input {
        file_name: &file_name,
        text: &text,
        project_name: project_name.as_deref(),
        default_name: &default_name,
        variables: &vars,
        profiles: &profiles,
        base_dir: Some(&base),
        files: &DirFiles { dir },
        overrides: &overrides,
    })
    .map_err(|e| Failure::input(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_become_project_names() {
        assert_eq!(sanitize_name("My App.v2"), "myappv2");
        assert_eq!(sanitize_name("__x"), "x");
        assert_eq!(sanitize_name("..."), "default");
    }
}
