//! The shell of the app catalog: the built-in catalog (in the binary), the catalogs each
//! environment added (a directory on the server, or a git repository cloned under
//! `<data-dir>/catalogs`), indexed by the pure `catalog` crate and kept in memory, refreshed
//! on demand and every 10 minutes. A catalog that cannot be fetched keeps its last index and
//! says why; stacks installed from it never depend on it (they carry their template's copy).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::state::{AppState, now_ms};

/// The built-in catalog's name, in every environment.
pub const BUILTIN: &str = "library";
/// How often added catalogs are fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(600);
/// Limits on what a catalog may hold.
const MAX_FILES: usize = 20_000;
const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// How long a `git clone` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

static BUILTIN_FILES: include_dir::Dir<'_> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../catalog/builtin");

/// A catalog as the server has it.
#[derive(Clone)]
pub struct Loaded {
    pub source: String,
    pub branch: Option<String>,
    pub index: Option<Arc<catalog::Index>>,
    /// Why the last fetch failed, if it did.
    pub error: Option<String>,
    pub refreshed_ms: u64,
}

pub struct Catalogs {
    dir: PathBuf,
    builtin: Arc<catalog::Index>,
    loaded: RwLock<HashMap<(String, String), Loaded>>,
}

fn builtin_files() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    fn walk(d: &include_dir::Dir<'_>, out: &mut BTreeMap<String, Vec<u8>>) {
        for f in d.files() {
            out.insert(
                f.path().to_string_lossy().to_string(),
                f.contents().to_vec(),
            );
        }
        for sub in d.dirs() {
            walk(sub, out);
        }
    }
    walk(&BUILTIN_FILES, &mut out);
    out
}

impl Catalogs {
    pub fn new(data_dir: &Path) -> Catalogs {
        Catalogs {
            dir: data_dir.join("catalogs"),
            builtin: Arc::new(catalog::index(BUILTIN, &builtin_files())),
            loaded: RwLock::default(),
        }
    }

    /// The index of catalog `name` in `env`.
    pub fn index(&self, env: &str, name: &str) -> Option<Arc<catalog::Index>> {
        if name == BUILTIN {
            return Some(self.builtin.clone());
        }
        self.read()
            .get(&(env.to_string(), name.to_string()))
            .and_then(|l| l.index.clone())
    }

    /// Every catalog of `env`, the built-in one first.
    pub fn list(&self, env: &str) -> Vec<(String, Loaded)> {
        let mut out = vec![(
            BUILTIN.to_string(),
            Loaded {
                source: "built in".into(),
                branch: None,
                index: Some(self.builtin.clone()),
                error: None,
                refreshed_ms: 0,
            },
        )];
        let loaded = self.read();
        let mut mine: Vec<_> = loaded
            .iter()
            .filter(|((e, _), _)| e == env)
            .map(|((_, n), l)| (n.clone(), l.clone()))
            .collect();
        mine.sort_by(|a, b| a.0.cmp(&b.0));
        out.extend(mine);
        out
    }

    pub fn set(&self, env: &str, name: &str, l: Loaded) {
        self.write().insert((env.to_string(), name.to_string()), l);
    }

    pub fn remove(&self, env: &str, name: &str) {
        self.write().remove(&(env.to_string(), name.to_string()));
        let _ = std::fs::remove_dir_all(self.clone_dir(env, name));
    }

