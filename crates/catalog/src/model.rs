//! What an indexed catalog holds. Everything is serialisable, so a shell can store the copy
//! of a template an installed stack came from and upgrade it after its catalog is gone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::questions::Question;

/// One catalog, indexed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Index {
    /// The catalog's name, as the caller gave it.
    pub name: String,
    /// By folder name (`templates/<name>/`).
    pub templates: BTreeMap<String, Template>,
    /// What could not be loaded: a whole template, or one of its versions.
    pub problems: Vec<Problem>,
}

/// A template or version that could not be loaded, and why. The rest of the catalog loads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The template's folder name.
    pub template: String,
    /// The file at fault, relative to the catalog root (with `:LINE:COL` when known).
    pub file: String,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.template, self.file, self.reason)
    }
}

/// Which layout a template is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `template.yml` + `<version>/compose.yaml` + `<version>/questions.yml`.
    Drover,
    /// Rancher 1.x: `config.yml` + `<N>/docker-compose.yml[.tpl]` + `<N>/rancher-compose.yml`.
    Rancher,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Folder name: what `CATALOG/TEMPLATE` names.
    pub name: String,
    pub format: Format,
    /// Name to show (`name:` of `template.yml` / `config.yml`, else the folder name).
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    /// Categories (`category:` may be one or a list).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Path of the icon file, relative to the catalog root.
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub maintainer: Option<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// The version `config.yml` names as the one to install (Rancher), if any.
    #[serde(default)]
    pub default_version: Option<String>,
    /// A template-level `README.md`.
    #[serde(default)]
    pub readme: Option<String>,
    /// Oldest first; the last is the latest.
    pub versions: Vec<Version>,
    /// Non-fatal findings: unknown keys, a missing icon file...
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl Template {
    /// The highest version.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// A version by its version string, or by its folder name.
    pub fn version(&self, v: &str) -> Option<&Version> {
        self.versions
            .iter()
            .rev()
            .find(|x| x.version == v)
            .or_else(|| self.versions.iter().find(|x| x.folder == v))
    }

    /// Versions newer than `v` (in order), for "an upgrade exists".
    pub fn newer_than(&self, v: &str) -> &[Version] {
        match self
            .versions
            .iter()
            .position(|x| x.version == v || x.folder == v)
        {
            Some(i) => &self.versions[i + 1..],
            None => &[],
        }
    }
}

/// One version of a template, with the files rendering needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    /// The version (`.catalog.version` for Rancher, else the folder name).
    pub version: String,
    /// The folder it was read from, relative to the template (`3`, `1.2.0`).
    pub folder: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub readme: Option<String>,
    pub questions: Vec<Question>,
    /// Rancher's `upgrade_from` (a version range), kept for display.
    #[serde(default)]
    pub upgrade_from: Option<String>,
    /// Rancher's `minimum_rancher_version`, kept for display.
    #[serde(default)]
    pub minimum_rancher_version: Option<String>,
    /// The compose file: `compose.yaml`, `docker-compose.yml` or `docker-compose.yml.tpl`.
    pub compose: SourceFile,
    /// Rancher's `rancher-compose.yml`.
    #[serde(default)]
    pub rancher_compose: Option<SourceFile>,
}

/// A file of a version: its path from the catalog root and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

impl SourceFile {
    /// A Go template (`.tpl`) rendered before it is read as compose.
    pub fn is_template(&self) -> bool {
        self.path.ends_with(".tpl")
    }
}
