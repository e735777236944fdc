//! Where the CLI finds the server: `--url`/`--token` flags, else `DROVER_URL`/`DROVER_TOKEN`,
//! else the config file `drover up` writes (`$DROVER_CONFIG`, default
//! `~/.config/drover/config.json`, mode 0600).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CliConfig {
    pub url: String,
    pub token: String,
    /// The server's CA certificate (PEM), trusted for its https URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
    /// The environment commands act in when `-e` does not say (`drover env use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
}

pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("DROVER_CONFIG") {
        return PathBuf::from(p);
    }
    dirs::config_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("drover")
        .join("config.json")
}

pub fn load() -> Option<CliConfig> {
    let text = std::fs::read_to_string(path()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes the config readable by the owner only.
pub fn save(cfg: &CliConfig) -> std::io::Result<PathBuf> {
    let path = path();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(cfg).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Resolves the server URL, token and CA from flags/env (clap fills them) or the config
/// file.
pub fn resolve(
    url: Option<String>,
    token: Option<String>,
    ca_cert: Option<&std::path::Path>,
) -> Result<CliConfig, crate::Failure> {
    let file = load();
    let ca_cert = match ca_cert {
        Some(path) => Some(read_ca(path)?),
        None => file.as_ref().and_then(|f| f.ca_cert.clone()),
    };
    let url = url
        .or_else(|| file.as_ref().map(|f| f.url.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:7480".to_string());
    let token = token.or_else(|| file.map(|f| f.token)).ok_or_else(|| {
        crate::Failure::unreachable(format!(
            "no API token: set DROVER_TOKEN, pass --token, or run `drover up` on this machine (it writes {})",
            path().display()
        ))
    })?;
    Ok(CliConfig {
        url,
        token,
        ca_cert,
        env: load().and_then(|f| f.env),
    })
}

/// Where `drover login` signs in: the URL given, else the config's; the CA given, else the
/// config's when it is the same server. The token is the session it will get.
pub fn for_login(
    url: Option<String>,
    ca_cert: Option<&std::path::Path>,
) -> Result<CliConfig, crate::Failure> {
    let file = load();
    let url = url
        .or_else(|| file.as_ref().map(|f| f.url.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:7480".to_string());
    let ca_cert = match ca_cert {
        Some(path) => Some(read_ca(path)?),
        None => file
            .as_ref()
            .filter(|f| f.url == url)
            .and_then(|f| f.ca_cert.clone()),
    };
    Ok(CliConfig {
        url,
        token: String::new(),
        ca_cert,
        env: file.and_then(|f| f.env),
    })
}

/// The CA certificate `--ca-cert` names.
fn read_ca(path: &std::path::Path) -> Result<String, crate::Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| crate::Failure::input(format!("--ca-cert {}: {e}", path.display())))
}
