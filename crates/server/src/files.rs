//! Secrets and configs of each environment (`drover secret|config ...`, compose `secrets:`
//! and `configs:`): values sealed at rest with the server's key (`vault`), open in memory
//! for the desired states, and sent only with the containers that use them, to the hosts
//! that run them. The decisions (names, versions, who uses what, which files a container
//! gets) are the `secrets` crate's; a secret's value is never returned by the API.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use compose::FileKind;

/// A stored secret or config, open.
#[derive(Clone)]
pub struct Entry {
    pub stack: Option<String>,
    pub version: u64,
    pub value: Arc<[u8]>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// `(env, kind, name)` → entry.
type Map = BTreeMap<(String, FileKind, String), Entry>;

pub struct Files {
    vault: Arc<vault::Vault>,
    map: RwLock<Map>,
}

/// The largest value accepted (Docker's limit for secrets and configs).
pub const MAX_BYTES: usize = 500 * 1024;

pub fn kind_of(s: &str) -> Option<FileKind> {
    match s {
        "secret" => Some(FileKind::Secret),
        "config" => Some(FileKind::Config),
        _ => None,
    }
}

/// The name a value is sealed under: a sealed value copied to another row does not open.
fn sealed_name(env: &str, kind: FileKind, name: &str) -> String {
    format!("{}:{env}/{name}", kind.as_str())
}

impl Files {
    /// Opens every stored secret and config with `vault`.
    pub fn load(vault: Arc<vault::Vault>, store: &store::Store) -> Result<Files, String> {
        let mut map = Map::new();
        for r in store.files().map_err(|e| e.to_string())? {
            let Some(kind) = kind_of(&r.kind) else {
                continue;
            };
            let value = vault
                .unseal(&sealed_name(&r.env, kind, &r.name), &r.sealed)
                .map_err(|e| format!("{} {} of {}: {e}", r.kind, r.name, r.env))?;
            map.insert(
                (r.env, kind, r.name),
                Entry {
                    stack: r.stack,
                    version: r.version,
                    value: value.into(),
                    created_ms: r.created_ms,
                    updated_ms: r.updated_ms,
                },
            );
        }
        Ok(Files {
            vault,
            map: RwLock::new(map),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Map> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, env: &str, kind: FileKind, name: &str) -> Option<Entry> {
        self.read()
            .get(&(env.to_string(), kind, name.to_string()))
            .cloned()
    }

    /// Every entry of `kind` in `env`, by name.
    pub fn list(&self, env: &str, kind: FileKind) -> Vec<(String, Entry)> {
        self.read()
            .iter()
            .filter(|((e, k, _), _)| e == env && *k == kind)
            .map(|((_, _, n), v)| (n.clone(), v.clone()))
            .collect()
    }

    /// What is stored in `env`, as the `secrets` crate decides on it.
    fn stored(&self, env: &str) -> BTreeMap<secrets::Key, secrets::Stored> {
        self.read()
            .iter()
            .filter(|((e, _, _), _)| e == env)
            .map(|((_, k, n), v)| {
                let stored = secrets::Stored {
                    stack: v.stack.clone(),
                    version: v.version,
                };
                ((*k, n.clone()), stored)
            })
            .collect()
    }

    /// The row that stores `value` (sealed).
    #[allow(clippy::too_many_arguments)]
    pub fn row(
        &self,
        env: &str,
        kind: FileKind,
        name: &str,
        stack: Option<&str>,
        version: u64,
        value: &[u8],
        now: u64,
    ) -> Result<store::FileRow, String> {
        let created_ms = self.get(env, kind, name).map_or(now, |e| e.created_ms);
        Ok(store::FileRow {
            env: env.to_string(),
            kind: kind.as_str().to_string(),
            name: name.to_string(),
            stack: stack.map(str::to_string),
            sealed: self
                .vault
                .seal(&sealed_name(env, kind, name), value)
                .map_err(|e| e.to_string())?,
            version,
            created_ms,
            updated_ms: now,
        })
    }

    /// What a deploy of `project` stores besides it: the values sent with it (and configs'
    /// inline content) that are new or changed, as rows with their open values; stamps each
    /// service's uses with the version it runs.
    pub fn prepare(
        &self,
        env: &str,
        project: &mut compose::Project,
        sent: &BTreeMap<(FileKind, String), Vec<u8>>,
        now: u64,
    ) -> Result<Vec<(store::FileRow, Vec<u8>)>, secrets::Refused> {
        let mut values = sent.clone();
        for (key, src) in &project.configs {
            if let Some(c) = &src.content {
                values.insert((FileKind::Config, key.clone()), c.clone().into_bytes());
            }
        }
        let stored = self.stored(env);
        let mut changed = BTreeMap::new();
        for ((kind, key), value) in &values {
            let Some(src) = project.files(*kind).get(key) else {
                continue;
            };
            let name = secrets::stored_name(&project.name, key, src);
            let same = self
                .get(env, *kind, &name)
                .is_some_and(|e| *e.value == **value);
            changed.insert((*kind, key.clone()), !same);
        }
        let writes = secrets::resolve(project, &stored, &changed)?;
        let mut rows = Vec::new();
        for w in writes {
            let key = project
                .files(w.kind)
                .iter()
                .find(|(k, s)| secrets::stored_name(&project.name, k, s) == w.name)
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            let value = values.get(&(w.kind, key)).cloned().unwrap_or_default();
            let row = self
                .row(
                    env,
                    w.kind,
                    &w.name,
                    Some(&project.name),
                    w.version,
                    &value,
                    now,
                )
                .map_err(|message| secrets::Refused {
                    path: w.kind.top_key().into(),
                    message,
                })?;
            rows.push((row, value));
        }
        Ok(rows)
    }

    /// After the store committed rows.
    pub fn remember(&self, rows: &[(store::FileRow, Vec<u8>)]) {
        let mut map = self.write();
        for (r, value) in rows {
            let Some(kind) = kind_of(&r.kind) else {
                continue;
            };
            map.insert(
                (r.env.clone(), kind, r.name.clone()),
                Entry {
                    stack: r.stack.clone(),
                    version: r.version,
                    value: value.clone().into(),
                    created_ms: r.created_ms,
                    updated_ms: r.updated_ms,
                },
            );
        }
    }

    /// After the store removed one.
    pub fn forget(&self, env: &str, kind: FileKind, name: &str) {
        self.write()
            .remove(&(env.to_string(), kind, name.to_string()));
    }

    /// After the store removed a stack (and its own secrets and configs).
    pub fn forget_stack(&self, env: &str, stack: &str) {
        self.write()
            .retain(|(e, _, _), v| !(e == env && v.stack.as_deref() == Some(stack)));
    }

    /// The files a container of `service` gets, with their values.
    pub fn mounts(
        &self,
        env: &str,
        project: &compose::Project,
        service: &str,
    ) -> Vec<proto::FileMount> {
        let wanted = secrets::files_of(project, service);
        if wanted.is_empty() {
            return Vec::new();
        }
        let map = self.read();
        wanted
            .into_iter()
            .filter_map(|f| {
                let e = map.get(&(env.to_string(), f.kind, f.name))?;
                Some(proto::FileMount {
                    path: f.path,
                    uid: f.uid,
                    gid: f.gid,
                    mode: f.mode,
                    data: e.value.to_vec(),
                })
            })
            .collect()
    }
}
