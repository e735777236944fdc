//! Secrets and configs, the pure part: what each top-level entry of a stack is called in
//! its environment, who uses which, which files each container gets, and what a deploy
//! must store. No I/O, no values' bytes beyond what the caller hands in.
//!
//! A stack's own entries (`file:`, `environment:`, `content:`) are stored under
//! `<stack>_<key>` and go with the stack; an `external: true` entry names one made
//! beforehand (`drover secret create`), under its `name:` or its key.

use std::collections::{BTreeMap, BTreeSet};

use compose::{FileKind, FileSource, Project};

/// `(kind, name in the environment)`.
pub type Key = (FileKind, String);

/// The name entry `key` of stack `stack` has in its environment.
pub fn stored_name(stack: &str, key: &str, src: &FileSource) -> String {
    if src.external {
        src.name.clone().unwrap_or_else(|| key.to_owned())
    } else {
        format!("{stack}_{key}")
    }
}

/// What a stored secret or config is now, as far as deciding goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The stack it belongs to (`None`: made by a user, external to stacks).
    pub stack: Option<String>,
    pub version: u64,
}

/// A value to store with a deploy: `version` 1 for a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub kind: FileKind,
    pub name: String,
    pub version: u64,
}

/// Why a deploy cannot resolve its secrets or configs: the path and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub path: String,
    pub message: String,
}

/// A deploy of `project`: every entry it declares resolved against what is stored, with
/// the values sent with it (`sent`: kind and key → whether it differs from what is stored;
/// a key missing means none was sent). Returns what to write, and stamps each service's
/// uses with the version they run.
pub fn resolve(
    project: &mut Project,
    stored: &BTreeMap<Key, Stored>,
    sent: &BTreeMap<(FileKind, String), bool>,
) -> Result<Vec<Write>, Refused> {
    let mut writes = Vec::new();
    let mut versions: BTreeMap<(FileKind, String), u64> = BTreeMap::new();
    for kind in [FileKind::Secret, FileKind::Config] {
        for (key, src) in project.files(kind) {
            let name = stored_name(&project.name, key, src);
            let path = format!("{}.{key}", kind.top_key());
            let have = stored.get(&(kind, name.clone()));
            let what = kind.as_str();
            let version = if src.external {
                match have {
                    Some(h) => h.version,
                    None => {
                        return Err(Refused {
                            path,
                            message: format!(
                                "external {what} '{name}' does not exist in this environment \
                                 (drover {what} create {name})"
                            ),
                        });
                    }
                }
            } else {
                if let Some(owner) = have.and_then(|h| h.stack.as_deref())
                    && owner != project.name
                {
                    return Err(Refused {
                        path,
                        message: format!("{what} '{name}' belongs to stack '{owner}'"),
                    });
                }
                if have.is_some_and(|h| h.stack.is_none()) {
                    return Err(Refused {
                        path,
                        message: format!(
                            "{what} '{name}' was made with drover {what} create: declare it \
                             external: true"
                        ),
                    });
                }
                match (sent.get(&(kind, key.clone())), have) {
                    (Some(false), Some(h)) | (None, Some(h)) => h.version,
                    (Some(_), h) => {
                        let version = h.map_or(1, |h| h.version + 1);
                        writes.push(Write {
                            kind,
                            name: name.clone(),
                            version,
                        });
                        version
                    }
                    (None, None) => {
                        let from = match (&src.file, &src.environment) {
                            (Some(f), _) => format!("file {f}"),
                            (_, Some(v)) => format!("variable {v}"),
                            _ => "its content".to_owned(),
                        };
                        return Err(Refused {
                            path,
                            message: format!(
                                "the value of {what} '{key}' ({from}) was not sent with the \
                                 deploy: drover stack deploy reads it"
                            ),
                        });
                    }
                }
            };
            versions.insert((kind, key.clone()), version);
        }
    }
    for svc in project.services.values_mut() {
        for (kind, uses) in [
            (FileKind::Secret, &mut svc.secrets),
            (FileKind::Config, &mut svc.configs),
        ] {
            for u in uses.iter_mut() {
                u.version = versions.get(&(kind, u.source.clone())).copied();
            }
        }
    }
    Ok(writes)
}

/// One file a container gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub kind: FileKind,
    /// The stored name its value is under.
    pub name: String,
    /// Absolute path in the container.
    pub path: String,
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub mode: u32,
}

/// The files the containers of `service` get.
pub fn files_of(project: &Project, service: &str) -> Vec<File> {
    let Some(svc) = project.services.get(service) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for kind in [FileKind::Secret, FileKind::Config] {
        for u in svc.file_uses(kind) {
            let Some(src) = project.files(kind).get(&u.source) else {
                continue;
            };
            out.push(File {
                kind,
                name: stored_name(&project.name, &u.source, src),
                path: u.path(kind),
                uid: u.uid.clone(),
                gid: u.gid.clone(),
                mode: u.file_mode(),
            });
        }
    }
    out
}

/// The stored entries `project` uses, each with the services that use it
/// (`stack/service`).
pub fn used_by(project: &Project) -> BTreeMap<Key, BTreeSet<String>> {
    let mut out: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for name in project.services.keys() {
        for f in files_of(project, name) {
            out.entry((f.kind, f.name))
                .or_default()
                .insert(format!("{}/{name}", project.name));
        }
    }
    out
}

/// The stored entries that belong to `project` (its own, not external ones).
pub fn owned(project: &Project) -> BTreeSet<Key> {
    let mut out = BTreeSet::new();
    for kind in [FileKind::Secret, FileKind::Config] {
        for (key, src) in project.files(kind).iter().filter(|(_, s)| !s.external) {
            out.insert((kind, stored_name(&project.name, key, src)));
        }
    }
    out
}

#[cfg(test)]
mod tests;
