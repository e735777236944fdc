//! `drover secret|config create NAME [-f FILE | --from-env VAR]` (else standard input),
//! `update` (a new value: services that use it roll), `ls` (never a secret's value),
//! `rm` (refused while in use), and `drover config inspect NAME` (a config's value). Also
//! the values of a stack's own secrets and configs, which `stack deploy` reads and sends.

use std::io::Read;
use std::path::{Path, PathBuf};

use api_types::{FileInfo, FileValue, NewFile};
use base64::Engine;
use compose::FileKind;

use crate::Failure;
use crate::client::Client;
use crate::cmd::table;

/// The largest value (Docker's limit for secrets and configs).
const MAX_BYTES: u64 = 500 * 1024;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut data = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if data.len() as u64 > MAX_BYTES {
        return Err(format!("{}: larger than 500 KiB", path.display()));
    }
    Ok(data)
}

/// The value from `-f FILE`, `--from-env VAR`, or standard input.
fn value(file: Option<&PathBuf>, from_env: Option<&str>) -> Result<Vec<u8>, Failure> {
    match (file, from_env) {
        (Some(f), _) => read_file(f).map_err(Failure::input),
        (None, Some(var)) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| Failure::input(format!("variable {var} is not set"))),
        (None, None) => {
            let mut data = Vec::new();
            std::io::stdin()
                .take(MAX_BYTES + 1)
                .read_to_end(&mut data)
                .map_err(|e| Failure::input(format!("reading standard input: {e}")))?;
            if data.len() as u64 > MAX_BYTES {
                return Err(Failure::input("standard input: larger than 500 KiB"));
            }
            Ok(data)
        }
    }
}

pub(crate) fn path(kind: FileKind) -> &'static str {
    match kind {
        FileKind::Secret => "/secrets",
        FileKind::Config => "/configs",
    }
}

/// Makes `name` (`update`: gives it a new value, and the services using it roll).
pub async fn set(
    client: &Client,
    kind: FileKind,
    name: &str,
    file: Option<&PathBuf>,
    from_env: Option<&str>,
    update: bool,
) -> Result<(), Failure> {
    let data = value(file, from_env)?;
    let req = NewFile {
        name: name.to_string(),
        data: b64(&data),
    };
    let what = kind.as_str();
    if !update {
        let info: FileInfo = client.post(path(kind), &req).await?;
        outln!("{what} {} created ({} bytes)", info.name, info.size);
        return Ok(());
    }
    let info: FileInfo = client.put(&format!("{}/{name}", path(kind)), &req).await?;
    let rolling = if info.used_by.is_empty() {
        String::new()
    } else {
        format!("; rolling {}", info.used_by.join(", "))
    };
    outln!(
        "{what} {} is now version {}{rolling}",
        info.name,
        info.version
    );
    Ok(())
}

pub async fn ls(client: &Client, kind: FileKind) -> Result<(), Failure> {
    let list: Vec<FileInfo> = client.get(path(kind)).await?;
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.stack.clone().unwrap_or_else(|| "-".into()),
                f.version.to_string(),
                crate::cmd::time(f.created_ms),
                crate::cmd::time(f.updated_ms),
                if f.used_by.is_empty() {
                    "-".into()
                } else {
                    f.used_by.join(",")
                },
            ]
        })
        .collect();
    table(
        &["NAME", "STACK", "VERSION", "CREATED", "UPDATED", "USED BY"],
        &rows,
    );
    Ok(())
}

pub async fn rm(client: &Client, kind: FileKind, name: &str) -> Result<(), Failure> {
    client.delete(&format!("{}/{name}", path(kind))).await?;
    outln!("{} {name} removed", kind.as_str());
    Ok(())
}

/// Prints a config's value as it is.
pub async fn inspect(client: &Client, name: &str) -> Result<(), Failure> {
    let info: FileInfo = client.get(&format!("/configs/{name}")).await?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(info.data.unwrap_or_default())
        .map_err(|e| Failure::failed(format!("config {name}: {e}")))?;
    std::io::Write::write_all(&mut std::io::stdout(), &data)
        .map_err(|e| Failure::failed(e.to_string()))?;
    Ok(())
}

/// The values of `project`'s own secrets and configs read from files (relative to `dir`)
/// and variables (`vars`), to send with its deploy. Inline `content:` travels in the
/// project; external ones are the server's.
pub fn stack_values(
    project: &compose::Project,
    dir: &Path,
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<FileValue>, Failure> {
    let mut out = Vec::new();
    for kind in [FileKind::Secret, FileKind::Config] {
        for (key, src) in project.files(kind) {
            let at = format!("{}.{key}", kind.top_key());
            let data = match (&src.file, &src.environment) {
                (Some(f), _) => {
                    read_file(&dir.join(f)).map_err(|e| Failure::input(format!("{at}: {e}")))?
                }
                (None, Some(var)) => vars
                    .get(var)
                    .map(|v| v.clone().into_bytes())
                    .ok_or_else(|| Failure::input(format!("{at}: variable {var} is not set")))?,
                _ => continue,
            };
            out.push(FileValue {
                kind: kind.as_str().into(),
                name: key.clone(),
                data: b64(&data),
            });
        }
    }
    Ok(out)
}
