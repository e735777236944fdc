//! `drover stack config -f FILE [--format json]`: validate and print, like `docker compose config`.

use crate::Failure;
use crate::cmd::FileArgs;

pub fn run(file: &FileArgs, format: &str) -> Result<(), Failure> {
    let loaded = crate::local::load(&file.options())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    if format == "json" {
        let text = serde_json::to_string_pretty(&loaded.project)
            .map_err(|e| Failure::failed(e.to_string()))?;
        outln!("{text}");
    } else {
        out!("{}", compose::to_compose_yaml(&loaded.project));
    }
    Ok(())
}