    fn clone_dir(&self, env: &str, name: &str) -> PathBuf {
        self.dir.join(env).join(name)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<(String, String), Loaded>> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(String, String), Loaded>> {
        self.loaded.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetches catalog `name` of `env` from `source` and indexes it; on failure the last
    /// index stays, with the reason.
    pub async fn fetch(&self, env: &str, name: &str, source: &str, branch: Option<&str>) -> Loaded {
        let result = match is_git(source) {
            true => clone(source, branch, &self.clone_dir(env, name)).await,
            false => {
                let dir = PathBuf::from(source);
                tokio::task::spawn_blocking(move || read_tree(&dir))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
            }
        };
        let previous = self
            .read()
            .get(&(env.to_string(), name.to_string()))
            .cloned();
        let loaded = match result {
            Ok(files) => Loaded {
                source: source.to_string(),
                branch: branch.map(str::to_string),
                index: Some(Arc::new(catalog::index(name, &files))),
                error: None,
                refreshed_ms: now_ms(),
            },
            Err(why) => Loaded {
                source: source.to_string(),
                branch: branch.map(str::to_string),
                index: previous.and_then(|p| p.index),
                error: Some(why),
                refreshed_ms: now_ms(),
            },
        };
        self.set(env, name, loaded.clone());
        loaded
    }
}

/// Whether a source is a git repository (else a directory on the server).
pub fn is_git(source: &str) -> bool {
    ["https://", "http://", "git://", "ssh://", "file://", "git@"]
        .iter()
        .any(|p| source.starts_with(p))
        || source.ends_with(".git")
}

/// Whether a source reads the server's own files (a directory, or a `file://` repository):
/// only admins add those.
pub fn is_local(source: &str) -> bool {
    !is_git(source) || source.starts_with("file://") || source.starts_with('/')
}

/// A shallow clone of `url` (`branch`, else its default) into `dest`, replacing what was
/// there only once the clone succeeded.
async fn clone(
    url: &str,
    branch: Option<&str>,
    dest: &Path,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let parent = dest.parent().ok_or("no parent directory")?.to_path_buf();
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|e| format!("{}: {e}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        now_ms()
    ));
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(["clone", "--quiet", "--depth", "1", "--single-branch"]);
    if let Some(b) = branch {
        cmd.args(["--branch", b]);
    }
    cmd.arg("--").arg(url).arg(&tmp);
    cmd.env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(GIT_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("git clone {url}: no answer in {} s", GIT_TIMEOUT.as_secs()))?
        .map_err(|e| format!("git: {e} (is git installed?)"))?;
    if !out.status.success() {
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!("git clone {url}: {}", err.trim()));
    }
    let _ = tokio::fs::remove_dir_all(dest).await;
    tokio::fs::rename(&tmp, dest)
        .await
        .map_err(|e| format!("{}: {e}", dest.display()))?;
    let d = dest.to_path_buf();
    tokio::task::spawn_blocking(move || read_tree(&d))
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// Every file under `root` (not `.git`, no symbolic links), within the limits.
pub fn read_tree(root: &Path) -> Result<BTreeMap<String, Vec<u8>>, String> {
    if !root.is_dir() {
        return Err(format!("{}: not a directory", root.display()));
    }
    let mut out = BTreeMap::new();
    let mut total = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for e in entries {
            let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
            let path = e.path();
            let kind = e
                .file_type()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if e.file_name() == ".git" || kind.is_symlink() {
                continue;
            }
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            total += len;
            if out.len() >= MAX_FILES || total > MAX_BYTES {
                return Err(format!(
                    "{}: more than {MAX_FILES} files or {} MiB",
                    root.display(),
                    MAX_BYTES >> 20
                ));
            }
            let rel = path
                .strip_prefix(root)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .to_string();
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.insert(rel, bytes);
        }
    }
    Ok(out)
}

/// Fetches every stored catalog at start and then every [`REFRESH_EVERY`].
pub async fn refresh(state: Arc<AppState>) {
    loop {
        let rows = match state.store().catalogs() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("catalogs: {e}");
                Vec::new()
            }
        };
        for c in rows {
            let l = state
                .catalogs
                .fetch(&c.env, &c.name, &c.source, c.branch.as_deref())
                .await;
            if let Some(e) = l.error {
                tracing::warn!(env = %c.env, catalog = %c.name, "catalog refresh: {e}");
            }
        }
        tokio::time::sleep(REFRESH_EVERY).await;
    }
}
